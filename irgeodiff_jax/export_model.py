"""Export a trained run as a model directory: ``python -m irgeodiff_jax.export_model``.

    python -m irgeodiff_jax.export_model --workdir=W --out=irgeodiff_jax/pretrained

Writes ``config.json``, ``params.msgpack`` (EMA parameters of the diffusion stage) and
``model.json`` (provenance) atomically; ``--out=irgeodiff_jax/pretrained`` replaces the model
shipped with the package (see ``training/shipped.py``). Errors: one line, exit status 2.
"""

import json
import sys

from absl import flags

from irgeodiff_jax.utils import cli

_WORKDIR = flags.DEFINE_string("workdir", None, "training workdir with a diffusion checkpoint")
_OUT = flags.DEFINE_string("out", None, "model directory to write")
flags.mark_flags_as_required(["workdir", "out"])


def main(argv):
    if len(argv) > 1:
        cli.exit_usage(f"export_model: error: unexpected arguments: {argv[1:]}")
    from irgeodiff_jax.training import checkpointing, shipped  # noqa: PLC0415
    from irgeodiff_jax.training import workdir as workdirs  # noqa: PLC0415

    try:
        meta = shipped.export_model(_WORKDIR.value, _OUT.value)
    except (workdirs.InferenceError, checkpointing.CheckpointError) as e:
        print(f"error: {type(e).__name__}: {e}", file=sys.stderr)
        sys.exit(2)
    print(json.dumps(meta))


if __name__ == "__main__":
    cli.run(main, "export_model")
