"""irgeodiff_jax.models."""
