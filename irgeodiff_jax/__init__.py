"""irgeodiff-jax: 3D molecular geometries from infrared spectra (IR-GeoDiff) in JAX/Flax.

Subpackages:
  chem       RDKit + tblite chemistry (numpy in/out; never imports the models).
  models     Flax Linen modules (never import RDKit).
  diffusion  pure-JAX noise schedules, losses and samplers (no Flax).
  data       runtime input pipeline (numpy batches of fixed shape).
  training   train state, steps, optimiser, sharding, checkpoints.
  utils      small shared helpers (geometry).
"""

__version__ = "0.1.0"
