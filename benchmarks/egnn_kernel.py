"""EGNN message-passing kernels on the same inputs and parameters: split-linear dense vs naive
dense vs jraph sparse, forward and forward+backward.

Run from the repository root:
    python -m benchmarks.egnn_kernel --batch 16 --atoms 29 --hidden 256 --layers 4

Implementations (one ``EGNN`` parameter tree shared by all three):

* ``dense``: the project's kernel (``egnn.dense_block``): the first Linear of phi_e and phi_x
  on ``[h_i, h_j, e_ij]`` is split into per-node products ``A h_i``, ``B h_j`` broadcast over
  pairs plus ``C e_ij``;
* ``naive``: written here, materialises ``[h_i, h_j, e_ij]`` as a ``[B, N, N, 2H + E]`` tensor
  and applies the unsplit Linear to it (the reference's arithmetic); everything else reuses the
  project's block helpers;
* ``sparse``: ``EGNN(kernel="sparse")``, jraph ``segment_sum`` over the ``B N (N - 1)`` ordered
  pairs of the complete graph.

Parameters come from the model's own initialisers (activations stay O(1)). Outputs (``h``,
``x``) of ``naive`` and ``sparse`` are checked against ``dense`` elementwise (allclose) and
parameter gradients per leaf in relative norm, before anything is timed. Forward+backward is
``jax.value_and_grad`` of ``mean(x^2) + mean(h^2)`` with respect to all parameters. Prints one
JSON object: medians (seconds), ratios naive/dense and sparse/dense (> 1 means dense is
faster), max-abs differences, XLA cost-analysis GFLOPs and the machine load.
"""

import argparse
import json

import jax
import jax.numpy as jnp
import numpy as np

from benchmarks import timing
from irgeodiff_jax.models import egnn, egnn_block
from irgeodiff_jax.utils.geometry import edge_mask

FEATURES = 34  # denoiser EGNN input width: [z_h, t] (17) + atom cross-attention output (17)
EDGE_ATTR = 16  # denoiser edge attribute a_ij width
RTOL, ATOL = 1e-4, 1e-4  # float32 reassociation of the first Linear (relative to output scale)


def naive_block(params: egnn_block.BlockParams, h, x, edge_attr, atom_mask):
    """``egnn.dense_block`` with the first Linear applied to the materialised concatenation.

    Args:
      params: block parameters; h ``[B, N, H]``; x ``[B, N, 3]``; edge_attr ``[B, N, N, A]``;
      atom_mask ``[B, N]``.

    Returns:
      ``(h, x)`` updated, same shapes.
    """
    dtype = jnp.float32
    node = atom_mask.astype(bool)[..., None]
    pair = (edge_mask(atom_mask) > 0)[..., None]
    diff = x[..., :, None, :] - x[..., None, :, :]
    sq_dist = jnp.sum(diff**2, axis=-1, keepdims=True)
    e = jnp.concatenate([sq_dist, edge_attr], axis=-1)

    def pair_input(h):
        n = h.shape[-2]
        h_i = jnp.broadcast_to(h[..., :, None, :], (*h.shape[:-2], n, n, h.shape[-1]))
        h_j = jnp.broadcast_to(h[..., None, :, :], h_i.shape)
        return jnp.concatenate([h_i, h_j, e], axis=-1)  # [B, N, N, 2H + E]

    m = egnn_block.gated_message(
        params, egnn_block.affine(params.edge_in, pair_input(h), dtype), dtype
    )
    agg = jnp.sum(jnp.where(pair, m, 0), axis=-2) / egnn_block.NORMALIZATION_FACTOR
    h = jnp.where(node, egnn_block.node_update(params, h, agg, dtype), 0)

    w = egnn_block.coord_weight(
        params, egnn_block.affine(params.coord_in, pair_input(h), dtype), dtype
    )
    trans = egnn_block.normalised_difference(diff, sq_dist) * w * egnn_block.COORDS_RANGE
    x = x + jnp.sum(jnp.where(pair, trans, 0), axis=-2) / egnn_block.NORMALIZATION_FACTOR
    return h, jnp.where(node, x, 0)


def naive_egnn(params, h, x, atom_mask, edge_attr):
    """The ``EGNN`` stack (``out_dim=None``) from its parameter dict, with ``naive_block``."""
    node = atom_mask.astype(bool)[..., None]
    x = jnp.where(node, x, 0)
    h = jnp.where(node, h, 0)
    emb = params["embedding"]
    h = h @ emb["kernel"] + emb["bias"]
    layers = sum(name.startswith("block_") for name in params)
    for layer in range(layers):
        block = egnn.block_params_from_tree(params[f"block_{layer}"])
        h, x = naive_block(block, h, x, edge_attr, atom_mask)
    return h, x


def make_inputs(batch: int, atoms: int, seed: int = 0):
    """Random ``(h [B,N,34], x [B,N,3], mask [B,N], a [B,N,N,16])``; molecule sizes vary."""
    rng = np.random.default_rng(seed)
    sizes = rng.integers(max(2, (3 * atoms) // 5), atoms + 1, size=batch)
    sizes[0] = atoms
    mask = (np.arange(atoms)[None, :] < sizes[:, None]).astype(np.float32)
    h = rng.normal(size=(batch, atoms, FEATURES)) * mask[..., None]
    x = 1.5 * rng.normal(size=(batch, atoms, 3)) * mask[..., None]
    a = rng.normal(size=(batch, atoms, atoms, EDGE_ATTR))
    a = 0.5 * (a + np.swapaxes(a, 1, 2))
    return tuple(jnp.asarray(v, jnp.float32) for v in (h, x, mask, a))


def implementations(hidden: int, layers: int) -> dict:
    """name -> forward ``f(params, h, x, mask, a) -> (h, x)``."""

    def module_forward(kind):
        model = egnn.EGNN(hidden_dim=hidden, num_layers=layers, out_dim=None, kernel=kind)

        def forward(params, h, x, mask, a):
            out = model.apply({"params": params}, h, x, mask, a)
            return out.h, out.x

        return forward

    return {
        "dense": module_forward("dense"),
        "naive": naive_egnn,
        "sparse": module_forward("sparse"),
    }


def with_backward(forward):
    """``(loss, grads)`` of ``mean(x^2) + mean(h^2)`` with respect to the parameters."""

    def loss(params, *inputs):
        h, x = forward(params, *inputs)
        return jnp.mean(x**2) + jnp.mean(h**2)

    return jax.value_and_grad(loss)


def _check_close(name: str, got, want, elementwise: bool) -> float:
    """Max-abs difference of two pytrees; raises AssertionError if they disagree.

    ``elementwise``: ``allclose`` per element (outputs). Otherwise per leaf
    ``|got - want| / |want| <= RTOL`` in Frobenius norm (gradients: sums over all pairs with
    cancellation, where a few small elements carry a large relative rounding error).
    """
    leaves = zip(jax.tree_util.tree_leaves(got), jax.tree_util.tree_leaves(want), strict=True)
    for g, w in leaves:
        g, w = np.asarray(g, np.float64), np.asarray(w, np.float64)
        if elementwise:
            atol = ATOL * max(1.0, float(np.max(np.abs(w))))
            np.testing.assert_allclose(g, w, rtol=RTOL, atol=atol, err_msg=name)
        elif np.linalg.norm(g - w) > RTOL * max(np.linalg.norm(w), 1e-12):
            raise AssertionError(
                f"{name}: relative difference {np.linalg.norm(g - w) / np.linalg.norm(w):.2e}"
                f" > {RTOL:g} in a leaf of shape {w.shape}"
            )
    return timing.max_abs_diff(got, want)


def run(batch: int, atoms: int, hidden: int, layers: int, repeats: int, seed: int = 0) -> dict:
    """Checks agreement, times every implementation and returns the JSON dictionary."""
    inputs = make_inputs(batch, atoms, seed)
    model = egnn.EGNN(hidden_dim=hidden, num_layers=layers, out_dim=None)
    params = timing.initialise(
        lambda k: model.init(k, *inputs[:3], inputs[3])["params"], jax.random.key(seed)
    )
    impls = implementations(hidden, layers)
    result = {"config": {"batch": batch, "atoms": atoms, "hidden": hidden, "layers": layers}}
    result["config"].update(features=FEATURES, edge_attr=EDGE_ATTR, dtype="float32")
    for mode, wrap in (("forward", lambda f: f), ("forward_backward", with_backward)):
        compiled, outputs, gflops = {}, {}, {}
        for name, fn in impls.items():
            compiled[name], _ = timing.compile_jitted(wrap(fn), params, *inputs)
            outputs[name] = compiled[name](params, *inputs)
            gflops[name] = float(f"{timing.cost_gflops(compiled[name]):.4g}")
        diffs = {
            f"{name}_vs_dense": _check_close(
                f"{mode}: {name}", outputs[name], outputs["dense"], mode == "forward"
            )
            for name in ("naive", "sparse")
        }
        times = timing.time_interleaved(
            {name: (lambda c=c: c(params, *inputs)) for name, c in compiled.items()},
            repeats=repeats,
        )
        result[mode] = {
            "time": {name: t.as_dict() for name, t in times.items()},
            "ratio_naive_over_dense": timing.ratio(times["naive"], times["dense"]),
            "ratio_sparse_over_dense": timing.ratio(times["sparse"], times["dense"]),
            "max_abs_diff": diffs,
            "xla_gflops": gflops,
        }
    result["machine"] = timing.machine()
    return result


def main(argv: list[str] | None = None) -> dict:
    """Parses ``argv``, runs the benchmark, prints and returns the JSON dictionary."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--atoms", type=int, default=29)
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=5, help="timed rounds")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if min(args.batch, args.hidden, args.layers, args.repeats) < 1 or args.atoms < 2:
        parser.error("batch, hidden, layers and repeats must be >= 1 and atoms >= 2")
    result = run(args.batch, args.atoms, args.hidden, args.layers, args.repeats, args.seed)
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
