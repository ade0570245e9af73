"""QMe14S config: 6-layer τθ, autoencoder and denoiser fine-tuned from a QM9S run (paper §3.1).

Commands (``$QM9S_WORKDIR``: a finished ``configs/qm9s.py:stage=all`` run)::

  python -m irgeodiff_jax.train --config=configs/qme14s.py:stage=all --workdir=$WORKDIR \\
      --config.init_from=$QM9S_WORKDIR --config.data.data_dir=$TFDS_DATA_DIR

Differences from ``configs/qm9s.py``: 14 elements (``QME14S_ATOM_TYPES``), 26
functional groups, formula vocabulary 39, τθ with 6 encoder and 6 decoder layers, autoencoder
150 epochs and diffusion 250 epochs. ``init_from`` copies the QM9S run's final EMA parameters
into the autoencoder and denoiser wherever path and shape match (the atom-type embedding has a
different vocabulary and stays freshly initialised; the log lists the counts); τθ is trained
from scratch (its depth differs). The paper trains τθ on QM9S + QMe14S; here it uses the
dataset in ``data``. ``data.max_atoms`` = 40 is a placeholder: set it to the built dataset's
largest molecule (``python -m data_pipeline.describe``); the loader names any molecule above it.
"""

import ml_collections

from configs import common, recipe

FG_GROUPS, FORMULA_VOCAB, TAU_LAYERS = 26, 39, 6
# Atom types H B C N O F Al Si P S Cl As Se Br: ``irgeodiff_jax.chem.elements.QME14S_ELEMENTS``
# (configs import no package code; tests/configs/qme14s_test.py checks that the two agree).
QME14S_ATOM_TYPES = (1, 5, 6, 7, 8, 9, 13, 14, 15, 16, 17, 33, 34, 35)


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    """``arg``: ``"stage=all,size=base"`` style; defaults ``stage=all``, ``size=base``."""
    args = common.parse_arg(arg, stage="all", size="base")
    config = ml_collections.ConfigDict()
    config.size = args.size
    config.seed = 0
    config.data = common.data_config()
    config.data.atom_types = QME14S_ATOM_TYPES
    config.data.num_fg = FG_GROUPS
    config.data.max_atoms = 40
    config.data.fg_scheme = "qme14s"
    recipe.add_data_source(config.data, "qme14s")
    config.model = common.model_config(args.size)
    enc = config.model.spectral_encoder
    enc.num_groups, enc.formula_vocab = FG_GROUPS, FORMULA_VOCAB
    enc.num_encoder_layers = enc.num_decoder_layers = TAU_LAYERS
    config.model.autoencoder.num_atom_types = len(QME14S_ATOM_TYPES)
    recipe.add_training_sections(config, args.stage)
    config.training.autoencoder.num_epochs = 150
    config.training.diffusion.num_epochs = 250
    config.init_from_modules = ("autoencoder", "denoiser")
    return config
