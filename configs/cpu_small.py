"""Small CPU config: the paper's architecture at widths/depths that train on a 2-core CPU.

Command (runs the three stages on the embedded QM9-IR subset)::

    python -m irgeodiff_jax.train --config=configs/cpu_small.py:stage=all --workdir=/tmp/w_cpu_small

Bounded run (used for the numbers below; ~10 min on the 2-core development machine)::

    python -m irgeodiff_jax.train --config=configs/cpu_small.py:stage=all \\
        --workdir=/tmp/w_cpu_small --config.training.num_steps=300

Same modules and losses as ``configs/qm9s.py``; only sizes differ: Transformer width 64, 4 heads,
FF 128, 2 layers everywhere (τθ encoder/decoder, atom and edge cross-attention); EGNN width 32
with 4 decoder / 4 denoiser blocks (1 encoder block as in the paper); float-patch spectrum
embedding; dropout 0.1; global batches 32 / 16 / 8; Noam warm-up 200 steps; EMA 0.99; "rbg"
PRNG (compiles dropout faster on CPU); one padded size (N = 29: every bucket costs a compile).

Measured with the bounded command above (``--config.training.num_steps=300``; embedded QM9-IR
subset, 1,890 training molecules; 2 shared CPU cores, load ≈ 4; steady state = the trainer's
``train/steps_per_sec``, averaged over each stage incl. evaluation and checkpoints): classifier
0.20 s/step, autoencoder 0.19 s/step, diffusion 0.26 s/step; first step (XLA compile) 13 s /
21 s / 31 s; the whole command 6 min 4 s. Final train losses (mean of the last 25 steps):
classifier 0.243 (BCE), autoencoder 0.257 (recon 0.012, KL 1.30, BCE 0.232), diffusion 0.179
(L_LDM 0.172, recon 0.008); validation: FG accuracy 0.908 / F1 0.699 (classifier), recon MSE
0.0058 Å² (autoencoder), L_LDM 0.102 (diffusion).
"""

import ml_collections

from configs import common, recipe

WIDTH, HEADS, FF, LAYERS = 64, 4, 128, 2
EGNN_HIDDEN, EGNN_LAYERS = 32, 4


def _attention(cfg: ml_collections.ConfigDict) -> None:
    cfg.dim, cfg.num_heads, cfg.ff_dim, cfg.num_layers = WIDTH, HEADS, FF, LAYERS


def model_config() -> ml_collections.ConfigDict:
    """``common.model_config("small")`` shrunk to the CPU sizes above."""
    model = common.model_config("small")
    enc = model.spectral_encoder
    enc.dim, enc.num_heads, enc.ff_dim = WIDTH, HEADS, FF
    enc.num_encoder_layers = enc.num_decoder_layers = LAYERS
    enc.embedding = "float_linear"
    ae, den = model.autoencoder, model.denoiser
    _attention(ae.cross_attention)
    ae.cross_attention.hidden_dim = WIDTH
    ae.hidden_dim, ae.decoder_layers = EGNN_HIDDEN, EGNN_LAYERS
    _attention(den.cross_attention)
    den.cross_attention.hidden_dim = WIDTH
    _attention(den.edge)
    den.hidden_dim, den.num_layers = EGNN_HIDDEN, EGNN_LAYERS
    return model


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    """``arg``: ``"stage=all"`` (default) | ``classifier`` | ``autoencoder`` | ``diffusion``."""
    args = common.parse_arg(arg, stage="all")
    config = ml_collections.ConfigDict()
    config.size = "cpu_small"
    config.seed = 0
    config.data = common.data_config()
    recipe.add_data_source(config.data, "embedded")
    config.model = model_config()
    recipe.add_training_sections(config, args.stage)
    for stage, batch in zip(recipe.STAGES, (32, 16, 8), strict=True):
        config.training[stage].batch_size = batch
        config.training[stage].num_epochs = 20
        config.optimizer[stage].warmup_steps = 200
        config.optimizer[stage].ema_rate = 0.99
    config.training.log_every_steps = 25
    config.training.eval_every_steps = 250
    config.training.checkpoint_every_steps = 250
    config.training.num_eval_batches = 4
    config.training.prng_impl = "rbg"
    return config
