"""A tiny model trained once per test session, for the sampling, predict and end-to-end tests.

``train_tiny`` runs ``python -m irgeodiff_jax.train --config=configs/test.py:stage=all`` for a
few steps per stage, on the shipped embedded dataset when it exists, otherwise on a small
embedded-format dataset built here (QM9 geometries from qm9pack, synthetic stick spectra).
``trained_once`` keeps the result under pytest's session base directory, so the
``trained_workdir`` fixture (``tests/conftest.py``) trains once per session even when several
modules use it, and reports the first failure to every later user.
"""

import json
import os
import pathlib
import shutil
import subprocess

import pytest

from tests.helpers import datasets
from tests.helpers.cli import REPO, run_cli

PACKAGE_EMBEDDED = os.path.join(REPO, "irgeodiff_jax", "data", "embedded", "manifest.json")
STEPS_PER_STAGE = 3
SMALL_NUM_MOLECULES = 36
SMALL_NUM_TEST = 6
TRAIN_TIMEOUT_S = 1800  # compile-bound; minutes on a loaded 2-core machine


def write_config(path: str, embedded_dir: str | None) -> str:
    """A config file wrapping ``configs/test.py`` that points at ``embedded_dir``."""
    lines = [
        "from configs import test",
        "",
        "",
        "def get_config(arg=None):",
        "    config = test.get_config(arg)",
    ]
    if embedded_dir is not None:
        lines += [
            "    config.data.source = 'embedded'",
            f"    config.data.embedded_dir = {embedded_dir!r}",
        ]
    lines += ["    return config", ""]
    with open(path, "w") as f:
        f.write("\n".join(lines))
    return path


def train_tiny(root: str, steps: int = STEPS_PER_STAGE) -> dict:
    """Trains ``configs/test.py:stage=all`` for ``steps`` steps per stage in ``root/workdir``.

    Returns ``{"workdir", "embedded_dir", "stdout", "stderr"}``; raises AssertionError with the
    command's output if training fails.
    """
    embedded_dir = None
    if not os.path.exists(PACKAGE_EMBEDDED):
        embedded_dir = datasets.build_embedded(
            root, num=SMALL_NUM_MOLECULES, num_test=SMALL_NUM_TEST, seed=0, name="embedded"
        )
    config = write_config(os.path.join(root, "tiny_config.py"), embedded_dir)
    workdir = os.path.join(root, "workdir")
    shutil.rmtree(workdir, ignore_errors=True)  # never resume a failed attempt
    proc = run_cli(
        "irgeodiff_jax.train",
        f"--config={config}:stage=all",
        f"--workdir={workdir}",
        f"--config.training.num_steps={steps}",
        "--config.training.progress_bar=False",
        timeout=TRAIN_TIMEOUT_S,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return dict(workdir=workdir, embedded_dir=embedded_dir, stdout=proc.stdout, stderr=proc.stderr)


def trained_once(root: pathlib.Path) -> dict:
    """``train_tiny(root)``, or its stored result if this session already trained in ``root``."""
    marker, failed = root / "trained.json", root / "failed.txt"
    if marker.exists():
        return json.loads(marker.read_text())
    if failed.exists():  # another module already tried in this session
        pytest.fail(f"training the tiny model failed: {failed.read_text()[-2000:]}")
    root.mkdir(exist_ok=True)
    try:
        result = train_tiny(str(root))
    except (AssertionError, subprocess.TimeoutExpired) as e:
        failed.write_text(str(e))
        raise
    marker.write_text(json.dumps(result))
    return result
