"""Gaussian diffusion on zero-centre-of-mass coordinates (pure jax.numpy, no Flax).

Only the coordinate latent ``z_x [B, N, 3]`` is diffused. It lives in the linear subspace where
the masked centre of mass is zero and padded rows are zero, so all noise is drawn in that
subspace (``sample_zero_com_noise``). The forward process is ``z_t = alpha_t z_0 + sigma_t eps``
with ``alpha_t, sigma_t`` from a ``NoiseSchedule``.

Contract: inputs with zero masked CoM and zero padding give outputs with the same property;
everything is translation-free and E(3)-equivariant in the coordinates (the noise is isotropic).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from irgeodiff_jax.diffusion.schedules import NoiseSchedule
from irgeodiff_jax.utils.geometry import remove_mean_with_mask


class ShapeError(ValueError):
    """Raised when coordinate and mask shapes do not fit together."""


def _check_coords_and_mask(shape: tuple[int, ...], atom_mask: jax.Array, name: str) -> None:
    if len(shape) != 3:
        raise ShapeError(f"{name} must have shape [B, N, D], got {tuple(shape)}")
    if tuple(atom_mask.shape) != tuple(shape[:2]):
        raise ShapeError(
            f"atom_mask shape {tuple(atom_mask.shape)} does not match {name} shape {tuple(shape)}"
        )


def sample_zero_com_noise(
    key: jax.Array, shape: tuple[int, ...], atom_mask: jax.Array, dtype=jnp.float32
) -> jax.Array:
    """Standard Gaussian noise projected onto the zero-CoM subspace of the real atoms.

    For a molecule with n real atoms this is an isotropic unit Gaussian in the
    ``(n - 1)·D``-dimensional subspace: per-coordinate variance ``(n - 1) / n``.

    Args:
        key: PRNG key.
        shape: ``(B, N, D)``.
        atom_mask: ``[B, N]``, 1 for real atoms, 0 for padding.
        dtype: Float dtype of the result.

    Returns:
        ``[B, N, D]`` noise with zero masked mean and zero padded rows.

    Raises:
        ShapeError: if ``shape`` is not 3-D or does not match ``atom_mask``.
    """
    _check_coords_and_mask(tuple(shape), atom_mask, "shape")
    eps = jax.random.normal(key, tuple(shape), dtype=dtype)
    return remove_mean_with_mask(eps, atom_mask)


def _per_example(values: jax.Array, ndim: int) -> jax.Array:
    """Reshape ``[B]`` scalars so they broadcast against a ``[B, ...]`` array of rank ``ndim``."""
    return jnp.reshape(values, values.shape + (1,) * (ndim - values.ndim))


def q_sample(z0: jax.Array, t_int: jax.Array, eps: jax.Array, schedule: NoiseSchedule) -> jax.Array:
    """Forward diffusion ``z_t = alpha_t z_0 + sigma_t eps``.

    Args:
        z0: ``[B, N, D]`` clean latent coordinates (zero CoM, zero padding).
        t_int: ``[B]`` integer timesteps in ``[0, T]``.
        eps: ``[B, N, D]`` zero-CoM noise (``sample_zero_com_noise``).
        schedule: The noise schedule.

    Returns:
        ``[B, N, D]`` noisy latent, zero-CoM if ``z0`` and ``eps`` are.
    """
    if z0.shape != eps.shape:
        raise ShapeError(f"z0 shape {z0.shape} differs from eps shape {eps.shape}")
    alpha = _per_example(schedule.alpha(t_int), z0.ndim).astype(z0.dtype)
    sigma = _per_example(schedule.sigma(t_int), z0.ndim).astype(z0.dtype)
    return alpha * z0 + sigma * eps


def sample_timesteps(key: jax.Array, batch_size: int, num_steps: int) -> jax.Array:
    """Training timesteps ``t ~ U{0, …, T}`` (the t = 0 term included), shape ``[B]`` int32."""
    return jax.random.randint(key, (batch_size,), 0, num_steps + 1, dtype=jnp.int32)


def ldm_loss(eps: jax.Array, eps_hat: jax.Array, atom_mask: jax.Array) -> jax.Array:
    """Per-molecule latent-diffusion loss ``½ Σ_real (eps - eps_hat)² / (D·n)``.

    ``n`` is the number of REAL atoms of each molecule and only real rows are summed, so the
    loss does not depend on the amount of padding. This deviates on purpose from the reference
    code, which divides by ``3·N_pad`` (the padded size of the batch): there, the same molecule
    gets a smaller loss in a batch with a larger molecule.

    Args:
        eps: ``[B, N, D]`` true noise.
        eps_hat: ``[B, N, D]`` predicted noise.
        atom_mask: ``[B, N]``.

    Returns:
        ``[B]`` losses (take the mean for the batch loss).
    """
    if eps.shape != eps_hat.shape:
        raise ShapeError(f"eps shape {eps.shape} differs from eps_hat shape {eps_hat.shape}")
    _check_coords_and_mask(eps.shape, atom_mask, "eps")
    mask = atom_mask.astype(eps.dtype)[..., None]
    sq_err = jnp.sum(mask * (eps - eps_hat) ** 2, axis=(1, 2))
    num_real = jnp.maximum(jnp.sum(atom_mask.astype(eps.dtype), axis=1), 1.0)
    return 0.5 * sq_err / (eps.shape[-1] * num_real)


def sigma_and_alpha_t_given_s(
    gamma_t: jax.Array, gamma_s: jax.Array
) -> tuple[jax.Array, jax.Array, jax.Array]:
    """Parameters of the transition ``q(z_t | z_s) = N(alpha_{t|s} z_s, sigma²_{t|s} I)``, s < t.

    ``sigma²_{t|s} = -expm1(softplus(gamma_s) - softplus(gamma_t))`` and
    ``alpha_{t|s} = exp(½ (log sigmoid(-gamma_t) - log sigmoid(-gamma_s)))``, both evaluated in
    log space for accuracy near t ≈ s.

    Args:
        gamma_t: ``gamma`` at the later time (any shape).
        gamma_s: ``gamma`` at the earlier time (same shape).

    Returns:
        ``(sigma2_t_given_s, sigma_t_given_s, alpha_t_given_s)``, each shaped like the inputs.
    """
    sigma2_t_given_s = -jnp.expm1(jax.nn.softplus(gamma_s) - jax.nn.softplus(gamma_t))
    log_alpha2_t = jax.nn.log_sigmoid(-gamma_t)
    log_alpha2_s = jax.nn.log_sigmoid(-gamma_s)
    alpha_t_given_s = jnp.exp(0.5 * (log_alpha2_t - log_alpha2_s))
    return sigma2_t_given_s, jnp.sqrt(sigma2_t_given_s), alpha_t_given_s
