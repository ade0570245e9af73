"""Sample check while the diffusion trains: do samples of validation spectra recover molecules?

Every ``config.training.sample_check.every_steps`` diffusion steps (at an evaluation point), the
trainer hands the EMA parameters to ``SampleCheck.after_eval``. It samples ``samples`` structures
for each of the first ``num_spectra`` validation spectra (fast sampler, ``sampler_steps``) and
sends them to the scoring side-process (``chem.worker.ScoringPool``, one worker) from a
background thread, so the trainer never waits on RDKit. Results of a finished check are written
at the next evaluation point (or when the stage ends) as ``sample_check/validity``,
``sample_check/stability``, ``sample_check/mol_acc`` (any of the samples matches) and
``sample_check/closest_pair`` (median over samples of the closest interatomic distance, Å),
at the step whose parameters were sampled. Like the stability checks of EDM-style trainers.
"""

from __future__ import annotations

import threading

import jax
import numpy as np
from absl import logging

from irgeodiff_jax.chem import score_job, worker
from irgeodiff_jax.data import features, sources
from irgeodiff_jax.data.settings import DataSettings
from irgeodiff_jax.sampling import generate

PREFIX = "sample_check/"


def settings_of(config) -> dict:
    """``config.training.sample_check`` with defaults (``every_steps`` 0 = off)."""
    cfg = config.training.get("sample_check", {})
    return {
        "every_steps": int(cfg.get("every_steps", 0)),
        "num_spectra": int(cfg.get("num_spectra", 16)),
        "samples": int(cfg.get("samples", 4)),
        "sampler_steps": int(cfg.get("sampler_steps", 50)),
        "timeout_s": float(cfg.get("timeout_s", 60.0)),
    }


def validation_batch(config, num_spectra: int):
    """The first ``num_spectra`` validation molecules as a padded batch, and their SMILES."""
    data = DataSettings.from_config(config.data)
    source = sources.get_source(config.data, "validation")
    examples = [source[i] for i in range(min(num_spectra, len(source)))]
    if not examples:
        raise ValueError("sample check: the validation split is empty")
    rows = [
        features.featurize(ex, max_atoms=data.max_atoms, **data.featurize_kwargs())
        for ex in examples
    ]
    return features.collate(rows), [str(ex["smiles"]) for ex in examples]


def summarize(results: list[dict], positions: np.ndarray, mask: np.ndarray) -> dict:
    """Validity, stability, any-match accuracy per spectrum and median closest pair."""
    by_spectrum: dict[int, list[dict]] = {}
    for r in results:
        by_spectrum.setdefault(int(r["spectrum_id"]), []).append(r)
    closest = []
    for b in range(positions.shape[0]):
        for x in positions[b]:
            real = x[mask[b]]
            d = np.linalg.norm(real[:, None] - real[None], axis=-1) + np.eye(len(real)) * 1e9
            closest.append(float(d.min()) if len(real) > 1 else np.nan)
    return {
        f"{PREFIX}validity": float(np.mean([bool(r["valid"]) for r in results])),
        f"{PREFIX}stability": float(np.mean([bool(r["stable"]) for r in results])),
        f"{PREFIX}mol_acc": float(
            np.mean([any(bool(r["match"]) for r in rs) for rs in by_spectrum.values()])
        ),
        f"{PREFIX}closest_pair": float(np.nanmedian(closest)),
    }


class SampleCheck:
    """Trainer hook (``after_eval``, ``end_stage``) running the sample check in the background."""

    def __init__(self, config, models, schedule):
        self.settings = s = settings_of(config)
        self.batch, self.smiles = validation_batch(config, s["num_spectra"])
        self.vocab = np.asarray(DataSettings.from_config(config.data).atom_types)
        sampler = generate.SamplerSettings("fast", steps=s["sampler_steps"], eta=0.0)
        self.fn = generate.make_generate_fn(
            models, schedule, samples_per_spectrum=s["samples"], settings=sampler,
            target=config.diffusion.get("target", "eps"),
        )  # fmt: skip
        self._pool, self._thread, self._done = None, None, []

    def _jobs(self, positions: np.ndarray) -> list[score_job.ScoreJob]:
        jobs = []
        for b, smiles in enumerate(self.smiles):
            real = self.batch.atom_mask[b]
            z = self.vocab[self.batch.atom_types[b][real]]
            for j in range(positions.shape[1]):
                jobs.append(score_job.ScoreJob(b, j, z, positions[b, j][real], smiles))
        return jobs

    def _score(self, step: int, positions: np.ndarray) -> None:
        try:
            if self._pool is None:
                self._pool = worker.ScoringPool(1, self.settings["timeout_s"])
            results = list(self._pool.imap_unordered(self._jobs(positions)))
            self._done.append((step, summarize(results, positions, self.batch.atom_mask)))
        except Exception as e:  # noqa: BLE001  (a failed check must never stop training)
            logging.warning("sample check at step %d failed: %s", step, e)

    def _flush(self, writer, stage: str, wait: bool) -> None:
        if wait and self._thread is not None:
            self._thread.join()
        while self._done:
            step, values = self._done.pop(0)
            writer.write(step, values, stage=stage)
            logging.info("stage %s step %d sample check: %s", stage, step, values)

    def after_eval(self, stage: str, step: int, params, writer, *, final: bool) -> None:
        """Writes finished checks (under their own step), then starts a check at multiples of
        ``every_steps`` and at the stage's final step."""
        every = self.settings["every_steps"]
        if stage != "diffusion" or every <= 0:
            return
        self._flush(writer, stage, wait=False)
        if step % every and not final:
            return
        self._flush(writer, stage, wait=True)  # at most one check in flight
        inputs = generate.GenerateInputs(
            self.batch.spectrum_tokens, self.batch.formula_tokens, self.batch.atom_types,
            self.batch.atom_mask, generate.spectrum_keys(step, self.batch.id),
        )  # fmt: skip
        positions = np.asarray(jax.device_get(self.fn(params, inputs)["positions"]))
        self._thread = threading.Thread(target=self._score, args=(step, positions), daemon=True)
        self._thread.start()

    def end_stage(self, stage: str, writer) -> None:
        self._flush(writer, stage, wait=True)
        if self._pool is not None:
            self._pool.close()
            self._pool = None
