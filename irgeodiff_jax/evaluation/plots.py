"""Report figures (matplotlib, Agg backend: no display needed).

* ``spectra_overlay``: input spectrum vs oracle spectra of sampled molecules, one panel per
  spectrum (paper Fig. 2 style); defined in ``utils/figures.py`` (``predict`` draws it too) and
  re-exported here with ``OverlayPanel``.
* ``simg_sis_hist``: joint histogram of sim_g and SIS over samples (Fig. 4A).
* ``mol_acc_vs_k``: molecular accuracy against the number of samples k (Fig. A4).
* ``attention_map``: per-layer atom→spectrum and edge→spectrum attention drawn over the input
  spectrum (Fig. 3, method.md §10). Atom maps are renormalised over atoms for each token.
"""

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from irgeodiff_jax.chem import elements  # noqa: E402
from irgeodiff_jax.utils import figures  # noqa: E402
from irgeodiff_jax.utils.figures import OverlayPanel as OverlayPanel  # noqa: E402
from irgeodiff_jax.utils.figures import spectra_overlay as spectra_overlay  # noqa: E402


def simg_sis_hist(path: str, sim_g, sis, bins: int = 20) -> None:
    """Writes the sim_g–SIS joint histogram (counts, log colour scale) with marginals."""
    sim_g, sis = np.asarray(sim_g, dtype=float), np.asarray(sis, dtype=float)
    fig = plt.figure(figsize=(5.5, 5))
    grid = fig.add_gridspec(2, 2, width_ratios=(4, 1), height_ratios=(1, 4))
    ax = fig.add_subplot(grid[1, 0])
    counts, xe, ye = np.histogram2d(sim_g, sis, bins=bins, range=[[0, 1], [0, 1]])
    shown = np.ma.masked_equal(counts.T, 0)
    mesh = ax.pcolormesh(
        xe,
        ye,
        shown,
        cmap="viridis",
        norm=matplotlib.colors.LogNorm(vmin=1, vmax=max(1, counts.max())),
    )
    fig.colorbar(mesh, cax=ax.inset_axes([0.04, 0.5, 0.03, 0.45]), label="samples")
    ax.set_xlabel("sim$_g$")
    ax.set_ylabel("SIS")
    top = fig.add_subplot(grid[0, 0], sharex=ax)
    top.hist(sim_g, bins=xe, color="tab:blue")
    top.set_title(f"{sim_g.size} samples", fontsize=9)
    right = fig.add_subplot(grid[1, 1], sharey=ax)
    right.hist(sis, bins=ye, orientation="horizontal", color="tab:orange")
    figures.save(fig, path)


def mol_acc_vs_k(path: str, curve: dict, extra_points: dict | None = None) -> None:
    """Writes molecular accuracy (%) against k; ``extra_points`` {label: (k, acc)} are marked."""
    ks = sorted(int(k) for k in curve)
    fig, ax = plt.subplots(figsize=(5, 3.5))
    ax.plot(
        ks,
        [100 * curve[k] if k in curve else 100 * curve[str(k)] for k in ks],
        "o-",
        label="sample order",
    )
    for label, (k, acc) in (extra_points or {}).items():
        if acc is not None:
            ax.plot([k], [100 * acc], "s", label=label)
    ax.set_xlabel("samples per spectrum k")
    ax.set_ylabel("molecular accuracy (%)")
    ax.set_ylim(0, 100)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    figures.save(fig, path)


def _patch_centres(grid_cm1: np.ndarray, num_patches: int, patch_size: int) -> np.ndarray:
    idx = np.arange(num_patches) * patch_size + (patch_size - 1) / 2.0
    return np.interp(idx, np.arange(grid_cm1.size), grid_cm1)


def attention_map(path: str, maps, spectrum, grid_cm1, title: str = "") -> None:
    """Writes per-layer attention over the input spectrum (``maps``: samples_dir.AttentionMaps).

    Each layer row shows the atom→patch attention (atoms × patches, renormalised over atoms per
    patch) as an image and the edge→patch attention (max over edges) as a white line, under the
    input spectrum. The share of attention on formula tokens is given in each row's label.
    """
    grid_cm1 = np.asarray(grid_cm1, dtype=np.float64)
    p = maps.num_patches
    atom = np.asarray(maps.atom_spectrum, dtype=np.float64)  # [layers, N, T]
    edge = np.asarray(maps.edge_spectrum, dtype=np.float64)  # [layers, T]
    layers, n = atom.shape[0], atom.shape[1]
    centres = _patch_centres(grid_cm1, p, maps.patch_size)
    half = (centres[1] - centres[0]) / 2 if p > 1 else 1.0
    extent = (centres[0] - half, centres[-1] + half, n - 0.5, -0.5)
    labels = [elements.symbol(int(z)) for z in maps.atomic_numbers]
    fig, axes = plt.subplots(
        layers + 1,
        1,
        figsize=(9, 1.6 + 0.25 * n * layers + 1.2),
        squeeze=False,
        sharex=True,
        gridspec_kw=dict(height_ratios=[1.5] + [max(1.0, 0.12 * n)] * layers),
    )
    axes = axes[:, 0]
    axes[0].plot(grid_cm1, figures.unit_max(spectrum), color="black", lw=1)
    axes[0].set_title(title or "attention over the input spectrum", fontsize=9)
    axes[0].set_ylabel("input")
    for layer in range(layers):
        ax = axes[layer + 1]
        a = atom[layer, :, :p]
        a = a / np.maximum(a.sum(axis=0, keepdims=True), 1e-30)
        ax.imshow(a, aspect="auto", extent=extent, cmap="magma", interpolation="nearest")
        ax.set_yticks(range(n), labels, fontsize=max(4, 8 - n // 8))
        formula_share = float(atom[layer, :, p:].sum() / max(atom[layer].sum(), 1e-30))
        ax.set_ylabel(f"L{layer}\nF {formula_share:.0%}", fontsize=7)
        twin = ax.twinx()
        twin.plot(centres, figures.unit_max(edge[layer, :p]), color="white", lw=1)
        twin.set_yticks([])
        twin.set_ylim(-0.05, 1.05)
    axes[-1].set_xlim(grid_cm1[-1], grid_cm1[0])
    axes[-1].set_xlabel("wavenumber (cm$^{-1}$)")
    figures.save(fig, path)
