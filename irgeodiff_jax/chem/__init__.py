"""Chemistry layer: bond assignment, spectra, xTB oracle, formulas, functional groups, scoring.

Numpy in, numpy or RDKit out. Never imports JAX model code."""
