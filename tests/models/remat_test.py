"""``model.denoiser.remat``: recomputing activations in the backward pass changes no value and no
gradient (configs/test.py sizes, dropout on, same parameters and dropout key)."""

import jax
import jax.numpy as jnp
import numpy as np

from configs import test as test_config
from irgeodiff_jax.models import factory
from tests.helpers.model_params import make_batch, random_params


def _loss_and_grads(den, params, b, enc, z_h, t):
    def loss(p):
        eps = den.apply(
            {"params": p}, b["x"], t, z_h, b["mask"], enc,
            deterministic=False, method="forward", rngs={"dropout": jax.random.key(7)},
        )  # fmt: skip
        return jnp.sum(jnp.sin(3.0 * eps))  # a loss whose gradient depends on every output

    return jax.jit(jax.value_and_grad(loss))(params)


def test_remat_gives_the_same_loss_and_gradients():
    config = test_config.get_config()
    with config.unlocked():
        config.model.denoiser.dropout_rate = 0.2
    models = factory.create_models(config)
    params = random_params(models, config, seed=3)
    den = models["denoiser"]
    assert not den.remat
    b = make_batch(0, num_real=(5, 3))
    enc = models["classifier"].apply(
        {"params": params["classifier"]}, b["spectrum"], b["formula"],
        deterministic=True, method="encode",
    )  # fmt: skip
    rng = np.random.default_rng(1)
    z_h = (rng.normal(size=(*b["mask"].shape, 16)) * b["mask"][..., None]).astype(np.float32)
    t = rng.uniform(size=b["mask"].shape[0]).astype(np.float32)
    loss, grads = _loss_and_grads(den, params["denoiser"], b, enc, z_h, t)
    loss_r, grads_r = _loss_and_grads(den.clone(remat=True), params["denoiser"], b, enc, z_h, t)
    np.testing.assert_allclose(loss_r, loss, rtol=1e-6)
    close = lambda a, r: np.testing.assert_allclose(r, a, rtol=1e-5, atol=1e-7)  # noqa: E731
    jax.tree.map(close, grads, grads_r)
    norms = [float(jnp.linalg.norm(g)) for g in jax.tree.leaves(grads)]
    assert sum(n > 0 for n in norms) > 0.9 * len(norms)  # the gradients compared are not zero


def test_remat_is_a_config_switch_with_the_same_parameter_tree():
    config = test_config.get_config()
    with config.unlocked():
        config.model.denoiser.remat = True
    models = factory.create_models(config)
    assert models["denoiser"].remat
    plain = factory.create_models(test_config.get_config())
    shapes = lambda m: jax.eval_shape(  # noqa: E731
        lambda k: factory.init_params(m, config, k), jax.random.key(0)
    )
    assert jax.tree.map(np.shape, shapes(models)) == jax.tree.map(np.shape, shapes(plain))
