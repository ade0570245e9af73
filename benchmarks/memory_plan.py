"""XLA's memory plan of the trainer's diffusion step, from compilation alone.

    python -m benchmarks.memory_plan --config=configs/qm9s.py --batch=64 [--dtype=bfloat16] \
        [--override=model.denoiser.scan_layers=true ...]

Lowers and compiles ``make_train_step`` exactly as ``benchmarks.train_step`` times it (its
``step_setup``: same synthetic batch padded to ``--atoms``, same overrides) but never runs it, on
abstract parameters, so it needs neither the step's memory nor its time and does not depend on
machine load. Prints one JSON object: ``temp_gib`` (XLA's temporary buffers: the activations,
gradients and scratch the step needs at its peak), ``argument_gib`` / ``output_gib`` (train state
and batch in, state and metrics out; the step donates its state, so these alias), ``gflops`` (XLA's
cost analysis; a ``lax.scan`` body is counted once, not once per layer) and ``compile_s``. A process
running the step peaks near ``temp + argument`` plus the runtime's own memory.
"""

from __future__ import annotations

import argparse
import json
import time

import jax

from benchmarks import timing
from benchmarks import train_step as train_step_bench


def plan(args: argparse.Namespace) -> dict:
    from irgeodiff_jax.models import factory  # noqa: PLC0415
    from irgeodiff_jax.training import step  # noqa: PLC0415

    config, models, _, train, batch = train_step_bench.step_setup(args)
    shapes = jax.eval_shape(lambda k: factory.init_params(models, config, k), jax.random.key(0))
    modules = step.STAGE_MODULES["diffusion"]
    state = jax.eval_shape(
        lambda p: step.create_train_state(models, config, "diffusion", {m: p[m] for m in modules}),
        shapes,
    )
    t0 = time.perf_counter()
    compiled = train.lower(state, batch, jax.random.key(1)).compile()
    compile_s = time.perf_counter() - t0
    memory = compiled.memory_analysis()
    gib = lambda n: round(n / 2**30, 3)  # noqa: E731
    return {
        "config": args.config,
        "batch": args.batch,
        "atoms": args.atoms,
        "dtype": args.dtype,
        "overrides": args.override,
        "temp_gib": gib(memory.temp_size_in_bytes),
        "argument_gib": gib(memory.argument_size_in_bytes),
        "output_gib": gib(memory.output_size_in_bytes),
        "gflops": round(timing.cost_gflops(compiled), 2),
        "compile_s": round(compile_s, 1),
    }


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--config", default="configs/qm9s.py", help="config file (stage=diffusion)")
    ap.add_argument("--batch", type=int, default=16, help="global batch (spectra)")
    ap.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    ap.add_argument("--atoms", type=int, default=29, help="padded atoms per molecule")
    ap.add_argument("--override", action="append", default=[], help="config field=value")
    args = ap.parse_args(argv)
    if args.batch < 1 or args.atoms < train_step_bench.MIN_ATOMS:
        ap.error(f"need --batch >= 1 and --atoms >= {train_step_bench.MIN_ATOMS}")
    result = plan(args)
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
