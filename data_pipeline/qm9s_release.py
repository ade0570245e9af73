"""Reader for the official QM9S release (Zou et al. 2023, figshare 10.6084/m9.figshare.24235333).

Expected files in ``manual_dir`` (see data_pipeline/README.md, "Official releases"):

* Geometries, one of (first found wins, in this order):
  - ``qm9s_geometries.npz`` (torch-free export, the layout of `write_geometries_npz`):
    ``ids`` [k] int64, ``smiles`` [k] str, ``atom_offsets`` [k+1] int64,
    ``atomic_numbers`` [A] int, ``positions_angstrom`` [A, 3] float (molecule j owns atoms
    ``atom_offsets[j]:atom_offsets[j+1]``);
  - ``qm9s_geometries.xyz`` (multi-frame XYZ): per molecule a line with the atom count, a comment
    line ``id=<int> smiles=<SMILES>``, then one ``<element symbol or Z> x y z`` line per atom (Å);
  - ``qm9s.pt`` (the release file): a list of PyG ``Data`` with ``z``, ``pos``, ``smile``,
    ``number``. Needs ``torch`` and ``torch_geometric`` (not project dependencies); convert once
    with ``python -m data_pipeline.qm9s_release --manual_dir D --export_npz`` where they exist.
* ``ir_boraden.csv`` (the release file, 8.2 GB): wide CSV, first column an unnamed integer
  molecule id, then 3,501 columns = 500..4000 cm⁻¹ at 1 cm⁻¹ (raw broadened intensities).
  Streamed in chunks. Its id is matched to the geometry ``number`` (the QM9 index) — an assumption
  (the release does not document the key); pass ``match_by="position"`` to match the CSV id to
  the 0-based position in ``qm9s.pt`` instead.
"""

import argparse
import os
from collections.abc import Iterator
from typing import NamedTuple

import numpy as np
import pandas as pd

from data_pipeline.records import RawMolecule

QM9S_GRID = (500.0, 4000.0, 3501)
GEOMETRY_NPZ = "qm9s_geometries.npz"
GEOMETRY_XYZ = "qm9s_geometries.xyz"
GEOMETRY_PT = "qm9s.pt"
IR_CSV = "ir_boraden.csv"
_SYMBOLS = ("H", "He", "Li", "Be", "B", "C", "N", "O", "F", "Ne", "Na", "Mg", "Al", "Si", "P", "S")
_SYMBOLS += ("Cl", "Ar", "K", "Ca", "Sc", "Ti", "V", "Cr", "Mn", "Fe", "Co", "Ni", "Cu", "Zn")
_SYMBOLS += ("Ga", "Ge", "As", "Se", "Br", "Kr")
_Z_OF = {s: i + 1 for i, s in enumerate(_SYMBOLS)}


class ReleaseFormatError(ValueError):
    """A release file is missing or not in the documented format (message names the file)."""


class Geometry(NamedTuple):
    """One molecule's geometry from a release file."""

    smiles: str
    atomic_numbers: np.ndarray  # [n] int32
    positions: np.ndarray  # [n, 3] float32, Å
    file_index: int  # 0-based position in the geometry file (qm9s.pt order when exported)


def grid(points: int = QM9S_GRID[2]) -> np.ndarray:
    """[points] wavenumbers (cm⁻¹) of a release spectrum over 500..4000."""
    return np.linspace(QM9S_GRID[0], QM9S_GRID[1], points)


# ----------------------------------------------------------------------------- geometries


def read_geometries_npz(path: str) -> dict[int, Geometry]:
    """``{id: Geometry}`` from an npz (optional ``file_index`` [k]; default: row order)."""
    try:
        with np.load(path, allow_pickle=False) as f:
            a = {k: f[k] for k in ("ids", "smiles", "atom_offsets", "atomic_numbers")}
            a["positions_angstrom"] = f["positions_angstrom"]
            a["file_index"] = f["file_index"] if "file_index" in f else np.arange(len(a["ids"]))
    except (OSError, ValueError, KeyError) as e:
        msg = " ".join(str(e).split())
        raise ReleaseFormatError(f"{path}: not a geometry npz ({msg})") from None
    off = a["atom_offsets"]
    if off.shape != (len(a["ids"]) + 1,) or off[-1] != len(a["atomic_numbers"]):
        raise ReleaseFormatError(f"{path}: atom_offsets disagree with ids/atomic_numbers")
    z, x = a["atomic_numbers"].astype(np.int32), a["positions_angstrom"].astype(np.float32)
    return {
        int(i): Geometry(str(s), z[off[j] : off[j + 1]], x[off[j] : off[j + 1]], int(fi))
        for j, (i, s, fi) in enumerate(zip(a["ids"], a["smiles"], a["file_index"], strict=True))
    }


def _parse_comment(line: str, path: str, lineno: int) -> tuple[int, str]:
    fields = dict(tok.split("=", 1) for tok in line.split() if "=" in tok)
    if "id" not in fields or "smiles" not in fields:
        raise ReleaseFormatError(f"{path}:{lineno}: comment must be 'id=<int> smiles=<SMILES>'")
    return int(fields["id"]), fields["smiles"]


def _parse_atom(line: str, path: str, lineno: int) -> tuple[int, list[float]]:
    parts = line.split()
    if len(parts) < 4:
        raise ReleaseFormatError(f"{path}:{lineno}: expected '<element> x y z', got {line!r}")
    sym = parts[0]
    z = int(sym) if sym.isdigit() else _Z_OF.get(sym)
    if z is None:
        raise ReleaseFormatError(f"{path}:{lineno}: unknown element {sym!r}")
    return z, [float(v) for v in parts[1:4]]


def read_geometries_xyz(path: str) -> dict[int, Geometry]:
    """Same result as `read_geometries_npz`, from a multi-frame XYZ file."""
    with open(path) as f:
        lines = f.read().splitlines()
    out, i = {}, 0
    while i < len(lines):
        if not lines[i].strip():
            i += 1
            continue
        try:
            n = int(lines[i])
        except ValueError:
            raise ReleaseFormatError(f"{path}:{i + 1}: expected an atom count") from None
        if i + 2 + n > len(lines):
            raise ReleaseFormatError(f"{path}:{i + 1}: frame of {n} atoms is truncated")
        mol_id, smiles = _parse_comment(lines[i + 1], path, i + 2)
        atoms = [_parse_atom(lines[i + 2 + k], path, i + 3 + k) for k in range(n)]
        z = np.array([a[0] for a in atoms], np.int32)
        x = np.array([a[1] for a in atoms], np.float32).reshape(n, 3)
        out[mol_id] = Geometry(smiles, z, x, len(out))
        i += 2 + n
    return out


def _import_torch():
    try:
        import torch  # noqa: PLC0415
    except ImportError:
        raise ReleaseFormatError(
            "reading qm9s.pt needs torch and torch_geometric (not dependencies of this project): "
            f"export it to {GEOMETRY_NPZ} with `--export_npz` where torch is installed"
        ) from None
    return torch


def read_geometries_pt(path: str) -> dict[int, Geometry]:
    """Same result as `read_geometries_npz`, from the release's ``qm9s.pt`` (needs torch)."""
    torch = _import_torch()
    data = torch.load(path, map_location="cpu", weights_only=False)
    out = {}
    for pos_in_file, d in enumerate(data):
        number = getattr(d, "number", pos_in_file)
        mol_id = int(np.asarray(number).reshape(-1)[0])
        smiles = getattr(d, "smile", None) or getattr(d, "smiles", None)
        z = np.asarray(d.z, dtype=np.int32).reshape(-1)
        x = np.asarray(d.pos, dtype=np.float32).reshape(-1, 3)
        out[mol_id] = Geometry(str(smiles), z, x, pos_in_file)
    return out


def read_geometries(manual_dir: str, *, prefix: str = "qm9s") -> dict[int, Geometry]:
    """Geometries from the first of ``{prefix}_geometries.npz|.xyz`` or ``{prefix}.pt`` found."""
    readers = [
        (f"{prefix}_geometries.npz", read_geometries_npz),
        (f"{prefix}_geometries.xyz", read_geometries_xyz),
        (f"{prefix}.pt", read_geometries_pt),
    ]
    for name, reader in readers:
        path = os.path.join(manual_dir, name)
        if os.path.exists(path):
            return reader(path)
    names = ", ".join(n for n, _ in readers)
    raise ReleaseFormatError(f"no geometry file in {manual_dir} (expected one of {names})")


def write_geometries_npz(path: str, geometries: dict) -> None:
    """Write ``{id: Geometry}`` in the torch-free npz layout (ids sorted)."""
    ids = sorted(geometries)
    g = [geometries[i] for i in ids]
    np.savez(
        path,
        ids=np.array(ids, np.int64),
        smiles=np.array([m.smiles for m in g], dtype=str),
        atom_offsets=np.concatenate([[0], np.cumsum([len(m.atomic_numbers) for m in g])]),
        atomic_numbers=np.concatenate([m.atomic_numbers for m in g]).astype(np.int32),
        positions_angstrom=np.concatenate([m.positions for m in g]).astype(np.float32),
        file_index=np.array([m.file_index for m in g], np.int64),
    )


# ----------------------------------------------------------------------------- wide CSV


def _check_header(columns, path: str, points: int) -> None:
    if len(columns) != points:
        raise ReleaseFormatError(
            f"{path}: expected an id column and {points} spectrum columns, got {len(columns) + 1}"
        )
    try:
        values = np.asarray(columns, dtype=np.float64)
    except ValueError:
        return  # non-numeric headers: only the count is checked
    if values[0] in (QM9S_GRID[0], 0.0) and np.all(np.diff(values) > 0):
        return
    raise ReleaseFormatError(f"{path}: spectrum columns {columns[0]}..{columns[-1]} are not a grid")


def iter_wide_csv(
    path: str, *, points: int = QM9S_GRID[2], chunksize: int = 2000, ids=None
) -> Iterator[tuple[int, np.ndarray]]:
    """Stream ``(molecule id, spectrum [points] float32)`` rows of a wide spectrum CSV.

    Args:
        path: CSV with a header row; column 0 the integer id, then ``points`` values.
        chunksize: rows parsed at a time (memory ~ chunksize * points * 4 bytes).
        ids: optional set of ids to keep (others are skipped).
    """
    if not os.path.exists(path):
        raise ReleaseFormatError(f"{path}: spectrum CSV not found")
    with pd.read_csv(path, index_col=0, chunksize=chunksize, dtype=np.float32) as reader:
        for k, chunk in enumerate(reader):
            if k == 0:
                _check_header(list(chunk.columns), path, points)
            index = chunk.index.to_numpy()
            if not np.all(np.isfinite(index)) or np.any(index != np.round(index)):
                raise ReleaseFormatError(f"{path}: id column holds non-integer values")
            values = chunk.to_numpy(dtype=np.float32)
            for mol_id, row in zip(index.astype(np.int64), values, strict=True):
                if ids is None or int(mol_id) in ids:
                    yield int(mol_id), row


def read_csv_ids(path: str, chunksize: int = 20000) -> np.ndarray:
    """All molecule ids (column 0) of a wide spectrum CSV, in file order."""
    if not os.path.exists(path):
        raise ReleaseFormatError(f"{path}: spectrum CSV not found")
    parts = [c.iloc[:, 0].to_numpy() for c in pd.read_csv(path, usecols=[0], chunksize=chunksize)]
    return np.concatenate(parts).astype(np.int64) if parts else np.zeros(0, np.int64)


# ----------------------------------------------------------------------------- molecules


def molecule(mol_id: int, geometry: Geometry, spectrum, source: str) -> RawMolecule:
    """A `RawMolecule` from a geometry and an optional release spectrum (on `grid`)."""
    return RawMolecule(
        id=int(mol_id),
        smiles=geometry.smiles,
        atomic_numbers=geometry.atomic_numbers,
        positions_angstrom=geometry.positions,
        source=source,
        spectrum=spectrum,
        spectrum_grid_cm1=None if spectrum is None else grid(len(spectrum)),
    )


def keyed_geometries(geometries: dict, match_by: str) -> dict:
    """Geometries keyed by id (``"number"``) or by file index (``"position"``)."""
    if match_by == "number":
        return geometries
    if match_by == "position":
        return {g.file_index: g for g in geometries.values()}
    raise ValueError(f"match_by must be 'number' or 'position', got {match_by!r}")


def iter_molecules(
    manual_dir: str,
    *,
    ids=None,
    with_spectra: bool = True,
    match_by: str = "number",
    geometries: dict | None = None,
) -> Iterator[RawMolecule]:
    """QM9S molecules as `RawMolecule` (source ``"qm9s"``), in CSV order (id order without spectra).

    Args:
        ids: optional set of molecule ids to keep.
        with_spectra: False yields geometries only (no CSV pass), e.g. for screening.
        match_by: ``"number"`` (CSV id = geometry id) or ``"position"`` (CSV id = file index).
        geometries: already read `read_geometries` result (saves re-reading the file).
    """
    if geometries is None:
        geometries = read_geometries(manual_dir)
    if not with_spectra:
        for mol_id in sorted(geometries):
            if ids is None or mol_id in ids:
                yield molecule(mol_id, geometries[mol_id], None, "qm9s")
        return
    keyed = keyed_geometries(geometries, match_by)
    for mol_id, spectrum in iter_wide_csv(os.path.join(manual_dir, IR_CSV), ids=ids):
        if mol_id in keyed:
            yield molecule(mol_id, keyed[mol_id], spectrum, "qm9s")


def read_qm9s(manual_dir: str, **kw) -> Iterator[RawMolecule]:
    """All QM9S molecules with spectra (`iter_molecules`; ``data_pipeline.describe`` calls this)."""
    return iter_molecules(manual_dir, **kw)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m data_pipeline.qm9s_release", description=__doc__)
    p.add_argument("--manual_dir", required=True)
    p.add_argument("--export_npz", action="store_true", help=f"qm9s.pt -> {GEOMETRY_NPZ}")
    args = p.parse_args(argv)
    if args.export_npz:
        geometries = read_geometries_pt(os.path.join(args.manual_dir, GEOMETRY_PT))
        write_geometries_npz(os.path.join(args.manual_dir, GEOMETRY_NPZ), geometries)
        print(f"wrote {len(geometries)} geometries to {GEOMETRY_NPZ}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
