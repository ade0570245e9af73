"""Sampling: batched, jitted generation of geometries from spectra (``generate``)."""
