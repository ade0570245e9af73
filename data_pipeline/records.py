"""``RawMolecule`` (and ``SOURCES``), defined in ``irgeodiff_jax.data.records``; re-exported here
for the offline readers, which yield it."""

from irgeodiff_jax.data.records import SOURCES as SOURCES
from irgeodiff_jax.data.records import RawMolecule as RawMolecule
