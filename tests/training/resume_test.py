"""Resume after SIGKILL: ``python -m irgeodiff_jax.train --config=configs/test.py:stage=...``
killed right after a checkpoint and re-run reaches bit-identical parameters, EMA, optimiser state
and per-step losses (hence the same data order) as an uninterrupted run; SIGTERM saves and
exits cleanly. Subprocesses share a JAX compilation cache so only the first one compiles.
"""

import os
import signal
import subprocess
import sys
import time

import jax
import numpy as np
import pytest

from irgeodiff_jax.training import checkpointing, metrics
from irgeodiff_jax.training import workdir as workdirs
from tests.helpers.cli import REPO
from tests.helpers.datasets import build_embedded

K, EVERY, FIRST = 40, 4, 4
STAGE = "autoencoder"


def _command(workdir: str, emb: str) -> list[str]:
    return [
        sys.executable, "-m", "irgeodiff_jax.train",
        f"--config=configs/test.py:stage={STAGE}",
        f"--workdir={workdir}",
        f"--config.data.embedded_dir={emb}",
        f"--config.training.num_steps={K}",
        f"--config.training.checkpoint_every_steps={EVERY}",
        "--config.training.log_every_steps=1",
        f"--config.training.eval_every_steps={K}",
        "--config.training.progress_bar=False",
    ]  # fmt: skip


def _env(cache: str) -> dict:
    return dict(os.environ, PYTHONPATH=REPO, JAX_COMPILATION_CACHE_DIR=cache)


def _wait_for_step(workdir: str, ckpt_step: int, proc, timeout: float = 900) -> None:
    path = os.path.join(workdirs.checkpoint_dir(workdir, STAGE), str(ckpt_step))
    start = time.time()
    while not os.path.isdir(path):
        assert proc.poll() is None, proc.communicate()[1][-3000:]
        assert time.time() - start < timeout
        time.sleep(0.02)


def _final(workdir: str) -> dict:
    bundle = workdirs.load_for_inference(workdir, use_ema=False)
    ema = workdirs.load_for_inference(workdir)
    assert bundle.step == K
    losses = {}
    for r in metrics.read_jsonl(os.path.join(workdir, STAGE, "metrics.jsonl")):
        if "train/loss" in r:
            losses[r["step"]] = r["train/loss"]
    return {"params": bundle.params, "ema": ema.params, "losses": losses}


def _opt_state(workdir: str):
    from irgeodiff_jax.models import factory
    from irgeodiff_jax.training import step

    config = workdirs.load_for_inference(workdir).config
    manager = checkpointing.make_manager(workdirs.checkpoint_dir(workdir, STAGE), async_save=False)
    abstract = step.abstract_checkpoint(factory.create_models(config), config, STAGE)
    _, tree, extra = checkpointing.restore_latest(manager, abstract)
    return tree, extra


@pytest.fixture(scope="module")
def shared(tmp_path_factory):
    """(embedded dir, JAX compilation cache dir) shared by this module's subprocesses."""
    root = tmp_path_factory.mktemp("resume_shared")
    return build_embedded(str(root)), str(root / "jax_cache")


@pytest.mark.slow
def test_sigkill_then_resume_is_bit_identical(tmp_path_factory, shared):
    root = tmp_path_factory.mktemp("resume")
    emb, cache = shared
    ref, resumed = str(root / "uninterrupted"), str(root / "resumed")
    done = subprocess.run(
        _command(ref, emb), cwd=REPO, env=_env(cache), capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr[-3000:]

    proc = subprocess.Popen(
        _command(resumed, emb), cwd=REPO, env=_env(cache), stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    _wait_for_step(resumed, FIRST, proc)
    proc.send_signal(signal.SIGKILL)
    proc.communicate()
    assert proc.returncode == -signal.SIGKILL
    killed_at = max(
        int(s) for s in os.listdir(workdirs.checkpoint_dir(resumed, STAGE)) if s.isdigit()
    )
    assert killed_at < K

    again = subprocess.run(
        _command(resumed, emb), cwd=REPO, env=_env(cache), capture_output=True, text=True
    )
    assert again.returncode == 0, again.stderr[-3000:]
    assert "resuming from checkpoint step" in again.stderr

    a, b = _final(ref), _final(resumed)
    for key in ("params", "ema"):
        jax.tree.map(np.testing.assert_array_equal, a[key], b[key])
    steps = [s for s in a["losses"] if s > killed_at + 1]
    assert steps and [a["losses"][s] for s in steps] == [b["losses"][s] for s in steps]
    (tree_a, extra_a), (tree_b, extra_b) = _opt_state(ref), _opt_state(resumed)
    leaves_a, leaves_b = jax.tree.leaves(tree_a), jax.tree.leaves(tree_b)  # tx objects differ
    assert len(leaves_a) == len(leaves_b)
    for x, y in zip(leaves_a, leaves_b, strict=True):
        np.testing.assert_array_equal(x, y)
    assert extra_a["data"] == extra_b["data"] and extra_a["data"]["next_batch"] == K


@pytest.mark.slow
def test_sigterm_saves_and_exits_cleanly(tmp_path_factory, shared):
    root = tmp_path_factory.mktemp("sigterm")
    emb, cache = shared
    workdir = str(root / "w")
    command = _command(workdir, emb)
    command[command.index(f"--config.training.num_steps={K}")] = (
        "--config.training.num_steps=100000"
    )
    proc = subprocess.Popen(
        command, cwd=REPO, env=_env(cache), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    _wait_for_step(workdir, FIRST, proc)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err[-3000:]
    assert "SIGTERM: saved step" in err and "preempted" in err
    bundle = workdirs.load_for_inference(workdir)
    assert FIRST <= bundle.step < 100000 and f"saved step {bundle.step}" in err
