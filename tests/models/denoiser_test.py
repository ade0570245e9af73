"""Denoiser (configs/test.py sizes): equivariance, permutation, padding, edge-stream variants,
prepared-condition reuse, attention maps, compile-once and NaN propagation."""

import functools

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs import test as test_config
from irgeodiff_jax.models import factory
from irgeodiff_jax.models.denoiser import pair_indices, pair_lookup
from irgeodiff_jax.utils.geometry import random_orthogonal
from tests.helpers.model_params import make_batch, random_params

TOL = 1e-5


@pytest.fixture(scope="module")
def model():
    """(modules dict, params) from configs/test.py with numpy-drawn parameters."""
    config = test_config.get_config()
    models = factory.create_models(config)
    return models, random_params(models, config, seed=1)


@functools.partial(jax.jit, static_argnums=0)
def _encode(classifier, params, spectrum, formula):
    return classifier.apply(
        {"params": params}, spectrum, formula, deterministic=True, method="encode"
    )


@functools.partial(jax.jit, static_argnums=0)
def _forward(den, params, x, t, z_h, mask, enc):
    variables = {"params": params}
    return den.apply(variables, x, t, z_h, mask, enc, deterministic=True, method="forward")


@functools.partial(jax.jit, static_argnums=0)
def _prepare(den, params, enc):
    return den.apply({"params": params}, enc, method="prepare")


@functools.partial(jax.jit, static_argnums=0)
def _step(den, params, z_t, t, z_h, mask, cond):
    return den.apply({"params": params}, z_t, t, z_h, mask, cond, deterministic=True)


@functools.partial(jax.jit, static_argnums=0)
def _edges(den, params, x, h, mask, cond):
    variables = {"params": params}
    return den.apply(variables, x, h, mask, cond, deterministic=True, method="edge_attributes")


def _inputs(model, seed=0, **kw):
    """Batch plus spectral encoding, z_h and t for the denoiser."""
    models, params = model
    b = make_batch(seed, **kw)
    b["enc"] = _encode(models["classifier"], params["classifier"], b["spectrum"], b["formula"])
    rng = np.random.default_rng(seed + 100)
    b["z_h"] = rng.normal(size=(*b["mask"].shape, 16)).astype(np.float32) * b["mask"][..., None]
    b["t"] = rng.uniform(size=b["mask"].shape[0]).astype(np.float32)
    return b


def _eps(model, b, x=None, module=None):
    models, params = model
    x = b["x"] if x is None else x
    module = module or models["denoiser"]
    return _forward(module, params["denoiser"], x, b["t"], b["z_h"], b["mask"], b["enc"])


@pytest.mark.parametrize("reflect", [False, True])
def test_eps_rotates_and_ignores_translation(model, keys, reflect):
    b = _inputs(model)
    eps = _eps(model, b)
    q = np.asarray(random_orthogonal(next(keys), reflect=reflect))
    moved = (b["x"] @ q.T + np.array([2.0, -1.0, 0.5])) * b["mask"][..., None]
    np.testing.assert_allclose(_eps(model, b, moved), eps @ q.T, atol=TOL)
    assert float(jnp.max(jnp.abs(eps))) > 1e-2


def test_permutation_equivariance(model):
    b = _inputs(model, num_real=(5, 5))
    eps = _eps(model, b)
    perm = np.array([4, 2, 0, 1, 3])
    pb = {**b, "x": b["x"][:, perm], "z_h": b["z_h"][:, perm], "mask": b["mask"][:, perm]}
    np.testing.assert_allclose(_eps(model, pb), eps[:, perm], atol=TOL)


@pytest.mark.parametrize("garbage", [False, True])
def test_padding_changes_nothing(model, garbage):
    b = _inputs(model, num_real=(5, 3))
    eps = _eps(model, b)
    extra = 3

    def pad(v):
        return np.concatenate([v, np.zeros((v.shape[0], extra, *v.shape[2:]), v.dtype)], 1)

    pb = {**b, "x": pad(b["x"]), "z_h": pad(b["z_h"]), "mask": pad(b["mask"])}
    if garbage:
        rows = (1.0 - pb["mask"])[..., None]
        pb["x"] = pb["x"] + 5.0 * rows
        pb["z_h"] = pb["z_h"] - 3.0 * rows
    got = _eps(model, pb)
    np.testing.assert_allclose(np.where(b["mask"][..., None] > 0, got[:, :5], 0), eps, atol=TOL)
    assert not np.any(got[:, 5:])


@functools.partial(jax.jit, static_argnums=0)
def _forward_sc(den, params, x, t, z_h, mask, enc, z_sc):
    variables = {"params": params}
    return den.apply(variables, x, t, z_h, mask, enc, deterministic=True, method="forward",
                     z_sc=z_sc)  # fmt: skip


def test_self_conditioning_input_is_read_equivariantly(keys):
    """With ``self_condition`` the previous estimate ``z_sc`` changes ε̂; rotating and
    translating ``z_t`` with ``z_sc`` rotated too rotates ε̂; ``z_sc``'s padded rows are ignored."""
    config = test_config.get_config()
    config.model.denoiser.self_condition = True
    models = factory.create_models(config)
    model = (models, random_params(models, config, seed=2))
    b = _inputs(model, num_real=(5, 3))
    mask = b["mask"][..., None]
    z_sc = b["x"][:, ::-1] * mask + 0.3 * np.random.default_rng(3).normal(size=b["x"].shape)
    z_sc = (z_sc - (z_sc * mask).sum(1, keepdims=True) / mask.sum(1, keepdims=True)) * mask

    def eps(x, sc):
        args = (x, b["t"], b["z_h"], b["mask"], b["enc"], sc.astype(np.float32))
        return _forward_sc(models["denoiser"], model[1]["denoiser"], *args)

    base = eps(b["x"], z_sc)
    assert float(jnp.max(jnp.abs(base - eps(b["x"], np.zeros_like(z_sc))))) > 1e-3
    q = np.asarray(random_orthogonal(next(keys), reflect=True))
    moved = (b["x"] @ q.T + np.array([1.0, 0.5, -2.0])) * mask
    np.testing.assert_allclose(eps(moved, z_sc @ q.T), base @ q.T, atol=TOL)
    np.testing.assert_allclose(eps(b["x"], z_sc + 4.0 * (1.0 - mask)), base, atol=TOL)


def test_unordered_pairs_match_all_ordered_pairs(model):
    models, params = model
    den = models["denoiser"]
    ordered = den.clone(edge_pairs="ordered")
    b = _inputs(model, num_real=(5, 4))
    np.testing.assert_allclose(_eps(model, b, module=ordered), _eps(model, b), atol=TOL)
    cond = _prepare(den, params["denoiser"], b["enc"])
    t_col = np.broadcast_to(b["t"][:, None, None], (2, 5, 1))
    h = np.concatenate([b["z_h"], t_col], -1) * b["mask"][..., None]
    sym = _edges(den, params["denoiser"], b["x"], h, b["mask"], cond)
    full = _edges(ordered, params["denoiser"], b["x"], h, b["mask"], cond)
    pair = (b["mask"][:, :, None] * b["mask"][:, None, :] * (1 - np.eye(5)))[..., None] > 0
    np.testing.assert_allclose(np.where(pair, sym, 0), np.where(pair, full, 0), atol=TOL)
    np.testing.assert_allclose(sym, np.swapaxes(sym, 1, 2), atol=0)
    assert float(np.std(np.where(pair, sym, 0))) > 1e-3


def test_pair_lookup_covers_each_unordered_pair_once():
    i, j = pair_indices(6)
    lookup = pair_lookup(6)
    assert len(i) == 15 and np.all(i < j)
    np.testing.assert_array_equal(lookup[i, j], np.arange(15))
    np.testing.assert_array_equal(lookup, lookup.T)
    assert np.all(np.diag(lookup) == 15)


def test_prepared_condition_is_reused_exactly(model):
    models, params = model
    b = _inputs(model)
    cond = _prepare(models["denoiser"], params["denoiser"], b["enc"])
    for shift in (0.0, 0.3):
        z_t = (b["x"] + shift * np.sin(b["x"])) * b["mask"][..., None]
        args = (z_t, b["t"], b["z_h"], b["mask"])
        reused = _step(models["denoiser"], params["denoiser"], *args, cond)
        np.testing.assert_allclose(reused, _eps(model, b, z_t), atol=1e-6)


def test_attention_maps_are_retrievable(model):
    b = _inputs(model)
    models, params = model
    args = (b["x"], b["t"], b["z_h"], b["mask"], b["enc"])
    _, state = jax.jit(
        lambda p, *a: models["denoiser"].apply(
            {"params": p}, *a, deterministic=True, method="forward", mutable=["intermediates"]
        )
    )(params["denoiser"], *args)
    flat = {
        jax.tree_util.keystr(k): v
        for k, v in jax.tree_util.tree_leaves_with_path(state["intermediates"])
    }
    atom = [v for k, v in flat.items() if "atom_cross_attention" in k and "cross_attn" in k]
    edge = [v for k, v in flat.items() if "edge_cross_attention" in k]
    heads, tokens = 2, b["enc"].tokens.shape[1]
    assert atom and edge
    assert atom[0].shape == (2, heads, 5, tokens)
    assert edge[0].shape == (2, heads, 10, tokens)  # 5 * 4 / 2 unordered pairs
    np.testing.assert_allclose(np.sum(edge[0], -1), 1.0, atol=1e-5)


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16])
@pytest.mark.parametrize("batch,n", [(1, 5), (3, 7), (4, 29)])
def test_shapes_and_dtypes(model, batch, n, dtype):
    """Output shape/dtype by abstract evaluation (no compilation) for several sizes."""
    models, _ = model
    b = _inputs(model, num_real=tuple(range(n, n - batch, -1)), n=n)
    module = models["denoiser"].clone(dtype=dtype)
    eps = jax.eval_shape(lambda: _eps(model, b, module=module))
    assert eps.shape == (batch, n, 3) and eps.dtype == jnp.float32


@pytest.mark.slow
def test_bfloat16_compute_is_close_to_float32(model):
    models, _ = model
    b = _inputs(model)
    eps32 = _eps(model, b)
    eps16 = _eps(model, b, module=models["denoiser"].clone(dtype=jnp.bfloat16))
    assert eps16.dtype == jnp.float32 and np.all(np.isfinite(eps16))
    assert float(jnp.max(jnp.abs(eps16 - eps32))) < 0.1 * float(jnp.max(jnp.abs(eps32))) + 0.05


def test_non_finite_values_are_not_zeroed(model):
    b = _inputs(model)
    x = b["x"].copy()
    x[0, 1, 0] = np.nan
    eps = _eps(model, b, x)
    assert np.all(np.isnan(eps[0, :5])) and np.all(np.isfinite(eps[1, :3]))


def test_jitted_step_compiles_once(model):
    models, params = model
    b = _inputs(model)
    cond = _prepare(models["denoiser"], params["denoiser"], b["enc"])

    @jax.jit
    @chex.assert_max_traces(n=1)
    def step(p, z_t, t, z_h, mask, cond):
        return models["denoiser"].apply({"params": p}, z_t, t, z_h, mask, cond, deterministic=True)

    outs = [
        step(params["denoiser"], b["x"] * s, b["t"] * s, b["z_h"], b["mask"], cond)
        for s in (1.0, 0.5, 0.25)
    ]
    assert all(o.shape == (2, 5, 3) for o in outs)
    assert not np.allclose(outs[0], outs[1])
