r"""Score a samples directory and write the evaluation reports.

    python -m irgeodiff_jax.evaluate --samples=DIR --out=DIR2 [--oracle=none|xtb] \
        [--oracle_spectra=M] [--workers=W] [--timeout_s=T] [--ks=1,5,10,20,30,40,50]

Every sample of every completed chunk in DIR (see ``evaluation/samples_format.py``) is scored in
a pool of worker processes (``chem/worker.py``); with ``--oracle=xtb`` the stable samples of the
first M spectra (directory order; all when M < 0) also get the GFN2-xTB oracle (SIS, SIS*).
Each result is appended to ``DIR2/per_sample.jsonl`` as soon as it arrives; a re-run skips the
samples already there (so it only scores chunks written since, e.g. while ``sample`` runs) and
re-scores with the oracle the samples that lack it when it is now requested.

Outputs in DIR2: ``metrics.json`` (atomic; definitions in ``evaluation/metrics.py``),
``per_spectrum.csv``, ``per_sample.jsonl``, ``spectra_overlay.png``, ``mol_acc_vs_k.png``,
``simg_sis_hist.png`` (with oracle results) and ``attention_<id>.png`` for spectra with maps.
Only spectra whose k samples all have results enter the metrics.
"""

import csv
import io
import json
import os
import sys
import time

import numpy as np
from absl import app, flags, logging

from irgeodiff_jax.chem import spectra, worker
from irgeodiff_jax.evaluation import metrics, plots
from irgeodiff_jax.evaluation import samples_format as sf

PER_SAMPLE = "per_sample.jsonl"
MAX_OVERLAY_PANELS = 4
MAX_ATTENTION_PLOTS = 4
_TABLE_KEYS = (
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


class EvaluationError(ValueError):
    """Bad arguments or inputs to the evaluation (one-line reason)."""


def load_results(path: str) -> dict[tuple[int, int], dict]:
    """Per-sample results keyed by (spectrum_id, sample_index); later lines win.

    A truncated last line (a run killed mid-write) is ignored, so that sample is re-scored.
    """
    out = {}
    if not os.path.exists(path):
        return out
    with open(path) as f:
        for line in f:
            try:
                r = json.loads(line)
                out[(int(r["spectrum_id"]), int(r["sample_index"]))] = r
            except (json.JSONDecodeError, KeyError, TypeError, ValueError):
                continue
    return out


def append_result(f, record: dict) -> None:
    """Appends one JSON line with a single write, flushed and synced."""
    f.write(json.dumps(record, sort_keys=True) + "\n")
    f.flush()
    os.fsync(f.fileno())


def _is_done(record: dict | None, want_oracle: bool) -> bool:
    return record is not None and (not want_oracle or record.get("oracle") == "xtb")


def _jobs(samples_dir, manifest, done, oracle_ids, settings):
    grid = tuple(manifest["spectrum_grid"])
    for s in sf.read_samples(samples_dir):
        want = s.id in oracle_ids
        for j, pos in enumerate(s.positions):
            if _is_done(done.get((s.id, j)), want):
                continue
            yield worker.ScoreJob(
                spectrum_id=s.id,
                sample_index=j,
                atomic_numbers=s.atomic_numbers,
                positions=pos,
                reference_smiles=s.reference_smiles,
                spectrum=s.spectrum if want else None,
                spectrum_grid=grid,
                oracle=settings if want else None,
            )


def _spectrum_index(samples_dir: str) -> dict[int, str]:
    """id → reference SMILES for every completed spectrum, in directory order."""
    manifest = sf.read_manifest(samples_dir)
    out = {}
    for name in manifest["chunks"]:
        chunk = sf.load_chunk(samples_dir, name)
        out.update(
            {int(i): str(s) for i, s in zip(chunk["ids"], chunk["reference_smiles"], strict=True)}
        )
    return out


def score_directory(
    samples_dir,
    out_dir,
    *,
    oracle,
    oracle_spectra,
    workers,
    timeout_s,
    frequency_scale=1.0,
    fwhm_cm1=spectra.DEFAULT_FWHM_CM1,
) -> int:
    """Scores the samples not yet in ``per_sample.jsonl``; returns how many were scored."""
    manifest = sf.read_manifest(samples_dir)
    ids = list(_spectrum_index(samples_dir))
    oracle_ids = set()
    if oracle == "xtb":
        oracle_ids = set(ids if oracle_spectra < 0 else ids[:oracle_spectra])
    settings = worker.OracleSettings(
        fwhm_cm1=fwhm_cm1, frequency_scale=frequency_scale, timeout_s=0.8 * timeout_s
    )
    path = os.path.join(out_dir, PER_SAMPLE)
    done = load_results(path)
    jobs = _jobs(samples_dir, manifest, done, oracle_ids, settings)
    count, start = 0, time.monotonic()
    with open(path, "a") as f, worker.ScoringPool(workers, timeout_s) as pool:
        for result in pool.imap_unordered(jobs):
            append_result(f, result)
            count += 1
            if result["status"] != "ok":
                logging.warning(
                    "sample %s/%s failed: %s",
                    result["spectrum_id"],
                    result["sample_index"],
                    result["reason"],
                )
            if count % 100 == 0:
                logging.info("scored %d samples in %.0f s", count, time.monotonic() - start)
    return count


def _complete_spectra(samples_dir, results, k) -> tuple[list[int], list[list[dict]]]:
    ids, groups = [], []
    for sid in _spectrum_index(samples_dir):
        rs = [results.get((sid, j)) for j in range(k)]
        if all(r is not None for r in rs):
            ids.append(sid)
            groups.append(rs)
    return ids, groups


def _write_csv(path: str, ids, refs, groups) -> None:
    rows = [
        dict(id=sid, reference_smiles=refs[sid], **metrics.spectrum_summary(rs))
        for sid, rs in zip(ids, groups, strict=True)
    ]
    fields = list(dict.fromkeys(key for row in rows for key in row)) or ["id"]
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=fields)
    writer.writeheader()
    writer.writerows(rows)
    sf.atomic_write_bytes(path, buf.getvalue().encode())


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
    manifest = sf.read_manifest(samples_dir)
    panels = []
    for s in sf.read_samples(samples_dir):
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
    manifest = sf.read_manifest(samples_dir)
    src = spectra.grid(*manifest["spectrum_grid"])
    written = []
    for s in sf.read_samples(samples_dir):
        if len(written) >= MAX_ATTENTION_PLOTS:
            break
        maps = sf.read_attention(samples_dir, s.id)
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
    manifest = sf.read_manifest(samples_dir)
    k = int(manifest["samples_per_spectrum"])
    results = load_results(os.path.join(out_dir, PER_SAMPLE))
    ids, groups = _complete_spectra(samples_dir, results, k)
    if not groups:
        raise EvaluationError(f"no spectrum in {samples_dir} has all {k} samples scored")
    refs = _spectrum_index(samples_dir)
    out = metrics.aggregate(groups, ks)
    out.update(
        samples_dir=os.path.abspath(samples_dir),
        sampler=manifest.get("sampler"),
        steps=manifest.get("steps"),
        split=manifest.get("split"),
    )
    sf.atomic_write_json(os.path.join(out_dir, "metrics.json"), out)
    _write_csv(os.path.join(out_dir, "per_spectrum.csv"), ids, refs, groups)
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


def parse_ks(text: str) -> tuple[int, ...]:
    try:
        ks = tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise EvaluationError(f"--ks must be comma-separated integers, got {text!r}") from None
    if not ks or min(ks) < 1:
        raise EvaluationError(f"--ks needs positive integers, got {text!r}")
    return ks


def run_evaluation(
    samples_dir,
    out_dir,
    *,
    oracle="none",
    oracle_spectra=-1,
    workers=1,
    timeout_s=600.0,
    ks=metrics.DEFAULT_KS,
    frequency_scale=1.0,
    fwhm_cm1=spectra.DEFAULT_FWHM_CM1,
) -> dict:
    """Scores what is new in ``samples_dir`` and writes every report; returns the metrics."""
    if oracle not in ("none", "xtb"):
        raise EvaluationError(f"--oracle must be none or xtb, got {oracle!r}")
    if workers < 1 or not timeout_s > 0:
        raise EvaluationError(
            f"need --workers >= 1 and --timeout_s > 0, got {workers}, {timeout_s}"
        )
    sf.read_manifest(samples_dir)
    os.makedirs(out_dir, exist_ok=True)
    score_directory(
        samples_dir,
        out_dir,
        oracle=oracle,
        oracle_spectra=oracle_spectra,
        workers=workers,
        timeout_s=timeout_s,
        frequency_scale=frequency_scale,
        fwhm_cm1=fwhm_cm1,
    )
    return write_reports(samples_dir, out_dir, ks, fwhm_cm1, frequency_scale)


def format_table(m: dict) -> str:
    """The headline metrics as aligned text lines."""
    lines = [
        f"{key:22s} {m[key]:.4f}" if isinstance(m[key], float) else f"{key:22s} {m[key]}"
        for key in _TABLE_KEYS
        if key in m
    ]
    lines += [f"mol_acc@{j:<14s} {v:.4f}" for j, v in m["mol_acc_at_k"].items()]
    return "\n".join(lines)


_SAMPLES = flags.DEFINE_string("samples", None, "Samples directory written by sample.")
_OUT = flags.DEFINE_string("out", None, "Output directory for the reports.")
_ORACLE = flags.DEFINE_enum("oracle", "none", ["none", "xtb"], "Spectral oracle for SIS.")
_ORACLE_SPECTRA = flags.DEFINE_integer(
    "oracle_spectra", -1, "Oracle on the first M spectra (<0: all)."
)
_WORKERS = flags.DEFINE_integer("workers", max(1, (os.cpu_count() or 2) - 1), "Worker processes.")
_TIMEOUT = flags.DEFINE_float("timeout_s", 600.0, "Hard time limit per sample (s).")
_KS = flags.DEFINE_string("ks", "1,5,10,20,30,40,50", "Points of the accuracy-vs-k curve.")
_SCALE = flags.DEFINE_float(
    "frequency_scale", 1.0, "Oracle frequency scale (0.965 for B3LYP data)."
)


def main(argv) -> None:
    del argv
    try:
        if not _SAMPLES.value or not _OUT.value:
            raise EvaluationError("--samples and --out are required")
        m = run_evaluation(
            _SAMPLES.value,
            _OUT.value,
            oracle=_ORACLE.value,
            oracle_spectra=_ORACLE_SPECTRA.value,
            workers=_WORKERS.value,
            timeout_s=_TIMEOUT.value,
            ks=parse_ks(_KS.value),
            frequency_scale=_SCALE.value,
        )
    except (EvaluationError, sf.SamplesFormatError) as e:
        print(f"evaluate: error: {e}", file=sys.stderr)
        sys.exit(2)
    print(format_table(m))
    print(f"reports in {os.path.abspath(_OUT.value)}")


if __name__ == "__main__":
    app.run(main)
