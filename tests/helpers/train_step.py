"""Ahead-of-time compiled train/eval steps on the simulated CPU mesh, and synthetic batches.

Models are ``configs/test.py`` sizes with dropout off (dropout roughly triples XLA compile time
on CPU). Steps are compiled with cheap LLVM settings (``FAST_COMPILE``: same numerics, about
half the compile time) and cached per (stage, device count), so every test module of a session
reuses one compilation. A compiled step rejects inputs whose shapes or shardings differ from
the first call's, so running several steps also proves there is no retracing.
"""

import functools

import jax
import numpy as np

from configs import test as test_config
from irgeodiff_jax.models import factory
from irgeodiff_jax.training import sharding, step
from irgeodiff_jax.training.state import param_path_name

GLOBAL_BATCH, MAX_ATOMS = 8, 12
FAST_COMPILE = {"xla_backend_optimization_level": 0, "xla_llvm_disable_expensive_passes": True}


def run_compiled(fn, *args):
    """``fn(*args)`` jitted with ``FAST_COMPILE`` (cheaper than running it op by op)."""
    return jax.jit(fn).lower(*args).compile(FAST_COMPILE)(*args)


def step_config(stage: str):
    """``configs/test.py`` for ``stage`` with ``MAX_ATOMS`` atoms and dropout off."""
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
    train, evaluate = sharding.make_jitted_steps(models, config, stage, mesh)
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
    return jax.device_get(run_compiled(lambda k: factory.init_params(models, config, k), key))


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


def flat_params(tree) -> dict:
    """``{"module/.../leaf": numpy array}`` of a parameter tree."""
    return {param_path_name(p): np.asarray(v) for p, v in jax.tree_util.tree_leaves_with_path(tree)}
