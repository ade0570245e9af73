"""Tests for irgeodiff_jax.training.optim (Noam schedule, adaptive clipping, make_optimizer)."""

import math

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import pytest

from irgeodiff_jax.training import optim
from irgeodiff_jax.training.optim import OptimizerConfigError


def _noam_by_hand(base, dim, warmup, step):
    return base * dim**-0.5 * min(step**-0.5, step * warmup**-1.5)


@pytest.mark.parametrize("count", [0, 1, 499, 999, 1000, 5000, 99999])
def test_noam_values(count):
    lr = optim.noam_schedule(0.8, 512, 1000)
    expected = _noam_by_hand(0.8, 512, 1000, count + 1)  # optax count 0 is step 1
    np.testing.assert_allclose(float(lr(count)), expected, rtol=1e-6)
    assert float(lr(count)) > 0


def test_noam_peak_is_at_warmup():
    lr = optim.noam_schedule(0.2, 512, 3000)
    values = np.asarray(jax.vmap(lr)(jnp.arange(10000)))
    assert int(np.argmax(values)) == 2999  # step 3000
    np.testing.assert_allclose(values.max(), 0.2 / math.sqrt(512 * 3000), rtol=1e-6)
    np.testing.assert_allclose(values.max(), 1.6137e-4, rtol=1e-4)  # reference-notes §1.7
    assert np.all(np.diff(values[:3000]) > 0) and np.all(np.diff(values[3000:]) < 0)


def test_noam_bad_arguments():
    with pytest.raises(OptimizerConfigError, match="warmup_steps must be an integer >= 1"):
        optim.noam_schedule(0.8, 512, 0)
    with pytest.raises(OptimizerConfigError, match="learning_rate must be positive"):
        optim.noam_schedule(0.0, 512, 10)


class _ReferenceQueue:
    """Plain-Python model of the reference gradient-norm queue (front insert, pop the oldest)."""

    def __init__(self, max_len=50, seed=3000.0):
        self.items = [seed]
        self.max_len = max_len

    def step(self, norm):
        max_norm = 1.5 * np.mean(self.items) + 2 * np.std(self.items)
        clipped = norm > max_norm
        self.items.insert(0, max_norm if clipped else norm)
        if len(self.items) > self.max_len:
            self.items.pop()
        return max_norm, clipped


def test_adaptive_clip_matches_reference_queue():
    tx = optim.adaptive_grad_clip()
    state = tx.init({"w": jnp.zeros(2)})
    assert int(state.num_seen) == 1 and float(state.norms[0]) == 3000.0
    update = jax.jit(tx.update)
    rng = np.random.default_rng(0)
    norms = np.abs(rng.normal(5.0, 1.0, 120))
    norms[[3, 60, 61, 100]] = [9000.0, 80.0, 200.0, 30.0]  # spikes, one while the seed is present
    reference = _ReferenceQueue()
    clipped_steps = []
    for i, norm in enumerate(norms):
        grads = {"w": jnp.array([0.6 * norm, 0.8 * norm], jnp.float32)}  # global norm = norm
        out, state = update(grads, state)
        max_norm, clipped = reference.step(float(np.float32(norm)))
        np.testing.assert_allclose(float(state.last_max_norm), max_norm, rtol=1e-5)
        assert bool(state.clipped) == clipped
        out_norm = float(optax.tree.norm(out))
        np.testing.assert_allclose(out_norm, min(norm, max_norm), rtol=1e-5)
        if clipped:
            clipped_steps.append(i)
    assert clipped_steps == [3, 60, 61, 100]
    valid = np.asarray(state.norms)
    np.testing.assert_allclose(np.sort(valid), np.sort(reference.items), rtol=1e-5)


def test_adaptive_clip_spike_and_normal_step():
    tx = optim.adaptive_grad_clip(history=5, seed_value=1.0)
    state = tx.init(jnp.zeros(1))
    for _ in range(5):  # fill the buffer with 1.0: threshold 1.5·1 + 2·0 = 1.5
        _, state = tx.update(jnp.ones(1), state)
    spike, state = tx.update(jnp.full(1, 100.0), state)
    assert bool(state.clipped)
    np.testing.assert_allclose(float(spike[0]), 1.5 * 100.0 / (100.0 + 1e-6), rtol=1e-6)
    np.testing.assert_allclose(float(state.last_norm), 100.0)
    assert 100.0 not in np.asarray(state.norms)  # the threshold is recorded, not the raw norm
    np.testing.assert_allclose(np.sort(np.asarray(state.norms)), [1.0, 1.0, 1.0, 1.0, 1.5])
    normal, state = tx.update(jnp.full(1, 1.2), state)  # threshold now 1.5·1.1 + 2·0.2 = 2.05
    assert not bool(state.clipped) and float(normal[0]) == pytest.approx(1.2)
    np.testing.assert_allclose(float(state.last_max_norm), 2.05, rtol=1e-6)


def _config(**overrides):
    base = {"name": "adamw", "learning_rate": 0.1, "warmup_steps": 3000}
    return ml_collections.ConfigDict({**base, **overrides})


def test_reference_classifier_first_update_by_hand():
    cfg = _config(name="adam", learning_rate=0.8, warmup_steps=1000, b2=0.98, eps=1e-9)
    cfg.grad_clip = "adaptive"
    tx = optim.make_optimizer(cfg)
    params = {"w": jnp.array([1.0, -2.0, 3.0])}
    grads = {"w": jnp.array([0.5, -0.25, 2.0])}
    updates, state = tx.update(grads, tx.init(params), params)
    lr0 = _noam_by_hand(0.8, 512, 1000, 1)
    g = np.asarray(grads["w"])
    np.testing.assert_allclose(updates["w"], -lr0 * g / (np.abs(g) + 1e-9), rtol=1e-5)
    metrics = optim.clip_metrics(state)
    np.testing.assert_allclose(metrics["grad_norm"], np.linalg.norm(g), rtol=1e-6)
    np.testing.assert_allclose(metrics["grad_clip_max"], 4500.0)
    assert float(metrics["grad_clipped"]) == 0.0


def test_reference_diffusion_optimizer_is_amsgrad_adamw():
    cfg = _config(learning_rate=0.2, amsgrad=True, weight_decay=1e-12, grad_clip="adaptive")
    tx = optim.make_optimizer(cfg)
    params = {"w": jnp.array([1.0, -2.0])}
    state = tx.init(params)
    kinds = {type(s).__name__ for s in state}
    assert "ScaleByAmsgradState" in kinds and "AdaptiveClipState" in kinds
    grads = {"w": jnp.array([0.3, 0.1])}
    updates, _ = tx.update(grads, state, params)
    lr0 = _noam_by_hand(0.2, 512, 3000, 1)
    g = np.asarray(grads["w"])
    expected = -lr0 * (g / (np.abs(g) + 1e-8) + 1e-12 * np.asarray(params["w"]))
    np.testing.assert_allclose(updates["w"], expected, rtol=1e-5)


def test_weight_decay_decoupled_vs_l2():
    params = {"w": jnp.array([2.0])}
    grads = {"w": jnp.array([1.0])}
    lr0 = _noam_by_hand(0.1, 512, 3000, 1)
    adamw = optim.make_optimizer(_config(weight_decay=0.5))
    up_w, _ = adamw.update(grads, adamw.init(params), params)
    np.testing.assert_allclose(up_w["w"], -lr0 * (1.0 + 0.5 * 2.0), rtol=1e-5)
    adam = optim.make_optimizer(_config(name="adam", weight_decay=0.5))
    up_a, _ = adam.update(grads, adam.init(params), params)
    np.testing.assert_allclose(up_a["w"], -lr0 * 1.0, rtol=1e-5)  # L2 goes through Adam scaling


def test_fixed_global_norm_clipping():
    params = {"w": jnp.zeros(3)}
    grad_seq = [{"w": jnp.array([1.0, 2.0, 2.0])}, {"w": jnp.array([30.0, -40.0, 0.0])}]
    noam = optim.noam_schedule(0.1, 512, 3000)
    manual = optax.chain(
        optax.clip_by_global_norm(2.5), optax.scale_by_adam(), optax.scale_by_learning_rate(noam)
    )
    results = []
    for tx in (
        optim.make_optimizer(_config(grad_clip=2.5)),
        manual,
        optim.make_optimizer(_config()),
    ):
        state = tx.init(params)
        for grads in grad_seq:
            updates, state = tx.update(grads, state, params)
        results.append(np.asarray(updates["w"]))
    np.testing.assert_allclose(results[0], results[1], rtol=1e-6)
    assert not np.allclose(results[0], results[2], rtol=1e-3)


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"amsgard": True}, r"unknown optimizer config fields \['amsgard'\]"),
        ({"name": "sgd"}, "optimizer name must be 'adam' or 'adamw'"),
        ({"grad_clip": "sometimes"}, "grad_clip must be 'adaptive', 'none' or a positive float"),
        ({"grad_clip": -1.0}, "grad_clip must be"),
        ({"b2": 1.0}, r"b2 must lie in \[0, 1\)"),
        ({"weight_decay": -0.1}, "weight_decay must be >= 0"),
        ({"warmup_steps": 0}, "warmup_steps must be an integer >= 1"),
    ],
)
def test_bad_optimizer_configs(overrides, message):
    with pytest.raises(OptimizerConfigError, match=message):
        optim.make_optimizer(_config(**overrides))


def test_missing_field_and_tolerated_fields():
    with pytest.raises(OptimizerConfigError, match=r"missing required fields \['learning_rate'\]"):
        optim.make_optimizer({"name": "adam", "warmup_steps": 10})
    tx = optim.make_optimizer(dict(_config(ema_rate=0.999)))
    assert isinstance(tx, optax.GradientTransformation)
    assert optim.clip_metrics(tx.init({"w": jnp.zeros(1)})) == {}
    lr = optim.make_lr_schedule(_config())
    np.testing.assert_allclose(float(lr(0)), _noam_by_hand(0.1, 512, 3000, 1), rtol=1e-6)


def test_warmup_constant_schedule_ramps_then_holds_the_peak():
    cfg = {"name": "adam", "learning_rate": 1e-3, "warmup_steps": 4, "schedule": "warmup_constant"}
    lr = optim.make_lr_schedule(cfg)
    np.testing.assert_allclose([float(lr(c)) for c in range(6)],
                               [2.5e-4, 5e-4, 7.5e-4, 1e-3, 1e-3, 1e-3], rtol=1e-6)  # fmt: skip
    with pytest.raises(optim.OptimizerConfigError, match="schedule"):
        optim.make_lr_schedule({**cfg, "schedule": "cosine"})


def test_warmup_cosine_schedule_ramps_decays_to_zero_and_needs_a_decay_length():
    cfg = {"name": "adam", "learning_rate": 1e-3, "warmup_steps": 4, "schedule": "warmup_cosine",
           "decay_steps": 12}  # fmt: skip
    lr = optim.make_lr_schedule(cfg)
    rates = np.array([float(lr(c)) for c in range(16)])
    np.testing.assert_allclose(rates[:4], [2.5e-4, 5e-4, 7.5e-4, 1e-3], rtol=1e-6)
    np.testing.assert_allclose(rates[7], 5e-4, rtol=1e-5)  # update 8: half-way down the cosine
    np.testing.assert_allclose(rates[11:], 0.0, atol=1e-12)  # update 12 onwards
    assert np.all(np.diff(rates[3:]) <= 1e-12)
    for bad in (0, 4):
        with pytest.raises(optim.OptimizerConfigError, match="decay_steps"):
            optim.make_lr_schedule({**cfg, "decay_steps": bad})
