"""Tests of irgeodiff_jax.utils."""
