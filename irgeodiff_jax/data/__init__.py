"""irgeodiff_jax.data."""
