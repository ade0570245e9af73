"""Tiny config for tests and smoke runs: tiny widths, real data shapes (3200-point spectra).

Commands::

  python -m irgeodiff_jax.train --config=configs/test.py:stage=all --workdir=/tmp/w_test
  python -m irgeodiff_jax.summary --config=configs/test.py
  python -m pytest -q tests/models tests/training   # tests build models from this config

``stage``: ``all`` (default) | ``classifier`` | ``autoencoder`` | ``diffusion``. Trains every
stage for 20 steps (global batch 8) on the embedded QM9-IR subset; ``stage=all`` took 3 min 36 s
on the 2-core development machine under load ≈ 9 (almost all of it XLA compilation; set
``JAX_COMPILATION_CACHE_DIR`` to reuse compilations across runs). A forward +
backward pass of every model takes well under a second on one CPU core.
"""

import ml_collections

from configs import common, recipe


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    """``arg``: ``"stage=autoencoder"`` style; default ``stage=all``. Sizes are always ``tiny``."""
    args = common.parse_arg(arg, stage="all")
    config = ml_collections.ConfigDict()
    config.size = "tiny"
    config.seed = 0
    config.data = common.data_config()
    recipe.add_data_source(config.data, "embedded")
    config.model = common.model_config("tiny")
    recipe.add_training_sections(config, args.stage)
    for stage in recipe.STAGES:
        config.training[stage].batch_size = 8
        config.training[stage].num_epochs = 1
        config.optimizer[stage].warmup_steps = 10
        config.optimizer[stage].ema_rate = 0.9
    config.training.num_steps = 20
    config.training.log_every_steps = 5
    config.training.eval_every_steps = 20
    config.training.checkpoint_every_steps = 10
    config.training.num_eval_batches = 2
    config.training.prng_impl = "rbg"
    return config
