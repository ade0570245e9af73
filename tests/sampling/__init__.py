"""Shared helpers for the sampling, predict and end-to-end tests.

``trained_workdir`` is a session-scoped fixture: a tiny model trained with
``python -m irgeodiff_jax.train --config=configs/test.py:stage=all`` for a few steps per stage,
on the shipped embedded dataset when it exists, otherwise on a small embedded-format dataset
built here (QM9 geometries from qm9pack, synthetic stick spectra) with ``data_pipeline.embedded``.
Test modules import it (``from tests.sampling import trained_workdir_fixture``) and request
``trained_workdir``; the result is kept under pytest's session base directory, so it is trained
once per session even when several modules use it.
"""

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PACKAGE_EMBEDDED = os.path.join(REPO, "irgeodiff_jax", "data", "embedded", "manifest.json")
STEPS_PER_STAGE = 3
SMALL_NUM_MOLECULES = 36
SMALL_NUM_TEST = 6


TRAIN_TIMEOUT_S = 1800  # compile-bound; minutes on a loaded 2-core machine


def run_cli(module: str, *args: str, timeout: float = 900, env: dict | None = None):
    """Runs ``python -m module args`` from the repository; returns the CompletedProcess."""
    full_env = dict(os.environ, PYTHONPATH=REPO, **(env or {}))
    return subprocess.run(
        [sys.executable, "-m", module, *args],
        cwd=REPO,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def write_small_build(path: str, num: int, seed: int = 0) -> None:
    """A one-shard ``build_qm9_ir``-format directory: QM9 geometries, random stick spectra."""
    from data_pipeline import qm9pack_source, shard_io

    rng = np.random.default_rng(seed)
    mols = qm9pack_source.molecules(qm9pack_source.sample_indices(num, seed=seed))
    rows = []
    for m in mols:
        modes = 3 * len(m.atomic_numbers) - 6
        rows.append(
            {
                "id": m.index,
                "energy": -10.0,
                "num_imaginary": 0,
                "max_gradient": 1e-4,
                "atomic_numbers": m.atomic_numbers,
                "positions": m.positions_angstrom,
                "frequencies": np.sort(rng.uniform(450, 3950, modes)),
                "intensities": rng.uniform(1, 100, modes),
            }
        )
    os.makedirs(path, exist_ok=True)
    shard_io.write_shard(path, 0, rows, [m.smiles for m in mols])
    info = {
        "num_selected": num,
        "shard_size": num,
        "builder_version": "synthetic-test",
        "selection": {"seed": seed},
    }
    with open(os.path.join(path, "build_info.json"), "w") as f:
        json.dump(info, f)


def small_embedded(root: str) -> str:
    """Packs a small embedded-format dataset into ``root/embedded``; returns that directory."""
    from data_pipeline import embedded

    out = os.path.join(root, "embedded")
    if not os.path.exists(os.path.join(out, embedded.MANIFEST_NAME)):
        write_small_build(os.path.join(root, "build"), SMALL_NUM_MOLECULES)
        embedded.pack(
            os.path.join(root, "build"), out, num_test=SMALL_NUM_TEST, split_seed=0, tolerance=0.4
        )
    return out


def write_config(path: str, embedded_dir: str | None) -> str:
    """A config file wrapping ``configs/test.py`` that points at ``embedded_dir``."""
    lines = [
        "from configs import recipe, test",
        "",
        "",
        "def get_config(arg=None):",
        "    config = test.get_config(arg)",
        "    if 'training' not in config:  # configs/test.py without its training sections yet",
        "        recipe.add_training_sections(config, config.stage)",
        "        for stage in recipe.STAGES:",
        "            config.training[stage].batch_size = 8",
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
    embedded_dir = None if os.path.exists(PACKAGE_EMBEDDED) else small_embedded(root)
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


@pytest.fixture(scope="session", name="trained_workdir")
def trained_workdir_fixture(tmp_path_factory) -> dict:
    """A tiny trained model (see the module docstring), trained once per session."""
    root = tmp_path_factory.getbasetemp() / "sampling_trained_tiny"
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
