"""Micro-batched train steps (``training.<stage>.microbatches``): the scanned accumulation gives
the loss, terms and gradients of the chunks computed one by one, and it runs sharded."""

import jax
import numpy as np
import pytest

from irgeodiff_jax.models import factory
from irgeodiff_jax.training import sharding, step
from tests.helpers.train_step import (
    AheadOfTime,
    flat_params,
    run_compiled,
    step_config,
    synthetic_batch,
)

NUM_MICRO = 4


def _batch_with_padding_row() -> dict:
    """A synthetic batch of 8 whose row 5 is an all-padding molecule (weight 0)."""
    batch = synthetic_batch(11)
    for k in ("positions", "atom_types", "atom_mask", "num_atoms"):
        batch[k][5] = 0
    return batch


def test_split_microbatches_is_strided_and_checks_divisibility():
    batch = {"a": np.arange(8), "b": np.arange(16).reshape(8, 2)}
    chunks = step.split_microbatches(batch, 4)
    np.testing.assert_array_equal(chunks["a"], [[0, 4], [1, 5], [2, 6], [3, 7]])
    np.testing.assert_array_equal(chunks["b"][1], [[2, 3], [10, 11]])
    with pytest.raises(step.StageError, match="does not split into 3 micro-batches"):
        step.split_microbatches(batch, 3)
    config = step_config("diffusion")
    config.training.diffusion.microbatches = 0
    with pytest.raises(step.StageError, match="microbatches must be >= 1"):
        step.num_microbatches(config, "diffusion")


@pytest.fixture(scope="module")
def micro():
    """``(models, config, params, batch, rng, ((loss, means), grads))`` of the micro-batched
    gradient on one device; ``config`` asks for ``NUM_MICRO`` chunks."""
    config = step_config("diffusion")  # decoder trained through ``recon``: every path has grads
    config.training.diffusion.microbatches = NUM_MICRO
    models = factory.create_models(config)
    params = jax.device_get(  # host copies: the sharded step below donates its device state
        jax.jit(lambda k: factory.init_params(models, config, k))(jax.random.key(0))
    )
    params = {m: params[m] for m in step.STAGE_MODULES["diffusion"]}
    batch, rng = _batch_with_padding_row(), jax.random.fold_in(jax.random.key(3), 0)
    out = run_compiled(step.make_grad_fn(models, config, "diffusion"), params, batch, rng)
    return models, config, params, batch, rng, out


def test_microbatched_gradients_equal_the_chunks_one_by_one(micro):
    models, config, params, batch, rng, ((loss, means), grads) = micro
    one = config.copy_and_resolve_references()
    one.training.diffusion.microbatches = 1
    whole = step.make_grad_fn(models, one, "diffusion")  # one chunk at a time
    chunks = step.split_microbatches(batch, NUM_MICRO)
    counts = [float(np.sum(c > 0)) for c in chunks["num_atoms"]]
    assert counts == [2, 1, 2, 2] and sum(counts) == 7
    exp_loss, exp_means, exp_grads = 0.0, {k: 0.0 for k in means}, None
    for i, n in enumerate(counts):
        chunk = jax.tree.map(lambda x, i=i: x[i], chunks)
        (l_i, m_i), g_i = run_compiled(whole, params, chunk, jax.random.fold_in(rng, i))
        w = n / sum(counts)
        exp_loss += w * float(l_i)
        exp_means = {k: v + w * float(m_i[k]) for k, v in exp_means.items()}
        g_i = jax.tree.map(lambda g, w=w: w * np.asarray(g), g_i)
        exp_grads = g_i if exp_grads is None else jax.tree.map(np.add, exp_grads, g_i)

    np.testing.assert_allclose(float(loss), exp_loss, rtol=2e-5)
    for k, v in exp_means.items():
        np.testing.assert_allclose(float(means[k]), v, rtol=2e-5, atol=1e-7, err_msg=k)
    got, want = flat_params(grads), flat_params(exp_grads)
    assert got.keys() == want.keys()
    scale = max(float(np.max(np.abs(v))) for v in want.values())
    for k in want:
        np.testing.assert_allclose(got[k], want[k], rtol=1e-4, atol=1e-6 * scale, err_msg=k)
    assert any(np.any(got[k] != 0) for k in got if k.startswith("denoiser/"))
    assert any(np.any(got[k] != 0) for k in got if k.startswith("autoencoder/decoder/"))


def test_microbatched_train_step_on_4_devices_matches_one_device(micro):
    models, config, params, batch, rng, ((loss, means), grads) = micro
    mesh = sharding.make_mesh(4)
    train, _ = sharding.make_jitted_steps(models, config, "diffusion", mesh)
    state = jax.device_put(step.create_train_state(models, config, "diffusion", params),
                           sharding.replicated(mesh))  # fmt: skip
    root = jax.random.key(3)  # the step folds in its step number 0: ``rng`` of the fixture
    args = (state, sharding.shard_batch(batch, mesh), jax.device_put(root))
    new, metrics = AheadOfTime(train)(*args)
    metrics = jax.device_get(metrics)
    np.testing.assert_allclose(metrics["loss"], loss, rtol=1e-5)
    for k in ("ldm", "recon", "latent_std"):
        np.testing.assert_allclose(metrics[k], means[k], rtol=1e-5, err_msg=k)
    norm = np.sqrt(sum(np.sum(np.square(g)) for g in flat_params(grads).values()))
    np.testing.assert_allclose(metrics["grad_norm"], norm, rtol=1e-5)
    assert int(new.step) == 1
