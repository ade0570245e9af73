"""Every ``python -m irgeodiff_jax.<tool>``: usage and input errors are one line, exit status 2."""

import logging as std_logging
import os
import subprocess
import sys

import pytest
from absl import logging

from irgeodiff_jax.utils import cli

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TEST_CONFIG = os.path.join(REPO, "configs", "test.py")

CASES = [
    ("sample", ["--bogus=1"], "sample: error: Unknown command line flag 'bogus'"),
    ("sample", ["--split=nope"], "sample: error: flag --split=nope"),
    ("predict", ["--k=many"], "predict: error: flag --k=many"),
    ("evaluate", ["--samples=/nonexistent", "--out=/tmp/x"], "evaluate: error: "),
    ("evaluate", ["--ks=a,b", "--samples=/tmp", "--out=/tmp/x"], "--ks must be comma-separated"),
    ("summary", [], "summary: error: flag --config=None"),
    ("summary", [f"--config={TEST_CONFIG}", "extra"], "summary: error: unexpected arguments"),
    ("summary", ["--config=/nonexistent/config.py"], "summary: error: --config: "),
    ("train", ["--workdir=/tmp/x"], "train: error: flag --config=None"),
    ("train", [f"--config={TEST_CONFIG}:stage=bogus", "--workdir=/tmp/x"], "stage='bogus'"),
    ("train", [f"--config={TEST_CONFIG}", "--workdir=/tmp/x", "extra"], "unexpected arguments"),
    ("quickstart", ["--config=/nonexistent.py"], "quickstart: error: --config=/nonexistent.py"),
    ("export_model", ["--out=/tmp/x"], "export_model: error: flag --workdir=None"),
    ("export_model", ["--workdir=/tmp/x", "--out=/tmp/y", "extra"], "unexpected arguments"),
]


@pytest.mark.parametrize(("tool", "args", "message"), CASES)
def test_usage_errors_are_one_line_with_status_2(tool, args, message):
    proc = subprocess.run(
        [sys.executable, "-m", f"irgeodiff_jax.{tool}", *args],
        cwd=REPO,
        env=dict(os.environ, PYTHONPATH=REPO),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 2, proc.stderr[-2000:]
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], proc.stderr[-2000:]
    assert proc.stdout == ""


@pytest.mark.parametrize("flag", ["--help", "--helpshort"])
def test_help_prints_the_flags_and_exits_0(flag):
    proc = subprocess.run(
        [sys.executable, "-m", "irgeodiff_jax.predict", flag], capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr[-500:]
    assert "--spectrum" in proc.stdout + proc.stderr


def test_quiet_library_logs_sets_warning_unless_verbose():
    before = logging.get_verbosity()
    try:
        cli.quiet_library_logs(verbose=False)
        assert logging.get_verbosity() == logging.WARNING
        backend = std_logging.getLogger("jax._src.xla_bridge")  # "Unable to initialize backend"
        assert backend.getEffectiveLevel() == std_logging.WARNING
        cli.quiet_library_logs(verbose=True)
        assert logging.get_verbosity() == logging.INFO
        assert std_logging.getLogger("orbax").getEffectiveLevel() == std_logging.INFO
    finally:
        logging.set_verbosity(before)
        for name in cli.LIBRARY_LOGGERS:
            std_logging.getLogger(name).setLevel(std_logging.NOTSET)
