"""Shard files of the QM9-IR builder: deterministic npz writing, atomic commits, reading.

A shard ``shard-{j:05d}.npz`` holds chunk j of the selection. Ragged per-molecule arrays are
concatenated with offsets (``atom_offsets`` [k+1], ``mode_offsets`` [k+1]). Arrays:
  chunk_ids [m] int64: the QM9 indices of the chunk (successes and failures), in selection order
  ids [k] int64, smiles [k] str, energy_hartree [k] float64, num_imaginary [k] int32,
  max_gradient [k] float64, atomic_numbers [A] int32, positions_angstrom [A, 3] float64,
  frequencies_cm1 [M] float64, intensities_km_mol [M] float64,
  failed_ids [f] int64, failed_reasons [f] str.
The zip members carry a fixed timestamp, so equal arrays give byte-identical files. Reading,
checksums and per-molecule slicing are ``irgeodiff_jax.data.npz_io`` (the runtime reads the
embedded subset, which has this layout, with them).
"""

import glob
import hashlib
import json
import os
import re
import zipfile

import numpy as np

from irgeodiff_jax.data import npz_io
from irgeodiff_jax.data.npz_io import molecules as molecules  # re-exported: the shard readers
from irgeodiff_jax.data.npz_io import sha256_file as sha256_file
from irgeodiff_jax.utils import atomic

SHARD_PATTERN = re.compile(r"shard-(\d{5})\.npz$")
FAILURES = "failures.jsonl"
_FIXED_TIME = (1980, 1, 1, 0, 0, 0)


class ShardError(ValueError):
    """A shard file is missing, corrupt, truncated or inconsistent."""


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def shard_path(out: str, j: int) -> str:
    return os.path.join(out, f"shard-{j:05d}.npz")


def list_shards(directory: str) -> dict[int, str]:
    """``{chunk number: path}`` of the shard files in ``directory``."""
    found = {}
    for path in glob.glob(os.path.join(directory, "shard-*.npz")):
        m = SHARD_PATTERN.search(os.path.basename(path))
        if m:
            found[int(m.group(1))] = path
    return dict(sorted(found.items()))


def write_npz_deterministic(path: str, arrays: dict[str, np.ndarray]) -> None:
    """Writes ``arrays`` as a compressed npz, atomically (temp file + rename), byte-reproducibly."""
    with (
        atomic.replacing(path) as tmp,
        zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as zf,
    ):
        for name, value in arrays.items():
            info = zipfile.ZipInfo(f"{name}.npy", date_time=_FIXED_TIME)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            with zf.open(info, "w", force_zip64=True) as f:
                np.lib.format.write_array(f, np.asarray(value), allow_pickle=False)


def load_npz(path: str) -> dict[str, np.ndarray]:
    """All arrays of an npz; ShardError naming the file if it is corrupt or truncated."""
    return npz_io.load_npz(path, error=ShardError)


def _strings(values) -> np.ndarray:
    return np.asarray(list(values), dtype=str) if len(values) else np.zeros(0, dtype="<U1")


def shard_arrays(rows: list[dict], smiles: list[str]) -> dict[str, np.ndarray]:
    """Packs worker results (in chunk order) into the shard arrays."""
    ok = [(r, s) for r, s in zip(rows, smiles, strict=True) if "error" not in r]
    bad = [r for r in rows if "error" in r]
    n_atoms = [len(r["positions"]) for r, _ in ok]
    n_modes = [len(r["frequencies"]) for r, _ in ok]
    cat = lambda key, dtype, shape: (  # noqa: E731
        np.concatenate([np.asarray(r[key], dtype) for r, _ in ok]) if ok else np.zeros(shape, dtype)
    )
    return {
        "chunk_ids": np.asarray([r["id"] for r in rows], dtype=np.int64),
        "ids": np.asarray([r["id"] for r, _ in ok], dtype=np.int64),
        "smiles": _strings([s for _, s in ok]),
        "energy_hartree": np.asarray([r["energy"] for r, _ in ok], dtype=np.float64),
        "num_imaginary": np.asarray([r["num_imaginary"] for r, _ in ok], dtype=np.int32),
        "max_gradient": np.asarray([r["max_gradient"] for r, _ in ok], dtype=np.float64),
        "atom_offsets": np.concatenate([[0], np.cumsum(n_atoms)]).astype(np.int64),
        "atomic_numbers": cat("atomic_numbers", np.int32, (0,)),
        "positions_angstrom": cat("positions", np.float64, (0, 3)),
        "mode_offsets": np.concatenate([[0], np.cumsum(n_modes)]).astype(np.int64),
        "frequencies_cm1": cat("frequencies", np.float64, (0,)),
        "intensities_km_mol": cat("intensities", np.float64, (0,)),
        "failed_ids": np.asarray([r["id"] for r in bad], dtype=np.int64),
        "failed_reasons": _strings([r["error"] for r in bad]),
    }


def _append_lines(path: str, lines: list[str]) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        for line in lines:  # one write per line: appends of a line are atomic
            os.write(fd, (line + "\n").encode())
    finally:
        os.close(fd)


def _failure_lines(arrays: dict) -> list[str]:
    return [
        json.dumps({"id": int(i), "reason": str(r)})
        for i, r in zip(arrays["failed_ids"], arrays["failed_reasons"], strict=True)
    ]


def write_shard(out: str, j: int, rows: list[dict], smiles: list[str]) -> None:
    """Commits chunk ``j``: the shard (atomic rename), then its failures appended to the log."""
    arrays = shard_arrays(rows, smiles)
    write_npz_deterministic(shard_path(out, j), arrays)
    _append_lines(os.path.join(out, FAILURES), _failure_lines(arrays))


def shard_complete(out: str, j: int, expected_ids: np.ndarray) -> bool:
    """True if shard ``j`` exists, reads back, and covers exactly ``expected_ids``."""
    path = shard_path(out, j)
    if not os.path.exists(path):
        return False
    try:
        ids = load_npz(path)["chunk_ids"]
    except (ShardError, KeyError):
        return False
    return bool(np.array_equal(ids, np.asarray(expected_ids, dtype=np.int64)))


def rewrite_failures(out: str, chunks: list[int]) -> None:
    """Regenerates ``failures.jsonl`` from the given complete shards (drops partial leftovers)."""
    lines = []
    for j in chunks:
        lines += _failure_lines(load_npz(shard_path(out, j)))
    atomic.write_text(os.path.join(out, FAILURES), "".join(f"{line}\n" for line in lines))
