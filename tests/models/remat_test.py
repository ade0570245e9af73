"""``model.denoiser.remat`` and ``scan_layers``: recomputing activations in the backward pass, or
looping over the layers, changes no value and no gradient (configs/test.py sizes, same parameters;
``remat`` with dropout on and the same dropout key, ``scan_layers`` without dropout, since it
draws its own per-layer dropout keys)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs import test as test_config
from irgeodiff_jax.models import factory
from irgeodiff_jax.models.egnn import EGNN
from tests.helpers.model_params import make_batch, random_params


def _loss_and_grads(den, params, b, enc, z_h, t, deterministic=False):
    def loss(p):
        eps = den.apply(
            {"params": p}, b["x"], t, z_h, b["mask"], enc,
            deterministic=deterministic, method="forward", rngs={"dropout": jax.random.key(7)},
        )  # fmt: skip
        return jnp.sum(jnp.sin(3.0 * eps))  # a loss whose gradient depends on every output

    return jax.jit(jax.value_and_grad(loss))(params)


def _inputs(seed=3):
    config = test_config.get_config()
    with config.unlocked():
        config.model.denoiser.dropout_rate = 0.2
        config.model.denoiser.edge.num_layers = 2  # a loop over more than one layer
    models = factory.create_models(config)
    params = random_params(models, config, seed=seed)
    b = make_batch(0, num_real=(5, 3))
    enc = models["classifier"].apply(
        {"params": params["classifier"]}, b["spectrum"], b["formula"],
        deterministic=True, method="encode",
    )  # fmt: skip
    rng = np.random.default_rng(1)
    z_h = (rng.normal(size=(*b["mask"].shape, 16)) * b["mask"][..., None]).astype(np.float32)
    t = rng.uniform(size=b["mask"].shape[0]).astype(np.float32)
    return models["denoiser"], params["denoiser"], b, enc, z_h, t


def _assert_same(loss, grads, loss_r, grads_r):
    np.testing.assert_allclose(loss_r, loss, rtol=1e-6)
    # float32 rounding of another summation order: tolerance relative to the largest gradient
    scale = max(float(np.max(np.abs(g))) for g in jax.tree.leaves(grads))
    close = lambda a, r: np.testing.assert_allclose(r, a, rtol=1e-5, atol=2e-6 * scale)  # noqa: E731
    jax.tree.map(close, grads, grads_r)
    norms = [float(jnp.linalg.norm(g)) for g in jax.tree.leaves(grads)]
    assert sum(n > 0 for n in norms) > 0.9 * len(norms)  # the gradients compared are not zero


def test_remat_gives_the_same_loss_and_gradients():
    den, params, *inputs = _inputs()
    assert not den.remat
    loss, grads = _loss_and_grads(den, params, *inputs)
    _assert_same(loss, grads, *_loss_and_grads(den.clone(remat=True), params, *inputs))


def test_scan_layers_gives_the_same_loss_and_gradients_without_dropout():
    den, params, *inputs = _inputs()
    assert not den.scan_layers and den.num_layers > 1 and den.edge_layers > 1
    loss, grads = _loss_and_grads(den, params, *inputs, deterministic=True)
    scan = den.clone(scan_layers=True)
    _assert_same(loss, grads, *_loss_and_grads(scan, params, *inputs, deterministic=True))


def test_scan_layers_applies_dropout_reproducibly():
    den, params, *inputs = _inputs()
    scan = den.clone(scan_layers=True)
    off, _ = _loss_and_grads(scan, params, *inputs, deterministic=True)
    on, grads = _loss_and_grads(scan, params, *inputs)
    again, grads_again = _loss_and_grads(scan, params, *inputs)
    assert float(on) != pytest.approx(float(off), rel=1e-4)  # dropout acts in the loop
    assert float(again) == float(on)
    jax.tree.map(np.testing.assert_array_equal, grads, grads_again)


@pytest.mark.parametrize("switch", ["remat", "scan_layers"])
def test_memory_switches_keep_the_parameter_tree(switch):
    config = test_config.get_config()
    with config.unlocked():
        config.model.denoiser[switch] = True
    models = factory.create_models(config)
    assert getattr(models["denoiser"], switch)
    plain = factory.create_models(test_config.get_config())
    shapes = lambda m: jax.eval_shape(  # noqa: E731
        lambda k: factory.init_params(m, config, k), jax.random.key(0)
    )
    assert jax.tree.map(np.shape, shapes(models)) == jax.tree.map(np.shape, shapes(plain))


def test_egnn_scan_layers_gives_the_same_values_and_gradients():
    """The autoencoder's switch acts on its EGNNs: the scanned stack equals the unrolled one."""
    rng = np.random.default_rng(2)
    mask = np.array([[1] * 6 + [0] * 2, [1] * 4 + [0] * 4], np.float32)
    h = rng.normal(size=(2, 8, 5)).astype(np.float32)
    x = (rng.normal(size=(2, 8, 3)) * mask[..., None]).astype(np.float32)
    plain = EGNN(hidden_dim=16, num_layers=3, out_dim=4)
    params = plain.init(jax.random.key(0), h, x, mask)["params"]

    def loss_and_grads(model):
        def loss(p, x):
            out = model.apply({"params": p}, h, x, mask)
            return jnp.sum(jnp.sin(3.0 * out.x)) + jnp.sum(jnp.cos(out.h))

        return jax.jit(jax.value_and_grad(loss, argnums=(0, 1)))(params, x)

    loss, grads = loss_and_grads(plain)
    _assert_same(loss, grads, *loss_and_grads(plain.clone(scan_layers=True)))


def test_autoencoder_scan_layers_is_a_config_switch_with_the_same_parameter_tree():
    config = test_config.get_config()
    with config.unlocked():
        config.model.autoencoder.scan_layers = True
    models = factory.create_models(config)
    assert models["autoencoder"].scan_layers
    shapes = lambda c: jax.eval_shape(  # noqa: E731
        lambda k: factory.init_params(factory.create_models(c), c, k), jax.random.key(0)
    )
    plain = test_config.get_config()
    assert jax.tree.map(np.shape, shapes(config)) == jax.tree.map(np.shape, shapes(plain))
