"""Tests for irgeodiff_jax.diffusion.schedules (closed forms and reference constants)."""

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from irgeodiff_jax.diffusion import schedules
from irgeodiff_jax.diffusion.schedules import ScheduleError, polynomial_schedule

T = 1000


@pytest.fixture(scope="module")
def schedule():
    return polynomial_schedule(T=T, power=2, precision=1e-5)


def test_reference_constants(schedule):
    # Values computed from the reference implementation's formulas (reference-notes §1.7).
    assert abs(float(schedule.sigma(0)) - 0.003162) < 1e-6
    assert abs(float(schedule.gamma(0)) - (-11.513)) < 1e-3
    assert abs(float(schedule.gamma(T)) - 11.513) < 1e-3
    assert abs(float(schedule.alpha(T)) - 0.00316) < 1e-5


def test_table_shape_dtype_and_pytree(schedule):
    assert schedule.gamma_table.shape == (T + 1,)
    assert schedule.gamma_table.dtype == np.float32
    assert schedule.num_steps == T
    assert len(jax.tree_util.tree_leaves(schedule)) == 1
    sigma_jit = jax.jit(lambda sch, t: sch.sigma(t))(schedule, jnp.arange(5))
    np.testing.assert_array_equal(sigma_jit, schedule.sigma(jnp.arange(5)))
    assert polynomial_schedule(T=10, dtype=jnp.float64).gamma_table.dtype == np.float64


def test_variance_preserving_and_monotone(schedule):
    t = np.arange(T + 1)
    np.testing.assert_allclose(schedule.alpha2(t) + schedule.sigma2(t), 1.0, atol=1e-6)
    np.testing.assert_allclose(schedule.alpha(t) ** 2, schedule.alpha2(t), rtol=1e-5)
    np.testing.assert_allclose(schedule.snr(t), schedule.alpha2(t) / schedule.sigma2(t), rtol=1e-4)
    assert np.all(np.diff(np.asarray(schedule.gamma(t))) > 0)
    assert np.all(np.diff(np.asarray(schedule.alpha(t))) < 0)


def test_alphas2_match_closed_form():
    s = 1e-5
    alphas2 = schedules.polynomial_alphas2(T, 2.0, s)
    # linspace(0, T + 1, T + 1) / (T + 1) is i / T for i = 0 … T (spacing (T + 1) / T).
    raw = (1.0 - (np.arange(T + 1) / T) ** 2) ** 2
    # Every step but the last keeps a ratio above 0.001, so only the last one is clipped.
    np.testing.assert_allclose(alphas2[:T], (1 - 2 * s) * raw[:T] + s, rtol=1e-12)
    assert raw[T] == 0.0
    np.testing.assert_allclose(alphas2[T], (1 - 2 * s) * 0.001 * raw[T - 1] + s, rtol=1e-12)
    gamma = polynomial_schedule(T=T).gamma_table
    np.testing.assert_allclose(gamma, np.log((1 - alphas2) / alphas2), rtol=1e-6, atol=1e-5)


def test_clip_step_ratios_bounds_each_step():
    clipped = schedules.clip_step_ratios(np.array([1.0, 0.5, 1e-6, 0.0]))
    np.testing.assert_allclose(clipped, [1.0, 0.5, 0.5 * 0.001, 0.5 * 1e-6])


def test_gamma_at_rounds_normalised_time(schedule):
    t = jnp.array([0.0, 0.5, 0.5004, 0.4996, 1.0])
    expected = schedule.gamma(jnp.array([0, 500, 500, 500, T]))
    np.testing.assert_array_equal(schedule.gamma_at(t), expected)


def test_out_of_range_timesteps(schedule):
    with pytest.raises(ScheduleError, match=r"must lie in \[0, 1000\]"):
        schedule.gamma(T + 1)
    with pytest.raises(ScheduleError, match=r"must lie in \[0, 1000\]"):
        schedule.sigma(np.array([3, -1]))
    with pytest.raises(ScheduleError, match="must be integers"):
        schedule.gamma(np.array([0.5]))
    traced = jax.jit(schedule.gamma)(jnp.array([T + 1, -1, 3]))
    assert np.isnan(traced[0]) and np.isnan(traced[1]) and np.isfinite(traced[2])


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"T": 0}, "T must be a positive integer"),
        ({"T": 10.0}, "T must be a positive integer"),
        ({"power": 0.0}, "power must be positive"),
        ({"precision": 0.5}, "precision must lie in"),
    ],
)
def test_bad_schedule_arguments(kwargs, message):
    with pytest.raises(ScheduleError, match=message):
        polynomial_schedule(**kwargs)


def test_schedule_from_name():
    by_name = schedules.schedule_from_name("polynomial_2", T=50)
    np.testing.assert_array_equal(by_name.gamma_table, polynomial_schedule(T=50).gamma_table)
    cubic = schedules.schedule_from_name("polynomial_3", T=50)
    assert not np.allclose(cubic.gamma_table, by_name.gamma_table)
    with pytest.raises(ScheduleError, match="unknown noise schedule 'cosine'"):
        schedules.schedule_from_name("cosine")


def test_schedule_from_config_reads_the_diffusion_group():
    group = ml_collections.ConfigDict(
        {"schedule": "polynomial_3", "num_steps": 40, "precision": 1e-4}
    )
    from_config = schedules.schedule_from_config(group)
    expected = polynomial_schedule(T=40, power=3.0, precision=1e-4)
    assert from_config.num_steps == 40
    np.testing.assert_array_equal(from_config.gamma_table, expected.gamma_table)
