"""Reading the molecule npz files (embedded subset, builder shards): checksum, load, slice.

Per-molecule ragged arrays are stored concatenated with offsets: molecule k owns atoms
``atom_offsets[k]:atom_offsets[k+1]`` of ``atomic_numbers`` / ``positions_angstrom`` and modes
``mode_offsets[k]:mode_offsets[k+1]`` of ``frequencies_cm1`` / ``intensities_km_mol``; ``ids``,
``smiles`` and ``energy_hartree`` have one entry per molecule. The offline builder
(``data_pipeline.shard_io``) writes these files and reads them with the functions here.
"""

import hashlib
import zipfile

import numpy as np


def sha256_file(path: str) -> str:
    """Hex sha256 of a file's bytes (read in 1 MiB blocks)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def load_npz(path: str, *, error: type[Exception] = ValueError) -> dict[str, np.ndarray]:
    """All arrays of an npz (no pickles).

    Raises:
        error: one line naming the file if it is missing, corrupt or truncated (the caller's
            error type, e.g. ``EmbeddedDataError`` or the builder's ``ShardError``).
    """
    try:
        with np.load(path, allow_pickle=False) as data:
            return {k: data[k] for k in data.files}
    except FileNotFoundError:
        raise error(f"{path}: file not found") from None
    except (zipfile.BadZipFile, ValueError, OSError, EOFError, KeyError) as e:
        reason = " ".join(str(e).split())
        raise error(f"{path}: corrupt or truncated npz ({reason})") from None


def molecules(arrays: dict) -> list[dict]:
    """Per-molecule dicts (id, smiles, atomic_numbers, positions, sticks, energy) of the arrays."""
    a, m = arrays["atom_offsets"], arrays["mode_offsets"]
    return [
        {
            "id": int(arrays["ids"][k]),
            "smiles": str(arrays["smiles"][k]),
            "atomic_numbers": arrays["atomic_numbers"][a[k] : a[k + 1]],
            "positions_angstrom": arrays["positions_angstrom"][a[k] : a[k + 1]],
            "frequencies_cm1": arrays["frequencies_cm1"][m[k] : m[k + 1]],
            "intensities_km_mol": arrays["intensities_km_mol"][m[k] : m[k + 1]],
            "energy_hartree": float(arrays["energy_hartree"][k]),
        }
        for k in range(len(arrays["ids"]))
    ]
