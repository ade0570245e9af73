"""A trained model as package data: export a run's EMA parameters, load them without a workdir.

Layout of a model directory (``irgeodiff_jax/pretrained/`` for the model shipped with the
package)::

    config.json      the resolved config that trained it, with the training machine's data
                     paths (``MACHINE_PATHS``) cleared
    params.msgpack   EMA parameters of the diffusion stage ({classifier, autoencoder, denoiser};
                     the autoencoder's ``latent_scale`` included), flax msgpack, float32
    model.json       provenance: source workdir, stage, step, export time, sha256 of params,
                     the cleared data paths

``export_model(workdir, out_dir)`` writes the three files atomically (``utils.atomic``).
``load_model(directory)`` returns the same ``InferenceBundle`` that
``workdirs.load_for_inference`` returns for a workdir, so sampling code does not care which.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import os

import jax
import ml_collections
import numpy as np
from flax import serialization

from irgeodiff_jax.training import workdir as workdirs
from irgeodiff_jax.utils import atomic

CONFIG_NAME, PARAMS_NAME, META_NAME = "config.json", "params.msgpack", "model.json"
# config.data fields naming directories of the training machine: cleared on export (the exported
# config then reads the embedded subset), kept in model.json as trained_<field>.
MACHINE_PATHS = ("data_dir", "embedded_dir")
SHIPPED_DIR = os.path.join(os.path.dirname(os.path.dirname(__file__)), "pretrained")


class ModelFileError(workdirs.InferenceError):
    """A model directory that is missing, incomplete or corrupt (one-line reason)."""


def export_model(workdir: str, out_dir: str) -> dict:
    """Writes the diffusion stage's EMA parameters and config of ``workdir`` to ``out_dir``.

    Returns:
        The provenance record written as ``model.json``.
    """
    bundle = workdirs.load_for_inference(workdir, stage="diffusion", use_ema=True)
    params = jax.tree.map(lambda v: np.asarray(v, np.float32), bundle.params)
    blob = serialization.msgpack_serialize(params)
    os.makedirs(out_dir, exist_ok=True)
    meta = {
        "source_workdir": os.path.abspath(workdir),
        "stage": bundle.stage,
        "step": bundle.step,
        "exported": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "params_sha256": hashlib.sha256(blob).hexdigest(),
        "latent_scale": float(params["autoencoder"]["latent_scale"]),
        "num_params": int(sum(v.size for v in jax.tree.leaves(params))),
    }
    config = bundle.config.copy_and_resolve_references()
    with config.unlocked():  # paths of the training machine mean nothing where the model goes
        for field in MACHINE_PATHS:
            meta[f"trained_{field}"] = config.data.get(field)
            if field in config.data:
                config.data[field] = None
    atomic.write_bytes(os.path.join(out_dir, PARAMS_NAME), blob)
    config_json = config.to_json_best_effort(indent=2)
    atomic.write_text(os.path.join(out_dir, CONFIG_NAME), config_json)
    atomic.write_text(os.path.join(out_dir, META_NAME), json.dumps(meta, indent=2))
    return meta


def has_model(directory: str = SHIPPED_DIR) -> bool:
    return all(os.path.exists(os.path.join(directory, n)) for n in (CONFIG_NAME, PARAMS_NAME))


def load_model(directory: str = SHIPPED_DIR) -> workdirs.InferenceBundle:
    """The model in ``directory`` (default: the one shipped in the package) as a bundle.

    Raises:
        ModelFileError: files missing, params corrupt (sha256 or msgpack), or params that do
            not fit the stored config.
    """
    from irgeodiff_jax.models import factory  # noqa: PLC0415  (keeps this module light)

    if not has_model(directory):
        raise ModelFileError(
            f"{directory}: no exported model ({CONFIG_NAME} and {PARAMS_NAME}); pass --workdir "
            "of a trained run, or export one with `python -m irgeodiff_jax.export_model`"
        )
    with open(os.path.join(directory, CONFIG_NAME)) as f:
        config = ml_collections.ConfigDict(json.load(f))
    with open(os.path.join(directory, PARAMS_NAME), "rb") as f:
        blob = f.read()
    meta = {}
    if os.path.exists(os.path.join(directory, META_NAME)):
        with open(os.path.join(directory, META_NAME)) as f:
            meta = json.load(f)
    digest = meta.get("params_sha256")
    if digest and hashlib.sha256(blob).hexdigest() != digest:
        raise ModelFileError(f"{directory}/{PARAMS_NAME}: sha256 differs from {META_NAME}")
    try:
        params = serialization.msgpack_restore(blob)
    except Exception as e:  # noqa: BLE001  (msgpack raises several types on corrupt input)
        raise ModelFileError(f"{directory}/{PARAMS_NAME}: unreadable ({type(e).__name__})") from e
    models = factory.create_models(config)
    expected = jax.eval_shape(lambda k: factory.init_params(models, config, k), jax.random.key(0))
    got = jax.tree.map(np.shape, params)
    if jax.tree.map(lambda s: s.shape, expected) != got:
        raise ModelFileError(f"{directory}: parameters do not fit the stored config")
    return workdirs.InferenceBundle(
        config=config, models=models, params=params, stage="diffusion",
        step=int(meta.get("step", -1)), checkpoint_dir=directory, ema=True,
    )  # fmt: skip
