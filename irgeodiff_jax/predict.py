r"""Ranked candidate structures for a user's own IR spectrum and molecular formula.

    python -m irgeodiff_jax.predict --workdir=W --spectrum=FILE --formula=C4H6O --out=DIR \
        [--k=50] [--kind=absorbance|transmittance] [--oracle=none|xtb] \
        [--sampler=ancestral|fast --steps=K] [--seed=0]

Reads FILE (two-column CSV/TXT, or JCAMP-DX ``.jdx``/``.dx``; ``chem/spectrum_files.py``) onto the
model grid, turns the formula into atom types of the model's vocabulary, samples k geometries
with the trained model of W (``sampling.generate``), assigns bonds (``chem.bonds``) and groups
identical candidates by canonical SMILES. Candidates are ranked by how many of the k samples
gave them; with ``--oracle=xtb`` the stable candidates are re-optimised with GFN2-xTB in the
scoring worker pool (``chem/worker.py``) and ranked by SIS to the input first.

Outputs in DIR (each written atomically; nothing is written before the inputs are checked):
``candidates.csv`` (rank, smiles, count, fraction, valid, stable, connected, oracle_sis,
oracle_sis_star, identity_kept, oracle_status), ``candidates.sdf`` (one geometry per candidate),
``samples.sdf`` (all k samples), ``overlay.png`` (input vs the top candidates' oracle spectra,
or the input alone with a note) and ``prediction.json`` (settings, notes, summary).
Bad input (unreadable file, spectrum not covering 500–4000 cm⁻¹, element the model does not know,
too many atoms) gives a one-line error and exit status 2.
"""

import csv
import io
import os
import sys
import tempfile

import numpy as np
from absl import app, flags
from rdkit import Chem

from irgeodiff_jax.chem import bonds, elements, formula, scoring, spectra, spectrum_files, worker
from irgeodiff_jax.data import features
from irgeodiff_jax.evaluation import plots
from irgeodiff_jax.evaluation import samples_format as sf
from irgeodiff_jax.sampling import generate

MAX_OVERLAY_CANDIDATES = 3
CSV_FIELDS = (
    "rank",
    "smiles",
    "count",
    "fraction",
    "valid",
    "stable",
    "connected",
    "oracle_sis",
    "oracle_sis_star",
    "identity_kept",
    "oracle_status",
    "first_sample",
)


class PredictError(ValueError):
    """Bad input to ``predict`` (one-line reason saying what to fix)."""


def atoms_for_formula(text: str, vocab, max_atoms: int) -> tuple[str, np.ndarray]:
    """(Hill formula, atomic numbers [n]) checked against the model's elements and size."""
    try:
        hill = formula.to_hill(formula.parse(text))
        z = formula.to_atomic_numbers(hill)
    except formula.FormulaError as e:
        raise PredictError(f"--formula: {e}") from None
    unknown = sorted({int(v) for v in z} - {int(v) for v in vocab})
    if unknown:
        names = ", ".join(elements.symbol(v) for v in unknown)
        known = ", ".join(elements.symbol(int(v)) for v in vocab)
        raise PredictError(
            f"--formula {hill}: the model does not know {names}; it was trained on {known} only"
        )
    if z.size > max_atoms:
        raise PredictError(
            f"--formula {hill} has {z.size} atoms (with hydrogens); the model supports at most "
            f"{max_atoms}"
        )
    if z.size < 2:
        raise PredictError(f"--formula {hill}: need at least 2 atoms")
    return hill, z


def _formula_tokens(hill: str, config, notes: list) -> np.ndarray:
    data = config.data
    preset = data.get("formula_vocab", None) or data.get("fg_scheme", "qm9s")
    tokenizer = formula.FormulaTokenizer.for_dataset(preset)
    tokens = tokenizer.encode(hill, int(data.get("formula_len", 16)))
    if np.any(tokens == formula.UNK_ID):
        notes.append(f"formula {hill} has a count outside the model's vocabulary ([UNK] token)")
    return tokens


def _example(z: np.ndarray, spectrum: np.ndarray, tokens: np.ndarray, config) -> dict:
    return {
        "id": 0,
        "atomic_numbers": z,
        "positions": np.zeros((z.size, 3), np.float32),
        "spectrum": spectrum.astype(np.float32),
        "formula_tokens": tokens,
        "fg_labels": np.zeros(int(config.data.get("num_fg", 20)), np.float32),
    }


def _assess(z: np.ndarray, pos: np.ndarray) -> dict:
    """Bond assignment and structural checks of one sample."""
    try:
        mol = bonds.geometry_to_mol(z, pos)
    except bonds.BondAssignmentError as e:
        return dict(mol=None, smiles=None, reason=" ".join(str(e).split()))
    return dict(
        mol=mol,
        smiles=scoring.canonical_smiles(mol),
        valid=scoring.is_valid(mol),
        stable=scoring.is_stable(mol),
        connected=scoring.is_connected(mol),
    )


def group_candidates(z: np.ndarray, positions: np.ndarray) -> tuple[list[dict], int]:
    """Candidates (one per canonical SMILES, by count then first appearance) and #unassigned."""
    groups: dict[str, dict] = {}
    unassigned = 0
    for j, pos in enumerate(positions):
        a = _assess(z, pos)
        if a["smiles"] is None:
            unassigned += 1
            continue
        g = groups.setdefault(a["smiles"], dict(a, count=0, first_sample=j, samples=[]))
        g["count"] += 1
        g["samples"].append(j)
    ranked = sorted(groups.values(), key=lambda g: (-g["count"], g["first_sample"]))
    return ranked, unassigned


def _oracle(cands, z, positions, spectrum, workers: int, timeout_s: float) -> None:
    """Adds oracle fields (SIS to the input) to the stable candidates, in place."""
    settings = worker.OracleSettings(timeout_s=0.8 * timeout_s)
    jobs = [
        worker.ScoreJob(
            spectrum_id=0,
            sample_index=i,
            atomic_numbers=z,
            positions=positions[c["first_sample"]],
            reference_smiles=c["smiles"],
            spectrum=spectrum,
            spectrum_grid=spectra.MODEL_GRID,
            oracle=settings,
        )
        for i, c in enumerate(cands)
        if c["stable"]
    ]
    for c in cands:
        c["oracle_status"] = "skipped_unstable" if not c["stable"] else "failed"
    if not jobs:
        return
    with worker.ScoringPool(min(workers, len(jobs)), timeout_s) as pool:
        for r in pool.imap_unordered(jobs):
            c = cands[int(r["sample_index"])]
            c["oracle_status"] = r.get("oracle_status") or r.get("reason") or "failed"
            c["identity_kept"] = r.get("identity_kept")
            if r.get("status") == "ok" and r.get("oracle_status") == "ok":
                c["oracle_sis"], c["oracle_sis_star"] = r.get("sis"), r.get("sis_star")
                c["oracle_sticks"] = (r["oracle_frequencies_cm1"], r["oracle_intensities"])


def rank_candidates(cands: list[dict], by_oracle: bool) -> list[dict]:
    """By oracle SIS (identity kept; others after) when asked, then by count; ranks from 1."""

    def key(c):
        sis = c.get("oracle_sis") if c.get("identity_kept") else None
        primary = (sis is None, -(sis or 0.0)) if by_oracle else (False, 0.0)
        return (*primary, -c["count"], c["first_sample"])

    ranked = sorted(cands, key=key)
    for r, c in enumerate(ranked, start=1):
        c["rank"] = r
    return ranked


def _csv_bytes(cands: list[dict]) -> bytes:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=CSV_FIELDS, extrasaction="ignore")
    writer.writeheader()
    for c in cands:
        writer.writerow(c)
    return buf.getvalue().encode()


def _sdf_bytes(cands: list[dict], k: int) -> bytes:
    parts = []
    for c in cands:
        mol = Chem.Mol(c["mol"])
        mol.SetProp("_Name", f"rank {c['rank']}: {c['smiles']}")
        props = dict(rank=c["rank"], smiles=c["smiles"], count=c["count"], fraction=c["count"] / k)
        props.update(valid=int(c["valid"]), stable=int(c["stable"]))
        if c.get("oracle_sis") is not None:
            props["oracle_sis"] = round(c["oracle_sis"], 5)
        block = "".join(f">  <{name}>\n{value}\n\n" for name, value in props.items())
        parts.append(Chem.MolToMolBlock(mol) + block + "$$$$\n")
    return "".join(parts).encode()


def _write_overlay(path: str, spectrum, cands: list[dict], title: str, oracle: str) -> None:
    grid = spectra.grid(*spectra.EVAL_GRID)
    curves = []
    for c in cands:
        if c.get("oracle_sticks") and len(curves) < MAX_OVERLAY_CANDIDATES:
            y = spectra.broaden(*c["oracle_sticks"], grid)
            curves.append((f"#{c['rank']} {c['smiles']} SIS={c['oracle_sis']:.3f}", y))
    if curves:
        note = ""
    elif oracle == "xtb":
        note = " (no candidate passed the xTB oracle: none stable or identity lost)"
    else:
        note = " (no oracle spectra: run with --oracle=xtb to compare)"
    y_in = spectra.resample(spectrum, spectra.grid(*spectra.MODEL_GRID), grid)
    panel = plots.OverlayPanel(title + note, grid, y_in, tuple(curves))
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), prefix=".tmp-", suffix=".png")
    os.close(fd)
    try:
        plots.spectra_overlay(tmp, [panel])
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def predict(
    workdir: str,
    spectrum_path: str,
    formula_text: str,
    out_dir: str,
    *,
    k: int = 50,
    kind: str | None = None,
    oracle: str = "none",
    settings: generate.SamplerSettings = generate.ANCESTRAL,
    seed: int = 0,
    workers: int = 1,
    timeout_s: float = 600.0,
    runner=None,
) -> dict:
    """Runs the whole prediction (see the module docstring); returns the summary dict."""
    from irgeodiff_jax import sample  # noqa: PLC0415  (JAX/model imports only when running)
    from irgeodiff_jax.training import inference  # noqa: PLC0415

    if k < 1 or oracle not in ("none", "xtb"):
        raise PredictError(f"need --k >= 1 and --oracle none|xtb, got {k}, {oracle!r}")
    try:
        user = spectrum_files.read_spectrum(spectrum_path, kind=kind)
    except spectrum_files.SpectrumFileError as e:
        raise PredictError(f"--spectrum {e}") from None
    early = inference.read_config_file(workdir) if os.path.isdir(workdir) else None
    if early is not None:  # fail fast, before restoring the checkpoint
        atoms_for_formula(
            formula_text, sample.atom_vocabulary(early), int(early.data.get("max_atoms", 29))
        )
    runner = runner or sample.ModelRunner(workdir)
    settings.check(runner.schedule)
    hill, z = atoms_for_formula(formula_text, runner.vocab, runner.max_atoms)
    notes = list(user.notes)
    tokens = _formula_tokens(hill, runner.bundle.config, notes)
    row = features.featurize(
        _example(z, user.absorbance, tokens, runner.bundle.config),
        max_atoms=runner.bucket_for(z.size),
        vocab=runner.vocab,
        levels=runner.levels,
        formula_len=runner.formula_len,
    )
    out = runner.run([row], seed, k, settings)
    positions = out["positions"][0][:, : z.size]
    cands, unassigned = group_candidates(z, positions)
    for c in cands:
        c["fraction"] = round(c["count"] / k, 6)
    if oracle == "xtb":
        _oracle(cands, z, positions, user.absorbance, workers, timeout_s)
    cands = rank_candidates(cands, by_oracle=oracle == "xtb")
    os.makedirs(out_dir, exist_ok=True)
    sf.write_sdf(os.path.join(out_dir, "samples.sdf"), z, positions, title=hill)
    sf.atomic_write_bytes(os.path.join(out_dir, "candidates.csv"), _csv_bytes(cands))
    sf.atomic_write_bytes(os.path.join(out_dir, "candidates.sdf"), _sdf_bytes(cands, k))
    title = f"{os.path.basename(spectrum_path)} ({hill}), k={k}"
    _write_overlay(os.path.join(out_dir, "overlay.png"), user.absorbance, cands, title, oracle)
    summary = dict(
        formula=hill,
        spectrum=os.path.abspath(spectrum_path),
        kind=user.kind,
        notes=notes,
        k=k,
        sampler=settings.name,
        steps=settings.num_steps(runner.schedule),
        seed=seed,
        oracle=oracle,
        model=runner.fingerprint(),
        workdir=runner.workdir,
        num_candidates=len(cands),
        unassigned_samples=unassigned,
        top=[{f: c.get(f) for f in CSV_FIELDS} for c in cands[:5]],
    )
    sf.atomic_write_json(os.path.join(out_dir, "prediction.json"), summary)
    return summary


FLAGS = flags.FLAGS


def define_flags() -> None:
    """The command-line flags (defined only when run as a program)."""
    flags.DEFINE_string("workdir", None, "Training workdir of the model.")
    flags.DEFINE_string("spectrum", None, "Spectrum file: CSV/TXT or JCAMP-DX.")
    flags.DEFINE_string("formula", None, "Molecular formula, e.g. C4H6O.")
    flags.DEFINE_string("out", None, "Output directory.")
    flags.DEFINE_integer("k", 50, "Number of samples.")
    flags.DEFINE_enum(
        "kind", None, list(spectrum_files.KINDS), "What the file holds (needed for CSV/TXT)."
    )
    flags.DEFINE_enum("oracle", "none", ["none", "xtb"], "Rank by xTB oracle SIS.")
    flags.DEFINE_enum("sampler", "ancestral", list(generate.SAMPLERS), "Reverse chain.")
    flags.DEFINE_integer("steps", 50, "Steps of the fast sampler.")
    flags.DEFINE_integer("seed", 0, "Sampling seed.")
    flags.DEFINE_integer("workers", 1, "Oracle worker processes.")
    flags.DEFINE_float("timeout_s", 600.0, "Oracle time limit per candidate (s).")


def main(argv) -> None:
    del argv
    from irgeodiff_jax import sample  # noqa: PLC0415
    from irgeodiff_jax.training import checkpointing, inference  # noqa: PLC0415

    errors = (
        PredictError,
        sample.SampleError,
        generate.GenerateError,
        inference.InferenceError,
        checkpointing.CheckpointError,
        features.ExampleError,
    )
    try:
        missing = [
            name for name in ("workdir", "spectrum", "formula", "out") if not FLAGS[name].value
        ]
        if missing:
            raise PredictError("missing " + ", ".join(f"--{name}" for name in missing))
        summary = predict(
            FLAGS.workdir,
            FLAGS.spectrum,
            FLAGS.formula,
            FLAGS.out,
            k=FLAGS.k,
            kind=FLAGS.kind,
            oracle=FLAGS.oracle,
            settings=generate.SamplerSettings(FLAGS.sampler, FLAGS.steps),
            seed=FLAGS.seed,
            workers=FLAGS.workers,
            timeout_s=FLAGS.timeout_s,
        )
    except errors as e:
        print(f"predict: error: {' '.join(str(e).split())}", file=sys.stderr)
        sys.exit(2)
    for c in summary["top"]:
        sis = "" if c.get("oracle_sis") is None else f"  SIS={c['oracle_sis']:.3f}"
        print(f"{c['rank']:3d}  {c['smiles']:30s} {c['count']:4d}/{summary['k']}{sis}")
    print(f"{summary['num_candidates']} candidates; files in {os.path.abspath(FLAGS.out)}")


if __name__ == "__main__":
    define_flags()
    app.run(main)
