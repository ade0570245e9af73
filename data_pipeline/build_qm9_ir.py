"""Build the QM9-IR dataset: QM9 geometries (qm9pack) -> GFN2-xTB optimised geometries + IR sticks.

Usage:
  python -m data_pipeline.build_qm9_ir --out DIR [--num N | --all | --indices 1-20,31]
      [--seed S] [--workers W] [--shard i/n] [--shard_size K] [--timeout_s T]

The selection (``--num`` draws ``qm9pack_source.sample_indices(N, seed)``; ``--all`` takes every
index in order) is cut into chunks of K molecules; chunk j is written as ``shard-{j:05d}.npz``
once all of its molecules are done, so a shard's content depends only on the selection and K,
never on worker scheduling. ``--shard i/n`` (0 <= i < n) builds the i-th contiguous range of
chunks (array jobs); shard numbers stay global so ``merge_shards`` can put the parts together.
Shards are written under a temporary name and renamed atomically; a re-run skips complete shards
and recomputes the rest. ``failures.jsonl`` lists every failed molecule (id, reason) of the
complete shards. Each molecule runs in a worker process of ``irgeodiff_jax.utils.process_pool``
with ``OMP_NUM_THREADS=1`` (xTB is then deterministic), a cooperative timeout inside the oracle
and a hard one (``--timeout_s`` + 120 s) enforced by the pool; a crashed or timed-out worker
fails its molecule and is replaced.
"""

import argparse
import json
import os
import sys
import time

import numpy as np

from data_pipeline import qm9pack_source, shard_io
from irgeodiff_jax.utils import atomic
from irgeodiff_jax.utils.process_pool import ProcessPool

BUILDER_VERSION = "qm9_ir-builder-1"


class BuildError(RuntimeError):
    """The build cannot proceed (bad arguments or an output dir holding a different build)."""


def parse_indices(text: str) -> np.ndarray:
    """Parses ``"1-20,31,40-42"`` into QM9 indices (order kept)."""
    out = []
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        lo, _, hi = part.partition("-")
        try:
            out.extend(range(int(lo), int(hi) + 1) if hi else [int(lo)])
        except ValueError:
            raise BuildError(f"bad --indices entry {part!r} (expected N or A-B)") from None
    if not out or len(set(out)) != len(out):
        raise BuildError("--indices must list distinct QM9 indices")
    return np.asarray(out, dtype=np.int64)


def parse_shard(text: str) -> tuple[int, int]:
    """Parses ``"i/n"`` with 0 <= i < n."""
    try:
        i, n = (int(v) for v in text.split("/"))
    except ValueError:
        raise BuildError(f"--shard must be i/n, got {text!r}") from None
    if not 0 <= i < n:
        raise BuildError(f"--shard {text}: need 0 <= i < n")
    return i, n


def select(args) -> tuple[np.ndarray, dict]:
    """Selected QM9 indices (in build order) and a JSON description of the selection."""
    if args.indices:
        ids = parse_indices(args.indices)
        return ids, {"mode": "indices", "indices": ids.tolist()}
    if args.all:
        return qm9pack_source.all_indices().astype(np.int64), {"mode": "all"}
    if args.num is None:
        raise BuildError("give one of --num N, --all or --indices")
    ids = qm9pack_source.sample_indices(args.num, args.seed).astype(np.int64)
    return ids, {"mode": "sample", "num": args.num, "seed": args.seed}


def chunk_range(num_chunks: int, shard: tuple[int, int]) -> range:
    """The contiguous range of chunk numbers that array task ``i`` of ``n`` builds."""
    i, n = shard
    return range(i * num_chunks // n, (i + 1) * num_chunks // n)


def build_info(args, selection: dict, ids: np.ndarray, shard: tuple[int, int]) -> dict:
    """Everything that determines the shard contents (compared on resume), plus versions."""
    from importlib import metadata

    from irgeodiff_jax.chem import xtb  # only constants; tblite is not run in this process

    return {
        "builder_version": BUILDER_VERSION,
        "selection": selection,
        "num_selected": len(ids),
        "selection_sha256": shard_io.sha256_bytes(ids.tobytes()),
        "shard_size": args.shard_size,
        "shard": f"{shard[0]}/{shard[1]}",
        "settings": {
            "optimize": True,
            "timeout_s": args.timeout_s,
            "method": "GFN2-xTB",
            "fd_step_bohr": xtb.FD_STEP_BOHR,
            "scf_accuracy": xtb.SCF_ACCURACY,
            "opt_gradient_limit": xtb.OPT_GRADIENT_LIMIT,
            "omp_num_threads": 1,
        },
        "versions": {p: metadata.version(p) for p in ("tblite", "numpy", "qm9pack")},
    }


_DETERMINING = ("builder_version", "selection_sha256", "shard_size", "settings", "versions")


def write_or_check_info(out: str, info: dict) -> None:
    """Writes ``build_info.json``; on resume checks the existing one describes the same build."""
    path = os.path.join(out, "build_info.json")
    if os.path.exists(path):
        with open(path) as f:
            old = json.load(f)
        diff = [k for k in _DETERMINING if old.get(k) != info.get(k)]
        if diff:
            raise BuildError(f"{out} holds a different build (differs in {diff}); use a new --out")
    atomic.write_json(path, info)


def run_molecule(task: dict) -> dict:
    """Worker: xTB spectrum of one molecule (test hook: ``corrupt`` -> NaN geometry)."""
    from irgeodiff_jax.chem import xtb  # imported in the worker after OMP_NUM_THREADS is set

    positions = np.asarray(task["positions"], dtype=np.float64)
    if task.get("corrupt"):
        positions = np.full_like(positions, np.nan)
    result = xtb.ir_spectrum_safe(task["z"], positions, timeout_s=task["timeout_s"])
    if isinstance(result, str):
        return {"id": task["id"], "error": result}
    return {
        "id": task["id"],
        "atomic_numbers": result.atomic_numbers,
        "positions": result.positions_angstrom,
        "frequencies": result.frequencies_cm1,
        "intensities": result.intensities_km_mol,
        "energy": result.energy_hartree,
        "num_imaginary": result.num_imaginary,
        "max_gradient": result.max_gradient,
    }


def make_task(index: int, args) -> dict:
    mol = qm9pack_source.molecule(int(index))
    return {
        "id": int(index),
        "smiles": mol.smiles,
        "z": mol.atomic_numbers,
        "positions": mol.positions_angstrom,
        "timeout_s": args.timeout_s,
        "corrupt": int(index) in args.test_corrupt_ids,
    }


def _progress(total: int, done: int, enabled: bool):
    from tqdm import tqdm

    return tqdm(
        total=total,
        initial=done,
        unit="mol",
        dynamic_ncols=True,
        disable=not enabled,
        smoothing=0.05,
    )


def _as_row(outcome) -> dict:
    """A worker's result, or ``{"id", "error"}`` for a molecule whose worker failed."""
    return outcome.value if outcome.ok else {"id": outcome.job["id"], "error": outcome.error}


def build(args, job_fn=run_molecule) -> dict:
    """Runs the build described by ``args``; returns counts for this run.

    ``job_fn`` (a picklable top-level ``task -> row`` callable) computes one molecule in a worker;
    tests wrap ``run_molecule`` to make workers crash.
    """
    ids, selection = select(args)
    shard = parse_shard(args.shard)
    os.makedirs(args.out, exist_ok=True)
    write_or_check_info(args.out, build_info(args, selection, ids, shard))
    chunks = np.array_split(ids, range(args.shard_size, len(ids), args.shard_size))
    mine = chunk_range(len(chunks), shard)
    todo = [j for j in mine if not shard_io.shard_complete(args.out, j, chunks[j])]
    shard_io.rewrite_failures(args.out, [j for j in mine if j not in todo])
    pending = [int(i) for j in todo for i in chunks[j]]
    total = sum(len(chunks[j]) for j in mine)
    bar = _progress(total, total - len(pending), not args.no_progress)
    smiles = {}
    results: dict[int, dict] = {}
    failed = 0
    start = time.perf_counter()
    hard_timeout = args.timeout_s + 120.0

    def tasks():
        for index in pending:
            task = make_task(index, args)
            smiles[index] = task.pop("smiles")
            yield task

    with ProcessPool(job_fn, args.workers, hard_timeout) as pool:
        next_chunk = 0
        for result in map(_as_row, pool.imap_unordered(tasks())):
            results[result["id"]] = result
            failed += "error" in result
            bar.update(1)
            while next_chunk < len(todo) and all(
                int(i) in results for i in chunks[todo[next_chunk]]
            ):
                j = todo[next_chunk]
                rows = [results.pop(int(i)) for i in chunks[j]]
                shard_io.write_shard(args.out, j, rows, [smiles.pop(int(i)) for i in chunks[j]])
                next_chunk += 1
    bar.close()
    seconds = time.perf_counter() - start
    return {"computed": len(pending), "failed": failed, "seconds": seconds, "shards": len(todo)}


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m data_pipeline.build_qm9_ir", description=__doc__)
    p.add_argument("--out", required=True, help="output directory (shards, failures, build info)")
    sel = p.add_mutually_exclusive_group()
    sel.add_argument("--num", type=int, help="number of molecules drawn with --seed")
    sel.add_argument("--all", action="store_true", help="all 130,831 qm9pack molecules, in order")
    sel.add_argument("--indices", help="explicit QM9 indices, e.g. 1-20,31 (kept in this order)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--shard", default="0/1", help="array-job slice i/n of the chunk list")
    p.add_argument("--shard_size", type=int, default=100, help="molecules per shard file")
    p.add_argument("--timeout_s", type=float, default=600.0, help="per-molecule xTB time limit")
    p.add_argument("--no_progress", action="store_true")
    # Test hook: make these molecules fail (NaN geometry).
    p.add_argument("--test_corrupt_ids", default="", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    text = args.test_corrupt_ids
    args.test_corrupt_ids = set(parse_indices(text).tolist()) if text else set()
    if args.workers < 1 or args.shard_size < 1 or args.timeout_s <= 0:
        p.error("--workers, --shard_size and --timeout_s must be positive")
    return args


def main(argv=None) -> int:
    try:
        args = parse_args(argv)
        stats = build(args)
    except (BuildError, KeyError, ValueError, FileNotFoundError) as e:
        print(f"build_qm9_ir: error: {e}", file=sys.stderr)
        return 2
    rate = stats["computed"] / max(stats["seconds"], 1e-9)
    print(
        f"build_qm9_ir: {stats['computed']} molecules computed in {stats['seconds']:.1f} s "
        f"({rate:.3f} mol/s), {stats['failed']} failed, {stats['shards']} shards written "
        f"to {args.out}",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
