"""Parameters and pure per-block arithmetic of the EGNN, shared by both message-passing kernels.

``egnn.py`` (dense ``[B, N, N, ...]`` kernel and the ``EGNN`` module) and ``egnn_sparse.py``
(jraph ``segment_sum`` kernel) both build on these pieces, so the two kernels compute the same
block from the same ``BlockParams`` (equations in ``egnn.py``). Imports no other EGNN module.
"""

import flax.linen as nn
import jax
import jax.numpy as jnp
from flax import struct

# Constants of the reference EGNN (EDM `main_qm9.py` CLI defaults, kept by GeoLDM/IR-GeoDiff).
# Aggregation is a plain sum over neighbours divided by this factor (`normalization_factor=1`).
NORMALIZATION_FACTOR = 1.0
# Coordinate differences are divided by (|x_i - x_j| + NORM_CONSTANT) (`norm_constant=1`).
NORM_CONSTANT = 1.0
# Added under the square root of the squared distance (`coord2diff`), keeps gradients finite.
DISTANCE_EPS = 1e-8
# tanh-gated coordinate step is scaled by this in *every* block (`coords_range=15`; the
# reference computes 15/n_layers but never uses it).
COORDS_RANGE = 15.0
# Gain of the xavier-uniform init of phi_x's last (bias-free) layer: tiny initial steps.
COORD_HEAD_GAIN = 0.001


@struct.dataclass
class Linear:
    """Parameters of one affine layer ``y = x @ kernel (+ bias)``; kernel ``[in, out]``."""

    kernel: jax.Array
    bias: jax.Array | None = None


@struct.dataclass
class BlockParams:
    """All parameters of one EGNN block (GCL + coordinate update), H = hidden width, E = edge.

    Attributes:
      edge_in: W1, ``[2H + E, H]`` over ``[h_i, h_j, e_ij]``.
      edge_out: W2, ``[H, H]``.
      gate: ``[H, 1]``, sigmoid attention on messages.
      node_in: W3, ``[2H, H]`` over ``[h_i, agg_i]``.
      node_out: W4, ``[H, H]``.
      coord_in: phi_x first layer, ``[2H + E, H]``.
      coord_mid: phi_x second layer, ``[H, H]``.
      coord_out: phi_x last layer, ``[H, 1]``, no bias.
    """

    edge_in: Linear
    edge_out: Linear
    gate: Linear
    node_in: Linear
    node_out: Linear
    coord_in: Linear
    coord_mid: Linear
    coord_out: Linear


def affine(p: Linear, x: jax.Array, dtype) -> jax.Array:
    """``x @ kernel + bias`` computed in ``dtype`` (parameters are cast, stored float32)."""
    y = jnp.dot(x.astype(dtype), p.kernel.astype(dtype))
    return y if p.bias is None else y + p.bias.astype(dtype)


def split_first_layer(p: Linear, hidden: int) -> tuple[Linear, Linear, Linear]:
    """Splits a ``[2H + E, out]`` layer on ``[h_i, h_j, e]`` into its ``h_i``, ``h_j``, ``e`` parts.

    ``W [h_i, h_j, e] + b = (A h_i + b) + B h_j + C e``; the bias goes with ``A``.
    """
    k = p.kernel
    return (
        Linear(k[:hidden], p.bias),
        Linear(k[hidden : 2 * hidden]),
        Linear(k[2 * hidden :]),
    )


def node_update(p: BlockParams, h: jax.Array, agg: jax.Array, dtype) -> jax.Array:
    """Residual ``h + W4 SiLU(W3 [h, agg])`` (float32 residual stream), shape of ``h``."""
    upd = affine(
        p.node_out, nn.silu(affine(p.node_in, jnp.concatenate([h, agg], -1), dtype)), dtype
    )
    return h + upd.astype(h.dtype)


def gated_message(p: BlockParams, pre: jax.Array, dtype) -> jax.Array:
    """From the first-layer pre-activation ``[..., H]``: ``m * sigmoid(w m)`` with ``m`` = MLP."""
    m = nn.silu(affine(p.edge_out, nn.silu(pre), dtype))
    return m * nn.sigmoid(affine(p.gate, m, dtype))


def coord_weight(p: BlockParams, pre: jax.Array, dtype) -> jax.Array:
    """``tanh(phi_x) * COORDS_RANGE`` in float32 from phi_x's first-layer pre-activation."""
    phi = affine(p.coord_out, nn.silu(affine(p.coord_mid, nn.silu(pre), dtype)), dtype)
    return jnp.tanh(phi.astype(jnp.float32))


def normalised_difference(diff: jax.Array, sq_dist: jax.Array) -> jax.Array:
    """``(x_i - x_j) / (sqrt(r_ij + eps) + NORM_CONSTANT)``; ``sq_dist`` has a trailing 1 axis."""
    return diff / (jnp.sqrt(sq_dist + DISTANCE_EPS) + NORM_CONSTANT)
