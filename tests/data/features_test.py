"""Tests for irgeodiff_jax.data.features (checks, centring, types, padding, tokens)."""

import numpy as np
import pytest

from irgeodiff_jax.data import features, settings, types


def _example(**over) -> dict:
    grid = np.linspace(500, 4000, 3200)
    spectrum = np.exp(-(((grid - 1700.0) / 30.0) ** 2)) + 0.5 * np.exp(-(((grid - 3000) / 30) ** 2))
    ex = {
        "id": np.int64(4242),
        "smiles": "C=O",
        "formula": "CH2O",
        "atomic_numbers": np.array([6, 8, 1, 1], np.int32),
        "positions": np.array([[0, 0, 0], [1.2, 0, 0], [-0.6, 0.9, 0], [-0.6, -0.9, 0]], np.float32)
        + 3.0,
        "spectrum": spectrum.astype(np.float32),
        "fg_labels": np.eye(20, dtype=bool)[3],
        "formula_tokens": np.array([1, 5, 7, 6, 2] + [0] * 11, np.int32),
    }
    return ex | over


def test_featurize_pads_centres_and_types():
    row = features.featurize(_example(), max_atoms=9, formula_len=16, num_fg=20)
    assert set(row) == set(types.BATCH_DTYPES)
    assert row["positions"].shape == (9, 3) and row["num_atoms"] == 4
    np.testing.assert_allclose(row["positions"][:4].mean(axis=0), 0.0, atol=1e-6)
    assert not row["positions"][4:].any()
    np.testing.assert_array_equal(row["atom_types"], [1, 3, 0, 0, 0, 0, 0, 0, 0])
    np.testing.assert_array_equal(row["atom_mask"], [True] * 4 + [False] * 5)
    assert row["fg_labels"].dtype == np.float32 and row["fg_labels"][3] == 1.0


def test_blank_spectrum_zeroes_only_the_spectrum():
    row = features.featurize(_example(), max_atoms=9, formula_len=16, num_fg=20)
    blank = features.featurize(
        _example(), max_atoms=9, formula_len=16, num_fg=20, blank_spectrum=True
    )
    assert row["spectrum"].max() > 0 and row["spectrum_tokens"].max() > 0
    assert not blank["spectrum"].any() and not blank["spectrum_tokens"].any()
    for key in set(row) - {"spectrum", "spectrum_tokens"}:
        np.testing.assert_array_equal(blank[key], row[key])
    with pytest.raises(features.ExampleError, match="4242"):  # still checked before blanking
        features.featurize(
            _example(spectrum=np.full(3200, np.nan, np.float32)), max_atoms=9, blank_spectrum=True
        )


def test_tokens_follow_reference_rule():
    spec = _example()["spectrum"]
    row = features.featurize(_example(), max_atoms=4)
    expected = np.clip(np.floor(spec.astype(np.float64) / spec.max() * 99), 0, 99).astype(int)
    np.testing.assert_array_equal(row["spectrum_tokens"], expected)
    assert row["spectrum_tokens"].max() == 99


def test_centre_with_mask_ignores_padding():
    pos = np.array([[1.0, 2, 3], [3, 2, 1], [100, 100, 100]])
    out = features.centre(pos, mask=np.array([True, True, False]))
    np.testing.assert_allclose(out, [[-1, 0, 1], [1, 0, -1], [0, 0, 0]])


def test_qme14s_vocabulary_types_heavier_elements():
    row = features.featurize(
        _example(atomic_numbers=np.array([16, 17, 35, 1], np.int32)),
        max_atoms=4,
        vocab=settings.vocabulary("qme14s"),
    )
    np.testing.assert_array_equal(row["atom_types"], [9, 10, 13, 0])


@pytest.mark.parametrize(
    ("over", "message"),
    [
        ({"atomic_numbers": np.array([6, 16, 1, 1], np.int32)}, r"element Z=16 is not in"),
        ({"spectrum": np.full(3200, np.nan, np.float32)}, r"NaN"),
        ({"spectrum": np.ones(3501, np.float32)}, r"3501 points, expected 3200"),
        ({"spectrum": np.zeros(3200, np.float32)}, r"flat"),
        ({"positions": np.zeros((3, 3), np.float32)}, r"disagree"),
        ({"formula_tokens": np.zeros(8, np.int32)}, r"formula has shape \(8,\)"),
    ],
)
def test_bad_examples_name_the_molecule(over, message):
    with pytest.raises(features.ExampleError, match=rf"^molecule 4242: .*{message}"):
        features.featurize(_example(**over), max_atoms=9, formula_len=16, num_fg=20)


def test_too_many_atoms_is_an_error():
    with pytest.raises(features.ExampleError, match=r"molecule 4242: has 4 atoms, more than max"):
        features.featurize(_example(), max_atoms=3)


def test_collate_and_empty_row():
    row = features.featurize(_example(), max_atoms=6)
    empty = features.empty_row(6, spectrum_points=3200, formula_len=16, num_fg=20)
    assert set(empty) == set(row)
    for key in row:
        assert np.shape(empty[key]) == np.shape(row[key])
    batch = features.collate([row, empty])
    assert batch.positions.shape == (2, 6, 3) and batch.id.tolist() == [4242, -1]
    assert batch.num_atoms.tolist() == [4, 0] and not batch.atom_mask[1].any()
    for key, dtype in types.BATCH_DTYPES.items():
        assert getattr(batch, key).dtype == dtype
