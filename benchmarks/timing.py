"""Shared benchmark helpers: initialise, compile once, time compiled calls round-robin.

Timings are wall-clock seconds of compiled XLA executables, each call followed by
``jax.block_until_ready``. Several implementations are timed *interleaved* (one call of each per
round) so that load changes on a shared machine hit all of them alike; ratios of the medians are
what the benchmarks report. Compilation happens before timing (``compile_jitted``) and warm-up
calls are discarded.
"""

import dataclasses
import os
import statistics
import time
from collections.abc import Callable, Mapping

import jax
import jax.numpy as jnp


@dataclasses.dataclass(frozen=True)
class Timing:
    """Summary of repeated wall times of one implementation (seconds)."""

    median_s: float
    min_s: float
    max_s: float
    repeats: int

    def as_dict(self) -> dict:
        """Rounded JSON-friendly view (4 significant digits)."""
        return {
            "median_s": float(f"{self.median_s:.4g}"),
            "min_s": float(f"{self.min_s:.4g}"),
            "max_s": float(f"{self.max_s:.4g}"),
            "repeats": self.repeats,
        }


def compile_jitted(fn: Callable, *args) -> tuple[Callable, float]:
    """``jax.jit(fn)`` lowered and compiled for ``args``; returns ``(compiled, seconds)``."""
    start = time.perf_counter()
    compiled = jax.jit(fn).lower(*args).compile()
    return compiled, time.perf_counter() - start


def cost_gflops(compiled) -> float:
    """FLOPs of a compiled executable by XLA's cost analysis, in GFLOP."""
    cost = compiled.cost_analysis()
    if isinstance(cost, list | tuple):  # older jax returned one dict per device
        cost = cost[0]
    return float(cost["flops"]) / 1e9


def time_interleaved(
    calls: Mapping[str, Callable[[], object]], *, warmup: int = 1, repeats: int = 5
) -> dict[str, Timing]:
    """Times zero-argument callables, one call of each per round.

    Args:
      calls: name -> callable running one (already compiled) computation.
      warmup: untimed rounds first.
      repeats: timed rounds.

    Returns:
      name -> ``Timing`` over ``repeats`` calls.
    """
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1, got {repeats}")
    for _ in range(warmup):
        for call in calls.values():
            jax.block_until_ready(call())
    samples = {name: [] for name in calls}
    for _ in range(repeats):
        for name, call in calls.items():
            start = time.perf_counter()
            jax.block_until_ready(call())
            samples[name].append(time.perf_counter() - start)
    return {
        name: Timing(statistics.median(s), min(s), max(s), len(s)) for name, s in samples.items()
    }


def ratio(numerator: Timing, denominator: Timing) -> float:
    """Ratio of medians, rounded to 3 decimals."""
    return round(numerator.median_s / denominator.median_s, 3)


def machine() -> dict:
    """CPU count and the 1/5/15-minute load averages at the time of the call."""
    return {"cpus": os.cpu_count(), "load_average": [round(v, 2) for v in os.getloadavg()]}


def initialise(init_fn: Callable, key: jax.Array):
    """``init_fn(key)`` run once, compiled at XLA's lowest backend optimisation level.

    The models' own initialisers (PyTorch-default / xavier, phi_x head gain 0.001) keep the
    activations O(1), so implementations can be compared at float32 tolerances; init runs once,
    and its many small initialiser kernels compile about twice as fast at level 0.
    """
    lowered = jax.jit(init_fn).lower(key)
    return lowered.compile(compiler_options={"xla_backend_optimization_level": 0})(key)


def max_abs_diff(a, b) -> float:
    """``max |a - b|`` over all leaves of two pytrees of arrays."""
    diffs = jax.tree_util.tree_map(lambda u, v: float(jnp.max(jnp.abs(u - v))), a, b)
    return max(jax.tree_util.tree_leaves(diffs))
