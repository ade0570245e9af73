"""models.costs: parameter counts and FLOP estimates behind ``python -m irgeodiff_jax.summary``."""

import jax

from configs import test as test_config
from irgeodiff_jax.models import costs, factory


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
