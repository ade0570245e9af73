"""models.factory: modules from a config, config errors, numpy test functions (configs/test.py)."""

import numpy as np
import pytest

from configs import test as test_config
from irgeodiff_jax.models import factory
from irgeodiff_jax.models.autoencoder import Autoencoder
from irgeodiff_jax.models.denoiser import Denoiser
from irgeodiff_jax.models.spectral_encoder import SpectralClassifier


def test_create_models_types_and_config_errors():
    config = test_config.get_config("stage=diffusion")
    models = factory.create_models(config)
    assert isinstance(models["classifier"], SpectralClassifier)
    assert isinstance(models["autoencoder"], Autoencoder)
    assert isinstance(models["denoiser"], Denoiser)
    assert models["denoiser"].edge_pairs == "unordered"
    bad = test_config.get_config()
    bad.model.dtype = "float16"
    with pytest.raises(ValueError, match="config.model.dtype"):
        factory.create_models(bad)
    bad = test_config.get_config()
    bad.data.num_fg = 26
    with pytest.raises(ValueError, match="num_fg"):
        factory.create_models(bad)


def test_init_for_testing_functions_take_numpy():
    config = test_config.get_config()
    fns = factory.init_for_testing(config, seed=3)
    assert set(fns) == {"encode", "decode", "denoise", "classify"}
    rng = np.random.default_rng(0)
    batch, n = 2, 5
    x = rng.normal(size=(batch, n, 3))
    mask = np.array([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]], bool)
    x = x * mask[..., None]
    types = rng.integers(0, 5, (batch, n))
    spectrum = rng.integers(0, 100, (batch, config.data.spectrum_points))
    formula = np.zeros((batch, config.data.formula_len), np.int64)
    formula[:, :5] = rng.integers(1, 26, (batch, 5))
    t = np.array([0.1, 0.9])
    out = {
        "encode": fns["encode"](x, types, mask, spectrum, formula),
        "decode": fns["decode"](x, types, mask, spectrum, formula),
        "denoise": fns["denoise"](x, t, types, mask, spectrum, formula),
        "classify": fns["classify"](spectrum, formula),
    }
    for name in ("encode", "decode", "denoise"):
        assert out[name].shape == (batch, n, 3), name
        assert np.all(np.isfinite(out[name])) and not np.any(out[name][1, 3:]), name
    assert out["classify"].shape == (batch, config.data.num_fg)
    assert np.all(np.isfinite(out["classify"]))
