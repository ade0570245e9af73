"""Memorisation check of the whole loop: train on a few molecules, recover the same molecules.

    python -m benchmarks.memorize --workdir=/tmp/memorize

Takes the first ``--num`` molecules of the embedded subset's training split (with
``--heavy_atoms=n``: the first with n heavy atoms, e.g. 9, the size of most QM9 test molecules),
makes them the
train, validation and test split of a private copy of the subset (same npz, new manifest), and
runs the three real commands on it, each as its own process (every one resumes when the command
is re-run): ``irgeodiff_jax.train`` (``--config``, default ``configs/cpu_small.py``, every stage
with its own step budget), ``irgeodiff_jax.sample`` (``--k`` samples for each of the ``--num``
spectra, fast sampler) and ``irgeodiff_jax.evaluate`` (no oracle). Prints the metrics table and,
as the last line of stdout, one JSON object with ``validity``, ``mol_acc`` (any of k),
``stability`` and the wall time of each phase. Batches are padded only as far as the subset
needs (``padding_flags``). ``--recipe`` names an entry of ``recipes.RECIPES`` whose overrides
are applied (``cpu_small``: none, the config as it is). The defaults are run v27's recipe and
sampling (``benchmarks/README.md``): recipe ``tolerant_decoder_unguided``, budgets 300 / 1,500 /
27,000, 300 fast sampler steps with η = 1 and no guidance (``--guidance=1``; a weight above 1
needs a recipe with condition dropout, such as ``tolerant_decoder``, and then guides at
normalised times in ``--guidance_interval``). They took 39 min on 2 cores where the trainer
makes 13 diffusion steps/s (runs v27-v28); where it makes 8-9, as for runs v14-v23,
``--steps=300,1500,16000`` fits 45 minutes instead. Extra ``--config.*`` overrides after ``--``
are passed to the trainer after the recipe's (``-- --config.diffusion.target=eps``).
"""

from __future__ import annotations

import json
import os
import shutil
import time

import numpy as np
from absl import app, flags

from benchmarks.recipes import RECIPES, budget_flags, recipe_flags, run
from data_pipeline import embedded
from irgeodiff_jax.chem.elements import heavy_atom_count
from irgeodiff_jax.data.embedded_subset import load_embedded
from irgeodiff_jax.utils import atomic

_WORKDIR = flags.DEFINE_string("workdir", "runs/memorize", "output directory")
_NUM = flags.DEFINE_integer("num", 64, "training molecules to memorise")
_HEAVY = flags.DEFINE_integer(
    "heavy_atoms", None, "only training molecules with this many heavy atoms (default: any size)"
)
_K = flags.DEFINE_integer("k", 10, "samples per spectrum")
_CONFIG = flags.DEFINE_string("config", "configs/cpu_small.py", "training config file")
_STEPS = flags.DEFINE_list(
    "steps", ["300", "1500", "27000"], "step budgets of classifier, autoencoder, diffusion"
)
_RECIPE = flags.DEFINE_enum(
    "recipe",
    "tolerant_decoder_unguided",
    sorted(RECIPES),
    "recipe of benchmarks/recipes.py to train with",
)
_SAMPLER_STEPS = flags.DEFINE_integer("sampler_steps", 300, "steps of the fast sampler")
_ETA = flags.DEFINE_float("eta", 1.0, "fast sampler stochasticity (0: DDIM, 1: DDPM-like)")
_GUIDANCE = flags.DEFINE_float(
    "guidance", 1.0, "classifier-free guidance weight (1: none; above 1 needs condition dropout)"
)
_INTERVAL = flags.DEFINE_list(
    "guidance_interval", ["0.1", "1"], "normalised times lo,hi: guidance only at lo < t <= hi"
)


def make_subset(out_dir: str, num: int, heavy_atoms: int | None = None) -> str:
    """An embedded-format directory whose three splits are the first ``num`` training ids
    (of the molecules with ``heavy_atoms`` non-hydrogen atoms, if given)."""
    os.makedirs(out_dir, exist_ok=True)
    info = embedded.manifest(None)
    ids, which = list(info["splits"]["train"]), "training molecules"
    if heavy_atoms is not None:
        heavy = {int(m.id): heavy_atom_count(m.atomic_numbers) for m in load_embedded(None)}
        ids = [i for i in ids if heavy[int(i)] == heavy_atoms]
        which = f"training molecules with {heavy_atoms} heavy atoms"
    ids = ids[:num]
    if len(ids) < num:
        raise app.UsageError(f"--num={num}: the split has only {len(ids)} {which}")
    info["splits"] = {"train": ids, "validation": ids, "test": ids}
    info["split_note"] = f"memorisation subset: the first {num} {which} in every split"
    src = os.path.join(embedded.embedded_dir(), embedded.NPZ_NAME)
    dst = os.path.join(out_dir, embedded.NPZ_NAME)
    if not os.path.exists(dst):  # a copy (1.3 MB), so the workdir outlives the source tree
        with atomic.replacing(dst) as tmp:
            shutil.copyfile(src, tmp)
    atomic.write_json(os.path.join(out_dir, embedded.MANIFEST_NAME), info)
    return out_dir


def padding_flags(num_atoms, min_bucket: int = 16) -> list[str]:
    """Pad only as far as the subset needs: ``max_atoms`` = its largest molecule and one bucket
    at the median atom count when both sides hold ``min_bucket`` molecules (a batch of
    ``configs/cpu_small.py``; the loader refuses buckets that never fill one). The losses are
    invariant to padding; the 64 default molecules (9-21 atoms) then train 2.5x the diffusion
    steps per minute of padding to 29 (runs v6/v7 in ``benchmarks/README.md``)."""
    n = np.asarray(num_atoms)
    median = int(np.median(n))
    small = int((n <= median).sum())
    fits = median < n.max() and min(small, n.size - small) >= min_bucket
    buckets = f"({median},)" if fits else "()"
    return [f"--config.data.max_atoms={int(n.max())}", f"--config.data.buckets={buckets}"]


def subset_atom_counts(subset_dir: str) -> list[int]:
    """Atom counts of the subset's training molecules, in split order."""
    ids = [int(i) for i in embedded.manifest(subset_dir)["splits"]["train"]]
    by_id = {int(m.id): m.atomic_numbers.size for m in load_embedded(subset_dir)}
    return [by_id[i] for i in ids]


def pipeline(work: str, config: str, overrides: list[str], num_spectra: int, k: int,
             sampler_steps: int, eta: float = 0.0, guidance: float = 1.0,
             interval: str = "0,1") -> dict:  # fmt: skip
    """Train → sample (test split) → evaluate in ``work``; returns metrics and wall times."""
    train_dir, samples, eval_dir = (os.path.join(work, d) for d in ("train", "samples", "eval"))
    times = {"train_s": run(["irgeodiff_jax.train", f"--config={config}:stage=all",
                             f"--workdir={train_dir}", *overrides])}  # fmt: skip
    times["sample_s"] = run([
        "irgeodiff_jax.sample", f"--workdir={train_dir}", f"--out={samples}", "--split=test",
        f"--num_spectra={num_spectra}", f"--samples_per_spectrum={k}", "--sampler=fast",
        f"--steps={sampler_steps}", f"--eta={eta}", f"--guidance={guidance}",
        f"--guidance_interval={interval}",
    ])  # fmt: skip
    times["evaluate_s"] = run(
        ["irgeodiff_jax.evaluate", f"--samples={samples}", f"--out={eval_dir}", "--oracle=none"]
    )
    with open(os.path.join(eval_dir, "metrics.json")) as f:
        metrics = json.load(f)
    return {**metrics, **times}


def main(argv):
    work = os.path.abspath(_WORKDIR.value)
    subset = make_subset(os.path.join(work, "data"), _NUM.value, _HEAVY.value)
    # Padding fitted to the subset (``padding_flags``); trailing overrides may still change it.
    overrides = [f"--config.data.embedded_dir={subset}", *padding_flags(subset_atom_counts(subset))]
    overrides += budget_flags(_STEPS.value)
    overrides.append("--config.training.progress_bar=False")  # the log is a file, not a terminal
    recipe_overrides = recipe_flags(_RECIPE.value) + list(argv[1:])
    overrides += recipe_overrides
    t0 = time.time()
    m = pipeline(work, _CONFIG.value, overrides, _NUM.value, _K.value, _SAMPLER_STEPS.value,
                 _ETA.value, _GUIDANCE.value, ",".join(_INTERVAL.value))  # fmt: skip
    m["total_s"] = time.time() - t0
    keys = ("validity", "stability", "connectivity", "mol_acc", "sim_g")
    print("\n| metric | value |\n|---|---|")
    for key in keys:
        if m.get(key) is not None:
            print(f"| {key} | {m[key]:.3f} |")
    summary = {key: m.get(key) for key in (*keys, "train_s", "sample_s", "evaluate_s", "total_s")}
    summary.update(num=_NUM.value, heavy_atoms=_HEAVY.value, k=_K.value, eta=_ETA.value,
                   guidance=_GUIDANCE.value, guidance_interval=_INTERVAL.value,
                   recipe=_RECIPE.value, overrides=recipe_overrides)  # fmt: skip
    print(json.dumps(summary))


if __name__ == "__main__":
    app.run(main)
