"""The learning recipes ``recovery_recipes.py`` compares (data only: no flags, so tests import it).

Each recipe is a pair of ``--config.*`` override lists (without the prefix) for the autoencoder
stage and the diffusion stage, applied to ``configs/cpu_small.py``.
"""

# The paper's diffusion recipe at cpu_small sizes: ``configs/cpu_small.recovery_recipe`` undone.
PAPER_DIFFUSION = (
    "diffusion.normalize_latents=False",
    "diffusion.fixed_latents=False",
    "diffusion.target=eps",
    "optimizer.diffusion.schedule=noam",
    "optimizer.diffusion.learning_rate=0.2",
    "model.denoiser.dropout_rate=0.1",
    "model.denoiser.hidden_dim=32",
    "training.diffusion.batch_size=8",
)
# name -> (autoencoder-stage overrides, diffusion-stage overrides), relative to the config file
# (``configs/cpu_small.py``, whose default is its ``recovery_recipe``).
RECIPES = {
    "paper": (("loss.latent_noise=0.0",), PAPER_DIFFUSION),
    "cpu_small": ((), ()),
    "frozen_ae": ((), ("diffusion.frozen_autoencoder=True",)),
    "frozen_ae_lr2e-3": (
        (),
        ("diffusion.frozen_autoencoder=True", "optimizer.diffusion.learning_rate=0.002"),
    ),
    "min_snr": ((), ("diffusion.min_snr_gamma=5.0",)),
    "low_noise": ((), ("diffusion.timestep_power=2.0",)),
    "eps_target": ((), ("diffusion.target=eps",)),
}
