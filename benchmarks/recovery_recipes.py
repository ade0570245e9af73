"""Learning recipes side by side: validity and accuracy on validation spectra vs training time.

    python -m benchmarks.recovery_recipes --workdir=/tmp/recipes --recipes=paper,cpu_small,frozen_ae

Every recipe (``RECIPES``: overrides of ``configs/cpu_small.py``, whose default is the recipe
that made memorisation work; ``paper`` undoes it) trains on the embedded training split with
the same step budgets (``--steps``: classifier, autoencoder, diffusion), so the same time up to
the per-step cost, which the table reports. Recipes that share their classifier/autoencoder
settings share those stages (trained once, copied). During the diffusion stage the sample check
(``training.sample_check``) samples ``--check_spectra`` VALIDATION spectra × ``--check_samples``
every ``--check_every`` steps and scores them in the side process; the table lists validity and
molecular accuracy at each check against the diffusion training time. The test split is never
read. The last line of stdout is one JSON object ``{recipe: [{step, minutes, validity,
mol_acc, ...}]}``.
"""

from __future__ import annotations

import json
import os
import shutil

from absl import app, flags

from benchmarks.recipes import RECIPES, STAGES, budget_flags, recipe_flags, run
from irgeodiff_jax.training import metrics

_WORKDIR = flags.DEFINE_string("workdir", "runs/recipes", "output directory")
_RECIPES = flags.DEFINE_list(
    "recipes",
    ["paper", "cpu_small_constant", "frozen_ae", "frozen_ae_lr2e-3"],
    f"of {sorted(RECIPES)}",
)
_STEPS = flags.DEFINE_list("steps", ["600", "1500", "3000"], "classifier,autoencoder,diffusion")
_EVERY = flags.DEFINE_integer("check_every", 500, "diffusion steps between sample checks")
_SPECTRA = flags.DEFINE_integer("check_spectra", 32, "validation spectra per check")
_SAMPLES = flags.DEFINE_integer("check_samples", 4, "samples per spectrum per check")
_CONFIG = flags.DEFINE_string("config", "configs/cpu_small.py", "training config file")


def _curve(train_dir: str) -> list[dict]:
    """Sample-check points of the diffusion stage with the training minutes they took."""
    records = metrics.read_jsonl(os.path.join(train_dir, "diffusion", "metrics.jsonl"))
    rate = [r["train/steps_per_sec"] for r in records if "train/steps_per_sec" in r]
    sec_per_step = 1.0 / rate[-1] if rate else float("nan")
    points = []
    for r in records:
        if "sample_check/validity" in r:
            row = {k.split("/", 1)[1]: v for k, v in r.items() if k.startswith("sample_check/")}
            points.append({"step": r["step"], "minutes": r["step"] * sec_per_step / 60, **row})
    return points


def main(argv):
    del argv
    work = os.path.abspath(_WORKDIR.value)
    unknown = [r for r in _RECIPES.value if r not in RECIPES]
    if unknown:
        raise app.UsageError(f"unknown recipes {unknown}; known: {sorted(RECIPES)}")
    budgets = budget_flags(_STEPS.value)
    check = [
        f"--config.training.sample_check.every_steps={_EVERY.value}",
        f"--config.training.sample_check.num_spectra={_SPECTRA.value}",
        f"--config.training.sample_check.samples={_SAMPLES.value}",
        f"--config.training.eval_every_steps={_EVERY.value}",
    ]
    results, shared = {}, {}
    for name in _RECIPES.value:
        ae = RECIPES[name][0]  # recipes with the same autoencoder overrides share its stages
        train_dir = os.path.join(work, name, "train")
        if ae in shared and not os.path.isdir(os.path.join(train_dir, "autoencoder")):
            for stage in STAGES[:2]:  # the trainer skips stages whose checkpoints are complete
                shutil.copytree(os.path.join(shared[ae], stage), os.path.join(train_dir, stage))
        run(["irgeodiff_jax.train", f"--config={_CONFIG.value}:stage=all",
             f"--workdir={train_dir}", *budgets, *check, *recipe_flags(name)])  # fmt: skip
        shared.setdefault(ae, train_dir)
        results[name] = _curve(train_dir)
    print("\n| recipe | step | diffusion min | validity | mol acc (any of k) | closest pair Å |")
    print("|---|---|---|---|---|---|")
    for name, points in results.items():
        for p in points:
            print(f"| {name} | {p['step']} | {p['minutes']:.1f} | {p['validity']:.3f} | "
                  f"{p['mol_acc']:.3f} | {p['closest_pair']:.2f} |")  # fmt: skip
    print(json.dumps(results))


if __name__ == "__main__":
    app.run(main)
