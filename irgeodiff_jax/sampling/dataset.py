"""Sample k geometries per spectrum of a dataset split into a samples directory (resumable).

``run_sampling`` restores the EMA parameters of a training workdir (``sampling/runner.py``) and
walks the first M molecules of the split in the source's order (no shuffling; with
``heavy_atoms``, the first M of those with that many non-hydrogen atoms). Molecules are
grouped into batches of B spectra of one size bucket (``config.data.buckets``, else
``max_atoms``); the last batch of a bucket is padded with copies of a real row that are dropped
afterwards. Each batch runs ``sampling.generate`` (the sampling loop is one ``lax.scan`` under
``jit``; one trace per bucket size) and is written as one chunk through
``sampling.samples_dir.SamplesWriter`` (arrays, one SDF per spectrum, attention maps of the
first A spectra of the split).

Resume: re-running into the same directory skips the spectra of every completed chunk. The PRNG
key of sample j of spectrum i depends only on (seed, id_i, j), and a molecule's padded size only
on its atom count, so a resumed run writes the same arrays as an uninterrupted one. Changing k,
the sampler, its steps, eta, spacing, the seed, the size filter or the checkpoint in a directory
already written to is an error.
"""

import os
import time

import numpy as np
from absl import logging

from irgeodiff_jax.chem import spectra
from irgeodiff_jax.data import features, sources
from irgeodiff_jax.sampling import generate
from irgeodiff_jax.sampling import samples_dir as sdir
from irgeodiff_jax.sampling.runner import ModelRunner, SampleError, plan_batches, split_indices
from irgeodiff_jax.training import checkpointing
from irgeodiff_jax.training import workdir as workdirs

INPUT_ERRORS = (
    SampleError,
    generate.GenerateError,
    sdir.SamplesFormatError,
    workdirs.InferenceError,
    checkpointing.CheckpointError,
    sources.SourceError,
    features.ExampleError,
)  # bad flags or inputs: the command line reports them in one line, exit status 2


def _featurize(source, indices, n: int, runner: ModelRunner, batch_size: int) -> list[dict]:
    rows = [
        features.featurize(source[i], max_atoms=n, **runner.data.featurize_kwargs())
        for i in indices
    ]
    return rows + [rows[0]] * (batch_size - len(rows))  # padding rows, dropped after sampling


def _attention(out: dict, m: int, z: np.ndarray, mask: np.ndarray, runner) -> sdir.AttentionMaps:
    num_patches = out["batch"].spectrum_tokens.shape[1] // runner.patch_size
    return sdir.AttentionMaps(
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
    vocab = np.asarray(runner.data.atom_types, np.int32)
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


def _check_extra(writer: sdir.SamplesWriter, extra: dict) -> None:
    old = dict(writer.manifest.get("extra", {}))
    if old:
        old.setdefault("spacing", "uniform")  # directories written before the field existed
    for key in (
        "seed",
        "eta",
        "spacing",
        "guidance",
        "guidance_interval",
        "final_mode",
        "batch_size",
        "sizes",
        "heavy_atoms",
    ):
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
    buckets=None,
    runner: ModelRunner | None = None,
    heavy_atoms: int | None = None,
) -> dict:
    """Samples (or resumes sampling) a split into ``out_dir``; returns a summary dict.

    ``buckets``: padded sizes to sample at (``ModelRunner``; None: the model config's).
    ``heavy_atoms``: sample only molecules with this many non-hydrogen atoms (None: any).

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
    runner = runner or ModelRunner(workdir, buckets)
    runner.check(settings)
    source = sources.get_source(runner.bundle.config.data, split)
    chosen = split_indices(source, num_spectra, heavy_atoms)  # nothing to sample: no directory
    extra = dict(
        seed=int(seed),
        eta=float(settings.eta),
        spacing=settings.spacing,
        guidance=float(settings.guidance),
        guidance_interval=[float(v) for v in settings.guidance_interval],
        final_mode=settings.final_mode,
        batch_size=int(batch_size),
        sizes=list(runner.sizes),
        heavy_atoms=heavy_atoms,
        checkpoint_stage=runner.bundle.stage,
        checkpoint_step=runner.bundle.step,
        source=repr(source),
    )
    info = sdir.RunInfo(
        workdir=runner.workdir,
        config=runner.fingerprint(),
        split=split,
        samples_per_spectrum=int(samples_per_spectrum),
        sampler=settings.name,
        steps=settings.num_steps(runner.schedule),
        spectrum_grid=spectra.MODEL_GRID,
        extra=extra,
    )
    writer = sdir.SamplesWriter(out_dir, info)
    _check_extra(writer, extra)
    skipped = len(writer.completed_ids)
    attention_ids = {int(source[i]["id"]) for i in chosen[: max(attention_spectra, 0)]}
    plan = plan_batches(
        source, runner, indices=chosen, batch_size=batch_size, skip_ids=writer.completed_ids
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
