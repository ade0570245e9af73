"""A trained model ready to sample (``ModelRunner``) and the batch plan of a dataset split.

``ModelRunner`` restores the EMA parameters of a training workdir (``training/workdirs.py``), or
of the model shipped with the package when no workdir is given (``training/shipped.py``), and
runs ``sampling.generate`` on featurized rows of one padded size; ``plan_batches`` groups the
molecules of a source into batches of one padded size (the runner's ``sizes``: ``buckets`` given
to it, else ``config.data.buckets``, plus ``max_atoms``). Used by ``sampling/dataset.py`` (a
whole split) and ``sampling/prediction.py`` (one user spectrum).
"""

import hashlib
import json
import os

import jax
import numpy as np

from irgeodiff_jax.chem import elements
from irgeodiff_jax.data import features, input_pipeline
from irgeodiff_jax.data.settings import DataSettings, bucket_sizes
from irgeodiff_jax.diffusion import schedules
from irgeodiff_jax.sampling import generate
from irgeodiff_jax.training import shipped
from irgeodiff_jax.training import workdir as workdirs


class SampleError(ValueError):
    """Bad arguments to ``sample`` (one-line reason)."""


class ModelRunner:
    """A trained model ready to sample: modules, EMA parameters, schedule and data settings.

    Attributes:
        bundle: the ``InferenceBundle`` (config, modules, params, stage, step).
        schedule: diffusion noise schedule of the config.
        data: the config's ``DataSettings`` (atom types, padded sizes, token lengths).
        sizes: padded sizes the sampler uses, smallest first (``max_atoms`` the largest).
    """

    def __init__(self, workdir: str | None = None, buckets=None):
        """``workdir``: a training workdir; None: the model shipped in the package.

        ``buckets``: padded sizes below ``max_atoms`` to sample at (None: the config's
        ``data.buckets``). The networks are invariant to padding and the noise of the real atoms
        does not depend on the padded size, so any sizes give the same samples up to float
        rounding; smaller sizes cost less.
        """
        if workdir is None:
            workdir = shipped.SHIPPED_DIR
            self.bundle = shipped.load_model(workdir)
        else:
            self.bundle = workdirs.load_for_inference(workdir)
        self.bundle.require("denoiser")
        config = self.bundle.config
        self.workdir = os.path.abspath(workdir)
        self.schedule = schedules.schedule_from_config(config.diffusion)
        self.params = jax.device_put(self.bundle.params)
        self.data = DataSettings.from_config(config.data)
        try:
            self.sizes = self.data.sizes if buckets is None else bucket_sizes(
                buckets, self.data.max_atoms)  # fmt: skip
        except ValueError as e:
            raise SampleError(str(e)) from None
        self.patch_size = int(config.model.spectral_encoder.patch_size)
        self._fns = {}

    def fingerprint(self) -> str:
        """Identifies the model: stage, checkpoint step and a hash of its config."""
        text = json.dumps(self.bundle.config.to_dict(), sort_keys=True, default=str)
        digest = hashlib.sha256(text.encode()).hexdigest()[:16]
        return f"{self.bundle.stage}@{self.bundle.step} config_sha256={digest}"

    def check(self, settings: generate.SamplerSettings) -> None:
        """Raises (one line) if ``settings`` cannot sample this model: bad sampler settings, or
        guidance (``w != 1``) for a model trained without condition dropout, which never learnt
        the unconditional prediction that guidance extrapolates from."""
        settings.check(self.schedule)
        dropout = self.bundle.config.diffusion.get("condition_dropout", 0.0)
        if settings.guidance != 1.0 and not dropout > 0:
            raise SampleError(
                f"--guidance={settings.guidance:g} needs a model trained with "
                f"diffusion.condition_dropout > 0 (this one: {dropout:g}); use --guidance=1"
            )

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


def split_indices(source, num_spectra: int, heavy_atoms: int | None = None) -> list[int]:
    """Source indices to sample: the first ``num_spectra`` (all when < 0) in source order, of the
    molecules with ``heavy_atoms`` non-hydrogen atoms when it is given (recovery depends
    strongly on size, so a split's accuracy is easier to read one size at a time). None is a
    ``SampleError``."""
    indices = range(len(source))
    if heavy_atoms is not None:
        indices = [
            i
            for i in indices
            if elements.heavy_atom_count(source[i]["atomic_numbers"]) == heavy_atoms
        ]
    indices = list(indices) if num_spectra < 0 else list(indices)[:num_spectra]
    if not indices:
        which = "" if heavy_atoms is None else f" with {heavy_atoms} heavy atoms"
        raise SampleError(f"{source!r} has no molecules{which} to sample")
    return indices


def plan_batches(source, runner: ModelRunner, *, indices, batch_size: int, skip_ids):
    """Batches of source indices still to sample, as ``(padded size N, [indices])``.

    The molecules at ``indices`` (``split_indices``) are cut into batches of at most
    ``batch_size`` in size-bucket order (``size_batches``); molecules whose id is in
    ``skip_ids`` are left out first. Since chunks are written in plan order, the completed ones
    are a prefix of the plan and the remaining batches are the same as those of an
    uninterrupted run.
    """
    skip = {int(i) for i in skip_ids}
    todo = [i for i in indices if int(source[i]["id"]) not in skip]
    num_atoms = np.asarray(source.num_atoms())[todo]
    plan = size_batches(num_atoms, runner.sizes, batch_size, lambda j: int(source[todo[j]]["id"]))
    return [(n, [todo[j] for j in local]) for n, local in plan]


def size_batches(num_atoms, sizes, batch_size: int, id_of) -> list[tuple[int, list[int]]]:
    """Positions ``0..len(num_atoms)-1`` as batches of ``batch_size`` (none dropped), each
    ``(padded size N, [positions])``; ``id_of(position)`` names a molecule too large for every
    size.

    Molecules are taken in size-bucket order (stable: source order within a bucket) and cut
    into consecutive batches, each padded to the smallest size that holds its largest molecule.
    So a bucket's last few molecules share a batch with the next bucket's first (padded a size
    up) instead of filling a batch of their own, and only the final batch is part-filled.
    Dropping a prefix of the plan (completed chunks) leaves the rest of the plan unchanged.
    """
    bucket_of = input_pipeline.assign_buckets(np.asarray(num_atoms), sizes, id_of)
    order = np.argsort(bucket_of, kind="stable")
    chunks = (order[s : s + batch_size] for s in range(0, len(order), batch_size))
    return [(sizes[int(bucket_of[c[-1]])], [int(j) for j in c]) for c in chunks]
