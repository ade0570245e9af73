"""Grow the embedded subset's training split with the new molecules of a QM9-IR build.

  python -m data_pipeline.grow_embedded --build_dir BUILD --out DIR [--base BASE]
  python -m irgeodiff_jax.train ... --config.data.embedded_dir=DIR

Writes an embedded-format directory (``qm9_ir_embedded.npz`` + ``manifest.json``) whose
validation and test splits are exactly those of the base subset (the package's by default), so
numbers on them stay comparable with every model trained on the base, and whose training split
is the base's plus every molecule of BUILD that the base does not hold (not even among its
screened-out molecules) and that passes the base's screening (bonds assigned from the geometry
give the reference SMILES). BUILD may be incomplete (a builder still running or interrupted):
every shard present is used. Its builder version and GFN2-xTB settings must be the base's.
"""

import argparse
import json
import os
import sys

import numpy as np

from data_pipeline import embedded, merge_shards, prepare, shard_io
from irgeodiff_jax.data import embedded_subset, npz_io
from irgeodiff_jax.utils import atomic


class GrowError(ValueError):
    """The build cannot extend the base (other settings, nothing new, unreadable files)."""


def _take(arrays: dict, index: np.ndarray) -> dict[str, np.ndarray]:
    """The molecules ``index`` (positions in ``arrays``) as a part with rebuilt offsets."""
    rows = lambda off: np.concatenate(  # noqa: E731
        [np.arange(off[k], off[k + 1]) for k in index] + [np.zeros(0, np.int64)]
    )
    out = {k: arrays[k][index] for k in ("ids", "smiles", "energy_hartree")}
    for off_key, keys in (
        ("atom_offsets", ("atomic_numbers", "positions_angstrom")),
        ("mode_offsets", ("frequencies_cm1", "intensities_km_mol")),
    ):
        off = arrays[off_key]
        out[off_key] = np.concatenate([[0], np.cumsum(np.diff(off)[index])]).astype(np.int64)
        for key in keys:
            out[key] = arrays[key][rows(off)]
    return out


def _check_same_settings(base_info: dict, build_info: dict) -> None:
    for key in ("builder_version", "settings"):
        if base_info.get(key) != build_info.get(key):
            raise GrowError(
                f"the build's {key} {build_info.get(key)!r} differs from the base's "
                f"{base_info.get(key)!r}: its molecules would not be the same kind of data"
            )


def grow(build_dir: str, out_dir: str, base_dir: str | None = None) -> dict:
    """Writes the grown npz + manifest into ``out_dir``; returns the manifest."""
    base_dir = base_dir or embedded_subset.embedded_dir()
    base = embedded_subset.manifest(base_dir)
    base_path = os.path.join(base_dir, embedded_subset.NPZ_NAME)
    base_arrays = embedded_subset.load_arrays(base_dir)
    build_info = merge_shards.read_info(build_dir)
    _check_same_settings(base["build_info"], build_info)
    known = {int(i) for i in base_arrays["ids"]} | {int(i) for i in base["failures"]}
    shards = shard_io.list_shards(build_dir)
    parts, failures = [], {}
    for path in shards.values():
        arrays = shard_io.load_npz(path)
        new = np.flatnonzero([int(i) not in known for i in arrays["ids"]])
        parts.append(_take(arrays, new))
        for i, reason in zip(arrays["failed_ids"], arrays["failed_reasons"], strict=True):
            if int(i) not in known:
                failures[str(int(i))] = str(reason)
    if not parts or not sum(len(p["ids"]) for p in parts):
        raise GrowError(f"{build_dir}: no molecule that the base subset does not already hold")
    added = embedded.compact(parts)
    report = prepare.screening_report(
        embedded_subset.raw_molecules(added),
        tolerance_angstrom=base["screening_tolerance_angstrom"],
    )
    kept_new = [int(i) for i in added["ids"] if str(int(i)) not in report["removed"]]
    arrays = embedded.compact([base_arrays, added])
    os.makedirs(out_dir, exist_ok=True)
    npz_path = os.path.join(out_dir, embedded_subset.NPZ_NAME)
    shard_io.write_npz_deterministic(npz_path, arrays)
    splits = dict(base["splits"])
    splits["train"] = sorted([*base["splits"]["train"], *kept_new])
    counts = dict(base["counts"])
    counts.update(
        selected=base["counts"]["selected"] + len(added["ids"]) + len(failures),
        built=base["counts"]["built"] + len(added["ids"]),
        failed=base["counts"]["failed"] + len(failures),
        screened_out=base["counts"]["screened_out"] + report["num_removed"],
        kept=base["counts"]["kept"] + len(kept_new),
        train=len(splits["train"]),
    )
    doc = {
        **base,
        "counts": counts,
        "files": {
            embedded_subset.NPZ_NAME: {
                "sha256": npz_io.sha256_file(npz_path),
                "bytes": os.path.getsize(npz_path),
            }
        },
        "screened_out": {**base["screened_out"], **report["removed"]},
        "failures": {**base["failures"], **failures},
        "splits": splits,
        "grown": {
            "base_sha256": npz_io.sha256_file(base_path),
            "base_counts": base["counts"],
            "build_info": build_info,
            "build_chunks": sorted(shards),
            "new_built": int(len(added["ids"])),
            "new_failed": len(failures),
            "new_screened_out": report["num_removed"],
            "new_kept": len(kept_new),
            "note": "validation and test splits are the base's; new molecules join train only",
        },
    }
    atomic.write_json(os.path.join(out_dir, embedded_subset.MANIFEST_NAME), doc)
    return doc


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m data_pipeline.grow_embedded", description=__doc__)
    p.add_argument("--build_dir", required=True, help="build_qm9_ir output (may be incomplete)")
    p.add_argument("--out", required=True, help="output directory (embedded format)")
    p.add_argument("--base", default=None, help="default: the package's embedded subset")
    args = p.parse_args(argv)
    try:
        doc = grow(args.build_dir, args.out, args.base)
    except (
        GrowError,
        merge_shards.MergeError,
        shard_io.ShardError,
        embedded_subset.EmbeddedDataError,
    ) as e:
        print(f"grow_embedded: error: {e}", file=sys.stderr)
        return 2
    grown = {k: v for k, v in doc["grown"].items() if k not in ("build_info", "base_counts")}
    print(json.dumps({"counts": doc["counts"], "grown": grown}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
