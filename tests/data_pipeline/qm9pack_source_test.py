import numpy as np

from data_pipeline import qm9pack_source as q


def test_table_has_all_molecules():
    assert len(q.table()) == 130_831


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
