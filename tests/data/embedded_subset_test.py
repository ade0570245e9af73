"""The runtime reads and prepares the embedded subset itself (no data_pipeline needed)."""

import json
import subprocess
import sys

import numpy as np
import pytest

from irgeodiff_jax.data import embedded_subset, npz_io

_BLOCK_DATA_PIPELINE = """
import importlib.abc, json, sys

class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == "data_pipeline" or name.startswith("data_pipeline."):
            raise ImportError(f"runtime imported {name}")

sys.meta_path.insert(0, Block())
from irgeodiff_jax.data import sources
test = sources.get_source({"source": "embedded"}, "test")
print(json.dumps({"ids": [int(test[i]["id"]) for i in range(len(test))],
                  "spectrum_max": float(test[0]["spectrum"].max())}))
"""


def test_embedded_source_needs_no_data_pipeline():
    out = subprocess.run(
        [sys.executable, "-c", _BLOCK_DATA_PIPELINE], capture_output=True, text=True, check=True
    )
    got = json.loads(out.stdout.strip().splitlines()[-1])
    assert got["ids"] == embedded_subset.splits()["test"].tolist()
    assert len(got["ids"]) == 200 and got["spectrum_max"] == 1.0


def test_raw_molecules_follow_the_offsets():
    arrays = {
        "ids": np.array([7, 9]),
        "smiles": np.array(["C", "N"]),
        "energy_hartree": np.array([-1.0, -2.0]),
        "atom_offsets": np.array([0, 1, 3]),
        "atomic_numbers": np.array([6, 7, 1], np.uint8),
        "positions_angstrom": np.arange(9, dtype=np.float64).reshape(3, 3),
        "mode_offsets": np.array([0, 2, 3]),
        "frequencies_cm1": np.array([1000.0, 2000.0, 3000.0]),
        "intensities_km_mol": np.array([1.0, 2.0, 3.0]),
    }
    first, second = embedded_subset.raw_molecules(arrays)
    assert (first.id, first.smiles, second.id, second.smiles) == (7, "C", 9, "N")
    assert second.atomic_numbers.tolist() == [7, 1] and second.atomic_numbers.dtype == np.int32
    assert second.positions_angstrom.dtype == np.float32
    assert second.positions_angstrom.shape == (2, 3)
    assert first.frequencies_cm1.tolist() == [1000.0, 2000.0] and second.has_sticks


def test_load_npz_raises_the_callers_error(tmp_path):
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"not a zip")
    with pytest.raises(embedded_subset.EmbeddedDataError, match="bad.npz: corrupt or truncated"):
        npz_io.load_npz(str(bad), error=embedded_subset.EmbeddedDataError)
    with pytest.raises(ValueError, match="missing.npz: file not found"):
        npz_io.load_npz(str(tmp_path / "missing.npz"))
