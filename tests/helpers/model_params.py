"""Numpy-drawn model parameters and inputs: no jax.random, so no threefry compilations.

On this shared CPU machine compiling the real initialisers (and every new ``jax.random`` shape)
dominates test time; these give parameters with the models' exact shapes and scales that make
every parameter matter.
"""

import jax
import jax.numpy as jnp
import numpy as np

from irgeodiff_jax.models import factory


def random_like(shapes, seed=0, coord_scale=0.02):
    """Random float32 arrays shaped like a pytree of ``ShapeDtypeStruct``s, drawn with numpy.

    Running the real initialisers means compiling many threefry kernels, which dominates test
    time on this shared machine. Kernels get ``N(0, 1/fan_in)``, LayerNorm scales
    ``1 + N(0, 0.1)`` and other vectors ``N(0, 0.1)``, so every parameter matters. phi_x's last
    layer (``coord_out``) is scaled by ``coord_scale``: steps of order 0.1-1 move atoms far more
    than the near-identity reference init while positions stay O(1), so an absolute tolerance
    of 1e-5 stays meaningful.
    """
    rng = np.random.default_rng(seed)

    def draw(path, leaf):
        if len(leaf.shape) >= 2:
            scale = coord_scale if "coord_out" in jax.tree_util.keystr(path) else 1.0
            values = scale / np.sqrt(leaf.shape[-2]) * rng.normal(size=leaf.shape)
        else:
            base = 1.0 if getattr(path[-1], "key", None) == "scale" else 0.0
            values = base + 0.1 * rng.normal(size=leaf.shape)
        return jnp.asarray(values, jnp.float32)

    return jax.tree_util.tree_map_with_path(draw, shapes)


def without_cross_attention_kv(params: dict) -> dict:
    """The denoiser's cross-attention key/value kernels zeroed: its K/V are then their biases
    whatever the spectrum, exactly as under the null condition (zeroed tokens)."""

    def zero(path, leaf):
        names = [str(getattr(p, "key", p)) for p in path]
        hit = names[0] == "denoiser" and "cross_attn" in names and names[-2] in ("key", "value")
        hit = hit and names[-1] == "kernel"
        return np.zeros_like(leaf) if hit else leaf

    return jax.tree_util.tree_map_with_path(zero, params)


def make_batch(seed, num_real=(5, 3), n=5, spectrum_points=3200, formula_len=16):
    """Numpy inputs: first ``num_real[b]`` atoms real; padded rows have zero coords, type 0."""
    rng = np.random.default_rng(seed)
    batch = len(num_real)
    mask = (np.arange(n)[None] < np.asarray(num_real)[:, None]).astype(np.float32)
    x = rng.normal(size=(batch, n, 3)).astype(np.float32) * 1.5 * mask[..., None]
    x = (x - x.sum(1, keepdims=True) / mask.sum(1)[:, None, None]) * mask[..., None]
    types = rng.integers(0, 5, (batch, n)) * mask.astype(int)
    spectrum = rng.integers(0, 100, (batch, spectrum_points))
    formula = np.zeros((batch, formula_len), int)
    formula[:, :6] = rng.integers(1, 26, (batch, 6))
    return {"x": x, "types": types, "mask": mask, "spectrum": spectrum, "formula": formula}


def random_params(models, config, seed=0):
    """Numpy-drawn parameters with the models' exact shapes (see ``random_like``)."""
    shapes = jax.eval_shape(lambda k: factory.init_params(models, config, k), jax.random.key(0))
    return random_like(shapes, seed)
