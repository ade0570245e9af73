"""Figure helpers shared by the evaluation report and ``predict`` (matplotlib, Agg backend).

``spectra_overlay`` draws an input spectrum against labelled sample spectra (one panel per
spectrum, paper Fig. 2 style); ``unit_max`` and ``save`` are the common plumbing of every figure
(``evaluation/plots.py`` builds the report's other figures on them). Numpy in, PNG out; no
chemistry and no model code, so both ``sampling`` and ``evaluation`` can import it.
"""

import dataclasses

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


@dataclasses.dataclass(frozen=True)
class OverlayPanel:
    """One overlay panel: the input spectrum and labelled sample spectra (same wavenumber axis).

    Attributes:
        title: panel title (e.g. id and reference SMILES).
        grid_cm1: [L] wavenumbers.
        input_spectrum: [L].
        samples: (label, [L] spectrum) pairs.
    """

    title: str
    grid_cm1: np.ndarray
    input_spectrum: np.ndarray
    samples: tuple = ()


def unit_max(y) -> np.ndarray:
    """``y / max|y|`` as float64 (unchanged when all zero)."""
    y = np.asarray(y, dtype=np.float64)
    top = np.max(np.abs(y)) if y.size else 0.0
    return y / top if top > 0 else y


def save(fig, path: str) -> None:
    """Lays out, writes (110 dpi, format from the extension) and closes ``fig``."""
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def spectra_overlay(path: str, panels: list[OverlayPanel]) -> None:
    """Writes a PNG with one row per panel: input (black) and samples (coloured), max = 1."""
    rows = max(1, len(panels))
    fig, axes = plt.subplots(rows, 1, figsize=(9, 2.4 * rows), squeeze=False)
    for ax, panel in zip(axes[:, 0], panels, strict=False):
        ax.plot(
            panel.grid_cm1, unit_max(panel.input_spectrum), color="black", lw=1.2, label="input"
        )
        for label, y in panel.samples:
            ax.plot(panel.grid_cm1, unit_max(y), lw=1.0, alpha=0.8, label=label)
        ax.set_title(panel.title, fontsize=9)
        ax.set_xlim(panel.grid_cm1[-1], panel.grid_cm1[0])  # IR convention: high → low
        ax.set_ylabel("norm. abs.")
        ax.legend(fontsize=7, loc="upper left")
    if not panels:
        axes[0, 0].text(0.5, 0.5, "no spectra", ha="center", va="center")
    axes[-1, 0].set_xlabel("wavenumber (cm$^{-1}$)")
    save(fig, path)
