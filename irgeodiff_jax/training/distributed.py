"""Multi-host initialisation: the one place that reads the distributed environment variables.

``maybe_initialize()`` is a no-op unless ``IRGEODIFF_DISTRIBUTED=1`` (set by the launch scripts)
or ``force=True``. On TPU pods and under SLURM, ``jax.distributed.initialize()`` discovers
everything by itself; elsewhere (generic multi-node GPU) the coordinator address, process count
and process id come from ``JAX_COORDINATOR_ADDRESS``, ``NUM_PROCESSES`` and ``PROCESS_ID``.
"""

import logging
import os

import jax

ENV_FLAG = "IRGEODIFF_DISTRIBUTED"
_EXPLICIT = ("JAX_COORDINATOR_ADDRESS", "NUM_PROCESSES", "PROCESS_ID")


class DistributedConfigError(RuntimeError):
    """The multi-host environment is incomplete or inconsistent."""


def explicit_arguments(env=None) -> dict | None:
    """Coordinator arguments from the environment, or None to let JAX auto-detect (TPU, SLURM)."""
    env = os.environ if env is None else env
    present = [k for k in _EXPLICIT if env.get(k)]
    if not present:
        return None
    missing = [k for k in _EXPLICIT if not env.get(k)]
    if missing:
        raise DistributedConfigError(
            f"multi-host: {', '.join(present)} set but {', '.join(missing)} missing; set all three"
        )
    try:
        num, pid = int(env["NUM_PROCESSES"]), int(env["PROCESS_ID"])
    except ValueError as e:
        msg = f"multi-host: NUM_PROCESSES/PROCESS_ID must be integers ({e})"
        raise DistributedConfigError(msg) from None
    if not 0 <= pid < num:
        raise DistributedConfigError(
            f"multi-host: PROCESS_ID={pid} not in [0, NUM_PROCESSES={num})"
        )
    return dict(
        coordinator_address=env["JAX_COORDINATOR_ADDRESS"], num_processes=num, process_id=pid
    )


def maybe_initialize(force: bool = False, env=None) -> bool:
    """Initialise ``jax.distributed`` when asked for; returns whether it is (now) initialised."""
    env = os.environ if env is None else env
    if not (force or env.get(ENV_FLAG) == "1"):
        return False
    if jax.distributed.is_initialized():
        return True
    kwargs = explicit_arguments(env) or {}
    jax.distributed.initialize(**kwargs)
    logging.info(
        "jax.distributed: process %d of %d, %d local / %d global devices",
        jax.process_index(),
        jax.process_count(),
        jax.local_device_count(),
        jax.device_count(),
    )
    return True
