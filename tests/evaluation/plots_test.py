"""evaluation.plots: every figure is written as a PNG whose size follows its content, including
the degenerate inputs an evaluation can produce (no samples, string keys from JSON, one patch).
The spectra overlay it re-exports is tested in tests/utils/figures_test.py."""

import numpy as np
import pytest

from irgeodiff_jax.chem import elements, spectra
from irgeodiff_jax.evaluation import plots
from irgeodiff_jax.sampling import samples_dir as sdir
from tests.helpers.png import png_shape

GRID = spectra.grid(*spectra.MODEL_GRID)


def _peak(centre: float, width: float = 30.0) -> np.ndarray:
    return np.exp(-(((GRID - centre) / width) ** 2))


@pytest.mark.parametrize("num", [0, 1, 500])
def test_simg_sis_hist_for_any_number_of_samples(tmp_path, num):
    rng = np.random.default_rng(num)
    path = tmp_path / f"hist{num}.png"
    plots.simg_sis_hist(str(path), rng.random(num), rng.random(num))
    png_shape(path)


def test_mol_acc_vs_k_takes_int_or_json_string_keys_and_skips_missing_points(tmp_path):
    curve = {1: 0.1, 5: 0.3, 10: 0.45}
    as_json = {str(k): v for k, v in curve.items()}
    extra = {"SIS-ranked": (5, 0.4), "not computed": (10, None)}
    for name, c in (("int.png", curve), ("str.png", as_json)):
        plots.mol_acc_vs_k(str(tmp_path / name), c, extra)
    assert png_shape(tmp_path / "int.png") == png_shape(tmp_path / "str.png")
    assert (tmp_path / "int.png").read_bytes() == (tmp_path / "str.png").read_bytes()


def _maps(layers: int, atoms=(6, 8, 1, 1), patches: int = 50, formula: int = 6):
    rng = np.random.default_rng(layers)
    atom = rng.random((layers, len(atoms), patches + formula))
    return sdir.AttentionMaps(
        atom_spectrum=atom / atom.sum(-1, keepdims=True),
        edge_spectrum=atom.max(1),
        atomic_numbers=np.asarray(atoms),
        num_patches=patches,
        patch_size=64,
    )


def test_attention_map_has_one_row_per_layer(tmp_path):
    y = _peak(1700.0)
    plots.attention_map(str(tmp_path / "l1.png"), _maps(1), y, GRID, title="CH2O")
    plots.attention_map(str(tmp_path / "l3.png"), _maps(3), y, GRID)
    (h1, w1), (h3, w3) = png_shape(tmp_path / "l1.png"), png_shape(tmp_path / "l3.png")
    assert w1 == w3 and h3 > h1


def test_attention_map_with_a_single_patch(tmp_path):
    plots.attention_map(str(tmp_path / "p1.png"), _maps(2, patches=1), _peak(1700.0), GRID)
    png_shape(tmp_path / "p1.png")


def test_attention_map_rejects_an_unknown_element(tmp_path):
    with pytest.raises(elements.UnknownElementError, match="atomic number 200 is not an element"):
        plots.attention_map(str(tmp_path / "x.png"), _maps(1, atoms=(6, 200)), _peak(1700.0), GRID)
    assert not (tmp_path / "x.png").exists()
