"""Preparation shared by every source: RawMolecule -> example schema v1, screening, splits, stats.

Example schema v1 (numpy values, one molecule), produced by `prepare_example`:
  "id": int64, "smiles": str, "formula": str (Hill),
  "atomic_numbers": int32 [n], "positions": float32 [n, 3] (Å, as given; the loader centres),
  "spectrum": float32 [3200] on MODEL_GRID, max-normalised to 1,
  "fg_labels": bool [20 (qm9s) | 26 (qme14s)], "formula_tokens": int32 [formula_len].

Screening report over a builder output directory:
  python -m data_pipeline.prepare --build_dir DIR [--tolerance_angstrom 0.4]
"""

import argparse
import collections
import json
import sys

import numpy as np

from data_pipeline.records import RawMolecule
from irgeodiff_jax.chem import bonds, elements, formula, functional_groups, spectra

MODEL_GRID = (500.0, 4000.0, 3200)
SCHEMA_VERSION = 1
_SCHEME_ELEMENTS = {"qm9s": elements.QM9S_ELEMENTS, "qme14s": elements.QME14S_ELEMENTS}


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
        elements.check_supported(z, allowed=_SCHEME_ELEMENTS[scheme])
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
    if scheme not in _SCHEME_ELEMENTS:
        raise _fail(raw, f"unknown scheme {scheme!r}, choose from {sorted(_SCHEME_ELEMENTS)}")
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


def screen(
    raw: RawMolecule, *, tolerance_angstrom: float = bonds.DEFAULT_TOLERANCE_ANGSTROM
) -> tuple[bool, str]:
    """Do the bonds assigned from the geometry give the reference SMILES?

    Returns:
        ``(True, "")`` if they agree; otherwise ``(False, reason)`` with reason
        ``"assignment failed: ..."``, ``"reference smiles unparsable: ..."`` or
        ``"smiles mismatch: got X expected Y"`` (canonical, no stereo, no explicit H).
    """
    try:
        mol = bonds.geometry_to_mol(
            raw.atomic_numbers, raw.positions_angstrom, tolerance_angstrom=tolerance_angstrom
        )
        got = bonds.mol_to_canonical_smiles(mol)
    except bonds.BondAssignmentError as e:
        return False, f"assignment failed: {' '.join(str(e).split())}"
    expected = bonds.canonical_smiles(raw.smiles)
    if expected is None:
        return False, f"reference smiles unparsable: {raw.smiles}"
    if got != expected:
        return False, f"smiles mismatch: got {got} expected {expected}"
    return True, ""


def screen_category(reason: str) -> str:
    """The category of a `screen` reason (text before the first colon)."""
    return reason.split(":", 1)[0]


def _skeleton(smiles: str) -> str | None:
    """Heavy-atom connectivity of a SMILES: all bonds single, no charges, H or aromaticity."""
    from rdkit import Chem

    mol = Chem.MolFromSmiles(smiles, sanitize=False)
    if mol is None:
        return None
    rw = Chem.RWMol(mol)
    for bond in rw.GetBonds():
        bond.SetBondType(Chem.BondType.SINGLE)
        bond.SetIsAromatic(False)
    for atom in rw.GetAtoms():
        atom.SetIsAromatic(False)
        atom.SetFormalCharge(0)
        atom.SetNumExplicitHs(0)
        atom.SetNoImplicit(True)
        atom.SetNumRadicalElectrons(0)
    rw.UpdatePropertyCache(strict=False)
    Chem.FastFindRings(rw)
    return Chem.MolToSmiles(rw)


def screen_detail(reason: str) -> str:
    """Finer category of a `screen` reason, for reports.

    ``smiles mismatch`` splits into ``charged reference`` (QM9 SMILES of a zwitterion; the bond
    assignment is for neutral molecules), ``connectivity differs`` (different heavy-atom graph,
    e.g. a bond formed or broken in the geometry) and ``bond orders differ`` (same graph).
    """
    category = screen_category(reason)
    if category != "smiles mismatch":
        return category
    got, _, expected = reason.split(": ", 1)[1].removeprefix("got ").partition(" expected ")
    if "+" in expected or "-]" in expected:
        return "smiles mismatch: charged reference"
    if _skeleton(got) != _skeleton(expected):
        return "smiles mismatch: connectivity differs"
    return "smiles mismatch: bond orders differ"


def split_ids(ids, *, seed: int, num_test: int = 1000, val_fraction: float = 0.05) -> dict:
    """Seeded split: ``num_test`` random test ids, the rest ``1 - val_fraction : val_fraction``.

    The result depends only on the set of ids (not their order) and the arguments.

    Returns:
        ``{"train", "validation", "test"}`` -> sorted int64 arrays, disjoint, covering ``ids``.
    """
    ids = np.unique(np.asarray(ids, dtype=np.int64))
    if not 0 <= num_test < ids.size:
        raise ValueError(f"num_test {num_test} must be in [0, {ids.size}) for {ids.size} ids")
    if not 0.0 <= val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction}")
    order = ids[np.random.default_rng(seed).permutation(ids.size)]
    test, rest = order[:num_test], order[num_test:]
    num_val = int(round(val_fraction * rest.size))
    return {
        "train": np.sort(rest[num_val:]),
        "validation": np.sort(rest[:num_val]),
        "test": np.sort(test),
    }


def compute_stats(examples) -> dict:
    """Dataset statistics of schema-v1 examples (JSON-serialisable).

    Returns:
        ``num_molecules``, ``max_atoms``, ``num_atoms_histogram`` (list, index = atom count),
        ``elements`` (sorted atomic numbers), ``element_counts`` (symbol -> atoms),
        ``formula_words`` (sorted words seen), ``num_fg_labels``, ``fg_label_counts``.
    """
    sizes, counts, words, fg = [], collections.Counter(), set(), None
    for ex in examples:
        z = np.asarray(ex["atomic_numbers"])
        sizes.append(z.size)
        counts.update(int(v) for v in z)
        words.update(formula.FormulaTokenizer.for_dataset("qme14s").words(ex["formula"]))
        labels = np.asarray(ex["fg_labels"], dtype=np.int64)
        fg = labels if fg is None else fg + labels
    if not sizes:
        raise ValueError("compute_stats needs at least one example")
    hist = np.bincount(sizes)
    return {
        "num_molecules": len(sizes),
        "max_atoms": int(max(sizes)),
        "num_atoms_histogram": hist.tolist(),
        "elements": sorted(counts),
        "element_counts": {elements.symbol(z): n for z, n in sorted(counts.items())},
        "formula_words": sorted(words, key=lambda w: (w.isdigit(), int(w) if w.isdigit() else w)),
        "num_fg_labels": int(fg.size),
        "fg_label_counts": fg.tolist(),
    }


def screening_report(raws, *, tolerance_angstrom: float) -> dict:
    """Screens every molecule; counts by category and the removed ids with reasons."""
    removed = {}
    for raw in raws:
        ok, reason = screen(raw, tolerance_angstrom=tolerance_angstrom)
        if not ok:
            removed[int(raw.id)] = reason
    by_category = collections.Counter(screen_category(r) for r in removed.values())
    by_detail = collections.Counter(screen_detail(r) for r in removed.values())
    return {
        "num_screened": len(raws),
        "num_removed": len(removed),
        "by_category": dict(sorted(by_category.items())),
        "by_detail": dict(sorted(by_detail.items())),
        "removed": {str(k): v for k, v in sorted(removed.items())},
    }


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m data_pipeline.prepare", description=__doc__)
    p.add_argument("--build_dir", required=True, help="output directory of build_qm9_ir")
    p.add_argument("--tolerance_angstrom", type=float, default=bonds.DEFAULT_TOLERANCE_ANGSTROM)
    args = p.parse_args(argv)
    from data_pipeline import merge_shards

    try:
        raws = merge_shards.read_build(args.build_dir)
    except (ValueError, FileNotFoundError) as e:
        print(f"prepare: error: {e}", file=sys.stderr)
        return 2
    report = screening_report(raws, tolerance_angstrom=args.tolerance_angstrom)
    print(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
