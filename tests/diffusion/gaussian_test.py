"""Tests for irgeodiff_jax.diffusion.gaussian (zero-CoM noise, q_sample, loss, transitions)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from irgeodiff_jax.diffusion import gaussian
from irgeodiff_jax.diffusion.gaussian import ShapeError
from irgeodiff_jax.diffusion.schedules import polynomial_alphas2, polynomial_schedule
from irgeodiff_jax.utils.geometry import masked_mean

T = 1000


@pytest.fixture(scope="module")
def schedule():
    return polynomial_schedule(T=T)


def _mask(counts, n_max):
    return (np.arange(n_max)[None, :] < np.asarray(counts)[:, None]).astype(np.float32)


def test_zero_com_noise_is_centred_and_padded_with_zeros(keys):
    mask = _mask([5, 3, 1, 8], 8)
    eps = gaussian.sample_zero_com_noise(next(keys), (4, 8, 3), mask)
    assert eps.shape == (4, 8, 3) and eps.dtype == jnp.float32
    np.testing.assert_allclose(masked_mean(eps, mask), 0.0, atol=1e-6)
    assert np.all(np.asarray(eps)[mask == 0] == 0.0)
    assert np.all(np.asarray(eps)[2] == 0.0)  # a single atom has no free coordinates


def test_zero_com_noise_has_unit_variance_in_subspace(keys):
    n, batch = 4, 4000
    mask = _mask([n] * batch + [2] * batch, 6)
    eps = np.asarray(gaussian.sample_zero_com_noise(next(keys), (2 * batch, 6, 3), mask))
    # Total squared norm / number of free dimensions (N - 1)·3 is 1 on average.
    dof = 3 * (mask.sum(1) - 1)
    assert abs(np.sum(eps**2) / np.sum(dof) - 1.0) < 0.02
    # Per coordinate: Cov(eps_i, eps_j) = delta_ij - 1/n on real atoms (projected identity).
    x = eps[:batch, :n, :].transpose(0, 2, 1).reshape(-1, n)
    cov = x.T @ x / x.shape[0]
    np.testing.assert_allclose(cov, np.eye(n) - 1.0 / n, atol=0.03)


def test_zero_com_noise_shape_errors(keys):
    with pytest.raises(ShapeError, match="does not match"):
        gaussian.sample_zero_com_noise(next(keys), (2, 5, 3), jnp.ones((2, 4)))
    with pytest.raises(ShapeError, match=r"\[B, N, D\]"):
        gaussian.sample_zero_com_noise(next(keys), (5, 3), jnp.ones((5,)))


def test_q_sample_matches_closed_form(schedule, keys):
    mask = _mask([4, 6, 2], 6)
    z0 = gaussian.sample_zero_com_noise(next(keys), (3, 6, 3), mask)
    eps = gaussian.sample_zero_com_noise(next(keys), (3, 6, 3), mask)
    t = jnp.array([0, 417, T])
    z_t = gaussian.q_sample(z0, t, eps, schedule)
    alphas2 = polynomial_alphas2(T, 2.0, 1e-5)[np.asarray(t)]
    expected = np.sqrt(alphas2)[:, None, None] * np.asarray(z0) + np.sqrt(1 - alphas2)[
        :, None, None
    ] * np.asarray(eps)
    np.testing.assert_allclose(z_t, expected, atol=1e-6)
    np.testing.assert_allclose(masked_mean(z_t, mask), 0.0, atol=1e-6)
    assert np.all(np.asarray(z_t)[mask == 0] == 0.0)


def test_ldm_loss_value_and_padding_invariance(keys):
    counts = [3, 5]
    mask_small, mask_big = _mask(counts, 5), _mask(counts, 11)
    eps = jax.random.normal(next(keys), (2, 5, 3))
    eps_hat = jax.random.normal(next(keys), (2, 5, 3))
    eps, eps_hat = eps * mask_small[..., None], eps_hat * mask_small[..., None]
    loss_small = gaussian.ldm_loss(eps, eps_hat, mask_small)
    # Pad to 11 atoms with garbage in the padded rows: nothing may change.
    junk = jax.random.normal(next(keys), (2, 6, 3))
    loss_big = gaussian.ldm_loss(
        jnp.concatenate([eps, junk], 1), jnp.concatenate([eps_hat, -junk], 1), mask_big
    )
    np.testing.assert_allclose(loss_small, loss_big, rtol=1e-6)
    sq = np.sum((np.asarray(eps) - np.asarray(eps_hat)) ** 2, axis=(1, 2))
    np.testing.assert_allclose(loss_small, 0.5 * sq / (3 * np.array(counts)), rtol=1e-6)


def test_ldm_loss_constant_error():
    mask = _mask([2, 7], 7)
    eps = jnp.full((2, 7, 3), 0.3) * mask[..., None]
    loss = gaussian.ldm_loss(eps, jnp.zeros_like(eps), mask)
    np.testing.assert_allclose(loss, [0.5 * 0.09, 0.5 * 0.09], rtol=1e-6)
    with pytest.raises(ShapeError, match="differs"):
        gaussian.ldm_loss(eps, eps[:, :3], mask)


def test_transition_matches_closed_form(schedule):
    t = np.arange(1, T + 1)
    s = t - 1
    alphas2 = polynomial_alphas2(T, 2.0, 1e-5)
    sigma2_ts, sigma_ts, alpha_ts = gaussian.sigma_and_alpha_t_given_s(
        schedule.gamma(t), schedule.gamma(s)
    )
    np.testing.assert_allclose(alpha_ts, np.sqrt(alphas2[t] / alphas2[s]), rtol=1e-5)
    np.testing.assert_allclose(sigma2_ts, 1.0 - alphas2[t] / alphas2[s], rtol=2e-4, atol=1e-9)
    np.testing.assert_allclose(sigma_ts**2, sigma2_ts, rtol=1e-5)
    # Composition of Gaussians: sigma_t² = sigma²_{t|s} + alpha²_{t|s} sigma_s².
    recomposed = sigma2_ts + alpha_ts**2 * schedule.sigma2(s)
    np.testing.assert_allclose(recomposed, schedule.sigma2(t), rtol=2e-5)


def test_sample_timesteps_cover_both_ends(keys):
    t = np.asarray(gaussian.sample_timesteps(next(keys), 20000, 10))
    assert t.dtype == np.int32 and t.shape == (20000,)
    assert t.min() == 0 and t.max() == 10
    assert set(np.unique(t)) == set(range(11))
