"""Scoring one sample (chem.score_job) and the scoring pool over it (chem.worker)."""

import functools
import time

import numpy as np
import pytest

from data_pipeline import qm9pack_source
from irgeodiff_jax.chem import score_job, spectra, worker, xtb
from tests.helpers.faulty_scoring import score_with_faults


def _job(sid, idx, index=3, **kw):
    mol = qm9pack_source.molecule(index)
    return score_job.ScoreJob(
        sid, idx, mol.atomic_numbers, mol.positions_angstrom, mol.smiles, **kw
    )


def test_pool_survives_crash_and_timeout():
    jobs = [_job(0, 0), _job(0, 1), _job(0, 2, index=1), _job(0, 3), _job(0, 4, index=14)]
    faulty = functools.partial(score_with_faults, crash={(0, 1)}, hang={(0, 3)})
    start = time.monotonic()
    with worker.ScoringPool(workers=2, timeout_s=3.0, score_fn=faulty) as pool:
        results = {r["sample_index"]: r for r in pool.imap_unordered(jobs)}
        replaced = pool.replaced
    assert time.monotonic() - start < 30.0
    assert sorted(results) == [0, 1, 2, 3, 4]
    assert results[1]["status"] == "failed" and "died (exit code 3)" in results[1]["reason"]
    assert results[3]["status"] == "failed" and results[3]["reason"].startswith("timeout")
    for j, smiles in ((0, "O"), (2, "C"), (4, "CCO")):
        assert results[j]["status"] == "ok" and results[j]["match"], results[j]
        assert results[j]["smiles"] == smiles
    assert replaced == 2
    assert not results[1]["match"] and not results[3]["valid"]


def test_job_exception_becomes_failed_result():
    bad = score_job.ScoreJob(
        5, 0, np.array([8, 1, 1]), qm9pack_source.molecule(3).positions_angstrom, "not a smiles (("
    )
    with worker.ScoringPool(workers=1, timeout_s=30.0) as pool:
        (result,) = list(pool.imap_unordered([bad]))
    assert result["status"] == "failed" and result["spectrum_id"] == 5
    assert "ScoringError" in result["reason"] and "not a smiles" in result["reason"]


def _xtb_model_spectrum(index):
    mol = qm9pack_source.molecule(index)
    ir = xtb.ir_spectrum(mol.atomic_numbers, mol.positions_angstrom)
    y = spectra.broaden(
        ir.frequencies_cm1, ir.intensities_km_mol, spectra.grid(*spectra.MODEL_GRID)
    )
    return y / y.max()


def test_oracle_on_exact_sample_keeps_identity_and_sis_near_one():
    y = _xtb_model_spectrum(1)
    r = score_job.score_sample(_job(1, 0, index=1, spectrum=y, oracle=score_job.OracleSettings()))
    assert r["oracle"] == "xtb" and r["oracle_status"] == "ok" and r["identity_kept"]
    assert r["sis"] > 0.99 and r["sis_star"] > 0.99
    assert r["oracle_smiles"] == "C" and r["oracle_num_imaginary"] == 0
    assert len(r["oracle_frequencies_cm1"]) == len(r["oracle_intensities"]) == 9
    # water's spectrum against methane's: clearly lower similarity
    other = score_job.score_sample(
        _job(1, 0, index=1, spectrum=_xtb_model_spectrum(3), oracle=score_job.OracleSettings())
    )
    assert other["sis"] < r["sis"] - 0.2


def test_oracle_skipped_for_unstable_sample():
    mol = qm9pack_source.molecule(1)
    pos = mol.positions_angstrom.copy()
    pos[4] += 6.0  # pull one H away: methyl radical + H
    job = score_job.ScoreJob(
        1,
        0,
        mol.atomic_numbers,
        pos,
        mol.smiles,
        spectrum=_xtb_model_spectrum(1),
        oracle=score_job.OracleSettings(),
    )
    r = score_job.score_sample(job)
    assert not r["stable"] and r["oracle_status"] == "skipped_unstable" and r["sis"] is None


def test_pool_rejects_bad_arguments():
    with pytest.raises(ValueError, match="workers >= 1"):
        worker.ScoringPool(workers=0, timeout_s=1.0)
