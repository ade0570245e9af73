"""Merge the outputs of ``build_qm9_ir --shard i/n`` array tasks into one ordered build directory.

Usage:
  python -m data_pipeline.merge_shards --out DIR PART_DIR [PART_DIR ...]

Every part must come from the same build (same selection, shard size, settings and versions in
its ``build_info.json``). Shard numbers are global, so the merged directory holds
``shard-00000.npz ... shard-{K-1}.npz`` exactly as a single ``--shard 0/1`` run would, plus the
combined ``failures.jsonl`` (from the shard contents, in selection order) and a ``build_info.json``.
Missing or duplicated chunks and unreadable shards stop the merge with a one-line error; nothing
in the part directories is modified.

Also: ``read_build(dir)`` -> list[RawMolecule] of a complete build directory.
"""

import argparse
import json
import math
import os
import shutil
import sys

import numpy as np

from data_pipeline import build_qm9_ir, shard_io
from data_pipeline.records import RawMolecule
from irgeodiff_jax.utils import atomic


class MergeError(ValueError):
    """The parts do not form one complete build."""


def read_info(directory: str) -> dict:
    path = os.path.join(directory, "build_info.json")
    try:
        with open(path) as f:
            return json.load(f)
    except FileNotFoundError:
        raise MergeError(f"{directory}: no build_info.json (not a build_qm9_ir output)") from None
    except json.JSONDecodeError as e:
        raise MergeError(f"{path}: corrupt JSON ({e})") from None


def num_chunks(info: dict) -> int:
    return math.ceil(info["num_selected"] / info["shard_size"])


def collect_shards(parts: list[str]) -> tuple[dict, dict[int, str]]:
    """The common build info and ``{chunk: path}`` over all parts (checked complete, no dups)."""
    infos = [read_info(p) for p in parts]
    first = infos[0]
    for part, info in zip(parts, infos, strict=True):
        diff = [k for k in build_qm9_ir._DETERMINING if info.get(k) != first.get(k)]
        if diff:
            raise MergeError(f"{part} belongs to a different build (differs in {diff})")
    found: dict[int, str] = {}
    for part in parts:
        for j, path in shard_io.list_shards(part).items():
            if j in found and shard_io.sha256_file(found[j]) != shard_io.sha256_file(path):
                raise MergeError(
                    f"chunk {j} appears with different content in {found[j]} and {path}"
                )
            found[j] = path
    missing = sorted(set(range(num_chunks(first))) - set(found))
    if missing:
        head = ", ".join(str(j) for j in missing[:10])
        raise MergeError(
            f"{len(missing)} of {num_chunks(first)} shards missing (chunks {head} ...)"
        )
    extra = sorted(set(found) - set(range(num_chunks(first))))
    if extra:
        raise MergeError(f"unexpected shard numbers {extra[:10]} for this build")
    return first, dict(sorted(found.items()))


def merge(parts: list[str], out: str) -> dict:
    """Copies the shards of ``parts`` into ``out``; returns counts."""
    info, shards = collect_shards(parts)
    os.makedirs(out, exist_ok=True)
    failures, num_ok = [], 0
    for j, src in shards.items():
        arrays = shard_io.load_npz(src)  # verifies the shard reads back
        num_ok += len(arrays["ids"])
        failures += [
            json.dumps({"id": int(i), "reason": str(r)})
            for i, r in zip(arrays["failed_ids"], arrays["failed_reasons"], strict=True)
        ]
        dst = shard_io.shard_path(out, j)
        if os.path.abspath(src) != os.path.abspath(dst):
            with atomic.replacing(dst) as tmp:
                shutil.copyfile(src, tmp)
    atomic.write_text(
        os.path.join(out, shard_io.FAILURES), "".join(f"{line}\n" for line in failures)
    )
    merged = dict(info, shard="0/1", merged_from=[os.path.abspath(p) for p in parts])
    atomic.write_json(os.path.join(out, "build_info.json"), merged)
    return {"shards": len(shards), "molecules": num_ok, "failures": len(failures)}


def read_build(directory: str, *, source: str = "qm9_ir") -> list[RawMolecule]:
    """All molecules of a complete build directory, in selection order."""
    info = read_info(directory)
    shards = shard_io.list_shards(directory)
    missing = sorted(set(range(num_chunks(info))) - set(shards))
    if missing:
        raise MergeError(f"{directory}: {len(missing)} shards missing (first: chunk {missing[0]})")
    out = []
    for path in shards.values():
        for m in shard_io.molecules(shard_io.load_npz(path)):
            out.append(
                RawMolecule(
                    id=m["id"],
                    smiles=m["smiles"],
                    atomic_numbers=m["atomic_numbers"].astype(np.int32),
                    positions_angstrom=m["positions_angstrom"].astype(np.float32),
                    source=source,
                    frequencies_cm1=m["frequencies_cm1"],
                    intensities_km_mol=m["intensities_km_mol"],
                )
            )
    return out


def read_failures(directory: str) -> dict[int, str]:
    """``{id: reason}`` from the shards of a build directory."""
    out = {}
    for path in shard_io.list_shards(directory).values():
        arrays = shard_io.load_npz(path)
        out.update(
            {
                int(i): str(r)
                for i, r in zip(arrays["failed_ids"], arrays["failed_reasons"], strict=True)
            }
        )
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m data_pipeline.merge_shards", description=__doc__)
    p.add_argument("--out", required=True)
    p.add_argument("parts", nargs="+", help="output directories of the array tasks")
    args = p.parse_args(argv)
    try:
        stats = merge(args.parts, args.out)
    except (MergeError, shard_io.ShardError, KeyError) as e:
        print(f"merge_shards: error: {e}", file=sys.stderr)
        return 2
    print(
        f"merge_shards: {stats['shards']} shards, {stats['molecules']} molecules, "
        f"{stats['failures']} failures -> {args.out}",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
