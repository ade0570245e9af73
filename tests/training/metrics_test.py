import os

import numpy as np

from irgeodiff_jax.training import metrics


def test_jsonl_and_tensorboard_written(tmp_path):
    w = metrics.MetricWriter(str(tmp_path))
    w.write(1, {"train/loss": np.float32(0.5), "train/lr": 1e-3}, stage="classifier")
    w.write(2, {"train/loss": 0.25}, stage="classifier")
    w.close()
    recs = metrics.read_jsonl(str(tmp_path / "metrics.jsonl"))
    assert recs == [
        {"step": 1, "stage": "classifier", "train/loss": 0.5, "train/lr": 1e-3},
        {"step": 2, "stage": "classifier", "train/loss": 0.25},
    ]
    events = os.listdir(tmp_path / "tb")
    assert any(f.startswith("events.out.tfevents") for f in events)


def test_disabled_writer_writes_nothing(tmp_path):
    w = metrics.MetricWriter(str(tmp_path / "w"), enabled=False)
    w.write(1, {"x": 1.0})
    assert not (tmp_path / "w").exists()
