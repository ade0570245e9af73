"""Release readers (QM9S, QMe14S, IR-GeoDiff pickles) on fixtures in the documented formats."""

import os
import sys

import numpy as np
import pandas as pd
import pytest

from data_pipeline import (
    irgeodiff_release,
    prepare,
    qm9pack_source,
    qm9s_release,
    qme14s_release,
)
from tests.helpers.datasets import random_spectra, write_wide_csv, write_xyz

NUM = 6


@pytest.fixture(scope="module")
def mols():
    return qm9pack_source.molecules(qm9pack_source.sample_indices(NUM, seed=3))


def _geometries(mols):
    return {
        m.index: qm9s_release.Geometry(
            m.smiles, m.atomic_numbers.astype(np.int32), m.positions_angstrom.astype(np.float32), k
        )
        for k, m in enumerate(mols)
    }


def test_wide_csv_layout_and_chunked_streaming(tmp_path, mols):
    ids = [m.index for m in mols]
    spectra = random_spectra(NUM, 3501)
    path = tmp_path / qm9s_release.IR_CSV
    write_wide_csv(path, ids, spectra)
    assert open(path).readline().startswith(",500,501,")
    rows = list(qm9s_release.iter_wide_csv(str(path), chunksize=4))  # two chunks
    assert [r[0] for r in rows] == ids
    np.testing.assert_allclose(np.stack([r[1] for r in rows]), spectra, rtol=1e-6)
    assert qm9s_release.read_csv_ids(str(path), chunksize=4).tolist() == ids
    only = list(qm9s_release.iter_wide_csv(str(path), ids={ids[2]}))
    assert [r[0] for r in only] == [ids[2]]


def test_wide_csv_with_wrong_width_is_a_one_line_error(tmp_path):
    path = tmp_path / "bad.csv"
    write_wide_csv(path, [1, 2], random_spectra(2, 3500))
    with pytest.raises(qm9s_release.ReleaseFormatError, match=r"bad.csv: expected .* 3501"):
        list(qm9s_release.iter_wide_csv(str(path)))


@pytest.mark.parametrize("geometry_format", ["npz", "xyz"])
def test_qm9s_reader_joins_geometries_and_spectra(tmp_path, mols, geometry_format):
    ids = [m.index for m in mols]
    spectra = random_spectra(NUM, 3501)
    write_wide_csv(tmp_path / qm9s_release.IR_CSV, ids[::-1], spectra[::-1])
    if geometry_format == "npz":
        qm9s_release.write_geometries_npz(
            str(tmp_path / qm9s_release.GEOMETRY_NPZ), _geometries(mols)
        )
    else:
        write_xyz(tmp_path / qm9s_release.GEOMETRY_XYZ, mols)
    raws = list(qm9s_release.read_qm9s(str(tmp_path)))
    assert [r.id for r in raws] == ids[::-1]  # CSV order
    by_id = {m.index: m for m in mols}
    for raw, spectrum in zip(raws, spectra[::-1], strict=True):
        m = by_id[raw.id]
        assert raw.source == "qm9s" and raw.smiles == m.smiles
        np.testing.assert_array_equal(raw.atomic_numbers, m.atomic_numbers)
        np.testing.assert_allclose(raw.positions_angstrom, m.positions_angstrom, atol=1e-5)
        np.testing.assert_allclose(raw.spectrum, spectrum, rtol=1e-6)
        assert raw.spectrum_grid_cm1.shape == (3501,) and raw.spectrum_grid_cm1[1] == 501.0
    example = prepare.prepare_example(raws[0], scheme="qm9s", frequency_scale=1.0)
    assert example["spectrum"].shape == (3200,) and example["spectrum"].max() == 1.0


def test_qm9s_match_by_position(tmp_path, mols):
    qm9s_release.write_geometries_npz(str(tmp_path / qm9s_release.GEOMETRY_NPZ), _geometries(mols))
    write_wide_csv(tmp_path / qm9s_release.IR_CSV, list(range(NUM)), random_spectra(NUM, 3501))
    raws = list(qm9s_release.iter_molecules(str(tmp_path), match_by="position"))
    assert [r.smiles for r in raws] == [m.smiles for m in mols]


def test_qm9s_pt_without_torch_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "torch", None)  # torch absent (it is not a dependency)
    (tmp_path / qm9s_release.GEOMETRY_PT).write_bytes(b"not read")
    with pytest.raises(
        qm9s_release.ReleaseFormatError, match=r"qm9s.pt needs torch .*--export_npz"
    ):
        qm9s_release.read_geometries(str(tmp_path))


def test_missing_geometry_file_names_the_expected_files(tmp_path):
    with pytest.raises(qm9s_release.ReleaseFormatError, match=r"qm9s_geometries.npz, .*qm9s.pt"):
        qm9s_release.read_geometries(str(tmp_path))


def test_truncated_xyz_is_a_one_line_error(tmp_path, mols):
    path = tmp_path / "qm9s_geometries.xyz"
    write_xyz(path, mols[:1])
    path.write_text("\n".join(path.read_text().splitlines()[:-2]))
    with pytest.raises(qm9s_release.ReleaseFormatError, match=r"xyz:1: frame of \d+ atoms"):
        qm9s_release.read_geometries_xyz(str(path))


def test_qme14s_reader(tmp_path, mols):
    ids = [m.index for m in mols]
    write_xyz(tmp_path / "qme14s_geometries.xyz", mols)
    header = [f"{v:.4f}" for v in np.linspace(500, 4000, 3500)]
    write_wide_csv(tmp_path / qme14s_release.IR_CSV, ids, random_spectra(NUM, 3500), header=header)
    raws = list(qme14s_release.read_qme14s(str(tmp_path)))
    assert [r.id for r in raws] == ids and all(r.source == "qme14s" for r in raws)
    assert raws[0].spectrum.shape == (3500,)
    np.testing.assert_allclose(raws[0].spectrum_grid_cm1, np.linspace(500, 4000, 3500))
    geometry_only = list(qme14s_release.iter_molecules(str(tmp_path), with_spectra=False))
    assert sorted(r.id for r in geometry_only) == sorted(ids) and geometry_only[0].spectrum is None


def _reference_frame(mols):
    n_max = 29
    rows = []
    for k, m in enumerate(mols):
        n = len(m.atomic_numbers)
        charges = np.zeros(n_max, np.int64)
        charges[:n] = m.atomic_numbers
        positions = np.zeros((n_max, 3))
        positions[:n] = m.positions_angstrom
        rows.append(
            {
                "positions": positions,
                "charges": charges,
                "num_atoms": n,
                "spectra": random_spectra(1, 3501, seed=k)[0].astype(np.float64),
                "smiles": m.smiles,
                "formula": np.array([1, 5, 10, 6, 14, 2] + [0] * 10),
                "func_groups": (np.arange(20) % (k + 2) == 0).astype(np.int64),
            }
        )
    return pd.DataFrame(rows, index=pd.Index([m.index for m in mols]))


def test_irgeodiff_pickle_round_trip(tmp_path, mols):
    frame = _reference_frame(mols)
    path = os.fspath(tmp_path / "fg20_qm9s_final_test_1000.pkl")
    frame.to_pickle(path)
    raws = irgeodiff_release.read_molecules(path)
    assert [r.id for r in raws] == [m.index for m in mols]
    for raw, m, (_, row) in zip(raws, mols, frame.iterrows(), strict=True):
        assert raw.source == "irgeodiff_pickle" and raw.smiles == m.smiles
        np.testing.assert_array_equal(raw.atomic_numbers, m.atomic_numbers)  # padding removed
        np.testing.assert_allclose(raw.positions_angstrom, m.positions_angstrom, atol=1e-5)
        np.testing.assert_allclose(raw.spectrum, row.spectra, rtol=1e-6)
        assert raw.spectrum_grid_cm1.shape == (3501,)
    labels = irgeodiff_release.read_reference_labels(path)
    np.testing.assert_array_equal(labels[mols[1].index]["fg_labels"], np.arange(20) % 3 == 0)
    assert labels[mols[0].index]["formula_tokens"].tolist()[:6] == [1, 5, 10, 6, 14, 2]


def test_irgeodiff_pickle_errors(tmp_path, mols):
    path = os.fspath(tmp_path / "x.pkl")
    _reference_frame(mols).drop(columns=["func_groups"]).to_pickle(path)
    with pytest.raises(qm9s_release.ReleaseFormatError, match=r"missing columns \['func_groups'\]"):
        irgeodiff_release.read_frame(path)
    frame = _reference_frame(mols)
    frame.at[mols[0].index, "num_atoms"] = 2
    frame.to_pickle(path)
    with pytest.raises(qm9s_release.ReleaseFormatError, match=rf"molecule {mols[0].index}: "):
        irgeodiff_release.read_molecules(path)
