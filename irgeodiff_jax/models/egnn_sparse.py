"""Sparse EGNN message passing over a jraph ``GraphsTuple`` (``segment_sum``), same parameters.

The block arithmetic is the one of ``egnn.dense_block`` (equations in ``egnn.py``, shared pieces
in ``egnn_block.py``), but messages live on an explicit edge list: ``receivers`` are the
aggregating atoms ``i`` and ``senders`` the neighbours ``j`` of the reference's ``(row, col)``
convention, so ``h_i = nodes[receivers]``, ``x_i - x_j = x[receivers] - x[senders]`` and
``agg_i = segment_sum(m, receivers)``. This path is meant for graphs too large for dense
``[B, N, N, ...]`` tensors (cut-off graphs, big molecules); on complete graphs it reproduces the
dense kernel (tested to 1e-5).

Graph layout used here: ``nodes = {"h": [V, H], "x": [V, 3], "mask": [V]}`` and
``edges = {"attr": [M, A], "mask": [M]}``; masks are 1/True for real nodes/edges (so a graph can
be padded to a static size, as flax's ogbg example does with ``jraph.pad_with_graphs``).
"""

import jax
import jax.numpy as jnp
import jraph
import numpy as np

from irgeodiff_jax.models.egnn_block import (
    COORDS_RANGE,
    NORMALIZATION_FACTOR,
    BlockParams,
    affine,
    coord_weight,
    gated_message,
    node_update,
    normalised_difference,
    split_first_layer,
)


def _pair_layer(p, h: jax.Array, e: jax.Array, receivers, senders, dtype) -> jax.Array:
    """``W1 [h_i, h_j, e_ij] + b`` per edge ``[M, out]`` (per-node products, then gathered)."""
    p_i, p_j, p_e = split_first_layer(p, h.shape[-1])
    return affine(p_i, h, dtype)[receivers] + affine(p_j, h, dtype)[senders] + affine(p_e, e, dtype)


def sparse_block(
    params: BlockParams,
    graph: jraph.GraphsTuple,
    *,
    coords_range: float = COORDS_RANGE,
    dtype=jnp.float32,
) -> jraph.GraphsTuple:
    """One EGNN block (GCL + coordinate update) on an edge list.

    Args:
      params: block parameters (shared with the dense kernel).
      graph: ``GraphsTuple`` in the layout of the module docstring.
      coords_range: scale of the tanh-gated coordinate step.
      dtype: computation dtype of the MLPs (positions stay float32).

    Returns:
      The graph with updated ``nodes["h"]`` and ``nodes["x"]`` (masked rows zero).
    """
    nodes, edges = graph.nodes, graph.edges
    h, x = nodes["h"], nodes["x"]
    num_nodes = h.shape[0]
    node = nodes["mask"].astype(bool)[:, None]
    live = edges["mask"].astype(bool)[:, None]
    recv, send = graph.receivers, graph.senders

    diff = x[recv] - x[send]
    sq_dist = jnp.sum(diff**2, axis=-1, keepdims=True)
    e = jnp.concatenate([sq_dist, edges["attr"].astype(sq_dist.dtype)], axis=-1)

    m = gated_message(params, _pair_layer(params.edge_in, h, e, recv, send, dtype), dtype)
    m = jnp.where(live, m, 0)
    agg = jax.ops.segment_sum(m, recv, num_segments=num_nodes) / NORMALIZATION_FACTOR
    h = jnp.where(node, node_update(params, h, agg.astype(h.dtype), dtype), 0)

    w = coord_weight(params, _pair_layer(params.coord_in, h, e, recv, send, dtype), dtype)
    trans = jnp.where(live, normalised_difference(diff, sq_dist) * w * coords_range, 0)
    x = x + jax.ops.segment_sum(trans, recv, num_segments=num_nodes) / NORMALIZATION_FACTOR
    x = jnp.where(node, x, 0)
    return graph._replace(nodes={**nodes, "h": h, "x": x})


def complete_graph_indices(batch: int, num_atoms: int) -> tuple[np.ndarray, np.ndarray]:
    """Static ``(receivers, senders)`` of all ordered pairs ``i != j`` in each of ``batch`` graphs.

    Node ``n`` of molecule ``b`` is flat index ``b * num_atoms + n``; edges are ordered molecule
    by molecule, then by ``i`` (receiver), then ``j``. Length ``batch * N * (N - 1)``.
    """
    i, j = np.nonzero(~np.eye(num_atoms, dtype=bool))
    offsets = (np.arange(batch) * num_atoms)[:, None]
    return (offsets + i).reshape(-1), (offsets + j).reshape(-1)


def dense_to_graph(
    h: jax.Array, x: jax.Array, edge_attr: jax.Array, atom_mask: jax.Array
) -> jraph.GraphsTuple:
    """Complete graphs of a dense padded batch as one ``GraphsTuple`` (padded pairs masked).

    Args:
      h: ``[B, N, H]``; x: ``[B, N, 3]``; edge_attr: ``[B, N, N, A]``; atom_mask: ``[B, N]``.

    Returns:
      ``GraphsTuple`` with ``B * N`` nodes and ``B * N * (N - 1)`` edges (static sizes).
    """
    batch, num_atoms = atom_mask.shape
    recv, send = complete_graph_indices(batch, num_atoms)
    flat_mask = atom_mask.astype(bool).reshape(-1)
    flat_attr = edge_attr.reshape(batch * num_atoms * num_atoms, -1)
    # Position of edge (b, i, j) in the flattened [B, N, N] grid.
    b, i = np.divmod(recv, num_atoms)
    grid = (b * num_atoms + i) * num_atoms + send % num_atoms
    return jraph.GraphsTuple(
        nodes={"h": h.reshape(batch * num_atoms, -1), "x": x.reshape(-1, 3), "mask": flat_mask},
        edges={"attr": flat_attr[grid], "mask": flat_mask[recv] & flat_mask[send]},
        receivers=jnp.asarray(recv),
        senders=jnp.asarray(send),
        n_node=jnp.full((batch,), num_atoms),
        n_edge=jnp.full((batch,), num_atoms * (num_atoms - 1)),
        globals=None,
    )


def dense_block_via_graph(
    params: BlockParams,
    h: jax.Array,
    x: jax.Array,
    edge_attr: jax.Array,
    atom_mask: jax.Array,
    *,
    coords_range: float = COORDS_RANGE,
    dtype=jnp.float32,
) -> tuple[jax.Array, jax.Array]:
    """``egnn.dense_block`` computed by ``sparse_block`` (dense in, dense out)."""
    batch, num_atoms = atom_mask.shape
    graph = sparse_block(
        params,
        dense_to_graph(h, x, edge_attr, atom_mask),
        coords_range=coords_range,
        dtype=dtype,
    )
    return (
        graph.nodes["h"].reshape(batch, num_atoms, -1),
        graph.nodes["x"].reshape(batch, num_atoms, 3),
    )
