"""Overfit: ``configs/test.py``-sized models (dropout off) trained on 32 molecules drive every
stage's training loss down (mean of the last 20 logged steps vs the first 20).

Measured on the 2-core development machine (``python -m pytest -m slow
tests/training/overfit_test.py``): classifier ×18.7, autoencoder ×29.5,
diffusion ×2.9 lower (297 s in all); the asserted factors below leave a margin for other seeds.
"""

import os

import numpy as np
import pytest

from irgeodiff_jax.training import metrics, trainer
from tests.helpers.datasets import build_embedded, tiny_config

STEPS = {"classifier": 200, "autoencoder": 300, "diffusion": 300}
MIN_FACTOR = {"classifier": 6.0, "autoencoder": 10.0, "diffusion": 2.0}
WINDOW = 20


def _losses(workdir: str, stage: str) -> np.ndarray:
    rows = metrics.read_jsonl(os.path.join(workdir, stage, "metrics.jsonl"))
    return np.array([r["train/loss"] for r in rows if "train/loss" in r])


@pytest.mark.slow
def test_every_stage_overfits_32_molecules(tmp_path):
    emb = build_embedded(str(tmp_path / "data"), num=36, num_test=1, seed=11)
    config = tiny_config("all", emb, log_every_steps=1, eval_every_steps=10_000)
    config.training.checkpoint_every_steps = 10_000
    for group in (config.model.spectral_encoder, config.model.autoencoder, config.model.denoiser):
        group.dropout_rate = 0.0
    for stage, steps in STEPS.items():
        config.training[stage].num_steps = steps
        config.optimizer[stage].warmup_steps = 20
    config.optimizer.classifier.learning_rate = 0.2
    config.optimizer.autoencoder.learning_rate = 0.2
    config.optimizer.diffusion.learning_rate = 0.2
    workdir = str(tmp_path / "w")
    results = trainer.train_and_evaluate(config, workdir)
    assert 30 <= trainer.setup_data(config, "classifier", 8).batches_per_epoch * 8 <= 34
    factors = {}
    for stage in STEPS:
        losses = _losses(workdir, stage)
        assert len(losses) == STEPS[stage] and np.all(np.isfinite(losses))
        factors[stage] = losses[:WINDOW].mean() / losses[-WINDOW:].mean()
        assert results[stage].final_step == STEPS[stage]
    print("overfit loss factors:", {k: round(float(v), 2) for k, v in factors.items()})
    for stage, factor in factors.items():
        assert factor >= MIN_FACTOR[stage], (stage, factors)
