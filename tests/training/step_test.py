"""One jitted train step per stage on the 4-device mesh: finite losses, parameters change, EMA
moves as ``ema + (1 - d)(p - ema)``, frozen parts stay bit-identical, no retracing.

Models are ``configs/test.py`` sizes with dropout off (the resume test trains with dropout on);
steps are compiled ahead of time and cached (``tests/helpers/train_step.py``). A compiled step
rejects inputs whose shapes or shardings differ from the first call's, so running several steps
also proves no retracing.
"""

import jax
import numpy as np
import pytest

from irgeodiff_jax.training import sharding, step
from tests.helpers.train_step import compiled_steps, flat_params, initial_state, synthetic_batch


@pytest.mark.parametrize("stage", step.STAGES)
def test_one_step_per_stage(stage):
    models, config, mesh, train, evaluate = compiled_steps(stage, 4)
    state, root = initial_state(stage, 4)
    before, ema_before = flat_params(state.params), flat_params(state.ema_params)
    batch = sharding.shard_batch(synthetic_batch(1), mesh)
    state, metrics = train(state, batch, root)
    metrics = {k: float(v) for k, v in jax.device_get(metrics).items()}
    for term in (*step.LOSS_TERMS[stage], "loss", "grad_norm", "learning_rate"):
        assert np.isfinite(metrics[term]) and metrics[term] >= 0, (term, metrics)
    assert metrics["learning_rate"] > 0 and int(state.step) == 1
    after, ema_after = flat_params(state.params), flat_params(state.ema_params)
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
