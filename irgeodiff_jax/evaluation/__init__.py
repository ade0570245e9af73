"""Evaluation: scoring a samples directory, metric aggregation and reports.

``scoring`` scores every sample of a samples directory (written by ``sample``, format in
``sampling/samples_dir.py``) in the ``chem.worker`` pool into ``per_sample.jsonl`` (read back by
``results``); ``metrics`` turns those results into the paper's numbers; ``report`` writes
metrics.json, per_spectrum.csv and the ``plots``, and formats the metrics table printed by
``evaluate`` and ``quickstart``.
"""
