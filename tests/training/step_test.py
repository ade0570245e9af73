"""One jitted train step per stage on the 4-device mesh: finite losses, parameters change, EMA
moves as ``ema + (1 - d)(p - ema)``, frozen parts stay bit-identical, no retracing.

Models are ``configs/test.py`` sizes with dropout off (dropout roughly triples XLA compile time
on CPU; the resume test trains with dropout on). Steps are compiled ahead of time with cheap
LLVM settings (``FAST_COMPILE``: same numerics, about half the compile time) and cached, so the
multi-device test reuses the 4-device compilation. A compiled step rejects inputs whose shapes
or shardings differ from the first call's, so running several steps also proves no retracing.
"""

import functools

import jax
import numpy as np
import pytest

from configs import test as test_config
from irgeodiff_jax.models import factory
from irgeodiff_jax.training import sharding, step, trainer
from irgeodiff_jax.training.state import param_path_name

GLOBAL_BATCH, MAX_ATOMS = 8, 12
FAST_COMPILE = {"xla_backend_optimization_level": 0, "xla_llvm_disable_expensive_passes": True}


def step_config(stage: str):
    config = test_config.get_config(f"stage={stage}")
    config.data.max_atoms = MAX_ATOMS
    for group in (config.model.spectral_encoder, config.model.autoencoder, config.model.denoiser):
        group.dropout_rate = 0.0
    return config


def synthetic_batch(seed: int, batch: int = GLOBAL_BATCH, n: int = MAX_ATOMS) -> dict:
    """A numpy batch like the loader's: zero-CoM positions, masks, tokens, FG labels."""
    rng = np.random.default_rng(seed)
    num = rng.integers(4, n + 1, size=batch)
    mask = np.arange(n)[None] < num[:, None]
    pos = rng.normal(scale=1.5, size=(batch, n, 3)).astype(np.float32) * mask[..., None]
    pos -= (pos.sum(1, keepdims=True) / num[:, None, None]) * mask[..., None]
    formula = np.zeros((batch, 16), np.int32)
    formula[:, :6] = rng.integers(1, 26, size=(batch, 6))
    return {
        "positions": pos.astype(np.float32),
        "atom_types": (rng.integers(0, 5, size=(batch, n)) * mask).astype(np.int32),
        "atom_mask": mask,
        "spectrum_tokens": rng.integers(0, 100, size=(batch, 3200)).astype(np.int32),
        "formula_tokens": formula,
        "fg_labels": (rng.random((batch, 20)) < 0.3).astype(np.float32),
        "num_atoms": num.astype(np.int32),
    }


class AheadOfTime:
    """Compiles a jitted function with ``FAST_COMPILE`` at its first call, then reuses it."""

    def __init__(self, jitted):
        self.jitted, self.compiled = jitted, None

    def __call__(self, *args):
        if self.compiled is None:
            self.compiled = self.jitted.lower(*args).compile(compiler_options=FAST_COMPILE)
        return self.compiled(*args)


@functools.cache
def compiled_steps(stage: str, num_devices: int):
    """``(models, config, mesh, train_step, eval_step)`` for ``stage`` on ``num_devices``."""
    config = step_config(stage)
    config.mesh.data = num_devices
    models = factory.create_models(config)
    mesh = sharding.make_mesh(num_devices)
    train, evaluate = trainer.make_jitted_steps(models, config, stage, mesh)
    return models, config, mesh, AheadOfTime(train), AheadOfTime(evaluate)


@functools.cache
def _tx(stage: str, num_devices: int):
    """One optimiser object per compiled step (it is static pytree data of the state)."""
    params = {m: _all_params()[m] for m in step.STAGE_MODULES[stage]}
    return step.make_tx(compiled_steps(stage, num_devices)[1], stage, params)


@functools.cache
def _all_params(seed: int = 0) -> dict:
    """Random parameters of all three modules (one init compilation for every stage)."""
    config = step_config("diffusion")
    models = factory.create_models(config)
    key = jax.random.key(seed, impl=config.training.prng_impl)
    init = jax.jit(lambda k: factory.init_params(models, config, k))
    return jax.device_get(init.lower(key).compile(compiler_options=FAST_COMPILE)(key))


def initial_state(stage: str, num_devices: int, seed: int = 0):
    """``(state, root key)`` replicated on the mesh, from ``_all_params(seed)``."""
    models, config, mesh, _, _ = compiled_steps(stage, num_devices)
    repl = sharding.replicated(mesh)
    tx = _tx(stage, num_devices)
    create = jax.jit(
        lambda p: step.create_train_state(models, config, stage, p, tx), out_shardings=repl
    )
    key = jax.random.key(seed, impl=config.training.prng_impl)
    return create(_all_params(seed)), jax.device_put(jax.random.fold_in(key, 7), repl)


def _flat(tree) -> dict:
    return {param_path_name(p): np.asarray(v) for p, v in jax.tree_util.tree_leaves_with_path(tree)}


@pytest.mark.parametrize("stage", step.STAGES)
def test_one_step_per_stage(stage):
    models, config, mesh, train, evaluate = compiled_steps(stage, 4)
    state, root = initial_state(stage, 4)
    before, ema_before = _flat(state.params), _flat(state.ema_params)
    batch = sharding.shard_batch(synthetic_batch(1), mesh)
    state, metrics = train(state, batch, root)
    metrics = {k: float(v) for k, v in jax.device_get(metrics).items()}
    for term in (*step.LOSS_TERMS[stage], "loss", "grad_norm", "learning_rate"):
        assert np.isfinite(metrics[term]) and metrics[term] >= 0, (term, metrics)
    assert metrics["learning_rate"] > 0 and int(state.step) == 1
    after, ema_after = _flat(state.params), _flat(state.ema_params)
    frozen = step.FROZEN_PREFIXES[stage]
    changed = {k for k in after if not np.array_equal(after[k], before[k])}
    for module in step.STAGE_MODULES[stage]:
        trainable = [k for k in after if k.startswith(module + "/") and not k.startswith(frozen)]
        if trainable:
            assert any(k in changed for k in trainable), module
    for k in after:
        if frozen and k.startswith(frozen):
            np.testing.assert_array_equal(after[k], before[k], err_msg=k)
            np.testing.assert_array_equal(ema_after[k], ema_before[k], err_msg=k)
        expected = ema_before[k] + (1 - state.ema_decay) * (after[k] - ema_before[k])
        np.testing.assert_allclose(ema_after[k], expected, rtol=1e-6, atol=1e-7, err_msg=k)
    assert any(not np.array_equal(ema_after[k], ema_before[k]) for k in changed)
    if stage == "diffusion":
        assert any(k.startswith("autoencoder/encoder/") for k in after)
        assert any(k.startswith("autoencoder/decoder/") and k in changed for k in after)
        assert any(
            k.startswith("autoencoder/atom_cross_attention/") and k in changed for k in after
        )

    def avals(tree):
        return [(x.shape, x.dtype, x.sharding) for x in jax.tree.leaves(tree)]

    fresh, _ = initial_state(stage, 4)  # the input of the step (donated above)
    assert jax.tree.structure(fresh) == jax.tree.structure(state)
    assert avals(fresh) == avals(state)  # same signature: the next step reuses the compilation


def test_padding_rows_do_not_count_in_evaluation():
    _, _, mesh, _, evaluate = compiled_steps("classifier", 4)
    state, root = initial_state("classifier", 4)
    half = {k: v[:4] for k, v in synthetic_batch(2).items()}
    padded = {k: np.concatenate([v, np.zeros_like(v)]) for k, v in half.items()}
    doubled = {k: np.concatenate([v, v]) for k, v in half.items()}
    a, b = (
        step.summarize_eval(
            jax.device_get(evaluate(state.params, sharding.shard_batch(x, mesh), root)),
            "classifier",
        )
        for x in (padded, doubled)
    )
    assert (a["count"], b["count"]) == (4, 8)
    for key in ("loss", "fg_accuracy", "fg_f1", "fg_exact_match"):
        np.testing.assert_allclose(a[key], b[key], rtol=1e-5, err_msg=key)
