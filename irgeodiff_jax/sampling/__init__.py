"""Sampling: batched, jitted generation of geometries from spectra, and what is built on it.

``generate`` is the jitted sampler; ``runner`` restores a trained model and plans batches of
one size bucket; ``dataset`` samples a dataset split into a samples directory (``sample``);
``prediction`` and ``candidates`` turn one user spectrum and formula into ranked candidate
structures (``predict``). ``samples_dir`` is the samples-directory format, the contract between
``sample`` (writer) and ``evaluate``/``predict`` (readers).
"""
