r"""Sample k geometries per spectrum of a dataset split with a trained model.

    python -m irgeodiff_jax.sample --workdir=W --out=DIR --split=test [--num_spectra=M] \
        --samples_per_spectrum=k [--sampler=ancestral|fast --steps=K] [--eta=0] \
        [--batch_size=B] [--seed=S] [--attention_spectra=A]

Restores the EMA parameters of the training workdir W (``training/inference.py``) and walks the
first M molecules of the split in the source's order (no shuffling). Molecules are grouped into
batches of B spectra of one size bucket (``config.data.buckets``, else ``max_atoms``); the last
batch of a bucket is padded with copies of a real row that are dropped afterwards. Each batch runs
``sampling.generate`` (the sampling loop is one ``lax.scan`` under ``jit``; one trace per bucket
size) and is written as one chunk through ``evaluation.samples_format.SamplesWriter`` (arrays,
one SDF per spectrum, attention maps of the first A spectra of the split).

Resume: re-running the same command skips the spectra of every completed chunk. The PRNG key of
sample j of spectrum i depends only on (seed, id_i, j), and a molecule's padded size only on its
atom count, so a resumed run writes the same arrays as an uninterrupted one. Changing k, the
sampler, its steps, eta, the seed or the checkpoint in a directory already written to is an error.
"""

import hashlib
import json
import os
import sys
import time

import jax
import numpy as np
from absl import app, flags, logging

from irgeodiff_jax.chem import spectra
from irgeodiff_jax.data import features, input_pipeline, sources
from irgeodiff_jax.evaluation import samples_format as sf
from irgeodiff_jax.sampling import generate
from irgeodiff_jax.training import checkpointing, inference, step


class SampleError(ValueError):
    """Bad arguments to ``sample`` (one-line reason)."""


def atom_vocabulary(config) -> tuple[int, ...]:
    """Atomic numbers in type-index order: ``data.atom_types`` (else ``data.atom_vocabulary``)."""
    data = config.data
    if "atom_types" in data:
        return tuple(int(z) for z in data.atom_types)
    return features.vocabulary(data.get("atom_vocabulary", "qm9s"))


class ModelRunner:
    """A trained model ready to sample: modules, EMA parameters, schedule and data settings.

    Attributes:
        bundle: the ``InferenceBundle`` (config, modules, params, stage, step).
        schedule: diffusion noise schedule of the config.
        vocab: atomic numbers in type-index order; ``max_atoms``, ``sizes`` (bucket sizes).
    """

    def __init__(self, workdir: str):
        self.bundle = inference.load_for_inference(workdir)
        self.bundle.require("denoiser")
        config = self.bundle.config
        data = config.data
        self.workdir = os.path.abspath(workdir)
        self.schedule = step.make_schedule(config)
        self.params = jax.device_put(self.bundle.params)
        self.vocab = atom_vocabulary(config)
        self.max_atoms = int(data.get("max_atoms", 29))
        self.sizes = input_pipeline.bucket_sizes(
            tuple(data.get("buckets", ()) or ()), self.max_atoms
        )
        self.levels = int(data.get("spectrum_levels", features.TOKEN_LEVELS))
        self.formula_len = int(data.get("formula_len", 16))
        self.patch_size = int(config.model.spectral_encoder.patch_size)
        self._fns = {}

    def fingerprint(self) -> str:
        """Identifies the model: stage, checkpoint step and a hash of its config."""
        text = json.dumps(self.bundle.config.to_dict(), sort_keys=True, default=str)
        digest = hashlib.sha256(text.encode()).hexdigest()[:16]
        return f"{self.bundle.stage}@{self.bundle.step} config_sha256={digest}"

    def generate_fn(self, k: int, settings: generate.SamplerSettings, with_attention: bool):
        """The jitted generate function for these settings (built once, cached)."""
        key = (k, settings, with_attention)
        if key not in self._fns:
            self._fns[key] = generate.make_generate_fn(
                self.bundle.models,
                self.schedule,
                samples_per_spectrum=k,
                settings=settings,
                with_attention=with_attention,
                target=self.bundle.config.get("diffusion", {}).get("target", "eps"),
            )
        return self._fns[key]

    def bucket_for(self, num_atoms: int) -> int:
        """Padded size N of a molecule with ``num_atoms`` atoms (smallest bucket that fits)."""
        fits = [n for n in self.sizes if n >= num_atoms]
        if not fits:
            raise SampleError(
                f"{num_atoms} atoms is more than the model's max_atoms={self.max_atoms}"
            )
        return fits[0]

    def run(self, rows: list[dict], seed: int, k: int, settings, with_attention=False) -> dict:
        """Samples a batch of featurized rows (same N); returns numpy outputs."""
        batch = features.collate(rows)
        inputs = generate.GenerateInputs(
            spectrum_tokens=batch.spectrum_tokens,
            formula_tokens=batch.formula_tokens,
            atom_types=batch.atom_types,
            atom_mask=batch.atom_mask,
            keys=generate.spectrum_keys(seed, batch.id),
        )
        out = self.generate_fn(k, settings, with_attention)(self.params, inputs)
        return {name: np.asarray(value) for name, value in out.items()} | {"batch": batch}


def plan_batches(source, runner: ModelRunner, *, num_spectra: int, batch_size: int, skip_ids):
    """Batches of source indices still to sample, as ``(padded size N, [indices])``.

    The first ``num_spectra`` molecules (all when < 0) in source order are grouped by size
    bucket into batches of at most ``batch_size`` (``input_pipeline.global_batches`` without
    dropping the remainder); molecules whose id is in ``skip_ids`` are left out first. Since
    completed chunks are whole batches of their bucket, the remaining batches are the same as
    those of an uninterrupted run.
    """
    count = len(source) if num_spectra < 0 else min(num_spectra, len(source))
    if count == 0:
        raise SampleError(f"{source!r} has no molecules to sample")
    skip = {int(i) for i in skip_ids}
    todo = [i for i in range(count) if int(source[i]["id"]) not in skip]
    num_atoms = np.asarray(source.num_atoms())[todo]
    bucket_of = input_pipeline.assign_buckets(
        num_atoms, runner.sizes, lambda j: int(source[todo[j]]["id"])
    )
    plan = input_pipeline.global_batches(np.arange(len(todo)), bucket_of, batch_size, False)
    return [(runner.sizes[b], [todo[j] for j in local]) for b, local in plan]


def _featurize(source, indices, n: int, runner: ModelRunner, batch_size: int) -> list[dict]:
    rows = [
        features.featurize(
            source[i],
            max_atoms=n,
            vocab=runner.vocab,
            levels=runner.levels,
            formula_len=runner.formula_len,
        )
        for i in indices
    ]
    return rows + [rows[0]] * (batch_size - len(rows))  # padding rows, dropped after sampling


def _attention(out: dict, m: int, z: np.ndarray, mask: np.ndarray, runner) -> sf.AttentionMaps:
    num_patches = out["batch"].spectrum_tokens.shape[1] // runner.patch_size
    return sf.AttentionMaps(
        atom_spectrum=out["atom_attention"][m][:, mask],
        edge_spectrum=out["edge_attention"][m],
        atomic_numbers=z[mask],
        num_patches=num_patches,
        patch_size=runner.patch_size,
        sample_index=0,
    )


def _write_batch(writer, source, indices, out, runner, attention_ids) -> str:
    real = len(indices)
    batch = out["batch"]
    vocab = np.asarray(runner.vocab, np.int32)
    mask = batch.atom_mask[:real]
    z = np.where(mask, vocab[batch.atom_types[:real]], 0).astype(np.int32)
    positions = out["positions"][:real]
    bad = int(np.sum(~np.all(np.isfinite(positions), axis=(2, 3))))
    if bad:
        logging.warning("%d samples in this batch have non-finite coordinates", bad)
    maps = {
        int(batch.id[m]): _attention(out, m, z[m], mask[m], runner)
        for m in range(real)
        if int(batch.id[m]) in attention_ids
    }
    return writer.write_chunk(
        ids=batch.id[:real],
        atomic_numbers=z,
        atom_mask=mask,
        positions=positions,
        reference_positions=batch.positions[:real],
        reference_smiles=[str(source[i]["smiles"]) for i in indices],
        spectrum=batch.spectrum[:real],
        attention=maps,
    )


def _check_extra(writer: sf.SamplesWriter, extra: dict) -> None:
    old = writer.manifest.get("extra", {})
    for key in ("seed", "eta", "final_mode", "batch_size"):
        if key in old and old[key] != extra[key]:
            raise SampleError(
                f"cannot resume {writer.directory}: {key} is {old[key]!r} there but "
                f"{extra[key]!r} now"
            )


def run_sampling(
    workdir: str,
    out_dir: str,
    *,
    split: str = "test",
    num_spectra: int = -1,
    samples_per_spectrum: int = 50,
    settings: generate.SamplerSettings = generate.ANCESTRAL,
    batch_size: int = 8,
    seed: int = 0,
    attention_spectra: int = 0,
    runner: ModelRunner | None = None,
) -> dict:
    """Samples (or resumes sampling) a split into ``out_dir``; returns a summary dict.

    The summary has ``spectra_written``, ``chunks_written``, ``skipped`` (already complete),
    ``seconds`` (wall time of this call), ``sampling_seconds`` (time inside the jitted
    generate calls, the first call of each shape includes compilation) and ``first_call_seconds``.
    """
    if samples_per_spectrum < 1 or batch_size < 1:
        raise SampleError(
            f"need --samples_per_spectrum >= 1 and --batch_size >= 1, got "
            f"{samples_per_spectrum}, {batch_size}"
        )
    start = time.perf_counter()
    runner = runner or ModelRunner(workdir)
    settings.check(runner.schedule)
    source = sources.get_source(runner.bundle.config.data, split)
    extra = dict(
        seed=int(seed),
        eta=float(settings.eta),
        final_mode=settings.final_mode,
        batch_size=int(batch_size),
        checkpoint_stage=runner.bundle.stage,
        checkpoint_step=runner.bundle.step,
        source=repr(source),
    )
    info = sf.RunInfo(
        workdir=runner.workdir,
        config=runner.fingerprint(),
        split=split,
        samples_per_spectrum=int(samples_per_spectrum),
        sampler=settings.name,
        steps=settings.num_steps(runner.schedule),
        spectrum_grid=spectra.MODEL_GRID,
        extra=extra,
    )
    writer = sf.SamplesWriter(out_dir, info)
    _check_extra(writer, extra)
    skipped = len(writer.completed_ids)
    count = len(source) if num_spectra < 0 else min(num_spectra, len(source))
    attention_ids = {int(source[i]["id"]) for i in range(min(attention_spectra, count))}
    plan = plan_batches(
        source,
        runner,
        num_spectra=num_spectra,
        batch_size=batch_size,
        skip_ids=writer.completed_ids,
    )
    logging.info("sample: %d batches to run (%d spectra already done)", len(plan), skipped)
    written, sampling_s, first_call_s, seen_shapes = 0, 0.0, 0.0, set()
    for number, (n, indices) in enumerate(plan):
        rows = _featurize(source, indices, n, runner, batch_size)
        t0 = time.perf_counter()
        out = runner.run(rows, seed, samples_per_spectrum, settings, bool(attention_ids))
        elapsed = time.perf_counter() - t0
        sampling_s += elapsed
        if n not in seen_shapes:
            seen_shapes.add(n)
            first_call_s += elapsed
        name = _write_batch(writer, source, indices, out, runner, attention_ids)
        written += len(indices)
        logging.info(
            "sample: %s (%d/%d batches, N=%d, %.1f s)", name, number + 1, len(plan), n, elapsed
        )
    return dict(
        out=os.path.abspath(out_dir),
        spectra_written=written,
        chunks_written=len(plan),
        skipped=skipped,
        seconds=time.perf_counter() - start,
        sampling_seconds=sampling_s,
        first_call_seconds=first_call_s,
    )


FLAGS = flags.FLAGS


def define_flags() -> None:
    """The command-line flags (defined only when run as a program, so importing is free)."""
    flags.DEFINE_string("workdir", None, "Training workdir (EMA parameters are used).")
    flags.DEFINE_string("out", None, "Output samples directory (resumed if it exists).")
    flags.DEFINE_enum("split", "test", list(sources.SPLITS), "Dataset split to sample.")
    flags.DEFINE_integer("num_spectra", -1, "First M molecules of the split (<0: all).")
    flags.DEFINE_integer("samples_per_spectrum", 50, "Samples per spectrum (k).")
    flags.DEFINE_enum("sampler", "ancestral", list(generate.SAMPLERS), "Reverse chain.")
    flags.DEFINE_integer("steps", 50, "Steps of the fast sampler (ancestral: always T).")
    flags.DEFINE_float("eta", 0.0, "Fast sampler stochasticity in [0, 1] (0: DDIM).")
    flags.DEFINE_integer("batch_size", 8, "Spectra per jitted batch (x k samples each).")
    flags.DEFINE_integer("seed", 0, "Sampling seed (keys derive from seed and spectrum id).")
    flags.DEFINE_integer(
        "attention_spectra", 0, "Save attention maps of the first A spectra of the split."
    )


def main(argv) -> None:
    del argv
    errors = (
        SampleError,
        generate.GenerateError,
        sf.SamplesFormatError,
        inference.InferenceError,
        checkpointing.CheckpointError,
        sources.SourceError,
        features.ExampleError,
    )
    try:
        if not FLAGS.workdir or not FLAGS.out:
            raise SampleError("--workdir and --out are required")
        summary = run_sampling(
            FLAGS.workdir,
            FLAGS.out,
            split=FLAGS.split,
            num_spectra=FLAGS.num_spectra,
            samples_per_spectrum=FLAGS.samples_per_spectrum,
            settings=generate.SamplerSettings(FLAGS.sampler, FLAGS.steps, FLAGS.eta),
            batch_size=FLAGS.batch_size,
            seed=FLAGS.seed,
            attention_spectra=FLAGS.attention_spectra,
        )
    except errors as e:
        print(f"sample: error: {' '.join(str(e).split())}", file=sys.stderr)
        sys.exit(2)
    print(json.dumps(summary, indent=1))


if __name__ == "__main__":
    define_flags()
    app.run(main)
