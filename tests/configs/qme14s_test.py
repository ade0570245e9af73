"""``configs/qme14s.py`` states its atom types without importing package code; they must be the
QMe14S vocabulary of ``chem.elements`` and size the model's atom-type embedding."""

from configs import qme14s
from irgeodiff_jax.chem import elements
from irgeodiff_jax.data.settings import DataSettings
from irgeodiff_jax.models import factory


def test_atom_types_are_the_qme14s_vocabulary():
    config = qme14s.get_config("stage=all,size=tiny")
    assert config.data.atom_types == elements.QME14S_ELEMENTS
    assert config.model.autoencoder.num_atom_types == len(elements.QME14S_ELEMENTS)
    settings = DataSettings.from_config(config.data)
    assert settings.atom_types == elements.ATOM_VOCABULARIES["qme14s"]
    assert (settings.fg_scheme, settings.num_fg, settings.max_atoms) == ("qme14s", 26, 40)
    factory.create_models(config)  # vocabulary sizes consistent with config.data
