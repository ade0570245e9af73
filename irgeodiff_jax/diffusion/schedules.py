"""Variance-preserving noise schedules for latent diffusion (pure numpy / jax.numpy, no Flax).

A schedule is a lookup table ``gamma[t]`` for the integer timesteps ``t = 0 … T``, with
``gamma = -log(alpha² / sigma²)`` (the negative log signal-to-noise ratio). Everything else
follows from it: ``sigma² = sigmoid(gamma)``, ``alpha² = sigmoid(-gamma)``, so
``alpha² + sigma² = 1`` holds exactly in the formulas (variance preserving), and
``snr = exp(-gamma)``.

The table is computed once in float64 with numpy and stored as float32 (or another dtype on
request). ``NoiseSchedule`` is a JAX pytree whose only leaf is the table, so it can be closed
over (the table becomes a compile-time constant) or passed to a jitted function.
"""

from __future__ import annotations

import dataclasses
import re

import jax
import jax.numpy as jnp
import numpy as np

_MIN_STEP_RATIO = 0.001  # successive alpha² ratios are clipped from below at this value


class ScheduleError(ValueError):
    """Raised for an invalid schedule specification or an out-of-range timestep."""


@dataclasses.dataclass(frozen=True, eq=False)
class NoiseSchedule:
    """A discrete VP noise schedule given by its ``gamma`` table.

    Attributes:
        gamma_table: ``[T + 1]`` array, ``gamma[t] = -log(alpha_t² / sigma_t²)``, increasing in t.
        num_steps: ``T``, the number of diffusion steps (static; not a pytree leaf).

    Methods taking ``t_int`` accept integer timesteps of any shape and return arrays of the
    same shape. Integer timesteps outside ``[0, T]`` raise ``ScheduleError`` when they are
    concrete and give NaN when traced (never a silently clamped value).
    """

    gamma_table: jax.Array | np.ndarray
    num_steps: int

    def gamma(self, t_int) -> jax.Array:
        """``gamma_t`` for integer timesteps ``t_int`` (any shape)."""
        _check_concrete_range(t_int, self.num_steps)
        table = jnp.asarray(self.gamma_table)
        t = jnp.asarray(t_int)
        valid = (t >= 0) & (t <= self.num_steps)
        values = jnp.take(table, jnp.clip(t, 0, self.num_steps))
        return jnp.where(valid, values, jnp.nan)

    def gamma_at(self, t_normalised) -> jax.Array:
        """``gamma`` at normalised times ``t ∈ [0, 1]``, looked up at index ``round(t·T)``."""
        t = jnp.asarray(t_normalised)
        index = jnp.round(t * self.num_steps).astype(jnp.int32)
        return self.gamma(index)

    def sigma2(self, t_int) -> jax.Array:
        """Noise variance ``sigma_t² = sigmoid(gamma_t)``."""
        return jax.nn.sigmoid(self.gamma(t_int))

    def alpha2(self, t_int) -> jax.Array:
        """Signal variance ``alpha_t² = sigmoid(-gamma_t)``."""
        return jax.nn.sigmoid(-self.gamma(t_int))

    def sigma(self, t_int) -> jax.Array:
        """Noise scale ``sigma_t``."""
        return jnp.sqrt(self.sigma2(t_int))

    def alpha(self, t_int) -> jax.Array:
        """Signal scale ``alpha_t``."""
        return jnp.sqrt(self.alpha2(t_int))

    def snr(self, t_int) -> jax.Array:
        """Signal-to-noise ratio ``alpha_t² / sigma_t² = exp(-gamma_t)``."""
        return jnp.exp(-self.gamma(t_int))


jax.tree_util.register_dataclass(
    NoiseSchedule, data_fields=["gamma_table"], meta_fields=["num_steps"]
)


def _check_concrete_range(t_int, num_steps: int) -> None:
    """Raise ``ScheduleError`` if a concrete timestep array lies outside ``[0, T]``."""
    if isinstance(t_int, jax.core.Tracer):
        return
    values = np.asarray(t_int)
    if not np.issubdtype(values.dtype, np.integer):
        raise ScheduleError(f"timesteps must be integers, got dtype {values.dtype}")
    if values.size and (values.min() < 0 or values.max() > num_steps):
        raise ScheduleError(
            f"timesteps must lie in [0, {num_steps}], got range [{values.min()}, {values.max()}]"
        )


def clip_step_ratios(alphas2: np.ndarray, min_ratio: float = _MIN_STEP_RATIO) -> np.ndarray:
    """Make ``alpha²`` numerically safe by bounding each step's ratio from below.

    With ``alpha²_{-1} := 1``, the ratios ``alpha²_t / alpha²_{t-1}`` are clipped to
    ``[min_ratio, 1]`` and multiplied back together, so no single step destroys more than
    ``1 - min_ratio`` of the signal (the last polynomial step would otherwise reach 0).

    Args:
        alphas2: ``[T + 1]`` float64 array of ``alpha²`` values, non-increasing.
        min_ratio: Lower bound on each successive ratio.

    Returns:
        ``[T + 1]`` float64 array of clipped ``alpha²``.
    """
    previous = np.concatenate([np.ones(1), alphas2[:-1]])
    ratios = np.clip(alphas2 / previous, min_ratio, 1.0)
    return np.cumprod(ratios)


def polynomial_alphas2(num_steps: int, power: float, precision: float) -> np.ndarray:
    """Float64 ``alpha²`` table of the polynomial schedule (see ``polynomial_schedule``)."""
    grid_size = num_steps + 1
    x = np.linspace(0.0, grid_size, grid_size, dtype=np.float64)
    alphas2 = (1.0 - (x / grid_size) ** power) ** 2
    alphas2 = clip_step_ratios(alphas2)
    return (1.0 - 2.0 * precision) * alphas2 + precision


def polynomial_schedule(
    T: int = 1000, power: float = 2.0, precision: float = 1e-5, dtype=jnp.float32
) -> NoiseSchedule:
    """The EDM/GeoLDM/IR-GeoDiff "polynomial_<power>" schedule.

    ``alpha²(t) = (1 - (x_t / (T + 1))^power)²`` on the grid ``x = linspace(0, T + 1, T + 1)``
    as in the reference code; since that grid has spacing ``(T + 1)/T`` this is
    ``(1 - (t/T)^power)²``, which reaches 0 at ``t = T``. Successive ratios are clipped at
    >= 0.001 (``clip_step_ratios``); then
    ``alpha² <- (1 - 2s)·alpha² + s`` with ``s = precision`` keeps both ``alpha²`` and
    ``sigma² = 1 - alpha²`` at least ``s``; finally ``gamma = -log(alpha² / sigma²)``.
    Computed in float64 and cast to ``dtype``. For the defaults, ``sigma_0 = 0.003162``,
    ``gamma_0 = -11.513`` and ``gamma_T = +11.513``.

    Args:
        T: Number of diffusion steps (the table has ``T + 1`` entries).
        power: Polynomial power (2 for "polynomial_2").
        precision: ``s`` above, in ``(0, 0.5)``.
        dtype: dtype of the stored table.

    Returns:
        The ``NoiseSchedule``.

    Raises:
        ScheduleError: for a non-positive ``T`` or ``power``, or ``precision`` outside (0, 0.5).
    """
    if not isinstance(T, int | np.integer) or T < 1:
        raise ScheduleError(f"T must be a positive integer, got {T!r}")
    if not power > 0:
        raise ScheduleError(f"power must be positive, got {power!r}")
    if not 0.0 < precision < 0.5:
        raise ScheduleError(f"precision must lie in (0, 0.5), got {precision!r}")
    alphas2 = polynomial_alphas2(int(T), float(power), float(precision))
    gamma = -(np.log(alphas2) - np.log1p(-alphas2))
    return NoiseSchedule(gamma_table=np.asarray(gamma, dtype=dtype), num_steps=int(T))


def schedule_from_name(name: str, T: int = 1000, precision: float = 1e-5) -> NoiseSchedule:
    """Build a schedule from its config name, e.g. ``"polynomial_2"``.

    Raises:
        ScheduleError: if the name is not of the form ``polynomial_<power>``.
    """
    match = re.fullmatch(r"polynomial_(\d+(?:\.\d+)?)", name)
    if match is None:
        raise ScheduleError(f"unknown noise schedule {name!r}; expected 'polynomial_<power>'")
    return polynomial_schedule(T=T, power=float(match.group(1)), precision=precision)


def schedule_from_config(diffusion_config) -> NoiseSchedule:
    """The schedule of a ``config.diffusion`` group (``schedule``, ``num_steps``, ``precision``)."""
    d = diffusion_config
    return schedule_from_name(d.schedule, T=int(d.num_steps), precision=d.precision)
