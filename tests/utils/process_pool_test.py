"""The generic process pool: results, job errors, crashes and timeouts, the parent's environment.

The job functions below run in the pool's spawned workers, so they are module-level (picklable
by reference) and take plain ``(action, value)`` tuples.
"""

import os
import pickle
import time

import pytest

from irgeodiff_jax.utils import process_pool


def run_job(job):
    """``("square", x)`` -> x², ``("raise", msg)``, ``("crash", code)``, ``("hang", _)``."""
    action, value = job
    if action == "square":
        return value * value
    if action == "raise":
        raise ValueError(value)
    if action == "crash":
        os._exit(value)
    if action == "hang":
        time.sleep(1e6)
    if action == "env":
        return {var: os.environ.get(var) for var in process_pool.THREAD_VARS}
    if action == "pid":
        return os.getpid()
    raise AssertionError(action)


def _fail_on_load():
    raise RuntimeError("cannot load")


class Unloadable:
    """Pickles fine in the parent; unpickling it (in a worker) raises."""

    def __reduce__(self):
        return (_fail_on_load, ())

    def __call__(self, job):
        return job


def _by_job(outcomes):
    return {o.job: o for o in outcomes}


def test_results_of_every_job_unordered():
    jobs = [("square", x) for x in range(12)]
    with process_pool.ProcessPool(run_job, workers=2, timeout_s=60.0) as pool:
        outcomes = list(pool.imap_unordered(iter(jobs)))
        assert pool.replaced == 0
    assert sorted(o.job for o in outcomes) == sorted(jobs)
    assert all(o.ok and o.error is None and o.value == o.job[1] ** 2 for o in outcomes)


def test_job_exception_is_one_line_failure_and_worker_is_kept():
    jobs = [("raise", "bad\n  input"), ("pid", None), ("pid", None)]
    with process_pool.ProcessPool(run_job, workers=1, timeout_s=60.0) as pool:
        out = _by_job(pool.imap_unordered(jobs[:1]))
        pids = [o.value for o in pool.imap_unordered(jobs[1:])]
        assert pool.replaced == 0
    failed = out[jobs[0]]
    assert not failed.ok and failed.value is None
    assert failed.error == "ValueError: bad input"
    assert pids[0] == pids[1]  # the same worker ran on


def test_crash_fails_that_job_and_replaces_the_worker():
    jobs = [("square", 2), ("crash", 3), ("square", 3), ("pid", None), ("square", 4)]
    with process_pool.ProcessPool(run_job, workers=1, timeout_s=60.0) as pool:
        out = _by_job(pool.imap_unordered(jobs))
        assert pool.replaced == 1
    assert out[("crash", 3)].error == "worker process died (exit code 3)"
    assert [out[j].value for j in jobs if j[0] == "square"] == [4, 9, 16]
    assert out[("pid", None)].ok and out[("pid", None)].value != os.getpid()


def test_timeout_fails_that_job_and_replaces_the_worker():
    jobs = [("hang", 0), ("square", 5), ("hang", 1), ("square", 6)]
    start = time.monotonic()
    with process_pool.ProcessPool(run_job, workers=2, timeout_s=1.5) as pool:
        out = _by_job(pool.imap_unordered(jobs))
        assert pool.replaced == 2
    assert time.monotonic() - start < 60.0
    for job in (("hang", 0), ("hang", 1)):
        assert out[job].error == "timeout: no result after 1.5 s"
    assert out[("square", 5)].value == 25 and out[("square", 6)].value == 36


def test_parent_environment_untouched_and_workers_single_threaded(monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "7")
    monkeypatch.delenv("MKL_NUM_THREADS", raising=False)
    before = dict(os.environ)
    with process_pool.ProcessPool(run_job, workers=2, timeout_s=60.0) as pool:
        assert dict(os.environ) == before
        out = list(pool.imap_unordered([("env", 0), ("crash", 1), ("env", 1)]))
    assert dict(os.environ) == before
    envs = [o.value for o in out if o.job[0] == "env"]
    assert envs == [{var: "1" for var in process_pool.THREAD_VARS}] * 2


def test_abandoned_iteration_does_not_leak_into_the_next():
    with process_pool.ProcessPool(run_job, workers=1, timeout_s=60.0) as pool:
        for _ in pool.imap_unordered([("square", 1), ("hang", 0)]):
            break  # the hanging job is still running in the worker
        out = list(pool.imap_unordered([("square", 7)]))
    assert [(o.job, o.value) for o in out] == [(("square", 7), 49)]


def test_bad_arguments_and_unpicklable_function():
    with pytest.raises(ValueError, match="workers >= 1"):
        process_pool.ProcessPool(run_job, workers=0, timeout_s=1.0)
    with pytest.raises(ValueError, match="timeout_s > 0"):
        process_pool.ProcessPool(run_job, workers=1, timeout_s=0.0)
    with pytest.raises((pickle.PicklingError, AttributeError)):
        process_pool.ProcessPool(lambda job: job, workers=1, timeout_s=1.0)


def test_worker_that_cannot_load_the_function_fails_the_pool_with_the_reason():
    with pytest.raises(RuntimeError, match=r"failed to start \(RuntimeError: cannot load\)"):
        process_pool.ProcessPool(Unloadable(), workers=2, timeout_s=1.0)
