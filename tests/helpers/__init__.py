"""Helpers shared by several test modules (test modules import these, never each other).

``cli``: the repository root and ``run_cli`` (``python -m`` a module in a subprocess);
``datasets``: tiny build directories, embedded-format datasets and release-format files from
real QM9 geometries, and ``tiny_config``; ``model_params``: numpy-drawn model parameters and
inputs; ``samples``: QM9 molecules and samples-directory chunks for the evaluation tests;
``faulty_scoring``: a scoring function that crashes or hangs on chosen samples; ``png``: checks
a written figure; ``train_step``: ahead-of-time compiled train/eval steps and synthetic batches;
``trained_model``: a tiny model trained once per session (the ``trained_workdir`` fixture in
``tests/conftest.py``).
"""
