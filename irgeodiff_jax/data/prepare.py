"""Preparation of one molecule: RawMolecule -> example schema v1 (what the loader reads).

Example schema v1 (numpy values, one molecule), produced by `prepare_example`:
  "id": int64, "smiles": str, "formula": str (Hill),
  "atomic_numbers": int32 [n], "positions": float32 [n, 3] (Å, as given; the loader centres),
  "spectrum": float32 [3200] on MODEL_GRID, max-normalised to 1,
  "fg_labels": bool [20 (qm9s) | 26 (qme14s)], "formula_tokens": int32 [formula_len].

The embedded source prepares the shipped subset with it in every process (`sources`); the offline
``data_pipeline`` (tfds builders, screening, statistics) uses the same function.
"""

import numpy as np

from irgeodiff_jax.chem import elements, formula, functional_groups, spectra
from irgeodiff_jax.data.records import RawMolecule

MODEL_GRID = spectra.MODEL_GRID
SCHEMA_VERSION = 1


class PrepareError(ValueError):
    """A molecule that cannot become an example; the message names the molecule and the problem."""


def _fail(raw: RawMolecule, reason: str) -> PrepareError:
    return PrepareError(f"molecule {raw.id} ({raw.source}): {' '.join(str(reason).split())}")


def model_grid() -> np.ndarray:
    """[3200] wavenumbers (cm⁻¹) of the model spectrum."""
    return spectra.grid(*MODEL_GRID)


def _checked_geometry(raw: RawMolecule, scheme: str, max_atoms: int | None):
    z = np.asarray(raw.atomic_numbers)
    x = np.asarray(raw.positions_angstrom, dtype=np.float64)
    if z.ndim != 1 or z.size == 0 or not np.issubdtype(z.dtype, np.integer):
        raise _fail(raw, f"atomic_numbers must be a non-empty 1-D integer array, got {z.shape}")
    if x.shape != (z.size, 3):
        raise _fail(raw, f"positions must have shape ({z.size}, 3), got {x.shape}")
    if not np.all(np.isfinite(x)):
        raise _fail(raw, "positions contain NaN or inf")
    if max_atoms is not None and z.size > max_atoms:
        raise _fail(raw, f"{z.size} atoms > max_atoms {max_atoms}")
    try:
        elements.check_supported(z, allowed=elements.ATOM_VOCABULARIES[scheme])
    except elements.UnknownElementError as e:
        raise _fail(raw, f"unknown element for scheme {scheme!r}: {e}") from None
    return z.astype(np.int32), x.astype(np.float32)


def _stick_spectrum(raw, grid, frequency_scale, fwhm_cm1) -> np.ndarray:
    f = np.asarray(raw.frequencies_cm1, dtype=np.float64)
    y = np.asarray(raw.intensities_km_mol, dtype=np.float64)
    if f.shape != y.shape or f.ndim != 1:
        raise _fail(raw, f"frequencies {f.shape} and intensities {y.shape} must be equal 1-D")
    if not (np.all(np.isfinite(f)) and np.all(np.isfinite(y))):
        raise _fail(raw, "stick spectrum contains NaN or inf")
    if np.any(y < 0):
        raise _fail(raw, "stick spectrum has negative intensities")
    real = f > 0  # imaginary modes (negative frequencies) carry no absorption line
    if not np.any(y[real] > 0):
        raise _fail(raw, "stick spectrum is all zero")
    return spectra.broaden(f[real], y[real], grid, fwhm_cm1=fwhm_cm1, scale=frequency_scale)


def _dense_spectrum(raw, grid) -> np.ndarray:
    src = np.asarray(raw.spectrum_grid_cm1, dtype=np.float64)
    y = np.asarray(raw.spectrum)
    if y.ndim != 1 or y.shape[0] != src.shape[0]:
        raise _fail(raw, f"spectrum has {y.shape} points but its grid has {src.shape[0]}")
    spectra.validate(y)
    return spectra.resample(y, src, grid)


def model_spectrum(raw: RawMolecule, *, frequency_scale: float, fwhm_cm1: float) -> np.ndarray:
    """[3200] float32 spectrum on MODEL_GRID, max-normalised to 1 (PrepareError if unusable)."""
    grid = model_grid()
    try:
        if raw.has_dense_spectrum:
            y = _dense_spectrum(raw, grid)
        elif raw.has_sticks:
            y = _stick_spectrum(raw, grid, frequency_scale, fwhm_cm1)
        else:
            raise _fail(raw, "no spectrum (neither sticks nor a dense spectrum with its grid)")
        y = spectra.validate(y, expected_length=MODEL_GRID[2])
    except spectra.SpectrumError as e:
        raise _fail(raw, f"bad spectrum: {e}") from None
    return (y / y.max()).astype(np.float32)


def prepare_example(
    raw: RawMolecule,
    *,
    scheme: str,
    frequency_scale: float,
    fwhm_cm1: float = 15.0,
    formula_len: int = 16,
    max_atoms: int | None = None,
    formula_vocab: str | None = None,
) -> dict:
    """Example schema v1 of one molecule (see the module docstring).

    Args:
        raw: the source record (sticks are broadened, dense spectra resampled).
        scheme: "qm9s" (H C N O F, 20 FG labels) or "qme14s" (14 elements, 26 labels).
        frequency_scale: factor applied to stick frequencies (1.0 for qm9_ir: the xTB oracle
            spectra are not scaled either). Ignored for dense spectra.
        fwhm_cm1: Lorentzian FWHM F (eq. 15).
        formula_len: length of ``formula_tokens``.
        max_atoms: reject molecules with more atoms (None: no limit).
        formula_vocab: formula tokenizer preset (default: ``scheme``).

    Raises:
        PrepareError: one line naming the molecule and the problem.
    """
    schemes = elements.ATOM_VOCABULARIES
    if scheme not in schemes:
        raise _fail(raw, f"unknown scheme {scheme!r}, choose from {sorted(schemes)}")
    z, x = _checked_geometry(raw, scheme, max_atoms)
    spectrum = model_spectrum(raw, frequency_scale=frequency_scale, fwhm_cm1=fwhm_cm1)
    try:
        hill = formula.from_atomic_numbers(z)
        tokenizer = formula.FormulaTokenizer.for_dataset(formula_vocab or scheme)
        tokens = tokenizer.encode(hill, formula_len)
        fg = functional_groups.labels(raw.smiles, scheme=scheme)
    except (formula.FormulaError, functional_groups.FunctionalGroupError) as e:
        raise _fail(raw, e) from None
    return {
        "id": np.int64(raw.id),
        "smiles": str(raw.smiles),
        "formula": hill,
        "atomic_numbers": z,
        "positions": x,
        "spectrum": spectrum,
        "fg_labels": np.asarray(fg, dtype=bool),
        "formula_tokens": np.asarray(tokens, dtype=np.int32),
    }
