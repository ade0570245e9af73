"""The embedded QM9-IR subset shipped in ``irgeodiff_jax/data/embedded/``: pack it.

The files and their reader are ``irgeodiff_jax.data.embedded_subset`` (the runtime's); its names
(``NPZ_NAME``, ``MANIFEST_NAME``, ``EmbeddedDataError``, ``embedded_dir``, ``manifest``,
``load_embedded``, ``splits``) are re-exported here.

Pack it from a builder output directory (the command used for the shipped subset):
  python -m data_pipeline.build_qm9_ir --out build/qm9_ir_embedded --num 2200 --seed 0 --workers 2
  python -m data_pipeline.embedded --build_dir build/qm9_ir_embedded
"""

import argparse
import json
import os
import sys

import numpy as np

from data_pipeline import merge_shards, prepare, shard_io
from irgeodiff_jax.data import embedded_subset
from irgeodiff_jax.data.embedded_subset import MANIFEST_NAME, NPZ_NAME, embedded_dir
from irgeodiff_jax.data.embedded_subset import EmbeddedDataError as EmbeddedDataError
from irgeodiff_jax.data.embedded_subset import load_embedded as load_embedded
from irgeodiff_jax.data.embedded_subset import manifest as manifest
from irgeodiff_jax.data.embedded_subset import splits as splits
from irgeodiff_jax.utils import atomic

EMBEDDED_NUM_TEST = 200
SPLIT_SEED = 0
FREQUENCY_SCALE = 1.0  # xTB sticks, and the SIS oracle runs the same xTB procedure
NUM_TEST_NOTE = (
    "num_test = 200 instead of the paper's 1,000: the subset has ~2,000 molecules and a "
    "1,000-molecule test set would leave only half of it for training"
)


def compact(parts: list[dict]) -> dict[str, np.ndarray]:
    """The embedded file's arrays from molecule npz parts (shards, embedded files), in order.

    Keeps the per-molecule keys only; stores atomic numbers as uint8 and coordinates and sticks as
    float32, with the ragged offsets rebuilt over the concatenation.
    """
    arrays = {}
    for key in ("ids", "smiles", "energy_hartree", "atomic_numbers", "positions_angstrom"):
        arrays[key] = np.concatenate([p[key] for p in parts])
    for key in ("frequencies_cm1", "intensities_km_mol"):
        arrays[key] = np.concatenate([p[key] for p in parts])
    for key, count in (("atom_offsets", "atomic_numbers"), ("mode_offsets", "frequencies_cm1")):
        sizes = np.concatenate([np.diff(p[key]) for p in parts])
        arrays[key] = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
        assert arrays[key][-1] == len(arrays[count])
    arrays["atomic_numbers"] = arrays["atomic_numbers"].astype(np.uint8)
    for key in ("positions_angstrom", "frequencies_cm1", "intensities_km_mol"):
        arrays[key] = arrays[key].astype(np.float32)
    order = ("ids", "smiles", "energy_hartree", "atom_offsets", "atomic_numbers")
    order += ("positions_angstrom", "mode_offsets", "frequencies_cm1", "intensities_km_mol")
    return {k: arrays[k] for k in order}


def _compact_arrays(build_dir: str) -> dict[str, np.ndarray]:
    return compact([shard_io.load_npz(p) for p in shard_io.list_shards(build_dir).values()])


def pack(build_dir: str, out_dir: str, *, num_test: int, split_seed: int, tolerance: float) -> dict:
    """Writes the npz + manifest from a complete build directory; returns the manifest."""
    info = merge_shards.read_info(build_dir)
    raws = merge_shards.read_build(build_dir)
    failures = merge_shards.read_failures(build_dir)
    arrays = _compact_arrays(build_dir)
    # Screen the stored (float32) geometries: exactly what load_embedded returns.
    stored = embedded_subset.raw_molecules(arrays)
    report = prepare.screening_report(stored, tolerance_angstrom=tolerance)
    kept = [r.id for r in raws if str(r.id) not in report["removed"]]
    split = prepare.split_ids(kept, seed=split_seed, num_test=num_test)
    os.makedirs(out_dir, exist_ok=True)
    npz_path = os.path.join(out_dir, NPZ_NAME)
    shard_io.write_npz_deterministic(npz_path, arrays)
    doc = {
        "format": "qm9_ir_embedded-1",
        "builder_version": info["builder_version"],
        "build_info": info,
        "selection_seed": info["selection"].get("seed"),
        "frequency_scale": FREQUENCY_SCALE,
        "screening_tolerance_angstrom": tolerance,
        "counts": {
            "selected": info["num_selected"],
            "built": len(raws),
            "failed": len(failures),
            "screened_out": report["num_removed"],
            "kept": len(kept),
            **{k: int(v.size) for k, v in split.items()},
        },
        "screening_by_category": report["by_category"],
        "screening_by_detail": report["by_detail"],
        "files": {
            NPZ_NAME: {"sha256": shard_io.sha256_file(npz_path), "bytes": os.path.getsize(npz_path)}
        },
        "screened_out": report["removed"],
        "failures": {str(k): v for k, v in sorted(failures.items())},
        "split": {"seed": split_seed, "num_test": num_test, "val_fraction": 0.05},
        "split_note": NUM_TEST_NOTE,
        "splits": {k: v.tolist() for k, v in split.items()},
    }
    atomic.write_json(os.path.join(out_dir, MANIFEST_NAME), doc)
    return doc


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m data_pipeline.embedded", description=__doc__)
    p.add_argument("--build_dir", required=True, help="complete build_qm9_ir output directory")
    p.add_argument("--out", default=None, help="default: the package's data/embedded directory")
    p.add_argument("--num_test", type=int, default=EMBEDDED_NUM_TEST)
    p.add_argument("--split_seed", type=int, default=SPLIT_SEED)
    p.add_argument("--tolerance_angstrom", type=float, default=0.4)
    args = p.parse_args(argv)
    try:
        doc = pack(
            args.build_dir,
            args.out or embedded_dir(),
            num_test=args.num_test,
            split_seed=args.split_seed,
            tolerance=args.tolerance_angstrom,
        )
    except (merge_shards.MergeError, shard_io.ShardError, ValueError) as e:
        print(f"embedded: error: {e}", file=sys.stderr)
        return 2
    print(json.dumps({"counts": doc["counts"], "screening": doc["screening_by_detail"]}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
