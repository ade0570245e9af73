"""Spectrum-conditioned EGNN denoiser eps_theta (method.md §5; reference-notes.md §1.6).

Given noisy latent positions ``z_t [B, N, 3]``, time ``t [B]`` in ``[0, 1]`` and atom features
``z_h [B, N, 16]``:

* node features ``h = [z_h, t]`` (17); atom-spectrum cross-attention on ``h`` (module name
  ``atom_cross_attention``) gives 17 more -> ``[h, h_attn]`` (34) -> EGNN input;
* edge stream (module names ``edge_in``, ``edge_cross_attention``, ``edge_out``):
  ``e0_ij = Linear([|z_i - z_j|^2, h_i + h_j] -> 512)`` (symmetric in ``i, j``), a
  cross-attention-only decoder stack over the spectral tokens, ``Linear(512 -> 16) = a_ij``;
  every EGNN block uses ``[r_ij (current), a_ij]`` as edge features;
* ``eps = x_final - z_t``, mean-removed over real atoms. Non-finite values are left as they are
  (the trainer treats them as an error); nothing is zeroed except padded rows.

Cost options (model config flags, so FLOPs can be compared):

* ``edge_pairs="unordered"`` runs the edge stream on the ``N(N-1)/2`` pairs ``i < j`` only and
  scatters the result to a symmetric ``[B, N, N, 16]`` (exact: ``e0`` is symmetric and edge
  tokens never attend to each other); ``"ordered"`` runs it on all ``N^2`` ordered pairs as the
  reference does.
* ``prepare(encoding)`` projects the spectral tokens to every layer's keys/values once; a
  sampler reuses the ``DenoiserCondition`` over all its steps.
* ``dtype=jnp.bfloat16`` runs the Transformer and EGNN MLPs in bfloat16 (parameters, softmax,
  positions and the EGNN residual stream stay float32).

Attention maps: ``MultiHeadAttention`` sows ``intermediates/.../attention_weights``; under
``atom_cross_attention`` they are ``[B, heads, N, K]`` per layer, under
``edge_cross_attention`` ``[B, heads, P, K]`` with pairs indexed by ``pair_indices`` (unordered)
or ``i * N + j`` (ordered).

Self-conditioning (``self_condition=True``; Chen et al. 2022, "Analog Bits"): the network also
reads its own previous estimate of the clean latent, ``z_sc [B, N, 3]`` (zeros: none). Its
squared pair distances ``|z_sc_i - z_sc_j|^2`` join ``e0_ij``'s input and every EGNN block's edge
features, so the output stays E(3)-equivariant.

``eps`` is E(3)-equivariant: it rotates/reflects with ``z_t`` (and ``z_sc``) and is translation
invariant; it is permutation-equivariant over atoms and padded atoms are ignored.
"""

from typing import Literal

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from irgeodiff_jax.models.attention import KV, DecoderStack, SpecAtomCrossAttention
from irgeodiff_jax.models.egnn import COORDS_RANGE, EGNN, Kernel
from irgeodiff_jax.models.layers import xavier_normal
from irgeodiff_jax.models.spectral_encoder import SpectralEncoding
from irgeodiff_jax.utils.geometry import pairwise_sq_dist, remove_mean_with_mask

EdgePairs = Literal["unordered", "ordered"]


@struct.dataclass
class DenoiserCondition:
    """Per-molecule spectral conditioning, computed once by ``Denoiser.prepare``.

    Attributes:
      atom_kvs: per-layer K/V of the atom cross-attention (``k, v [B, K, H, Dh]``).
      edge_kvs: per-layer K/V of the edge cross-attention.
      mask: ``[B, K]`` mask of the spectral tokens.
    """

    atom_kvs: tuple[KV, ...]
    edge_kvs: tuple[KV, ...]
    mask: jax.Array


def pair_indices(num_atoms: int) -> tuple[np.ndarray, np.ndarray]:
    """Static unordered pairs ``(i, j)`` with ``i < j``, each of length ``N(N-1)/2``."""
    return np.triu_indices(num_atoms, k=1)


def pair_lookup(num_atoms: int) -> np.ndarray:
    """``[N, N]`` index of pair ``{i, j}`` in ``pair_indices``; the diagonal maps to ``P``."""
    i, j = pair_indices(num_atoms)
    lookup = np.full((num_atoms, num_atoms), len(i), dtype=np.int32)
    lookup[i, j] = np.arange(len(i))
    lookup[j, i] = np.arange(len(i))
    return lookup


class Denoiser(nn.Module):
    """EGNN noise predictor conditioned on the spectrum through atom and edge cross-attention.

    Attributes:
      latent_h_dim: width of ``z_h`` (reference 16); node features are ``latent_h_dim + 1``.
      hidden_dim, num_layers, coords_range, kernel: EGNN sizes (reference 256, 9, 15, dense).
      atom_attn_dim, atom_attn_layers, atom_attn_heads, atom_attn_ff_dim, atom_attn_hidden_dim:
        atom cross-attention sizes (reference 512, 4, 8, 2048, 256).
      edge_dim, edge_layers, edge_heads, edge_ff_dim: edge stream sizes (reference 512, 4, 8,
        2048).
      edge_out_dim: width of ``a_ij`` (reference 16).
      edge_pairs: ``"unordered"`` (i < j only, default) or ``"ordered"`` (all N^2, reference).
      dropout_rate: Transformer dropout (reference 0.1).
      dtype: computation dtype.
      remat: recompute the EGNN blocks' and edge-stream layers' activations in the backward
        pass instead of storing them (same values and gradients, ~13 % more FLOPs at the paper
        size); meant to trade compute for memory, but XLA:CPU's memory plan was measured not to
        shrink (README, "Speed at the paper size").
      scan_layers: run the EGNN blocks and the edge-stream layers each as one ``lax.scan``
        over stacked per-layer parameters, every layer rematerialised (implies ``remat``): the
        backward pass then holds one layer's activations at a time. Same parameter tree and,
        without dropout, the same values and gradients; edge-stream dropout masks are drawn per
        layer, and its attention weights are not sown.
      self_condition: read a previous clean-latent estimate ``z_sc`` (module docstring).
    """

    latent_h_dim: int = 16
    hidden_dim: int = 256
    num_layers: int = 9
    coords_range: float = COORDS_RANGE
    kernel: Kernel = "dense"
    atom_attn_dim: int = 512
    atom_attn_layers: int = 4
    atom_attn_heads: int = 8
    atom_attn_ff_dim: int = 2048
    atom_attn_hidden_dim: int = 256
    edge_dim: int = 512
    edge_layers: int = 4
    edge_heads: int = 8
    edge_ff_dim: int = 2048
    edge_out_dim: int = 16
    edge_pairs: EdgePairs = "unordered"
    dropout_rate: float = 0.1
    dtype: jnp.dtype = jnp.float32
    remat: bool = False
    scan_layers: bool = False
    self_condition: bool = False

    def setup(self):
        if self.edge_pairs not in ("unordered", "ordered"):
            raise ValueError(
                f"edge_pairs must be 'unordered' or 'ordered', got {self.edge_pairs!r}"
            )
        self.atom_cross_attention = SpecAtomCrossAttention(
            out_dim=self.latent_h_dim + 1,
            dim=self.atom_attn_dim,
            num_layers=self.atom_attn_layers,
            num_heads=self.atom_attn_heads,
            ff_dim=self.atom_attn_ff_dim,
            hidden_dim=self.atom_attn_hidden_dim,
            dropout_rate=self.dropout_rate,
            dtype=self.dtype,
        )
        self.edge_in = nn.Dense(self.edge_dim, kernel_init=xavier_normal(), dtype=self.dtype)
        self.edge_cross_attention = DecoderStack(
            num_layers=self.edge_layers,
            dim=self.edge_dim,
            num_heads=self.edge_heads,
            ff_dim=self.edge_ff_dim,
            dropout_rate=self.dropout_rate,
            self_attention=False,
            dtype=self.dtype,
            remat=self.remat,
            scan_layers=self.scan_layers,
        )
        self.edge_out = nn.Dense(self.edge_out_dim, kernel_init=xavier_normal(), dtype=self.dtype)
        self.egnn = EGNN(
            hidden_dim=self.hidden_dim,
            num_layers=self.num_layers,
            out_dim=None,
            coords_range=self.coords_range,
            kernel=self.kernel,
            dtype=self.dtype,
            remat=self.remat,
            scan_layers=self.scan_layers,
        )

    def prepare(self, encoding: SpectralEncoding) -> DenoiserCondition:
        """Projects the spectral tokens ``[B, K, D]`` to all cross-attention K/V (once per
        molecule; reuse the result for every denoising step)."""
        return DenoiserCondition(
            atom_kvs=tuple(self.atom_cross_attention.project_memory(encoding.tokens)),
            edge_kvs=tuple(self.edge_cross_attention.project_memory(encoding.tokens)),
            mask=encoding.mask,
        )

    def edge_attributes(
        self,
        z_t: jax.Array,
        h: jax.Array,
        atom_mask: jax.Array,
        cond: DenoiserCondition,
        *,
        deterministic: bool,
        sc_sq_dist: jax.Array | None = None,
    ) -> jax.Array:
        """Spectrum-conditioned edge features ``a_ij [B, N, N, edge_out_dim]`` (symmetric).

        Args:
          z_t: positions ``[B, N, 3]`` (padded rows zero).
          h: node features ``[B, N, F]``.
          atom_mask: ``[B, N]``.
          cond: output of ``prepare``.
          deterministic: disable dropout.
          sc_sq_dist: with self-conditioning, ``|z_sc_i - z_sc_j|^2 [B, N, N]``.

        Returns:
          Float32 ``[B, N, N, edge_out_dim]``; entries involving padded atoms or the diagonal
          are meaningless (the EGNN masks them).
        """
        batch, n = atom_mask.shape
        sq_dist = pairwise_sq_dist(z_t)
        if sc_sq_dist is not None:
            sq_dist = jnp.stack([sq_dist, sc_sq_dist], axis=-1)
        else:
            sq_dist = sq_dist[..., None]
        real = atom_mask.astype(bool)
        if self.edge_pairs == "unordered":
            i, j = pair_indices(n)
            feats = jnp.concatenate([sq_dist[:, i, j], h[:, i] + h[:, j]], axis=-1)
            token_mask = real[:, i] & real[:, j]
        else:
            feats = jnp.concatenate([sq_dist, h[:, :, None] + h[:, None, :]], axis=-1)
            feats = feats.reshape(batch, n * n, -1)
            token_mask = (real[:, :, None] & real[:, None, :] & ~np.eye(n, dtype=bool)).reshape(
                batch, n * n
            )
        tokens = self.edge_in(feats)
        tokens = self.edge_cross_attention(
            tokens, token_mask, cond.edge_kvs, cond.mask, deterministic=deterministic
        )
        a = self.edge_out(tokens).astype(jnp.float32)
        if self.edge_pairs == "ordered":
            return a.reshape(batch, n, n, -1)
        # Symmetric scatter by a static gather; the diagonal reads an appended zero row.
        a = jnp.concatenate([a, jnp.zeros_like(a[:, :1])], axis=1)
        return jnp.take(a, pair_lookup(n).reshape(-1), axis=1).reshape(batch, n, n, -1)

    def __call__(
        self,
        z_t: jax.Array,
        t: jax.Array,
        z_h: jax.Array,
        atom_mask: jax.Array,
        cond: DenoiserCondition,
        *,
        deterministic: bool,
        z_sc: jax.Array | None = None,
    ) -> jax.Array:
        """Predicts the noise on the latent positions.

        Args:
          z_t: noisy positions ``[B, N, 3]`` (zero centre of mass, padded rows zero).
          t: diffusion time ``[B]`` in ``[0, 1]``.
          z_h: atom features ``[B, N, latent_h_dim]`` (from ``Autoencoder.embed_atoms``).
          atom_mask: ``[B, N]``, 1/True for real atoms.
          cond: ``prepare(encoding)``.
          deterministic: disable dropout.
          z_sc: with ``self_condition``, the previous clean-latent estimate ``[B, N, 3]``
            (None or zeros: none); ignored otherwise.

        Returns:
          ``eps [B, N, 3]`` float32, mean-removed over real atoms, padded rows zero.
        """
        if z_h.shape[-1] != self.latent_h_dim:
            raise ValueError(f"z_h has width {z_h.shape[-1]}, expected {self.latent_h_dim}")
        node = atom_mask.astype(bool)[..., None]
        z_t = jnp.where(node, z_t.astype(jnp.float32), 0)
        t_col = jnp.broadcast_to(t.astype(jnp.float32)[:, None, None], (*z_h.shape[:2], 1))
        h = jnp.where(node, jnp.concatenate([z_h.astype(jnp.float32), t_col], axis=-1), 0)
        h_attn = self.atom_cross_attention(
            h, atom_mask, cond.atom_kvs, cond.mask, deterministic=deterministic
        )
        h_all = jnp.concatenate([h, h_attn.astype(jnp.float32)], axis=-1)
        sc_sq_dist = None
        if self.self_condition:
            z_sc = jnp.zeros_like(z_t) if z_sc is None else jnp.where(node, z_sc, 0)
            sc_sq_dist = pairwise_sq_dist(z_sc.astype(jnp.float32))
        a = self.edge_attributes(z_t, h, atom_mask, cond, deterministic=deterministic,
                                 sc_sq_dist=sc_sq_dist)  # fmt: skip
        if sc_sq_dist is not None:
            a = jnp.concatenate([a, sc_sq_dist[..., None]], axis=-1)
        x_final = self.egnn(h_all, z_t, atom_mask, a).x
        return remove_mean_with_mask(x_final - z_t, atom_mask)

    def forward(
        self,
        z_t: jax.Array,
        t: jax.Array,
        z_h: jax.Array,
        atom_mask: jax.Array,
        encoding: SpectralEncoding,
        *,
        deterministic: bool,
        z_sc: jax.Array | None = None,
    ) -> jax.Array:
        """``prepare`` followed by ``__call__`` (one step; also initialises all parameters)."""
        cond = self.prepare(encoding)
        return self(z_t, t, z_h, atom_mask, cond, deterministic=deterministic, z_sc=z_sc)
