"""utils.atomic: complete files or the old ones, no temporary files left, umask permissions."""

import json
import os

import numpy as np
import pytest

from irgeodiff_jax.utils import atomic


def _names(directory) -> list[str]:
    return sorted(os.listdir(directory))


def test_writers_round_trip_and_create_the_directory(tmp_path):
    out = tmp_path / "new" / "dir"
    atomic.write_bytes(str(out / "a.bin"), b"\x00\x01")
    atomic.write_text(str(out / "b.txt"), "π\n")
    atomic.write_json(str(out / "c.json"), {"b": 1, "a": [1.5]})
    atomic.savez(str(out / "d.npz"), {"x": np.arange(3), "s": np.array(["q"])})
    assert (out / "a.bin").read_bytes() == b"\x00\x01"
    assert (out / "b.txt").read_text(encoding="utf-8") == "π\n"
    text = (out / "c.json").read_text()
    assert json.loads(text) == {"a": [1.5], "b": 1}
    assert text.index('"a"') < text.index('"b"') and text.endswith("}\n")
    with np.load(out / "d.npz") as f:
        np.testing.assert_array_equal(f["x"], np.arange(3))
        assert f["s"].tolist() == ["q"]
    assert _names(out) == ["a.bin", "b.txt", "c.json", "d.npz"]


def test_overwrite_replaces_the_whole_file(tmp_path):
    path = str(tmp_path / "f.txt")
    atomic.write_text(path, "a much longer first version\n")
    atomic.write_text(path, "short\n")
    assert open(path).read() == "short\n"
    assert _names(tmp_path) == ["f.txt"]


def test_failure_keeps_the_old_file_and_removes_the_temporary(tmp_path):
    path = str(tmp_path / "keep.json")
    atomic.write_json(path, {"v": 1})
    with pytest.raises(TypeError):
        atomic.write_json(path, {"v": object()})  # not serialisable: fails before any write
    with pytest.raises(RuntimeError, match="writer died"), atomic.replacing(path) as tmp:
        with open(tmp, "w") as f:
            f.write('{"v": 2, "trunc')
        raise RuntimeError("writer died")
    assert json.loads(open(path).read()) == {"v": 1}
    assert _names(tmp_path) == ["keep.json"]


def test_replacing_names_a_hidden_file_with_the_target_extension(tmp_path):
    path = tmp_path / "plot.png"
    with atomic.replacing(str(path)) as tmp:
        name = os.path.basename(tmp)
        assert os.path.dirname(tmp) == str(tmp_path)
        assert name.startswith(atomic.TMP_PREFIX) and name.endswith("plot.png")
        assert not os.path.exists(tmp)  # the caller creates it
        with open(tmp, "wb") as f:
            f.write(b"png")
    assert path.read_bytes() == b"png"


def test_a_block_that_writes_nothing_is_an_error_and_leaves_the_target(tmp_path):
    path = tmp_path / "x.txt"
    path.write_text("old")
    with pytest.raises(FileNotFoundError), atomic.replacing(str(path)):
        pass
    assert path.read_text() == "old"


def test_permissions_follow_the_umask(tmp_path):
    old = os.umask(0o022)
    try:
        atomic.write_bytes(str(tmp_path / "m"), b"")
    finally:
        os.umask(old)
    assert os.stat(tmp_path / "m").st_mode & 0o777 == 0o644
