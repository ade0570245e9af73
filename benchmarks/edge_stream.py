"""Denoiser cost options on the same inputs and parameters: unordered vs ordered edge pairs, and
conditioning prepared once vs recomputed in every step of a sampler-like ``lax.scan``.

Run from the repository root:
    python -m benchmarks.edge_stream --batch 8 --atoms 29 --width half

The denoiser is the one of ``configs/qm9s.py`` (``--size base``: paper depths and widths);
``--width half`` halves every width (EGNN hidden, attention dims, feed-forward and head widths;
heads and depths unchanged) so the runs fit a loaded 2-core CPU. Inputs are random: latent
positions with zero centre of mass, ``z_h``, ``t`` and a spectral encoding of
``spectrum_points / patch_size + formula_len`` tokens (no classifier is run).

Two comparisons, each compiled once and timed interleaved (``benchmarks/timing.py``):

* ``edge_pairs``: one denoiser step (``__call__`` with a prepared ``DenoiserCondition``) with
  ``edge_pairs="unordered"`` (``N(N-1)/2`` edge tokens) vs ``"ordered"`` (``N^2``, the
  reference). Reports the max-abs difference of ``eps`` (exact up to float32 rounding), wall
  times, their ratio and the XLA cost-analysis GFLOPs of each.
* ``prepare_reuse``: ``--steps`` denoiser calls in a ``lax.scan`` (``z <- z - 0.02 eps``,
  ``t`` from 1 down), with ``prepare`` hoisted out of the scan vs ``forward`` (``prepare`` +
  ``__call__``) inside the scan body. Reports the max-abs difference of the final ``z``, wall
  times and their ratio, the GFLOPs of one ``prepare`` and of one step, and the cost-analysis
  GFLOPs of both compiled scans (cost analysis counts a loop body once) and how many spectral
  K/V tensors each compiled scan carries into its loop body: XLA's loop-invariant code motion
  can hoist the projections out of the scan on its own (``carried_token_tensors``).
"""

import argparse
import json
import re

import jax
import jax.numpy as jnp
import numpy as np

from benchmarks import timing
from configs import common, qm9s
from irgeodiff_jax.models import factory
from irgeodiff_jax.models.spectral_encoder import SpectralEncoding
from irgeodiff_jax.utils.geometry import remove_mean_with_mask

TOL = 1e-4  # max-abs tolerance between exact-equivalent variants (float32 rounding only)
STEP_SIZE = 0.02  # z <- z - STEP_SIZE * eps in the scan (keeps positions O(1))
HALVED = (
    "hidden_dim",
    "atom_attn_dim",
    "atom_attn_ff_dim",
    "atom_attn_hidden_dim",
    "edge_dim",
    "edge_ff_dim",
)


def build_denoiser(size: str, width: str):
    """``(Denoiser, config)`` of ``configs/qm9s.py:size=...``, widths halved if ``width='half'``."""
    config = qm9s.get_config(f"size={size}")
    den = factory.create_models(config)["denoiser"]
    if width == "half":
        den = den.clone(**{name: getattr(den, name) // 2 for name in HALVED})
    return den, config


def make_inputs(den, config, batch: int, atoms: int, seed: int = 0) -> dict:
    """Random denoiser inputs (sizes vary; molecule 0 fills all ``atoms`` slots)."""
    rng = np.random.default_rng(seed)
    sizes = rng.integers(max(2, (3 * atoms) // 5), atoms + 1, size=batch)
    sizes[0] = atoms
    mask = (np.arange(atoms)[None, :] < sizes[:, None]).astype(np.float32)
    num_tokens = config.data.spectrum_points // config.model.spectral_encoder.patch_size
    formula = rng.integers(3, config.data.formula_len + 1, size=batch)
    token_mask = np.arange(num_tokens + config.data.formula_len)[None, :] < (
        num_tokens + formula[:, None]
    )
    z = rng.normal(size=(batch, atoms, 3)).astype(np.float32)
    return {
        "z_t": remove_mean_with_mask(jnp.asarray(z), jnp.asarray(mask)),
        "t": jnp.asarray(rng.uniform(0.05, 1.0, size=batch), jnp.float32),
        "z_h": jnp.asarray(rng.normal(size=(batch, atoms, den.latent_h_dim)), jnp.float32),
        "atom_mask": jnp.asarray(mask),
        "encoding": SpectralEncoding(
            tokens=jnp.asarray(
                rng.normal(size=(batch, token_mask.shape[1], den.edge_dim)), jnp.float32
            ),
            mask=jnp.asarray(token_mask),
        ),
    }


def _step(module):
    """``(params, cond, z_t, t, z_h, mask) -> eps`` (one call with prepared conditioning)."""
    return lambda p, cond, z, t, z_h, mask: module.apply(
        {"params": p}, z, t, z_h, mask, cond, deterministic=True
    )


def _prepare(module):
    return lambda p, enc: module.apply({"params": p}, enc, method="prepare")


def _scan(module, steps: int, reuse: bool):
    """``(params, enc, z0, z_h, mask) -> z_final`` after ``steps`` denoiser calls."""

    def sample(p, enc, z0, z_h, mask):
        cond = _prepare(module)(p, enc) if reuse else None

        def body(z, t):
            t_b = jnp.full(mask.shape[:1], t)
            if reuse:
                eps = _step(module)(p, cond, z, t_b, z_h, mask)
            else:
                eps = module.apply(
                    {"params": p}, z, t_b, z_h, mask, enc, deterministic=True, method="forward"
                )
            return z - STEP_SIZE * eps, None

        z, _ = jax.lax.scan(body, z0, jnp.linspace(1.0, 1.0 / steps, steps))
        return z

    return sample


def carried_token_tensors(compiled, batch: int, tokens: int) -> int:
    """Float tensors shaped ``[batch, tokens, ...]`` among the scan body's loop inputs.

    Counted in the optimised HLO's while-body signature: ``2 * (atom + edge attention
    layers)`` means every spectral K/V was computed *before* the loop (hoisted); 1 would be
    only the raw spectral tokens, with the projections redone inside the loop.
    """
    hlo = compiled.as_text()
    body = re.search(r"body=%?([\w.\-]+)", hlo)
    if body is None:
        raise ValueError("no while loop in the compiled scan")
    signature = re.search(rf"^%?{re.escape(body.group(1))} \((.*?)\) ->", hlo, re.MULTILINE)
    return signature.group(1).count(f"f32[{batch},{tokens},")


def _gflops(compiled) -> float:
    return float(f"{timing.cost_gflops(compiled):.4g}")


def _compare(calls: dict, args: tuple, repeats: int) -> tuple[dict, dict, dict]:
    """Compiles each ``name -> fn``; returns ``(outputs, timings, compiled)``."""
    compiled = {name: timing.compile_jitted(fn, *args)[0] for name, fn in calls.items()}
    outputs = {name: c(*args) for name, c in compiled.items()}
    times = timing.time_interleaved(
        {name: (lambda c=c: c(*args)) for name, c in compiled.items()}, repeats=repeats
    )
    return outputs, times, compiled


def edge_pairs_comparison(den, params, inputs, cond, repeats: int) -> dict:
    """Unordered vs ordered edge tokens in one prepared denoiser step."""
    args = (params, cond, inputs["z_t"], inputs["t"], inputs["z_h"], inputs["atom_mask"])
    calls = {
        "unordered": _step(den.clone(edge_pairs="unordered")),
        "ordered": _step(den.clone(edge_pairs="ordered")),
    }
    outputs, times, compiled = _compare(calls, args, repeats)
    gflops = {name: _gflops(c) for name, c in compiled.items()}
    diff = timing.max_abs_diff(outputs["unordered"], outputs["ordered"])
    if not diff <= TOL:
        raise AssertionError(f"unordered vs ordered eps differ by {diff:.3g} > {TOL:g}")
    return {
        "max_abs_diff": diff,
        "max_abs_eps": float(jnp.max(jnp.abs(outputs["ordered"]))),
        "time": {name: t.as_dict() for name, t in times.items()},
        "ratio_ordered_over_unordered": timing.ratio(times["ordered"], times["unordered"]),
        "xla_gflops": gflops,
        "flops_ratio_ordered_over_unordered": round(gflops["ordered"] / gflops["unordered"], 3),
    }


def prepare_reuse_comparison(den, params, inputs, steps: int, repeats: int) -> dict:
    """Scan of ``steps`` calls: prepared conditioning reused vs recomputed in every call."""
    args = (params, inputs["encoding"], inputs["z_t"], inputs["z_h"], inputs["atom_mask"])
    calls = {
        "reuse": _scan(den, steps, reuse=True),
        "recompute": _scan(den, steps, reuse=False),
    }
    outputs, times, compiled = _compare(calls, args, repeats)
    diff = timing.max_abs_diff(outputs["reuse"], outputs["recompute"])
    if not diff <= TOL:
        raise AssertionError(f"reuse vs recompute final z differ by {diff:.3g} > {TOL:g}")
    batch, tokens = inputs["encoding"].mask.shape
    return {
        "steps": steps,
        "max_abs_diff": diff,
        "time": {name: t.as_dict() for name, t in times.items()},
        "ratio_recompute_over_reuse": timing.ratio(times["recompute"], times["reuse"]),
        "xla_gflops_scan": {name: _gflops(c) for name, c in compiled.items()},
        "kv_tensors_expected": 2 * (den.atom_attn_layers + den.edge_layers),
        "kv_tensors_carried_into_scan_body": {
            name: carried_token_tensors(c, batch, tokens) for name, c in compiled.items()
        },
    }


def run(args: argparse.Namespace) -> dict:
    """Builds the denoiser and inputs, runs both comparisons, returns the JSON dictionary."""
    den, config = build_denoiser(args.size, args.width)
    inputs = make_inputs(den, config, args.batch, args.atoms, args.seed)
    forward_args = [inputs[k] for k in ("z_t", "t", "z_h", "atom_mask", "encoding")]
    params = timing.initialise(
        lambda k: den.init(k, *forward_args, deterministic=True, method="forward")["params"],
        jax.random.key(args.seed),
    )
    prepare, _ = timing.compile_jitted(_prepare(den), params, inputs["encoding"])
    cond = prepare(params, inputs["encoding"])
    widths = {name: getattr(den, name) for name in HALVED}
    result = {
        "config": {
            "model": f"configs/qm9s.py:size={args.size}",
            "width": args.width,
            **widths,
            "num_layers": den.num_layers,
            "edge_layers": den.edge_layers,
            "batch": args.batch,
            "atoms": args.atoms,
            "spectral_tokens": int(inputs["encoding"].tokens.shape[1]),
            "dtype": "float32",
        },
        "edge_pairs": edge_pairs_comparison(den, params, inputs, cond, args.repeats),
        "prepare_reuse": prepare_reuse_comparison(den, params, inputs, args.steps, args.repeats),
        "machine": timing.machine(),
    }
    reuse = result["prepare_reuse"]
    reuse["xla_gflops_one_step"] = result["edge_pairs"]["xla_gflops"][den.edge_pairs]
    reuse["xla_gflops_one_prepare"] = _gflops(prepare)
    return result


def main(argv: list[str] | None = None) -> dict:
    """Parses ``argv``, runs the benchmark, prints and returns the JSON dictionary."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--atoms", type=int, default=29)
    parser.add_argument("--size", choices=common.SIZES, default="base")
    parser.add_argument("--width", choices=("full", "half"), default="half")
    parser.add_argument("--steps", type=int, default=10, help="denoiser calls in the scan")
    parser.add_argument("--repeats", type=int, default=3, help="timed rounds")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if min(args.batch, args.steps, args.repeats) < 1 or args.atoms < 2:
        parser.error("batch, steps and repeats must be >= 1 and atoms >= 2")
    result = run(args)
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
