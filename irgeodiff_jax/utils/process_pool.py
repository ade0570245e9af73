"""A crash- and hang-isolating process pool: one job at a time per ``spawn``-ed worker process.

``ProcessPool(fn, workers, timeout_s)`` runs ``fn(job)`` for every job in worker processes and
yields an ``Outcome`` per job as soon as it completes (unordered). ``fn`` must be a picklable
top-level callable (a module-level function, or a ``functools.partial`` of one); jobs and
results must pickle too.

* Each worker sets ``OMP_NUM_THREADS=MKL_NUM_THREADS=OPENBLAS_NUM_THREADS=1`` in its own
  environment *before* it imports ``fn``'s module, so native libraries loaded from there on (or
  lazily inside ``fn``, as the xTB oracle is) run single-threaded. The parent's ``os.environ`` is
  never touched. Modules that ``spawn`` re-imports in the child before that point (the parent's
  ``__main__``) are not covered: keep native threaded libraries out of entry-point imports.
* A worker reports once its imports are done; a job's hard wall-time limit (``timeout_s``)
  starts when the parent sends it. A job that raises gives a failed outcome with the exception
  as one line; a job that runs past its limit, or kills its worker (segfault, ``os._exit``),
  gives a failed outcome with the reason, and the worker is replaced (``replaced`` counts them).
* Like any ``spawn`` pool, a script that creates one must guard its entry point with
  ``if __name__ == "__main__":``.

Example::

    with ProcessPool(score_sample, workers=4, timeout_s=600) as pool:
        for outcome in pool.imap_unordered(jobs):
            record(outcome.value if outcome.ok else failure(outcome.job, outcome.error))
"""

import contextlib
import dataclasses
import multiprocessing
import os
import pickle
import time
from collections.abc import Callable, Iterable, Iterator
from multiprocessing import reduction
from multiprocessing.connection import wait
from typing import Any

THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")
STARTUP_TIMEOUT_S = 300.0
_READY, _START_FAILED, _OK, _RAISED = "ready", "start_failed", "ok", "raised"


@dataclasses.dataclass(frozen=True)
class Outcome:
    """What became of one job.

    Attributes:
        job: the job as given to ``imap_unordered`` (the parent's object).
        value: ``fn(job)`` when the job finished, else None.
        error: None when it finished; else a one-line reason: the exception ``fn`` raised
            (``"ValueError: ..."``), ``"timeout: no result after T s"`` or
            ``"worker process died (exit code C)"``.
    """

    job: Any
    value: Any = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


def _one_line(error: BaseException) -> str:
    text = " ".join(str(error).split())
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


def _worker_main(conn, fn_bytes: bytes, env: dict) -> None:
    """The worker loop: set the environment, import ``fn``, then run jobs until told to stop."""
    os.environ.update(env)  # this process only, before fn's module (and what it loads) imports
    try:
        fn = pickle.loads(fn_bytes)
    except Exception as e:  # noqa: BLE001 - reported to the parent, which raises
        conn.send((_START_FAILED, _one_line(e)))
        return
    conn.send((_READY, None))
    while True:
        try:
            data = conn.recv_bytes()
        except (EOFError, OSError):
            return
        try:
            job = pickle.loads(data)
            if job is None:
                return
            message = (_OK, fn(job))
        except Exception as e:  # noqa: BLE001 - any job error becomes that job's failure
            message = (_RAISED, _one_line(e))
        try:
            conn.send(message)
        except (EOFError, OSError):
            return
        except Exception as e:  # noqa: BLE001 - e.g. an unpicklable result
            conn.send((_RAISED, f"result not sent: {_one_line(e)}"))


class _Worker:
    """One worker process, the pipe to it, and the job it is running (if any)."""

    def __init__(self, ctx, fn_bytes: bytes):
        self.conn, child = ctx.Pipe()
        env = {var: "1" for var in THREAD_VARS}
        self.process = ctx.Process(target=_worker_main, args=(child, fn_bytes, env), daemon=True)
        self.process.start()
        child.close()
        self.busy = False
        self.job = None
        self.deadline = 0.0

    def wait_ready(self, timeout_s: float) -> None:
        """Blocks until the worker has imported ``fn``; RuntimeError if it does not."""
        reason = None
        if wait([self.conn, self.process.sentinel], timeout=timeout_s) and self.conn.poll():
            with contextlib.suppress(EOFError, OSError):
                kind, reason = self.conn.recv()
                if kind == _READY:
                    return
        if reason is None and self.process.is_alive():
            reason = f"not ready after {timeout_s:g} s"
        self.process.join(timeout=5)
        reason = reason or f"exit code {self.process.exitcode}"
        self.stop(force=True)
        raise RuntimeError(f"pool worker failed to start ({reason})")

    def submit(self, job, timeout_s: float) -> None:
        data = reduction.ForkingPickler.dumps(job)  # an unpicklable job raises here, in the caller
        self.busy, self.job = True, job
        self.deadline = time.monotonic() + timeout_s
        with contextlib.suppress(OSError):  # a worker that died idle is found by the next wait
            self.conn.send_bytes(data)

    def done(self) -> None:
        self.busy, self.job = False, None

    def stop(self, force: bool) -> None:
        """Asks the worker to exit (kills it when ``force`` or after 5 s); idempotent."""
        if self.conn.closed:
            return
        if not force:
            with contextlib.suppress(OSError):
                self.conn.send(None)
            self.process.join(timeout=5)
        if self.process.is_alive():
            self.process.kill()
        self.process.join()
        self.conn.close()


class ProcessPool:
    """``with ProcessPool(fn, workers, timeout_s) as pool: for o in pool.imap_unordered(jobs)``.

    Args:
        fn: picklable top-level callable run as ``fn(job)`` in a worker process.
        workers: number of worker processes (>= 1), all started (and ready) on construction.
        timeout_s: hard wall-time limit per job, seconds; the worker is killed and replaced.
        start_method: ``"spawn"`` (default) or ``"forkserver"``.
        startup_timeout_s: how long a new worker may take to import ``fn``.

    Raises:
        ValueError: ``workers < 1`` or ``timeout_s <= 0``.
        RuntimeError: a worker could not start (e.g. ``fn`` cannot be imported in the child).
    """

    def __init__(
        self,
        fn: Callable[[Any], Any],
        workers: int,
        timeout_s: float,
        *,
        start_method: str = "spawn",
        startup_timeout_s: float = STARTUP_TIMEOUT_S,
    ):
        if workers < 1 or not timeout_s > 0:
            raise ValueError(f"need workers >= 1 and timeout_s > 0, got {workers}, {timeout_s}")
        self._fn_bytes = pickle.dumps(fn)
        self._ctx = multiprocessing.get_context(start_method)
        self._timeout_s = float(timeout_s)
        self._startup_timeout_s = float(startup_timeout_s)
        self._workers = []
        self.replaced = 0  # workers replaced after a crash or timeout
        try:
            self._workers = [_Worker(self._ctx, self._fn_bytes) for _ in range(workers)]
            for w in self._workers:
                w.wait_ready(self._startup_timeout_s)
        except BaseException:
            self.close(force=True)
            raise

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close(force=exc[0] is not None)

    def close(self, force: bool = False) -> None:
        """Stops every worker (killing busy ones); the pool cannot be used afterwards."""
        for w in self._workers:
            w.stop(force=force or w.busy)
        self._workers = []

    def _restart(self, k: int) -> None:
        self._workers[k].stop(force=True)
        self._workers[k] = _Worker(self._ctx, self._fn_bytes)
        self._workers[k].wait_ready(self._startup_timeout_s)

    def _fail(self, k: int, reason: str) -> Outcome:
        outcome = Outcome(self._workers[k].job, error=reason)
        self._restart(k)
        self.replaced += 1
        return outcome

    def _finished(self, k: int, ready: set) -> Outcome | None:
        w = self._workers[k]
        if w.conn in ready:
            try:
                kind, payload = w.conn.recv()
            except (EOFError, OSError):
                pass  # the worker died: handled below
            else:
                job = w.job
                w.done()
                return Outcome(job, value=payload) if kind == _OK else Outcome(job, error=payload)
        if w.process.sentinel in ready or not w.process.is_alive():
            w.process.join(timeout=1)
            return self._fail(k, f"worker process died (exit code {w.process.exitcode})")
        if time.monotonic() > w.deadline:
            return self._fail(k, f"timeout: no result after {self._timeout_s:g} s")
        return None

    def _collect(self) -> list[Outcome]:
        """Waits until at least one busy worker finishes, dies or passes its deadline."""
        busy = [k for k, w in enumerate(self._workers) if w.busy]
        wait_s = max(0.0, min(self._workers[k].deadline for k in busy) - time.monotonic())
        handles = [self._workers[k].conn for k in busy]
        handles += [self._workers[k].process.sentinel for k in busy]
        ready = set(wait(handles, timeout=wait_s + 0.01))
        return [o for o in (self._finished(k, ready) for k in busy) if o is not None]

    def imap_unordered(self, jobs: Iterable[Any]) -> Iterator[Outcome]:
        """Yields one ``Outcome`` per job, in completion order; ``jobs`` is read lazily."""
        if not self._workers:
            raise RuntimeError("the pool is closed")
        for k, w in enumerate(self._workers):
            if w.busy:  # left running by an abandoned earlier iteration
                self._restart(k)
        pending = iter(jobs)
        exhausted = False
        while True:
            for w in self._workers:
                if not w.busy and not exhausted:
                    try:
                        job = next(pending)
                    except StopIteration:
                        exhausted = True
                    else:
                        w.submit(job, self._timeout_s)
            if not any(w.busy for w in self._workers):
                return
            yield from self._collect()
