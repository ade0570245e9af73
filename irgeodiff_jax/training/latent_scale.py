"""Latent scale of the diffusion stage: the std of the encoder mean over training molecules.

With ``config.diffusion.normalize_latents`` the trainer calls ``estimate_latent_scale`` once,
when the diffusion stage starts from the autoencoder's parameters (not on resume: the value is
then restored with the checkpoint), and stores it in the autoencoder's frozen ``latent_scale``
parameter. ``models/chain.py`` divides the latent by it in training and multiplies it back
before decoding, so the diffusion works on unit-scale latents.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jax.experimental import multihost_utils

from irgeodiff_jax.models import chain as chain_lib


def latent_moments(chain: chain_lib.ModelChain, params: dict, batch: dict) -> jax.Array:
    """``[2]``: sum of squared encoder-mean coordinates over real atoms, and their count."""
    mask = batch["atom_mask"]
    enc = chain.encode_spectrum(params, batch["spectrum_tokens"], batch["formula_tokens"])
    z_h = chain.embed_atoms(params, batch["atom_types"], mask, enc)
    mu = chain.encode_mean(params, batch["positions"], z_h, mask)
    m = mask.astype(jnp.float32)[..., None]
    return jnp.stack([jnp.sum((mu * m) ** 2), 3.0 * jnp.sum(m)])


def estimate_latent_scale(chain, params: dict, batches) -> float:
    """RMS of ``mu_x`` coordinates over the real atoms of ``batches`` (all hosts pooled).

    ``mu_x`` has zero centre of mass per molecule, so this is its per-coordinate std.

    Raises:
        ValueError: if the batches hold no atom or the scale is not a positive finite number.
    """
    fn = jax.jit(lambda p, b: latent_moments(chain, p, b))
    totals = np.zeros(2)
    for batch in batches:
        totals += np.asarray(jax.device_get(fn(params, batch)), np.float64)
    if jax.process_count() > 1:
        totals = np.asarray(multihost_utils.process_allgather(totals)).sum(axis=0)
    if totals[1] <= 0:
        raise ValueError("latent scale: no real atom in the estimation batches")
    scale = float(np.sqrt(totals[0] / totals[1]))
    if not np.isfinite(scale) or scale <= 0:
        raise ValueError(f"latent scale: got {scale}; the autoencoder's latent is degenerate")
    return scale
