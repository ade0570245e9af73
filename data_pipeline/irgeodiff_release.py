"""Reader for the reference implementation's preprocessed pickles (IR-GeoDiff Zenodo ``data.zip``).

Each file (e.g. ``fg20_qm9s_final_test_1000.pkl``) is a pickled ``pandas.DataFrame``, one row per
molecule, with the columns (reference-notes §1.1):

* ``positions``: [n, 3] float (Å); ``charges``: [n] atomic numbers (0 = padding, trailing);
* ``num_atoms``: int n; ``smiles``: str;
* ``spectra``: raw spectrum, 3,501 points (QM9S, 500-4000 at 1 cm⁻¹) or 3,500 (QMe14S);
* ``formula``: formula token ids (0 = pad), the reference tokenizer's, not this project's;
* ``func_groups``: multi-hot FG labels (20 QM9S / 26 QMe14S).

The molecule id is the DataFrame index (must be integer). `read_molecules` gives `RawMolecule`
records (source ``"irgeodiff_pickle"``, dense spectrum on ``linspace(500, 4000, len)``);
`read_reference_labels` gives the stored formula tokens and FG labels for comparison.
"""

import numpy as np
import pandas as pd

from data_pipeline.qm9s_release import ReleaseFormatError, grid
from data_pipeline.records import RawMolecule

COLUMNS = ("positions", "charges", "num_atoms", "spectra", "smiles", "formula", "func_groups")
SPECTRUM_POINTS = (3501, 3500)


def read_frame(path: str) -> pd.DataFrame:
    """The pickled DataFrame, with its columns and index checked."""
    try:
        frame = pd.read_pickle(path)
    except FileNotFoundError:
        raise ReleaseFormatError(f"{path}: file not found") from None
    except Exception as e:  # noqa: BLE001  (any unpickling failure is a format error)
        msg = " ".join(str(e).split())
        raise ReleaseFormatError(f"{path}: not a readable pandas pickle ({msg})") from None
    if not isinstance(frame, pd.DataFrame):
        raise ReleaseFormatError(f"{path}: holds a {type(frame).__name__}, not a DataFrame")
    missing = [c for c in COLUMNS if c not in frame.columns]
    if missing:
        raise ReleaseFormatError(f"{path}: missing columns {missing}")
    if not pd.api.types.is_integer_dtype(frame.index):
        raise ReleaseFormatError(f"{path}: index must hold integer molecule ids")
    return frame


def _row_arrays(path: str, mol_id: int, row) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    n = int(row.num_atoms)
    z = np.asarray(row.charges).reshape(-1).astype(np.int32)
    x = np.asarray(row.positions, dtype=np.float32).reshape(-1, 3)
    if len(z) < n or len(x) < n or np.any(z[:n] <= 0) or np.any(z[n:] != 0):
        raise ReleaseFormatError(
            f"{path}: molecule {mol_id}: charges/positions disagree with num_atoms={n}"
        )
    spectrum = np.asarray(row.spectra, dtype=np.float32).reshape(-1)
    if spectrum.size not in SPECTRUM_POINTS:
        raise ReleaseFormatError(
            f"{path}: molecule {mol_id}: spectrum has {spectrum.size} points, "
            f"expected one of {SPECTRUM_POINTS}"
        )
    return z[:n], x[:n], spectrum


def read_molecules(path: str) -> list[RawMolecule]:
    """All rows as `RawMolecule` (source ``"irgeodiff_pickle"``), in file order."""
    out = []
    for mol_id, row in read_frame(path).iterrows():
        z, x, spectrum = _row_arrays(path, int(mol_id), row)
        out.append(
            RawMolecule(
                id=int(mol_id),
                smiles=str(row.smiles),
                atomic_numbers=z,
                positions_angstrom=x,
                source="irgeodiff_pickle",
                spectrum=spectrum,
                spectrum_grid_cm1=grid(spectrum.size),
            )
        )
    return out


def read_reference_labels(path: str) -> dict[int, dict[str, np.ndarray]]:
    """``{id: {"formula_tokens": int32 [F], "fg_labels": bool [m]}}`` as the pickle stores them."""
    return {
        int(mol_id): {
            "formula_tokens": np.asarray(row.formula).reshape(-1).astype(np.int32),
            "fg_labels": np.asarray(row.func_groups).reshape(-1).astype(bool),
        }
        for mol_id, row in read_frame(path).iterrows()
    }
