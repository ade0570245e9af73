"""tfds builders: build tiny qm9_ir / qm9s / qme14s datasets, read them back without TensorFlow."""

import subprocess
import sys

import numpy as np
import pytest
import tensorflow_datasets as tfds

from data_pipeline import (
    merge_shards,
    prepare,
    qm9pack_source,
    qm9s_release,
    tfds_builders,
)
from tests.helpers.datasets import random_spectra, write_build_dir, write_wide_csv, write_xyz

NUM = 14


@pytest.fixture(scope="module")
def mols():
    return qm9pack_source.molecules(qm9pack_source.sample_indices(NUM, seed=5))


@pytest.fixture(scope="module")
def qm9_ir_dir(tmp_path_factory, mols):
    root = tmp_path_factory.mktemp("qm9_ir")
    write_build_dir(root / "build", mols)
    tfds_builders.build("qm9_ir", str(root / "build"), str(root / "tfds"), num_test=2)
    return root


def test_qm9_ir_reads_back_through_data_source(qm9_ir_dir):
    ds = tfds.data_source("qm9_ir", data_dir=str(qm9_ir_dir / "tfds"))
    assert set(ds) == {"train", "validation", "test"}
    builder = tfds.builder_from_directory(str(next((qm9_ir_dir / "tfds" / "qm9_ir").iterdir())))
    meta = builder.info.metadata
    kept = NUM - meta["screened_out"] - len(meta["prepare_failed"])
    assert sum(len(s) for s in ds.values()) == kept
    assert len(ds["test"]) == 2 and meta["split_ids_counts"]["test"] == 2
    assert meta["screened_out"] == len(meta["screened_out_ids"])
    raws = {r.id: r for r in merge_shards.read_build(str(qm9_ir_dir / "build"))}
    ex = ds["train"][0]
    expected = prepare.prepare_example(raws[int(ex["id"])], scheme="qm9s", frequency_scale=1.0)
    for key in ("atomic_numbers", "positions", "spectrum", "fg_labels", "formula_tokens"):
        np.testing.assert_array_equal(ex[key], expected[key])
        assert ex[key].dtype == expected[key].dtype
    assert ex["smiles"].decode() == expected["smiles"] and ex["formula"].decode() == "".join(
        expected["formula"]
    )


def test_splits_are_disjoint_and_match_prepare_split_ids(qm9_ir_dir):
    ds = tfds.data_source("qm9_ir", data_dir=str(qm9_ir_dir / "tfds"))
    ids = {k: sorted(int(s[i]["id"]) for i in range(len(s))) for k, s in ds.items()}
    assert not set(ids["train"]) & set(ids["test"]) and not set(ids["train"]) & set(
        ids["validation"]
    )
    expected = prepare.split_ids(sum(ids.values(), []), seed=0, num_test=2)
    assert {k: v.tolist() for k, v in expected.items()} == ids


def test_reading_needs_no_tensorflow(qm9_ir_dir):
    code = (
        "import sys, tensorflow_datasets as tfds;"
        f"ds = tfds.data_source('qm9_ir', data_dir={str(qm9_ir_dir / 'tfds')!r});"
        "x = ds['train'][0]; print(len(ds['train']) > 0, 'tensorflow' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["True", "False"]
    assert "tensorflow" not in sys.modules  # building in this process did not import it either


def test_qm9s_and_qme14s_builders_from_release_fixtures(tmp_path, mols):
    ids = [m.index for m in mols]
    manual = tmp_path / "qm9s_files"
    manual.mkdir()
    write_xyz(manual / qm9s_release.GEOMETRY_XYZ, mols)
    spectra = random_spectra(NUM - 1, 3501)
    spectra[0] = 0.0  # a flat spectrum: prepare fails, the build logs it and goes on
    write_wide_csv(manual / qm9s_release.IR_CSV, ids[1:], spectra)
    builder = tfds_builders.build("qm9s", str(manual), str(tmp_path / "tfds"), num_test=2)
    counts = {k: v.num_examples for k, v in builder.info.splits.items()}
    meta = builder.info.metadata
    assert meta["num_read"] == NUM - 1  # the molecule without a spectrum is left out
    if str(ids[1]) not in meta["screened_out_ids"]:
        assert "spectrum is flat" in meta["prepare_failed"][str(ids[1])]
    assert sum(counts.values()) == NUM - 1 - meta["screened_out"] - len(meta["prepare_failed"])
    on_disk = tfds.builder_from_directory(str(tmp_path / "tfds" / "qm9s" / "1.0.0")).info.metadata
    assert on_disk["prepare_failed"] == meta["prepare_failed"] and on_disk["num_read"] == NUM - 1
    ex = tfds.data_source("qm9s", data_dir=str(tmp_path / "tfds"))["test"][0]
    assert ex["spectrum"].shape == (3200,) and ex["fg_labels"].shape == (20,)

    manual14 = tmp_path / "qme14s_files"
    manual14.mkdir()
    write_xyz(manual14 / "qme14s_geometries.xyz", mols)
    write_wide_csv(manual14 / "qme14s_ir.csv", ids, random_spectra(NUM, 3500))
    b14 = tfds_builders.build("qme14s", str(manual14), str(tmp_path / "tfds"), num_test=2)
    ex14 = b14.as_data_source()["train"][0]
    assert ex14["fg_labels"].shape == (26,) and b14.info.metadata["settings"]["scheme"] == "qme14s"


def test_missing_manual_files_is_a_one_line_error(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(tfds_builders.BuildError, match=r"empty; expected: manual_dir = the QM9S"):
        tfds_builders.build("qm9s", str(tmp_path / "empty"), str(tmp_path / "tfds"))
    (tmp_path / "empty" / "readme.txt").write_text("no data here")
    with pytest.raises(qm9s_release.ReleaseFormatError, match="ir_boraden.csv: spectrum CSV not"):
        tfds_builders.build("qm9s", str(tmp_path / "empty"), str(tmp_path / "tfds"))
