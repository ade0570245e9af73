"""The embedded QM9-IR subset shipped in ``irgeodiff_jax/data/embedded/``: pack, verify, load.

Files:
  qm9_ir_embedded.npz: every molecule the builder produced (including screened-out ones), as
    concatenated ragged arrays: ids [k] int64, smiles [k] str, energy_hartree [k] float64,
    atom_offsets [k+1] int64, atomic_numbers [A] uint8, positions_angstrom [A, 3] float32
    (xTB-optimised), mode_offsets [k+1] int64, frequencies_cm1 [M] float32,
    intensities_km_mol [M] float32 (sticks; spectra are broadened at preparation time).
  manifest.json: builder version and settings, selection seed, counts, sha256 of the npz,
    screened-out ids with reasons, failed ids with reasons, and the split ids.

Pack it from a builder output directory (the command used for the shipped subset):
  python -m data_pipeline.build_qm9_ir --out build/qm9_ir_embedded --num 2200 --seed 0 --workers 2
  python -m data_pipeline.embedded --build_dir build/qm9_ir_embedded
"""

import argparse
import importlib.util
import json
import os
import sys

import numpy as np

from data_pipeline import merge_shards, prepare, shard_io
from data_pipeline.records import RawMolecule
from irgeodiff_jax.utils import atomic

NPZ_NAME = "qm9_ir_embedded.npz"
MANIFEST_NAME = "manifest.json"
EMBEDDED_NUM_TEST = 200
SPLIT_SEED = 0
FREQUENCY_SCALE = 1.0  # xTB sticks, and the SIS oracle runs the same xTB procedure
NUM_TEST_NOTE = (
    "num_test = 200 instead of the paper's 1,000: the subset has ~2,000 molecules and a "
    "1,000-molecule test set would leave only half of it for training"
)


class EmbeddedDataError(RuntimeError):
    """The embedded subset is missing, corrupt, truncated or does not match its manifest."""


def embedded_dir() -> str:
    """``irgeodiff_jax/data/embedded`` of the installed package (found without importing it)."""
    spec = importlib.util.find_spec("irgeodiff_jax")
    if spec is None or not spec.submodule_search_locations:
        raise EmbeddedDataError("package irgeodiff_jax is not importable")
    return os.path.join(list(spec.submodule_search_locations)[0], "data", "embedded")


def manifest(directory: str | None = None) -> dict:
    """The parsed ``manifest.json``."""
    path = os.path.join(directory or embedded_dir(), MANIFEST_NAME)
    try:
        with open(path) as f:
            return json.load(f)
    except FileNotFoundError:
        raise EmbeddedDataError(f"{path}: embedded manifest not found") from None
    except json.JSONDecodeError as e:
        raise EmbeddedDataError(f"{path}: corrupt manifest ({e})") from None


def _verified_arrays(directory: str, info: dict) -> dict:
    path = os.path.join(directory, NPZ_NAME)
    if not os.path.exists(path):
        raise EmbeddedDataError(f"{path}: embedded data file not found")
    got, expected = shard_io.sha256_file(path), info["files"][NPZ_NAME]["sha256"]
    if got != expected:
        raise EmbeddedDataError(
            f"{path}: sha256 {got[:12]}… does not match the manifest ({expected[:12]}…): "
            "the file is corrupt or truncated"
        )
    try:
        return shard_io.load_npz(path)
    except shard_io.ShardError as e:
        raise EmbeddedDataError(str(e)) from None


def load_embedded(
    directory: str | None = None, *, include_screened: bool = False
) -> list[RawMolecule]:
    """Molecules of the embedded subset (checksum verified), in id order of the file.

    Args:
        directory: defaults to `embedded_dir()`.
        include_screened: also return the molecules screening removed (bonds disagree with the
            SMILES); by default they are left out, so the result matches the manifest's splits.
    """
    directory = directory or embedded_dir()
    info = manifest(directory)
    arrays = _verified_arrays(directory, info)
    removed = {int(k) for k in info["screened_out"]}
    out = []
    for m in shard_io.molecules(arrays):
        if m["id"] in removed and not include_screened:
            continue
        out.append(
            RawMolecule(
                id=m["id"],
                smiles=m["smiles"],
                atomic_numbers=m["atomic_numbers"].astype(np.int32),
                positions_angstrom=m["positions_angstrom"].astype(np.float32),
                source="qm9_ir",
                frequencies_cm1=m["frequencies_cm1"].astype(np.float32),
                intensities_km_mol=m["intensities_km_mol"].astype(np.float32),
            )
        )
    return out


def splits(directory: str | None = None) -> dict[str, np.ndarray]:
    """The manifest's split ids: ``{"train", "validation", "test"}`` -> int64 arrays."""
    return {k: np.asarray(v, dtype=np.int64) for k, v in manifest(directory)["splits"].items()}


def _compact_arrays(build_dir: str) -> dict[str, np.ndarray]:
    arrays = {}
    parts = [shard_io.load_npz(p) for p in shard_io.list_shards(build_dir).values()]
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


def pack(build_dir: str, out_dir: str, *, num_test: int, split_seed: int, tolerance: float) -> dict:
    """Writes the npz + manifest from a complete build directory; returns the manifest."""
    info = merge_shards.read_info(build_dir)
    raws = merge_shards.read_build(build_dir)
    failures = merge_shards.read_failures(build_dir)
    arrays = _compact_arrays(build_dir)
    # Screen the stored (float32) geometries: exactly what load_embedded returns.
    stored = load_arrays_as_raws(arrays)
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


def load_arrays_as_raws(arrays: dict) -> list[RawMolecule]:
    """RawMolecules from in-memory embedded arrays (all molecules, no checksum)."""
    return [
        RawMolecule(
            id=m["id"],
            smiles=m["smiles"],
            atomic_numbers=m["atomic_numbers"].astype(np.int32),
            positions_angstrom=m["positions_angstrom"],
            source="qm9_ir",
            frequencies_cm1=m["frequencies_cm1"],
            intensities_km_mol=m["intensities_km_mol"],
        )
        for m in shard_io.molecules(arrays)
    ]


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
