"""Sharded vs single device: the same 5 diffusion-stage steps (all three modules, RNG for
noise and timesteps) on the 4 simulated CPU devices and on 1 give the same losses (rtol 1e-5)
and parameters (atol 1e-4)."""

import jax
import numpy as np

from irgeodiff_jax.training import sharding
from tests.helpers.train_step import compiled_steps, initial_state, synthetic_batch

NUM_STEPS = 5


def _run(num_devices: int):
    _, _, mesh, train, _ = compiled_steps("diffusion", num_devices)
    state, root = initial_state("diffusion", num_devices)
    losses = []
    for i in range(NUM_STEPS):
        batch = sharding.shard_batch(synthetic_batch(100 + i), mesh)
        state, metrics = train(state, batch, root)
        losses.append({k: float(v) for k, v in jax.device_get(metrics).items()})
    return losses, jax.device_get(state.params), state


def test_sharded_equals_single_device():
    assert jax.device_count() == 4
    losses4, params4, state4 = _run(4)
    losses1, params1, _ = _run(1)
    assert len(state4.params["denoiser"]) > 0
    leaf = jax.tree.leaves(state4.params)[0]
    assert len(leaf.sharding.device_set) == 4
    for a, b in zip(losses4, losses1, strict=True):
        for term in ("loss", "ldm", "recon", "grad_norm"):
            np.testing.assert_allclose(a[term], b[term], rtol=1e-5, err_msg=term)
    jax.tree.map(lambda x, y: np.testing.assert_allclose(x, y, atol=1e-4), params4, params1)
    assert losses4[0]["loss"] != losses4[-1]["loss"]
