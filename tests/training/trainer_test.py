"""Trainer setup and its one-line errors: batch/device mismatch, missing data, checkpoints of a
different model shape, truncated checkpoints (fallback), non-finite losses, step budgets.
"""

import os
import subprocess
import sys
import types

import jax
import numpy as np
import pytest

from configs import cpu_small
from configs import test as test_config
from data_pipeline.embedded import EmbeddedDataError
from irgeodiff_jax.data import input_pipeline
from irgeodiff_jax.data.sources import SourceError
from irgeodiff_jax.models import factory
from irgeodiff_jax.training import checkpointing, sharding, step, trainer
from tests.helpers.cli import REPO
from tests.helpers.datasets import build_embedded, tiny_config


@pytest.fixture(scope="module")
def emb(tmp_path_factory):
    return build_embedded(str(tmp_path_factory.mktemp("trainer_emb")))


def _one_line(exc: BaseException) -> str:
    text = str(exc)
    assert "\n" not in text, text
    return text


def test_batch_not_divisible_by_devices_is_a_one_line_error(emb, tmp_path):
    assert jax.device_count() == 4
    config = tiny_config("classifier", emb)
    config.training.classifier.batch_size = 6
    with pytest.raises(sharding.ShardingError) as e:
        trainer.train_and_evaluate(config, str(tmp_path))
    assert "global batch size 6 is not divisible by the 4 devices" in _one_line(e.value)


def test_missing_data_is_a_one_line_error(tmp_path):
    config = tiny_config("classifier", str(tmp_path / "no_such_dir"))
    with pytest.raises(EmbeddedDataError) as e:
        trainer.train_and_evaluate(config, str(tmp_path / "w"))
    assert "embedded manifest not found" in _one_line(e.value)
    config.data.source, config.data.data_dir = "qm9s", str(tmp_path)
    with pytest.raises(SourceError) as e:
        trainer.train_and_evaluate(config, str(tmp_path / "w"))
    assert "no built tfds dataset 'qm9s'" in _one_line(e.value)


def test_command_line_prints_one_error_line_without_traceback(tmp_path):
    proc = subprocess.run(
        [
            sys.executable, "-m", "irgeodiff_jax.train",
            "--config=configs/test.py:stage=classifier",
            f"--workdir={tmp_path / 'w'}",
            f"--config.data.embedded_dir={tmp_path / 'missing'}",
        ],
        cwd=REPO, env=dict(os.environ, PYTHONPATH=REPO), capture_output=True, text=True,
        timeout=300,
    )  # fmt: skip
    assert proc.returncode == 2, proc.stderr[-2000:]  # missing data: an input error
    assert "Traceback" not in proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("error: EmbeddedDataError: ") and "manifest not found" in last


def test_unset_cosine_decay_length_becomes_the_stage_budget():
    config = test_config.get_config()
    assert trainer.with_decay_steps(config, "diffusion", 40) is config  # Noam: nothing to set
    config.optimizer.diffusion.schedule = "warmup_cosine"
    resolved = trainer.with_decay_steps(config, "diffusion", 40)
    assert resolved.optimizer.diffusion.decay_steps == 40
    assert config.optimizer.diffusion.decay_steps == 0  # the caller's config is not changed
    config.optimizer.diffusion.decay_steps = 25
    assert trainer.with_decay_steps(config, "diffusion", 40).optimizer.diffusion.decay_steps == 25


def test_unknown_stage_and_bad_budget():
    config = test_config.get_config()
    config.stage = "ldm"
    with pytest.raises(step.StageError, match="unknown training stage 'ldm'"):
        trainer.stages_to_run(config)
    config.training.num_steps = 0
    with pytest.raises(trainer.ConfigError, match="num_steps must be >= 1"):
        trainer.num_train_steps(config, "classifier", 10)


def test_step_budget_precedence():
    config = test_config.get_config()
    config.training.num_steps = None
    config.training.autoencoder.num_epochs = 3
    assert trainer.num_train_steps(config, "autoencoder", 7) == 21
    config.training.num_steps = 5
    assert trainer.num_train_steps(config, "autoencoder", 7) == 5
    config.training.autoencoder.num_steps = 9
    assert trainer.num_train_steps(config, "autoencoder", 7) == 9
    assert trainer.num_train_steps(config, "classifier", 7) == 5


def test_non_finite_loss_names_stage_step_and_term():
    run = types.SimpleNamespace(
        stage="diffusion", manager=types.SimpleNamespace(latest_step=lambda: 40)
    )
    trainer.check_finite(run, 41, {"loss": 1.0, "ldm": 0.5, "recon": 0.5, "grad_norm": 2.0})
    with pytest.raises(trainer.NonFiniteLossError) as e:
        trainer.check_finite(run, 42, {"loss": float("nan"), "ldm": float("nan"), "recon": 0.1})
    msg = _one_line(e.value)
    assert "stage diffusion: non-finite ldm (nan) at step 42" in msg and "checkpoint: 40" in msg
    with pytest.raises(trainer.NonFiniteLossError, match="non-finite grad_norm .inf. at step 3"):
        trainer.check_finite(run, 3, {"loss": 1.0, "ldm": 1.0, "recon": 0.0, "grad_norm": np.inf})


def _save_initial_state(config, stage: str, directory: str, steps):
    """Checkpoints at ``steps`` of a constant-valued state (params = step), no compilation."""
    models = factory.create_models(config)
    manager = checkpointing.make_manager(directory, async_save=False)
    abstract = step.abstract_checkpoint(models, config, stage)
    for s in steps:
        tree = jax.tree.map(lambda x, s=s: np.full(x.shape, s, x.dtype), abstract)
        checkpointing.save(manager, s, tree, {"data": None, "stage": stage})
    manager.wait_until_finished()
    return models, sharding.make_mesh()


def test_checkpoint_of_a_different_model_shape_is_a_one_line_error(emb, tmp_path):
    config = tiny_config("classifier", emb)
    _save_initial_state(config, "classifier", str(tmp_path / "classifier" / "checkpoints"), [5])
    wider = tiny_config("classifier", emb)
    wider.model.spectral_encoder.dim = 48
    with pytest.raises(checkpointing.CheckpointError) as e:
        trainer.train_and_evaluate(wider, str(tmp_path))
    msg = _one_line(e.value)
    assert "checkpoint step 5" in msg and "different model" in msg


def test_truncated_checkpoint_falls_back_to_the_previous_one(emb, tmp_path, caplog):
    config = tiny_config("classifier", emb)
    directory = str(tmp_path / "classifier" / "checkpoints")
    models, mesh = _save_initial_state(config, "classifier", directory, [3, 6])
    n = 0
    for root, _, files in os.walk(os.path.join(directory, "6", "state")):
        for name in files:
            if "ocdbt" in root or name.startswith("manifest"):
                with open(os.path.join(root, name), "r+b") as f:
                    f.truncate(3)
                n += 1
    assert n > 0
    manager = checkpointing.make_manager(directory, async_save=False)
    with caplog.at_level("WARNING"):
        state, _, _ = trainer.setup_state(
            models, config, str(tmp_path), "classifier", mesh, manager
        )
    assert int(state.step) == 3
    assert all(np.all(np.asarray(x) == 3) for x in jax.tree.leaves(state.params))
    messages = " ".join(r.getMessage() for r in caplog.records)
    assert (
        "checkpoint step 6 is unreadable" in messages
        and "fell back to checkpoint step 3" in messages
    )


def test_resuming_with_other_data_settings_is_a_one_line_error(emb, tmp_path):
    config = tiny_config("classifier", emb, num_steps=2)
    trainer.train_and_evaluate(config, str(tmp_path))
    config.seed = 1
    with pytest.raises(input_pipeline.IteratorStateError) as e:
        trainer.train_and_evaluate(config, str(tmp_path))
    msg = _one_line(e.value)
    assert msg.startswith("stage classifier in ") and "seed 0 then, 1000 now" in msg


@pytest.mark.slow
def test_train_and_evaluate_all_stages_then_rerun_resumes(emb, tmp_path, caplog):
    from irgeodiff_jax.training import metrics

    config = tiny_config("all", emb, num_steps=6, log_every_steps=3, eval_every_steps=6)
    workdir = str(tmp_path / "w")
    with caplog.at_level("INFO"):
        results = trainer.train_and_evaluate(config, workdir)
    assert [r.final_step for r in results.values()] == [6, 6, 6]
    assert os.path.exists(os.path.join(workdir, "config.json"))
    messages = " ".join(r.getMessage() for r in caplog.records)
    assert "stage autoencoder from classifier step 6" in messages
    assert "stage diffusion from autoencoder step 6" in messages
    expected_eval = {
        "classifier": ("eval/loss", "eval/fg_accuracy", "eval/fg_f1"),
        "autoencoder": ("eval/loss", "eval/fg_accuracy", "eval/fg_f1", "eval/recon_mse"),
        "diffusion": ("eval/loss", "eval/ldm", "eval/recon_mse"),
    }
    for stage, keys in expected_eval.items():
        rows = metrics.read_jsonl(os.path.join(workdir, stage, "metrics.jsonl"))
        train_keys = set().union(*(r.keys() for r in rows if "train/loss" in r))
        for key in ("train/loss", "train/learning_rate", "train/grad_norm", "train/loss_ema"):
            assert key in train_keys, (stage, key)
        eval_rows = [r for r in rows if "eval/loss" in r]
        assert eval_rows and all(k in eval_rows[-1] for k in keys), (stage, eval_rows)
        assert os.listdir(os.path.join(workdir, stage, "tb"))
    caplog.clear()
    with caplog.at_level("INFO"):
        again = trainer.train_and_evaluate(config, workdir)
    assert all(r.final_step == 6 for r in again.values())
    assert "already complete" in " ".join(r.getMessage() for r in caplog.records)


def test_diffusion_trains_and_evaluates_in_size_buckets_with_a_cosine_rate(emb, tmp_path):
    from irgeodiff_jax.data import sources
    from irgeodiff_jax.training import metrics

    config = tiny_config("diffusion", emb, num_steps=4, log_every_steps=1, eval_every_steps=4)
    atoms = np.sort(np.asarray(sources.get_source(config.data, "train").num_atoms()))
    config.data.buckets = (int(atoms[len(atoms) // 2]),)  # two padded sizes, each fills batches
    config.optimizer.diffusion.schedule = "warmup_cosine"  # decay_steps unset: the budget, 4
    config.optimizer.diffusion.warmup_steps, config.optimizer.diffusion.learning_rate = 1, 1e-3
    workdir = str(tmp_path / "w")
    assert trainer.train_and_evaluate(config, workdir)["diffusion"].final_step == 4
    rows = metrics.read_jsonl(os.path.join(workdir, "diffusion", "metrics.jsonl"))
    losses = [r[k] for r in rows for k in ("train/loss", "eval/loss") if k in r]
    assert len(losses) >= 3 and np.isfinite(losses).all()
    rates = [r["train/learning_rate"] for r in rows if "train/learning_rate" in r]
    np.testing.assert_allclose(rates, [1e-3, 7.5e-4, 2.5e-4, 0.0], rtol=1e-5, atol=1e-9)


def test_only_the_classifier_stage_ignores_size_buckets():
    from irgeodiff_jax.data.settings import QM9_BUCKETS

    config = cpu_small.get_config("stage=all")
    assert tuple(config.data.buckets) == QM9_BUCKETS
    assert tuple(trainer.stage_data(config, "classifier").buckets) == ()
    assert tuple(config.data.buckets) == QM9_BUCKETS  # the config itself is unchanged
    for stage in ("autoencoder", "diffusion"):
        assert trainer.stage_data(config, stage) is config.data
