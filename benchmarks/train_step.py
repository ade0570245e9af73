"""Diffusion train step, one denoiser call and the fast sampler at a config's full size.

    python -m benchmarks.train_step --config=configs/qm9s.py --batch=16 [--dtype=bfloat16] \
        [--baseline=REV] [--repeats=3] [--fast_steps=100] [--atoms=29]

Times what training and sampling run, built by the package's own factories:

* ``train_step_s``: the trainer's jitted diffusion step (``sharding.make_jitted_steps``: state
  donated, dropout on), median of ``--repeats`` calls after one warm-up, on a synthetic batch
  padded to ``--atoms`` with 12..atoms real atoms (zero-CoM positions, random types, spectrum
  tokens, formula tokens, FG labels); ``compile_s`` its lowering + compilation;
  ``gflops_per_step`` XLA's FLOP count of the compiled step and ``achieved_gflops`` that count
  over ``train_step_s`` (XLA counts a loop body once, so for a micro-batched step,
  ``training.diffusion.microbatches`` > 1, the count is that of the same step compiled in one
  piece).
* ``denoiser_call_s``: one network evaluation of the sampler, ``(t(K) - t(10)) / (K - 10)``
  from the fast sampler's wall time at ``K = --fast_steps`` and at 10 steps (the encoders and
  the decoder run once per call and cancel); ``ancestral_molecules_per_s`` = batch /
  (1,000 × ``denoiser_call_s``); ``fast_molecules_per_s`` = batch / t(K).
* ``peak_rss_gib`` (the process's peak resident memory), ``device_peak_gib`` (accelerator peak,
  null on CPU), ``matmul_peak_gflops`` (a 4096² float32 matmul measured in the same process),
  ``load_average`` (1/5/15 min, at the end).

The last line of stdout is one JSON object with these keys. With ``--baseline=REV`` the same
measurement runs first for git revision REV (extracted with ``git archive`` into a temporary
directory and run there in its own process, with this script) and the JSON adds ``baseline``
(its figures) and ``ratios`` (baseline time / this time for times and rates' inverse, this
memory / baseline memory). ``pytorch`` holds the PyTorch figures of issue 11 for this machine
class (fixed constants, measured outside this repository) and ``ratios_vs_pytorch``.
"""

from __future__ import annotations

import argparse
import ast
import importlib.util
import json
import os
import resource
import subprocess
import sys
import tempfile
import time

# PyTorch 2.13 implementation of the reference's diffusion stage on the 2-core development
# machine class (issue 11; not part of this repository): seconds and GiB.
PYTORCH = {
    16: {"train_step_s": 16.8, "denoiser_call_s": 3.40, "peak_rss_gib": 9.4},
    64: {"train_step_s": 61.8, "denoiser_call_s": 11.7, "peak_rss_gib": 23.0},
}
FIGURES = (
    "train_step_s", "denoiser_call_s", "compile_s", "peak_rss_gib", "device_peak_gib",
    "gflops_per_step", "achieved_gflops", "matmul_peak_gflops", "ancestral_molecules_per_s",
    "fast_molecules_per_s", "load_average",
)  # fmt: skip
SPECTRUM_POINTS, FORMULA_LEN, MIN_ATOMS = 3200, 16, 12


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--config", default="configs/qm9s.py", help="config file (stage=diffusion)")
    p.add_argument("--batch", type=int, default=16, help="global batch (spectra)")
    p.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    p.add_argument("--atoms", type=int, default=29, help="padded atoms per molecule")
    p.add_argument("--repeats", type=int, default=3, help="timed train steps")
    p.add_argument("--fast_steps", type=int, default=100, help="K of the fast sampler")
    p.add_argument("--baseline", default=None, help="git revision to measure first")
    p.add_argument("--override", action="append", default=[], help="config field=value")
    p.add_argument("--measure_only", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.batch < 1 or args.atoms < MIN_ATOMS or args.repeats < 1 or args.fast_steps <= 10:
        p.error(f"need --batch >= 1, --atoms >= {MIN_ATOMS}, --repeats >= 1, --fast_steps > 10")
    return args


def load_config(path: str, dtype: str, atoms: int, overrides: list[str]):
    """``get_config("stage=diffusion")`` of the config file, with dtype, size and overrides."""
    spec = importlib.util.spec_from_file_location("benchmark_config", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    config = module.get_config("stage=diffusion")
    config.model.dtype = dtype
    config.data.max_atoms = atoms
    config.mesh.data = 1
    opt = config.optimizer.diffusion
    if opt.get("schedule") == "warmup_cosine" and int(opt.get("decay_steps", 0)) <= 0:
        # The trainer sets this from the stage's step budget; a step's cost does not depend on it.
        opt.decay_steps = 10 * int(opt.warmup_steps)
    for item in overrides:  # e.g. model.denoiser.edge_pairs="ordered", diffusion.x=True
        field, value = item.split("=", 1)
        *parents, leaf = field.split(".")
        node = config
        for name in parents:
            node = node[name]
        node[leaf] = override_value(item, value)
    return config


def override_value(item: str, value: str):
    """An ``--override`` value: JSON (``true``, ``"v"``) or a Python literal (``True``, ``'v'``)."""
    try:
        return json.loads(value)
    except json.JSONDecodeError:
        pass
    try:
        return ast.literal_eval(value)
    except (ValueError, SyntaxError):
        raise SystemExit(
            f"train_step: error: --override={item}: value is not JSON or a Python "
            "literal (quote strings)"
        ) from None


def synthetic_batch(seed: int, batch: int, n: int, num_types: int, num_groups: int) -> dict:
    """A loader-like numpy batch padded to ``n`` with ``MIN_ATOMS..n`` real atoms each."""
    import numpy as np  # noqa: PLC0415

    rng = np.random.default_rng(seed)
    num = rng.integers(MIN_ATOMS, n + 1, size=batch)
    mask = np.arange(n)[None] < num[:, None]
    pos = rng.normal(scale=1.5, size=(batch, n, 3)) * mask[..., None]
    pos -= (pos.sum(1, keepdims=True) / num[:, None, None]) * mask[..., None]
    formula = np.zeros((batch, FORMULA_LEN), np.int32)
    formula[:, :6] = rng.integers(1, 26, size=(batch, 6))
    return {
        "positions": pos.astype(np.float32),
        "atom_types": (rng.integers(0, num_types, size=(batch, n)) * mask).astype(np.int32),
        "atom_mask": mask,
        "spectrum_tokens": rng.integers(0, 100, size=(batch, SPECTRUM_POINTS)).astype(np.int32),
        "formula_tokens": formula,
        "fg_labels": (rng.random((batch, num_groups)) < 0.3).astype(np.float32),
        "num_atoms": num.astype(np.int32),
    }


def _schedule(config):
    from irgeodiff_jax.diffusion import schedules  # noqa: PLC0415

    if hasattr(schedules, "schedule_from_config"):
        return schedules.schedule_from_config(config.diffusion)
    from irgeodiff_jax.training import step  # noqa: PLC0415  (older revisions)

    return step.make_schedule(config)


def _matmul_peak_gflops(n: int = 4096, repeats: int = 5) -> float:
    import jax  # noqa: PLC0415
    import jax.numpy as jnp  # noqa: PLC0415

    a = jax.random.normal(jax.random.key(0), (n, n), jnp.float32)
    f = jax.jit(lambda u: u @ u)
    jax.block_until_ready(f(a))
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        jax.block_until_ready(f(a))
        best = min(best, time.perf_counter() - t0)
    return 2 * n**3 / best / 1e9


def _jitted_steps(sharding):
    """The trainer's jit of its step functions; revisions before it moved to ``sharding`` (which
    imports no data pipeline, so this runs where grain is not installed) kept it in ``trainer``."""
    if hasattr(sharding, "make_jitted_steps"):
        return sharding.make_jitted_steps
    from irgeodiff_jax.training import trainer  # noqa: PLC0415

    return trainer.make_jitted_steps


def step_setup(args: argparse.Namespace):
    """``(config, models, mesh, train, batch)`` of a benchmark: the config with ``args``'
    dtype, size and overrides, its models on a one-device mesh, the diffusion step exactly as
    the trainer jits it, and the synthetic numpy batch."""
    from irgeodiff_jax.models import factory  # noqa: PLC0415
    from irgeodiff_jax.training import sharding  # noqa: PLC0415

    config = load_config(args.config, args.dtype, args.atoms, args.override)
    models = factory.create_models(config)
    mesh = sharding.make_mesh(1)
    train, _ = _jitted_steps(sharding)(models, config, "diffusion", mesh)
    batch = synthetic_batch(
        0, args.batch, args.atoms, int(config.model.autoencoder.num_atom_types),
        int(config.model.spectral_encoder.num_groups),
    )  # fmt: skip
    return config, models, mesh, train, batch


def _one_piece_gflops(args: argparse.Namespace, state, device_batch, root) -> float:
    """XLA's FLOP count of the diffusion step without micro-batches (compiled, not run)."""
    one = argparse.Namespace(**vars(args))
    one.override = [*args.override, "training.diffusion.microbatches=1"]
    from benchmarks.timing import cost_gflops  # noqa: PLC0415

    return cost_gflops(step_setup(one)[3].lower(state, device_batch, root).compile())


def measure(args: argparse.Namespace) -> dict:
    """The figures of the module docstring for the code importable as ``irgeodiff_jax``."""
    import jax  # noqa: PLC0415
    import jax.numpy as jnp  # noqa: PLC0415
    import numpy as np  # noqa: PLC0415

    from benchmarks.timing import cost_gflops  # noqa: PLC0415
    from irgeodiff_jax.models import factory  # noqa: PLC0415
    from irgeodiff_jax.sampling import generate  # noqa: PLC0415
    from irgeodiff_jax.training import sharding, step  # noqa: PLC0415

    config, models, mesh, train, batch = step_setup(args)
    params = jax.jit(lambda k: factory.init_params(models, config, k))(jax.random.key(0))
    # A copy: the step donates its state, and the sampler below still needs ``params``.
    stage_params = jax.tree.map(jnp.copy, {m: params[m] for m in step.STAGE_MODULES["diffusion"]})
    state = sharding.replicate(step.create_train_state(models, config, "diffusion", stage_params),
                               mesh)  # fmt: skip
    device_batch = sharding.shard_batch(batch, mesh)
    root = jax.random.key(1)
    t0 = time.perf_counter()
    compiled = train.lower(state, device_batch, root).compile()
    compile_s = time.perf_counter() - t0
    if int(config.training.diffusion.get("microbatches", 1)) > 1:
        gflops = _one_piece_gflops(args, state, device_batch, root)
    else:
        gflops = cost_gflops(compiled)
    state, metrics = compiled(state, device_batch, root)  # warm-up
    jax.block_until_ready(metrics)
    times = []
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        state, metrics = compiled(state, device_batch, root)
        jax.block_until_ready(metrics)
        times.append(time.perf_counter() - t0)
    step_s = float(np.median(times))
    del state, compiled

    # Sampler: fast at K and at 10 steps, one spectrum = one molecule.
    inputs = generate.GenerateInputs(
        spectrum_tokens=batch["spectrum_tokens"],
        formula_tokens=batch["formula_tokens"],
        atom_types=batch["atom_types"],
        atom_mask=batch["atom_mask"],
        keys=generate.spectrum_keys(0, np.arange(args.batch)),
    )
    kwargs = {"target": "eps"} if "target" in generate.make_generate_fn.__code__.co_varnames else {}
    wall = {}
    for k in (10, args.fast_steps):
        settings = generate.SamplerSettings("fast", k)
        fn = generate.make_generate_fn(
            models, _schedule(config), samples_per_spectrum=1, settings=settings, **kwargs
        )
        jax.block_until_ready(fn(params, inputs))  # compile
        t0 = time.perf_counter()
        jax.block_until_ready(fn(params, inputs))
        wall[k] = time.perf_counter() - t0
    call_s = (wall[args.fast_steps] - wall[10]) / (args.fast_steps - 10)

    stats = jax.devices()[0].memory_stats() if jax.default_backend() != "cpu" else None
    device_peak = stats.get("peak_bytes_in_use") if stats else None
    return {
        "train_step_s": round(step_s, 4),
        "denoiser_call_s": round(call_s, 4),
        "compile_s": round(compile_s, 2),
        "peak_rss_gib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 3),
        "device_peak_gib": None if device_peak is None else round(device_peak / 2**30, 3),
        "gflops_per_step": round(gflops, 2),
        "achieved_gflops": round(gflops / step_s, 2),
        "matmul_peak_gflops": round(_matmul_peak_gflops(), 1),
        "ancestral_molecules_per_s": round(args.batch / (1000 * call_s), 5),
        "fast_molecules_per_s": round(args.batch / wall[args.fast_steps], 4),
        "load_average": [round(v, 2) for v in os.getloadavg()],
        "train_step_times_s": [round(t, 4) for t in times],
        "fast_sampler_s": {str(k): round(v, 3) for k, v in wall.items()},
        "device": jax.devices()[0].device_kind,
        "package": os.path.dirname(os.path.abspath(factory.__file__ + "/../..")),
    }


def measure_revision(rev: str, args: argparse.Namespace) -> dict:
    """``measure`` for git revision ``rev``, in its own source tree and process."""
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    with tempfile.TemporaryDirectory(prefix="train_step_baseline_") as tree:
        archive = subprocess.run(["git", "-C", repo, "archive", rev], capture_output=True)
        if archive.returncode != 0:
            raise SystemExit(f"train_step: error: git archive {rev}: {archive.stderr.decode()}")
        subprocess.run(["tar", "-x", "-C", tree], input=archive.stdout, check=True)
        cmd = [sys.executable, os.path.abspath(__file__), "--measure_only",
               f"--config={args.config}", f"--batch={args.batch}", f"--dtype={args.dtype}",
               f"--atoms={args.atoms}", f"--repeats={args.repeats}",
               f"--fast_steps={args.fast_steps}"]  # fmt: skip
        cmd += [f"--override={o}" for o in args.override]
        env = {**os.environ, "PYTHONPATH": tree}
        proc = subprocess.run(cmd, cwd=tree, env=env, capture_output=True, text=True)
        if proc.returncode != 0:
            raise SystemExit(f"train_step: error: baseline {rev} failed:\n{proc.stderr[-3000:]}")
        return json.loads(proc.stdout.strip().splitlines()[-1])


def ratios(base: dict, new: dict) -> dict:
    """Speed-ups (base time / new time) and memory fractions (new / base)."""
    out = {}
    for key in ("train_step_s", "denoiser_call_s", "compile_s"):
        out[key] = round(base[key] / new[key], 3)
    for key in ("ancestral_molecules_per_s", "fast_molecules_per_s"):
        out[key] = round(new[key] / base[key], 3)
    out["peak_rss_gib"] = round(new["peak_rss_gib"] / base["peak_rss_gib"], 3)
    return out


def main(argv=None) -> dict:
    args = parse_args(argv)
    if args.measure_only:
        result = measure(args)
    else:
        base = measure_revision(args.baseline, args) if args.baseline else None
        result = {"config": args.config, "batch": args.batch, "dtype": args.dtype,
                  "atoms": args.atoms, **measure(args)}  # fmt: skip
        if base is not None:
            result.update(baseline_revision=args.baseline, baseline=base,
                          ratios=ratios(base, result))  # fmt: skip
        if args.batch in PYTORCH and args.dtype == "float32":
            torch = PYTORCH[args.batch]
            result["pytorch"] = torch
            result["ratios_vs_pytorch"] = {
                "train_step_s": round(torch["train_step_s"] / result["train_step_s"], 3),
                "denoiser_call_s": round(torch["denoiser_call_s"] / result["denoiser_call_s"], 3),
                "peak_rss_gib": round(result["peak_rss_gib"] / torch["peak_rss_gib"], 3),
            }
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    if __package__ in (None, ""):  # run as a file (baseline trees): import from the tree
        sys.path.insert(0, os.getcwd())
    main()
