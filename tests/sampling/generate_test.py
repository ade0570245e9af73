"""Tests of the jitted batched sampler (random-initialised tiny models, no training)."""

import functools

import jax
import numpy as np
import pytest

from configs import test as test_config
from irgeodiff_jax.diffusion import schedules
from irgeodiff_jax.models import factory
from irgeodiff_jax.sampling import generate
from tests.helpers import model_params

K = 3  # samples per spectrum


@pytest.fixture(scope="module")
def model():
    config = test_config.get_config()
    models = factory.create_models(config)
    params = jax.jit(lambda key: factory.init_params(models, config, key))(jax.random.key(0))
    schedule = schedules.schedule_from_name("polynomial_2", T=50, precision=1e-5)
    return models, params, schedule


@pytest.fixture(scope="module")
def fast_fn(model):
    models, _, schedule = model
    settings = generate.SamplerSettings("fast", steps=4, eta=1.0)
    return generate.make_generate_fn(
        models,
        schedule,
        samples_per_spectrum=K,
        settings=settings,
        with_attention=True,
        max_traces=1,
    )


def _spectra(num: int, seed: int) -> dict:
    rng = np.random.default_rng(seed)
    return {
        "spectrum_tokens": rng.integers(0, 100, (num, 3200)).astype(np.int32),
        "formula_tokens": np.pad(rng.integers(1, 26, (num, 6)), ((0, 0), (0, 10))).astype(np.int32),
        "atom_types": rng.integers(0, 5, (num, 8)).astype(np.int32),
        "atom_mask": np.arange(8)[None, :] < rng.integers(3, 9, (num, 1)),
    }


def _inputs(rows: dict, order, ids, seed=0, n=8) -> generate.GenerateInputs:
    return generate.GenerateInputs(
        spectrum_tokens=rows["spectrum_tokens"][order],
        formula_tokens=rows["formula_tokens"][order],
        atom_types=rows["atom_types"][order][:, :n],
        atom_mask=rows["atom_mask"][order][:, :n],
        keys=generate.spectrum_keys(seed, ids),
    )


def test_shapes_padding_attention_and_one_trace_per_shape(model, fast_fn):
    _, params, _ = model
    rows = _spectra(3, seed=1)
    first = fast_fn(params, _inputs(rows, [0, 1], [10, 11]))
    again = fast_fn(params, _inputs(rows, [0, 1], [10, 11]))  # same shape: no new trace
    x = np.asarray(first["positions"])
    assert x.shape == (2, K, 8, 3) and np.all(np.isfinite(x))
    np.testing.assert_array_equal(x, np.asarray(again["positions"]))
    mask = rows["atom_mask"][[0, 1]]
    assert np.all(x[~np.broadcast_to(mask[:, None], x.shape[:3])] == 0)  # padded atoms
    centred = (x * mask[:, None, :, None]).sum(axis=2) / mask.sum(1)[:, None, None]
    np.testing.assert_allclose(centred, 0.0, atol=1e-4)  # zero centre of mass
    assert not np.allclose(x[0, 0], x[0, 1])  # the k samples differ
    atom, edge = np.asarray(first["atom_attention"]), np.asarray(first["edge_attention"])
    layers = test_config.get_config().model.denoiser.cross_attention.num_layers
    assert atom.shape == (2, layers, 8, 66) and edge.shape == (2, layers, 66)
    np.testing.assert_allclose(atom.sum(-1)[mask[:, None, :].repeat(layers, 1)], 1.0, rtol=1e-5)
    assert np.all(atom[~mask[:, None, :].repeat(layers, 1)] == 0)
    assert np.all((edge >= 0) & (edge <= 1)) and np.all(edge.max(-1) > 0)
    with pytest.raises(generate.GenerateError, match="traced"):  # a new shape: a new trace
        fast_fn(params, _inputs(rows, [0, 1], [10, 11], n=7))


def test_samples_depend_only_on_seed_and_id(model, fast_fn):
    _, params, _ = model
    rows = _spectra(3, seed=2)
    a = np.asarray(fast_fn(params, _inputs(rows, [0, 1], [100, 2**33 + 5]))["positions"])
    b = np.asarray(fast_fn(params, _inputs(rows, [2, 0], [7, 100]))["positions"])
    np.testing.assert_allclose(a[0], b[1], atol=1e-5)  # same spectrum & id, other slot/partner
    c = np.asarray(fast_fn(params, _inputs(rows, [0, 1], [100, 2**33 + 5], seed=1))["positions"])
    assert not np.allclose(a[0], c[0])  # another seed
    d = np.asarray(fast_fn(params, _inputs(rows, [0, 1], [101, 5]))["positions"])
    assert not np.allclose(a[0], d[0]) and not np.allclose(a[1], d[1])  # 2**33+5 != 5


def test_spectrum_keys():
    k = jax.random.key_data(generate.spectrum_keys(3, [5, 2**32 + 5, 5]))
    np.testing.assert_array_equal(k[0], k[2])
    assert not np.array_equal(k[0], k[1])
    np.testing.assert_array_equal(k[0], jax.random.key_data(generate.spectrum_keys(3, [5]))[0])
    with pytest.raises(generate.GenerateError, match="non-negative"):
        generate.spectrum_keys(0, [-1])


@pytest.mark.slow
def test_ancestral_sampler_runs(model):
    models, params, schedule = model
    fn = generate.make_generate_fn(
        models, schedule, samples_per_spectrum=2, settings=generate.SamplerSettings("ancestral")
    )
    rows = _spectra(1, seed=3)
    x = np.asarray(fn(params, _inputs(rows, [0], [1]))["positions"])
    assert x.shape == (1, 2, 8, 3) and np.all(np.isfinite(x))
    assert generate.SamplerSettings("ancestral").num_steps(schedule) == 50


def test_bad_settings(model):
    models, _, schedule = model
    with pytest.raises(generate.GenerateError, match="sampler must be one of"):
        generate.make_generate_fn(
            models, schedule, samples_per_spectrum=1, settings=generate.SamplerSettings("ddpm")
        )
    with pytest.raises(generate.GenerateError, match=r"--steps must be in \[1, 50\]"):
        generate.make_generate_fn(
            models, schedule, samples_per_spectrum=1, settings=generate.SamplerSettings("fast", 51)
        )
    with pytest.raises(generate.GenerateError, match="samples_per_spectrum"):
        generate.make_generate_fn(
            models, schedule, samples_per_spectrum=0, settings=generate.SamplerSettings()
        )
    with pytest.raises(generate.GenerateError, match="spacing must be one of"):
        generate.SamplerSettings("fast", 4, spacing="cubic").check(schedule)


def test_guidance_zero_is_the_null_condition_one_or_outside_its_interval_unguided(model):
    models, params, schedule = model
    blind = model_params.without_cross_attention_kv(params)
    assert any(  # the helper did zero something
        not np.array_equal(a, b)
        for a, b in zip(jax.tree.leaves(params), jax.tree.leaves(blind), strict=True)
    )
    rows = _spectra(2, seed=3)
    inputs = _inputs(rows, [0, 1], [4, 9])

    @functools.cache  # one compilation per setting, shared by both parameter sets
    def sampler(guidance, interval):
        settings = generate.SamplerSettings(
            "fast", steps=4, eta=1.0, guidance=guidance, guidance_interval=interval
        )
        return generate.make_generate_fn(
            models, schedule, samples_per_spectrum=2, settings=settings
        )

    def positions(p, guidance, interval=(0.0, 1.0)):
        return np.asarray(sampler(guidance, interval)(p, inputs)["positions"])

    plain, blind_plain = positions(params, 1.0), positions(blind, 1.0)
    # w = 0: every step uses ε̂_null alone, i.e. a denoiser that cannot read the spectrum.
    # (The untrained model's samples are O(100): a relative tolerance, for float rounding.)
    close = functools.partial(np.testing.assert_allclose, rtol=1e-5, atol=1e-5)
    close(positions(params, 0.0), blind_plain)
    # When the spectrum changes nothing, any weight gives the unguided samples.
    close(positions(blind, 3.0), blind_plain)
    guided = positions(params, 3.0)
    assert np.all(np.isfinite(guided)) and not np.allclose(guided, plain, atol=1e-3)
    # T = 50, K = 4: steps at t = 1, 0.76, 0.5, 0.26 and the final t = 0, none in (0, 0.1].
    close(positions(params, 3.0, (0.0, 0.1)), plain)
    with pytest.raises(generate.GenerateError, match="guidance"):
        generate.SamplerSettings("fast", steps=4, guidance=-1.0).check(schedule)
    with pytest.raises(generate.GenerateError, match="interval"):
        generate.SamplerSettings("fast", steps=4, guidance_interval=(0.5, 0.5)).check(schedule)


def _without_self_conditioning(params: dict, zero: bool) -> dict:
    """A self-conditioned denoiser's parameters with the weights that read ``z_sc`` (row 1 of
    the edge stream's input, the last row of every EGNN block's edge and coordinate inputs)
    zeroed (``zero``) or removed (the plain denoiser's parameter tree)."""
    out = jax.tree.map(np.array, params)

    def edit(kernel, row):
        if not zero:
            return np.delete(kernel, row, axis=0)
        kernel[row] = 0.0  # ``out`` holds copies
        return kernel

    den = out["denoiser"]
    den["edge_in"]["kernel"] = edit(den["edge_in"]["kernel"], 1)
    for name, block in den["egnn"].items():
        if name.startswith("block_"):
            for layer in ("edge_in", "coord_in"):
                block[layer]["kernel"] = edit(block[layer]["kernel"], -1)
    return out


def test_self_conditioning_carries_the_previous_estimate(model, fast_fn):
    """A self-conditioned denoiser whose ``z_sc`` weights are zero samples exactly as the plain
    denoiser with the other weights; with them, later steps read the carried estimate."""
    models, _, schedule = model
    config = test_config.get_config()
    config.model.denoiser.self_condition = True
    sc_models = factory.create_models(config)
    params = jax.jit(lambda key: factory.init_params(sc_models, config, key))(jax.random.key(1))
    settings = generate.SamplerSettings("fast", steps=4, eta=1.0)
    fn = generate.make_generate_fn(sc_models, schedule, samples_per_spectrum=K, settings=settings)
    inputs = _inputs(_spectra(2, seed=5), [0, 1], [2, 7])
    blind = np.asarray(fn(_without_self_conditioning(params, zero=True), inputs)["positions"])
    plain = fast_fn(_without_self_conditioning(params, zero=False), inputs)["positions"]
    np.testing.assert_allclose(blind, np.asarray(plain), rtol=1e-5, atol=1e-5)
    used = np.asarray(fn(params, inputs)["positions"])
    assert np.all(np.isfinite(used)) and not np.allclose(used, blind, atol=1e-3)
