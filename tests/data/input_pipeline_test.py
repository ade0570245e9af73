"""Tests for irgeodiff_jax.data.input_pipeline on an in-memory source of real QM9 geometries."""

import json
import logging
import subprocess
import sys

import ml_collections
import numpy as np
import pytest

from data_pipeline import qm9pack_source
from irgeodiff_jax.chem import elements
from irgeodiff_jax.data import features, input_pipeline, sources
from tests.helpers.datasets import write_build_dir

NUM_MOLECULES = 37  # not a multiple of the batch sizes below


def _example(mol, rng) -> dict:
    sticks = rng.uniform(500, 4000, size=6)
    grid = np.linspace(500, 4000, 3200)
    spectrum = np.exp(-(((grid[:, None] - sticks) / 20.0) ** 2)).sum(axis=1)
    return {
        "id": np.int64(mol.index),
        "smiles": mol.smiles,
        "formula": "",
        "atomic_numbers": mol.atomic_numbers.astype(np.int32),
        "positions": mol.positions_angstrom.astype(np.float32) + 5.0,  # off-centre on purpose
        "spectrum": (spectrum / spectrum.max()).astype(np.float32),
        "fg_labels": rng.random(20) < 0.3,
        "formula_tokens": rng.integers(0, 26, size=16).astype(np.int32),
    }


@pytest.fixture(scope="module")
def examples():
    rng = np.random.default_rng(0)
    mols = qm9pack_source.molecules(qm9pack_source.sample_indices(NUM_MOLECULES, seed=1))
    return [_example(m, rng) for m in mols]


@pytest.fixture
def source(examples):
    return sources.InMemorySource(examples, name="qm9_sample")


def _iterator(source, **kw):
    args = dict(batch_size=4, seed=0, max_atoms=29, formula_len=16, num_fg=20)
    return input_pipeline.batch_iterator(source, **(args | kw))


def _ids(batches):
    return [b.id.tolist() for b in batches]


def _take(it, n):
    return [next(it) for _ in range(n)]


def test_shapes_dtypes_and_masks(source, examples):
    batch = next(_iterator(source))
    assert batch.positions.shape == (4, 29, 3) and batch.positions.dtype == np.float32
    assert batch.atom_types.shape == (4, 29) and batch.atom_types.dtype == np.int32
    assert batch.atom_mask.dtype == np.bool_
    assert batch.spectrum.shape == (4, 3200) and batch.spectrum.dtype == np.float32
    assert batch.spectrum_tokens.shape == (4, 3200) and batch.spectrum_tokens.dtype == np.int32
    assert batch.formula_tokens.shape == (4, 16) and batch.fg_labels.shape == (4, 20)
    assert batch.fg_labels.dtype == np.float32 and batch.id.dtype == np.int64
    by_id = {int(e["id"]): e for e in examples}
    for row in range(4):
        ex = by_id[int(batch.id[row])]
        n = len(ex["atomic_numbers"])
        assert batch.num_atoms[row] == n
        np.testing.assert_array_equal(batch.atom_mask[row], np.arange(29) < n)
        vocab = list(elements.QM9S_ELEMENTS)
        expected = [vocab.index(z) for z in ex["atomic_numbers"]]
        np.testing.assert_array_equal(batch.atom_types[row, :n], expected)
        np.testing.assert_array_equal(batch.fg_labels[row], ex["fg_labels"].astype(np.float32))
        assert batch.spectrum_tokens[row].max() == 99 and batch.spectrum_tokens[row].min() >= 0


def test_zero_centre_and_zero_padding(source, examples):
    batch = next(_iterator(source))
    for row in range(4):
        n = batch.num_atoms[row]
        np.testing.assert_allclose(batch.positions[row, :n].mean(axis=0), 0.0, atol=1e-5)
        assert not batch.positions[row, n:].any() and not batch.atom_types[row, n:].any()
    # centring keeps interatomic distances
    ex = next(e for e in examples if e["id"] == batch.id[0])
    n = batch.num_atoms[0]
    d_in = np.linalg.norm(ex["positions"][:, None] - ex["positions"][None], axis=-1)
    d_out = np.linalg.norm(batch.positions[0, :n, None] - batch.positions[0, None, :n], axis=-1)
    np.testing.assert_allclose(d_out, d_in, atol=1e-4)


def test_same_seed_same_batches_and_epochs_differ(source):
    per_epoch = _iterator(source).batches_per_epoch
    assert per_epoch == NUM_MOLECULES // 4
    first = _ids(_take(_iterator(source), 2 * per_epoch))
    again = _ids(_take(_iterator(source), 2 * per_epoch))
    assert first == again
    epoch0, epoch1 = first[:per_epoch], first[per_epoch:]
    assert epoch0 != epoch1
    assert len({i for b in epoch0 for i in b}) == per_epoch * 4  # no repeats inside an epoch
    assert _ids(_take(_iterator(source, seed=1), per_epoch)) != epoch0


def test_state_restore_resumes_at_next_batch(source):
    it = _iterator(source, buckets=(16, 19), num_threads=2)
    _take(it, 11)  # crosses an epoch boundary
    state = json.loads(json.dumps(it.get_state()))
    expected = _take(it, 5)
    resumed = _iterator(source, buckets=(16, 19), num_threads=2)
    resumed.set_state(state)
    got = _take(resumed, 5)
    assert _ids(got) == _ids(expected)
    np.testing.assert_array_equal(got[-1].positions, expected[-1].positions)


def test_state_from_other_settings_is_rejected(source):
    state = _iterator(source, seed=0).get_state()
    with pytest.raises(input_pipeline.IteratorStateError, match="seed 0 then, 3 now"):
        _iterator(source, seed=3).set_state(state)


@pytest.mark.parametrize("buckets", [(), (12, 18)])
def test_two_hosts_cover_every_example_once(source, buckets):
    seen = []
    for p in range(2):
        it = _iterator(source, buckets=buckets, process_index=p, process_count=2,
                       drop_remainder=False, num_epochs=1)  # fmt: skip
        batches = list(it)
        assert all(b.id.shape == (4,) for b in batches)
        seen.append([i for b in batches for i in b.id.tolist() if i >= 0])
    assert not set(seen[0]) & set(seen[1])
    assert sorted(seen[0] + seen[1]) == sorted(int(i) for i in source_ids(source))


def source_ids(source):
    return [source[i]["id"] for i in range(len(source))]


def test_hosts_agree_on_bucket_sizes(source):
    its = [_iterator(source, buckets=(16, 19), process_index=p, process_count=2) for p in (0, 1)]
    for _ in range(6):
        b0, b1 = next(its[0]), next(its[1])
        assert b0.positions.shape == b1.positions.shape


def test_buckets_pad_to_bucket_size(source):
    it = _iterator(source, buckets=(16, 19), drop_remainder=False, num_epochs=1)
    batches = list(it)
    sizes = {b.positions.shape[1] for b in batches}
    assert sizes <= {16, 19, 29} and len(sizes) > 1
    for b in batches:
        n_pad = b.positions.shape[1]
        real = b.num_atoms[b.id >= 0]
        lower = {16: 0, 19: 16, 29: 19}[n_pad]
        assert np.all((real > lower) & (real <= n_pad))
    padded_rows = sum(int((b.id < 0).sum()) for b in batches)
    assert sum(int((b.id >= 0).sum()) for b in batches) == NUM_MOLECULES
    assert padded_rows == 4 * len(batches) - NUM_MOLECULES


def test_padding_rows_of_final_batch_are_empty(source):
    batches = list(_iterator(source, drop_remainder=False, shuffle=False, num_epochs=1))
    last = batches[-1]
    assert last.id.tolist()[1:] == [-1, -1, -1] and last.num_atoms[1:].tolist() == [0, 0, 0]
    assert not last.atom_mask[1:].any() and not last.spectrum[1:].any()


def test_too_many_atoms_names_the_molecule(examples):
    big = max(examples, key=lambda e: len(e["atomic_numbers"]))
    n = len(big["atomic_numbers"])
    src = sources.InMemorySource([big])
    with pytest.raises(features.ExampleError, match=rf"molecule {big['id']}: has {n} atoms"):
        next(_iterator(src, batch_size=1, max_atoms=n - 1))
    with pytest.raises(features.ExampleError, match=rf"molecule {big['id']}: has {n} atoms"):
        _iterator(src, batch_size=1, max_atoms=n - 1, buckets=(5,))


def test_empty_split_or_too_small_is_a_clear_error(source):
    with pytest.raises(ValueError, match="no full global batch"):
        _iterator(source, batch_size=64)


@pytest.fixture(scope="module")
def built_qm9_ir(tmp_path_factory):
    from data_pipeline import tfds_builders

    root = tmp_path_factory.mktemp("loader_qm9_ir")
    mols = qm9pack_source.molecules(qm9pack_source.sample_indices(16, seed=7))
    write_build_dir(root / "build", mols)
    tfds_builders.build("qm9_ir", str(root / "build"), str(root / "tfds"), num_test=2)
    return str(root / "tfds")


def test_make_batch_iterator_over_built_tfds_dataset(built_qm9_ir, caplog):
    config = ml_collections.ConfigDict(
        {"source": "qm9_ir", "data_dir": built_qm9_ir, "max_atoms": 29, "buckets": (18,)}
    )
    with caplog.at_level(logging.INFO):
        train = sources.get_source(config, "train")
        sources.get_source(config, "validation")
    assert isinstance(train, sources.TfdsSource) and len(train) > 4
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("data: ")]
    assert lines == [f"data: using tfds dataset 'qm9_ir' from data_dir={built_qm9_ir}"]
    it = input_pipeline.make_batch_iterator(config, "train", batch_size=2, seed=0)
    batch = next(it)
    assert batch.positions.shape[0] == 2 and batch.positions.shape[1] in (18, 29)
    assert batch.formula_tokens.shape == (2, 16) and batch.fg_labels.shape == (2, 20)
    ex = next(train[i] for i in range(len(train)) if train[i]["id"] == batch.id[0])
    n = len(ex["atomic_numbers"])
    np.testing.assert_allclose(
        batch.positions[0, :n], ex["positions"] - ex["positions"].mean(0), atol=1e-5
    )
    test = list(
        input_pipeline.make_batch_iterator(
            config, "test", batch_size=1, seed=0, shuffle=False, drop_remainder=False, num_epochs=1
        )
    )
    assert len(test) == 2


_NO_RDKIT_LOADER = """
import importlib.abc, json, sys

class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == "rdkit" or name.startswith("rdkit."):
            raise ImportError(f"the loader imported {name}")

sys.meta_path.insert(0, Block())
from irgeodiff_jax.data import input_pipeline
config = {"source": "qm9_ir", "data_dir": sys.argv[1], "max_atoms": 29, "buckets": (18,)}
ids = []
for split in ("train", "test"):
    it = input_pipeline.make_batch_iterator(
        config, split, batch_size=2, seed=0, shuffle=False, drop_remainder=False, num_epochs=1
    )
    ids += [int(i) for batch in it for i in batch.id if i >= 0]
print(json.dumps(ids))
"""


def test_loader_over_a_built_release_runs_without_rdkit(built_qm9_ir):
    """Reading and batching a built release needs no RDKit (its FG labels were computed when it
    was built): a process that blocks every rdkit import batches two whole splits."""
    command = [sys.executable, "-c", _NO_RDKIT_LOADER, built_qm9_ir]
    out = subprocess.run(command, capture_output=True, text=True, check=False)
    assert out.returncode == 0, out.stderr[-2000:]
    ids = json.loads(out.stdout.strip().splitlines()[-1])
    train = sources.get_source({"source": "qm9_ir", "data_dir": built_qm9_ir}, "train")
    test = sources.get_source({"source": "qm9_ir", "data_dir": built_qm9_ir}, "test")
    expected = [int(src[i]["id"]) for src in (train, test) for i in range(len(src))]
    assert sorted(ids) == sorted(expected) and len(test) == 2


def test_get_source_errors(tmp_path):
    with pytest.raises(sources.SourceError, match="data.source='qm9'"):
        sources.get_source({"source": "qm9"}, "train")
    with pytest.raises(sources.SourceError, match="no built tfds dataset 'qm9s'"):
        sources.get_source({"source": "qm9s", "data_dir": str(tmp_path)}, "train")
    with pytest.raises(sources.SourceError, match="unknown split 'val'"):
        sources.get_source({"source": "qm9s", "data_dir": str(tmp_path)}, "val")


@pytest.fixture(scope="module")
def packed_embedded(tmp_path_factory):
    """A small embedded directory written by F1's packer from a synthetic build."""
    from data_pipeline import embedded

    root = tmp_path_factory.mktemp("embedded")
    mols = qm9pack_source.molecules(qm9pack_source.sample_indices(16, seed=9))
    write_build_dir(root / "build", mols)
    embedded.pack(str(root / "build"), str(root / "emb"), num_test=3, split_seed=0, tolerance=0.4)
    return str(root / "emb")


def test_embedded_source_follows_manifest_splits(packed_embedded):
    from data_pipeline import embedded

    config = {"source": "embedded", "embedded_dir": packed_embedded}
    splits = embedded.splits(packed_embedded)
    for name in sources.SPLITS:
        src = sources.get_source(config, name)
        assert isinstance(src, sources.EmbeddedSource)
        assert [int(src[i]["id"]) for i in range(len(src))] == splits[name].tolist()
    again = sources.get_source(config, "train")
    assert again[0] is sources.get_source(config, "train")[0]  # prepared once, cached
    batch = next(input_pipeline.make_batch_iterator(config, "test", batch_size=3, seed=0))
    assert sorted(batch.id.tolist()) == splits["test"].tolist()
    assert batch.spectrum.max() == 1.0 and batch.formula_tokens.shape == (3, 16)


def test_a_bucket_that_never_fills_a_batch_is_an_error(source):
    atoms = np.asarray(source.num_atoms())
    n = int(np.sort(atoms)[1])  # a bucket that holds one or two molecules
    small = int((atoms <= n).sum())
    with pytest.raises(ValueError, match=f"bucket N={n} holds {small} molecules.*never be trained"):
        _iterator(source, buckets=(n,), batch_size=small + 1)
    batches = list(_iterator(source, buckets=(n,), batch_size=small + 1, drop_remainder=False,
                             num_epochs=1))  # fmt: skip
    assert sum(int((b.id >= 0).sum()) for b in batches) == len(source)
