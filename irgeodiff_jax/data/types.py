"""Batch type yielded by the runtime input pipeline (fixed-shape numpy arrays on host).

Shapes use B = local batch size, N = padded atom count (``max_atoms`` or a bucket size),
S = spectrum points on the model grid (3,200), F = formula length, m = number of FG labels.
"""

from typing import NamedTuple

import numpy as np

# Keys of "example schema v1" (one prepared molecule; see data/prepare.py).
EXAMPLE_KEYS = (
    "id",
    "smiles",
    "formula",
    "atomic_numbers",
    "positions",
    "spectrum",
    "fg_labels",
    "formula_tokens",
)


class Batch(NamedTuple):
    """One fixed-shape batch of molecules (a pytree of numpy arrays).

    Padding rows of a batch (only in a final partial batch when ``drop_remainder=False``) have
    ``id == -1``, ``num_atoms == 0`` and all-False ``atom_mask``.

    Attributes:
        positions: [B, N, 3] float32, Å; zero mean over real atoms, padded rows zero.
        atom_types: [B, N] int32 index into the dataset's atom vocabulary; 0 on padding
            (padding is identified by ``atom_mask``, not by type).
        atom_mask: [B, N] bool, True for real atoms.
        spectrum: [B, S] float32 on the model grid, max-normalised to 1.
        spectrum_tokens: [B, S] int32 in [0, levels - 1].
        formula_tokens: [B, F] int32 (0 = pad).
        fg_labels: [B, m] float32 multi-hot functional-group labels.
        num_atoms: [B] int32.
        id: [B] int64 source molecule id (-1 for padding rows).
    """

    positions: np.ndarray
    atom_types: np.ndarray
    atom_mask: np.ndarray
    spectrum: np.ndarray
    spectrum_tokens: np.ndarray
    formula_tokens: np.ndarray
    fg_labels: np.ndarray
    num_atoms: np.ndarray
    id: np.ndarray


BATCH_DTYPES = {
    "positions": np.float32,
    "atom_types": np.int32,
    "atom_mask": np.bool_,
    "spectrum": np.float32,
    "spectrum_tokens": np.int32,
    "formula_tokens": np.int32,
    "fg_labels": np.float32,
    "num_atoms": np.int32,
    "id": np.int64,
}
