"""The embedded QM9-IR subset shipped in ``irgeodiff_jax/data/embedded/``: read and verify.

Files:
  qm9_ir_embedded.npz: every molecule the builder produced (including screened-out ones), as
    concatenated ragged arrays (`npz_io`): ids [k] int64, smiles [k] str, energy_hartree [k]
    float64, atom_offsets [k+1] int64, atomic_numbers [A] uint8, positions_angstrom [A, 3]
    float32 (xTB-optimised), mode_offsets [k+1] int64, frequencies_cm1 [M] float32,
    intensities_km_mol [M] float32 (sticks; spectra are broadened at preparation time).
  manifest.json: builder version and settings, selection seed, counts, sha256 of the npz,
    screened-out ids with reasons, failed ids with reasons, and the split ids.

The runtime reads them here; ``data_pipeline.embedded`` packs them from a builder output
directory (and re-exports these names).
"""

import json
import os

import numpy as np

from irgeodiff_jax.data import npz_io
from irgeodiff_jax.data.records import RawMolecule

NPZ_NAME = "qm9_ir_embedded.npz"
MANIFEST_NAME = "manifest.json"


class EmbeddedDataError(RuntimeError):
    """The embedded subset is missing, corrupt, truncated or does not match its manifest."""


def embedded_dir() -> str:
    """``irgeodiff_jax/data/embedded`` of the installed package."""
    return os.path.join(os.path.dirname(os.path.abspath(__file__)), "embedded")


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
    got, expected = npz_io.sha256_file(path), info["files"][NPZ_NAME]["sha256"]
    if got != expected:
        raise EmbeddedDataError(
            f"{path}: sha256 {got[:12]}… does not match the manifest ({expected[:12]}…): "
            "the file is corrupt or truncated"
        )
    return npz_io.load_npz(path, error=EmbeddedDataError)


def load_arrays(directory: str | None = None) -> dict[str, np.ndarray]:
    """The embedded file's arrays (all molecules, screened-out ones included), checksum verified."""
    directory = directory or embedded_dir()
    return _verified_arrays(directory, manifest(directory))


def raw_molecules(arrays: dict) -> list[RawMolecule]:
    """Every molecule of in-memory embedded arrays as a RawMolecule (``qm9_ir`` sticks, float32)."""
    return [
        RawMolecule(
            id=m["id"],
            smiles=m["smiles"],
            atomic_numbers=m["atomic_numbers"].astype(np.int32),
            positions_angstrom=m["positions_angstrom"].astype(np.float32),
            source="qm9_ir",
            frequencies_cm1=m["frequencies_cm1"].astype(np.float32),
            intensities_km_mol=m["intensities_km_mol"].astype(np.float32),
        )
        for m in npz_io.molecules(arrays)
    ]


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
    raws = raw_molecules(_verified_arrays(directory, info))
    if include_screened:
        return raws
    removed = {int(k) for k in info["screened_out"]}
    return [r for r in raws if r.id not in removed]


def splits(directory: str | None = None) -> dict[str, np.ndarray]:
    """The manifest's split ids: ``{"train", "validation", "test"}`` -> int64 arrays."""
    return {k: np.asarray(v, dtype=np.int64) for k, v in manifest(directory)["splits"].items()}
