"""Tiny config for tests and smoke runs: tiny widths, real data shapes (3200-point spectra).

Usage:

  python -m irgeodiff_jax.models.summary --config=configs/test.py
  python -m pytest -q tests/models        # tests build models from this config

A forward + backward pass of every model takes well under a second on one CPU core.
"""

import ml_collections

from configs import common


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    """``arg``: ``"stage=autoencoder"`` style; default ``stage=all``. Sizes are always ``tiny``."""
    args = common.parse_arg(arg, stage="all")
    config = ml_collections.ConfigDict()
    config.stage = args.stage  # stored only; validated by the trainer's config sections
    config.size = "tiny"
    config.seed = 0
    config.data = common.data_config()
    config.model = common.model_config("tiny")
    return config
