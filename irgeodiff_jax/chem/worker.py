"""The evaluation side-process: a pool of worker processes scoring sampled geometries.

One job = one sample of one spectrum (``ScoreJob``). ``score_sample`` runs: bond assignment →
canonical SMILES / InChIKey → ``scoring.score`` (valid, stable, connected, match, sim_g) and,
when the job carries ``OracleSettings`` and the sample is stable, the GFN2-xTB oracle:
re-optimise the sample, check that its identity is kept (InChIKey of the re-optimised geometry's
assigned bonds equals the sample's), broaden the oracle sticks (real modes only; FWHM and
frequency scale from the settings) on the evaluation grid and compare them with the input
spectrum resampled to that grid: SIS (500–4000 cm⁻¹) and SIS* (1350–4000 cm⁻¹).

``ScoringPool`` runs jobs in ``spawn``-ed worker processes started with ``OMP_NUM_THREADS=1``.
Each job has a hard wall-time limit enforced by the parent; a job that raises, times out, or
kills its worker (segfault, ``os._exit``) yields a failed result with the reason, the worker is
replaced, and the run goes on. Results are yielded as they complete (unordered).

Every result is a JSON-serialisable dict with ``spectrum_id, sample_index, status ('ok' or
'failed'), reason`` and the fields listed in ``RESULT_DEFAULTS``.
"""

import contextlib
import dataclasses
import multiprocessing
import os
import time
from collections.abc import Iterable, Iterator
from multiprocessing.connection import wait

import numpy as np

from irgeodiff_jax.chem import bonds, scoring, spectra

_THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")
# Test hook: "crash:<spectrum_id>:<sample_index>;sleep:<id>:<index>" makes a *worker* call
# os._exit or sleep forever on those samples (never used outside tests).
FAULT_ENV = "IRGEODIFF_TEST_WORKER_FAULTS"
_READY = "ready"
STARTUP_TIMEOUT_S = 300.0
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
        kind: "score"; "test_crash" / "test_sleep" exist only for tests of the pool.
    """

    spectrum_id: int
    sample_index: int
    atomic_numbers: np.ndarray
    positions: np.ndarray
    reference_smiles: str
    spectrum: np.ndarray | None = None
    spectrum_grid: tuple = spectra.MODEL_GRID
    oracle: OracleSettings | None = None
    kind: str = "score"
    sleep_s: float = 0.0


def _one_line(error: BaseException) -> str:
    text = " ".join(str(error).split())
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


def failed_result(job: ScoreJob, reason: str) -> dict:
    """The result of a job that did not finish (crash, timeout, exception)."""
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


def _faults() -> dict[tuple[int, int], str]:
    out = {}
    for item in filter(None, os.environ.get(FAULT_ENV, "").split(";")):
        kind, sid, idx = item.split(":")
        out[(int(sid), int(idx))] = kind
    return out


def _run_in_worker(job: ScoreJob, faults: dict) -> dict:
    kind = faults.get((int(job.spectrum_id), int(job.sample_index)), job.kind)
    if kind in ("crash", "test_crash"):
        os._exit(3)
    if kind in ("sleep", "test_sleep"):
        time.sleep(job.sleep_s or 1e6)
    return score_sample(job)


def _worker_main(conn) -> None:
    faults = _faults()
    conn.send(_READY)  # imports are done: job deadlines start from here
    while True:
        try:
            job = conn.recv()
        except (EOFError, OSError):
            return
        if job is None:
            return
        try:
            result = _run_in_worker(job, faults)
        except Exception as e:  # noqa: BLE001 - any job error becomes that job's failure
            result = failed_result(job, _one_line(e))
        conn.send(result)


@contextlib.contextmanager
def _single_threaded_env():
    """Sets the thread variables for processes started inside the block, then restores them."""
    saved = {v: os.environ.get(v) for v in _THREAD_VARS}
    os.environ.update({v: "1" for v in _THREAD_VARS})
    try:
        yield
    finally:
        for var, value in saved.items():
            if value is None:
                os.environ.pop(var, None)
            else:
                os.environ[var] = value


class _Worker:
    def __init__(self, ctx):
        self.conn, child = ctx.Pipe()
        self.process = ctx.Process(target=_worker_main, args=(child,), daemon=True)
        with _single_threaded_env():
            self.process.start()
        child.close()
        self.job: ScoreJob | None = None
        self.deadline = 0.0

    def wait_ready(self) -> None:
        """Blocks until the worker has finished its imports; RuntimeError if it never does."""
        if wait([self.conn, self.process.sentinel], timeout=STARTUP_TIMEOUT_S) and self.conn.poll():
            with contextlib.suppress(EOFError, OSError):
                if self.conn.recv() == _READY:
                    return
        self.process.join(timeout=5)
        code = self.process.exitcode
        self.stop(force=True)
        raise RuntimeError(f"scoring worker failed to start (exit code {code})")

    def submit(self, job: ScoreJob, timeout_s: float) -> None:
        self.job, self.deadline = job, time.monotonic() + timeout_s
        self.conn.send(job)

    def stop(self, force: bool) -> None:
        if not force:
            with contextlib.suppress(OSError):
                self.conn.send(None)
            self.process.join(timeout=5)
        if self.process.is_alive():
            self.process.kill()
        self.process.join()
        self.conn.close()


class ScoringPool:
    """``with ScoringPool(workers, timeout_s) as pool: for r in pool.imap_unordered(jobs): ...``

    Args:
        workers: number of worker processes (>= 1).
        timeout_s: hard wall-time limit per job (seconds); the worker is killed and replaced.
        start_method: "spawn" (default) or "forkserver".

    As with any spawn-based pool, a script that creates the pool must guard its entry point with
    ``if __name__ == "__main__":`` (the children re-import the main module).
    """

    def __init__(self, workers: int, timeout_s: float, start_method: str = "spawn"):
        if workers < 1 or not timeout_s > 0:
            raise ValueError(f"need workers >= 1 and timeout_s > 0, got {workers}, {timeout_s}")
        self._ctx = multiprocessing.get_context(start_method)
        self._timeout_s = float(timeout_s)
        self._workers = [_Worker(self._ctx) for _ in range(workers)]
        for w in self._workers:
            w.wait_ready()
        self.replaced = 0  # workers replaced after a crash or timeout

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close(force=exc[0] is not None)

    def close(self, force: bool = False) -> None:
        for w in self._workers:
            w.stop(force=force or w.job is not None)
        self._workers = []

    def _replace(self, k: int, reason: str) -> dict:
        old = self._workers[k]
        result = failed_result(old.job, reason)
        old.stop(force=True)
        self._workers[k] = _Worker(self._ctx)
        self._workers[k].wait_ready()
        self.replaced += 1
        return result

    def _finished(self, k: int, ready: set) -> dict | None:
        w = self._workers[k]
        if w.conn in ready:
            try:
                result = w.conn.recv()
                w.job = None
                return result
            except (EOFError, OSError):
                pass
        if w.process.sentinel in ready or not w.process.is_alive():
            w.process.join(timeout=1)
            code = w.process.exitcode
            return self._replace(k, f"worker process died (exit code {code}) while scoring")
        if time.monotonic() > w.deadline:
            return self._replace(k, f"timeout: no result after {self._timeout_s:g} s")
        return None

    def _collect(self) -> list[dict]:
        busy = [k for k, w in enumerate(self._workers) if w.job is not None]
        wait_s = max(0.0, min(self._workers[k].deadline for k in busy) - time.monotonic())
        handles = [self._workers[k].conn for k in busy]
        handles += [self._workers[k].process.sentinel for k in busy]
        ready = set(wait(handles, timeout=wait_s + 0.01))
        return [r for r in (self._finished(k, ready) for k in busy) if r is not None]

    def imap_unordered(self, jobs: Iterable[ScoreJob]) -> Iterator[dict]:
        """Yields one result dict per job, in completion order."""
        pending = iter(jobs)
        exhausted = False
        while True:
            for w in self._workers:
                if w.job is None and not exhausted:
                    job = next(pending, None)
                    if job is None:
                        exhausted = True
                    else:
                        w.submit(job, self._timeout_s)
            if all(w.job is None for w in self._workers):
                return
            yield from self._collect()
