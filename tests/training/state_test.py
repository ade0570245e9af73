"""Tests for irgeodiff_jax.training.state (TrainState, EMA, frozen subsets)."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from irgeodiff_jax.training import optim
from irgeodiff_jax.training.state import TrainState, TrainStateError, trainable_labels

DECAY = 0.9


def _params():
    return {
        "encoder": {"kernel": jnp.arange(35.0).reshape(7, 5) / 10, "bias": jnp.ones(5)},
        "denoiser": {"kernel": -jnp.arange(12.0).reshape(3, 4) / 7, "bias": jnp.zeros(4)},
    }


def _grads(params, seed):
    leaves, treedef = jax.tree_util.tree_flatten(params)
    keys = jax.random.split(jax.random.key(seed), len(leaves))
    noise = [jax.random.normal(k, leaf.shape) for k, leaf in zip(keys, leaves, strict=True)]
    return jax.tree_util.tree_unflatten(treedef, noise)


def _adamw():
    cfg = {"name": "adamw", "learning_rate": 50.0, "warmup_steps": 10, "grad_clip": "adaptive"}
    return optim.make_optimizer(cfg)


def test_create_and_pytree_structure():
    params = _params()
    state = TrainState.create(params, optax.sgd(0.1), ema_decay=DECAY)
    assert int(state.step) == 0 and state.step.dtype == jnp.int32
    chex.assert_trees_all_equal(state.ema_params, params)
    leaves = jax.tree_util.tree_leaves(state)
    assert len(leaves) == 1 + 2 * len(jax.tree_util.tree_leaves(params))  # sgd has no state
    rebuilt = jax.tree_util.tree_unflatten(jax.tree_util.tree_structure(state), leaves)
    assert rebuilt.tx is state.tx and rebuilt.ema_decay == DECAY
    with pytest.raises(TrainStateError, match=r"ema_decay must lie in \[0, 1\]"):
        TrainState.create(params, optax.sgd(0.1), ema_decay=1.5)


def test_apply_gradients_sgd_and_exact_ema_formula():
    params = _params()
    state = TrainState.create(params, optax.sgd(0.1), ema_decay=DECAY)
    step = jax.jit(TrainState.apply_gradients)
    ema = params
    for i in range(3):
        grads = _grads(params, i)
        new_state = step(state, grads)
        expected = jax.tree.map(lambda p, g: p - 0.1 * g, state.params, grads)
        chex.assert_trees_all_close(new_state.params, expected, rtol=1e-6)
        ema = jax.tree.map(lambda e, p: DECAY * e + (1 - DECAY) * p, ema, new_state.params)
        chex.assert_trees_all_close(new_state.ema_params, ema, rtol=1e-6, atol=1e-7)
        state = new_state
    assert int(state.step) == 3
    # With zero gradients the parameters stay put and the EMA gap shrinks by the factor d.
    dist = lambda a, b: float(optax.tree.norm(jax.tree.map(jnp.subtract, a, b)))  # noqa: E731
    before = dist(state.ema_params, state.params)
    stepped = step(state, jax.tree.map(jnp.zeros_like, params))
    assert dist(stepped.ema_params, stepped.params) == pytest.approx(DECAY * before, rel=1e-5)


@pytest.mark.parametrize("mask_kind", ["callable", "pytree"])
def test_frozen_leaves_unchanged_and_not_in_opt_state(mask_kind):
    params = _params()
    if mask_kind == "callable":
        mask = lambda path: not path.startswith("encoder/")  # noqa: E731
    else:
        mask = {
            "encoder": {"kernel": False, "bias": False},
            "denoiser": {"kernel": True, "bias": True},
        }
    state = TrainState.create(params, _adamw(), ema_decay=DECAY, trainable_mask=mask)
    opt_shapes = [leaf.shape for leaf in jax.tree_util.tree_leaves(state.opt_state)]
    assert (7, 5) not in opt_shapes and (3, 4) in opt_shapes  # no Adam moments for the encoder
    step = jax.jit(TrainState.apply_gradients)
    for i in range(3):
        state = step(state, _grads(params, i))
    chex.assert_trees_all_equal(state.params["encoder"], params["encoder"])
    chex.assert_trees_all_equal(state.ema_params["encoder"], params["encoder"])  # bit-exact
    for name in ("kernel", "bias"):
        assert not np.allclose(state.params["denoiser"][name], params["denoiser"][name])
        assert not np.allclose(state.ema_params["denoiser"][name], params["denoiser"][name])
    # Clipping sees only the trainable gradients (the encoder's are ignored).
    metrics = optim.clip_metrics(state.opt_state)
    last = _grads(params, 2)["denoiser"]
    np.testing.assert_allclose(metrics["grad_norm"], float(optax.tree.norm(last)), rtol=1e-5)


def test_trainable_labels_and_bad_masks():
    params = _params()
    labels = trainable_labels(params, lambda path: path.endswith("/bias"))
    assert labels == {
        "encoder": {"kernel": "frozen", "bias": "trainable"},
        "denoiser": {"kernel": "frozen", "bias": "trainable"},
    }
    with pytest.raises(TrainStateError, match="does not match"):
        TrainState.create(params, optax.sgd(0.1), trainable_mask={"encoder": True})
    bad = jax.tree.map(lambda _: 1, params)
    with pytest.raises(TrainStateError, match="must be Python bools"):
        TrainState.create(params, optax.sgd(0.1), trainable_mask=bad)


def test_jitted_step_traces_once_and_is_deterministic():
    params = _params()

    @jax.jit
    @chex.assert_max_traces(n=1)
    def train_step(state, grads):
        return state.apply_gradients(grads)

    tx = _adamw()  # tx is a static field: a new optimiser object would mean a new trace

    def run(seed_offset):
        state = TrainState.create(params, tx, ema_decay=DECAY)
        for i in range(3):
            state = train_step(state, _grads(params, i + seed_offset))
        return state

    first, second, other = run(0), run(0), run(10)
    assert int(first.step) == 3
    chex.assert_trees_all_equal(first.params, second.params)
    chex.assert_trees_all_equal(first.opt_state, second.opt_state)
    chex.assert_trees_all_equal(first.ema_params, second.ema_params)
    assert not np.allclose(first.params["denoiser"]["kernel"], other.params["denoiser"]["kernel"])
