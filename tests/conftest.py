"""Shared test setup: simulated 4-device CPU (set before jax is imported), PRNG keys, and the
session's tiny trained model. Helpers that test modules import live in ``tests/helpers/``."""

import os

os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=4")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import jax  # noqa: E402
import pytest  # noqa: E402


@pytest.fixture
def keys():
    """An endless supply of independent PRNG keys for one test."""

    def gen():
        root = jax.random.key(0)
        i = 0
        while True:
            yield jax.random.fold_in(root, i)
            i += 1

    return gen()


@pytest.fixture(scope="session")
def trained_workdir(tmp_path_factory) -> dict:
    """A tiny model trained once per session (``tests/helpers/trained_model.py``).

    ``{"workdir", "embedded_dir", "stdout", "stderr"}`` of the training command.
    """
    from tests.helpers import trained_model  # noqa: PLC0415  (data_pipeline only when used)

    return trained_model.trained_once(tmp_path_factory.getbasetemp() / "sampling_trained_tiny")
