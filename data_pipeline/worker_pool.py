"""A small crash- and hang-isolating process pool for per-molecule oracle work.

Each worker is a ``spawn``-ed process that sets ``OMP_NUM_THREADS=1`` (and the MKL/OpenBLAS
equivalents) before anything imports tblite, then runs one task at a time. The parent enforces a
hard per-task time limit by terminating the worker, and turns a worker that dies (segfault,
``os._exit``) into a failure result; in both cases a fresh worker replaces it and the run continues.
Tasks and results are dicts with an ``"id"``; a failure result is ``{"id": ..., "error": reason}``.
"""

import multiprocessing
import os
import time
from multiprocessing.connection import wait

_THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")


def _one_line(error: BaseException) -> str:
    return f"{type(error).__name__}: {' '.join(str(error).split())}"


def _worker_main(fn, conn) -> None:
    for var in _THREAD_VARS:
        os.environ[var] = "1"
    while True:
        try:
            task = conn.recv()
        except EOFError:
            return
        if task is None:
            return
        try:
            result = fn(task)
        except Exception as e:  # noqa: BLE001 - any task error becomes a logged failure
            result = {"id": task["id"], "error": _one_line(e)}
        conn.send(result)


class _Worker:
    def __init__(self, ctx, fn):
        self.conn, child = ctx.Pipe()
        self.process = ctx.Process(target=_worker_main, args=(fn, child), daemon=True)
        self.process.start()
        child.close()
        self.task = None
        self.started = 0.0

    def submit(self, task) -> None:
        self.task, self.started = task, time.monotonic()
        self.conn.send(task)

    def stop(self, force: bool) -> None:
        if force:
            self.process.kill()
        else:
            try:
                self.conn.send(None)
            except (BrokenPipeError, OSError):
                pass
        self.process.join(timeout=10)
        if self.process.is_alive():
            self.process.kill()
            self.process.join()
        self.conn.close()


class WorkerPool:
    """Process pool: ``with WorkerPool(fn, W, limit_s) as pool: pool.imap_unordered(tasks)``."""

    def __init__(self, fn, workers: int, hard_timeout_s: float):
        for var in _THREAD_VARS:  # inherited by the spawned children
            os.environ[var] = "1"
        self._ctx = multiprocessing.get_context("spawn")
        self._fn = fn
        self._hard_timeout_s = hard_timeout_s
        self._workers = [_Worker(self._ctx, fn) for _ in range(workers)]

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        for w in self._workers:
            w.stop(force=exc[0] is not None)

    def _replace(self, k: int, reason: str) -> dict:
        old = self._workers[k]
        old.stop(force=True)
        self._workers[k] = _Worker(self._ctx, self._fn)
        return {"id": old.task["id"], "error": reason}

    def _collect(self) -> list[dict]:
        """Waits for at least one busy worker to finish, die or time out."""
        busy = [k for k, w in enumerate(self._workers) if w.task is not None]
        now = time.monotonic()
        remaining = min(self._workers[k].started + self._hard_timeout_s - now for k in busy)
        waitables = [self._workers[k].conn for k in busy]
        waitables += [self._workers[k].process.sentinel for k in busy]
        ready = set(wait(waitables, timeout=max(remaining, 0.0)))
        out = []
        for k in busy:
            w = self._workers[k]
            if w.conn in ready or w.conn.poll():
                try:
                    out.append(w.conn.recv())
                    w.task = None
                    continue
                except (EOFError, OSError):
                    pass
            if w.process.sentinel in ready or not w.process.is_alive():
                w.process.join(timeout=1)
                code = w.process.exitcode
                out.append(self._replace(k, f"worker process died (exit code {code})"))
            elif time.monotonic() - w.started > self._hard_timeout_s:
                limit = self._hard_timeout_s
                out.append(self._replace(k, f"hard timeout: no result after {limit:.0f} s"))
        return out

    def imap_unordered(self, tasks):
        """Yields one result per task, in completion order."""
        tasks = iter(tasks)
        exhausted = False
        while True:
            for w in self._workers:
                if w.task is None and not exhausted:
                    task = next(tasks, None)
                    if task is None:
                        exhausted = True
                    else:
                        w.submit(task)
            if all(w.task is None for w in self._workers):
                return
            yield from self._collect()
