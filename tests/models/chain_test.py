"""The shared model chain: target conversions, latent scale, and its use by the sampler."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs import test as test_config
from irgeodiff_jax.diffusion import gaussian, schedules
from irgeodiff_jax.models import chain as chain_lib
from irgeodiff_jax.models import factory
from irgeodiff_jax.sampling import generate
from irgeodiff_jax.training import latent_scale
from irgeodiff_jax.utils.geometry import remove_mean_with_mask

SCHEDULE = schedules.schedule_from_name("polynomial_2", T=1000, precision=1e-5)


def _latents(seed, b=4, n=7):
    rng = np.random.default_rng(seed)
    mask = jnp.asarray(np.arange(n)[None] < rng.integers(2, n + 1, (b, 1)))
    z0 = remove_mean_with_mask(jnp.asarray(rng.normal(size=(b, n, 3)), jnp.float32), mask)
    eps = gaussian.sample_zero_com_noise(jax.random.key(seed), (b, n, 3), mask)
    return mask, z0, eps


@pytest.mark.parametrize("target", chain_lib.TARGETS)
def test_target_value_read_back_as_eps_is_the_noise(target):
    chain = chain_lib.ModelChain({}, SCHEDULE, target)
    mask, z0, eps = _latents(0)
    t_int = jnp.array([0, 3, 500, 1000])
    t = t_int / SCHEDULE.num_steps
    z_t = gaussian.q_sample(z0, t_int, eps, SCHEDULE)
    out = chain.target_value(z0, eps, t)
    eps_back = chain.output_to_eps(out, z_t, t, mask)
    # x0 read-back divides by sigma (1.5e-5 at t=0 for x0 is tested at t >= 3 only).
    rows = slice(None) if target != "x0" else slice(1, None)
    np.testing.assert_allclose(eps_back[rows], eps[rows], atol=2e-3 if target == "x0" else 1e-5)
    assert np.all(np.asarray(eps_back)[~np.asarray(mask)] == 0)


def test_unknown_target_is_refused():
    with pytest.raises(chain_lib.ChainError, match="target"):
        chain_lib.ModelChain({}, SCHEDULE, "score")


@pytest.fixture(scope="module")
def tiny():
    config = test_config.get_config()
    models = factory.create_models(config)
    params = jax.jit(lambda k: factory.init_params(models, config, k))(jax.random.key(0))
    return models, params


def _rows(seed, b=3, n=6):
    rng = np.random.default_rng(seed)
    mask = np.arange(n)[None] < rng.integers(3, n + 1, (b, 1))
    pos = rng.normal(scale=1.3, size=(b, n, 3)) * mask[..., None]
    return {
        "positions": np.asarray(remove_mean_with_mask(jnp.asarray(pos, jnp.float32), mask)),
        "atom_types": rng.integers(0, 5, (b, n)).astype(np.int32),
        "atom_mask": mask,
        "spectrum_tokens": rng.integers(0, 100, (b, 3200)).astype(np.int32),
        "formula_tokens": np.pad(rng.integers(1, 26, (b, 5)), ((0, 0), (0, 11))).astype(np.int32),
    }


def _with_scale(params, scale):
    return {**params, "autoencoder": {**params["autoencoder"], "latent_scale": jnp.float32(scale)}}


def test_latent_scale_divides_the_latent_and_multiplies_it_back(tiny):
    models, params = tiny
    chain = chain_lib.ModelChain(models, SCHEDULE)
    b = _rows(1)
    enc = chain.encode_spectrum(params, b["spectrum_tokens"], b["formula_tokens"])
    z_h = chain.embed_atoms(params, b["atom_types"], b["atom_mask"], enc)
    mu = chain.encode_mean(params, b["positions"], z_h, b["atom_mask"])
    scaled = _with_scale(params, 0.25)
    z = chain.encode_latent(scaled, b["positions"], z_h, b["atom_mask"])
    np.testing.assert_allclose(z, mu / 0.25, rtol=1e-6)
    np.testing.assert_allclose(
        chain.decode_latent(scaled, z, z_h, b["atom_mask"]),
        chain.decode_mean(params, mu, z_h, b["atom_mask"]),
        rtol=1e-5, atol=1e-5,
    )  # fmt: skip


def test_estimated_scale_is_the_rms_of_the_encoder_mean(tiny):
    models, params = tiny
    chain = chain_lib.ModelChain(models)
    batches = [_rows(2), _rows(3)]
    scale = latent_scale.estimate_latent_scale(chain, params, batches)
    sq, count = 0.0, 0.0
    for b in batches:
        enc = chain.encode_spectrum(params, b["spectrum_tokens"], b["formula_tokens"])
        z_h = chain.embed_atoms(params, b["atom_types"], b["atom_mask"], enc)
        mu = np.asarray(chain.encode_mean(params, b["positions"], z_h, b["atom_mask"]))
        sq += np.sum(mu[b["atom_mask"]] ** 2)
        count += 3 * b["atom_mask"].sum()
    np.testing.assert_allclose(scale, np.sqrt(sq / count), rtol=1e-5)
    empty = {**batches[0], "atom_mask": np.zeros_like(batches[0]["atom_mask"])}
    with pytest.raises(ValueError, match="no real atom"):
        latent_scale.estimate_latent_scale(chain, params, [empty])


def test_generate_decodes_each_molecule_with_its_own_atoms(tiny, monkeypatch):
    """With the exact noise of a known per-molecule latent in place of the network, the sampler
    returns ``decode(z0)`` of each molecule with its own ``z_h`` (a mix-up of molecules in the
    batch, or of the latent scale, would show)."""
    models, params = tiny
    params = _with_scale(params, 0.5)
    schedule = schedules.schedule_from_name("polynomial_2", T=50, precision=1e-5)

    def z0_of(z_h, mask):  # a latent that is a function of the molecule's own atom features
        return remove_mean_with_mask(jnp.where(mask[..., None], z_h[..., :3] * 3.0, 0.0), mask)

    def exact(self, params, z_t, t, z_h, atom_mask, cond, **kw):  # noqa: ARG001
        alpha, sigma = self.alpha_sigma(t)
        z0 = z0_of(z_h, atom_mask)
        return remove_mean_with_mask((z_t - alpha * z0) / sigma, atom_mask), z0

    monkeypatch.setattr(chain_lib.ModelChain, "predict", exact)
    settings = generate.SamplerSettings("fast", steps=10, eta=0.0, final_mode="mean")
    fn = generate.make_generate_fn(models, schedule, samples_per_spectrum=2, settings=settings)
    b = _rows(4)
    inputs = generate.GenerateInputs(
        b["spectrum_tokens"], b["formula_tokens"], b["atom_types"], b["atom_mask"],
        generate.spectrum_keys(0, [1, 2, 3]),
    )  # fmt: skip
    x = np.asarray(fn(params, inputs)["positions"])
    chain = chain_lib.ModelChain(models, schedule)
    enc = chain.encode_spectrum(params, b["spectrum_tokens"], b["formula_tokens"])
    z_h = chain.embed_atoms(params, b["atom_types"], b["atom_mask"], enc)
    expected = chain.decode_latent(params, z0_of(z_h, b["atom_mask"]), z_h, b["atom_mask"])
    for j in range(2):
        np.testing.assert_allclose(x[:, j], expected, atol=2e-3)
    assert not np.allclose(x[0, 0, :3], x[1, 0, :3])
