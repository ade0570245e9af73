"""Scoring a samples directory: every sample in a worker pool, then every report.

Every sample of every completed chunk (see ``sampling/samples_dir.py``) is scored in a pool of
worker processes (``chem/worker.py`` running ``chem/score_job.py``): bond assignment, identity,
sim_g, validity, stability; with ``oracle="xtb"`` the stable samples of the M spectra of
smallest id (all when M < 0; the same spectra however sampling batched them) also get the
GFN2-xTB oracle (SIS, SIS*). Each result is appended to ``per_sample.jsonl``
(``evaluation/results.py``) as soon as it arrives; a re-run skips the samples already there (so
it only scores chunks written since, e.g. while ``sample`` runs) and re-scores with the oracle
the samples that lack it when it is now requested.
``run_evaluation`` then writes the reports (``evaluation/report.py``).
"""

import os
import time

from absl import logging

from irgeodiff_jax.chem import score_job, spectra, worker
from irgeodiff_jax.evaluation import metrics, report
from irgeodiff_jax.evaluation.results import (
    PER_SAMPLE,
    EvaluationError,
    append_result,
    load_results,
    spectrum_index,
)
from irgeodiff_jax.sampling import samples_dir as sdir

INPUT_ERRORS = (EvaluationError, sdir.SamplesFormatError)  # one line and exit status 2 in the CLI


def _is_done(record: dict | None, want_oracle: bool) -> bool:
    return record is not None and (not want_oracle or record.get("oracle") == "xtb")


def _jobs(samples_dir, manifest, done, oracle_ids, settings):
    grid = tuple(manifest["spectrum_grid"])
    for s in sdir.read_samples(samples_dir):
        want = s.id in oracle_ids
        for j, pos in enumerate(s.positions):
            if _is_done(done.get((s.id, j)), want):
                continue
            yield score_job.ScoreJob(
                spectrum_id=s.id,
                sample_index=j,
                atomic_numbers=s.atomic_numbers,
                positions=pos,
                reference_smiles=s.reference_smiles,
                spectrum=s.spectrum if want else None,
                spectrum_grid=grid,
                oracle=settings if want else None,
            )


def choose_oracle_spectra(ids, count: int) -> set[int]:
    """The ``count`` smallest spectrum ids (all when < 0): the same spectra however the
    sampler batched and ordered them (size buckets write chunks in another order)."""
    ids = sorted(int(i) for i in ids)
    return set(ids if count < 0 else ids[:count])


def score_directory(
    samples_dir,
    out_dir,
    *,
    oracle,
    oracle_spectra,
    workers,
    timeout_s,
    frequency_scale=1.0,
    fwhm_cm1=spectra.DEFAULT_FWHM_CM1,
) -> int:
    """Scores the samples not yet in ``per_sample.jsonl``; returns how many were scored."""
    manifest = sdir.read_manifest(samples_dir)
    oracle_ids = set()
    if oracle == "xtb":
        oracle_ids = choose_oracle_spectra(spectrum_index(samples_dir), oracle_spectra)
    settings = score_job.OracleSettings(
        fwhm_cm1=fwhm_cm1, frequency_scale=frequency_scale, timeout_s=0.8 * timeout_s
    )
    path = os.path.join(out_dir, PER_SAMPLE)
    done = load_results(path)
    jobs = _jobs(samples_dir, manifest, done, oracle_ids, settings)
    count, start = 0, time.monotonic()
    with open(path, "a") as f, worker.ScoringPool(workers, timeout_s) as pool:
        for result in pool.imap_unordered(jobs):
            append_result(f, result)
            count += 1
            if result["status"] != "ok":
                logging.warning(
                    "sample %s/%s failed: %s",
                    result["spectrum_id"],
                    result["sample_index"],
                    result["reason"],
                )
            if count % 100 == 0:
                logging.info("scored %d samples in %.0f s", count, time.monotonic() - start)
    return count


def parse_ks(text: str) -> tuple[int, ...]:
    """The points of the accuracy-vs-k curve from ``--ks`` (comma-separated positive integers)."""
    try:
        ks = tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise EvaluationError(f"--ks must be comma-separated integers, got {text!r}") from None
    if not ks or min(ks) < 1:
        raise EvaluationError(f"--ks needs positive integers, got {text!r}")
    return ks


def run_evaluation(
    samples_dir,
    out_dir,
    *,
    oracle="none",
    oracle_spectra=-1,
    workers=1,
    timeout_s=600.0,
    ks=metrics.DEFAULT_KS,
    frequency_scale=1.0,
    fwhm_cm1=spectra.DEFAULT_FWHM_CM1,
) -> dict:
    """Scores what is new in ``samples_dir`` and writes every report; returns the metrics."""
    if oracle not in ("none", "xtb"):
        raise EvaluationError(f"--oracle must be none or xtb, got {oracle!r}")
    if workers < 1 or not timeout_s > 0:
        raise EvaluationError(
            f"need --workers >= 1 and --timeout_s > 0, got {workers}, {timeout_s}"
        )
    sdir.read_manifest(samples_dir)
    os.makedirs(out_dir, exist_ok=True)
    score_directory(
        samples_dir,
        out_dir,
        oracle=oracle,
        oracle_spectra=oracle_spectra,
        workers=workers,
        timeout_s=timeout_s,
        frequency_scale=frequency_scale,
        fwhm_cm1=fwhm_cm1,
    )
    return report.write_reports(samples_dir, out_dir, ks, fwhm_cm1, frequency_scale)
