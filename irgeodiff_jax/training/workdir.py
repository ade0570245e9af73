"""A training workdir: its layout, restoring a trained run, and overlaying parameters.

``load_for_inference`` gives what sampling and evaluation need (config, Linen modules, EMA
parameters); ``checkpoint_dir``, ``stages_with_checkpoints`` and ``read_config_file`` describe
the layout; ``overlay_params`` copies matching parameters from one run into another's modules
(stage-to-stage transfer and ``config.init_from``).

A training workdir (``python -m irgeodiff_jax.train ... --workdir=W``) looks like::

    W/config.json                      the config of the last command run in W
    W/<stage>/checkpoints/<step>/      Orbax checkpoints of each stage that ran
    W/<stage>/metrics.jsonl, W/<stage>/tb/

with ``<stage>`` in ``classifier``, ``autoencoder``, ``diffusion``. ``load_for_inference(W)``
picks the FINAL stage present — ``diffusion`` if it has a checkpoint, otherwise ``autoencoder``,
otherwise ``classifier`` — restores its newest readable checkpoint (a truncated newest step is
skipped with a warning, as in training) and returns its EMA parameters. Because every stage's
train state holds the parameters of all modules it uses, the final stage's checkpoint is
self-contained:

=============  ==================================================  ===========================
stage present  ``bundle.params`` keys                               usable for
=============  ==================================================  ===========================
diffusion      ``classifier``, ``autoencoder``, ``denoiser``        sampling (full model)
autoencoder    ``classifier``, ``autoencoder``                      FG classification, AE recon
classifier     ``classifier``                                       FG classification only
=============  ==================================================  ===========================

``bundle.stage`` says which one was loaded; ``bundle.require("denoiser")`` raises a one-line
``InferenceError`` for partial runs. The config is the one stored inside that checkpoint (the
exact config that trained it); ``W/config.json`` is the fallback for checkpoints without one.

Example::

    from irgeodiff_jax.training import workdir as workdirs

    bundle = workdirs.load_for_inference("/tmp/w")
    enc = bundle.models["classifier"].apply(
        bundle.variables("classifier"), spectrum_tokens, formula_tokens,
        deterministic=True, method="encode")
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
from typing import Any

import jax
import ml_collections
import numpy as np
import orbax.checkpoint as ocp

from irgeodiff_jax.training import checkpointing, step
from irgeodiff_jax.training.state import param_path_name

CONFIG_FILE = "config.json"
CHECKPOINT_SUBDIR = "checkpoints"
FINAL_STAGE_ORDER = ("diffusion", "autoencoder", "classifier")


class InferenceError(RuntimeError):
    """The workdir has no usable checkpoint, or the loaded stage lacks a requested module."""


@dataclasses.dataclass(frozen=True)
class InferenceBundle:
    """Everything needed to run trained modules.

    Attributes:
        config: The run's ``ml_collections.ConfigDict`` (unlocked copy).
        models: ``factory.create_models(config)``: dict of Linen modules ``"classifier"``
            (τθ), ``"autoencoder"`` and ``"denoiser"`` (all three exist even when a module's
            parameters were not trained; see ``params`` / ``require``).
        params: ``{module name: parameter pytree}`` (float32 numpy/jax arrays on host), the EMA
            parameters (``use_ema=True``) or the raw parameters of the checkpoint.
        stage: The stage whose checkpoint was loaded (``"diffusion"`` for a complete run).
        step: The checkpoint's step within that stage.
        checkpoint_dir: ``<workdir>/<stage>/checkpoints``.
        ema: Whether ``params`` are the EMA parameters.
    """

    config: ml_collections.ConfigDict
    models: Any
    params: dict
    stage: str
    step: int
    checkpoint_dir: str
    ema: bool

    def require(self, module: str) -> None:
        """Raise InferenceError if ``module`` has no trained parameters in this bundle."""
        if module not in self.params:
            raise InferenceError(
                f"{os.path.dirname(self.checkpoint_dir)}: the newest stage is {self.stage!r}, "
                f"which has no trained {module!r}; train the later stages first"
            )

    def variables(self, module: str) -> dict:
        """``{"params": ...}`` for ``models.<module>.apply``."""
        self.require(module)
        return {"params": self.params[module]}


def checkpoint_dir(workdir: str, stage: str) -> str:
    """``<workdir>/<stage>/checkpoints``."""
    return os.path.join(os.path.abspath(workdir), stage, CHECKPOINT_SUBDIR)


def _has_steps(directory: str) -> bool:
    if not os.path.isdir(directory):
        return False
    return any(name.isdigit() for name in os.listdir(directory))


def stages_with_checkpoints(workdir: str) -> list[str]:
    """Stages of ``workdir`` that have at least one checkpoint step, in training order."""
    return [s for s in step.STAGES if _has_steps(checkpoint_dir(workdir, s))]


def read_config_file(workdir: str) -> ml_collections.ConfigDict | None:
    """``workdir/config.json`` as a ConfigDict, or None if absent."""
    path = os.path.join(workdir, CONFIG_FILE)
    if not os.path.exists(path):
        return None
    with open(path) as f:
        return ml_collections.ConfigDict(json.load(f))


def _config_from_checkpoints(manager: ocp.CheckpointManager) -> ml_collections.ConfigDict | None:
    """The config stored in the ``extra`` item of the newest step that has one."""
    for s in sorted(manager.all_steps(), reverse=True):
        try:
            extra = manager.restore(
                s, args=ocp.args.Composite(**{checkpointing.EXTRA: ocp.args.JsonRestore()})
            )[checkpointing.EXTRA]
        except Exception as e:  # noqa: BLE001 - unreadable step: try an older one
            logging.warning("checkpoint step %d: cannot read its extra item (%s)", s, e)
            continue
        if extra and extra.get("config"):
            return ml_collections.ConfigDict(extra["config"])
    return None


def _pick_stage(workdir: str, stage: str | None) -> str:
    present = stages_with_checkpoints(workdir)
    if stage is not None:
        if stage not in present:
            raise InferenceError(
                f"{workdir}: no checkpoint of stage {stage!r} (stages with checkpoints: "
                f"{present or 'none'})"
            )
        return stage
    for candidate in FINAL_STAGE_ORDER:
        if candidate in present:
            return candidate
    raise InferenceError(
        f"{workdir}: no checkpoint found (expected {workdir}/<stage>/checkpoints/<step>/); "
        "train first with python -m irgeodiff_jax.train --workdir=..."
    )


def load_for_inference(
    workdir: str, *, stage: str | None = None, use_ema: bool = True
) -> InferenceBundle:
    """Config, modules and parameters of the newest usable checkpoint of a training workdir.

    Args:
        workdir: The ``--workdir`` of a training run.
        stage: Force a stage (``"classifier"`` | ``"autoencoder"`` | ``"diffusion"``); default:
            the final stage present (diffusion > autoencoder > classifier).
        use_ema: Return the EMA parameters (default, as used for evaluation and sampling) or
            the raw ones.

    Returns:
        An ``InferenceBundle`` (parameters on the default device, float32).

    Raises:
        InferenceError: the workdir has no checkpoint (of ``stage``), or no config.
        checkpointing.CheckpointError: the checkpoints are unreadable or belong to a model of
            different shape than the stored config describes.
    """
    from irgeodiff_jax.models import factory  # noqa: PLC0415  (keeps this module light)

    workdir = os.path.abspath(workdir)
    if not os.path.isdir(workdir):
        raise InferenceError(f"{workdir}: no such workdir")
    chosen = _pick_stage(workdir, stage)
    directory = checkpoint_dir(workdir, chosen)
    manager = checkpointing.make_manager(directory, async_save=False)
    config = _config_from_checkpoints(manager) or read_config_file(workdir)
    if config is None:
        raise InferenceError(f"{workdir}: neither {CONFIG_FILE} nor a config in the checkpoints")
    models = factory.create_models(config)
    abstract = step.abstract_checkpoint(models, config, chosen)
    restored = checkpointing.restore_latest(manager, abstract)
    manager.close()
    if restored is None:  # all steps vanished between listing and restoring
        raise InferenceError(f"{directory}: no checkpoint found")
    ckpt_step, tree, _ = restored
    train_state = tree[step.TRAIN_STATE]
    params = train_state.ema_params if use_ema else train_state.params
    logging.info(
        "inference: loaded %s parameters of stage %r, step %d, from %s",
        "EMA" if use_ema else "raw",
        chosen,
        ckpt_step,
        directory,
    )
    return InferenceBundle(
        config=config,
        models=models,
        params=jax.device_get(dict(params)),
        stage=chosen,
        step=int(ckpt_step),
        checkpoint_dir=directory,
        ema=use_ema,
    )


def _leaves(tree) -> dict:
    return {param_path_name(p): v for p, v in jax.tree_util.tree_leaves_with_path(tree)}


def overlay_params(target: dict, source: dict, modules, *, exact: bool, what: str) -> dict:
    """``target`` with the leaves of ``source[m]`` for each module ``m`` in ``modules``.

    Modules missing from either side are skipped. With ``exact=False`` only leaves whose path
    and shape match are copied (fine-tuning across datasets, e.g. a different atom vocabulary);
    with ``exact=True`` every leaf must match (stage-to-stage transfer within one run).

    Raises:
        checkpointing.CheckpointError: ``exact`` and a module's parameters differ.
    """
    out = dict(target)
    for m in modules:
        if m not in source or m not in target:
            continue
        flat_t, flat_s = _leaves(target[m]), _leaves(source[m])
        ok = {k for k in flat_t if k in flat_s and np.shape(flat_s[k]) == np.shape(flat_t[k])}
        if exact and (len(ok) != len(flat_t) or len(flat_s) != len(flat_t)):
            bad = sorted(set(flat_t) ^ ok)[:3] or sorted(set(flat_s) - set(flat_t))[:3]
            raise checkpointing.CheckpointError(
                f"{what}: {m} parameters do not match this config (e.g. {bad})"
            )
        out[m] = jax.tree_util.tree_map_with_path(
            lambda p, v, flat_s=flat_s, ok=ok: (
                flat_s[param_path_name(p)] if param_path_name(p) in ok else v
            ),
            target[m],
        )
        logging.info("%s: initialised %d/%d %s leaves", what, len(ok), len(flat_t), m)
    return out
