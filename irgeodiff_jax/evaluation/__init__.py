"""Evaluation: the samples-directory format, scoring, metric aggregation and reports.

``samples_format`` is the contract between ``sample`` (writer) and ``evaluate``/``predict``
(readers); ``scoring`` scores every sample of a directory in the ``chem.worker`` pool into
``per_sample.jsonl`` (read back by ``results``); ``metrics`` turns those results into the
paper's numbers; ``report`` writes metrics.json, per_spectrum.csv and the ``plots``, and formats
the metrics table printed by ``evaluate`` and ``quickstart``.
"""
