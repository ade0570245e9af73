"""Fast (DDIM-style, strided) vs ancestral (T-step) sampler: wall time and molecular accuracy.

Run from the repository root:
    python -m benchmarks.samplers --workdir W --num_spectra M --k K [--steps 50] [--eta 0] \
        [--batch_size 8] [--split test] [--seed 0] [--out DIR] [--workers 1]

Both samplers run in the same process on the same model (the EMA parameters of W), the same
first M spectra of the split, the same k and the same seed (``sampling.dataset.run_sampling``;
samples go to ``DIR/fast`` and ``DIR/ancestral``, a temporary directory by default). Each
directory is then scored by the evaluation side-process without the oracle
(``evaluation.scoring.run_evaluation``, metrics from ``evaluation.metrics``). Timings per
sampler: ``wall_seconds`` (the whole ``run_sampling`` call, including data preparation,
compilation and writing), ``first_batch_seconds`` (compilation plus the first batch) and, when
there are at least two batches of one shape, ``steady_seconds_per_spectrum`` (mean over the
later batches, i.e. without compilation).
Prints one JSON object.
"""

import argparse
import json
import os
import tempfile
import time

from irgeodiff_jax.evaluation import scoring
from irgeodiff_jax.sampling import dataset, generate
from irgeodiff_jax.sampling.runner import ModelRunner

METRIC_KEYS = (
    "num_spectra",
    "mol_acc",
    "mol_acc_at_k",
    "validity",
    "stability",
    "connectivity",
    "sim_g",
)


def _one(runner, args, settings, directory: str) -> dict:
    summary = dataset.run_sampling(
        args.workdir,
        directory,
        split=args.split,
        num_spectra=args.num_spectra,
        samples_per_spectrum=args.k,
        settings=settings,
        batch_size=args.batch_size,
        seed=args.seed,
        runner=runner,
    )
    if summary["skipped"]:
        raise SystemExit(f"{directory} already holds samples; pass an empty --out")
    later = summary["sampling_seconds"] - summary["first_call_seconds"]
    later_spectra = summary["spectra_written"] - min(args.batch_size, summary["spectra_written"])
    t0 = time.perf_counter()
    metrics = scoring.run_evaluation(
        directory,
        os.path.join(directory, "report"),
        workers=args.workers,
        timeout_s=args.timeout_s,
        ks=tuple(j for j in (1, 5, 10, 20, 30, 40, 50) if j <= args.k) + (args.k,),
    )
    return dict(
        sampler=settings.name,
        denoiser_steps=settings.num_steps(runner.schedule),
        eta=settings.eta if settings.name == "fast" else None,
        wall_seconds=round(summary["seconds"], 3),
        sampling_seconds=round(summary["sampling_seconds"], 3),
        first_batch_seconds=round(summary["first_call_seconds"], 3),
        steady_seconds_per_spectrum=(
            round(later / later_spectra, 4) if summary["chunks_written"] > 1 else None
        ),
        evaluation_seconds=round(time.perf_counter() - t0, 3),
        **{key: metrics.get(key) for key in METRIC_KEYS},
    )


def run(args: argparse.Namespace) -> dict:
    runner = ModelRunner(args.workdir)
    out = args.out or tempfile.mkdtemp(prefix="samplers-")
    results = {}
    fast = generate.SamplerSettings("fast", steps=args.steps, eta=args.eta)
    for settings in (fast, generate.ANCESTRAL):
        results[settings.name] = _one(runner, args, settings, os.path.join(out, settings.name))
    f, a = results["fast"], results["ancestral"]
    key = "steady_seconds_per_spectrum" if f["steady_seconds_per_spectrum"] else "wall_seconds"
    return dict(
        model=dict(
            workdir=runner.workdir,
            fingerprint=runner.fingerprint(),
            size=runner.bundle.config.get("size"),
        ),
        split=args.split,
        num_spectra=f["num_spectra"],
        k=args.k,
        seed=args.seed,
        batch_size=args.batch_size,
        out=out,
        fast=f,
        ancestral=a,
        speedup=dict(basis=key, ancestral_over_fast=round(a[key] / f[key], 2)),
    )


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", required=True, help="training workdir")
    parser.add_argument("--num_spectra", type=int, default=8)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--steps", type=int, default=50, help="fast sampler steps")
    parser.add_argument("--eta", type=float, default=0.0, help="fast sampler eta")
    parser.add_argument("--batch_size", type=int, default=4)
    parser.add_argument("--split", default="test")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=None, help="empty directory for samples and reports")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--timeout_s", type=float, default=600.0)
    result = run(parser.parse_args(argv))
    print(json.dumps(result, indent=1))
    return result


if __name__ == "__main__":
    main()
