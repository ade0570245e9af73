"""Size buckets vs one padded size: training and sampling time per real molecule.

    python -m benchmarks.buckets --config=configs/qm9s.py --batch=16 \
        [--buckets=14,16,18,20,23] [--train_steps=12] [--fast_steps=10] [--sample_spectra=-1]

Dense masked graphs cost what their padded size N costs (pairs grow as N²), so a molecule of
18 atoms padded to 29 pays for 29. This benchmark runs what training and sampling run, on the
real molecules of the config's data source (the embedded QM9-IR subset unless ``data.data_dir``
is set), twice: all padded to ``max_atoms`` (29), and in the size buckets of ``--buckets``
(``config.data.buckets``: each batch padded to the smallest size that holds its molecules).

* Training: the first ``--train_steps`` batches of epoch 0 of ``--split`` in the loader's own
  order (``input_pipeline.epoch_order`` / ``global_batches``, seed 0, part-filled buckets
  dropped), through the trainer's jitted diffusion step (``sharding.make_jitted_steps``: dropout
  on, state donated, a new key per step). In the bucketed run consecutive steps change shape as
  they do in training.
* Sampling: every batch of the sampler's plan for the first ``--sample_spectra`` molecules of
  ``--sample_split`` (``sampling.runner.size_batches``: in size-bucket order cut into full
  batches, each padded for its largest molecule, the last one part-filled and padded as the
  sampler pads), through the fast sampler with ``--fast_steps`` steps, one sample per spectrum.
* Each padded size is compiled and run once before timing (``compile_s``: lowering and
  compilation of the step; first call of the sampler); the timed sequences then call compiled
  code only. ``*_s_per_molecule`` = wall time of a sequence / real molecules in it;
  ``*_ratio`` = bucketed / padded. Parameters are random (timing does not depend on them).

The last line of stdout is one JSON object.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import time

import jax
import jax.numpy as jnp
import numpy as np

from benchmarks import train_step
from irgeodiff_jax.data import features, input_pipeline, sources
from irgeodiff_jax.data.settings import QM9_BUCKETS, DataSettings, bucket_sizes
from irgeodiff_jax.diffusion import schedules
from irgeodiff_jax.models import factory
from irgeodiff_jax.sampling import generate, runner
from irgeodiff_jax.training import sharding, step


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--config", default="configs/qm9s.py", help="config file (stage=diffusion)")
    p.add_argument("--batch", type=int, default=16, help="batch (molecules)")
    p.add_argument("--buckets", default=",".join(map(str, QM9_BUCKETS)), help="sizes < max_atoms")
    p.add_argument("--split", default="train", help="split whose first batches are trained")
    p.add_argument("--train_steps", type=int, default=12, help="timed train steps per run")
    p.add_argument("--sample_split", default="test", help="split whose spectra are sampled")
    p.add_argument("--sample_spectra", type=int, default=-1, help="first M spectra (<0: all)")
    p.add_argument("--fast_steps", type=int, default=10, help="K of the fast sampler")
    p.add_argument("--override", action="append", default=[], help="config field=value (JSON)")
    args = p.parse_args(argv)
    try:
        args.buckets = tuple(int(b) for b in args.buckets.split(",") if b.strip())
    except ValueError:
        p.error(f"--buckets={args.buckets!r}: expected comma-separated integers")
    if args.batch < 1 or args.train_steps < 1 or args.fast_steps < 1 or args.sample_spectra == 0:
        p.error("need --batch, --train_steps, --fast_steps >= 1 and --sample_spectra != 0")
    return args


def train_plan(num_atoms, sizes, batch: int, steps: int) -> list[tuple[int, list[int]]]:
    """The first ``steps`` (padded size, indices) batches of the loader's epoch 0 (seed 0)."""
    bucket_of = input_pipeline.assign_buckets(np.asarray(num_atoms), sizes, lambda i: i)
    order = input_pipeline.epoch_order(len(bucket_of), 0, 0, shuffle=True)
    plan = input_pipeline.global_batches(order, bucket_of, batch, drop_remainder=True)
    if len(plan) < steps:
        raise SystemExit(f"buckets: error: the split gives {len(plan)} batches, < {steps} steps")
    return [(sizes[b], [int(i) for i in ix]) for b, ix in plan[:steps]]


def sample_plan(num_atoms, sizes, batch: int, count: int) -> list[tuple[int, list[int]]]:
    """The sampler's batches of the first ``count`` molecules (``runner.size_batches``)."""
    n = len(num_atoms) if count < 0 else min(count, len(num_atoms))
    return runner.size_batches(np.asarray(num_atoms)[:n], sizes, batch, lambda i: i)


def featurized(source, plan, batch: int, settings: DataSettings) -> list:
    """``types.Batch`` per planned batch; a part-filled one is padded with copies of its first
    row, as the sampler pads (``sampling/dataset.py``)."""
    out = []
    for n, indices in plan:
        rows = [features.featurize(source[i], max_atoms=n, **settings.featurize_kwargs())
                for i in indices]  # fmt: skip
        out.append(features.collate(rows + [rows[0]] * (batch - len(rows))))
    return out


def first_of_each_size(pairs: list) -> dict:
    """``{size: item}`` for the first item of each padded size in ``(size, item)`` pairs."""
    out = {}
    for n, item in pairs:
        out.setdefault(n, item)
    return out


def measure(args: argparse.Namespace) -> dict:
    config = train_step.load_config(args.config, "float32", 29, args.override)
    settings = DataSettings.from_config(config.data)
    runs = {
        "padded": (settings.max_atoms,),
        "bucketed": bucket_sizes(args.buckets, settings.max_atoms),
    }
    train_src = sources.get_source(config.data, args.split)
    sample_src = sources.get_source(config.data, args.sample_split)

    models = factory.create_models(config)
    mesh = sharding.make_mesh(1)
    params = jax.jit(lambda k: factory.init_params(models, config, k))(jax.random.key(0))
    train_fn, _ = sharding.make_jitted_steps(models, config, "diffusion", mesh)
    sampler = generate.make_generate_fn(
        models, schedules.schedule_from_config(config.diffusion), samples_per_spectrum=1,
        settings=generate.SamplerSettings("fast", args.fast_steps),
        target=config.diffusion.get("target", "eps"),
    )  # fmt: skip
    stage_params = jax.tree.map(jnp.copy, {m: params[m] for m in step.STAGE_MODULES["diffusion"]})
    state = sharding.replicate(step.create_train_state(models, config, "diffusion", stage_params),
                               mesh)  # fmt: skip
    root = jax.random.key(1)
    out = {"config": args.config, "batch": args.batch, "fast_steps": args.fast_steps}
    compile_s, train_exe = {}, {}
    for name, sizes in runs.items():
        tplan = train_plan(train_src.num_atoms(), sizes, args.batch, args.train_steps)
        splan = sample_plan(sample_src.num_atoms(), sizes, args.batch, args.sample_spectra)
        tbatches = [
            (n, sharding.shard_batch(step.device_batch(b), mesh))
            for (n, _), b in zip(tplan, featurized(train_src, tplan, args.batch, settings),
                                 strict=True)
        ]  # fmt: skip
        sbatches = [
            (n, generate.GenerateInputs(
                spectrum_tokens=b.spectrum_tokens, formula_tokens=b.formula_tokens,
                atom_types=b.atom_types, atom_mask=b.atom_mask,
                keys=generate.spectrum_keys(0, b.id)))
            for (n, _), b in zip(splan, featurized(sample_src, splan, args.batch, settings),
                                 strict=True)
        ]  # fmt: skip
        # Compile (and run once) every size first: the timed sequences call compiled code only.
        for n, batch in first_of_each_size(tbatches).items():
            if n not in train_exe:
                t0 = time.perf_counter()
                train_exe[n] = train_fn.lower(state, batch, root).compile()
                compile_s[f"train_{n}"] = round(time.perf_counter() - t0, 2)
            state, metrics = train_exe[n](state, batch, root)
            jax.block_until_ready(metrics)
        for n, inputs in first_of_each_size(sbatches).items():
            t0 = time.perf_counter()
            jax.block_until_ready(sampler(params, inputs))
            compile_s.setdefault(f"sample_{n}", round(time.perf_counter() - t0, 2))
        t0 = time.perf_counter()
        for i, (n, batch) in enumerate(tbatches):
            state, metrics = train_exe[n](state, batch, jax.random.fold_in(root, i))
            jax.block_until_ready(metrics)
        train_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        for _, inputs in sbatches:
            jax.block_until_ready(sampler(params, inputs))
        sample_s = time.perf_counter() - t0
        trained = sum(len(ix) for _, ix in tplan)
        sampled = sum(len(ix) for _, ix in splan)
        out[name] = {
            "sizes": list(sizes),
            "train_s": round(train_s, 3),
            "train_molecules": trained,
            "train_mean_atoms": round(
                float(np.mean(train_src.num_atoms()[[i for _, ix in tplan for i in ix]])), 2
            ),  # fmt: skip
            "train_batches_per_size": _count_sizes(tplan),
            "train_s_per_molecule": round(train_s / trained, 4),
            "sample_s": round(sample_s, 3),
            "sample_molecules": sampled,
            "sample_batches_per_size": _count_sizes(splan),
            "sample_s_per_molecule": round(sample_s / sampled, 4),
        }
    for key in ("train", "sample"):
        per = [out[r][f"{key}_s_per_molecule"] for r in ("bucketed", "padded")]
        out[f"{key}_ratio"] = round(per[0] / per[1], 3)
    out["compile_s"] = compile_s
    out["load_average"] = [round(v, 2) for v in os.getloadavg()]
    out["device"] = jax.devices()[0].device_kind
    return out


def _count_sizes(plan) -> dict:
    return {str(n): c for n, c in collections.Counter(n for n, _ in plan).items()}


def main(argv=None) -> dict:
    result = measure(parse_args(argv))
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
