"""QM9S config with the paper's model sizes (method.md §2–§5).

Usage (stage selects what a trainer runs; size selects the model widths, see configs/common.py):

  python -m irgeodiff_jax.models.summary --config=configs/qm9s.py
  python -m irgeodiff_jax.train --config=configs/qm9s.py:stage=autoencoder --workdir=/tmp/ae

Training sections (optimizer, training, diffusion, ...) are added by the trainer's config work;
for now this holds ``stage``, ``size``, ``data`` and ``model``.
"""

import ml_collections

from configs import common


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    """``arg``: ``"stage=autoencoder,size=base"`` style; defaults ``stage=all``, ``size=base``."""
    args = common.parse_arg(arg, stage="all", size="base")
    config = ml_collections.ConfigDict()
    config.stage = args.stage  # stored only; validated by the trainer's config sections
    config.size = args.size
    config.seed = 0
    config.data = common.data_config()
    config.model = common.model_config(args.size)
    return config
