"""Spectral encoder / functional-group classifier τθ (method.md §2, reference-notes.md §1.3).

Spectrum tokens ``[B, L]`` (integers ``0 .. spectrum_levels-1``) are cut into ``P = L /
patch_size`` patches. Two patch embeddings (config ``embedding``):

* ``"token_attention"`` (reference): ``Embed(levels, D)·√D`` per token, reshape to
  ``[B·P, patch_size, D]``, one bare multi-head self-attention *within* each patch (no LayerNorm,
  no residual, as the reference's patch module), reshape to ``[B, P, patch_size·D]`` and
  ``Dense(patch_size·D -> D)``. Peak activations: ``[B, L, D]`` and scores
  ``[B·P, H, patch_size, patch_size]``.
* ``"float_linear"`` (cheap option): ``tokens / (levels-1)`` as floats, ``[B, P, patch_size]``,
  ``Dense(patch_size -> D)``.

Then sinusoidal positions and dropout. Formula tokens ``[B, F]`` (0 = [PAD]) are embedded
``Embed(formula_vocab, D)·√D`` plus their own positions (restarting at 0) and dropout, and are
appended to the patch tokens. The ``P + F`` tokens pass a pre-LN Transformer encoder with a final
LayerNorm; spectral tokens are never masked, formula tokens are masked where the id is 0.

The classifier decodes ``num_groups`` learnable queries (unmasked self-attention, cross-attention
to the encoding) and maps each with ``Dense(256) - SiLU - Dense(1)`` to one logit.
"""

import flax.linen as nn
import flax.struct
import jax
import jax.numpy as jnp

from irgeodiff_jax.models.attention import DecoderStack, EncoderStack, MultiHeadAttention
from irgeodiff_jax.models.layers import MLP, sinusoidal_positions, xavier_dense, xavier_normal

EMBEDDINGS = ("token_attention", "float_linear")
HEAD_HIDDEN = 256  # reference cls_head Linear(512, 256) - SiLU - Linear(256, 1)


@flax.struct.dataclass
class SpectralEncoding:
    """Encoder output, the conditioning signal of the denoiser.

    Attributes:
      tokens: ``[B, P + F, D]`` encoded patch tokens followed by formula tokens.
      mask: ``[B, P + F]`` bool, True for real tokens (all patches; non-[PAD] formula tokens).
    """

    tokens: jax.Array
    mask: jax.Array


class TokenAttentionPatchEmbed(nn.Module):
    """Reference patch embedding: per-token embedding, attention within each patch, linear."""

    dim: int
    num_heads: int
    patch_size: int
    levels: int
    dropout_rate: float = 0.1
    dtype: jnp.dtype = jnp.float32

    @nn.compact
    def __call__(self, tokens: jax.Array, *, deterministic: bool) -> jax.Array:
        """Maps ``tokens [B, L]`` (int) to patch embeddings ``[B, L / patch_size, D]``."""
        batch, length = tokens.shape
        num_patches = length // self.patch_size
        embed = nn.Embed(self.levels, self.dim, dtype=self.dtype, embedding_init=xavier_normal())
        x = embed(tokens) * jnp.sqrt(jnp.asarray(self.dim, self.dtype))
        x = x.reshape(batch * num_patches, self.patch_size, self.dim)
        attn = MultiHeadAttention(self.num_heads, self.dim, self.dropout_rate, self.dtype)
        x = attn(x, attn.project_kv(x), None, deterministic=deterministic)
        x = x.reshape(batch, num_patches, self.patch_size * self.dim)
        return xavier_dense(self.dim, self.dtype, "project")(x)


class FloatLinearPatchEmbed(nn.Module):
    """Cheap patch embedding: normalised token values of each patch through one Dense layer."""

    dim: int
    patch_size: int
    levels: int
    dtype: jnp.dtype = jnp.float32

    @nn.compact
    def __call__(self, tokens: jax.Array, *, deterministic: bool) -> jax.Array:
        """Maps ``tokens [B, L]`` (int) to patch embeddings ``[B, L / patch_size, D]``."""
        del deterministic
        batch, length = tokens.shape
        x = tokens.astype(jnp.float32) / (self.levels - 1)
        x = x.reshape(batch, length // self.patch_size, self.patch_size).astype(self.dtype)
        return xavier_dense(self.dim, self.dtype, "project")(x)


class SpectralClassifier(nn.Module):
    """Spectrum + formula encoder with a functional-group classification decoder.

    Attributes:
      num_groups: number of functional groups (learnable queries / logits).
      dim: model width ``D``.
      num_heads: attention heads.
      ff_dim: feed-forward width.
      num_encoder_layers: encoder depth (QM9S 4, QMe14S 6).
      num_decoder_layers: classifier decoder depth.
      patch_size: spectrum tokens per patch; must divide the spectrum length.
      spectrum_levels: spectrum token vocabulary (integer intensities ``0 .. levels-1``).
      formula_vocab: formula token vocabulary (0 = [PAD]).
      embedding: ``"token_attention"`` (reference) or ``"float_linear"``.
      dropout_rate: dropout everywhere.
      dtype: computation dtype (parameters stay float32).
    """

    num_groups: int = 20
    dim: int = 512
    num_heads: int = 8
    ff_dim: int = 2048
    num_encoder_layers: int = 4
    num_decoder_layers: int = 4
    patch_size: int = 64
    spectrum_levels: int = 100
    formula_vocab: int = 26
    embedding: str = "token_attention"
    dropout_rate: float = 0.1
    dtype: jnp.dtype = jnp.float32

    def setup(self):
        if self.embedding == "token_attention":
            self.patch_embed = TokenAttentionPatchEmbed(
                self.dim,
                self.num_heads,
                self.patch_size,
                self.spectrum_levels,
                self.dropout_rate,
                self.dtype,
            )
        elif self.embedding == "float_linear":
            self.patch_embed = FloatLinearPatchEmbed(
                self.dim, self.patch_size, self.spectrum_levels, self.dtype
            )
        else:
            raise ValueError(f"unknown embedding {self.embedding!r}; expected one of {EMBEDDINGS}")
        self.formula_embed = nn.Embed(
            self.formula_vocab, self.dim, dtype=self.dtype, embedding_init=xavier_normal()
        )
        self.dropout = nn.Dropout(self.dropout_rate)
        self.encoder = EncoderStack(
            self.num_encoder_layers,
            self.dim,
            self.num_heads,
            self.ff_dim,
            self.dropout_rate,
            self.dtype,
        )
        self.queries = self.param(
            "fg_queries", nn.initializers.normal(1.0), (self.num_groups, self.dim)
        )
        self.decoder = DecoderStack(
            self.num_decoder_layers,
            self.dim,
            self.num_heads,
            self.ff_dim,
            self.dropout_rate,
            self_attention=True,
            dtype=self.dtype,
        )
        self.head = MLP(
            (HEAD_HIDDEN, 1),
            activation=nn.silu,
            kernel_init=xavier_normal(),
            bias_init=nn.initializers.zeros,
            dtype=self.dtype,
        )

    def _check_inputs(self, spectrum_tokens: jax.Array, formula_tokens: jax.Array) -> None:
        if spectrum_tokens.ndim != 2 or formula_tokens.ndim != 2:
            raise ValueError(
                "expected spectrum_tokens [B, L] and formula_tokens [B, F], got shapes "
                f"{spectrum_tokens.shape} and {formula_tokens.shape}"
            )
        if spectrum_tokens.shape[0] != formula_tokens.shape[0]:
            raise ValueError(
                f"batch sizes differ: {spectrum_tokens.shape[0]} vs {formula_tokens.shape[0]}"
            )
        if spectrum_tokens.shape[1] % self.patch_size:
            raise ValueError(
                f"spectrum length {spectrum_tokens.shape[1]} is not divisible by "
                f"patch_size {self.patch_size}"
            )

    def _add_positions(self, x: jax.Array, *, deterministic: bool) -> jax.Array:
        pe = sinusoidal_positions(x.shape[1], self.dim).astype(self.dtype)
        return self.dropout(x + pe[None], deterministic=deterministic)

    def encode(
        self, spectrum_tokens: jax.Array, formula_tokens: jax.Array, *, deterministic: bool
    ) -> SpectralEncoding:
        """Encodes ``spectrum_tokens [B, L]`` and ``formula_tokens [B, F]`` (ints, 0 = [PAD]).

        Returns:
          ``SpectralEncoding`` with ``tokens [B, L/patch_size + F, D]`` and its mask.

        Raises:
          ValueError: on wrong ranks, mismatched batch sizes, or ``L % patch_size != 0``.
        """
        self._check_inputs(spectrum_tokens, formula_tokens)
        patches = self.patch_embed(spectrum_tokens, deterministic=deterministic)
        patches = self._add_positions(patches, deterministic=deterministic)
        formula = self.formula_embed(formula_tokens) * jnp.sqrt(jnp.asarray(self.dim, self.dtype))
        formula = self._add_positions(formula, deterministic=deterministic)
        x = jnp.concatenate([patches, formula], axis=1)
        mask = jnp.concatenate(
            [jnp.ones(patches.shape[:2], dtype=bool), formula_tokens != 0], axis=1
        )
        tokens = self.encoder(x, mask, deterministic=deterministic)
        return SpectralEncoding(tokens=tokens, mask=mask)

    def classify(self, encoding: SpectralEncoding, *, deterministic: bool) -> jax.Array:
        """Functional-group logits ``[B, num_groups]`` from an encoding."""
        batch = encoding.tokens.shape[0]
        queries = jnp.broadcast_to(
            self.queries.astype(self.dtype)[None], (batch, self.num_groups, self.dim)
        )
        query_mask = jnp.ones((batch, self.num_groups), dtype=bool)
        memory_kvs = self.decoder.project_memory(encoding.tokens)
        x = self.decoder(
            queries, query_mask, memory_kvs, encoding.mask, deterministic=deterministic
        )
        return self.head(x)[..., 0]

    def __call__(
        self, spectrum_tokens: jax.Array, formula_tokens: jax.Array, *, deterministic: bool
    ) -> tuple[SpectralEncoding, jax.Array]:
        """``(encode(...), classify(...))``: the encoding and logits ``[B, num_groups]``."""
        encoding = self.encode(spectrum_tokens, formula_tokens, deterministic=deterministic)
        return encoding, self.classify(encoding, deterministic=deterministic)
