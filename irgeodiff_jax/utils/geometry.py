"""Geometry helpers shared by models, diffusion and tests (pure JAX).

Conventions: positions are ``[..., N, 3]`` arrays with an ``atom_mask`` of shape ``[..., N]``
(1 for real atoms, 0 for padding). Padded atoms always carry zero coordinates.
"""

import jax
import jax.numpy as jnp


def masked_mean(x: jax.Array, atom_mask: jax.Array) -> jax.Array:
    """Mean of ``x [..., N, D]`` over real atoms, shape ``[..., 1, D]``."""
    mask = atom_mask[..., None].astype(x.dtype)
    count = jnp.maximum(jnp.sum(mask, axis=-2, keepdims=True), 1.0)
    return jnp.sum(x * mask, axis=-2, keepdims=True) / count


def remove_mean_with_mask(x: jax.Array, atom_mask: jax.Array) -> jax.Array:
    """Subtract the centre of mass of real atoms; padded rows are set to zero."""
    mask = atom_mask[..., None].astype(x.dtype)
    return (x - masked_mean(x, atom_mask)) * mask


def pairwise_sq_dist(x: jax.Array) -> jax.Array:
    """Squared distances ``[..., N, N]`` between all pairs of ``x [..., N, 3]``."""
    diff = x[..., :, None, :] - x[..., None, :, :]
    return jnp.sum(diff**2, axis=-1)


def edge_mask(atom_mask: jax.Array) -> jax.Array:
    """``[..., N, N]`` mask of pairs of distinct real atoms."""
    m = atom_mask.astype(jnp.float32)
    n = atom_mask.shape[-1]
    return m[..., :, None] * m[..., None, :] * (1.0 - jnp.eye(n, dtype=jnp.float32))


def random_orthogonal(key: jax.Array, reflect: bool = False) -> jax.Array:
    """A Haar-random 3x3 rotation (det +1), or an improper one (det -1) if ``reflect``."""
    q, r = jnp.linalg.qr(jax.random.normal(key, (3, 3)))
    q = q * jnp.sign(jnp.diagonal(r))[None, :]
    q = q * jnp.sign(jnp.linalg.det(q))  # now a proper rotation
    return q * jnp.array([1.0, 1.0, -1.0])[None, :] if reflect else q
