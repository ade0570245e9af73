"""``configs/qm9s.py`` resolves to the paper's recipe as listed in shared/design/method.md.

The expected values below are transcribed from method.md (section in each comment), not from
the config, so a change of the config that leaves the paper's recipe fails here.
"""

from configs import qm9s

METHOD_MD = {
    # §2: spectral encoder (QM9S): 4 + 4 layers, 8 heads, width 512, FF 2048, patch 64, 100 levels.
    "model.spectral_encoder.dim": 512,
    "model.spectral_encoder.num_heads": 8,
    "model.spectral_encoder.ff_dim": 2048,
    "model.spectral_encoder.num_encoder_layers": 4,
    "model.spectral_encoder.num_decoder_layers": 4,
    "model.spectral_encoder.patch_size": 64,
    "model.spectral_encoder.spectrum_levels": 100,
    "model.spectral_encoder.embedding": "token_attention",
    "model.spectral_encoder.dropout_rate": 0.1,
    "model.spectral_encoder.num_groups": 20,
    # §3: autoencoder: z_h width 16, 4-layer cross-attention (512, 8 heads, FF 2048, head 256),
    # 1-layer encoder and 9-layer decoder EGNNs of width 256.
    "model.autoencoder.latent_h_dim": 16,
    "model.autoencoder.num_atom_types": 5,
    "model.autoencoder.cross_attention.dim": 512,
    "model.autoencoder.cross_attention.num_layers": 4,
    "model.autoencoder.cross_attention.num_heads": 8,
    "model.autoencoder.cross_attention.ff_dim": 2048,
    "model.autoencoder.cross_attention.hidden_dim": 256,
    "model.autoencoder.hidden_dim": 256,
    "model.autoencoder.encoder_layers": 1,
    "model.autoencoder.decoder_layers": 9,
    # §4: coords range 15.
    "model.autoencoder.coords_range": 15.0,
    "model.denoiser.coords_range": 15.0,
    # §5: denoiser: 9-layer EGNN of width 256; edge stream 4 layers, 8 heads, FF 2048, out 16.
    "model.denoiser.num_layers": 9,
    "model.denoiser.hidden_dim": 256,
    "model.denoiser.edge.dim": 512,
    "model.denoiser.edge.num_layers": 4,
    "model.denoiser.edge.num_heads": 8,
    "model.denoiser.edge.ff_dim": 2048,
    "model.denoiser.edge.out_dim": 16,
    "model.denoiser.cross_attention.num_layers": 4,
    "model.denoiser.self_condition": False,  # the denoiser reads only z_t, t, z_h and the spectrum
    # §6: polynomial_2, T = 1000, precision 1e-5, ε target, t ~ U{0..T}, unweighted L_LDM,
    # latents as the encoder gives them.
    "diffusion.schedule": "polynomial_2",
    "diffusion.num_steps": 1000,
    "diffusion.precision": 1e-5,
    "diffusion.target": "eps",
    "diffusion.timestep_power": 1.0,
    "diffusion.min_snr_gamma": 0.0,
    "diffusion.atom_weighting": "molecule",
    "diffusion.normalize_latents": False,
    "diffusion.fixed_latents": False,
    "diffusion.frozen_autoencoder": False,
    "diffusion.condition_dropout": 0.0,  # no classifier-free guidance in the paper
    # §3: L_AE = recon + 0.01 · ½|mu_x|², no extra latent noise (z_x = mu_x + sigma_0 eps).
    "loss.kl_weight": 0.01,
    "loss.latent_noise": 0.0,
    # §7: batches 256 / 128 / 64, epochs 100 / 300 / 1000, base LR 0.8 / 0.1 / 0.2, warm-up
    # 1000 / 3000 / 3000, EMA 0.999, classifier Adam (0.9, 0.98) eps 1e-9, Noam d = 512,
    # adaptive clipping.
    "training.classifier.batch_size": 256,
    "training.autoencoder.batch_size": 128,
    "training.diffusion.batch_size": 64,
    "training.classifier.num_epochs": 100,
    "training.autoencoder.num_epochs": 300,
    "training.diffusion.num_epochs": 1000,
    "optimizer.classifier.learning_rate": 0.8,
    "optimizer.autoencoder.learning_rate": 0.1,
    "optimizer.diffusion.learning_rate": 0.2,
    "optimizer.classifier.warmup_steps": 1000,
    "optimizer.autoencoder.warmup_steps": 3000,
    "optimizer.diffusion.warmup_steps": 3000,
    "optimizer.classifier.b2": 0.98,
    "optimizer.classifier.eps": 1e-9,
    "optimizer.classifier.model_dim": 512,
    "optimizer.diffusion.model_dim": 512,
    "optimizer.classifier.ema_rate": 0.999,
    "optimizer.autoencoder.ema_rate": 0.999,
    "optimizer.diffusion.ema_rate": 0.999,
    "optimizer.autoencoder.grad_clip": "adaptive",
    "optimizer.diffusion.grad_clip": "adaptive",
    "optimizer.classifier.schedule": "noam",
    "optimizer.autoencoder.schedule": "noam",
    "optimizer.diffusion.schedule": "noam",
    # Not the paper's, but must stay off in the paper config: the training-time sample check.
    "training.sample_check.every_steps": 0,
}


def _get(config, dotted: str):
    node = config
    for part in dotted.split("."):
        node = node[part]
    return node


def test_paper_config_matches_method_md():
    config = qm9s.get_config("stage=all")
    mismatches = {
        key: (_get(config, key), expected)
        for key, expected in METHOD_MD.items()
        if _get(config, key) != expected
    }
    assert not mismatches, f"config value vs method.md: {mismatches}"
