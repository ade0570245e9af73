import numpy as np
import pytest

from irgeodiff_jax.chem import elements


def test_symbols_round_trip():
    for z in elements.QME14S_ELEMENTS:
        assert elements.atomic_number(elements.symbol(z)) == z


@pytest.mark.parametrize("bad", ["Xx", "cl", "", "C1"])
def test_unknown_symbol(bad):
    with pytest.raises(elements.UnknownElementError, match="unknown element"):
        elements.atomic_number(bad)


def test_type_index_and_unsupported():
    np.testing.assert_array_equal(elements.to_type_index([1, 6, 7, 8, 9]), [0, 1, 2, 3, 4])
    with pytest.raises(elements.UnknownElementError, match="S \\(Z=16\\)"):
        elements.to_type_index([6, 16])
    with pytest.raises(elements.UnknownElementError, match="Z=0"):
        elements.check_supported([0])


def test_masses():
    np.testing.assert_allclose(elements.masses_amu([1, 6, 8]), [1.008, 12.011, 15.999], atol=1e-3)


def test_heavy_atom_count_skips_hydrogen_and_padding():
    assert elements.heavy_atom_count([6, 6, 8, 1, 1, 1, 1, 1, 1, 0, 0]) == 3  # ethanol, padded
    assert elements.heavy_atom_count(np.array([1, 1])) == 0
