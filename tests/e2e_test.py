"""End to end through the command-line tools: train (configs/test.py, a few steps per stage) →
sample (fast sampler) → evaluate (no oracle); every report file exists, metrics are in range."""

import csv
import json
import math
import os

from irgeodiff_jax.sampling import samples_dir as sdir
from tests.helpers.cli import run_cli

NUM_SPECTRA, K = 3, 3
FRACTIONS = ("validity", "stability", "connectivity", "mol_acc")


def _stage_losses(workdir: str, stage: str) -> list[float]:
    with open(os.path.join(workdir, stage, "metrics.jsonl")) as f:
        rows = [json.loads(line) for line in f if line.strip()]
    return [r["train/loss"] for r in rows if "train/loss" in r]


def test_train_sample_evaluate(trained_workdir, tmp_path):
    workdir = trained_workdir["workdir"]
    for stage in ("classifier", "autoencoder", "diffusion"):
        assert os.listdir(os.path.join(workdir, stage, "checkpoints")), stage
        losses = _stage_losses(workdir, stage)
        assert losses and all(math.isfinite(v) for v in losses), stage

    samples, report = str(tmp_path / "samples"), str(tmp_path / "report")
    proc = run_cli(
        "irgeodiff_jax.sample",
        f"--workdir={workdir}",
        f"--out={samples}",
        "--split=test",
        f"--num_spectra={NUM_SPECTRA}",
        f"--samples_per_spectrum={K}",
        "--sampler=fast",
        "--steps=4",
        "--batch_size=2",
        "--attention_spectra=1",
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads(proc.stdout)
    assert summary["spectra_written"] == NUM_SPECTRA and summary["chunks_written"] == 2
    manifest = sdir.read_manifest(samples)
    assert (manifest["sampler"], manifest["steps"], manifest["samples_per_spectrum"]) == (
        "fast",
        4,
        K,
    )
    records = list(sdir.read_samples(samples))
    assert len(records) == NUM_SPECTRA
    for r in records:
        assert r.positions.shape == (K, r.atomic_numbers.size, 3)
        assert os.path.exists(sdir.sdf_path(samples, r.id))
    with_maps = [r.id for r in records if sdir.read_attention(samples, r.id) is not None]
    assert len(with_maps) == 1

    proc = run_cli(
        "irgeodiff_jax.evaluate",
        f"--samples={samples}",
        f"--out={report}",
        "--workers=1",
        "--ks=1,2,3",
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    expected = [
        "metrics.json",
        "per_spectrum.csv",
        "per_sample.jsonl",
        "spectra_overlay.png",
        "mol_acc_vs_k.png",
        f"attention_{with_maps[0]}.png",
    ]
    for name in expected:
        path = os.path.join(report, name)
        assert os.path.getsize(path) > 0, name
    with open(os.path.join(report, "metrics.json")) as f:
        metrics = json.load(f)
    assert metrics["num_spectra"] == NUM_SPECTRA and metrics["samples_per_spectrum"] == K
    assert (metrics["sampler"], metrics["steps"], metrics["eta"]) == ("fast", 4, 0.0)
    for key in FRACTIONS:
        assert 0.0 <= metrics[key] <= 1.0, key
    for key in ("sim_g", "max_sim_g"):
        assert metrics[key] is None or 0.0 <= metrics[key] <= 1.0, key
    curve = [metrics["mol_acc_at_k"][str(j)] for j in (1, 2, 3)]
    assert all(0.0 <= v <= 1.0 for v in curve) and curve == sorted(curve)
    assert curve[-1] == metrics["mol_acc"]
    with open(os.path.join(report, "per_spectrum.csv")) as f:
        assert len(list(csv.DictReader(f))) == NUM_SPECTRA
    with open(os.path.join(report, "per_sample.jsonl")) as f:
        assert sum(1 for line in f if line.strip()) == NUM_SPECTRA * K
