"""Loss terms of the three training stages and the diffusion stage's diagnostics (pure).

``stage_terms`` returns per-molecule terms ``{term: [B]}`` for a stage; ``total_loss`` combines
them; ``loss_settings`` reads the learning-recipe fields of a config (the paper's values when a
config omits them). The diffusion eval also reports the ε-MSE per log-SNR band
(``band_sums`` / ``band_names``). ``training/step.py`` turns these into train and eval steps.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax

from irgeodiff_jax.diffusion import gaussian
from irgeodiff_jax.models import autoencoder as autoencoder_lib
from irgeodiff_jax.models import chain as chain_lib

# Diagnostics: the diffusion eval reports the ε-MSE in these log-SNR bands (edges, ascending).
LOGSNR_BAND_EDGES = (0.0, 3.0, 6.0, 9.0)
# ``diffusion.atom_weighting = "atom"`` weighs a molecule of n atoms n / this (QM9's mean size).
ATOM_WEIGHT_REF = 18.0
ATOM_WEIGHTINGS = ("molecule", "atom")


def _atom_weighting(value: str) -> str:
    if value not in ATOM_WEIGHTINGS:
        raise ValueError(f"diffusion.atom_weighting={value!r}; expected one of {ATOM_WEIGHTINGS}")
    return value


def _condition_dropout(value) -> float:
    value = float(value)
    if not 0.0 <= value < 1.0:
        raise ValueError(f"diffusion.condition_dropout={value}; expected a probability in [0, 1)")
    return value


def loss_settings(config) -> dict:
    """Learning-recipe fields with the paper's values as defaults (configs may omit them).

    ``kl_weight`` (autoencoder KL term), ``latent_noise`` (std of the zero-CoM noise added to
    ``mu_x`` before decoding in training; 0 = the paper), ``timestep_power`` (training times
    ``t = round(T·u^p)``, ``u ~ U(0, 1)``; 1 = uniform, > 1 puts more steps at low noise),
    ``min_snr_gamma`` (0 = off; else the loss of each molecule is weighted so that its
    x0-equivalent weight is ``min(SNR, γ)``, as in min-SNR-γ), ``atom_weighting``
    (``"molecule"``: every molecule's diffusion loss is the mean over its atoms, so molecules
    weigh alike; ``"atom"``: it is also multiplied by ``n / ATOM_WEIGHT_REF``, ``n`` its real
    atoms, so every atom weighs alike, as in the reference code's division by the padded size;
    the constant keeps the loss independent of batch and micro-batch), ``fixed_latents`` (the
    diffusion target ``z_x`` comes from the dropout-free atom embedding, which the stage then
    keeps frozen: every molecule's latent stays fixed while the denoiser learns it; off = the
    paper, where ``z_h`` trains with dropout and the latent target moves with it),
    ``frozen_autoencoder`` (fixed latents, the denoiser reads the dropout-free ``z_h`` without
    gradient, and ``recon`` is left out of the loss: the trainer freezes the whole autoencoder,
    so a train step has no backward pass through it and skips the decoder; evaluation still
    reports ``recon``), ``condition_dropout`` (probability that a training molecule's denoiser
    gets the null condition ``chain.null_encoding`` in a train step, for classifier-free
    guidance; evaluation always conditions; 0 = the paper). Self-conditioning is the denoiser's
    own switch (``model.denoiser.self_condition``, read through the chain; ``_self_condition``).
    """
    loss = config.get("loss", {})
    diffusion = config.get("diffusion", {})
    frozen = bool(diffusion.get("frozen_autoencoder", False))
    return {
        "kl_weight": float(loss.get("kl_weight", autoencoder_lib.KL_WEIGHT)),
        "latent_noise": float(loss.get("latent_noise", 0.0)),
        "timestep_power": float(diffusion.get("timestep_power", 1.0)),
        "min_snr_gamma": float(diffusion.get("min_snr_gamma", 0.0)),
        "atom_weighting": _atom_weighting(diffusion.get("atom_weighting", "molecule")),
        "fixed_latents": bool(diffusion.get("fixed_latents", False) or frozen),
        "frozen_autoencoder": frozen,
        "condition_dropout": _condition_dropout(diffusion.get("condition_dropout", 0.0)),
    }


def _cls_terms(chain, params, batch, encoding, *, deterministic, rng) -> dict:
    """Per-molecule BCE ``[B]`` and the logits ``[B, m]``."""
    logits = chain.classify(params, encoding, deterministic=deterministic, rng=rng)
    bce = optax.sigmoid_binary_cross_entropy(logits, batch["fg_labels"]).mean(axis=-1)
    return {"cls": bce, "logits": logits}


def _mean_square(d, mask) -> jax.Array:
    """Per-molecule ``Σ_real |d|² / (3 n)`` ``[B]`` over the real atoms of ``d [B, N, 3]``."""
    m = mask.astype(jnp.float32)[..., None]
    n = jnp.maximum(jnp.sum(mask.astype(jnp.float32), axis=-1), 1.0)
    return jnp.sum((d * m) ** 2, axis=(-2, -1)) / (3.0 * n)


def _recon(x_rec, x, mask) -> jax.Array:
    """Per-molecule ``Σ_real |x_rec - x|² / (3 n)`` ``[B]`` (the autoencoder's convention)."""
    return _mean_square(x_rec - x, mask)


def _latent_noise(key, z, mask, std: float, *, deterministic: bool) -> jax.Array:
    """``z`` plus zero-CoM noise of ``std`` in training (the decoder learns to tolerate it)."""
    if deterministic or std <= 0.0:
        return z
    return z + std * gaussian.sample_zero_com_noise(key, z.shape, mask)


def classifier_terms(chain, params, batch, rng, settings, *, deterministic) -> dict:
    del settings
    k_enc, k_cls = jax.random.split(rng)
    enc = chain.encode_spectrum(params, batch["spectrum_tokens"], batch["formula_tokens"],
                                deterministic=deterministic, rng=k_enc)  # fmt: skip
    return _cls_terms(chain, params, batch, enc, deterministic=deterministic, rng=k_cls)


def autoencoder_terms(chain, params, batch, rng, settings, *, deterministic) -> dict:
    k_enc, k_cls, k_h, k_n = jax.random.split(rng, 4)
    enc = chain.encode_spectrum(params, batch["spectrum_tokens"], batch["formula_tokens"],
                                deterministic=deterministic, rng=k_enc)  # fmt: skip
    out = _cls_terms(chain, params, batch, enc, deterministic=deterministic, rng=k_cls)
    x, mask = batch["positions"], batch["atom_mask"]
    z_h = chain.embed_atoms(params, batch["atom_types"], mask, enc,
                            deterministic=deterministic, rng=k_h)  # fmt: skip
    mu_x = chain.encode_mean(params, x, z_h, mask)
    z = _latent_noise(k_n, mu_x, mask, settings["latent_noise"], deterministic=deterministic)
    x_rec = chain.decode_mean(params, z, z_h, mask)
    m = mask.astype(jnp.float32)[..., None]
    out["recon"] = _recon(x_rec, x, mask)
    out["kl_x"] = 0.5 * jnp.sum((mu_x * m) ** 2, axis=(-2, -1))
    return out


def sample_timesteps(key, batch_size: int, num_steps: int, power: float) -> jax.Array:
    """``[B]`` int32 training times: uniform on ``{0..T}`` (power 1), else ``round(T·u^p)``."""
    if power == 1.0:
        return gaussian.sample_timesteps(key, batch_size, num_steps)
    u = jax.random.uniform(key, (batch_size,))
    return jnp.round(num_steps * u**power).astype(jnp.int32)


def _snr_weight(chain, t, gamma: float) -> jax.Array:
    """Per-molecule min-SNR-γ weight for the chain's target (1 when ``gamma`` is 0)."""
    if gamma <= 0.0:
        return jnp.ones_like(t)
    alpha, sigma = chain.alpha_sigma(t)
    snr = (alpha / sigma)[:, 0, 0] ** 2
    clipped = jnp.minimum(snr, gamma)
    return {"eps": clipped / snr, "x0": clipped, "v": clipped / (snr + 1.0)}[chain.target]


def diffusion_terms(chain, params, batch, rng, settings, *, deterministic) -> dict:
    """``ldm`` (the weighted target loss), ``recon``, plus ``eps_mse`` and ``t`` (diagnostics).
    Train steps with a frozen autoencoder (not ``deterministic``) have no ``recon``."""
    schedule = chain.schedule
    k_h, k_z, k_t, k_eps, k_den, k_n = jax.random.split(rng, 6)
    x, mask = batch["positions"], batch["atom_mask"]
    enc = jax.lax.stop_gradient(
        chain.encode_spectrum(params, batch["spectrum_tokens"], batch["formula_tokens"])
    )
    frozen = settings["frozen_autoencoder"]
    z_h = chain.embed_atoms(params, batch["atom_types"], mask, enc,
                            deterministic=deterministic or frozen, rng=k_h)  # fmt: skip
    if frozen:
        z_h = jax.lax.stop_gradient(z_h)
    # The latent target: with fixed latents, from the dropout-free (and frozen) atom embedding.
    # (When ``deterministic`` or the autoencoder is frozen, ``z_h`` already is that embedding.)
    if settings["fixed_latents"] and not (deterministic or frozen):
        z_h_latent = chain.embed_atoms(params, batch["atom_types"], mask, enc)
    else:
        z_h_latent = z_h
    sigma0 = schedule.sigma(jnp.zeros((), jnp.int32))
    z_x = chain.encode_latent(params, x, z_h_latent, mask)
    z_x = jax.lax.stop_gradient(z_x + sigma0 * gaussian.sample_zero_com_noise(k_z, x.shape, mask))
    t_int = sample_timesteps(k_t, x.shape[0], schedule.num_steps, settings["timestep_power"])
    eps = gaussian.sample_zero_com_noise(k_eps, x.shape, mask)
    z_t = gaussian.q_sample(z_x, t_int, eps, schedule)
    t = t_int.astype(jnp.float32) / schedule.num_steps
    rate = 0.0 if deterministic else settings["condition_dropout"]  # evaluation: conditional
    cond = chain.prepare(params, _drop_condition(rng, enc, rate))
    z_sc = _self_condition(chain, params, (z_t, t, z_h, mask, cond), rng, k_den,
                           deterministic=deterministic)  # fmt: skip
    out = chain.network(params, z_t, t, z_h, mask, cond, deterministic=deterministic, rng=k_den,
                        z_sc=z_sc)  # fmt: skip
    target = chain.target_value(z_x, eps, t)
    weight = _snr_weight(chain, t, settings["min_snr_gamma"])
    if settings["atom_weighting"] == "atom":
        weight = weight * jnp.sum(mask.astype(jnp.float32), axis=-1) / ATOM_WEIGHT_REF
    eps_hat = chain.output_to_eps(out, z_t, t, mask.astype(bool))
    terms = {
        "ldm": weight * gaussian.ldm_loss(target, out, mask),
        "eps_mse": gaussian.ldm_loss(eps, eps_hat, mask),
        "t": t_int,
        "latent_std": _latent_std(z_x, mask),
    }
    if frozen and not deterministic:
        return terms  # a frozen decoder is not trained: its ``recon`` is left to evaluation
    mu_dec = _latent_noise(k_n, z_x * chain.latent_scale(params), mask,
                           settings["latent_noise"], deterministic=deterministic)  # fmt: skip
    x_rec = chain.decode_mean(params, mu_dec, z_h, mask)
    if frozen:  # reported, not trained: no gradient flows back through the decoder
        x_rec = jax.lax.stop_gradient(x_rec)
    return {**terms, "recon": _recon(x_rec, x, mask)}


def _drop_condition(rng, enc, rate: float):
    """The denoiser's encoding with each molecule's replaced by the null condition with
    probability ``rate`` (its own key, ``fold_in(rng, 1)``, so other draws do not move)."""
    if rate <= 0.0:
        return enc
    keep = jax.random.bernoulli(jax.random.fold_in(rng, 1), 1.0 - rate, enc.mask.shape[:1])
    return chain_lib.null_encoding(enc, keep)


def _self_condition(chain, params, inputs, rng, k_den, *, deterministic):
    """The denoiser's self-conditioning input (None for a denoiser without it).

    In a train step, on half the steps (one draw per batch, its own key ``fold_in(rng, 2)``) a
    first pass with ``z_sc = 0`` gives the network's own x̂0, fed back without gradient; on the
    others ``z_sc`` is zero, so the network also learns the first sampler step. Evaluation
    always makes the first pass, as the sampler does from its second step on.
    """
    if not chain.self_conditioning:
        return None
    z_t, t, z_h, mask, cond = inputs

    def estimate():
        out = chain.network(params, z_t, t, z_h, mask, cond, deterministic=deterministic,
                            rng=jax.random.fold_in(k_den, 1), z_sc=jnp.zeros_like(z_t))  # fmt: skip
        return jax.lax.stop_gradient(chain.output_to_x0(out, z_t, t, mask.astype(bool)))

    if deterministic:
        return estimate()
    use = jax.random.bernoulli(jax.random.fold_in(rng, 2), 0.5)
    return jax.lax.cond(use, estimate, lambda: jnp.zeros_like(z_t))


def _latent_std(z, mask) -> jax.Array:
    """Per-molecule RMS of the latent coordinates over real atoms ``[B]``."""
    return jnp.sqrt(_mean_square(z, mask))


def stage_terms(chain, stage, settings, params, batch, rng, *, deterministic) -> dict:
    """Per-molecule loss terms ``{term: [B]}`` (plus ``logits`` when τθ classifies)."""
    fn = {
        "classifier": classifier_terms,
        "autoencoder": autoencoder_terms,
        "diffusion": diffusion_terms,
    }[stage]
    return fn(chain, params, batch, rng, settings, deterministic=deterministic)


def total_loss(stage: str, terms: dict, settings: dict) -> jax.Array:
    """Per-molecule total ``[B]`` of a stage's terms."""
    if stage == "classifier":
        return terms["cls"]
    if stage == "autoencoder":
        return terms["recon"] + settings["kl_weight"] * terms["kl_x"] + terms["cls"]
    if settings["frozen_autoencoder"]:
        return terms["ldm"]
    return terms["ldm"] + terms["recon"]


def band_sums(schedule, terms, w) -> dict:
    """ε-MSE and molecule counts per log-SNR band, and the summed latent RMS."""
    logsnr = -schedule.gamma(terms["t"])
    band = jnp.searchsorted(jnp.asarray(LOGSNR_BAND_EDGES), logsnr)
    out = {"latent_std": jnp.sum(terms["latent_std"] * w)}
    for k in range(len(LOGSNR_BAND_EDGES) + 1):
        wk = w * (band == k)
        out[f"eps_band_{k}"] = jnp.sum(terms["eps_mse"] * wk)
        out[f"count_band_{k}"] = jnp.sum(wk)
    return out


def band_names() -> list[str]:
    """Names of the log-SNR bands usable as TensorBoard tags, e.g. ``"logsnr_lt0"``,
    ``"logsnr_0to3"``, ``"logsnr_ge9"`` for the edges (0, 3, 6, 9)."""
    e = LOGSNR_BAND_EDGES
    mids = [f"logsnr_{a:g}to{b:g}" for a, b in zip(e[:-1], e[1:], strict=True)]
    return [f"logsnr_lt{e[0]:g}", *mids, f"logsnr_ge{e[-1]:g}"]
