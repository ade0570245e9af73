"""Reverse-diffusion samplers for the coordinate latent (pure jax.numpy, no Flax).

Both samplers take a ``denoise_fn(z_t [B, N, D], t [B]) -> eps_hat [B, N, D]`` closure, where
``t = t_int / T`` is the normalised time in ``[0, 1]``. The caller binds the network parameters
and the (precomputed) spectrum conditioning into that closure.

* ``ancestral_sample``: the full T-step chain of EDM/GeoLDM/IR-GeoDiff, sampling
  ``p(z_s | z_t)`` for ``s = T-1 … 0``, ``t = s + 1``.
* ``fast_sample``: a DDIM-style sampler on a strided grid (uniform or quadratic) of K + 1
  timesteps ``T = τ_K > … > τ_0 = 0``, with the same epsilon-prediction network. ``eta = 0`` is
  deterministic; ``eta = 1`` uses the ancestral posterior variance on the strided grid (with
  ``K = T`` it is the ancestral sampler up to floating-point rounding).

Each sampler is one ``jax.lax.scan`` with static shapes, so it jits once per (shape, K).
Every state is kept in the zero-CoM subspace of the real atoms with zero padded rows: the noise
is drawn there and each new state is re-centred. After the chain, the final step maps ``z_0``
to ``x̂ = (z_0 - sigma_0 eps_hat) / alpha_0``, plus zero-CoM noise of std
``sigma_0 / alpha_0 = exp(½ gamma_0)`` in ``"sample"`` mode, or nothing in ``"mean"`` mode.

Stateful denoisers: with ``aux_init`` given, ``denoise_fn(z_t, t, aux) -> (eps_hat, aux)`` and
``aux`` is carried from step to step (self-conditioning carries the previous x̂0 this way).

PRNG use: ``key`` is split into (initial state, per-step keys, final noise); the per-step keys
are ``split(k_steps, K)``. Both samplers use the same layout, so for ``K = T`` and ``eta = 1``
they consume identical random numbers.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

from irgeodiff_jax.diffusion.gaussian import sample_zero_com_noise, sigma_and_alpha_t_given_s
from irgeodiff_jax.diffusion.schedules import NoiseSchedule
from irgeodiff_jax.utils.geometry import remove_mean_with_mask

DenoiseFn = Callable[[jax.Array, jax.Array], jax.Array]
FINAL_MODES = ("sample", "mean")


class SamplerError(ValueError):
    """Raised for invalid sampler arguments."""


SPACINGS = ("uniform", "quadratic")


def strided_timesteps(
    num_diffusion_steps: int, num_steps: int, spacing: str = "uniform"
) -> np.ndarray:
    """Integer grid ``T = τ_K > τ_{K-1} > … > τ_0 = 0`` of the fast sampler.

    ``"uniform"``: ``τ_i = round(T i / K)``. ``"quadratic"`` (the DDIM paper's other choice):
    ``τ_i = round(T (i / K)²)``, raised where needed to ``τ_{i-1} + 1`` so that consecutive
    points stay distinct; it spends more of the K steps at low noise, where a molecule's
    identity is decided (near ``t = 0`` the steps are single steps, as in the ancestral chain).

    Args:
        num_diffusion_steps: ``T``.
        num_steps: ``K``, the number of transitions, ``1 <= K <= T``.
        spacing: ``"uniform"`` or ``"quadratic"``.

    Returns:
        ``[K + 1]`` int32 numpy array, strictly decreasing, from ``T`` to ``0``.
    """
    if not 1 <= num_steps <= num_diffusion_steps:
        raise SamplerError(f"num_steps must lie in [1, {num_diffusion_steps}], got {num_steps}")
    if spacing not in SPACINGS:
        raise SamplerError(f"spacing must be one of {SPACINGS}, got {spacing!r}")
    if spacing == "uniform":
        grid = np.floor(np.linspace(num_diffusion_steps, 0, num_steps + 1) + 0.5).astype(np.int32)
        assert np.all(np.diff(grid) < 0), grid  # spacing T/K >= 1 keeps rounded values distinct
        return grid
    up = np.floor(num_diffusion_steps * np.linspace(0.0, 1.0, num_steps + 1) ** 2 + 0.5)
    up = up.astype(np.int64)
    for i in range(1, num_steps + 1):  # K <= T, so raising never passes T before i = K
        up[i] = max(up[i], up[i - 1] + 1)
    assert up[-1] == num_diffusion_steps and np.all(np.diff(up) > 0), up
    return up[::-1].astype(np.int32)


def _sigma(gamma: jax.Array) -> jax.Array:
    return jnp.sqrt(jax.nn.sigmoid(gamma))


def ancestral_coefficients(gamma_t, gamma_s):
    """Coefficients of the ancestral (EDM posterior) step ``t → s``.

    Args:
        gamma_t: ``gamma`` at the current (later) time, any shape.
        gamma_s: ``gamma`` at the next (earlier) time, same shape.

    Returns:
        ``(coef_z, coef_eps, noise_std)`` such that
        ``z_s = coef_z·z_t + coef_eps·eps_hat + noise_std·noise``.
    """
    sigma2_ts, sigma_ts, alpha_ts = sigma_and_alpha_t_given_s(gamma_t, gamma_s)
    sigma_t, sigma_s = _sigma(gamma_t), _sigma(gamma_s)
    coef_z = 1.0 / alpha_ts
    coef_eps = -sigma2_ts / (alpha_ts * sigma_t)
    noise_std = sigma_ts * sigma_s / sigma_t
    return coef_z, coef_eps, noise_std


def ddim_coefficients(gamma_t, gamma_s, eta):
    """Coefficients ``(coef_z, coef_eps, noise_std)`` of the DDIM step ``t → s`` (as above).

    The update is ``z_s = alpha_s x̂_0 + sqrt(sigma_s² - sigma_eta²) eps_hat + sigma_eta noise``
    with ``x̂_0 = (z_t - sigma_t eps_hat)/alpha_t``, ``alpha_s/alpha_t = 1/alpha_{t|s}`` and
    ``sigma_eta = eta · sigma_{t|s} sigma_s / sigma_t``. The square root is evaluated as
    ``sigma_s sqrt((1 - eta²) + eta² alpha²_{t|s} sigma_s² / sigma_t²)`` (same value, by
    ``sigma_t² = sigma²_{t|s} + alpha²_{t|s} sigma_s²``) to avoid cancellation.
    """
    _, sigma_ts, alpha_ts = sigma_and_alpha_t_given_s(gamma_t, gamma_s)
    sigma_t, sigma_s = _sigma(gamma_t), _sigma(gamma_s)
    kept = (1.0 - eta**2) + eta**2 * (alpha_ts * sigma_s / sigma_t) ** 2
    coef_z = 1.0 / alpha_ts
    coef_eps = sigma_s * jnp.sqrt(kept) - sigma_t / alpha_ts
    noise_std = eta * sigma_ts * sigma_s / sigma_t
    return coef_z, coef_eps, noise_std


def _check_common(atom_mask: jax.Array, final_mode: str) -> None:
    if atom_mask.ndim != 2:
        raise SamplerError(f"atom_mask must have shape [B, N], got {tuple(atom_mask.shape)}")
    if final_mode not in FINAL_MODES:
        raise SamplerError(f"final_mode must be one of {FINAL_MODES}, got {final_mode!r}")


def _final_step(denoise_fn, z0, aux, key, atom_mask, schedule, final_mode, dtype):
    """``x̂ = (z_0 - sigma_0 eps_hat)/alpha_0`` (+ zero-CoM noise of std exp(½ gamma_0))."""
    gamma_0 = schedule.gamma(jnp.int32(0)).astype(dtype)
    t_zero = jnp.zeros(z0.shape[:1], dtype)
    eps_hat = denoise_fn(z0, t_zero, aux)[0].astype(dtype)
    x = (z0 - _sigma(gamma_0) * eps_hat) / jnp.sqrt(jax.nn.sigmoid(-gamma_0))
    if final_mode == "sample":
        x = x + jnp.exp(0.5 * gamma_0) * sample_zero_com_noise(key, z0.shape, atom_mask, dtype)
    return remove_mean_with_mask(x, atom_mask)


def _run_chain(
    denoise_fn: DenoiseFn,
    key: jax.Array,
    atom_mask: jax.Array,
    schedule: NoiseSchedule,
    grid: np.ndarray,
    coefficients: Callable,
    final_mode: str,
    return_trajectory: bool,
    n_dims: int,
    dtype,
    aux_init=None,
):
    """Run the reverse chain along the descending integer ``grid`` (one ``lax.scan``)."""
    _check_common(atom_mask, final_mode)
    if aux_init is None:  # a plain denoiser: carry nothing

        def stateful(z_t, t, aux):
            return denoise_fn(z_t, t), aux

        aux_init = ()
    else:
        stateful = denoise_fn
    shape = (*atom_mask.shape, n_dims)
    num_transitions = len(grid) - 1
    k_init, k_steps, k_final = jax.random.split(key, 3)
    z_init = sample_zero_com_noise(k_init, shape, atom_mask, dtype)

    def step(carry, inputs):
        z_t, aux = carry
        t_int, s_int, step_key = inputs
        gamma_t = schedule.gamma(t_int).astype(dtype)
        gamma_s = schedule.gamma(s_int).astype(dtype)
        coef_z, coef_eps, noise_std = coefficients(gamma_t, gamma_s)
        t_norm = jnp.full(shape[:1], t_int.astype(dtype) / schedule.num_steps)
        eps_hat, aux = stateful(z_t, t_norm, aux)
        eps_hat = eps_hat.astype(dtype)
        noise = sample_zero_com_noise(step_key, shape, atom_mask, dtype)
        z_s = coef_z * z_t + coef_eps * eps_hat + noise_std * noise
        z_s = remove_mean_with_mask(z_s, atom_mask)
        return (z_s, aux), (z_s if return_trajectory else None)

    xs = (
        jnp.asarray(grid[:-1], jnp.int32),
        jnp.asarray(grid[1:], jnp.int32),
        jax.random.split(k_steps, num_transitions),
    )
    (z_last, aux_last), states = jax.lax.scan(step, (z_init, aux_init), xs)
    x = _final_step(stateful, z_last, aux_last, k_final, atom_mask, schedule, final_mode, dtype)
    if return_trajectory:
        return x, jnp.concatenate([z_init[None], states], axis=0)
    return x


def ancestral_sample(
    denoise_fn: DenoiseFn,
    key: jax.Array,
    atom_mask: jax.Array,
    schedule: NoiseSchedule,
    *,
    final_mode: str = "sample",
    return_trajectory: bool = False,
    n_dims: int = 3,
    dtype=jnp.float32,
    aux_init=None,
):
    """Full ancestral sampler (T denoiser calls in the chain plus one for the final step).

    For ``s = T-1 … 0`` and ``t = s + 1``:
    ``mu = z_t/alpha_{t|s} - sigma²_{t|s}/(alpha_{t|s} sigma_t) · eps_hat``,
    ``z_s = mu + (sigma_{t|s} sigma_s / sigma_t) · noise``, re-centred; ``z_T`` is zero-CoM
    N(0, I). Then the final step described in the module docstring.

    Args:
        denoise_fn: ``(z_t [B, N, D], t [B] in [0, 1]) -> eps_hat [B, N, D]``.
        key: PRNG key.
        atom_mask: ``[B, N]`` real-atom mask (1/0).
        schedule: Noise schedule with ``T`` steps.
        final_mode: ``"sample"`` (add the final noise) or ``"mean"`` (do not).
        return_trajectory: Also return the chain states.
        n_dims: ``D``, the coordinate dimension.
        dtype: Float dtype of the computation.
        aux_init: initial state of a stateful ``denoise_fn`` (module docstring); None: plain.

    Returns:
        ``x̂ [B, N, D]`` (zero CoM, zero padding); with ``return_trajectory`` the pair
        ``(x̂, states [T + 1, B, N, D])`` holding ``z_T, z_{T-1}, …, z_0``.

    Raises:
        SamplerError: for a bad ``atom_mask`` rank or ``final_mode``.
    """
    grid = np.arange(schedule.num_steps, -1, -1, dtype=np.int32)
    return _run_chain(
        denoise_fn,
        key,
        atom_mask,
        schedule,
        grid,
        ancestral_coefficients,
        final_mode,
        return_trajectory,
        n_dims,
        dtype,
        aux_init,
    )


def fast_sample(
    denoise_fn: DenoiseFn,
    key: jax.Array,
    atom_mask: jax.Array,
    schedule: NoiseSchedule,
    *,
    num_steps: int = 50,
    eta: float = 0.0,
    spacing: str = "uniform",
    final_mode: str = "sample",
    return_trajectory: bool = False,
    n_dims: int = 3,
    dtype=jnp.float32,
    aux_init=None,
):
    """DDIM-style sampler on ``strided_timesteps(T, num_steps, spacing)`` (K + 1 denoiser calls).

    For consecutive grid points ``t > s``:
    ``z_s = alpha_s x̂_0 + sqrt(sigma_s² - sigma_eta²) eps_hat + sigma_eta · noise`` with
    ``x̂_0 = (z_t - sigma_t eps_hat)/alpha_t`` and ``sigma_eta = eta sigma_{t|s} sigma_s/sigma_t``,
    re-centred. ``eta = 0`` is deterministic (the noise keys are still drawn); ``eta = 1`` gives
    the ancestral mean and variance for the jump ``t → s``.

    Args:
        denoise_fn: ``(z_t [B, N, D], t [B] in [0, 1]) -> eps_hat [B, N, D]``.
        key: PRNG key.
        atom_mask: ``[B, N]`` real-atom mask (1/0).
        schedule: Noise schedule with ``T`` steps.
        num_steps: ``K``, number of transitions (static), ``1 <= K <= T``.
        eta: Stochasticity in ``[0, 1]`` (a Python float or a traced scalar).
        spacing: ``"uniform"`` or ``"quadratic"`` grid (``strided_timesteps``).
        final_mode: ``"sample"`` or ``"mean"``.
        return_trajectory: Also return the chain states.
        n_dims: ``D``.
        dtype: Float dtype of the computation.
        aux_init: initial state of a stateful ``denoise_fn`` (module docstring); None: plain.

    Returns:
        ``x̂ [B, N, D]``; with ``return_trajectory`` also ``states [K + 1, B, N, D]`` holding
        the states at ``τ_K = T, …, τ_0 = 0``.

    Raises:
        SamplerError: for ``num_steps`` outside ``[1, T]``, an unknown ``spacing``, a concrete
            ``eta`` outside ``[0, 1]``, a bad ``atom_mask`` rank or ``final_mode``.
    """
    if isinstance(eta, int | float) and not 0.0 <= eta <= 1.0:
        raise SamplerError(f"eta must lie in [0, 1], got {eta}")
    grid = strided_timesteps(schedule.num_steps, num_steps, spacing)

    def coefficients(gamma_t, gamma_s):
        return ddim_coefficients(gamma_t, gamma_s, jnp.asarray(eta, dtype))

    return _run_chain(
        denoise_fn,
        key,
        atom_mask,
        schedule,
        grid,
        coefficients,
        final_mode,
        return_trajectory,
        n_dims,
        dtype,
        aux_init,
    )
