"""Scoring one sampled geometry: the job the evaluation worker pool (``chem/worker.py``) runs.

One job = one sample of one spectrum (``ScoreJob``). ``score_sample`` runs: bond assignment →
canonical SMILES / InChIKey → ``scoring.score`` (valid, stable, connected, match, sim_g) and,
when the job carries ``OracleSettings`` and the sample is stable, the GFN2-xTB oracle:
re-optimise the sample, check that its identity is kept (InChIKey of the re-optimised geometry's
assigned bonds equals the sample's), broaden the oracle sticks (real modes only; FWHM and
frequency scale from the settings) on the evaluation grid and compare them with the input
spectrum resampled to that grid: SIS (500–4000 cm⁻¹) and SIS* (1350–4000 cm⁻¹).

Every result is a JSON-serialisable dict with ``spectrum_id, sample_index, status ('ok' or
'failed'), reason`` and the fields listed in ``RESULT_DEFAULTS``; ``failed_result`` builds the
record of a job that did not finish.
"""

import dataclasses
import time

import numpy as np

from irgeodiff_jax.chem import bonds, scoring, spectra

RESULT_DEFAULTS = dict(
    status="failed",
    reason=None,
    bonds_assigned=False,
    bond_error=None,
    valid=False,
    stable=False,
    connected=False,
    match=False,
    sim_g=None,
    smiles=None,
    inchikey=None,
    oracle="none",
    oracle_status=None,
    oracle_reason=None,
    identity_kept=None,
    sis=None,
    sis_star=None,
    oracle_smiles=None,
    oracle_num_imaginary=None,
    oracle_frequencies_cm1=None,
    oracle_intensities=None,
    seconds=None,
)


@dataclasses.dataclass(frozen=True)
class OracleSettings:
    """xTB oracle settings: Lorentzian FWHM, frequency scale, cooperative time budget (s)."""

    fwhm_cm1: float = spectra.DEFAULT_FWHM_CM1
    frequency_scale: float = 1.0  # 1.0 for the xTB-built data; 0.965 matches B3LYP references
    timeout_s: float | None = None


@dataclasses.dataclass(frozen=True)
class ScoreJob:
    """One sample to score.

    Attributes:
        spectrum_id, sample_index: identify the sample.
        atomic_numbers: [n] ints; positions: [n, 3] Å.
        reference_smiles: the molecule the spectrum belongs to.
        spectrum: [S] input spectrum on ``spectrum_grid`` (needed only with the oracle).
        oracle: settings, or None for structural scoring only.
    """

    spectrum_id: int
    sample_index: int
    atomic_numbers: np.ndarray
    positions: np.ndarray
    reference_smiles: str
    spectrum: np.ndarray | None = None
    spectrum_grid: tuple = spectra.MODEL_GRID
    oracle: OracleSettings | None = None


def failed_result(job: ScoreJob, reason: str) -> dict:
    """The result of a job that did not finish (crash, timeout, exception: ``reason``)."""
    out = dict(RESULT_DEFAULTS, spectrum_id=int(job.spectrum_id))
    out.update(sample_index=int(job.sample_index), reason=reason)
    out["oracle"] = "xtb" if job.oracle is not None else "none"
    return out


def _oracle_fields(job: ScoreJob, sample_key: str | None) -> dict:
    """Re-optimise with xTB, check identity, compute SIS / SIS* against the input spectrum."""
    from irgeodiff_jax.chem import xtb  # imported lazily: tblite must see OMP_NUM_THREADS first

    settings = job.oracle
    result = xtb.ir_spectrum_safe(job.atomic_numbers, job.positions, timeout_s=settings.timeout_s)
    if isinstance(result, str):
        return dict(oracle_status="failed", oracle_reason=result, identity_kept=False)
    try:
        relaxed = bonds.geometry_to_mol(result.atomic_numbers, result.positions_angstrom)
        relaxed_key = scoring.inchikey(relaxed)
        relaxed_smiles = scoring.canonical_smiles(relaxed)
    except bonds.BondAssignmentError:
        relaxed_key = relaxed_smiles = None
    real = result.frequencies_cm1 > 0
    out = dict(
        oracle_status="ok",
        identity_kept=bool(sample_key is not None and relaxed_key == sample_key),
        oracle_smiles=relaxed_smiles,
        oracle_num_imaginary=int(result.num_imaginary),
        oracle_frequencies_cm1=[round(float(v), 3) for v in result.frequencies_cm1[real]],
        oracle_intensities=[round(float(v), 5) for v in result.intensities_km_mol[real]],
    )
    try:
        eval_grid = spectra.grid(*spectra.EVAL_GRID)
        predicted = spectra.broaden(
            result.frequencies_cm1[real],
            result.intensities_km_mol[real],
            eval_grid,
            fwhm_cm1=settings.fwhm_cm1,
            scale=settings.frequency_scale,
        )
        target = spectra.resample(job.spectrum, spectra.grid(*job.spectrum_grid), eval_grid)
        out["sis"] = spectra.sis(predicted, target, eval_grid)
        region = spectra.FUNCTIONAL_REGION_CM1
        out["sis_star"] = spectra.sis(predicted, target, eval_grid, region=region)
    except spectra.SpectrumError as e:
        out.update(oracle_status="failed", oracle_reason=f"SIS: {e}")
    return out


def score_sample(job: ScoreJob) -> dict:
    """Scores one sample in the calling process (see the module docstring); never raises for
    a bad geometry (it becomes an invalid sample), only for a malformed job."""
    start = time.perf_counter()
    out = failed_result(job, None)
    out["status"] = "ok"
    try:
        mol = bonds.geometry_to_mol(job.atomic_numbers, job.positions)
        out["bonds_assigned"] = True
    except bonds.BondAssignmentError as e:
        mol = None
        out["bond_error"] = " ".join(str(e).split())
    s = scoring.score(mol, job.reference_smiles)
    out.update(
        valid=bool(s["valid"]),
        stable=bool(s["stable"]),
        connected=bool(s["connected"]),
        match=bool(s["match"]),
        sim_g=float(s["sim_g"]) if s["smiles"] is not None else None,
        smiles=s["smiles"],
        inchikey=scoring.inchikey(mol) if mol is not None else None,
    )
    if job.oracle is not None:
        if out["stable"]:
            out.update(_oracle_fields(job, out["inchikey"]))
        else:
            out["oracle_status"] = "skipped_unstable"
    out["seconds"] = round(time.perf_counter() - start, 4)
    return out
