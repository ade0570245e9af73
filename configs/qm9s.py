"""QM9S config with the paper's model sizes and training recipe (method.md §2–§7).

Commands (``$WORKDIR`` timestamped by the caller; re-running a command resumes it)::

  python -m irgeodiff_jax.train --config=configs/qm9s.py:stage=all --workdir=$WORKDIR \\
      --config.data.data_dir=$TFDS_DATA_DIR
  python -m irgeodiff_jax.train --config=configs/qm9s.py:stage=autoencoder --workdir=$WORKDIR
  python -m irgeodiff_jax.summary --config=configs/qm9s.py

``stage``: ``all`` (default) | ``classifier`` | ``autoencoder`` | ``diffusion``; ``size``: ``base``
(default, the paper) | ``small`` | ``tiny`` (see configs/common.py). Data: the built QM9S tfds
dataset in ``data.data_dir``; without it the embedded QM9-IR subset is used (and logged).

Recipe (paper §2.3, App. B.3; reference-notes §1.3–§1.7): global batch 256 / 128 / 64, Noam base
LR 0.8 / 0.1 / 0.2 with warm-up 1,000 / 3,000 / 3,000, 100 / 300 / 1,000 epochs, EMA 0.999,
adaptive gradient clipping; classifier Adam β (0.9, 0.98), ε 1e-9; AdamW for the autoencoder;
AdamW-AMSGrad with weight decay 1e-12 for diffusion. The paper reports ~3.5 h (classifier) and
~20 h (autoencoder) on its GPU; this config has not been run at full scale here.
"""

import ml_collections

from configs import common, recipe


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    """``arg``: ``"stage=autoencoder,size=base"`` style; defaults ``stage=all``, ``size=base``."""
    args = common.parse_arg(arg, stage="all", size="base")
    config = ml_collections.ConfigDict()
    config.size = args.size
    config.seed = 0
    config.data = common.data_config()
    recipe.add_data_source(config.data, "qm9s")
    config.model = common.model_config(args.size)
    recipe.add_training_sections(config, args.stage)
    return config
