"""End-to-end run on a laptop: sample held-out test spectra, evaluate, print the recovery table.

    python -m irgeodiff_jax.quickstart --workdir=runs/quickstart            # the shipped model
    python -m irgeodiff_jax.quickstart --workdir=runs/quickstart --train    # train from scratch

Runs, each as its own process (so every step can also be run, resumed or repeated by hand):
  1. only with ``--train``: ``python -m irgeodiff_jax.train
     --config=configs/cpu_small.py:stage=all`` with a bounded step budget per stage, on the
     embedded QM9-IR subset; without it the model shipped in the package
     (``irgeodiff_jax/pretrained``, trained on the training split) is used;
  2. ``python -m irgeodiff_jax.sample`` on ``--num_spectra`` held-out test spectra with the fast
     sampler (``--sampler_steps`` strided steps on the ``--spacing`` grid, stochasticity
     ``--eta``), each batch padded to the smallest of ``--buckets`` that holds its molecules;
  3. ``python -m irgeodiff_jax.evaluate`` (bond assignment, identity, sim_g, validity, stability;
     with the xTB oracle on the first ``--oracle_spectra`` spectra).
Re-running the same command resumes whichever step was interrupted. ``--config`` is a path from
the working directory; a ``configs/<file>`` path that is not there (the command run outside the
repository) is taken from the installed ``configs`` package.
"""

import importlib.util
import json
import os
import subprocess
import sys
import time

from absl import app, flags

from irgeodiff_jax.data.settings import QM9_BUCKETS
from irgeodiff_jax.evaluation import report
from irgeodiff_jax.utils import cli

_WORKDIR = flags.DEFINE_string("workdir", "runs/quickstart", "output directory")
_TRAIN = flags.DEFINE_bool(
    "train", False, "train --config from scratch first (else: sample the shipped model)"
)
_STEPS = flags.DEFINE_integer("steps_per_stage", 600, "training step budget per stage (--train)")
_NUM_SPECTRA = flags.DEFINE_integer("num_spectra", 200, "held-out test spectra to sample")
_K = flags.DEFINE_integer("samples_per_spectrum", 10, "samples per spectrum")
_SAMPLER_STEPS = flags.DEFINE_integer(
    "sampler_steps", 250, "steps of the fast (strided) sampler (250: chosen on validation)"
)
_ETA = flags.DEFINE_float(
    "eta", 1.0, "fast sampler stochasticity (1: chosen on the validation split; 0: DDIM)"
)
_SPACING = flags.DEFINE_enum(  # diffusion.sampler.SPACINGS, not imported: this process runs no JAX
    "spacing", "uniform", ["uniform", "quadratic"], "fast sampler timestep grid"
)
_ORACLE_SPECTRA = flags.DEFINE_integer("oracle_spectra", 50, "spectra scored with xTB (0: none)")
_BUCKETS = flags.DEFINE_string(
    "buckets", ",".join(map(str, QM9_BUCKETS)), "sampler's padded sizes (empty: the config's)"
)
_CONFIG = flags.DEFINE_string("config", "configs/cpu_small.py", "training config file")


def _run(args: list[str]) -> None:
    cmd = [sys.executable, "-m", *args]
    print("+", " ".join(cmd), flush=True)
    t0 = time.time()
    code = subprocess.run(cmd).returncode
    if code:
        sys.exit(code)  # the step printed its own error (status 2 for usage and input errors)
    print(f"  ({time.time() - t0:.0f} s)", flush=True)


def _config_path(path: str) -> str:
    """``path`` if it exists, else ``configs/<file>`` of the installed ``configs`` package."""
    if os.path.exists(path):
        return path
    head, name = os.path.split(os.path.normpath(path))
    spec = importlib.util.find_spec("configs") if head == "configs" else None
    for directory in (spec and spec.submodule_search_locations) or ():
        candidate = os.path.join(directory, name)
        if os.path.exists(candidate):
            return candidate
    raise app.UsageError(f"--config={path}: no such file (relative to {os.getcwd()})")


def main(argv):
    del argv
    work = os.path.abspath(_WORKDIR.value)
    train_dir, samples_dir, eval_dir = (os.path.join(work, d) for d in ("train", "samples", "eval"))
    try:
        config = _config_path(_CONFIG.value)
    except app.UsageError as e:
        cli.exit_usage(f"quickstart: error: {e}")
    if _TRAIN.value:
        _run(
            [
                "irgeodiff_jax.train",
                f"--config={config}:stage=all",
                f"--workdir={train_dir}",
                f"--config.training.num_steps={_STEPS.value}",
            ]
        )
    model = [f"--workdir={train_dir}"] if _TRAIN.value else []  # none: the shipped model
    _run(
        [
            "irgeodiff_jax.sample",
            *model,
            f"--out={samples_dir}",
            "--split=test",
            f"--num_spectra={_NUM_SPECTRA.value}",
            f"--samples_per_spectrum={_K.value}",
            "--sampler=fast",
            f"--steps={_SAMPLER_STEPS.value}",
            f"--eta={_ETA.value}",
            f"--spacing={_SPACING.value}",
            *([f"--buckets={_BUCKETS.value}"] if _BUCKETS.value else []),
        ]
    )
    oracle = ["--oracle=xtb", f"--oracle_spectra={_ORACLE_SPECTRA.value}",
              f"--workers={os.cpu_count() or 1}"]  # this process only waits meanwhile  # fmt: skip
    _run(
        [
            "irgeodiff_jax.evaluate",
            f"--samples={samples_dir}",
            f"--out={eval_dir}",
            *(oracle if _ORACLE_SPECTRA.value > 0 else ["--oracle=none"]),
        ]
    )
    with open(os.path.join(eval_dir, "metrics.json")) as f:
        metrics = json.load(f)
    print()
    m = metrics.get
    print(
        f"{m('num_spectra')} test spectra x {m('samples_per_spectrum')} samples"
        f" ({m('sampler')} sampler, {m('steps')} {m('spacing')} steps, eta {m('eta')})"
    )
    print(report.format_table(metrics, report.SUMMARY_ROWS, markdown=True))
    print()
    print(f"samples (one SDF per spectrum): {os.path.join(samples_dir, 'sdf')}")
    print(f"metrics, per-spectrum CSV and plots: {eval_dir}")
    if _TRAIN.value:
        print(f"training logs (JSONL, TensorBoard): {train_dir}")


if __name__ == "__main__":
    cli.run(main, "quickstart")
