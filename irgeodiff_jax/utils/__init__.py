"""irgeodiff_jax.utils."""
