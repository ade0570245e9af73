"""Training entry point: ``python -m irgeodiff_jax.train --config=<file>[:args] --workdir=<dir>``.

Examples::

    python -m irgeodiff_jax.train --config=configs/qm9s.py:stage=all --workdir=$WORKDIR
    python -m irgeodiff_jax.train --config=configs/test.py:stage=classifier --workdir=/tmp/w \\
        --config.training.num_steps=20

``--config.a.b=value`` overrides an existing field (the config is locked). Re-running the same
command with the same ``--workdir`` resumes. Multi-host runs set ``IRGEODIFF_DISTRIBUTED=1``
(see ``launch/``). Known failures end with one line on stderr: usage and input errors (a bad or
missing flag or config file, missing data, indivisible batch, incompatible or unreadable
checkpoint, bad config) with exit status 2, a non-finite loss with exit status 1. A SIGTERM
saves a checkpoint and exits with status 0.
"""

import logging as std_logging
import sys

from absl import flags, logging
from ml_collections import config_flags

from irgeodiff_jax.training import distributed
from irgeodiff_jax.utils import cli

_CONFIG = config_flags.DEFINE_config_file(
    "config", None, "Config file, e.g. configs/qm9s.py:stage=all.", lock_config=True
)
_WORKDIR = flags.DEFINE_string("workdir", None, "Directory for checkpoints and metrics.")
flags.mark_flags_as_required(["config", "workdir"])


def _known_errors() -> tuple[type[BaseException], ...]:
    from irgeodiff_jax.data.embedded_subset import EmbeddedDataError  # noqa: PLC0415
    from irgeodiff_jax.data.features import ExampleError  # noqa: PLC0415
    from irgeodiff_jax.data.input_pipeline import IteratorStateError  # noqa: PLC0415
    from irgeodiff_jax.data.sources import SourceError  # noqa: PLC0415
    from irgeodiff_jax.training import checkpointing, trainer  # noqa: PLC0415
    from irgeodiff_jax.training import workdir as workdirs  # noqa: PLC0415
    from irgeodiff_jax.training.optim import OptimizerConfigError  # noqa: PLC0415
    from irgeodiff_jax.training.sharding import ShardingError  # noqa: PLC0415
    from irgeodiff_jax.training.step import StageError  # noqa: PLC0415

    return (
        EmbeddedDataError,
        ExampleError,
        IteratorStateError,
        SourceError,
        checkpointing.CheckpointError,
        workdirs.InferenceError,
        trainer.NonFiniteLossError,
        trainer.ConfigError,
        OptimizerConfigError,
        ShardingError,
        StageError,
        distributed.DistributedConfigError,
    )


class _QuietOrbax(std_logging.Filter):
    """Drops Orbax's INFO chatter (several lines per checkpoint); keeps its warnings."""

    def filter(self, record: std_logging.LogRecord) -> bool:
        return record.levelno >= std_logging.WARNING or "/orbax/" not in record.pathname


def _hooks(config) -> tuple:
    """The sample check of the diffusion stage when ``training.sample_check.every_steps > 0``."""
    from irgeodiff_jax.diffusion import schedules  # noqa: PLC0415
    from irgeodiff_jax.sampling import sample_check  # noqa: PLC0415

    runs_diffusion = config.stage in ("all", "diffusion")
    if not runs_diffusion or sample_check.settings_of(config)["every_steps"] <= 0:
        return ()
    from irgeodiff_jax.models import factory  # noqa: PLC0415

    models = factory.create_models(config)
    schedule = schedules.schedule_from_config(config.diffusion)
    return (sample_check.SampleCheck(config, models, schedule),)


def main(argv):
    if len(argv) > 1:
        cli.exit_usage(f"train: error: unexpected arguments: {argv[1:]}")
    config = cli.config_value(_CONFIG, "train")
    logging.get_absl_handler().addFilter(_QuietOrbax())
    try:
        distributed.maybe_initialize()
        from irgeodiff_jax.training import trainer  # noqa: PLC0415  (after distributed init)

        results = trainer.train_and_evaluate(config, _WORKDIR.value, _hooks(config))
    except _known_errors() as e:
        from irgeodiff_jax.training import trainer  # noqa: PLC0415

        print(f"error: {type(e).__name__}: {e}", file=sys.stderr)
        sys.exit(1 if isinstance(e, trainer.NonFiniteLossError) else cli.USAGE_EXIT_STATUS)
    for stage, r in results.items():
        state = "preempted (SIGTERM; re-run to resume)" if r.preempted else "done"
        logging.info("stage %s: %s at step %d/%d", stage, state, r.final_step, r.num_steps)


if __name__ == "__main__":
    cli.run(main, "train")
