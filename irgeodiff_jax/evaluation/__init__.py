"""Evaluation: the samples-directory format, metric aggregation and report plots.

``samples_format`` is the contract between ``sample`` (writer) and ``evaluate``/``predict``
(readers); ``metrics`` turns per-sample results from ``chem.worker`` into the paper's numbers;
``plots`` draws the report figures.
"""
