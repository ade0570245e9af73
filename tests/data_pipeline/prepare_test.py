"""prepare: example schema v1, one-line PrepareErrors, screening, splits, stats."""

import dataclasses

import numpy as np
import pytest

from data_pipeline import prepare, qm9pack_source
from data_pipeline.records import RawMolecule
from irgeodiff_jax.chem import spectra

SCHEMA_V1 = {
    "id": (np.int64, ()),
    "smiles": (str, None),
    "formula": (str, None),
    "atomic_numbers": (np.int32, ("n",)),
    "positions": (np.float32, ("n", 3)),
    "spectrum": (np.float32, (3200,)),
    "fg_labels": (np.bool_, ("g",)),
    "formula_tokens": (np.int32, ("f",)),
}


def qm9_raw(index: int, **changes) -> RawMolecule:
    """A RawMolecule with a QM9 geometry and made-up sticks: one line per vibrational mode."""
    mol = qm9pack_source.molecule(index)
    n = len(mol.atomic_numbers)
    freqs = np.linspace(600.0, 3600.0, 3 * n - 6)
    raw = RawMolecule(
        id=index,
        smiles=mol.smiles,
        atomic_numbers=mol.atomic_numbers,
        positions_angstrom=mol.positions_angstrom.astype(np.float32),
        source="qm9_ir",
        frequencies_cm1=freqs,
        intensities_km_mol=np.linspace(1.0, 50.0, freqs.size),
    )
    return dataclasses.replace(raw, **changes)


def check_schema(ex: dict, n: int, groups: int, formula_len: int) -> None:
    assert set(ex) == set(SCHEMA_V1)
    dims = {"n": n, "g": groups, "f": formula_len}
    for key, (dtype, shape) in SCHEMA_V1.items():
        value = ex[key]
        if dtype is str:
            assert isinstance(value, str), key
            continue
        assert np.asarray(value).dtype == dtype, key
        assert np.asarray(value).shape == tuple(dims.get(d, d) for d in shape), key


def test_sticks_give_schema_v1():
    raw = qm9_raw(10)  # CC#N
    ex = prepare.prepare_example(raw, scheme="qm9s", frequency_scale=1.0)
    check_schema(ex, n=6, groups=20, formula_len=16)
    assert ex["id"] == 10 and ex["smiles"] == raw.smiles and ex["formula"] == "C2H3N"
    assert ex["spectrum"].max() == pytest.approx(1.0) and ex["spectrum"].min() >= 0
    np.testing.assert_array_equal(ex["positions"], raw.positions_angstrom)
    # The strongest line (3600 cm⁻¹) is where the broadened spectrum peaks.
    peak = prepare.model_grid()[np.argmax(ex["spectrum"])]
    assert abs(peak - 3600.0) < 2.0
    assert ex["formula_tokens"][0] == 1 and ex["formula_tokens"][-1] == 0


def test_frequency_scale_moves_the_peak_and_imaginary_modes_are_dropped():
    raw = qm9_raw(10)
    scaled = prepare.prepare_example(raw, scheme="qm9s", frequency_scale=0.9)
    peak = prepare.model_grid()[np.argmax(scaled["spectrum"])]
    assert abs(peak - 0.9 * 3600.0) < 2.0
    freqs = raw.frequencies_cm1.copy()
    freqs[0] = -600.0
    with_imag = prepare.prepare_example(
        dataclasses.replace(raw, frequencies_cm1=freqs), scheme="qm9s", frequency_scale=1.0
    )
    dropped = dataclasses.replace(
        raw, frequencies_cm1=raw.frequencies_cm1[1:], intensities_km_mol=raw.intensities_km_mol[1:]
    )
    ref = prepare.prepare_example(dropped, scheme="qm9s", frequency_scale=1.0)
    np.testing.assert_array_equal(with_imag["spectrum"], ref["spectrum"])


def test_dense_spectrum_is_resampled_to_the_model_grid():
    src = spectra.grid(500.0, 4000.0, 3501)
    dense = np.exp(-0.5 * ((src - 1700.0) / 20.0) ** 2) * 7.0
    raw = qm9_raw(3, source="qm9s", spectrum=dense, spectrum_grid_cm1=src)
    ex = prepare.prepare_example(raw, scheme="qme14s", frequency_scale=0.97, formula_len=12)
    check_schema(ex, n=3, groups=26, formula_len=12)
    expected = spectra.resample(dense, src, prepare.model_grid())
    np.testing.assert_allclose(ex["spectrum"], expected / expected.max(), rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"intensities_km_mol": np.full(9, np.nan)}, "NaN"),
        ({"intensities_km_mol": -np.ones(9)}, "negative"),
        ({"intensities_km_mol": np.zeros(9)}, "all zero"),
        ({"atomic_numbers": np.array([6, 1, 1, 1, 92], np.int32)}, "unknown element"),
        ({"positions_angstrom": np.zeros((4, 3), np.float32)}, "positions must have shape"),
    ],
)
def test_bad_sticks_and_geometry_raise_one_line(changes, message):
    raw = qm9_raw(1, **changes)  # CH4: 9 modes
    with pytest.raises(prepare.PrepareError, match=message) as info:
        prepare.prepare_example(raw, scheme="qm9s", frequency_scale=1.0)
    assert str(info.value).startswith("molecule 1 (qm9_ir): ") and "\n" not in str(info.value)


def test_bad_dense_spectra_and_atom_limit():
    src = spectra.grid(500.0, 4000.0, 3501)
    cases = [
        (dict(spectrum=np.ones(3500), spectrum_grid_cm1=src), "3501"),
        (dict(spectrum=np.zeros(3501), spectrum_grid_cm1=src), "flat"),
        (dict(spectrum=np.full(3501, np.nan), spectrum_grid_cm1=src), "NaN"),
        (dict(spectrum=-np.linspace(0, 1, 3501), spectrum_grid_cm1=src), "negative"),
    ]
    for changes, message in cases:
        raw = qm9_raw(2, source="qm9s", **changes)
        with pytest.raises(prepare.PrepareError, match=message):
            prepare.prepare_example(raw, scheme="qm9s", frequency_scale=1.0)
    with pytest.raises(prepare.PrepareError, match="molecule 2 .*4 atoms > max_atoms 3"):
        prepare.prepare_example(qm9_raw(2), scheme="qm9s", frequency_scale=1.0, max_atoms=3)
    with pytest.raises(prepare.PrepareError, match="unknown scheme"):
        prepare.prepare_example(qm9_raw(2), scheme="qm7", frequency_scale=1.0)


def test_screen_accepts_matching_and_reports_each_failure_kind():
    assert prepare.screen(qm9_raw(10), tolerance_angstrom=0.4) == (True, "")
    ok, reason = prepare.screen(qm9_raw(10, smiles="CC=N"), tolerance_angstrom=0.4)
    assert not ok and reason == "smiles mismatch: got CC#N expected CC=N"
    squashed = qm9_raw(10).positions_angstrom.copy()
    squashed[1] = squashed[0] + 0.1
    ok, reason = prepare.screen(qm9_raw(10, positions_angstrom=squashed), tolerance_angstrom=0.4)
    assert not ok and reason.startswith("assignment failed: ")
    ok, reason = prepare.screen(qm9_raw(10, smiles="C1CC"), tolerance_angstrom=0.4)
    assert not ok and prepare.screen_category(reason) == "reference smiles unparsable"


def test_split_ids_deterministic_disjoint_covering():
    ids = np.arange(5, 2505, dtype=np.int64) * 3
    a = prepare.split_ids(ids, seed=7)
    b = prepare.split_ids(ids[::-1].copy(), seed=7)
    for key in a:
        np.testing.assert_array_equal(a[key], b[key])
    assert a["test"].size == 1000
    assert a["validation"].size == round(0.05 * 1500) and a["train"].size == 1425
    union = np.concatenate(list(a.values()))
    assert union.size == ids.size and set(union.tolist()) == set(ids.tolist())
    c = prepare.split_ids(ids, seed=8, num_test=200)
    assert c["test"].size == 200 and not np.array_equal(c["validation"], a["validation"])
    with pytest.raises(ValueError, match="num_test"):
        prepare.split_ids(ids[:10], seed=0)


def test_compute_stats_counts_atoms_and_vocabulary():
    examples = [
        prepare.prepare_example(qm9_raw(i), scheme="qm9s", frequency_scale=1.0) for i in (1, 2, 10)
    ]
    stats = prepare.compute_stats(examples)
    assert stats["num_molecules"] == 3 and stats["max_atoms"] == 6
    assert stats["num_atoms_histogram"][4] == 1 and stats["num_atoms_histogram"][5] == 1
    assert stats["num_atoms_histogram"][6] == 1 and sum(stats["num_atoms_histogram"]) == 3
    assert stats["elements"] == [1, 6, 7]
    assert stats["element_counts"] == {"H": 4 + 3 + 3, "C": 1 + 2, "N": 1 + 1}
    assert stats["num_fg_labels"] == 20 and len(stats["fg_label_counts"]) == 20


def test_screen_detail_separates_charged_connectivity_and_bond_orders():
    charged = "smiles mismatch: got CC(=C=C=C(N)N)N=O expected CC(C#CC(N)=[NH2+])=N[O-]"
    assert prepare.screen_detail(charged) == "smiles mismatch: charged reference"
    moved = "smiles mismatch: got CN1C2C3C4=CCC21C43 expected CN1C2C3C4=CCC31C42"
    assert prepare.screen_detail(moved) == "smiles mismatch: connectivity differs"
    orders = "smiles mismatch: got C=CC=O expected CC=C=O"
    assert prepare.screen_detail(orders) == "smiles mismatch: bond orders differ"
    assert prepare.screen_detail("assignment failed: x") == "assignment failed"
    raws = [qm9_raw(10), qm9_raw(10, smiles="CC=N", id=99), qm9_raw(1)]
    report = prepare.screening_report(raws, tolerance_angstrom=0.4)
    assert report["num_screened"] == 3 and report["num_removed"] == 1
    assert report["removed"] == {"99": "smiles mismatch: got CC#N expected CC=N"}
    assert report["by_detail"] == {"smiles mismatch: bond orders differ": 1}
