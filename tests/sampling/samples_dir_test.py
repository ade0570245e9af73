"""The samples directory: round trip, SDF records, resume rules, orphans, attention files."""

import dataclasses
import os

import numpy as np
import pytest
from rdkit import Chem

from irgeodiff_jax.sampling import samples_dir as sdir
from tests.helpers.samples import (
    attention_maps,
    chunk_arrays,
    ethanol_entry,
    qm9,
    run_info,
    two_chunk_dir,
)


def test_round_trip_and_sdf(tmp_path):
    d = two_chunk_dir(tmp_path / "s")
    manifest = sdir.read_manifest(d)
    assert manifest["chunks"] == ["chunk-00000.npz", "chunk-00001.npz"]
    assert manifest["samples_per_spectrum"] == 4 and manifest["spectrum_grid"] == [
        500.0,
        4000.0,
        3200,
    ]
    assert sdir.completed_ids(d) == {101, 102}
    records = list(sdir.read_samples(d))
    assert [r.id for r in records] == [101, 102]
    eth = records[0]
    assert eth.positions.shape == (4, 9, 3) and eth.reference_smiles == qm9(14).smiles
    np.testing.assert_array_equal(eth.atomic_numbers, qm9(14).atomic_numbers)
    np.testing.assert_allclose(eth.positions[1], qm9(14).positions_angstrom, atol=1e-5)
    assert eth.spectrum.shape == (3200,)
    assert [r.id for r in sdir.read_samples(d, skip_ids=[101])] == [102]
    mols = list(Chem.SDMolSupplier(sdir.sdf_path(d, 101), removeHs=False, sanitize=False))
    assert len(mols) == 4 and all(m.GetNumAtoms() == 9 for m in mols)
    assert [m.GetProp("bonds_assigned") for m in mols] == ["1", "1", "1", "0"]
    assert mols[1].GetNumBonds() == 8 and mols[3].GetNumBonds() == 0


def test_writer_resume_rejects_duplicates_and_mismatch_and_ignores_orphans(tmp_path):
    d = two_chunk_dir(tmp_path / "s")
    with pytest.raises(sdir.SamplesFormatError, match="samples_per_spectrum"):
        sdir.SamplesWriter(d, run_info(5))
    writer = sdir.SamplesWriter(d, run_info(4))
    assert writer.completed_ids == {101, 102}
    with pytest.raises(sdir.SamplesFormatError, match="already written"):
        writer.write_chunk(**chunk_arrays([ethanol_entry(101)], pad_to=9))
    # a run killed after writing chunk 2 but before the manifest: the reader ignores it ...
    orphan = os.path.join(d, sdir.CHUNK_DIR, "chunk-00002.npz")
    with open(orphan, "wb") as f:
        f.write(b"partial")
    assert sdir.completed_ids(d) == {101, 102}
    # ... and the resumed writer overwrites it
    assert writer.write_chunk(**chunk_arrays([ethanol_entry(103)], pad_to=9)) == "chunk-00002.npz"
    assert sdir.completed_ids(d) == {101, 102, 103}
    bad = chunk_arrays([ethanol_entry(104)], pad_to=9)
    bad["positions"] = bad["positions"][:, :3]
    with pytest.raises(sdir.SamplesFormatError, match="positions has shape"):
        writer.write_chunk(**bad)
    with pytest.raises(sdir.SamplesFormatError, match="not a samples directory"):
        sdir.read_manifest(str(tmp_path))


def test_attention_round_trip_and_shape_errors(tmp_path):
    assert sdir.read_attention(str(tmp_path), 7) is None
    maps = attention_maps(9)
    sdir.write_attention(str(tmp_path), 7, maps)
    back = sdir.read_attention(str(tmp_path), 7)
    np.testing.assert_allclose(back.atom_spectrum, maps.atom_spectrum, rtol=1e-6)
    np.testing.assert_allclose(back.edge_spectrum, maps.edge_spectrum, rtol=1e-6)
    np.testing.assert_array_equal(back.atomic_numbers, maps.atomic_numbers)
    assert (back.num_patches, back.patch_size, back.sample_index) == (50, 64, 1)
    one_layer_edges = dataclasses.replace(maps, edge_spectrum=maps.edge_spectrum[:1])
    with pytest.raises(sdir.SamplesFormatError, match="attention shapes"):
        sdir.write_attention(str(tmp_path), 8, one_layer_edges)
    with pytest.raises(sdir.SamplesFormatError, match="num_patches 57 not in 1..56"):
        sdir.write_attention(str(tmp_path), 8, dataclasses.replace(maps, num_patches=57))
    assert sdir.read_attention(str(tmp_path), 8) is None
