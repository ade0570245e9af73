"""irgeodiff_jax.training."""
