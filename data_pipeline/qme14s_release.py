"""Reader for QMe14S (JPCL 2025; 186,102 molecules, 14 elements, IR on 3,500 points, 500-4000).

The official file layout was not found (reference-notes §3), so this project defines the files it
reads in ``manual_dir`` (same conventions as the QM9S reader, see data_pipeline/README.md), and
reads them with the QM9S reader's file functions (``qm9s_release``; that module does not import
this one):

* Geometries, one of (first found wins): ``qme14s_geometries.npz`` (npz layout of
  `qm9s_release.write_geometries_npz`: ids, smiles, atom_offsets, atomic_numbers,
  positions_angstrom[, file_index]), ``qme14s_geometries.xyz`` (multi-frame XYZ, comment line
  ``id=<int> smiles=<SMILES>``), or ``qme14s.pt`` (a list of PyG ``Data`` with ``z``, ``pos``,
  ``smile``/``smiles``, ``number``; needs torch; field names are an assumption).
* ``qme14s_ir.csv``: wide CSV, first column the integer molecule id (matching the geometry id),
  then 3,500 columns = ``np.linspace(500, 4000, 3500)`` cm⁻¹.
"""

import os
from collections.abc import Iterator

from data_pipeline import qm9s_release
from data_pipeline.records import RawMolecule

QME14S_POINTS = 3500
IR_CSV = "qme14s_ir.csv"
PREFIX = "qme14s"


def iter_molecules(
    manual_dir: str,
    *,
    ids=None,
    with_spectra: bool = True,
    match_by: str = "number",
    geometries: dict | None = None,
) -> Iterator[RawMolecule]:
    """QMe14S molecules as `RawMolecule` (source ``"qme14s"``), in CSV order.

    Args:
        ids: optional set of molecule ids to keep.
        with_spectra: False yields geometries only (no CSV pass), e.g. for screening.
        match_by: ``"number"`` (CSV id = geometry id) or ``"position"`` (CSV id = file index).
        geometries: already read geometries (saves re-reading the file).
    """
    if geometries is None:
        geometries = qm9s_release.read_geometries(manual_dir, prefix=PREFIX)
    if not with_spectra:
        for mol_id in sorted(geometries):
            if ids is None or mol_id in ids:
                yield qm9s_release.molecule(mol_id, geometries[mol_id], None, "qme14s")
        return
    keyed = qm9s_release.keyed_geometries(geometries, match_by)
    csv_path = os.path.join(manual_dir, IR_CSV)
    for mol_id, spectrum in qm9s_release.iter_wide_csv(csv_path, points=QME14S_POINTS, ids=ids):
        if mol_id in keyed:
            yield qm9s_release.molecule(mol_id, keyed[mol_id], spectrum, "qme14s")


def read_qme14s(manual_dir: str, **kw) -> Iterator[RawMolecule]:
    """All QMe14S molecules with spectra (`iter_molecules`; ``data_pipeline.describe`` calls it)."""
    return iter_molecules(manual_dir, **kw)
