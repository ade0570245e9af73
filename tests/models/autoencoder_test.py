"""Autoencoder (configs/test.py sizes): equivariance, permutation, padding, ae_loss.

Parameters are drawn with numpy (``random_params``) and every forward is one jitted function
compiled once per shape: on this shared CPU machine compilation dominates test time.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs import test as test_config
from irgeodiff_jax.models import factory
from irgeodiff_jax.models.autoencoder import ae_loss
from irgeodiff_jax.utils.geometry import random_orthogonal
from tests.helpers.model_params import make_batch, random_params

TOL = 1e-5


@pytest.fixture(scope="module")
def model():
    """(classifier, autoencoder) modules from configs/test.py and random parameters."""
    config = test_config.get_config()
    models = factory.create_models(config)
    return (models["classifier"], models["autoencoder"]), random_params(models, config)


@functools.partial(jax.jit, static_argnums=0)
def _run(modules, params, b, z_x):
    """``(z_h, mu_x, decode(mu_x), decode(z_x))`` for batch ``b``."""
    cls, ae = modules
    ae_vars = {"params": params["autoencoder"]}
    enc = cls.apply(
        {"params": params["classifier"]},
        b["spectrum"],
        b["formula"],
        deterministic=True,
        method="encode",
    )
    z_h = ae.apply(ae_vars, b["types"], b["mask"], enc, deterministic=True, method="embed_atoms")
    mu_x = ae.apply(ae_vars, b["x"], z_h, b["mask"], method="encode")
    decode = lambda z: ae.apply(ae_vars, z, z_h, b["mask"], method="decode")  # noqa: E731
    return z_h, mu_x, decode(mu_x), decode(z_x)


def _all_outputs(model, b, z_x=None):
    """``(z_h, mu_x, x_rec)`` (and ``decode(z_x)`` when ``z_x`` is given)."""
    z_h, mu_x, x_rec, dec = _run(*model, b, b["x"] if z_x is None else z_x)
    return (z_h, mu_x, x_rec) if z_x is None else (z_h, mu_x, x_rec, dec)


@pytest.mark.parametrize("reflect", [False, True])
def test_encoder_and_decoder_are_e3_equivariant(model, keys, reflect):
    b = make_batch(0)
    z_h, mu_x, x_rec = _all_outputs(model, b)
    q = np.asarray(random_orthogonal(next(keys), reflect=reflect))
    m = b["mask"][..., None]
    moved = {**b, "x": (b["x"] @ q.T + np.array([1.0, -2.0, 3.0])) * m}
    z_moved = (np.asarray(mu_x) @ q.T + np.array([0.5, 0.0, -4.0])) * m
    z_h2, mu_moved, _, x_from_z = _all_outputs(model, moved, z_moved)
    np.testing.assert_allclose(z_h2, z_h, atol=TOL)  # invariant features
    np.testing.assert_allclose(mu_moved, mu_x @ q.T, atol=TOL)  # mean-removed: no translation
    np.testing.assert_allclose(x_from_z, x_rec @ q.T, atol=TOL)
    np.testing.assert_allclose(np.sum(mu_x * m, axis=1), 0.0, atol=TOL)
    np.testing.assert_allclose(np.sum(x_rec * m, axis=1), 0.0, atol=TOL)
    assert float(jnp.std(z_h[0])) > 1e-3  # z_h is not trivially constant
    assert float(jnp.max(jnp.abs(mu_x - b["x"]))) > 1e-2  # the encoder moves atoms


def test_permutation_equivariance(model):
    b = make_batch(1, num_real=(5, 5))
    outs = _all_outputs(model, b)
    perm = np.array([2, 4, 0, 3, 1])
    pb = {**b, "x": b["x"][:, perm], "types": b["types"][:, perm], "mask": b["mask"][:, perm]}
    for got, want in zip(_all_outputs(model, pb), outs, strict=True):
        np.testing.assert_allclose(got, want[:, perm], atol=TOL)


@pytest.mark.parametrize("garbage", [False, True])
def test_padding_changes_nothing_including_loss(model, garbage):
    b = make_batch(2, num_real=(5, 3))
    outs = _all_outputs(model, b)
    loss = ae_loss(b["x"], outs[2], outs[1], b["mask"])
    extra = 4

    def pad(v):
        return np.concatenate([v, np.zeros((v.shape[0], extra, *v.shape[2:]), v.dtype)], 1)

    pb = {**b, "x": pad(b["x"]), "types": pad(b["types"]), "mask": pad(b["mask"])}
    if garbage:  # padded rows with nonzero coordinates and types must be ignored too
        rows = 1.0 - pb["mask"]
        pb["x"] = pb["x"] + 7.0 * rows[..., None]
        pb["types"] = pb["types"] + 3 * rows.astype(int)
    pouts = _all_outputs(model, pb)
    real = b["mask"].astype(bool)[..., None]
    for got, want in zip(pouts, outs, strict=True):
        np.testing.assert_allclose(np.where(real, got[:, :5], 0), want, atol=TOL)
        assert not np.any(got[:, 5:])
    ploss = ae_loss(pad(b["x"]), pouts[2], pouts[1], pb["mask"])
    for key in ("loss", "recon", "kl_x"):
        np.testing.assert_allclose(ploss[key], loss[key], rtol=1e-5)


def test_ae_loss_values():
    mask = np.array([[1, 1, 0], [1, 1, 1]], np.float32)
    x = np.zeros((2, 3, 3), np.float32)
    x_rec = np.ones((2, 3, 3), np.float32) * mask[..., None]
    mu = 2.0 * np.ones((2, 3, 3), np.float32) * mask[..., None]
    out = ae_loss(x, x_rec, mu, mask)
    # recon: each molecule sum 3*N / (3*N) = 1; kl: 0.5 * 4 * 3N = 6N -> (12 + 18) / 2.
    np.testing.assert_allclose(out["recon"], 1.0, rtol=1e-6)
    np.testing.assert_allclose(out["kl_x"], 15.0, rtol=1e-6)
    np.testing.assert_allclose(out["loss"], 1.0 + 0.01 * 15.0, rtol=1e-6)
    np.testing.assert_allclose(out["per_molecule_loss"], [1.12, 1.18], rtol=1e-6)
    reference = ae_loss(x, x_rec, mu, mask, n_pad=3)  # the reference's 3 * N_pad denominator
    np.testing.assert_allclose(reference["recon"], (6 / 9 + 9 / 9) / 2, rtol=1e-6)


@pytest.mark.parametrize("batch,n", [(1, 5), (3, 7), (4, 29)])
def test_shapes_and_dtypes(model, batch, n):
    """Output shapes/dtypes by abstract evaluation (no compilation) for several sizes."""
    b = make_batch(3, num_real=tuple(range(n, n - batch, -1)), n=n)
    z_h, mu_x, x_rec = jax.eval_shape(lambda: _all_outputs(model, b))
    assert z_h.shape == (batch, n, 16) and z_h.dtype == jnp.float32
    assert mu_x.shape == x_rec.shape == (batch, n, 3)
    assert mu_x.dtype == x_rec.dtype == jnp.float32
