import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from irgeodiff_jax.training import checkpointing


def _state(scale=1.0, width=4):
    return {
        "params": {"w": jnp.full((3, width), scale), "b": jnp.zeros((width,))},
        "step": jnp.asarray(int(scale), jnp.int32),
        "rng": jax.random.key_data(jax.random.key(7)),
    }


def _abstract(state):
    return jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype), state)


def test_round_trip_and_keep_last(tmp_path):
    m = checkpointing.make_manager(str(tmp_path / "ckpt"), max_to_keep=2, async_save=False)
    for s in (1, 2, 3):
        checkpointing.save(m, s, _state(float(s)), {"data": {"epoch": 0, "position": s}})
    m.wait_until_finished()
    assert m.all_steps() == [2, 3]
    step, state, extra = checkpointing.restore_latest(m, _abstract(_state()))
    assert step == 3 and extra == {"data": {"epoch": 0, "position": 3}}
    np.testing.assert_array_equal(state["params"]["w"], np.full((3, 4), 3.0))
    np.testing.assert_array_equal(state["rng"], jax.random.key_data(jax.random.key(7)))


def test_empty_directory_restores_nothing(tmp_path):
    m = checkpointing.make_manager(str(tmp_path / "ckpt"), async_save=False)
    assert checkpointing.restore_latest(m, _abstract(_state())) is None


def _truncate_arrays(step_dir):
    n = 0
    for root, _, files in os.walk(os.path.join(step_dir, "state")):
        for f in files:
            if "ocdbt" in root or f.startswith("manifest"):
                with open(os.path.join(root, f), "r+b") as fh:
                    fh.truncate(3)
                n += 1
    assert n > 0


def test_truncated_checkpoint_falls_back_to_previous(tmp_path, caplog):
    d = str(tmp_path / "ckpt")
    m = checkpointing.make_manager(d, async_save=False)
    checkpointing.save(m, 1, _state(1.0), {"k": 1})
    checkpointing.save(m, 2, _state(2.0), {"k": 2})
    m.wait_until_finished()
    _truncate_arrays(os.path.join(d, "2"))
    m = checkpointing.make_manager(d, async_save=False)
    with caplog.at_level("WARNING"):
        step, state, extra = checkpointing.restore_latest(m, _abstract(_state()))
    assert step == 1 and extra == {"k": 1}
    np.testing.assert_array_equal(state["params"]["w"], np.ones((3, 4)))
    assert any("unreadable" in r.message for r in caplog.records)


def test_all_checkpoints_unreadable_is_an_error(tmp_path):
    d = str(tmp_path / "ckpt")
    m = checkpointing.make_manager(d, async_save=False)
    checkpointing.save(m, 1, _state(1.0), {})
    m.wait_until_finished()
    _truncate_arrays(os.path.join(d, "1"))
    m = checkpointing.make_manager(d, async_save=False)
    with pytest.raises(checkpointing.CheckpointError, match="no readable checkpoint"):
        checkpointing.restore_latest(m, _abstract(_state()))


def test_different_model_shape_is_a_clear_error(tmp_path):
    m = checkpointing.make_manager(str(tmp_path / "ckpt"), async_save=False)
    checkpointing.save(m, 1, _state(1.0, width=4), {})
    m.wait_until_finished()
    with pytest.raises(checkpointing.CheckpointError, match=r"params/b is \(4,\) there but \(5,\)"):
        checkpointing.restore_latest(m, _abstract(_state(1.0, width=5)))
