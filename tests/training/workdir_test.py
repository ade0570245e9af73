"""training.workdir: load_for_inference (final-stage choice, EMA vs raw parameters, config
source, clear errors) and overlay_params."""

import json
import os
import types

import jax
import numpy as np
import pytest

from configs import test as test_config
from irgeodiff_jax.models import factory
from irgeodiff_jax.training import checkpointing, step, trainer
from irgeodiff_jax.training import workdir as workdirs


def _config():
    config = test_config.get_config("stage=all")
    config.training.async_checkpointing = False
    return config


def _write_stage(workdir: str, config, stage: str, ckpt_step: int, *, with_config=True):
    """A checkpoint of ``stage`` written by ``trainer.save_checkpoint``: params 1, EMA 2."""
    models = factory.create_models(config)
    abstract = step.abstract_checkpoint(models, config, stage)
    state = jax.tree.map(lambda x: np.zeros(x.shape, x.dtype), abstract[step.TRAIN_STATE])
    state = state.replace(
        params=jax.tree.map(lambda x: np.ones(x.shape, x.dtype), state.params),
        ema_params=jax.tree.map(lambda x: np.full(x.shape, 2, x.dtype), state.params),
    )
    manager = checkpointing.make_manager(workdirs.checkpoint_dir(workdir, stage), async_save=False)
    run = types.SimpleNamespace(
        stage=stage,
        config=config if with_config else types.SimpleNamespace(to_json_best_effort=lambda: "{}"),
        iterator=types.SimpleNamespace(get_state=lambda: {"next_batch": ckpt_step}),
        root_key=jax.random.key(0, impl=config.training.prng_impl),
        manager=manager,
    )
    trainer.save_checkpoint(run, ckpt_step, state)
    manager.wait_until_finished()
    manager.close()


def test_no_checkpoint_is_a_one_line_error(tmp_path):
    with pytest.raises(workdirs.InferenceError, match="no such workdir"):
        workdirs.load_for_inference(str(tmp_path / "missing"))
    with pytest.raises(workdirs.InferenceError) as e:
        workdirs.load_for_inference(str(tmp_path))
    assert "no checkpoint found" in str(e.value) and "\n" not in str(e.value)


def test_partial_run_loads_the_classifier_and_says_so(tmp_path):
    config = _config()
    _write_stage(str(tmp_path), config, "classifier", 7)
    bundle = workdirs.load_for_inference(str(tmp_path))
    assert (bundle.stage, bundle.step, bundle.ema) == ("classifier", 7, True)
    assert set(bundle.params) == {"classifier"} and set(bundle.models) >= {"denoiser"}
    leaves = jax.tree.leaves(bundle.params)
    assert leaves and all(np.all(np.asarray(x) == 2) for x in leaves)
    with pytest.raises(workdirs.InferenceError, match="newest stage is 'classifier'.*'denoiser'"):
        bundle.variables("denoiser")
    raw = workdirs.load_for_inference(str(tmp_path), use_ema=False)
    assert all(np.all(np.asarray(x) == 1) for x in jax.tree.leaves(raw.params))
    with pytest.raises(workdirs.InferenceError, match="no checkpoint of stage 'autoencoder'"):
        workdirs.load_for_inference(str(tmp_path), stage="autoencoder")


def test_final_stage_wins_and_config_comes_from_the_checkpoint(tmp_path):
    config = _config()
    config.training.num_steps = 123  # a value config.json (written below) does not have
    _write_stage(str(tmp_path), config, "classifier", 4)
    _write_stage(str(tmp_path), config, "diffusion", 9)
    with open(os.path.join(tmp_path, workdirs.CONFIG_FILE), "w") as f:
        f.write(_config().to_json_best_effort())
    bundle = workdirs.load_for_inference(str(tmp_path))
    assert (bundle.stage, bundle.step) == ("diffusion", 9)
    assert set(bundle.params) == {"classifier", "autoencoder", "denoiser"}
    assert bundle.config.training.num_steps == 123
    assert bundle.variables("denoiser")["params"] is bundle.params["denoiser"]
    assert bundle.checkpoint_dir == os.path.join(str(tmp_path), "diffusion", "checkpoints")


def test_config_json_is_the_fallback(tmp_path):
    config = _config()
    _write_stage(str(tmp_path), config, "autoencoder", 2, with_config=False)
    with pytest.raises(workdirs.InferenceError, match="neither config.json"):
        workdirs.load_for_inference(str(tmp_path))
    with open(os.path.join(tmp_path, workdirs.CONFIG_FILE), "w") as f:
        json.dump(json.loads(config.to_json_best_effort()), f)
    bundle = workdirs.load_for_inference(str(tmp_path))
    assert bundle.stage == "autoencoder" and set(bundle.params) == {"classifier", "autoencoder"}


def test_overlay_params_exact_and_matching():
    target = {"a": {"w": np.zeros((2, 3)), "b": np.zeros(3)}, "c": {"w": np.zeros(1)}}
    source = {"a": {"w": np.ones((2, 3)), "b": np.ones(4)}}
    out = workdirs.overlay_params(target, source, ["a", "c"], exact=False, what="t")
    assert np.all(out["a"]["w"] == 1) and np.all(out["a"]["b"] == 0) and out["c"] is target["c"]
    with pytest.raises(checkpointing.CheckpointError, match="a parameters do not match"):
        workdirs.overlay_params(target, source, ["a"], exact=True, what="t")
