"""Parameter counts and denoiser FLOPs of a config (``python -m irgeodiff_jax.summary``).

Parameters are shaped with ``jax.eval_shape`` (nothing is allocated). FLOPs come from XLA's
cost analysis of the jitted denoiser at ``batch`` x ``num_atoms``: of the compiled executable
(``compile_=True``) or of the lowered HLO. Keys of ``summarize`` besides ``params``:

* ``denoiser_forward_gflops``: one denoising step as configured (``prepare`` done once per
  molecule, so the spectral K/V projections are excluded; edge pairs per
  ``config.model.denoiser.edge_pairs``).
* ``denoiser_forward_gflops_unoptimised``: the reference's cost per step: all ``N^2`` ordered
  edge pairs and the K/V projections recomputed in every call (``prepare`` + ``__call__``).
* ``denoiser_forward_gflops_ordered_pairs``: ``__call__`` with ordered pairs (isolates the
  unordered-pair saving) and ``denoiser_prepare_gflops`` (the once-per-molecule part).
"""

import jax
import jax.numpy as jnp

from irgeodiff_jax.models import factory


def count_params(tree) -> int:
    """Number of scalars in a pytree of arrays or ``ShapeDtypeStruct``s."""
    return int(sum(leaf.size for leaf in jax.tree_util.tree_leaves(tree)))


def param_shapes(config) -> dict:
    """Parameter shapes of all modules (``jax.eval_shape``, no allocation)."""
    models = factory.create_models(config)
    return jax.eval_shape(lambda key: factory.init_params(models, config, key), jax.random.key(0))


def _gflops(fn, *args, compile_: bool) -> float:
    lowered = jax.jit(fn).lower(*args)
    cost = lowered.compile().cost_analysis() if compile_ else lowered.cost_analysis()
    if isinstance(cost, list | tuple):  # older jax returned one dict per device
        cost = cost[0]
    return float(cost["flops"]) / 1e9


def denoiser_gflops(config, params, batch: int, num_atoms: int, compile_: bool) -> dict:
    """GFLOPs of the denoiser step variants (see module docstring)."""
    models = factory.create_models(config)
    cls, den = models["classifier"], models["denoiser"]
    ordered = den.clone(edge_pairs="ordered")
    x = factory.example_inputs(config, batch, num_atoms)
    encoding = jax.eval_shape(
        lambda p, s, f: cls.apply({"params": p}, s, f, deterministic=True, method="encode"),
        params["classifier"],
        x["spectrum_tokens"],
        x["formula_tokens"],
    )
    z_h = jax.ShapeDtypeStruct((batch, num_atoms, den.latent_h_dim), jnp.float32)
    step_args = (x["positions"], x["t"], z_h, x["atom_mask"])

    def prepare(p, enc):
        return den.apply({"params": p}, enc, method="prepare")

    def step(module):
        return lambda p, cond, *a: module.apply({"params": p}, *a, cond, deterministic=True)

    def full_step(p, enc, *a):
        return ordered.apply({"params": p}, *a, enc, deterministic=True, method="forward")

    cond = jax.eval_shape(prepare, params["denoiser"], encoding)
    p = params["denoiser"]
    return {
        "denoiser_forward_gflops": _gflops(step(den), p, cond, *step_args, compile_=compile_),
        "denoiser_forward_gflops_unoptimised": _gflops(
            full_step, p, encoding, *step_args, compile_=compile_
        ),
        "denoiser_forward_gflops_ordered_pairs": _gflops(
            step(ordered), p, cond, *step_args, compile_=compile_
        ),
        "denoiser_prepare_gflops": _gflops(prepare, p, encoding, compile_=compile_),
    }


def summarize(config, batch: int = 64, num_atoms: int = 29, compile_: bool = True) -> dict:
    """``params`` (counts per module and total), the GFLOPs above and ``flops_source``."""
    params = param_shapes(config)
    counts = {name: count_params(tree) for name, tree in params.items()}
    counts["total"] = sum(counts.values())
    summary = {"params": counts}
    summary.update(denoiser_gflops(config, params, batch, num_atoms, compile_))
    summary["flops_source"] = (
        f"XLA cost_analysis of the {'compiled' if compile_ else 'lowered'} jitted denoiser, "
        f"B={batch}, N={num_atoms}, dtype={config.model.dtype}, "
        f"edge_pairs={config.model.denoiser.edge_pairs}"
    )
    return summary
