"""The shipped embedded QM9-IR subset: size, manifest, checksum, splits, reproducibility."""

import os
import shutil

import numpy as np
import pytest

from data_pipeline import build_qm9_ir, embedded, merge_shards, prepare, shard_io


@pytest.fixture(scope="module")
def info():
    return embedded.manifest()


@pytest.fixture(scope="module")
def molecules():
    return embedded.load_embedded(include_screened=True)


def test_at_least_2000_molecules_with_consistent_counts(info):
    c = info["counts"]
    assert c["kept"] >= 2000
    assert c["built"] + c["failed"] == c["selected"]
    assert c["kept"] + c["screened_out"] == c["built"]
    assert c["train"] + c["validation"] + c["test"] == c["kept"]
    assert c["test"] == embedded.EMBEDDED_NUM_TEST == 200
    assert len(info["screened_out"]) == c["screened_out"] and len(info["failures"]) == c["failed"]
    assert sum(info["screening_by_category"].values()) == c["screened_out"]
    assert info["builder_version"] == build_qm9_ir.BUILDER_VERSION
    assert info["build_info"]["selection"] == {"mode": "sample", "num": c["selected"], "seed": 0}


def test_checksum_and_file_size_match_the_manifest(info):
    path = os.path.join(embedded.embedded_dir(), embedded.NPZ_NAME)
    assert shard_io.sha256_file(path) == info["files"][embedded.NPZ_NAME]["sha256"]
    assert os.path.getsize(path) == info["files"][embedded.NPZ_NAME]["bytes"]


def test_loaded_molecules_match_the_splits(info, molecules):
    kept = embedded.load_embedded()
    assert len(kept) == info["counts"]["kept"] and len(molecules) == info["counts"]["built"]
    split = embedded.splits()
    union = np.concatenate([split["train"], split["validation"], split["test"]])
    assert sorted(union.tolist()) == sorted(m.id for m in kept)
    screened = {int(k) for k in info["screened_out"]}
    assert screened.isdisjoint(union.tolist()) and screened.isdisjoint(map(int, info["failures"]))
    for m in kept[:50]:
        assert m.source == "qm9_ir" and m.has_sticks and m.positions_angstrom.dtype == np.float32
        assert m.frequencies_cm1.shape == m.intensities_km_mol.shape
        assert m.frequencies_cm1.shape[0] in (3 * m.num_atoms - 6, 3 * m.num_atoms - 5)


def test_embedded_molecules_prepare_to_schema_v1(molecules):
    ex = prepare.prepare_example(molecules[0], scheme="qm9s", frequency_scale=1.0, max_atoms=29)
    assert ex["spectrum"].shape == (3200,) and ex["fg_labels"].shape == (20,)
    assert ex["atomic_numbers"].dtype == np.int32 and ex["positions"].dtype == np.float32


@pytest.mark.parametrize("damage", ["truncate", "flip"])
def test_corrupt_file_is_a_clear_error(tmp_path, damage):
    src = embedded.embedded_dir()
    for name in (embedded.NPZ_NAME, embedded.MANIFEST_NAME):
        shutil.copy(os.path.join(src, name), tmp_path / name)
    data = (tmp_path / embedded.NPZ_NAME).read_bytes()
    if damage == "truncate":
        data = data[: len(data) - 1000]
    else:
        data = data[:5000] + bytes([data[5000] ^ 0xFF]) + data[5001:]
    (tmp_path / embedded.NPZ_NAME).write_bytes(data)
    with pytest.raises(embedded.EmbeddedDataError, match="corrupt or truncated") as err:
        embedded.load_embedded(str(tmp_path))
    assert "\n" not in str(err.value)


def test_missing_directory_is_a_clear_error(tmp_path):
    with pytest.raises(embedded.EmbeddedDataError, match="manifest not found"):
        embedded.load_embedded(str(tmp_path))


def test_rebuilding_three_molecules_reproduces_the_stored_sticks(molecules, tmp_path):
    """Acceptance 2: the builder reproduces stored molecules (the 3 smallest, to stay fast)."""
    chosen = sorted(molecules, key=lambda m: (m.num_atoms, m.id))[:3]
    indices = ",".join(str(m.id) for m in chosen)
    argv = ["--out", str(tmp_path), "--indices", indices, "--workers", "2", "--no_progress"]
    assert build_qm9_ir.main(argv) == 0
    rebuilt = {m.id: m for m in merge_shards.read_build(str(tmp_path))}
    for m in chosen:
        r = rebuilt[m.id]
        assert r.smiles == m.smiles
        np.testing.assert_array_equal(r.atomic_numbers, m.atomic_numbers)
        np.testing.assert_allclose(r.frequencies_cm1, m.frequencies_cm1, rtol=1e-4, atol=1e-4)
        np.testing.assert_allclose(r.intensities_km_mol, m.intensities_km_mol, rtol=1e-4, atol=1e-4)
        np.testing.assert_allclose(r.positions_angstrom, m.positions_angstrom, atol=1e-4)


@pytest.mark.slow
def test_screening_reproduces_the_manifest(info, molecules):
    report = prepare.screening_report(
        molecules, tolerance_angstrom=info["screening_tolerance_angstrom"]
    )
    assert report["removed"] == info["screened_out"]
    assert report["by_category"] == info["screening_by_category"]
    assert report["by_detail"] == info["screening_by_detail"]
