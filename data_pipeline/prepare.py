"""Offline preparation: screening (bonds vs SMILES), splits and dataset statistics.

`prepare_example` (RawMolecule -> example schema v1, see ``irgeodiff_jax.data.prepare``) is the
runtime's; it is re-exported here with ``MODEL_GRID``, ``SCHEMA_VERSION``, ``PrepareError``,
``model_grid`` and ``model_spectrum`` for the offline builders.

Screening report over a builder output directory:
  python -m data_pipeline.prepare --build_dir DIR [--tolerance_angstrom 0.4]
"""

import argparse
import collections
import json
import sys

import numpy as np

from irgeodiff_jax.chem import bonds, elements, formula
from irgeodiff_jax.data.prepare import MODEL_GRID as MODEL_GRID
from irgeodiff_jax.data.prepare import SCHEMA_VERSION as SCHEMA_VERSION
from irgeodiff_jax.data.prepare import PrepareError as PrepareError
from irgeodiff_jax.data.prepare import model_grid as model_grid
from irgeodiff_jax.data.prepare import model_spectrum as model_spectrum
from irgeodiff_jax.data.prepare import prepare_example as prepare_example
from irgeodiff_jax.data.records import RawMolecule


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
