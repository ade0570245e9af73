"""irgeodiff_jax.diffusion."""
