"""Where the denoiser's work goes: XLA FLOPs of each part of one step, and the padding share.

    python -m benchmarks.denoiser_profile [--config=configs/qm9s.py] [--batch=16] [--atoms=29]

FLOPs come from XLA's cost analysis of the *lowered* (not compiled) computations, so the
numbers do not depend on machine load and need no large memory. Parts of one denoiser call
(``Denoiser.__call__`` with the spectral K/V prepared once per molecule):

* ``atom_cross_attention``: spectrum -> atom Transformer (queries = N atoms);
* ``edge_stream``: spectrum -> edge Transformer over the N(N-1)/2 unordered pairs, with its
  input and output projections (``Denoiser.edge_attributes``);
* ``egnn``: the EGNN blocks on all N^2 pairs;
* ``call``: the whole call (the three above plus glue).

Each part is given forward and forward+backward (gradient with respect to its parameters and
inputs) GFLOPs. ``padding``: for the benchmark batch of ``benchmarks.train_step`` (12..N real
atoms per molecule, seed 0), the fraction of pair work that involves padded atoms: what skipping
padded pairs (size buckets or packed pairs) could save at most. Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json

import jax
import jax.numpy as jnp
import numpy as np

from benchmarks import train_step as train_step_bench
from irgeodiff_jax.models import costs, factory


def _gflops(fn, *args) -> float:
    cost = jax.jit(fn).lower(*args).cost_analysis()
    cost = cost[0] if isinstance(cost, list | tuple) else cost
    return round(float(cost["flops"]) / 1e9, 6)


def _fwd_bwd(fn, params, *args) -> dict:
    """GFLOPs of ``fn(params, *args)`` (summed to a scalar) and of its gradient."""

    def loss(p, *a):
        out = fn(p, *a)
        return sum(jnp.sum(leaf) for leaf in jax.tree.leaves(out))

    return {
        "forward": _gflops(fn, params, *args),
        "forward_backward": _gflops(jax.grad(loss, argnums=(0, 1)), params, *args),
    }


def profile(config, batch: int, atoms: int) -> dict:
    models = factory.create_models(config)
    params = costs.param_shapes(config)
    cls, den = models["classifier"], models["denoiser"]
    x = factory.example_inputs(config, batch, atoms)
    encoding = jax.eval_shape(
        lambda p, s, f: cls.apply({"params": p}, s, f, deterministic=True, method="encode"),
        params["classifier"], x["spectrum_tokens"], x["formula_tokens"],
    )  # fmt: skip
    p = params["denoiser"]
    cond = jax.eval_shape(lambda q, e: den.apply({"params": q}, e, method="prepare"), p, encoding)
    feats = den.latent_h_dim + 1
    h = jnp.zeros((batch, atoms, feats), jnp.float32)
    z_h = jnp.zeros((batch, atoms, den.latent_h_dim), jnp.float32)
    pos, mask, t = x["positions"], x["atom_mask"], x["t"]
    a = jnp.zeros((batch, atoms, atoms, int(config.model.denoiser.edge.out_dim)), jnp.float32)
    h_all = jnp.zeros((batch, atoms, 2 * feats), jnp.float32)

    def apply(method):
        return lambda q, *args: den.apply({"params": q}, *args, method=method)

    parts = {
        "atom_cross_attention": _fwd_bwd(
            apply(lambda m, hh, c: m.atom_cross_attention(
                hh, mask, c.atom_kvs, c.mask, deterministic=True)),
            p, h, cond,
        ),
        "edge_stream": _fwd_bwd(
            apply(lambda m, xx, c: m.edge_attributes(xx, h, mask, c, deterministic=True)),
            p, pos, cond,
        ),
        "egnn": _fwd_bwd(apply(lambda m, xx, aa: m.egnn(h_all, xx, mask, aa).x), p, pos, a),
        "call": _fwd_bwd(
            apply(lambda m, xx, c: m(xx, t, z_h, mask, c, deterministic=True)), p, pos, cond
        ),
    }  # fmt: skip
    call = parts["call"]["forward"]
    for part in parts.values():
        part["share_of_call_forward"] = round(part["forward"] / call, 3)
    num = np.asarray(train_step_bench.synthetic_batch(0, batch, atoms, 5, 20)["num_atoms"])
    padding = {
        "real_atoms_mean": float(num.mean()),
        "unordered_pairs_real_fraction": round(
            float((num * (num - 1) / 2).sum() / (batch * atoms * (atoms - 1) / 2)), 3
        ),
        "all_pairs_real_fraction": round(float((num**2).sum() / (batch * atoms**2)), 3),
    }
    return {"batch": batch, "atoms": atoms, "gflops": parts, "padding": padding}


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--config", default="configs/qm9s.py")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--atoms", type=int, default=29)
    args = ap.parse_args(argv)
    config = train_step_bench.load_config(args.config, "float32", args.atoms, [])
    result = {"config": args.config, **profile(config, args.batch, args.atoms)}
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
