"""Shared test setup: simulated 4-device CPU (set before jax is imported) and PRNG keys."""

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
