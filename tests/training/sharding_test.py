import jax
import jax.numpy as jnp
import numpy as np
import pytest

from irgeodiff_jax.training import distributed, sharding


def test_mesh_and_batch_sharding_on_four_devices():
    assert jax.device_count() == 4, "tests run on 4 simulated CPU devices (tests/conftest.py)"
    mesh = sharding.make_mesh()
    batch = {"x": np.arange(8 * 3, dtype=np.float32).reshape(8, 3), "m": np.ones((8,), bool)}
    g = sharding.shard_batch(batch, mesh)
    assert g["x"].shape == (8, 3)
    assert len(g["x"].addressable_shards) == 4
    assert {s.data.shape for s in g["x"].addressable_shards} == {(2, 3)}
    np.testing.assert_array_equal(np.asarray(g["x"]), batch["x"])
    total = jax.jit(lambda b: jnp.sum(b["x"]))(g)
    assert float(total) == float(batch["x"].sum())


def test_batch_not_divisible_is_a_clear_error():
    mesh = sharding.make_mesh()
    with pytest.raises(sharding.ShardingError, match="not divisible by the 4 devices"):
        sharding.check_batch_size(6, mesh)
    assert sharding.check_batch_size(8, mesh) == 8
    with pytest.raises(sharding.ShardingError, match="asked for 9 devices"):
        sharding.make_mesh(9)


def test_maybe_initialize_is_off_by_default():
    assert distributed.maybe_initialize(env={}) is False


def test_explicit_arguments_checked_up_front():
    assert distributed.explicit_arguments({}) is None
    env = {"JAX_COORDINATOR_ADDRESS": "10.0.0.1:1234", "NUM_PROCESSES": "2", "PROCESS_ID": "1"}
    assert distributed.explicit_arguments(env) == {
        "coordinator_address": "10.0.0.1:1234",
        "num_processes": 2,
        "process_id": 1,
    }
    with pytest.raises(distributed.DistributedConfigError, match="PROCESS_ID missing"):
        distributed.explicit_arguments({"JAX_COORDINATOR_ADDRESS": "h:1", "NUM_PROCESSES": "2"})
    with pytest.raises(distributed.DistributedConfigError, match="not in"):
        distributed.explicit_arguments({**env, "PROCESS_ID": "2"})
