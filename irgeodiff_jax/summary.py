"""Parameter counts and denoiser FLOPs of a config, printed as one JSON object.

Usage:

  python -m irgeodiff_jax.summary --config=configs/qm9s.py
  python -m irgeodiff_jax.summary --config=configs/test.py --nocompile

Parameters are shaped with ``jax.eval_shape`` (nothing is allocated). FLOPs come from XLA's
cost analysis of the jitted denoiser at ``--batch_size`` x ``--num_atoms`` (default 64 x 29):
of the compiled executable (default) or, with ``--nocompile``, of the lowered HLO. The keys are
described in ``models/costs.py``. Usage errors give one line on stderr and exit status 2.
"""

import json

from absl import flags
from ml_collections import config_flags

from irgeodiff_jax.models import costs
from irgeodiff_jax.utils import cli

_CONFIG = config_flags.DEFINE_config_file("config", None, "Config file.", lock_config=True)
_BATCH = flags.DEFINE_integer("batch_size", 64, "Molecules per denoiser call.")
_ATOMS = flags.DEFINE_integer("num_atoms", 29, "Padded atoms per molecule.")
_COMPILE = flags.DEFINE_bool(
    "compile", True, "Cost analysis of the compiled executable (else of the lowered HLO)."
)


def main(argv):
    if len(argv) > 1:
        cli.exit_usage(f"summary: error: unexpected arguments: {argv[1:]}")
    config = cli.config_value(_CONFIG, "summary")
    summary = costs.summarize(config, _BATCH.value, _ATOMS.value, _COMPILE.value)
    print(json.dumps(summary))


if __name__ == "__main__":
    flags.mark_flags_as_required(["config"])
    cli.run(main, "summary")
