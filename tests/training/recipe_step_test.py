"""The diffusion step with every learning-recipe option on: finite, frozen parts frozen, bands."""

import dataclasses
import re

import jax
import numpy as np
import pytest

from irgeodiff_jax.diffusion import schedules
from irgeodiff_jax.models import factory
from irgeodiff_jax.training import losses, step
from tests.helpers import model_params
from tests.helpers.train_step import flat_params, run_compiled, step_config, synthetic_batch


def test_diffusion_step_with_recipe_options():
    config = step_config("diffusion")
    config.diffusion.update(target="v", timestep_power=2.0, min_snr_gamma=5.0, fixed_latents=True)
    config.loss.latent_noise = 0.03
    config.model.denoiser.self_condition = True
    models = factory.create_models(config)
    params = jax.jit(lambda k: factory.init_params(models, config, k))(jax.random.key(0))
    params["autoencoder"]["latent_scale"] = np.float32(0.3)
    state = step.create_train_state(models, config, "diffusion", params)
    batch = synthetic_batch(3)
    train = step.make_train_step(models, config, "diffusion")
    new, metrics = run_compiled(train, state, batch, jax.random.key(1))
    assert all(np.isfinite(float(v)) for v in jax.device_get(metrics).values()), metrics
    before, after = flat_params(state.params), flat_params(new.params)
    frozen = step.frozen_prefixes("diffusion", config)
    assert "autoencoder/atom_embedding/" in frozen and "autoencoder/latent_scale" in frozen
    for k in after:
        if k.startswith(frozen):
            np.testing.assert_array_equal(after[k], before[k], err_msg=k)
    assert any(not np.array_equal(after[k], before[k]) for k in after if k.startswith("denoiser/"))
    sums = jax.device_get(
        jax.jit(step.make_eval_step(models, config, "diffusion"))(new.params, batch,
                                                                    jax.random.key(2))
    )  # fmt: skip
    out = step.summarize_eval(sums, "diffusion")
    assert sum(float(sums[f"count_band_{k}"]) for k in range(5)) == out["count"] == 8
    assert any(k.startswith("eps_mse/logsnr") for k in out) and out["latent_std"] > 0
    assert all(re.fullmatch(r"[A-Za-z0-9_./-]+", k) for k in out), out  # TensorBoard-legal tags


def test_frozen_autoencoder_trains_only_the_denoiser():
    config = step_config("diffusion")
    config.diffusion.update(target="v", frozen_autoencoder=True)
    assert step.fixed_latents(config)  # implied
    models = factory.create_models(config)
    params = jax.jit(lambda k: factory.init_params(models, config, k))(jax.random.key(0))
    state = step.create_train_state(models, config, "diffusion", params)
    batch = synthetic_batch(3)
    train = step.make_train_step(models, config, "diffusion")
    new, metrics = run_compiled(train, state, batch, jax.random.key(1))
    metrics = jax.device_get(metrics)
    assert "recon" not in metrics  # the frozen decoder is skipped in train steps
    np.testing.assert_allclose(metrics["loss"], metrics["ldm"], rtol=1e-6)
    sums = jax.jit(step.make_eval_step(models, config, "diffusion"))(params, batch,
                                                                     jax.random.key(2))  # fmt: skip
    assert float(sums["recon"]) > 0  # evaluation still reports it
    before, after = flat_params(state.params), flat_params(new.params)
    for k in after:
        if k.startswith(("autoencoder/", "classifier/")):
            np.testing.assert_array_equal(after[k], before[k], err_msg=k)
    assert any(not np.array_equal(after[k], before[k]) for k in after if k.startswith("denoiser/"))


def _frozen_v_chain(self_condition: bool = False):
    """Test-size diffusion config (v target, autoencoder frozen), its params and chain."""
    config = step_config("diffusion")
    config.diffusion.update(target="v", frozen_autoencoder=True)
    config.model.denoiser.self_condition = self_condition
    models = factory.create_models(config)
    params = jax.jit(lambda k: factory.init_params(models, config, k))(jax.random.key(0))
    chain = step.make_chain(models, config, schedules.schedule_from_config(config.diffusion))
    return config, params, chain


def test_atom_weighting_weighs_each_molecule_by_its_atom_count():
    config, params, chain = _frozen_v_chain()
    batch = synthetic_batch(4)

    def ldm(weighting):
        config.diffusion.atom_weighting = weighting
        settings = losses.loss_settings(config)

        def terms(p):
            return losses.diffusion_terms(chain, p, batch, jax.random.key(5), settings,
                                          deterministic=False)["ldm"]  # fmt: skip

        return np.asarray(run_compiled(terms, params))

    per_molecule, per_atom = ldm("molecule"), ldm("atom")
    n = batch["atom_mask"].sum(axis=-1)
    assert len(set(n.tolist())) > 1  # molecules of different sizes
    np.testing.assert_allclose(per_atom, per_molecule * n / losses.ATOM_WEIGHT_REF, rtol=1e-6)
    config.diffusion.atom_weighting = "atoms"
    with pytest.raises(ValueError, match="atom_weighting='atoms'"):
        losses.loss_settings(config)


def test_condition_dropout_gives_some_molecules_the_null_condition():
    config, params, chain = _frozen_v_chain()
    blind = model_params.without_cross_attention_kv(params)  # K/V as under the null condition
    batch = synthetic_batch(8)

    def ldm(p, rate, deterministic=False):
        config.diffusion.condition_dropout = rate
        settings = losses.loss_settings(config)
        terms = losses.diffusion_terms(chain, p, batch, jax.random.key(3), settings,
                                       deterministic=deterministic)  # fmt: skip
        return np.asarray(terms["ldm"])

    conditioned, null, mixed = ldm(params, 0.0), ldm(blind, 0.0), ldm(params, 0.5)
    kept = np.isclose(mixed, conditioned, rtol=1e-5)
    dropped = np.isclose(mixed, null, rtol=1e-5)
    assert not np.any(np.isclose(conditioned, null, rtol=1e-5))  # the spectrum matters
    assert np.all(kept | dropped) and kept.any() and dropped.any()
    # Evaluation always conditions.
    np.testing.assert_array_equal(ldm(params, 0.5, True), ldm(params, 0.0, True))
    config.diffusion.condition_dropout = 1.0
    with pytest.raises(ValueError, match="condition_dropout=1.0"):
        losses.loss_settings(config)


def test_skipping_the_frozen_decoder_leaves_loss_and_gradient_unchanged():
    # Without dropout the deterministic terms differ from the train step's only by the decoder
    # run for ``recon``; the diffusion loss and its gradient must not depend on it.
    config, params, chain = _frozen_v_chain()
    batch = synthetic_batch(6)
    settings = losses.loss_settings(config)

    def ldm(p, deterministic):
        terms = losses.diffusion_terms(chain, p, batch, jax.random.key(7), settings,
                                       deterministic=deterministic)  # fmt: skip
        assert ("recon" in terms) == deterministic
        return terms["ldm"].mean()

    skipped, skipped_grads = run_compiled(jax.value_and_grad(lambda p: ldm(p, False)), params)
    decoded, decoded_grads = run_compiled(jax.value_and_grad(lambda p: ldm(p, True)), params)
    np.testing.assert_allclose(skipped, decoded, rtol=1e-6)
    a, b = flat_params(skipped_grads), flat_params(decoded_grads)
    for k in a:
        np.testing.assert_allclose(a[k], b[k], rtol=1e-5, atol=1e-7, err_msg=k)


def test_self_conditioning_feeds_back_the_first_pass_estimate_without_gradient():
    config, params, chain = _frozen_v_chain(self_condition=True)
    batch, settings = synthetic_batch(9), losses.loss_settings(config)
    calls = []

    class Recording(type(chain)):
        """The chain with its denoiser calls recorded; the first call (the self-conditioning
        pass) sees its parameters without gradient."""

        def network(self, p, z_t, t, *args, z_sc=None, **kwargs):
            first = not calls
            out = super().network(jax.lax.stop_gradient(p) if first else p, z_t, t, *args,
                                  z_sc=z_sc, **kwargs)  # fmt: skip
            calls.append((z_t, t, z_sc, out))
            return out

    recording = Recording(**{f.name: getattr(chain, f.name) for f in dataclasses.fields(chain)})

    def ldm(c, p, key, deterministic=True):
        terms = losses.diffusion_terms(c, p, batch, key, settings, deterministic=deterministic)
        return terms["ldm"].mean()

    def recorded(p):
        return ldm(recording, p, jax.random.key(4)), list(calls)

    stopped, rec = run_compiled(jax.grad(recorded, has_aux=True), params)
    plain = run_compiled(jax.grad(lambda p: ldm(chain, p, jax.random.key(4))), params)
    # Evaluation: a first pass with z_sc = 0, whose x̂0 is the second pass's z_sc.
    assert len(rec) == 2
    (z_t, t, z_sc0, out0), (z_t1, t1, z_sc1, _) = rec
    np.testing.assert_array_equal(z_t1, z_t)
    np.testing.assert_array_equal(t1, t)
    np.testing.assert_array_equal(z_sc0, np.zeros_like(z_t))
    mask = batch["atom_mask"].astype(bool)
    np.testing.assert_allclose(z_sc1, chain.output_to_x0(out0, z_t, t, mask), rtol=1e-5)
    assert np.abs(np.asarray(z_sc1)[mask]).min() > 0
    # No gradient flows through the first pass: the same as with that pass's parameters frozen.
    stopped, plain = flat_params(stopped), flat_params(plain)
    assert any(np.abs(v).max() > 0 for k, v in plain.items() if k.startswith("denoiser/"))
    for k in plain:
        np.testing.assert_allclose(plain[k], stopped[k], rtol=1e-5, atol=1e-8, err_msg=k)
    # Train steps (no dropout here): with the estimate on some draws, with z_sc = 0 on others.
    keys = jax.random.split(jax.random.key(0), 8)
    both = jax.vmap(lambda k: (ldm(chain, params, k, False), ldm(chain, params, k)))
    train, evaluation = run_compiled(both, keys)
    with_estimate = np.isclose(train, evaluation, rtol=1e-6)
    assert with_estimate.any() and not with_estimate.all(), with_estimate
