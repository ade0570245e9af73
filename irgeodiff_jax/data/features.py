"""Per-molecule features for the runtime loader: checks, centring, atom types, padding, tokens.

Numpy only (no RDKit, no JAX). Input is one example of schema v1 (see ``data/prepare.py``);
output is a dict of fixed-shape arrays that `collate` stacks into a `types.Batch`. Every bad
input raises `ExampleError` with a one-line message naming the molecule.
"""

import numpy as np

from irgeodiff_jax.chem import elements, spectra
from irgeodiff_jax.data import types

SPECTRUM_POINTS = spectra.MODEL_GRID[2]  # 3200 points over 500-4000 cm^-1
TOKEN_LEVELS = 100


class ExampleError(ValueError):
    """A prepared example the loader cannot use (message names the molecule id)."""


def atom_type_indices(atomic_numbers, vocab, *, mol_id) -> np.ndarray:
    """Indices of ``atomic_numbers`` [n] into ``vocab``; [n] int32."""
    lookup = np.full(max(max(vocab), int(np.max(atomic_numbers, initial=0))) + 1, -1, np.int32)
    lookup[list(vocab)] = np.arange(len(vocab), dtype=np.int32)
    z = np.asarray(atomic_numbers, dtype=np.int64)
    if np.any(z < 1):
        raise ExampleError(f"molecule {mol_id}: atomic numbers must be >= 1, got {z.tolist()}")
    idx = lookup[z]
    if np.any(idx < 0):
        bad = int(z[np.argmax(idx < 0)])
        raise ExampleError(
            f"molecule {mol_id}: element Z={bad} is not in the atom vocabulary {tuple(vocab)}"
        )
    return idx


def centre(positions, mask=None) -> np.ndarray:
    """Subtract the mean position of the real atoms (EDM's unweighted "centre of mass").

    Args:
        positions: [n, 3] (or [N, 3] padded).
        mask: optional [N] bool of real atoms; padded rows are returned as zeros.

    Returns:
        [n, 3] float32 with zero mean over real atoms.
    """
    x = np.asarray(positions, dtype=np.float64)
    m = np.ones(x.shape[0], bool) if mask is None else np.asarray(mask, bool)
    if not m.any():
        return np.zeros_like(x, dtype=np.float32)
    out = (x - x[m].mean(axis=0)) * m[:, None]
    return out.astype(np.float32)


def check_spectrum(spectrum, *, mol_id, points: int = SPECTRUM_POINTS) -> np.ndarray:
    """Validate a model-grid spectrum (length, NaN/inf, negative, flat); [points] float32."""
    y = np.asarray(spectrum)
    if y.ndim != 1:
        raise ExampleError(f"molecule {mol_id}: spectrum must be 1-D, got shape {y.shape}")
    try:
        spectra.validate(y, expected_length=points)
    except spectra.SpectrumError as e:
        raise ExampleError(f"molecule {mol_id}: {e}") from None
    return y.astype(np.float32)


def _check_geometry(z, pos, mol_id, max_atoms) -> None:
    if z.ndim != 1 or pos.shape != (z.shape[0], 3):
        raise ExampleError(
            f"molecule {mol_id}: atomic_numbers {z.shape} and positions {pos.shape} disagree"
        )
    if z.shape[0] == 0:
        raise ExampleError(f"molecule {mol_id}: has no atoms")
    if z.shape[0] > max_atoms:
        raise ExampleError(
            f"molecule {mol_id}: has {z.shape[0]} atoms, more than max_atoms={max_atoms}"
        )
    if not np.all(np.isfinite(pos)):
        raise ExampleError(f"molecule {mol_id}: positions contain NaN or inf")


def _fixed_length(x, length, dtype, name, mol_id) -> np.ndarray:
    x = np.asarray(x).astype(dtype)
    if x.ndim != 1 or (length is not None and x.shape[0] != length):
        raise ExampleError(f"molecule {mol_id}: {name} has shape {x.shape}, expected ({length},)")
    return x


def featurize(
    example: dict,
    *,
    max_atoms: int,
    vocab=elements.QM9S_ELEMENTS,
    spectrum_points: int = SPECTRUM_POINTS,
    levels: int = TOKEN_LEVELS,
    formula_len: int | None = None,
    num_fg: int | None = None,
    blank_spectrum: bool = False,
) -> dict:
    """One schema-v1 example -> padded per-molecule arrays (the rows of a `types.Batch`).

    Args:
        example: schema-v1 dict (``id``, ``atomic_numbers`` [n], ``positions`` [n, 3],
            ``spectrum`` [S], ``formula_tokens`` [F], ``fg_labels`` [m], ...).
        max_atoms: N, the padded atom count; more atoms is an error.
        vocab: atomic numbers in type-index order.
        spectrum_points: expected S.
        levels: number of spectrum token levels.
        formula_len: expected F (None: accept any).
        num_fg: expected m (None: accept any).
        blank_spectrum: replace the (checked) spectrum and its tokens by zeros: the ablation
            that trains and samples a model without spectral information.

    Returns:
        dict with the `types.Batch` keys, each without the batch axis.
    """
    mol_id = int(example["id"])
    z = np.asarray(example["atomic_numbers"])
    pos = np.asarray(example["positions"], dtype=np.float64)
    _check_geometry(z, pos, mol_id, max_atoms)
    types_ = atom_type_indices(z, vocab, mol_id=mol_id)
    spec = check_spectrum(example["spectrum"], mol_id=mol_id, points=spectrum_points)
    if blank_spectrum:
        spec = np.zeros_like(spec)
    n = z.shape[0]
    mask = np.zeros(max_atoms, bool)
    mask[:n] = True
    padded_pos = np.zeros((max_atoms, 3), np.float32)
    padded_pos[:n] = centre(pos)
    padded_types = np.zeros(max_atoms, np.int32)
    padded_types[:n] = types_
    formula = _fixed_length(example["formula_tokens"], formula_len, np.int32, "formula", mol_id)
    fg = _fixed_length(example["fg_labels"], num_fg, np.float32, "fg_labels", mol_id)
    return {
        "positions": padded_pos,
        "atom_types": padded_types,
        "atom_mask": mask,
        "spectrum": spec,
        "spectrum_tokens": (
            np.zeros(spec.shape, np.int32)
            if blank_spectrum
            else spectra.tokenize(spec, levels=levels)
        ),
        "formula_tokens": formula,
        "fg_labels": fg,
        "num_atoms": np.int32(n),
        "id": np.int64(mol_id),
    }


def empty_row(max_atoms: int, *, spectrum_points: int, formula_len: int, num_fg: int) -> dict:
    """A padding row: no atoms, zero arrays, ``id == -1``, ``num_atoms == 0``."""
    return {
        "positions": np.zeros((max_atoms, 3), np.float32),
        "atom_types": np.zeros(max_atoms, np.int32),
        "atom_mask": np.zeros(max_atoms, bool),
        "spectrum": np.zeros(spectrum_points, np.float32),
        "spectrum_tokens": np.zeros(spectrum_points, np.int32),
        "formula_tokens": np.zeros(formula_len, np.int32),
        "fg_labels": np.zeros(num_fg, np.float32),
        "num_atoms": np.int32(0),
        "id": np.int64(-1),
    }


def collate(rows: list[dict]) -> types.Batch:
    """Stack featurized rows (all padded to the same N) into a `types.Batch`."""
    if not rows:
        raise ValueError("collate needs at least one row")
    return types.Batch(
        **{k: np.stack([r[k] for r in rows]).astype(d) for k, d in types.BATCH_DTYPES.items()}
    )
