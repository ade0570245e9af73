"""Tests for irgeodiff_jax.data.settings: the one reader of config.data."""

import ml_collections
import pytest

from configs import qm9s
from configs import test as test_config
from irgeodiff_jax.chem import elements
from irgeodiff_jax.data.settings import DataSettings, bucket_sizes, vocabulary


def test_defaults_from_an_empty_config():
    s = DataSettings.from_config({})
    assert s == DataSettings()
    assert (s.max_atoms, s.sizes, s.formula_len, s.spectrum_levels) == (29, (29,), 16, 100)
    assert s.atom_types == elements.QM9S_ELEMENTS and s.num_fg is None
    assert s.formula_preset == "qm9s"
    assert s.prepare_kwargs() == {
        "scheme": "qm9s",
        "frequency_scale": None,
        "fwhm_cm1": 15.0,
        "formula_len": 16,
        "formula_vocab": None,
    }


def test_reads_the_project_configs():
    for config in (qm9s.get_config("stage=all"), test_config.get_config()):
        s = DataSettings.from_config(config.data)
        assert s.atom_types == tuple(config.data.atom_types) == elements.QM9S_ELEMENTS
        assert (s.max_atoms, s.formula_len, s.num_fg) == (29, 16, 20)
        assert s.featurize_kwargs() == {
            "vocab": elements.QM9S_ELEMENTS,
            "levels": 100,
            "formula_len": 16,
            "num_fg": 20,
            "blank_spectrum": False,
        }


def test_every_key_is_read():
    data = ml_collections.ConfigDict(
        {
            "max_atoms": 20,
            "buckets": (12, 9),
            "atom_vocabulary": "qme14s",
            "formula_len": 12,
            "spectrum_levels": 50,
            "num_fg": 26,
            "fg_scheme": "qme14s",
            "formula_vocab": "qm9s_full",
            "fwhm_cm1": 10,
            "frequency_scale": 0.97,
            "blank_spectra": True,
        }
    )
    s = DataSettings.from_config(data)
    assert s.blank_spectra and s.featurize_kwargs()["blank_spectrum"]
    assert s.buckets == (12, 9) and s.sizes == (9, 12, 20)
    assert s.atom_types == elements.QME14S_ELEMENTS
    assert (s.formula_len, s.spectrum_levels, s.num_fg) == (12, 50, 26)
    assert s.formula_preset == "qm9s_full"
    assert s.prepare_kwargs() == {
        "scheme": "qme14s",
        "frequency_scale": 0.97,
        "fwhm_cm1": 10.0,
        "formula_len": 12,
        "formula_vocab": "qm9s_full",
    }


def test_atom_types_and_vocabulary_name_must_agree():
    same = {"atom_types": (1, 6, 7, 8, 9), "atom_vocabulary": "qm9s"}
    assert DataSettings.from_config(same).atom_types == elements.QM9S_ELEMENTS
    assert DataSettings.from_config({"atom_vocabulary": [1, 6]}).atom_types == (1, 6)
    with pytest.raises(ValueError, match="atom_types .* and atom_vocabulary 'qme14s' disagree"):
        DataSettings.from_config({"atom_types": (1, 6, 7, 8, 9), "atom_vocabulary": "qme14s"})
    with pytest.raises(ValueError, match="unknown atom vocabulary 'qm7'"):
        vocabulary("qm7")


def test_bucket_sizes():
    assert bucket_sizes((), 29) == (29,)
    assert bucket_sizes((18, 12, 18), 29) == (12, 18, 29)
    with pytest.raises(ValueError, match=r"must lie in \[1, max_atoms=29\]"):
        DataSettings.from_config({"buckets": (30,)})
    with pytest.raises(ValueError, match=r"must lie in \[1, max_atoms=12\]"):
        DataSettings(max_atoms=12, buckets=(18,))
