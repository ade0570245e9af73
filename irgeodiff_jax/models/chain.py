"""The one model chain that training and sampling share (method.md §3–§6).

spectrum → τθ encoding → atom embedding ``z_h`` → (positions ⇄ unit-scale latent) and the
denoiser's noise prediction. ``training/losses.py`` and ``sampling/generate.py`` call these
functions and nothing else of the modules, so a change to the chain (the latent scale, the
network's target) is made here once.

Latent scale: the autoencoder's frozen parameter ``latent_scale`` (1 = the paper's recipe) maps
the encoder mean to the diffusion latent, ``z = mu_x / latent_scale``, and back before
decoding, ``decode(z · latent_scale)``. The trainer sets it after the autoencoder stage when
``config.diffusion.normalize_latents`` is on (per-coordinate std of ``mu_x`` over real atoms of
training molecules), so the diffusion sees unit-scale latents; it is saved with every
checkpoint of the diffusion stage.

Target: the denoiser network's raw output ``out`` is read as ε (the paper), as ``x0 - z_t``
(x0-prediction: the EGNN moves ``z_t`` onto the clean latent) or as ``v = α ε - σ z0``;
``predict`` always returns ε̂ (and x̂0), so the samplers do not depend on the target.

Guidance: a denoiser trained with ``diffusion.condition_dropout`` also knows the null condition
(``null_encoding``); the samplers then mix ``ε̂_null + w (ε̂ - ε̂_null)`` (classifier-free
guidance, ``w`` = ``SamplerSettings.guidance``; 1 = no guidance).
"""

from __future__ import annotations

import dataclasses

import flax.linen as nn
import jax
import jax.numpy as jnp

from irgeodiff_jax.diffusion.schedules import NoiseSchedule
from irgeodiff_jax.utils.geometry import remove_mean_with_mask

TARGETS = ("eps", "x0", "v")
# Bound on |x̂0| from an ε-prediction near t = 1 (unit-scale latents lie well inside it).
X0_CLIP = 10.0


class ChainError(ValueError):
    """Bad chain settings (one-line reason)."""


def null_encoding(encoding, keep=None):
    """The null spectral condition of classifier-free guidance.

    The encoding with its tokens zeroed: every molecule's, or where ``keep [B]`` is False. The
    token mask stays, so attention stays defined; every cross-attention key and value is then
    its bias, the same for all spectra.
    """
    if keep is None:
        keep = jnp.zeros(encoding.mask.shape[:1], bool)
    tokens = jnp.where(keep[:, None, None], encoding.tokens, jnp.zeros((), encoding.tokens.dtype))
    return encoding.replace(tokens=tokens)


def _rngs(rng):
    return None if rng is None else {"dropout": rng}


@dataclasses.dataclass(frozen=True)
class ModelChain:
    """The three modules with the diffusion settings that fix how they are composed.

    Attributes:
        models: ``factory.create_models`` output (``classifier``, ``autoencoder``, ``denoiser``).
        schedule: the noise schedule (needed to read x0 / v targets as ε); None before diffusion.
        target: what the denoiser network predicts: ``"eps"``, ``"x0"`` or ``"v"``.
    """

    models: dict[str, nn.Module]
    schedule: NoiseSchedule | None = None
    target: str = "eps"

    def __post_init__(self):
        if self.target not in TARGETS:
            raise ChainError(f"diffusion.target must be one of {TARGETS}, got {self.target!r}")

    # ------------------------------------------------------------------ spectrum and atoms

    def encode_spectrum(self, params, spectrum_tokens, formula_tokens, *, deterministic=True,
                        rng=None):  # fmt: skip
        """τθ encoding of ``[B, L]`` spectrum and ``[B, F]`` formula tokens."""
        return self.models["classifier"].apply(
            {"params": params["classifier"]}, spectrum_tokens, formula_tokens,
            deterministic=deterministic, method="encode", rngs=_rngs(rng),
        )  # fmt: skip

    def classify(self, params, encoding, *, deterministic=True, rng=None) -> jax.Array:
        """Functional-group logits ``[B, m]`` (float32) of an encoding."""
        logits = self.models["classifier"].apply(
            {"params": params["classifier"]}, encoding,
            deterministic=deterministic, method="classify", rngs=_rngs(rng),
        )  # fmt: skip
        return logits.astype(jnp.float32)

    def embed_atoms(self, params, atom_types, atom_mask, encoding, *, deterministic=True,
                    rng=None) -> jax.Array:  # fmt: skip
        """Spectrum-conditioned atom features ``z_h [B, N, 16]``."""
        return self.models["autoencoder"].apply(
            {"params": params["autoencoder"]}, atom_types, atom_mask, encoding,
            deterministic=deterministic, method="embed_atoms", rngs=_rngs(rng),
        )  # fmt: skip

    # ------------------------------------------------------------------ positions ⇄ latent

    def encode_mean(self, params, x, z_h, atom_mask) -> jax.Array:
        """The encoder mean ``mu_x [B, N, 3]`` in Å-like units (the AE stage's latent)."""
        return self.models["autoencoder"].apply(
            {"params": params["autoencoder"]}, x, z_h, atom_mask, method="encode"
        )

    def decode_mean(self, params, mu_x, z_h, atom_mask) -> jax.Array:
        """Positions ``[B, N, 3]`` from an encoder-scale latent."""
        return self.models["autoencoder"].apply(
            {"params": params["autoencoder"]}, mu_x, z_h, atom_mask, method="decode"
        )

    @staticmethod
    def latent_scale(params) -> jax.Array:
        """The stored latent scale (a scalar; 1 unless the trainer normalised the latents)."""
        return jnp.asarray(params["autoencoder"]["latent_scale"], jnp.float32)

    def encode_latent(self, params, x, z_h, atom_mask) -> jax.Array:
        """The diffusion latent ``mu_x / latent_scale``."""
        return self.encode_mean(params, x, z_h, atom_mask) / self.latent_scale(params)

    def decode_latent(self, params, z, z_h, atom_mask) -> jax.Array:
        """Positions from a diffusion latent: ``decode(z · latent_scale)``."""
        return self.decode_mean(params, z * self.latent_scale(params), z_h, atom_mask)

    # ------------------------------------------------------------------ denoiser

    def prepare(self, params, encoding):
        """The denoiser's per-spectrum condition (every cross-attention K/V), computed once."""
        return self.models["denoiser"].apply(
            {"params": params["denoiser"]}, encoding, method="prepare"
        )

    @property
    def self_conditioning(self) -> bool:
        """Whether the denoiser reads a previous clean-latent estimate ``z_sc``."""
        return bool(getattr(self.models["denoiser"], "self_condition", False))

    def network(self, params, z_t, t, z_h, atom_mask, cond, *, deterministic=True, rng=None,
                z_sc=None):  # fmt: skip
        """The denoiser network's raw output ``[B, N, 3]`` (its meaning depends on ``target``)."""
        return self.models["denoiser"].apply(
            {"params": params["denoiser"]}, z_t, t, z_h, atom_mask, cond,
            deterministic=deterministic, rngs=_rngs(rng), z_sc=z_sc,
        )  # fmt: skip

    def alpha_sigma(self, t) -> tuple[jax.Array, jax.Array]:
        """``(alpha_t, sigma_t)`` ``[B, 1, 1]`` at normalised times ``t [B]``."""
        if self.schedule is None:
            raise ChainError("this chain has no noise schedule")
        gamma = self.schedule.gamma_at(t).astype(jnp.float32)
        alpha = jnp.sqrt(jax.nn.sigmoid(-gamma))[:, None, None]
        sigma = jnp.sqrt(jax.nn.sigmoid(gamma))[:, None, None]
        return alpha, sigma

    def output_to_eps(self, out, z_t, t, atom_mask) -> jax.Array:
        """ε̂ from the network output (identity for the ε target)."""
        if self.target == "eps":
            return out
        alpha, sigma = self.alpha_sigma(t)
        if self.target == "x0":
            eps = (z_t - alpha * (z_t + out)) / sigma
        else:  # v = alpha eps - sigma z0  =>  eps = sigma z_t + alpha v
            eps = sigma * z_t + alpha * out
        return remove_mean_with_mask(jnp.where(atom_mask[..., None], eps, 0.0), atom_mask)

    def output_to_x0(self, out, z_t, t, atom_mask) -> jax.Array:
        """The clean-latent estimate x̂0 from the network output (for self-conditioning)."""
        if self.target == "x0":
            x0 = z_t + out
        else:
            alpha, sigma = self.alpha_sigma(t)
            if self.target == "v":
                x0 = alpha * z_t - sigma * out
            else:  # (z_t - σ ε̂) / α, with α = 0.003 at t = 1 under polynomial_2: clipped
                x0 = jnp.clip((z_t - sigma * out) / alpha, -X0_CLIP, X0_CLIP)
        return remove_mean_with_mask(jnp.where(atom_mask[..., None], x0, 0.0), atom_mask)

    def target_value(self, z0, eps, t) -> jax.Array:
        """What the network should output for clean latent ``z0`` and noise ``eps`` at ``t``."""
        if self.target == "eps":
            return eps
        alpha, sigma = self.alpha_sigma(t)
        z_t = alpha * z0 + sigma * eps
        return z0 - z_t if self.target == "x0" else alpha * eps - sigma * z0

    def predict(self, params, z_t, t, z_h, atom_mask, cond, *, deterministic=True, rng=None,
                z_sc=None) -> tuple[jax.Array, jax.Array]:  # fmt: skip
        """``(ε̂, x̂0)`` ``[B, N, 3]`` each for the samplers, whatever the network's target
        (``z_sc``: the self-conditioning input, ignored by a denoiser without it)."""
        mask = atom_mask.astype(bool)
        out = self.network(params, z_t, t, z_h, atom_mask, cond,
                           deterministic=deterministic, rng=rng, z_sc=z_sc)  # fmt: skip
        return self.output_to_eps(out, z_t, t, mask), self.output_to_x0(out, z_t, t, mask)
