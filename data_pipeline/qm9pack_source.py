"""QM9 geometries, SMILES and B3LYP harmonic frequencies from the ``qm9pack`` package.

``import qm9pack`` fails with modern setuptools (it imports ``pkg_resources``), so the package's CSV
files are located with ``importlib.util.find_spec`` and read directly. The package holds 130,831
molecules in three CSV parts; ``Index`` is the QM9 (gdb9) molecule index, 1-based.
"""

import ast
import dataclasses
import functools
import importlib.util
import os

import numpy as np
import pandas as pd

_PARTS = ("qm9_part1.csv", "qm9_part2.csv", "qm9_part3.csv")
_COLUMNS = ["Index", "SMILES", "N_atoms", "Elements", "XYZ_Ang", "Harmonic_Freq_cmi"]
_SYMBOL_TO_Z = {"H": 1, "C": 6, "N": 7, "O": 8, "F": 9}


@dataclasses.dataclass(frozen=True)
class QM9Molecule:
    """One QM9 molecule as ``qm9pack`` stores it (B3LYP/6-31G(2df,p) geometry)."""

    index: int  # gdb9 index (1-based)
    smiles: str  # QM9's SMILES of the relaxed geometry (GDB SMILES may differ)
    atomic_numbers: np.ndarray  # [N] int32
    positions_angstrom: np.ndarray  # [N, 3] float64
    harmonic_frequencies_cm1: np.ndarray  # [3N-6] (3N-5 if linear) float64


def data_dir() -> str:
    """Directory holding qm9pack's CSV files, found without importing the package."""
    spec = importlib.util.find_spec("qm9pack")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("package 'qm9pack' is not installed: pip install qm9pack==1.0.3")
    path = os.path.join(list(spec.submodule_search_locations)[0], "data")
    missing = [p for p in _PARTS if not os.path.exists(os.path.join(path, p))]
    if missing:
        raise FileNotFoundError(f"qm9pack data files missing in {path}: {missing}")
    return path


@functools.lru_cache(maxsize=1)
def table() -> pd.DataFrame:
    """All 130,831 rows (raw strings for the array columns), ordered by QM9 index."""
    root = data_dir()
    parts = [pd.read_csv(os.path.join(root, p), usecols=_COLUMNS) for p in _PARTS]
    df = pd.concat(parts, ignore_index=True).sort_values("Index", kind="stable")
    return df.set_index("Index", drop=False)


def _is_linear(positions: np.ndarray) -> bool:
    if len(positions) < 3:
        return True
    centred = positions - positions.mean(axis=0)
    s = np.linalg.svd(centred, compute_uv=False)
    return bool(s[1] < 1e-3 * max(s[0], 1e-12))


def _floats(text: str) -> np.ndarray:
    # qm9pack writes numbers such as "0." and "1." (not valid JSON): split on commas instead.
    return np.asarray(text.replace("[", " ").replace("]", " ").split(","), dtype=np.float64)


def _parse_row(row) -> QM9Molecule:
    symbols = ast.literal_eval(row.Elements)
    z = np.array([_SYMBOL_TO_Z[s] for s in symbols], dtype=np.int32)
    pos = _floats(row.XYZ_Ang).reshape(-1, 3)
    if len(z) != int(row.N_atoms) or pos.shape[0] != len(z):
        raise ValueError(f"QM9 index {row.Index}: inconsistent atom count")
    freqs = _floats(row.Harmonic_Freq_cmi)
    # 334 rows carry two concatenated frequency lists: keep the first 3N-6 (3N-5 if linear).
    n_modes = 3 * len(z) - (5 if _is_linear(pos) else 6)
    return QM9Molecule(int(row.Index), str(row.SMILES), z, pos, freqs[:n_modes])


def all_indices() -> np.ndarray:
    """Sorted QM9 indices present in qm9pack."""
    return table()["Index"].to_numpy()


def molecule(index: int) -> QM9Molecule:
    """The molecule with QM9 index ``index`` (KeyError if qm9pack does not have it)."""
    df = table()
    if index not in df.index:
        raise KeyError(f"QM9 index {index} is not in qm9pack")
    return _parse_row(df.loc[index])


def sample_indices(num: int, seed: int) -> np.ndarray:
    """``num`` distinct QM9 indices drawn deterministically with ``seed`` (in draw order)."""
    idx = all_indices()
    if num > len(idx):
        raise ValueError(f"asked for {num} molecules, qm9pack has {len(idx)}")
    return idx[np.random.default_rng(seed).permutation(len(idx))[:num]]


def molecules(indices) -> list[QM9Molecule]:
    """Molecules for the given QM9 indices, in order."""
    return [molecule(int(i)) for i in indices]
