"""utils.figures: the spectra overlay writes one PNG row per panel, and a figure without panels."""

import numpy as np

from irgeodiff_jax.chem import spectra
from irgeodiff_jax.utils import figures
from tests.helpers.png import png_shape

GRID = spectra.grid(*spectra.MODEL_GRID)


def _peak(centre: float, width: float = 30.0) -> np.ndarray:
    return np.exp(-(((GRID - centre) / width) ** 2))


def _panel(title: str, num_samples: int) -> figures.OverlayPanel:
    samples = tuple((f"s{j}", 3.0 * _peak(1000.0 + 300 * j)) for j in range(num_samples))
    return figures.OverlayPanel(title, GRID, _peak(1700.0) + 0.5 * _peak(3000.0), samples)


def test_spectra_overlay_has_one_row_per_panel(tmp_path):
    one, three = tmp_path / "one.png", tmp_path / "three.png"
    figures.spectra_overlay(str(one), [_panel("a", 2)])
    figures.spectra_overlay(str(three), [_panel("a", 2), _panel("b", 0), _panel("c", 3)])
    (h1, w1), (h3, w3) = png_shape(one), png_shape(three)
    assert w1 == w3 and h3 > 2 * h1


def test_spectra_overlay_without_panels_still_writes_a_figure(tmp_path):
    figures.spectra_overlay(str(tmp_path / "empty.png"), [])
    png_shape(tmp_path / "empty.png")


def test_unit_max_scales_to_one_and_leaves_zeros():
    np.testing.assert_allclose(figures.unit_max([0.0, -4.0, 2.0]), [0.0, -1.0, 0.5])
    np.testing.assert_array_equal(figures.unit_max(np.zeros(3)), np.zeros(3))
    assert figures.unit_max([]).size == 0
