"""grow_embedded: a build's new molecules join train; validation and test stay the base's."""

import json
import os

import numpy as np
import pytest

from data_pipeline import embedded, grow_embedded, shard_io
from irgeodiff_jax.data import embedded_subset, npz_io

NEW = 10**6  # ids far outside QM9's, so they are new to the base


def _row(mol: dict, new_id: int) -> dict:
    return {
        "id": new_id,
        "atomic_numbers": mol["atomic_numbers"].astype(np.int32),
        "positions": mol["positions_angstrom"].astype(np.float64),
        "frequencies": mol["frequencies_cm1"].astype(np.float64),
        "intensities": mol["intensities_km_mol"].astype(np.float64),
        "energy": mol["energy_hartree"],
        "num_imaginary": 0,
        "max_gradient": 1e-5,
    }


@pytest.fixture(scope="module")
def build(tmp_path_factory):
    """Chunk 7 of a build: two new molecules, one whose SMILES disagrees with its geometry, one
    the base already holds, and one failure; build_info with the base's settings."""
    out = str(tmp_path_factory.mktemp("build"))
    base = embedded.manifest()
    mols = npz_io.molecules(embedded_subset.load_arrays())
    train_id = int(base["splits"]["train"][0])
    known = next(m for m in mols if m["id"] == train_id)
    rows = [_row(mols[0], NEW + 1), _row(mols[1], NEW + 2), _row(mols[2], NEW + 3)]
    rows += [_row(known, train_id), {"id": NEW + 4, "error": "xtb: SCF did not converge"}]
    smiles = [mols[0]["smiles"], mols[1]["smiles"], mols[0]["smiles"], known["smiles"], ""]
    shard_io.write_shard(out, 7, rows, smiles)
    with open(os.path.join(out, "build_info.json"), "w") as f:
        json.dump({**base["build_info"], "shard": "7/200"}, f)
    return out


def test_new_molecules_join_train_and_evaluation_splits_are_the_base(build, tmp_path):
    base = embedded.manifest()
    doc = grow_embedded.grow(build, str(tmp_path))
    for split in ("validation", "test"):
        assert doc["splits"][split] == base["splits"][split]
    assert doc["splits"]["train"] == sorted([*base["splits"]["train"], NEW + 1, NEW + 2])
    assert str(NEW + 3) in doc["screened_out"] and doc["failures"][str(NEW + 4)].startswith("xtb")
    grown = doc["grown"]
    assert (grown["new_built"], grown["new_kept"], grown["new_screened_out"]) == (3, 2, 1)
    assert grown["build_chunks"] == [7] and grown["new_failed"] == 1
    c = doc["counts"]
    assert c["train"] + c["validation"] + c["test"] == c["kept"] == base["counts"]["kept"] + 2
    assert c["built"] + c["failed"] == c["selected"]
    # The written directory reads back like the package's (checksum verified).
    kept = embedded.load_embedded(str(tmp_path))
    ids = [m.id for m in embedded.load_embedded(str(tmp_path), include_screened=True)]
    assert len(ids) == len(set(ids)) == base["counts"]["built"] + 3
    assert sorted(m.id for m in kept) == sorted(sum(doc["splits"].values(), []))
    new = next(m for m in kept if m.id == NEW + 2)
    ref = npz_io.molecules(embedded_subset.load_arrays())[1]
    np.testing.assert_array_equal(new.positions_angstrom, ref["positions_angstrom"])
    np.testing.assert_array_equal(new.intensities_km_mol, ref["intensities_km_mol"])
    assert new.smiles == ref["smiles"]


def test_other_xtb_settings_are_refused_in_one_line(build, tmp_path, capsys):
    path = os.path.join(build, "build_info.json")
    with open(path) as f:
        info = json.load(f)
    other = str(tmp_path / "other")
    os.makedirs(other)
    for name in os.listdir(build):
        if name.startswith("shard-"):
            os.link(os.path.join(build, name), os.path.join(other, name))
    with open(os.path.join(other, "build_info.json"), "w") as f:
        json.dump({**info, "settings": {**info["settings"], "scf_accuracy": 1.0}}, f)
    assert grow_embedded.main(["--build_dir", other, "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "settings" in err and err.count("\n") == 1
    assert not os.path.exists(tmp_path / "out" / embedded.MANIFEST_NAME)


def test_a_build_of_known_molecules_only_is_an_error(tmp_path):
    out = str(tmp_path / "build")
    os.makedirs(out)
    base = embedded.manifest()
    mol = npz_io.molecules(embedded_subset.load_arrays())[0]
    shard_io.write_shard(out, 0, [_row(mol, mol["id"])], [mol["smiles"]])
    with open(os.path.join(out, "build_info.json"), "w") as f:
        json.dump(base["build_info"], f)
    with pytest.raises(grow_embedded.GrowError, match="no molecule"):
        grow_embedded.grow(out, str(tmp_path / "out"))
