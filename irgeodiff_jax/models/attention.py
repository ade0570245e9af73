"""Pre-LayerNorm Transformer attention blocks shared by the spectral encoder, the autoencoder and
the denoiser.

Conventions (method.md §2–§5, reference-notes.md §1.3–§1.4):

* Masks are bool or float arrays, 1 = real. A key mask ``[B, K]`` hides keys from every query;
  masked scores are set to ``-1e9`` (softmax is always computed in float32) and the softmax
  weights are multiplied by the mask afterwards, so masked keys contribute exactly zero and a
  query whose keys are all masked gets all-zero weights (output = output-projection bias),
  never NaN. The reference fills with ``-1e4``; for rows with at least one real key both give
  exactly zero weight on masked keys in float32.
* Residual blocks are pre-LN ("Annotated Transformer"): ``x + Dropout(sublayer(LN(x)))``, with
  dropout also on the attention weights and inside the feed-forward. The reference LayerNorm is
  ``a*(x-mean)/(std+1e-6)+b`` with unbiased std; flax ``LayerNorm`` (biased variance, eps 1e-6
  inside the square root) is used instead; the difference is O(1/D) in scale.
* Feed-forward: ``Dense(ff_dim) -> ReLU -> Dropout -> Dense(dim)`` as in the reference.
* All Dense kernels are xavier-normal, biases zero (the reference's init).
* Multi-query-structure (e.g. edge tokens ``[B, N*N, D]``) is flattened by the caller.
* Parameters of a layer's key/value projections are created by ``project_kv`` /
  ``project_memory``; initialise through a method that calls both it and ``__call__``.
"""

from collections.abc import Sequence

import flax.linen as nn
import flax.struct
import jax
import jax.numpy as jnp

from irgeodiff_jax.models.layers import MLP, stack_layers, xavier_dense, xavier_normal

MASK_FILL = -1e9


@flax.struct.dataclass
class KV:
    """Projected attention memory.

    Attributes:
      k: keys ``[B, K, H, Dh]``.
      v: values ``[B, K, H, Dh]``.
    """

    k: jax.Array
    v: jax.Array


def masked_softmax(scores: jax.Array, key_mask: jax.Array | None) -> jax.Array:
    """Softmax over the last axis of ``scores [B, H, Q, K]`` with ``key_mask [B, K]``.

    Computed in float32. Masked keys get weight exactly 0; fully masked rows are all zero.
    ``key_mask=None`` means every key is real (no mask arrays are built).
    """
    scores = scores.astype(jnp.float32)
    if key_mask is None:
        return jax.nn.softmax(scores, axis=-1)
    mask = key_mask.astype(bool)[:, None, None, :]
    return jax.nn.softmax(jnp.where(mask, scores, MASK_FILL), axis=-1) * mask


class MultiHeadAttention(nn.Module):
    """Multi-head scaled dot-product attention with separate K/V projection.

    ``project_kv`` maps memory to keys/values once, so a sampler can reuse them over many calls.

    Attributes:
      num_heads: number of heads ``H``; must divide ``dim``.
      dim: model width ``D`` (input and output).
      dropout_rate: dropout on the attention weights.
      dtype: computation dtype.
    """

    num_heads: int
    dim: int
    dropout_rate: float = 0.1
    dtype: jnp.dtype = jnp.float32

    def setup(self):
        if self.dim % self.num_heads:
            raise ValueError(f"dim={self.dim} is not divisible by num_heads={self.num_heads}")
        self.query = xavier_dense(self.dim, self.dtype)
        self.key = xavier_dense(self.dim, self.dtype)
        self.value = xavier_dense(self.dim, self.dtype)
        self.out = xavier_dense(self.dim, self.dtype)
        self.attn_dropout = nn.Dropout(self.dropout_rate)

    def _split_heads(self, x: jax.Array) -> jax.Array:
        return x.reshape(*x.shape[:-1], self.num_heads, self.dim // self.num_heads)

    def project_kv(self, memory: jax.Array) -> KV:
        """Projects ``memory [B, K, D]`` to ``KV`` with ``k, v [B, K, H, Dh]``."""
        return KV(k=self._split_heads(self.key(memory)), v=self._split_heads(self.value(memory)))

    def __call__(
        self, x: jax.Array, kv: KV, kv_mask: jax.Array | None, *, deterministic: bool
    ) -> jax.Array:
        """Attends ``x [B, Q, D]`` to ``kv`` under ``kv_mask [B, K]``; returns ``[B, Q, D]``.

        ``kv_mask=None`` means all keys are real.

        Sows the softmax weights ``[B, H, Q, K]`` (float32, before dropout) as
        ``intermediates/attention_weights``.
        """
        q = self._split_heads(self.query(x))
        scale = 1.0 / jnp.sqrt(jnp.asarray(q.shape[-1], q.dtype))
        scores = jnp.einsum("bqhd,bkhd->bhqk", q * scale, kv.k.astype(q.dtype))
        weights = masked_softmax(scores, kv_mask)
        self.sow("intermediates", "attention_weights", weights)
        weights = self.attn_dropout(weights, deterministic=deterministic).astype(self.dtype)
        out = jnp.einsum("bhqk,bkhd->bqhd", weights, kv.v.astype(self.dtype))
        return self.out(out.reshape(*out.shape[:-2], self.dim))


class FeedForward(nn.Module):
    """``Dense(ff_dim) -> ReLU -> Dropout -> Dense(dim)``."""

    dim: int
    ff_dim: int
    dropout_rate: float = 0.1
    dtype: jnp.dtype = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array, *, deterministic: bool) -> jax.Array:
        """Maps ``x [..., D]`` to ``[..., D]``."""
        x = nn.relu(xavier_dense(self.ff_dim, self.dtype, "wi")(x))
        x = nn.Dropout(self.dropout_rate)(x, deterministic=deterministic)
        return xavier_dense(self.dim, self.dtype, "wo")(x)


class EncoderLayer(nn.Module):
    """Pre-LN self-attention + feed-forward block (Transformer encoder layer)."""

    dim: int
    num_heads: int
    ff_dim: int
    dropout_rate: float = 0.1
    dtype: jnp.dtype = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array, mask: jax.Array, *, deterministic: bool) -> jax.Array:
        """Maps tokens ``x [B, T, D]`` with key mask ``mask [B, T]`` to ``[B, T, D]``."""
        drop = nn.Dropout(self.dropout_rate)
        attn = MultiHeadAttention(self.num_heads, self.dim, self.dropout_rate, self.dtype)
        y = nn.LayerNorm(epsilon=1e-6, dtype=self.dtype)(x)
        x = x + drop(attn(y, attn.project_kv(y), mask, deterministic=deterministic), deterministic)
        y = nn.LayerNorm(epsilon=1e-6, dtype=self.dtype)(x)
        ff = FeedForward(self.dim, self.ff_dim, self.dropout_rate, self.dtype)
        return x + drop(ff(y, deterministic=deterministic), deterministic)


class EncoderStack(nn.Module):
    """``num_layers`` pre-LN encoder layers followed by a final LayerNorm."""

    num_layers: int
    dim: int
    num_heads: int
    ff_dim: int
    dropout_rate: float = 0.1
    dtype: jnp.dtype = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array, mask: jax.Array, *, deterministic: bool) -> jax.Array:
        """Maps tokens ``x [B, T, D]`` with key mask ``mask [B, T]`` to ``[B, T, D]``."""
        for i in range(self.num_layers):
            x = EncoderLayer(
                self.dim,
                self.num_heads,
                self.ff_dim,
                self.dropout_rate,
                self.dtype,
                name=f"layer_{i}",
            )(x, mask, deterministic=deterministic)
        return nn.LayerNorm(epsilon=1e-6, dtype=self.dtype, name="final_norm")(x)


class DecoderLayer(nn.Module):
    """Pre-LN decoder layer: [self-attention] -> cross-attention to memory -> feed-forward.

    Attributes:
      dim, num_heads, ff_dim, dropout_rate, dtype: Transformer sizes.
      self_attention: include self-attention among the queries (masked by ``x_mask``); the edge
        stream of the denoiser uses cross-attention only.
    """

    dim: int
    num_heads: int
    ff_dim: int
    dropout_rate: float = 0.1
    self_attention: bool = True
    dtype: jnp.dtype = jnp.float32

    def setup(self):
        mha = lambda: MultiHeadAttention(self.num_heads, self.dim, self.dropout_rate, self.dtype)  # noqa: E731
        if self.self_attention:
            self.self_attn = mha()
            self.self_norm = nn.LayerNorm(epsilon=1e-6, dtype=self.dtype)
        self.cross_attn = mha()
        self.cross_norm = nn.LayerNorm(epsilon=1e-6, dtype=self.dtype)
        self.ff = FeedForward(self.dim, self.ff_dim, self.dropout_rate, self.dtype)
        self.ff_norm = nn.LayerNorm(epsilon=1e-6, dtype=self.dtype)
        self.dropout = nn.Dropout(self.dropout_rate)

    def project_memory(self, memory: jax.Array) -> KV:
        """Cross-attention keys/values of ``memory [B, K, D]``."""
        return self.cross_attn.project_kv(memory)

    def __call__(
        self,
        x: jax.Array,
        x_mask: jax.Array,
        memory_kv: KV,
        memory_mask: jax.Array,
        *,
        deterministic: bool,
    ) -> jax.Array:
        """Updates queries ``x [B, Q, D]`` (mask ``[B, Q]``) given memory K/V (mask ``[B, K]``)."""
        if self.self_attention:
            y = self.self_norm(x)
            y = self.self_attn(y, self.self_attn.project_kv(y), x_mask, deterministic=deterministic)
            x = x + self.dropout(y, deterministic=deterministic)
        y = self.cross_attn(self.cross_norm(x), memory_kv, memory_mask, deterministic=deterministic)
        x = x + self.dropout(y, deterministic=deterministic)
        y = self.ff(self.ff_norm(x), deterministic=deterministic)
        return x + self.dropout(y, deterministic=deterministic)


class _PositionalDecoderLayer(DecoderLayer):
    """``DecoderLayer`` with ``deterministic`` positional, so ``nn.remat`` can hold it static."""

    def __call__(self, x, x_mask, memory_kv, memory_mask, deterministic):  # noqa: D102
        return super().__call__(x, x_mask, memory_kv, memory_mask, deterministic=deterministic)


# Same parameters as DecoderLayer; activations recomputed in the backward pass.
_RematDecoderLayer = nn.remat(_PositionalDecoderLayer, static_argnums=(5,))  # self is 0


class DecoderStack(nn.Module):
    """``num_layers`` decoder layers followed by a final LayerNorm.

    ``remat``: recompute each layer's activations in the backward pass (``nn.remat``) instead
    of keeping them; same parameters, values and gradients, less memory, more compute.
    ``scan_layers``: after initialisation, run the layers as one ``lax.scan`` over their stacked
    parameters, each layer rematerialised (implies ``remat``), so the backward pass holds one
    layer's activations at a time whatever the compiler's schedule; same parameter tree and, with
    dropout off, the same values. Dropout draws one key per layer from the ``dropout`` stream
    (other masks than the unrolled layers'), and no attention weights are sown.
    """

    num_layers: int
    dim: int
    num_heads: int
    ff_dim: int
    dropout_rate: float = 0.1
    self_attention: bool = True
    dtype: jnp.dtype = jnp.float32
    remat: bool = False
    scan_layers: bool = False

    def setup(self):
        layer_cls = _RematDecoderLayer if self.remat else DecoderLayer
        self.layers = [
            layer_cls(
                self.dim,
                self.num_heads,
                self.ff_dim,
                self.dropout_rate,
                self.self_attention,
                self.dtype,
            )
            for _ in range(self.num_layers)
        ]
        self.final_norm = nn.LayerNorm(epsilon=1e-6, dtype=self.dtype)

    def project_memory(self, memory: jax.Array) -> tuple[KV, ...]:
        """Per-layer cross-attention K/V of ``memory [B, K, D]``."""
        return tuple(layer.project_memory(memory) for layer in self.layers)

    def __call__(
        self,
        x: jax.Array,
        x_mask: jax.Array,
        memory_kvs: Sequence[KV],
        memory_mask: jax.Array,
        *,
        deterministic: bool,
    ) -> jax.Array:
        """Maps queries ``x [B, Q, D]`` to ``[B, Q, D]`` using one ``KV`` per layer."""
        if len(memory_kvs) != self.num_layers:
            raise ValueError(f"expected {self.num_layers} memory KVs, got {len(memory_kvs)}")
        if self.scan_layers and not self.is_initializing():
            x = self._scanned(x, x_mask, memory_kvs, memory_mask, deterministic)
            return self.final_norm(x)
        for layer, kv in zip(self.layers, memory_kvs, strict=True):
            if self.remat:
                x = layer(x, x_mask, kv, memory_mask, deterministic)
            else:
                x = layer(x, x_mask, kv, memory_mask, deterministic=deterministic)
        return self.final_norm(x)

    def _scanned(self, x, x_mask, memory_kvs, memory_mask, deterministic: bool) -> jax.Array:
        """The layers as one rematerialised ``lax.scan`` (``scan_layers``)."""
        layer = DecoderLayer(
            self.dim, self.num_heads, self.ff_dim, self.dropout_rate, self.self_attention,
            self.dtype, parent=None,
        )  # fmt: skip
        n = self.num_layers
        params = stack_layers([self.variables["params"][f"layers_{i}"] for i in range(n)])
        keys = None if deterministic else jax.random.split(self.make_rng("dropout"), n)

        @jax.checkpoint
        def body(x, inputs):
            p, kv, key = inputs
            rngs = None if key is None else {"dropout": key}
            y = layer.apply(
                {"params": p}, x, x_mask, kv, memory_mask, deterministic=deterministic, rngs=rngs
            )
            return y, None

        x, _ = jax.lax.scan(body, x, (params, stack_layers(memory_kvs), keys))
        return x


class SpecAtomCrossAttention(nn.Module):
    """Atom tokens attend to each other (real atoms only) and to the spectral encoding.

    ``Linear(d_in -> dim) -> DecoderStack(self_attention=True) -> Linear(dim -> hidden_dim) -
    SiLU - Linear(hidden_dim -> out_dim)``. Outputs are permutation-equivariant over atoms,
    unaffected by padded atoms, and invariant to coordinates (which it never sees).
    """

    out_dim: int
    dim: int = 512
    num_layers: int = 4
    num_heads: int = 8
    ff_dim: int = 2048
    hidden_dim: int = 256
    dropout_rate: float = 0.1
    dtype: jnp.dtype = jnp.float32

    def setup(self):
        self.embed = xavier_dense(self.dim, self.dtype)
        self.decoder = DecoderStack(
            self.num_layers,
            self.dim,
            self.num_heads,
            self.ff_dim,
            self.dropout_rate,
            self_attention=True,
            dtype=self.dtype,
        )
        self.head = MLP(
            (self.hidden_dim, self.out_dim),
            activation=nn.silu,
            kernel_init=xavier_normal(),
            bias_init=nn.initializers.zeros,
            dtype=self.dtype,
        )

    def project_memory(self, spec_tokens: jax.Array) -> tuple[KV, ...]:
        """Per-layer K/V of the spectral encoding ``spec_tokens [B, K, D]``."""
        return self.decoder.project_memory(spec_tokens)

    def __call__(
        self,
        h: jax.Array,
        atom_mask: jax.Array,
        memory_kvs: Sequence[KV],
        spec_mask: jax.Array,
        *,
        deterministic: bool,
    ) -> jax.Array:
        """Maps atom features ``h [B, N, d_in]`` (mask ``[B, N]``) to ``[B, N, out_dim]``."""
        x = self.embed(h)
        x = self.decoder(x, atom_mask, memory_kvs, spec_mask, deterministic=deterministic)
        return self.head(x)
