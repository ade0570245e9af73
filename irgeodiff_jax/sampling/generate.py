"""Batched conditional sampling of 3D geometries from spectra (pure, jitted).

``make_generate_fn`` builds one jitted function that, for a batch of B spectra with known atom
types, runs (method.md §6):

1. the spectral encoder τθ once per spectrum (``SpectralClassifier.encode``);
2. the autoencoder's atom embedding ``z_h`` and the denoiser's prepared condition (every
   cross-attention K/V) once per spectrum (all model calls go through ``models/chain.py``);
3. the reverse diffusion for k samples per spectrum (with ``SamplerSettings.guidance`` != 1,
   each step also runs the denoiser under the null condition and mixes the two, classifier-free
   guidance): a ``vmap`` over spectra of a ``vmap``
   over samples of the sampler (one ``lax.scan``). The inner ``vmap`` broadcasts the
   per-spectrum condition to the k samples, so it is never copied k times in memory;
4. the AE decoder on the sampled latents -> positions ``[B, k, N, 3]`` (Å, zero CoM);
5. optionally one extra denoiser pass at ``t = 0`` on sample 0 of every spectrum, collecting
   the per-layer atom→spectrum and edge→spectrum cross-attention weights (method.md §10).

Randomness: sample ``j`` of a spectrum uses ``fold_in(spectrum_key, j)`` and draws its noise with
its own key for a batch of one, so a sample depends only on (spectrum key, j) — not on the
batch it is in, its position, or k (the first k' samples of a run with k > k' equal a run with
k'). ``spectrum_keys(seed, ids)`` derives the spectrum keys from (seed, id) only.
"""

import dataclasses
from collections.abc import Callable

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from irgeodiff_jax.diffusion import sampler as sampler_lib
from irgeodiff_jax.diffusion.schedules import NoiseSchedule
from irgeodiff_jax.models.chain import ModelChain, null_encoding

SAMPLERS = ("ancestral", "fast")
_ATOM_BRANCH, _EDGE_BRANCH = "atom_cross_attention", "edge_cross_attention"


class GenerateError(ValueError):
    """Bad sampling settings or inputs (one-line reason)."""


@dataclasses.dataclass(frozen=True)
class SamplerSettings:
    """Which reverse chain to run.

    Attributes:
        name: "ancestral" (T steps, EDM) or "fast" (DDIM-style on ``steps`` strided steps).
        steps: number of transitions of the fast sampler (ignored by "ancestral").
        eta: stochasticity of the fast sampler in [0, 1] (0: deterministic DDIM).
        final_mode: "sample" (EDM: final zero-CoM noise of std exp(γ₀/2)) or "mean".
        guidance: classifier-free guidance weight ``w >= 0``: ε̂ = ε̂_null + w (ε̂ - ε̂_null),
            ε̂_null under ``chain.null_encoding``. 1 (default): the conditional ε̂ alone, one
            denoiser call per step; otherwise two. Meant for models trained with
            ``diffusion.condition_dropout > 0``.
        guidance_interval: ``(lo, hi)``: guidance is applied only at normalised times
            ``lo < t <= hi`` (elsewhere the weight is 1), as in guidance limited to an interval
            (Kynkäänniemi et al., 2024); default ``(0, 1)``: at every step but the final one.
        spacing: the fast sampler's timestep grid, "uniform" or "quadratic" (more steps at low
            noise; ``diffusion/sampler.py``, ``strided_timesteps``).
    """

    name: str = "fast"
    steps: int = 50
    eta: float = 0.0
    final_mode: str = "sample"
    guidance: float = 1.0
    guidance_interval: tuple[float, float] = (0.0, 1.0)
    spacing: str = "uniform"

    def num_steps(self, schedule: NoiseSchedule) -> int:
        """Denoiser steps in the chain (T for the ancestral sampler)."""
        return int(schedule.num_steps) if self.name == "ancestral" else int(self.steps)

    def check(self, schedule: NoiseSchedule) -> None:
        if self.name not in SAMPLERS:
            raise GenerateError(f"sampler must be one of {SAMPLERS}, got {self.name!r}")
        if self.name == "fast" and not 1 <= self.steps <= schedule.num_steps:
            raise GenerateError(
                f"--steps must be in [1, {schedule.num_steps}] for the fast sampler, "
                f"got {self.steps}"
            )
        if not 0.0 <= self.eta <= 1.0:
            raise GenerateError(f"eta must be in [0, 1], got {self.eta}")
        if self.spacing not in sampler_lib.SPACINGS:
            raise GenerateError(
                f"spacing must be one of {sampler_lib.SPACINGS}, got {self.spacing!r}"
            )
        if not (np.isfinite(self.guidance) and self.guidance >= 0.0):
            raise GenerateError(f"guidance must be a finite number >= 0, got {self.guidance}")
        lo, hi = self.guidance_interval
        if not 0.0 <= lo < hi <= 1.0:
            raise GenerateError(f"guidance interval must satisfy 0 <= lo < hi <= 1, got {lo}, {hi}")


ANCESTRAL = SamplerSettings("ancestral")


@dataclasses.dataclass(frozen=True)
class GenerateInputs:
    """One batch of B spectra with known atoms (numpy or jax arrays).

    Attributes:
        spectrum_tokens: [B, L] int32 spectrum tokens.
        formula_tokens: [B, F] int32 formula tokens.
        atom_types: [B, N] int32 type indices (any valid index on padding).
        atom_mask: [B, N] bool; every row needs at least one real atom.
        keys: [B] PRNG keys (``spectrum_keys``), one per spectrum.
    """

    spectrum_tokens: np.ndarray
    formula_tokens: np.ndarray
    atom_types: np.ndarray
    atom_mask: np.ndarray
    keys: jax.Array


jax.tree_util.register_dataclass(
    GenerateInputs,
    data_fields=["spectrum_tokens", "formula_tokens", "atom_types", "atom_mask", "keys"],
    meta_fields=[],
)


@jax.jit
def _keys_from_words(root: jax.Array, lo: jax.Array, hi: jax.Array) -> jax.Array:
    fold = lambda a, b: jax.random.fold_in(jax.random.fold_in(root, a), b)  # noqa: E731
    return jax.vmap(fold)(lo, hi)


def spectrum_keys(seed: int, ids) -> jax.Array:
    """[B] typed PRNG keys, a function of (seed, id) only.

    Key b is ``fold_in(fold_in(key(seed), lo32(id_b)), hi32(id_b))``: the 64-bit id is folded
    in as two 32-bit words, so ids above 2**32 stay distinct.

    Args:
        seed: run seed.
        ids: [B] non-negative integer spectrum ids.
    """
    ids = np.asarray(ids)
    if ids.ndim != 1 or not np.issubdtype(ids.dtype, np.integer) or np.any(ids < 0):
        raise GenerateError(f"ids must be a 1-D array of non-negative integers, got {ids}")
    ids = ids.astype(np.uint64)
    lo = (ids & np.uint64(0xFFFFFFFF)).astype(np.uint32)
    hi = (ids >> np.uint64(32)).astype(np.uint32)
    return _keys_from_words(jax.random.key(int(seed)), lo, hi)


def _add_axis(tree):
    return jax.tree_util.tree_map(lambda x: x[None], tree)


def _cross_attention_maps(intermediates: dict, branch: str) -> list[jax.Array]:
    """The cross-attention weights [B, H, Q, K] of ``branch``, ordered by layer."""
    found = []
    flat, _ = jax.tree_util.tree_flatten_with_path(intermediates.get(branch, {}))
    for path, leaf in flat:
        names = [str(getattr(p, "key", getattr(p, "idx", p))) for p in path]
        if "cross_attn" not in names:
            continue
        layer = next((int(n.split("_")[-1]) for n in names if n.startswith("layers_")), 0)
        found.append((layer, leaf))
    return [w for _, w in sorted(found, key=lambda item: item[0])]


def edge_token_mask(atom_mask: jax.Array, edge_pairs: str) -> jax.Array:
    """[B, P] mask of the real edge tokens (both atoms real, i != j) in the denoiser's order."""
    real = atom_mask.astype(bool)
    n = real.shape[1]
    if edge_pairs == "unordered":
        i, j = np.triu_indices(n, k=1)
        return real[:, i] & real[:, j]
    pair = real[:, :, None] & real[:, None, :] & ~np.eye(n, dtype=bool)
    return pair.reshape(real.shape[0], n * n)


def attention_summary(intermediates: dict, atom_mask: jax.Array, edge_pairs: str):
    """Per-layer attention maps over the spectral tokens, averaged over heads.

    Args:
        intermediates: the denoiser's "intermediates" collection of one forward pass.
        atom_mask: [B, N].
        edge_pairs: the denoiser's ``edge_pairs`` ("unordered" | "ordered").

    Returns:
        ``(atom [B, layers, N, K], edge [B, layers, K])``: atom→token weights (zero on padded
        atoms) and edge→token weights maximised over the real edges (zero if there is none).
    """
    atom_layers = _cross_attention_maps(intermediates, _ATOM_BRANCH)
    edge_layers = _cross_attention_maps(intermediates, _EDGE_BRANCH)
    if not atom_layers or not edge_layers:
        raise GenerateError("the denoiser sowed no cross-attention weights")
    real = atom_mask.astype(bool)
    atom = jnp.stack([w.mean(axis=1) for w in atom_layers], axis=1)  # [B, L, N, K]
    atom = jnp.where(real[:, None, :, None], atom, 0.0)
    edge_mask = edge_token_mask(atom_mask, edge_pairs)[:, None, :, None]  # [B, 1, P, 1]
    edge = jnp.stack([w.mean(axis=1) for w in edge_layers], axis=1)  # [B, L, P, K]
    edge = jnp.max(jnp.where(edge_mask, edge, -jnp.inf), axis=2)
    return atom, jnp.where(jnp.isfinite(edge), edge, 0.0)


def make_generate_fn(
    models: dict[str, nn.Module],
    schedule: NoiseSchedule,
    *,
    samples_per_spectrum: int,
    settings: SamplerSettings,
    with_attention: bool = False,
    max_traces: int | None = None,
    target: str = "eps",
) -> Callable:
    """Jitted ``generate(params, inputs: GenerateInputs) -> dict`` (traces once per shape).

    Args:
        models: ``factory.create_models`` output (``classifier``, ``autoencoder``, ``denoiser``).
        schedule: the diffusion noise schedule the denoiser was trained with.
        samples_per_spectrum: k.
        settings: which sampler, its steps and eta.
        with_attention: also return the attention maps of sample 0 of every spectrum.
        max_traces: if set, generation raises ``GenerateError`` once the function has been traced
            more often (one trace per input shape is expected).
        target: what the denoiser predicts (``config.diffusion.target``: "eps", "x0" or "v").

    Returns:
        A jitted function of ``(params {"classifier", "autoencoder", "denoiser"}, inputs)``
        returning ``{"positions": [B, k, N, 3] float32}`` plus, with attention,
        ``"atom_attention" [B, layers, N, K]`` and ``"edge_attention" [B, layers, K]``.
        Padded atoms have zero positions. The latent scale stored in the autoencoder's
        parameters is applied by the chain (``models/chain.py``).
    """
    settings.check(schedule)
    if samples_per_spectrum < 1:
        raise GenerateError(f"samples_per_spectrum must be >= 1, got {samples_per_spectrum}")
    chain = ModelChain(models, schedule, target)
    k = int(samples_per_spectrum)

    def reverse_chain(denoise_fn, key, mask, aux_init):
        if settings.name == "ancestral":
            return sampler_lib.ancestral_sample(
                denoise_fn, key, mask, schedule, final_mode=settings.final_mode, aux_init=aux_init
            )
        return sampler_lib.fast_sample(
            denoise_fn,
            key,
            mask,
            schedule,
            num_steps=settings.steps,
            eta=settings.eta,
            spacing=settings.spacing,
            final_mode=settings.final_mode,
            aux_init=aux_init,
        )

    guided = settings.guidance != 1.0

    def one_sample(params, key, z_h, mask, conds):
        """One sample of one spectrum (unbatched inputs; the sampler sees a batch of one).
        ``conds``: the spectrum's condition, then (with guidance) the null condition. The
        sampler carries the previous step's (guided) x̂0, zeros at first: a self-conditioned
        denoiser reads it, any other ignores it."""

        def predict(z_t, t, cond, z_sc):
            return chain.predict(params, z_t, t, z_h[None], mask[None], _add_axis(cond), z_sc=z_sc)

        def denoise_fn(z_t, t, z_sc):
            eps_cond, x0_cond = predict(z_t, t, conds[0], z_sc)
            if not guided:
                return eps_cond, x0_cond
            eps_null, x0_null = predict(z_t, t, conds[1], z_sc)
            lo, hi = settings.guidance_interval
            w = jnp.where((t > lo) & (t <= hi), settings.guidance, 1.0)[:, None, None]
            return eps_null + w * (eps_cond - eps_null), x0_null + w * (x0_cond - x0_null)

        z_sc = jnp.zeros((1, *mask.shape, 3), jnp.float32)
        return reverse_chain(denoise_fn, key, mask[None], z_sc)[0]

    def one_spectrum(params, key, z_h, mask, conds):
        sample_keys = jax.vmap(lambda j: jax.random.fold_in(key, j))(jnp.arange(k))
        return jax.vmap(one_sample, in_axes=(None, 0, None, None, None))(
            params, sample_keys, z_h, mask, conds
        )  # [k, N, 3]

    def generate(params: dict, inputs: GenerateInputs) -> dict:
        mask = inputs.atom_mask.astype(bool)
        encoding = chain.encode_spectrum(params, inputs.spectrum_tokens, inputs.formula_tokens)
        z_h = chain.embed_atoms(params, inputs.atom_types, mask, encoding)
        cond = chain.prepare(params, encoding)
        conds = (cond, chain.prepare(params, null_encoding(encoding))) if guided else (cond,)
        z_x = jax.vmap(one_spectrum, in_axes=(None, 0, 0, 0, 0))(
            params, inputs.keys, z_h, mask, conds
        )  # [B, k, N, 3]
        b, n = mask.shape
        flat_mask = jnp.repeat(mask, k, axis=0)
        x = chain.decode_latent(
            params, z_x.reshape(b * k, n, 3), jnp.repeat(z_h, k, axis=0), flat_mask
        )
        x = jnp.where(flat_mask[..., None], x, 0.0).reshape(b, k, n, 3)
        out = {"positions": x}
        if with_attention:
            _, state = models["denoiser"].apply(
                {"params": params["denoiser"]},
                z_x[:, 0],
                jnp.zeros((b,), jnp.float32),
                z_h,
                mask,
                cond,
                deterministic=True,
                mutable=["intermediates"],
            )
            edge_pairs = models["denoiser"].edge_pairs
            atom, edge = attention_summary(state["intermediates"], mask, edge_pairs)
            out.update(atom_attention=atom, edge_attention=edge)
        return out

    if max_traces is not None:
        generate = _limit_traces(generate, max_traces)
    return jax.jit(generate)


def _limit_traces(fn: Callable, max_traces: int) -> Callable:
    """``fn`` that raises ``GenerateError`` when traced more than ``max_traces`` times."""
    count = [0]

    def traced(*args):
        count[0] += 1
        if count[0] > max_traces:
            raise GenerateError(
                f"generate was traced {count[0]} times (at most {max_traces} expected): "
                "inputs of a new shape or dtype reached it"
            )
        return fn(*args)

    return traced
