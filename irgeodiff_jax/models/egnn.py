"""E(n)-equivariant graph network (EGNN) on dense, masked, fully connected molecule graphs.

Equations (method.md §4; reference constants of EDM/GeoLDM/IR-GeoDiff ``egnn_new.py``, see
reference-notes.md §1.5). For every ordered pair ``(i, j)`` of distinct real atoms with
``r_ij = |x_i - x_j|^2`` and edge features ``e_ij = [r_ij (current x), a_ij]``:

* message     ``m_ij = SiLU(W2 SiLU(W1 [h_i, h_j, e_ij]))``, gated ``m_ij *= sigmoid(w m_ij)``
  and by the edge mask (distinct real atoms);
* aggregation ``agg_i = sum_j m_ij / NORMALIZATION_FACTOR``;
* node update ``h_i <- (h_i + W4 SiLU(W3 [h_i, agg_i])) * atom_mask_i``;
* coordinates ``x_i <- (x_i + sum_j (x_i - x_j) / (sqrt(r_ij + EPS) + NORM_CONSTANT)
  * tanh(phi_x([h_i, h_j, e_ij])) * coords_range) * atom_mask_i``, computed with the *updated*
  ``h`` and the same ``e_ij`` (distances taken before the update).

Each block is one GCL plus one equivariant coordinate update (``inv_sublayers = 1``). ``EGNN``
wraps the blocks in an input ``Linear(in -> hidden)`` and an optional output
``Linear(hidden -> out)``.

Positions are E(3)-equivariant (rotations, reflections, translations); features are invariant;
the output is permutation-equivariant over atoms and padded atoms are ignored (their inputs may
hold any finite values; their outputs are zero).

The per-block arithmetic is a pure function of a ``BlockParams`` pytree (``egnn_block.py``, shared
by both kernels), behind the single entry point ``message_passing(kind, ...)``: ``"dense"`` (this
file) or ``"sparse"`` (jraph ``segment_sum`` over a ``GraphsTuple``, ``egnn_sparse.py``), both
with identical parameters.
"""

from typing import Literal

import flax.linen as nn
import jax
import jax.numpy as jnp
from flax import struct

from irgeodiff_jax.models.egnn_block import (
    COORD_HEAD_GAIN,
    COORDS_RANGE,
    NORMALIZATION_FACTOR,
    BlockParams,
    Linear,
    affine,
    coord_weight,
    gated_message,
    node_update,
    normalised_difference,
    split_first_layer,
)
from irgeodiff_jax.models.layers import (
    stack_layers,
    torch_default_bias_init,
    torch_default_kernel_init,
    xavier_uniform,
)
from irgeodiff_jax.utils.geometry import edge_mask, pairwise_sq_dist

Kernel = Literal["dense", "sparse"]


def _dense_pair_layer(p: Linear, h: jax.Array, e: jax.Array, dtype) -> jax.Array:
    """``W1 [h_i, h_j, e_ij] + b`` for all pairs without building the concatenation.

    Args:
      p: layer over ``[h_i, h_j, e_ij]``, kernel ``[2H + E, out]``.
      h: node features ``[B, N, H]``.
      e: edge features ``[B, N, N, E]``.
      dtype: computation dtype.

    Returns:
      ``[B, N, N, out]``; ``A h`` and ``B h`` are computed once per node and broadcast.
    """
    p_i, p_j, p_e = split_first_layer(p, h.shape[-1])
    return (
        affine(p_i, h, dtype)[..., :, None, :]
        + affine(p_j, h, dtype)[..., None, :, :]
        + (affine(p_e, e, dtype))
    )


def dense_block(
    params: BlockParams,
    h: jax.Array,
    x: jax.Array,
    edge_attr: jax.Array,
    atom_mask: jax.Array,
    *,
    coords_range: float = COORDS_RANGE,
    dtype=jnp.float32,
) -> tuple[jax.Array, jax.Array]:
    """One EGNN block on dense complete graphs (see module docstring for the equations).

    Args:
      params: block parameters.
      h: node features ``[B, N, H]`` (float32).
      x: positions ``[B, N, 3]`` (float32).
      edge_attr: extra edge features ``a_ij`` ``[B, N, N, A]``; ``E = A + 1``.
      atom_mask: ``[B, N]``, 1/True for real atoms.
      coords_range: scale of the tanh-gated coordinate step.
      dtype: computation dtype of the MLPs (coordinates stay float32).

    Returns:
      ``(h, x)`` updated, same shapes; padded rows are zero.
    """
    node = atom_mask.astype(bool)[..., None]
    pair = (edge_mask(atom_mask) > 0)[..., None]
    diff = x[..., :, None, :] - x[..., None, :, :]
    sq_dist = jnp.sum(diff**2, axis=-1, keepdims=True)
    e = jnp.concatenate([sq_dist, edge_attr.astype(sq_dist.dtype)], axis=-1)

    m = gated_message(params, _dense_pair_layer(params.edge_in, h, e, dtype), dtype)
    agg = jnp.sum(jnp.where(pair, m, 0), axis=-2) / NORMALIZATION_FACTOR
    h = jnp.where(node, node_update(params, h, agg.astype(h.dtype), dtype), 0)

    w = coord_weight(params, _dense_pair_layer(params.coord_in, h, e, dtype), dtype)
    trans = normalised_difference(diff, sq_dist) * w * coords_range
    x = x + jnp.sum(jnp.where(pair, trans, 0), axis=-2) / NORMALIZATION_FACTOR
    return h, jnp.where(node, x, 0)


def message_passing(
    kind: Kernel,
    params: BlockParams,
    h: jax.Array,
    x: jax.Array,
    edge_attr: jax.Array,
    atom_mask: jax.Array,
    *,
    coords_range: float = COORDS_RANGE,
    dtype=jnp.float32,
) -> tuple[jax.Array, jax.Array]:
    """The single message-passing entry point; arguments as in ``dense_block``.

    ``kind="sparse"`` converts the dense batch to a jraph ``GraphsTuple`` over all ordered pairs
    of distinct atoms (padded pairs masked) and runs the ``segment_sum`` kernel of
    ``egnn_sparse.py`` with the same parameters (imported lazily: jraph stays off the default
    path).
    """
    if kind == "dense":
        return dense_block(
            params, h, x, edge_attr, atom_mask, coords_range=coords_range, dtype=dtype
        )
    if kind == "sparse":
        from irgeodiff_jax.models import egnn_sparse  # noqa: PLC0415 (optional jraph path)

        return egnn_sparse.dense_block_via_graph(
            params, h, x, edge_attr, atom_mask, coords_range=coords_range, dtype=dtype
        )
    raise ValueError(f"unknown message-passing kernel {kind!r}; expected 'dense' or 'sparse'")


class _LinearParams(nn.Module):
    """Creates the parameters of one affine layer (same tree layout as ``nn.Dense``)."""

    in_features: int
    out_features: int
    use_bias: bool = True
    kernel_init: nn.initializers.Initializer = torch_default_kernel_init()

    @nn.compact
    def __call__(self) -> Linear:
        kernel = self.param("kernel", self.kernel_init, (self.in_features, self.out_features))
        if not self.use_bias:
            return Linear(kernel)
        bias = self.param("bias", torch_default_bias_init(self.in_features), (self.out_features,))
        return Linear(kernel, bias)


class BlockParamsModule(nn.Module):
    """Holds the float32 parameters of one block (PyTorch default Linear init, as the reference;
    phi_x's last layer xavier-uniform with gain ``COORD_HEAD_GAIN`` and no bias)."""

    hidden_dim: int
    edge_dim: int

    @nn.compact
    def __call__(self) -> BlockParams:
        hid, pair_in = self.hidden_dim, 2 * self.hidden_dim + self.edge_dim
        return BlockParams(
            edge_in=_LinearParams(pair_in, hid, name="edge_in")(),
            edge_out=_LinearParams(hid, hid, name="edge_out")(),
            gate=_LinearParams(hid, 1, name="gate")(),
            node_in=_LinearParams(2 * hid, hid, name="node_in")(),
            node_out=_LinearParams(hid, hid, name="node_out")(),
            coord_in=_LinearParams(pair_in, hid, name="coord_in")(),
            coord_mid=_LinearParams(hid, hid, name="coord_mid")(),
            coord_out=_LinearParams(
                hid,
                1,
                use_bias=False,
                kernel_init=xavier_uniform(COORD_HEAD_GAIN),
                name="coord_out",
            )(),
        )


def block_params_from_tree(tree) -> BlockParams:
    """``BlockParams`` from the parameter dict of one ``block_{l}`` (e.g. for the sparse path)."""
    return BlockParams(
        **{name: Linear(leaf["kernel"], leaf.get("bias")) for name, leaf in tree.items()}
    )


@struct.dataclass
class EGNNOutput:
    """EGNN outputs: invariant ``h [B, N, out]`` and equivariant positions ``x [B, N, 3]``."""

    h: jax.Array
    x: jax.Array


class EGNN(nn.Module):
    """Stack of EGNN blocks on the complete graph of real atoms.

    Attributes:
      hidden_dim: width H of all hidden layers (reference 256).
      num_layers: number of blocks (reference: encoder 1, decoder and denoiser 9).
      out_dim: width of the output ``Linear(H -> out)``; ``None`` skips it and returns the
        hidden features (the autoencoder and denoiser only use positions; the reference builds
        this layer there but never uses its output).
      coords_range: tanh step scale per block (reference 15).
      kernel: message-passing implementation, ``"dense"`` or ``"sparse"`` (same parameters).
      dtype: computation dtype of the MLPs; positions and the residual stream stay float32.
      remat: recompute each block's activations in the backward pass (``jax.checkpoint``)
        instead of keeping them: same values and gradients, less memory, more compute.
      scan_layers: run the blocks as one ``lax.scan`` over their stacked parameters, each
        block rematerialised (implies ``remat``): the memory of the backward pass no longer grows
        with the number of blocks, whatever the compiler's schedule. Same parameter tree.
    """

    hidden_dim: int = 256
    num_layers: int = 9
    out_dim: int | None = None
    coords_range: float = COORDS_RANGE
    kernel: Kernel = "dense"
    dtype: jnp.dtype = jnp.float32
    remat: bool = False
    scan_layers: bool = False

    @nn.compact
    def __call__(
        self,
        h: jax.Array,
        x: jax.Array,
        atom_mask: jax.Array,
        edge_attr: jax.Array | None = None,
    ) -> EGNNOutput:
        """Runs the stack.

        Args:
          h: invariant node features ``[B, N, F]``.
          x: positions ``[B, N, 3]``.
          atom_mask: ``[B, N]``, 1/True for real atoms.
          edge_attr: invariant edge features ``a_ij`` ``[B, N, N, A]`` used in every block;
            ``None`` means the layer-0 squared distances (``A = 1``, EDM/GeoLDM/AE convention).

        Returns:
          ``EGNNOutput``: ``h`` invariant, ``x`` E(3)-equivariant; padded rows zero.
        """
        node = atom_mask.astype(bool)[..., None]
        x = jnp.where(node, x.astype(jnp.float32), 0)
        h = jnp.where(node, h, 0)
        if edge_attr is None:
            edge_attr = pairwise_sq_dist(x)[..., None]
        edge_attr = edge_attr.astype(jnp.float32)
        h = nn.Dense(
            self.hidden_dim,
            kernel_init=torch_default_kernel_init(),
            bias_init=torch_default_bias_init(h.shape[-1]),
            dtype=self.dtype,
            name="embedding",
        )(h).astype(jnp.float32)

        def block(params, h, x, edge_attr, atom_mask):
            return message_passing(
                self.kernel, params, h, x, edge_attr, atom_mask,
                coords_range=self.coords_range, dtype=self.dtype,
            )  # fmt: skip

        if self.remat or self.scan_layers:
            block = jax.checkpoint(block)
        blocks = [
            BlockParamsModule(self.hidden_dim, 1 + edge_attr.shape[-1], name=f"block_{layer}")()
            for layer in range(self.num_layers)
        ]
        if self.scan_layers:
            # One loop over the stacked block parameters: the backward pass keeps only each
            # block's input (h, x) and recomputes one block at a time.
            def body(carry, params):
                return block(params, *carry, edge_attr, atom_mask), None

            (h, x), _ = jax.lax.scan(body, (h, x), stack_layers(blocks))
        else:
            for params in blocks:
                h, x = block(params, h, x, edge_attr, atom_mask)
        if self.out_dim is not None:
            h = nn.Dense(
                self.out_dim,
                kernel_init=torch_default_kernel_init(),
                bias_init=torch_default_bias_init(self.hidden_dim),
                dtype=self.dtype,
                name="embedding_out",
            )(h).astype(jnp.float32)
            h = jnp.where(node, h, 0)
        return EGNNOutput(h=h, x=x)
