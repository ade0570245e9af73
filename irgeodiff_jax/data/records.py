"""Raw molecule record shared by every data source (builder, releases, embedded subset).

A `RawMolecule` is what a source yields *before* preparation: a geometry, its reference SMILES
and either a stick spectrum (xTB frequencies/intensities, source ``qm9_ir``) or a dense spectrum
on its own grid (released datasets). `prepare.prepare_example` turns it into the example schema
v1 consumed by the runtime loader. The offline ``data_pipeline`` readers yield it too.
"""

from __future__ import annotations

import dataclasses

import numpy as np

SOURCES = ("qm9_ir", "qm9s", "qme14s", "irgeodiff_pickle")


@dataclasses.dataclass(frozen=True)
class RawMolecule:
    """One molecule as a source provides it.

    Attributes:
        id: source molecule id (the QM9 index for ``qm9_ir`` and ``qm9s``).
        smiles: reference SMILES exactly as the source gives it.
        atomic_numbers: [n] int32.
        positions_angstrom: [n, 3] float32, Å.
        source: one of `SOURCES`.
        spectrum: [g] dense spectrum on ``spectrum_grid_cm1`` (released datasets), or None.
        spectrum_grid_cm1: [g] wavenumbers (cm⁻¹) of ``spectrum``, or None.
        frequencies_cm1: [k] stick frequencies (cm⁻¹), or None.
        intensities_km_mol: [k] stick intensities (km/mol), or None.
    """

    id: int
    smiles: str
    atomic_numbers: np.ndarray
    positions_angstrom: np.ndarray
    source: str
    spectrum: np.ndarray | None = None
    spectrum_grid_cm1: np.ndarray | None = None
    frequencies_cm1: np.ndarray | None = None
    intensities_km_mol: np.ndarray | None = None

    @property
    def num_atoms(self) -> int:
        """Number of atoms n."""
        return int(np.asarray(self.atomic_numbers).shape[0])

    @property
    def has_sticks(self) -> bool:
        """True when a stick spectrum (frequencies + intensities) is present."""
        return self.frequencies_cm1 is not None and self.intensities_km_mol is not None

    @property
    def has_dense_spectrum(self) -> bool:
        """True when a dense spectrum with its grid is present."""
        return self.spectrum is not None and self.spectrum_grid_cm1 is not None
