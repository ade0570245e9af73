"""Tests for irgeodiff_jax.diffusion.sampler: oracle recovery, zero CoM, closed forms, no retrace.

The oracle denoiser returns the exact noise of the current state for a known zero-CoM z_0,
eps = (z_t - alpha_t z_0)/sigma_t. All sampler runs are float32: the oracle recovers z_0 to
~1e-7 in "mean" mode and the DDIM eta=0 path stays within ~3e-6 of its closed form, so float64
is not needed (it is used only in the coefficient identity test, to check them to 1e-10).
"""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from irgeodiff_jax.diffusion import sampler
from irgeodiff_jax.diffusion.gaussian import sample_zero_com_noise
from irgeodiff_jax.diffusion.sampler import SamplerError
from irgeodiff_jax.diffusion.schedules import polynomial_schedule
from irgeodiff_jax.utils.geometry import masked_mean

T = 1000
COUNTS = [12, 9, 5, 2, 12, 10, 7, 3]
N_MAX = 12


@pytest.fixture(scope="module")
def schedule():
    return polynomial_schedule(T=T)


@pytest.fixture(scope="module")
def problem(schedule):
    mask = jnp.asarray(np.arange(N_MAX)[None, :] < np.array(COUNTS)[:, None], jnp.float32)
    z0 = sample_zero_com_noise(jax.random.key(123), (len(COUNTS), N_MAX, 3), mask)

    def oracle(z_t, t):
        gamma = schedule.gamma_at(t)[:, None, None]
        alpha, sigma = jnp.sqrt(jax.nn.sigmoid(-gamma)), jnp.sqrt(jax.nn.sigmoid(gamma))
        return (z_t - alpha * z0) / sigma

    return mask, z0, oracle


def _final_noise_scale(schedule):
    return float(jnp.exp(0.5 * schedule.gamma(0)))  # sigma_0 / alpha_0


def _check_states(states, mask):
    """Every state has zero masked CoM and exactly zero padded rows."""
    stacked_mask = jnp.broadcast_to(mask, states.shape[:3])
    assert float(jnp.max(jnp.abs(masked_mean(states, stacked_mask)))) < 1e-5
    assert np.all(np.asarray(states)[:, np.asarray(mask) == 0] == 0.0)
    chex.assert_tree_all_finite(states)


def _check_recovery(x_mean, x_sample, z0, mask, schedule):
    np.testing.assert_allclose(x_mean, z0, atol=1e-4)
    noise = np.asarray(x_sample - z0)[np.asarray(mask) == 1]
    scale = _final_noise_scale(schedule)
    assert np.max(np.abs(noise)) < 5 * scale
    # Zero-CoM noise of std `scale` in (n - 1)·3 of the n·3 real coordinates.
    expected_rms = scale * np.sqrt(np.sum(np.array(COUNTS) - 1) / np.sum(COUNTS))
    assert 0.75 < np.sqrt(np.mean(noise**2)) / expected_rms < 1.25
    np.testing.assert_allclose(masked_mean(x_sample, mask), 0.0, atol=1e-6)


def _normalised_residual_variance(states, grid, z0, mask, schedule):
    alpha = np.asarray(schedule.alpha(grid))[:, None, None, None]
    sigma = np.asarray(schedule.sigma(grid))[:, None, None, None]
    residual = (np.asarray(states) - alpha * np.asarray(z0)[None]) / sigma
    dof = 3 * np.sum(np.asarray(mask).sum(1) - 1)
    return np.sum(residual**2, axis=(1, 2, 3)) / dof


def test_ancestral_oracle_recovers_z0_with_zero_com_states(schedule, problem):
    mask, z0, oracle = problem

    def run(key, mode):
        return sampler.ancestral_sample(
            oracle, key, mask, schedule, final_mode=mode, return_trajectory=True
        )

    run = jax.jit(run, static_argnums=1)
    key = jax.random.key(7)
    x_mean, states = run(key, "mean")
    x_sample, states_again = run(key, "sample")
    assert states.shape == (T + 1, len(COUNTS), N_MAX, 3)
    np.testing.assert_array_equal(states, states_again)  # the mode only changes the last step
    _check_states(states, mask)
    _check_recovery(x_mean, x_sample, z0, mask, schedule)
    # With the oracle, each z_s is distributed as alpha_s z0 + sigma_s eps (posterior sampling
    # keeps the forward marginals), so the normalised residual has unit variance.
    variance = _normalised_residual_variance(states, np.arange(T, -1, -1), z0, mask, schedule)
    assert 0.85 < variance.mean() < 1.15 and 0.5 < variance.min() and variance.max() < 1.6


def test_fast_sample_oracle_recovers_z0_with_zero_com_states(schedule, problem):
    mask, z0, oracle = problem
    num_steps = 50
    grid = sampler.strided_timesteps(T, num_steps)

    def run(key, eta, mode):  # eta is traced, so eta = 0 and eta = 1 share one compilation
        return sampler.fast_sample(
            oracle,
            key,
            mask,
            schedule,
            num_steps=num_steps,
            eta=eta,
            final_mode=mode,
            return_trajectory=True,
        )

    run = jax.jit(run, static_argnums=2)
    for eta in (0.0, 1.0):
        key = jax.random.key(11)
        x_mean, states = run(key, eta, "mean")
        x_sample, _ = run(key, eta, "sample")
        assert states.shape == (num_steps + 1, len(COUNTS), N_MAX, 3)
        _check_states(states, mask)
        _check_recovery(x_mean, x_sample, z0, mask, schedule)
        if eta == 0.0:
            # Deterministic DDIM with the oracle keeps the initial noise: z_tau = a z0 + s eps_T.
            alpha = np.asarray(schedule.alpha(grid))[:, None, None, None]
            sigma = np.asarray(schedule.sigma(grid))[:, None, None, None]
            eps_T = (np.asarray(states[0]) - alpha[0] * np.asarray(z0)) / sigma[0]
            np.testing.assert_allclose(states, alpha * np.asarray(z0) + sigma * eps_T, atol=1e-5)
        else:
            variance = _normalised_residual_variance(states, grid, z0, mask, schedule)
            assert 0.8 < variance.mean() < 1.2


@pytest.mark.slow
def test_fast_sample_with_all_steps_and_eta_one_is_ancestral(problem):
    mask, _, _ = problem
    schedule = polynomial_schedule(T=100)

    def denoise(z_t, t):  # any smooth function of the state and time
        return jnp.tanh(z_t) * (1.0 + t[:, None, None])

    key = jax.random.key(3)
    _, anc = sampler.ancestral_sample(denoise, key, mask, schedule, return_trajectory=True)
    _, fast = sampler.fast_sample(
        denoise, key, mask, schedule, num_steps=100, eta=1.0, return_trajectory=True
    )
    np.testing.assert_allclose(anc, fast, rtol=2e-5, atol=1e-5)


@pytest.mark.parametrize("eta", [0.0, 0.5, 1.0])
def test_step_coefficients_closed_forms(eta):
    with jax.enable_x64(True):
        schedule = polynomial_schedule(T=T, dtype=jnp.float64)
        t = np.arange(1, T + 1)
        for s in (t - 1, np.maximum(t - 37, 0)):  # single steps and strided jumps
            g_t, g_s = schedule.gamma(t), schedule.gamma(s)
            a_t, a_s = np.asarray(schedule.alpha(t)), np.asarray(schedule.alpha(s))
            s_t, s_s = np.asarray(schedule.sigma(t)), np.asarray(schedule.sigma(s))
            coef_z, coef_eps, noise = map(np.asarray, sampler.ddim_coefficients(g_t, g_s, eta))
            # Plugging z_t = a_t z0 + s_t eps gives z_s = a_s z0 + (...) eps + noise·xi:
            # the signal is kept exactly and the total noise variance is sigma_s².
            np.testing.assert_allclose(coef_z * a_t, a_s, rtol=1e-10)
            np.testing.assert_allclose((coef_z * s_t + coef_eps) ** 2 + noise**2, s_s**2, rtol=1e-9)
            var_ts = 1 - a_t**2 / a_s**2
            np.testing.assert_allclose(noise**2, eta**2 * var_ts * s_s**2 / s_t**2, rtol=1e-9)
            anc_z, anc_eps, anc_noise = map(np.asarray, sampler.ancestral_coefficients(g_t, g_s))
            # Ancestral mean with the oracle is the Gaussian posterior mean q(z_s | z_t, z0).
            np.testing.assert_allclose(
                anc_z + anc_eps / s_t, a_t / a_s * s_s**2 / s_t**2, rtol=1e-9
            )
            np.testing.assert_allclose(-anc_eps * a_t / s_t, a_s * var_ts / s_t**2, rtol=1e-9)
            np.testing.assert_allclose(anc_noise**2, var_ts * s_s**2 / s_t**2, rtol=1e-9)
            if eta == 1.0:
                np.testing.assert_allclose(coef_eps, anc_eps, rtol=1e-9)


def test_jitted_samplers_trace_once(problem):
    mask, _, _ = problem
    small = polynomial_schedule(T=20)

    def denoise(z_t, t):
        return 0.1 * z_t * t[:, None, None]

    @jax.jit
    @chex.assert_max_traces(n=1)
    def run(key):
        return (
            sampler.ancestral_sample(denoise, key, mask, small),
            sampler.fast_sample(denoise, key, mask, small, num_steps=5, eta=0.3),
        )

    first, second = run(jax.random.key(0)), run(jax.random.key(1))
    assert first[0].shape == first[1].shape == (len(COUNTS), N_MAX, 3)
    assert not np.allclose(first[0], second[0]) and not np.allclose(first[1], second[1])
    _check_states(jnp.stack([*first, *second]), mask)


def test_stateful_denoiser_carries_its_state(problem):
    """A step counter carried as ``aux`` (0 at the first step, K at the final one) scaling the
    output gives the samples of the stateless denoiser that reads the same factor off t."""
    mask, _, _ = problem
    k = 5

    def plain(z_t, t):  # on a K-step grid, step i has t = 1 - i / K (and t = 0 at the end)
        return jnp.tanh(z_t) * (1.0 - t[:, None, None])

    def counting(z_t, t, count):
        return jnp.tanh(z_t) * count / k, count + 1.0

    runs = (
        (sampler.fast_sample, polynomial_schedule(T=20), {"num_steps": k, "eta": 0.5}),
        (sampler.ancestral_sample, polynomial_schedule(T=k), {}),
    )
    for run, schedule, kw in runs:
        want = run(plain, jax.random.key(4), mask, schedule, **kw)
        got = run(counting, jax.random.key(4), mask, schedule, aux_init=jnp.float32(0.0), **kw)
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)


def test_strided_timesteps():
    np.testing.assert_array_equal(sampler.strided_timesteps(10, 10), np.arange(10, -1, -1))
    grid = sampler.strided_timesteps(T, 50)
    assert grid[0] == T and grid[-1] == 0 and len(grid) == 51
    assert np.all(np.diff(grid) == -20)
    uneven = sampler.strided_timesteps(T, 333)
    assert len(np.unique(uneven)) == 334 and np.all(np.diff(uneven) < 0)
    with pytest.raises(SamplerError, match=r"num_steps must lie in \[1, 1000\]"):
        sampler.strided_timesteps(T, 0)
    with pytest.raises(SamplerError, match="spacing must be one of"):
        sampler.strided_timesteps(T, 50, "cubic")


def test_quadratic_timesteps_put_more_steps_at_low_noise():
    np.testing.assert_array_equal(
        sampler.strided_timesteps(10, 10, "quadratic"), np.arange(10, -1, -1)
    )
    for total, k in [(1, 1), (7, 3), (20, 19), (1000, 1), (1000, 50), (1000, 100), (1000, 999)]:
        grid = sampler.strided_timesteps(total, k, "quadratic")
        assert len(grid) == k + 1 and grid[0] == total and grid[-1] == 0
        assert np.all(np.diff(grid) < 0)
    quad = sampler.strided_timesteps(T, 100, "quadratic")
    # Single steps up to t = 10, then T (i/K)^2 rounded (e.g. i = 20 -> 40, i = 50 -> 250).
    np.testing.assert_array_equal(quad[::-1][:11], np.arange(11))
    assert quad[::-1][20] == 40 and quad[::-1][50] == 250
    assert np.sum(quad <= 25) == 16 and np.sum(sampler.strided_timesteps(T, 100) <= 25) == 3


def test_fast_sample_on_the_quadratic_grid_recovers_z0(schedule, problem):
    mask, z0, oracle = problem
    for eta in (0.0, 1.0):
        kw = dict(num_steps=20, eta=eta, spacing="quadratic", return_trajectory=True)
        x_mean, states = sampler.fast_sample(
            oracle, jax.random.key(3), mask, schedule, final_mode="mean", **kw
        )
        x_sample, _ = sampler.fast_sample(oracle, jax.random.key(3), mask, schedule, **kw)
        assert states.shape == (21, len(COUNTS), N_MAX, 3)
        _check_states(states, mask)
        _check_recovery(x_mean, x_sample, z0, mask, schedule)


def test_bad_sampler_arguments(schedule, problem):
    mask, _, oracle = problem
    key = jax.random.key(0)
    with pytest.raises(SamplerError, match="final_mode must be one of"):
        sampler.ancestral_sample(oracle, key, mask, schedule, final_mode="only_mean")
    with pytest.raises(SamplerError, match="eta must lie in"):
        sampler.fast_sample(oracle, key, mask, schedule, eta=1.5)
    with pytest.raises(SamplerError, match=r"atom_mask must have shape \[B, N\]"):
        sampler.fast_sample(oracle, key, mask[..., None], schedule)
