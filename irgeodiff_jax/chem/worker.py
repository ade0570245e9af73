"""The evaluation side-process pool: ``ScoreJob``s scored in worker processes, as result dicts.

A thin layer over the generic ``utils.process_pool.ProcessPool`` (spawned single-threaded
workers, a hard wall-time limit per job, a crashed or timed-out worker replaced): each job runs
``score_job.score_sample``; a job that raises, times out or kills its worker yields
``score_job.failed_result(job, reason)`` instead, so every job gives one record with the fields
of ``score_job.RESULT_DEFAULTS``. Results come in completion order.
"""

from collections.abc import Callable, Iterable, Iterator

from irgeodiff_jax.chem import score_job
from irgeodiff_jax.utils import process_pool


class ScoringPool:
    """``with ScoringPool(workers, timeout_s) as pool: for r in pool.imap_unordered(jobs): ...``

    Args:
        workers: number of worker processes (>= 1).
        timeout_s: hard wall-time limit per job (seconds); the worker is killed and replaced.
        start_method: "spawn" (default) or "forkserver".
        score_fn: picklable top-level ``ScoreJob -> result dict`` run in the workers
            (``score_job.score_sample``; tests pass their own to inject crashes and hangs).

    As with any spawn-based pool, a script that creates the pool must guard its entry point with
    ``if __name__ == "__main__":`` (the children re-import the main module).
    """

    def __init__(
        self,
        workers: int,
        timeout_s: float,
        start_method: str = "spawn",
        score_fn: Callable[[score_job.ScoreJob], dict] = score_job.score_sample,
    ):
        self._pool = process_pool.ProcessPool(
            score_fn, workers, timeout_s, start_method=start_method
        )

    @property
    def replaced(self) -> int:
        """Workers replaced after a crash or timeout."""
        return self._pool.replaced

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close(force=exc[0] is not None)

    def close(self, force: bool = False) -> None:
        self._pool.close(force=force)

    def imap_unordered(self, jobs: Iterable[score_job.ScoreJob]) -> Iterator[dict]:
        """Yields one result dict per job, in completion order."""
        for o in self._pool.imap_unordered(jobs):
            yield o.value if o.ok else score_job.failed_result(o.job, o.error)
