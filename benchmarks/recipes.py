"""The learning recipes ``recovery_recipes.py`` compares, and the helpers that run the trainer for
it and for ``memorize.py``. No flags are defined here, so both entry points and the tests import it.

Each recipe is a pair of ``--config.*`` override lists (without the prefix) for the autoencoder
stage and the diffusion stage, applied to ``configs/cpu_small.py``.
"""

import subprocess
import sys
import time

from absl import app

STAGES = ("classifier", "autoencoder", "diffusion")

# ``configs/cpu_small.recovery_recipe`` before it took the tolerant decoder, the 2e-3 peak rate and
# self-conditioning (2026-12-07; the recipe the previously shipped model was trained with): every
# recipe below that predates that puts these back first, so that its name keeps its meaning.
PREVIOUS_AE = ("loss.latent_noise=0.05", "model.autoencoder.decoder_layers=4")
PREVIOUS_DIFFUSION = (
    "optimizer.diffusion.learning_rate=0.001",
    "model.denoiser.self_condition=False",
)
# The earlier recipe before it froze the autoencoder in the diffusion stage and took the cosine
# rate (memorisation run v7; the ``cpu_small_constant`` row of the recipe table).
CONSTANT_RATE = (
    "diffusion.frozen_autoencoder=False",
    "optimizer.diffusion.schedule=warmup_constant",
)
# ``configs/cpu_small.recovery_recipe``'s frozen autoencoder and cosine rate (the
# ``frozen_ae_cosine`` recipe, written out so that its overrides show it).
FROZEN_AE_COSINE = (
    "diffusion.frozen_autoencoder=True",
    "optimizer.diffusion.schedule=warmup_cosine",
)
# The autoencoder stage of ``tolerant_decoder`` and ``tolerant_decoder_unguided``: a decoder of
# 8 EGNN blocks trained at latent noise 0.3 (memorisation runs v19-v22).
TOLERANT_DECODER = ("loss.latent_noise=0.3", "model.autoencoder.decoder_layers=8")
# Twice the earlier peak diffusion rate (runs v11 on).
PEAK_RATE_2E3 = "optimizer.diffusion.learning_rate=0.002"
# Their diffusion stage's common part: ``frozen_ae_cosine`` at peak rate 2e-3 (run v11).
FROZEN_AE_COSINE_2E3 = (*FROZEN_AE_COSINE, PEAK_RATE_2E3)
SELF_CONDITION = "model.denoiser.self_condition=True"
# The paper's diffusion recipe at cpu_small sizes: ``configs/cpu_small.recovery_recipe`` undone.
PAPER_DIFFUSION = (
    "diffusion.normalize_latents=False",
    "diffusion.fixed_latents=False",
    "diffusion.frozen_autoencoder=False",
    "diffusion.target=eps",
    "optimizer.diffusion.schedule=noam",
    "optimizer.diffusion.learning_rate=0.2",
    "model.denoiser.dropout_rate=0.1",
    "model.denoiser.hidden_dim=32",
    "model.denoiser.self_condition=False",
    "training.diffusion.batch_size=8",
)


def _previous(diffusion: tuple[str, ...]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """A recipe written against the earlier ``cpu_small`` default: that default put back, then
    ``diffusion``; a field that ``diffusion`` sets is set once, to its value."""
    fields = {item.split("=", 1)[0] for item in diffusion}
    kept = tuple(item for item in PREVIOUS_DIFFUSION if item.split("=", 1)[0] not in fields)
    return PREVIOUS_AE, (*kept, *diffusion)


# name -> (autoencoder-stage overrides, diffusion-stage overrides), relative to the config file
# (``configs/cpu_small.py``, whose default is its ``recovery_recipe``).
RECIPES = {
    "paper": (("loss.latent_noise=0.0", PREVIOUS_AE[1]), PAPER_DIFFUSION),
    # The config as it is: ``tolerant_decoder_unguided`` since 2026-12-07.
    "cpu_small": ((), ()),
    "cpu_small_constant": _previous(CONSTANT_RATE),
    "frozen_ae": _previous(("diffusion.frozen_autoencoder=True", CONSTANT_RATE[1])),
    "frozen_ae_lr2e-3": _previous(
        ("diffusion.frozen_autoencoder=True", CONSTANT_RATE[1], PEAK_RATE_2E3)
    ),
    # ``configs/cpu_small.py``'s default from 2026-12-05 to 2026-12-07 (the model shipped then).
    "frozen_ae_cosine": _previous(FROZEN_AE_COSINE),
    # Memorisation run v22 (``benchmarks/README.md``): a decoder of 8 EGNN blocks trained at
    # latent noise 0.3, so that it tolerates the diffusion's remaining error; peak rate 2e-3;
    # condition dropout 0.1 for classifier-free guidance (the sampler's ``--guidance``);
    # self-conditioning.
    "tolerant_decoder": (
        TOLERANT_DECODER,
        (*FROZEN_AE_COSINE_2E3, "diffusion.condition_dropout=0.1", SELF_CONDITION),
    ),
    # Memorisation run v27, the ``memorize`` default and, since 2026-12-07, ``cpu_small``'s
    # (chosen on the validation split for the shipped model): ``tolerant_decoder`` without
    # condition dropout (the config's 0), for sampling without guidance (on v25's and v26's
    # models, weights 1.5-3 gave no more valid samples than none, at two denoiser calls a step;
    # on held-out validation spectra weights 2-3 cost 5-11 points of validity and bought no
    # graph similarity or identity: the README's guidance row).
    "tolerant_decoder_unguided": (
        TOLERANT_DECODER,
        (*FROZEN_AE_COSINE_2E3, SELF_CONDITION),
    ),
    "min_snr": _previous((*CONSTANT_RATE, "diffusion.min_snr_gamma=5.0")),
    "low_noise": _previous((*CONSTANT_RATE, "diffusion.timestep_power=2.0")),
    "eps_target": _previous((*CONSTANT_RATE, "diffusion.target=eps")),
}


def budget_flags(steps: list[str]) -> list[str]:
    """``--config.training.<stage>.num_steps=n`` for the three stages' budgets."""
    if len(steps) != 3:
        raise app.UsageError("--steps takes three budgets: classifier,autoencoder,diffusion")
    return [f"--config.training.{s}.num_steps={int(n)}" for s, n in zip(STAGES, steps, strict=True)]


def recipe_flags(name: str) -> list[str]:
    """``--config.*`` flags of a recipe: its autoencoder- and diffusion-stage overrides (the
    trainer runs every stage in one command, and each field acts only in its own stage)."""
    ae, diffusion = RECIPES[name]
    return [f"--config.{item}" for item in (*ae, *diffusion)]


def run(args: list[str]) -> float:
    """Runs ``python -m args...`` (raising on failure); returns its wall time in seconds."""
    cmd = [sys.executable, "-m", *args]
    print("+", " ".join(cmd), flush=True)
    t0 = time.time()
    subprocess.run(cmd, check=True)
    return time.time() - t0
