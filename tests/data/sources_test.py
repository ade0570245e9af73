"""data.sources: in-memory sources, tfds records read as the loader expects them, and
``get_source``'s choice between a built release and the embedded subset (fallback, log, errors)."""

import logging

import numpy as np
import pytest

from configs import test as test_config
from irgeodiff_jax.data import sources
from tests.helpers import datasets


@pytest.fixture(scope="module")
def embedded_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("sources_embedded")
    return datasets.build_embedded(str(root), num=12, num_test=2, seed=4)


@pytest.fixture(scope="module")
def built_tfds(tmp_path_factory):
    """``(data_dir, molecules)`` of a tiny ``qm9_ir`` tfds dataset."""
    from data_pipeline import tfds_builders  # noqa: PLC0415  (offline package, only here)

    root = tmp_path_factory.mktemp("sources_tfds")
    mols = datasets.qm9_molecules(16, seed=7)
    datasets.write_build_dir(root / "build", mols)
    tfds_builders.build("qm9_ir", str(root / "build"), str(root / "tfds"), num_test=2)
    return str(root / "tfds"), mols


def _data_config(**fields):
    """``configs/test.py``'s data section with ``fields`` set."""
    data = test_config.get_config().data
    data.update(fields)
    return data


def test_in_memory_source_indexes_counts_atoms_and_names_itself():
    examples = [
        {"id": 7, "atomic_numbers": np.array([6, 1, 1, 1, 1])},
        {"id": 9, "atomic_numbers": np.array([8, 1, 1])},
    ]
    src = sources.InMemorySource(iter(examples), name="two")
    assert len(src) == 2 and src[1]["id"] == 9
    assert src.num_atoms().tolist() == [5, 3] and src.num_atoms().dtype == np.int32
    assert repr(src) == "InMemorySource(name='two', len=2)"


@pytest.mark.parametrize("split", ["val", "dev", "Train"])
def test_unknown_split_fails_before_any_data_is_read(tmp_path, split):
    expected = rf"unknown split '{split}'; expected one of \('train', 'validation', 'test'\)"
    with pytest.raises(sources.SourceError, match=expected):
        sources.EmbeddedSource(split, str(tmp_path / "does_not_exist"))
    with pytest.raises(sources.SourceError, match=expected):
        sources.TfdsSource("qm9s", split, str(tmp_path / "does_not_exist"))


def test_unknown_source_name_lists_the_known_ones():
    with pytest.raises(
        sources.SourceError, match=r"data.source='qm9'; expected 'embedded' or one of \('qm9_ir'"
    ):
        sources.get_source(_data_config(source="qm9"), "train")


def test_missing_built_release_says_how_to_build_it(tmp_path):
    with pytest.raises(
        sources.SourceError,
        match=r"no built tfds dataset 'qme14s' .*python -m data_pipeline.tfds_builders "
        r"--name qme14s",
    ):
        sources.get_source(_data_config(source="qme14s", data_dir=str(tmp_path)), "test")


def test_release_without_data_dir_falls_back_to_embedded_and_logs_once(
    embedded_dir, caplog, monkeypatch
):
    monkeypatch.setattr(sources, "_LOGGED", set())
    config = _data_config(source="qm9s", embedded_dir=embedded_dir)
    with caplog.at_level(logging.INFO):
        for split in ("train", "train", "test"):
            src = sources.get_source(config, split)
            assert isinstance(src, sources.EmbeddedSource) and src.name == f"embedded/{split}"
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("data: ")]
    expected = (
        f"data: using the embedded QM9-IR subset from {embedded_dir} (data.data_dir is not set)"
    )
    assert lines == [expected]


def test_embedded_splits_are_disjoint_and_cover_the_subset(embedded_dir):
    config = _data_config(embedded_dir=embedded_dir)
    ids = {s: [int(x["id"]) for x in sources.get_source(config, s)] for s in sources.SPLITS}
    every = sum(ids.values(), [])
    assert len(every) == len(set(every)) and len(ids["test"]) == 2 and ids["train"]
    for split in sources.SPLITS:
        src = sources.get_source(config, split)
        counts = [len(src[i]["atomic_numbers"]) for i in range(len(src))]
        assert src.num_atoms().tolist() == counts


def test_tfds_records_have_str_text_and_atom_counts(built_tfds):
    data_dir, mols = built_tfds
    by_index = {m.index: m for m in mols}
    seen = []
    for split in sources.SPLITS:
        src = sources.get_source(_data_config(source="qm9_ir", data_dir=data_dir), split)
        assert isinstance(src, sources.TfdsSource) and repr(src).startswith("TfdsSource(name=")
        for i in range(len(src)):
            ex = src[i]
            assert isinstance(ex["smiles"], str) and isinstance(ex["formula"], str)
            mol = by_index[int(ex["id"])]
            assert ex["smiles"] == mol.smiles
            np.testing.assert_array_equal(ex["atomic_numbers"], mol.atomic_numbers)
            seen.append(int(ex["id"]))
        assert src.num_atoms().tolist() == [len(src[i]["atomic_numbers"]) for i in range(len(src))]
    assert len(seen) == len(set(seen)) and set(seen) <= set(by_index)
