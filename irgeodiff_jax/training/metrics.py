"""Metric writers (process 0 only): JSON lines and TensorBoard event files via tensorboardX.

Every record is ``{"step": int, "stage": str, <prefix/name>: float, ...}``. No TensorFlow.
"""

import json
import math
import os

import numpy as np


class MetricWriter:
    """Appends scalars to ``workdir/metrics.jsonl`` and TensorBoard events in ``workdir/tb``."""

    def __init__(self, workdir: str, *, enabled: bool = True, tensorboard: bool = True):
        self.enabled = enabled
        self._tb = None
        self._path = os.path.join(workdir, "metrics.jsonl")
        if not enabled:
            return
        os.makedirs(workdir, exist_ok=True)
        if tensorboard:
            from tensorboardX import SummaryWriter

            self._tb = SummaryWriter(os.path.join(workdir, "tb"))

    def write(self, step: int, scalars: dict, stage: str = "") -> None:
        if not self.enabled:
            return
        record = {"step": int(step), "stage": stage}
        for k, v in scalars.items():
            record[k] = float(np.asarray(v))
        with open(self._path, "a") as f:
            f.write(json.dumps(record) + "\n")
            f.flush()
        if self._tb is not None:
            for k, v in record.items():
                if k not in ("step", "stage") and math.isfinite(v):
                    self._tb.add_scalar(f"{stage}/{k}" if stage else k, v, int(step))
            self._tb.flush()

    def close(self) -> None:
        if self._tb is not None:
            self._tb.close()
            self._tb = None


def read_jsonl(path: str) -> list[dict]:
    """All records of a metrics.jsonl file (used by tests and reports)."""
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]
