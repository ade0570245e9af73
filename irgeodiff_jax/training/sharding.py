"""Data-parallel sharding over a device mesh: params replicated, batches split on the ``data`` axis.

One ``jit``-compiled step runs over ``Mesh(('data',))``. Each host produces only its slice of the
global batch (``global_batch // process_count`` examples); ``shard_batch`` assembles the global
``jax.Array`` from the host-local numpy batch.
"""

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

DATA_AXIS = "data"


class ShardingError(ValueError):
    """A batch or mesh that does not fit the devices."""


def make_mesh(num_devices: int | None = None) -> Mesh:
    """A 1-D mesh over the first ``num_devices`` devices (all devices by default)."""
    devices = jax.devices()
    if num_devices is not None:
        if not 1 <= num_devices <= len(devices):
            raise ShardingError(f"asked for {num_devices} devices, {len(devices)} available")
        devices = devices[:num_devices]
    return Mesh(np.asarray(devices), (DATA_AXIS,))


def replicated(mesh: Mesh) -> NamedSharding:
    return NamedSharding(mesh, PartitionSpec())


def batch_sharding(mesh: Mesh) -> NamedSharding:
    """Leading (batch) axis split across the ``data`` axis, other axes replicated."""
    return NamedSharding(mesh, PartitionSpec(DATA_AXIS))


def check_batch_size(global_batch: int, mesh: Mesh, process_count: int | None = None) -> int:
    """Validate divisibility; returns the per-host batch size."""
    process_count = jax.process_count() if process_count is None else process_count
    n = mesh.devices.size
    if global_batch % n:
        raise ShardingError(
            f"global batch size {global_batch} is not divisible by the {n} devices: "
            f"use a multiple of {n}"
        )
    if global_batch % process_count:
        raise ShardingError(f"global batch {global_batch} not divisible by {process_count} hosts")
    return global_batch // process_count


def shard_batch(local_batch: dict, mesh: Mesh) -> dict:
    """Host-local numpy batch -> global jax.Arrays sharded on the batch axis."""
    sharding = batch_sharding(mesh)
    n_hosts = jax.process_count()

    def put(x):
        x = np.asarray(x)
        global_shape = (x.shape[0] * n_hosts,) + x.shape[1:]
        return jax.make_array_from_process_local_data(sharding, x, global_shape)

    return jax.tree.map(put, local_batch)


def replicate(tree, mesh: Mesh):
    """Place a pytree (e.g. the train state) replicated on every device of the mesh."""
    return jax.device_put(tree, replicated(mesh))


def make_jitted_steps(models, config, stage: str, mesh):
    """``(train_step, eval_step)`` jitted with replicated state/params and a sharded batch."""
    from irgeodiff_jax.training import step  # noqa: PLC0415  (this module stays jax-only)

    repl, data = replicated(mesh), batch_sharding(mesh)
    train = jax.jit(
        step.make_train_step(models, config, stage),
        in_shardings=(repl, data, repl),
        out_shardings=(repl, repl),
        donate_argnums=0,
    )
    evaluate = jax.jit(
        step.make_eval_step(models, config, stage),
        in_shardings=(repl, data, repl),
        out_shardings=repl,
    )
    return train, evaluate
