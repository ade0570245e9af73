"""Pure train/eval step functions of the three training stages (method.md §7).

Stages and what each one trains (``params`` of a stage's train state hold the listed modules):

=============  ================================  =========================================
stage          params                            loss (each term is also a metric)
=============  ================================  =========================================
classifier     classifier (τθ)                   ``cls`` = mean BCE-with-logits (eq. 6)
autoencoder    classifier, autoencoder           ``recon + 0.01·kl_x + cls`` (τθ fine-tuned)
diffusion      classifier (frozen), autoencoder  ``ldm + recon`` (``ldm`` alone with
               (encoder EGNN frozen), denoiser   ``diffusion.frozen_autoencoder``, which
                                                 freezes the whole autoencoder)
=============  ================================  =========================================

Diffusion stage: the spectral encoding comes from the frozen τθ without dropout and without
gradient; ``z_x = stop_gradient(mu_x + sigma_0 eps)`` (encoder fixed, ``sigma_0`` the schedule's
sigma at t = 0, zero-CoM ``eps``), while ``z_h = embed_atoms(...)`` keeps its gradient, so the
atom embedding and atom–spectrum cross-attention learn from both terms; the decoder learns from
``recon``. Frozen leaves get exactly zero updates (``TrainState`` trainable mask).

RNG: the step receives the stage's root key; ``fold_in(root, state.step)`` is split by purpose
(dropout, encoder noise, timesteps, diffusion noise), so a resumed run draws the same numbers.

Micro-batches (``training.<stage>.microbatches = M``, default 1): the train step splits the
batch into ``M`` strided chunks (chunk ``i`` holds molecules ``i, i + M, ...``, so on a sharded
batch every device keeps work in every chunk), runs forward and backward one chunk at a time in
a ``lax.scan`` and sums the chunks' contributions, each divided by the whole batch's molecule
count: the loss, its terms and the gradient are those of the whole batch (a test checks them
against the chunks computed one by one). Chunk ``i`` draws its numbers from ``fold_in(rng, i)``.
The backward pass holds one chunk's activations at a time, and on the development CPU a chunk
runs faster per molecule than the whole batch (``benchmarks/README.md``, "Micro-batched train
step"); on accelerators one piece is the faster way.

Batches are dicts of the ``DEVICE_FIELDS`` of ``data.types.Batch``. Rows with ``num_atoms == 0``
(padding rows of a final evaluation batch) get weight 0 in every loss and metric.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import optax

from irgeodiff_jax.diffusion import schedules
from irgeodiff_jax.models import chain as chain_lib
from irgeodiff_jax.models import factory
from irgeodiff_jax.training import losses, optim
from irgeodiff_jax.training.state import TrainState, freeze_untrainable

STAGES = ("classifier", "autoencoder", "diffusion")
STAGE_MODULES = {
    "classifier": ("classifier",),
    "autoencoder": ("classifier", "autoencoder"),
    "diffusion": ("classifier", "autoencoder", "denoiser"),
}
# Parameter path prefixes that a stage holds but must not change.
FROZEN_PREFIXES = {
    "classifier": (),
    "autoencoder": ("autoencoder/latent_scale",),
    "diffusion": ("classifier/", "autoencoder/encoder/", "autoencoder/latent_scale"),
}
# Loss terms of each stage, in the order a non-finite value is reported.
LOSS_TERMS = {
    "classifier": ("cls",),
    "autoencoder": ("recon", "kl_x", "cls"),
    "diffusion": ("ldm", "recon"),
}
DEVICE_FIELDS = (
    "positions",
    "atom_types",
    "atom_mask",
    "spectrum_tokens",
    "formula_tokens",
    "fg_labels",
    "num_atoms",
)
TRAIN_STATE, RNG = "train", "rng"


class StageError(ValueError):
    """An unknown stage name."""


def check_stage(stage: str) -> str:
    if stage not in STAGES:
        raise StageError(f"unknown training stage {stage!r}; expected one of {STAGES}")
    return stage


def device_batch(batch) -> dict:
    """The fields of a ``types.Batch`` (or dict) the step functions read."""
    get = batch.get if isinstance(batch, dict) else lambda k: getattr(batch, k)
    return {k: get(k) for k in DEVICE_FIELDS}


# With ``diffusion.fixed_latents`` the diffusion stage also freezes the atom embedding, so the
# latent of every molecule stays the same throughout diffusion training; with
# ``diffusion.frozen_autoencoder`` it freezes the whole autoencoder.
ATOM_EMBEDDING_PREFIXES = ("autoencoder/atom_embedding/", "autoencoder/atom_cross_attention/")
AUTOENCODER_PREFIXES = ("autoencoder/",)


def fixed_latents(config) -> bool:
    """Latent targets fixed (``diffusion.fixed_latents``, implied by ``frozen_autoencoder``)."""
    return config is not None and losses.loss_settings(config)["fixed_latents"]


def frozen_autoencoder(config) -> bool:
    return config is not None and losses.loss_settings(config)["frozen_autoencoder"]


def frozen_prefixes(stage: str, config=None) -> tuple[str, ...]:
    """Parameter path prefixes that ``stage`` holds but must not change under ``config``."""
    extra = ()
    if check_stage(stage) == "diffusion":
        if frozen_autoencoder(config):
            extra = AUTOENCODER_PREFIXES
        elif fixed_latents(config):
            extra = ATOM_EMBEDDING_PREFIXES
    return FROZEN_PREFIXES[stage] + extra


def is_trainable(stage: str, config=None) -> Callable[[str], bool]:
    """``fn(path) -> bool`` over ``/``-joined parameter paths of the stage's params."""
    prefixes = frozen_prefixes(stage, config)
    return lambda path: not any(path.startswith(p) for p in prefixes)


def make_tx(config, stage: str, params=None) -> optax.GradientTransformation:
    """The stage's optimiser; stages with frozen parts wrap it so those leaves never move.

    ``params`` (the stage's parameter pytree, arrays or shapes) is needed for such stages.
    """
    tx = optim.make_optimizer(config.optimizer[check_stage(stage)])
    if frozen_prefixes(stage, config):
        if params is None:
            raise StageError(f"stage {stage}: make_tx needs the params to freeze parts of them")
        tx = freeze_untrainable(tx, params, is_trainable(stage, config))
    return tx


def create_train_state(models: dict, config, stage: str, params: dict, tx=None) -> TrainState:
    """A fresh train state over ``params`` (a dict holding at least the stage's modules).

    ``tx`` defaults to ``make_tx(config, stage, params)``. The optimiser is static pytree data
    of the state, so states built with different ``tx`` objects make a jitted step compile
    again: pass the same ``tx`` to share one compilation.
    """
    del models  # the parameters already fix the state; kept for a uniform signature
    params = {m: params[m] for m in STAGE_MODULES[check_stage(stage)]}
    tx = make_tx(config, stage, params) if tx is None else tx
    return TrainState.create(params, tx, ema_decay=float(config.optimizer[stage].ema_rate))


def init_train_state(models: dict, config, stage: str, key: jax.Array) -> TrainState:
    """Random parameters (``factory.init_params``) in a fresh train state (jit/eval_shape-able)."""
    return create_train_state(models, config, stage, factory.init_params(models, config, key))


def abstract_checkpoint(models: dict, config, stage: str, sharding=None) -> dict:
    """``{"train": TrainState, "rng": key data}`` of ``jax.ShapeDtypeStruct`` for restoring."""
    tree = jax.eval_shape(
        lambda k: {
            TRAIN_STATE: init_train_state(models, config, stage, k),
            RNG: jax.random.key_data(k),
        },
        jax.random.key(0, impl=config.training.get("prng_impl", "threefry2x32")),
    )
    if sharding is None:
        sharding = jax.sharding.SingleDeviceSharding(jax.devices()[0])
    return jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=sharding), tree)


# --------------------------------------------------------------------------- losses


def _weights(batch) -> jax.Array:
    return (batch["num_atoms"] > 0).astype(jnp.float32)


def _wmean(values: jax.Array, w: jax.Array) -> jax.Array:
    return jnp.sum(values * w) / jnp.maximum(jnp.sum(w), 1.0)


def make_chain(models: dict, config, schedule=None) -> chain_lib.ModelChain:
    """The model chain with ``config.diffusion``'s target (and schedule, for diffusion)."""
    target = config.get("diffusion", {}).get("target", "eps")
    return chain_lib.ModelChain(models, schedule, target)


# --------------------------------------------------------------------------- steps


def _stage_setup(models, config, stage: str, schedule):
    check_stage(stage)
    if schedule is None and stage == "diffusion":
        schedule = schedules.schedule_from_config(config.diffusion)
    return make_chain(models, config, schedule), losses.loss_settings(config)


def num_microbatches(config, stage: str) -> int:
    """``training.<stage>.microbatches`` (1 when absent)."""
    m = int(config.training[check_stage(stage)].get("microbatches", 1))
    if m < 1:
        raise StageError(f"training.{stage}.microbatches must be >= 1, got {m}")
    return m


def split_microbatches(batch: dict, num: int) -> dict:
    """``[B, ...]`` fields -> ``[num, B // num, ...]``: chunk ``i`` holds rows ``i, i + num``..."""
    size = next(iter(batch.values())).shape[0]
    if size % num:
        raise StageError(f"batch of {size} molecules does not split into {num} micro-batches")
    return jax.tree.map(lambda x: jnp.swapaxes(x.reshape(size // num, num, *x.shape[1:]), 0, 1),
                        batch)  # fmt: skip


def make_grad_fn(models: dict, config, stage: str, schedule=None) -> Callable:
    """``grad_fn(params, batch, rng) -> ((loss, means), grads)`` of the stage's weighted-mean
    training loss (dropout on); ``means`` holds every term of ``LOSS_TERMS[stage]`` (and
    ``latent_std`` for diffusion) but ``recon`` under ``diffusion.frozen_autoencoder``, whose
    train steps skip the frozen decoder (its ``recon`` is an evaluation metric). With
    ``training.<stage>.microbatches`` > 1 it sums the contributions of strided chunks of the
    batch (module docstring)."""
    chain, settings = _stage_setup(models, config, stage, schedule)
    num_micro = num_microbatches(config, stage)

    def loss_fn(params, batch, rng, count=None):
        """Weighted means over the batch's molecules, or sums over it divided by ``count``."""
        terms = losses.stage_terms(chain, stage, settings, params, batch, rng,
                                   deterministic=False)  # fmt: skip
        w = _weights(batch)
        mean = _wmean if count is None else (lambda v, w: jnp.sum(v * w) / count)
        means = {k: mean(terms[k], w) for k in LOSS_TERMS[stage] if k in terms}
        if "latent_std" in terms:
            means["latent_std"] = mean(terms["latent_std"], w)
        return mean(losses.total_loss(stage, terms, settings), w), means

    grad_fn = jax.value_and_grad(loss_fn, has_aux=True)
    if num_micro == 1:
        return grad_fn

    def accumulated(params, batch, rng):
        count = jnp.maximum(jnp.sum(_weights(batch)), 1.0)

        def body(total, chunk_and_index):
            chunk, i = chunk_and_index
            out = grad_fn(params, chunk, jax.random.fold_in(rng, i), count)
            return jax.tree.map(jnp.add, total, out), None

        shapes = jax.eval_shape(grad_fn, params, jax.tree.map(lambda x: x[:1], batch), rng, count)
        zeros = jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), shapes)
        chunks = (split_microbatches(batch, num_micro), jnp.arange(num_micro))
        return jax.lax.scan(body, zeros, chunks)[0]

    return accumulated


def make_train_step(models: dict, config, stage: str, schedule=None) -> Callable:
    """``train_step(state, batch, root_key) -> (state, metrics)`` for ``stage`` (pure).

    ``metrics`` (float32 scalars): ``loss``, the terms of ``make_grad_fn``'s ``means``,
    ``grad_norm`` (global norm of the raw gradients), ``param_norm``, ``learning_rate`` (used
    for this update) and, with adaptive clipping, ``grad_clip_max`` / ``grad_clipped``; for
    diffusion also ``latent_std`` (RMS of the diffusion latent over real atoms). Gradients come
    from ``make_grad_fn`` (micro-batched when the config asks for it).
    """
    grad_fn = make_grad_fn(models, config, stage, schedule)
    lr_schedule = optim.make_lr_schedule(config.optimizer[stage])

    def train_step(state: TrainState, batch: dict, root_key: jax.Array):
        rng = jax.random.fold_in(root_key, state.step)
        (loss, means), grads = grad_fn(state.params, batch, rng)
        new_state = state.apply_gradients(grads)
        metrics = {"loss": loss, **means}
        metrics["grad_norm"] = optax.tree.norm(grads)
        metrics["param_norm"] = optax.tree.norm(new_state.params)
        metrics["learning_rate"] = lr_schedule(state.step)
        clip = optim.clip_metrics(new_state.opt_state)
        metrics.update({k: v for k, v in clip.items() if k != "grad_norm"})
        return new_state, jax.tree.map(lambda v: jnp.asarray(v, jnp.float32), metrics)

    return train_step


def make_eval_step(models: dict, config, stage: str, schedule=None) -> Callable:
    """``eval_step(params, batch, key) -> sums`` (deterministic; sum the outputs over batches).

    Sums: ``count`` (real molecules), ``loss`` and every term (weighted by molecule); when τθ
    classifies, ``fg_correct`` / ``fg_total`` (label accuracy), ``fg_tp`` / ``fg_fp`` /
    ``fg_fn`` (micro F1) and ``fg_exact`` (molecules with every group right) at threshold 0.5;
    for diffusion, ``eps_band_<k>`` / ``count_band_<k>``: the ε-MSE summed per log-SNR band
    (``losses.LOGSNR_BAND_EDGES``) and ``latent_std``. Turn sums into means with ``summarize_eval``.
    """
    chain, settings = _stage_setup(models, config, stage, schedule)

    def eval_step(params: Any, batch: dict, key: jax.Array) -> dict:
        terms = losses.stage_terms(chain, stage, settings, params, batch, key, deterministic=True)
        w = _weights(batch)
        total = losses.total_loss(stage, terms, settings)
        sums = {"count": jnp.sum(w), "loss": jnp.sum(total * w)}
        sums.update({k: jnp.sum(terms[k] * w) for k in LOSS_TERMS[stage]})
        if "logits" in terms:
            sums.update(_fg_counts(terms["logits"], batch["fg_labels"], w))
        if "eps_mse" in terms:
            sums.update(losses.band_sums(chain.schedule, terms, w))
        return jax.tree.map(lambda v: jnp.asarray(v, jnp.float32), sums)

    return eval_step


def _fg_counts(logits, labels, w) -> dict:
    pred = logits > 0.0
    true = labels > 0.5
    wm = w[:, None]
    return {
        "fg_correct": jnp.sum((pred == true) * wm),
        "fg_total": jnp.sum(jnp.ones_like(logits) * wm),
        "fg_tp": jnp.sum((pred & true) * wm),
        "fg_fp": jnp.sum((pred & ~true) * wm),
        "fg_fn": jnp.sum((~pred & true) * wm),
        "fg_exact": jnp.sum(jnp.all(pred == true, axis=-1) * w),
    }


def summarize_eval(sums: dict, stage: str) -> dict[str, float]:
    """Means from summed eval outputs: ``loss``, terms, ``fg_accuracy``, ``fg_f1``,
    ``fg_exact_match`` and ``recon_mse`` (= ``recon``, per-coordinate Å²) where present."""
    count = max(float(sums["count"]), 1.0)
    out = {k: float(sums[k]) / count for k in ("loss", *LOSS_TERMS[stage])}
    if "fg_total" in sums:
        out["fg_accuracy"] = float(sums["fg_correct"]) / max(float(sums["fg_total"]), 1.0)
        tp, fp, fn = (float(sums[k]) for k in ("fg_tp", "fg_fp", "fg_fn"))
        out["fg_f1"] = 2 * tp / max(2 * tp + fp + fn, 1.0)
        out["fg_exact_match"] = float(sums["fg_exact"]) / count
    if "recon" in out:
        out["recon_mse"] = out["recon"]
    if "latent_std" in sums:
        out["latent_std"] = float(sums["latent_std"]) / count
        for k, name in enumerate(losses.band_names()):
            n_k = float(sums[f"count_band_{k}"])
            if n_k > 0:
                out[f"eps_mse/{name}"] = float(sums[f"eps_band_{k}"]) / n_k
    out["count"] = float(sums["count"])
    return out
