"""Small shared model pieces: initialisers, sinusoidal positions, a plain MLP and the stacking of
per-layer parameters for a loop over layers.

Initialisers reproduce the PyTorch conventions of the reference code so that parameter scales
match it:

* ``xavier_normal`` / ``xavier_uniform``: ``torch.nn.init.xavier_*_`` (``fan_avg`` variance
  scaling with ``gain**2``). The reference initialises every Linear and Embedding weight of its
  Transformer parts (spectral classifier, atom/edge cross-attention) with ``xavier_normal`` and
  every bias with 0.
* ``torch_default_kernel_init`` / ``torch_default_bias_init``: the default ``torch.nn.Linear``
  initialisation (uniform in ``±1/sqrt(fan_in)`` for both weight and bias), used by the EGNN
  MLPs of the reference (EDM/GeoLDM convention).

Flax ``Dense`` kernels are ``[in, out]`` and ``Embed`` tables ``[num, dim]``; ``fan_avg`` is
symmetric in the two axes, so the xavier scales equal the PyTorch ones.
"""

from collections.abc import Callable, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

Initializer = Callable[..., jax.Array]


def xavier_normal(gain: float = 1.0) -> Initializer:
    """``torch.nn.init.xavier_normal_``: normal with std ``gain * sqrt(2 / (fan_in + fan_out))``."""
    return nn.initializers.variance_scaling(gain**2, "fan_avg", "normal")


def xavier_uniform(gain: float = 1.0) -> Initializer:
    """``torch.nn.init.xavier_uniform_``: uniform in ``±gain * sqrt(6 / (fan_in + fan_out))``."""
    return nn.initializers.variance_scaling(gain**2, "fan_avg", "uniform")


def xavier_dense(features: int, dtype, name: str | None = None) -> nn.Dense:
    """Dense layer with the reference Transformer's init: xavier-normal weights, zero bias."""
    return nn.Dense(
        features,
        kernel_init=xavier_normal(),
        bias_init=nn.initializers.zeros,
        dtype=dtype,
        name=name,
    )


def torch_default_kernel_init() -> Initializer:
    """Default ``torch.nn.Linear`` weight init: uniform in ``±1/sqrt(fan_in)``."""
    return nn.initializers.variance_scaling(1.0 / 3.0, "fan_in", "uniform")


def torch_default_bias_init(fan_in: int) -> Initializer:
    """Default ``torch.nn.Linear`` bias init: uniform in ``±1/sqrt(fan_in)``."""
    bound = 1.0 / np.sqrt(max(fan_in, 1))

    def init(key: jax.Array, shape: Sequence[int], dtype=jnp.float32) -> jax.Array:
        return jax.random.uniform(key, shape, dtype, -bound, bound)

    return init


def stack_layers(layers: Sequence):
    """Per-layer pytrees of equal structure stacked along a new leading axis (``lax.scan`` xs)."""
    return jax.tree.map(lambda *leaves: jnp.stack(leaves), *layers)


def sinusoidal_positions(length: int, dim: int) -> jax.Array:
    """Standard Transformer positional encoding (Vaswani et al. 2017).

    ``pe[p, 2i] = sin(p / 10000^(2i/dim))`` and ``pe[p, 2i+1] = cos(p / 10000^(2i/dim))``.

    Args:
      length: number of positions (positions ``0 .. length-1``).
      dim: encoding width; must be even.

    Returns:
      ``[length, dim]`` float32 array (a trace-time constant).

    Raises:
      ValueError: if ``dim`` is odd or either size is not positive.
    """
    if length <= 0 or dim <= 0 or dim % 2:
        raise ValueError(
            f"sinusoidal_positions needs length > 0 and even dim > 0, got {length=}, {dim=}"
        )
    position = np.arange(length, dtype=np.float64)[:, None]
    inv_freq = np.exp(np.arange(0, dim, 2, dtype=np.float64) * (-np.log(10000.0) / dim))
    pe = np.zeros((length, dim), dtype=np.float64)
    pe[:, 0::2] = np.sin(position * inv_freq)
    pe[:, 1::2] = np.cos(position * inv_freq)
    return jnp.asarray(pe, dtype=jnp.float32)


class MLP(nn.Module):
    """Stack of Dense layers with an activation between them.

    Attributes:
      features: output width of each Dense layer, e.g. ``(256, 256, 3)``.
      activation: nonlinearity after every layer but the last (and after the last one too if
        ``final_activation``).
      final_activation: apply ``activation`` after the last layer as well.
      use_bias_last: whether the last Dense layer has a bias.
      kernel_init: kernel initialiser of every layer (default: PyTorch Linear default).
      bias_init: bias initialiser; ``None`` means the PyTorch Linear default (uniform in
        ``±1/sqrt(fan_in)``, which depends on the input width).
      last_kernel_init: if given, overrides ``kernel_init`` for the last layer (e.g. EGNN's
        ``xavier_uniform(gain=0.001)`` on the coordinate head).
      dtype: computation dtype (parameters stay float32).
    """

    features: Sequence[int]
    activation: Callable[[jax.Array], jax.Array] = nn.silu
    final_activation: bool = False
    use_bias_last: bool = True
    kernel_init: Initializer = torch_default_kernel_init()
    bias_init: Initializer | None = None
    last_kernel_init: Initializer | None = None
    dtype: jnp.dtype = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        """Maps ``x [..., D_in]`` to ``[..., features[-1]]``."""
        if not self.features:
            raise ValueError("MLP needs at least one layer in `features`")
        last = len(self.features) - 1
        for i, width in enumerate(self.features):
            is_last = i == last
            kernel_init = self.kernel_init
            if is_last and self.last_kernel_init is not None:
                kernel_init = self.last_kernel_init
            bias_init = self.bias_init or torch_default_bias_init(x.shape[-1])
            x = nn.Dense(
                width,
                use_bias=self.use_bias_last or not is_last,
                kernel_init=kernel_init,
                bias_init=bias_init,
                dtype=self.dtype,
                name=f"dense_{i}",
            )(x)
            if not is_last or self.final_activation:
                x = self.activation(x)
        return x
