"""Reports of an evaluation: metrics.json, per_spectrum.csv, plots, and the metrics table.

``write_reports`` aggregates ``per_sample.jsonl`` (``evaluation/results.py``) into
``metrics.json`` (atomic; definitions in ``evaluation/metrics.py``), ``per_spectrum.csv``,
``spectra_overlay.png``, ``mol_acc_vs_k.png``, ``simg_sis_hist.png`` (with oracle results) and
``attention_<id>.png`` for spectra with maps. Only spectra whose k samples all have results
enter the metrics. ``format_table`` is the one formatter of the metrics for the console.
"""

import csv
import io
import os

import numpy as np

from irgeodiff_jax.chem import spectra
from irgeodiff_jax.evaluation import metrics, plots
from irgeodiff_jax.evaluation.results import (
    PER_SAMPLE,
    EvaluationError,
    load_results,
    reference_index,
)
from irgeodiff_jax.sampling import samples_dir as sdir
from irgeodiff_jax.utils import atomic

MAX_OVERLAY_PANELS = 4
MAX_ATTENTION_PLOTS = 4


def _complete_spectra(index, results, k) -> tuple[list[int], list[list[dict]]]:
    ids, groups = [], []
    for sid in index:
        rs = [results.get((sid, j)) for j in range(k)]
        if all(r is not None for r in rs):
            ids.append(sid)
            groups.append(rs)
    return ids, groups


def _write_csv(path: str, ids, refs, heavy, groups) -> None:
    rows = [
        dict(
            id=sid,
            reference_smiles=refs[sid],
            heavy_atoms=heavy[sid],
            **metrics.spectrum_summary(rs),
        )
        for sid, rs in zip(ids, groups, strict=True)
    ]
    fields = list(dict.fromkeys(key for row in rows for key in row)) or ["id"]
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=fields)
    writer.writeheader()
    writer.writerows(rows)
    atomic.write_text(path, buf.getvalue())


def _oracle_curve(r: dict, grid: np.ndarray, fwhm_cm1: float, scale: float) -> np.ndarray | None:
    if not r.get("oracle_frequencies_cm1"):
        return None
    return spectra.broaden(
        r["oracle_frequencies_cm1"], r["oracle_intensities"], grid, fwhm_cm1=fwhm_cm1, scale=scale
    )


def _overlay_panels(samples_dir, ids, groups, refs, fwhm_cm1, scale) -> list:
    grid = spectra.grid(*spectra.EVAL_GRID)
    with_oracle = [i for i, rs in enumerate(groups) if any(metrics.counted_sis(r) for r in rs)]
    chosen = (with_oracle or list(range(len(ids))))[:MAX_OVERLAY_PANELS]
    wanted = {ids[i]: groups[i] for i in chosen}
    manifest = sdir.read_manifest(samples_dir)
    panels = []
    for s in sdir.read_samples(samples_dir):
        if s.id not in wanted:
            continue
        src = spectra.grid(*manifest["spectrum_grid"])
        curves = []
        for pos in metrics.rerank_order(wanted[s.id])[:2]:
            r = wanted[s.id][pos]
            y = _oracle_curve(r, grid, fwhm_cm1, scale) if metrics.counted_sis(r) else None
            if y is not None:
                curves.append((f"sample {pos}: {r.get('smiles')} SIS={r['sis']:.3f}", y))
        note = "" if curves else " (no oracle spectra)"
        title = f"spectrum {s.id}: {refs[s.id]}{note}"
        panels.append(
            plots.OverlayPanel(title, grid, spectra.resample(s.spectrum, src, grid), tuple(curves))
        )
    return panels


def _attention_plots(samples_dir, out_dir) -> list[str]:
    manifest = sdir.read_manifest(samples_dir)
    src = spectra.grid(*manifest["spectrum_grid"])
    written = []
    for s in sdir.read_samples(samples_dir):
        if len(written) >= MAX_ATTENTION_PLOTS:
            break
        maps = sdir.read_attention(samples_dir, s.id)
        if maps is None:
            continue
        path = os.path.join(out_dir, f"attention_{s.id}.png")
        plots.attention_map(
            path,
            maps,
            s.spectrum,
            src,
            title=f"spectrum {s.id} ({s.reference_smiles}), sample {maps.sample_index}",
        )
        written.append(path)
    return written


def write_reports(samples_dir, out_dir, ks, fwhm_cm1=spectra.DEFAULT_FWHM_CM1, scale=1.0) -> dict:
    """Aggregates ``per_sample.jsonl`` into metrics.json, per_spectrum.csv and the plots."""
    manifest = sdir.read_manifest(samples_dir)
    k = int(manifest["samples_per_spectrum"])
    results = load_results(os.path.join(out_dir, PER_SAMPLE))
    index = reference_index(samples_dir)
    ids, groups = _complete_spectra(index, results, k)
    if not groups:
        raise EvaluationError(f"no spectrum in {samples_dir} has all {k} samples scored")
    refs = {sid: smiles for sid, (smiles, _) in index.items()}
    heavy = {sid: n for sid, (_, n) in index.items()}
    out = metrics.aggregate(groups, ks, heavy_atoms=[heavy[sid] for sid in ids])
    settings = manifest.get("extra", {})  # the sampler's settings beyond its kind and steps
    out.update(
        samples_dir=os.path.abspath(samples_dir),
        sampler=manifest.get("sampler"),
        steps=manifest.get("steps"),
        eta=settings.get("eta"),
        spacing=settings.get("spacing", "uniform"),
        guidance=settings.get("guidance", 1.0),
        guidance_interval=settings.get("guidance_interval", [0.0, 1.0]),
        split=manifest.get("split"),
    )
    atomic.write_json(os.path.join(out_dir, "metrics.json"), out)
    _write_csv(os.path.join(out_dir, "per_spectrum.csv"), ids, refs, heavy, groups)
    plots.spectra_overlay(
        os.path.join(out_dir, "spectra_overlay.png"),
        _overlay_panels(samples_dir, ids, groups, refs, fwhm_cm1, scale),
    )
    extra = {}
    if "reranked_top1" in out:
        extra = {"re-ranked by SIS, top 1": (1, out["reranked_top1"])}
        if k >= 3:
            extra["re-ranked by SIS, top 3"] = (3, out["reranked_top3"])
    plots.mol_acc_vs_k(
        os.path.join(out_dir, "mol_acc_vs_k.png"),
        {int(j): v for j, v in out["mol_acc_at_k"].items()},
        extra,
    )
    pairs = [
        (r["sim_g"], metrics.counted_sis(r))
        for rs in groups
        for r in rs
        if metrics.counted_sis(r) is not None and r.get("sim_g") is not None
    ]
    if pairs:
        sim, sis = zip(*pairs, strict=True)
        plots.simg_sis_hist(os.path.join(out_dir, "simg_sis_hist.png"), sim, sis)
    _attention_plots(samples_dir, out_dir)
    return out


# (metrics.json key, label) rows of ``format_table``: all headline metrics under their own names
# (``evaluate``), and the paper's headline numbers with readable labels (``quickstart``).
METRIC_ROWS = tuple(
    (key, key)
    for key in (
        "num_spectra",
        "samples_per_spectrum",
        "validity",
        "stability",
        "connectivity",
        "sim_g",
        "max_sim_g",
        "mol_acc",
        "failures",
        "identity_kept",
        "sis",
        "max_sis",
        "sis_star",
        "reranked_top1",
        "reranked_top3",
        "unranked_top1",
        "unranked_top3",
    )
)
SUMMARY_ROWS = (
    ("mol_acc", "molecular accuracy (any of k matches)"),
    ("validity", "validity"),
    ("stability", "stability"),
    ("connectivity", "connectivity"),
    ("sim_g", "sim_g (mean, stable samples)"),
    ("max_sim_g", "max sim_g (per spectrum)"),
    ("sis", "SIS (xTB oracle)"),
    ("max_sis", "max SIS"),
    ("sis_star", "SIS* (1350-4000 cm-1)"),
    ("reranked_top1", "top-1 re-ranked by SIS (oracle spectra)"),
    ("unranked_top1", "top-1 in sample order (same spectra)"),
)


def format_table(m: dict, rows=METRIC_ROWS, *, markdown: bool = False) -> str:
    """The metrics of ``rows`` present in ``m``, then the accuracy-vs-k curve and the accuracy per
    reference size (``mol_acc_by_heavy_atoms``, with its number of spectra n), one per line.

    Plain text (default): ``label value`` aligned, floats to 4 decimals, a missing (None) value
    shown as None. ``markdown``: a two-column Markdown table, numbers to 3 decimals, rows whose
    value is None left out.
    """
    curve = sorted((m.get("mol_acc_at_k") or {}).items(), key=lambda item: int(item[0]))
    label_at_k = "mol acc @ k={}" if markdown else "mol_acc@{}"
    cells = [(label, m[key]) for key, label in rows if key in m]
    cells += [(label_at_k.format(j), v) for j, v in curve]
    by_size = sorted((m.get("mol_acc_by_heavy_atoms") or {}).items(), key=lambda item: int(item[0]))
    label_size = "mol acc, {} heavy atoms (n = {})" if markdown else "mol_acc {} heavy ({})"
    cells += [(label_size.format(n, v["spectra"]), v["mol_acc"]) for n, v in by_size]
    if markdown:
        lines = ["| metric | value |", "|---|---|"]
        return "\n".join(lines + [f"| {label} | {v:.3f} |" for label, v in cells if v is not None])
    return "\n".join(
        f"{label:22s} {v:.4f}" if isinstance(v, float) else f"{label:22s} {v}" for label, v in cells
    )
