"""The qm9pack reader: CSV parts merged by QM9 index, rows parsed into molecules, clear errors."""

import importlib.util

import numpy as np
import pytest

from data_pipeline import qm9pack_source as q


def test_parts_are_merged_into_one_table_indexed_by_qm9_index():
    df = q.table()
    idx = q.all_indices()
    assert df.index.is_unique and np.all(np.diff(idx) > 0)  # three parts, sorted, no overlap
    np.testing.assert_array_equal(df.index.to_numpy(), idx)
    assert idx[0] == 1  # gdb9 indices are 1-based
    for i in (idx[0], idx[len(idx) // 2], idx[-1]):  # a row of each end and the middle
        m = q.molecule(int(i))
        assert m.index == i and len(m.atomic_numbers) == df.loc[i, "N_atoms"]


def test_numbers_written_without_decimals_are_parsed():
    np.testing.assert_array_equal(q._floats("[0., 1.5,2.]"), [0.0, 1.5, 2.0])


def test_unknown_index_and_too_large_sample_are_one_line_errors():
    with pytest.raises(KeyError, match="QM9 index 0 is not in qm9pack"):
        q.molecule(0)
    with pytest.raises(ValueError, match=r"asked for 10000000 molecules, qm9pack has \d+"):
        q.sample_indices(10_000_000, seed=0)


def test_missing_package_names_the_install_command(monkeypatch):
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(FileNotFoundError, match="pip install qm9pack"):
        q.data_dir()


def test_acetylene_linear_modes_and_geometry():
    m = q.molecule(4)
    assert m.smiles == "C#C"
    np.testing.assert_array_equal(m.atomic_numbers, [6, 6, 1, 1])
    assert m.positions_angstrom.shape == (4, 3)
    assert len(m.harmonic_frequencies_cm1) == 3 * 4 - 5


def test_doubled_frequency_rows_are_truncated():
    # Rows whose stored list is longer than 3N-5 carry two concatenated lists.
    df = q.table()
    doubled = [
        r.Index for r in df.itertuples() if r.Harmonic_Freq_cmi.count(",") + 1 > 3 * r.N_atoms - 5
    ]
    assert len(doubled) == 334
    for idx in doubled[:20]:
        m = q.molecule(int(idx))
        assert len(m.harmonic_frequencies_cm1) == 3 * len(m.atomic_numbers) - 6


def test_sample_indices_deterministic_and_distinct():
    a = q.sample_indices(100, seed=3)
    np.testing.assert_array_equal(a, q.sample_indices(100, seed=3))
    assert len(set(a.tolist())) == 100
    assert not np.array_equal(a, q.sample_indices(100, seed=4))
