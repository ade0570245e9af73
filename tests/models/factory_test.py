"""Factory contract, configs and the summary tool (configs/test.py sizes)."""

import jax
import numpy as np
import pytest

from configs import common, qm9s
from configs import test as test_config
from irgeodiff_jax.models import costs, factory
from irgeodiff_jax.models.autoencoder import Autoencoder
from irgeodiff_jax.models.denoiser import Denoiser
from irgeodiff_jax.models.spectral_encoder import SpectralClassifier


def test_parse_arg_types_and_errors():
    args = common.parse_arg(
        " stage=autoencoder , size=small,flag=false,n=3", stage="all", size="base", flag=True, n=1
    )
    assert (args.stage, args.size, args.flag, args.n) == ("autoencoder", "small", False, 3)
    assert common.parse_arg(None, stage="all").stage == "all"
    with pytest.raises(ValueError, match="unknown config arg 'sise'"):
        common.parse_arg("sise=small", size="base")
    with pytest.raises(ValueError, match="key=value"):
        common.parse_arg("small", size="base")
    with pytest.raises(ValueError, match="not a int"):
        common.parse_arg("n=three", n=1)
    with pytest.raises(ValueError, match="unknown model size"):
        common.model_config("huge")


def test_qm9s_config_has_paper_sizes():
    config = qm9s.get_config("stage=autoencoder")
    assert config.stage == "autoencoder" and config.size == "base"
    enc, ae, den = (config.model.spectral_encoder, config.model.autoencoder, config.model.denoiser)
    assert (enc.dim, enc.num_heads, enc.ff_dim) == (512, 8, 2048)
    assert (enc.num_encoder_layers, enc.num_decoder_layers, enc.embedding) == (
        4,
        4,
        "token_attention",
    )
    assert (ae.latent_h_dim, ae.cross_attention.dim, ae.cross_attention.num_layers) == (16, 512, 4)
    assert (ae.encoder_layers, ae.decoder_layers, ae.hidden_dim) == (1, 9, 256)
    assert (den.num_layers, den.hidden_dim, den.edge.dim, den.edge.num_layers) == (9, 256, 512, 4)
    assert den.edge.out_dim == 16 and config.data.max_atoms == 29
    assert config.data.atom_types == (1, 6, 7, 8, 9) and config.data.spectrum_points == 3200


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


def test_summary_counts_and_flops_ordering():
    config = test_config.get_config()
    result = costs.summarize(config, batch=2, num_atoms=6, compile_=False)
    params = result["params"]
    models = factory.create_models(config)
    shapes = jax.eval_shape(lambda k: factory.init_params(models, config, k), jax.random.key(0))
    assert params["denoiser"] == costs.count_params(shapes["denoiser"]) > 0
    assert params["total"] == params["classifier"] + params["autoencoder"] + params["denoiser"]
    assert 0 < result["denoiser_forward_gflops"] < result["denoiser_forward_gflops_ordered_pairs"]
    assert (
        result["denoiser_forward_gflops_ordered_pairs"]
        < (result["denoiser_forward_gflops_unoptimised"])
    )
    assert result["denoiser_prepare_gflops"] > 0
