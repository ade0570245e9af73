"""Ranked candidate structures for a user's own IR spectrum and molecular formula.

``predict`` reads the spectrum file (two-column CSV/TXT, or JCAMP-DX ``.jdx``/``.dx``;
``chem/spectrum_files.py``) onto the model grid, turns the formula into atom types of the model's
vocabulary, samples k geometries with the trained model of a workdir, or with the model shipped in
the package when the workdir is None (``sampling/runner.py``),
groups identical candidates by canonical SMILES and ranks them (``sampling/candidates.py``: by
count, or by xTB-oracle SIS to the input first).

Outputs in the output directory (each written atomically; nothing is written before the inputs
are checked): ``candidates.csv`` (``candidates.CSV_FIELDS``), ``candidates.sdf`` (one geometry
per candidate), ``samples.sdf`` (all k samples), ``overlay.png`` (input vs the top candidates'
oracle spectra, or the input alone with a note) and ``prediction.json`` (settings, notes,
warnings about the spectrum, summary). Bad input (unreadable file, spectrum recording less than
60 % of 500–4000 cm⁻¹ (``spectrum_files.MIN_COVERAGE``), element the model does not know, too
many atoms) raises ``PredictError`` (or another of ``INPUT_ERRORS``) with a one-line reason.
"""

import os

import numpy as np

from irgeodiff_jax.chem import elements, formula, spectra, spectrum_files
from irgeodiff_jax.data import features
from irgeodiff_jax.data.settings import DataSettings
from irgeodiff_jax.sampling import candidates, generate
from irgeodiff_jax.sampling import samples_dir as sdir
from irgeodiff_jax.sampling.runner import ModelRunner, SampleError
from irgeodiff_jax.training import checkpointing, shipped
from irgeodiff_jax.training import workdir as workdirs
from irgeodiff_jax.utils import atomic, figures

MAX_OVERLAY_CANDIDATES = 3


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


def _formula_tokens(hill: str, data: DataSettings, notes: list) -> np.ndarray:
    tokenizer = formula.FormulaTokenizer.for_dataset(data.formula_preset)
    tokens = tokenizer.encode(hill, data.formula_len)
    if np.any(tokens == formula.UNK_ID):
        notes.append(f"formula {hill} has a count outside the model's vocabulary ([UNK] token)")
    return tokens


def _example(z: np.ndarray, spectrum: np.ndarray, tokens: np.ndarray, data: DataSettings) -> dict:
    return {
        "id": 0,
        "atomic_numbers": z,
        "positions": np.zeros((z.size, 3), np.float32),
        "spectrum": spectrum.astype(np.float32),
        "formula_tokens": tokens,
        "fg_labels": np.zeros(data.num_fg or 0, np.float32),  # not used by the sampler
    }


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
    panel = figures.OverlayPanel(title + note, grid, y_in, tuple(curves))
    with atomic.replacing(path) as tmp:
        figures.spectra_overlay(tmp, [panel])


def _read_inputs(workdir: str | None, spectrum_path: str, formula_text: str, kind: str | None):
    """The user's spectrum; the formula checked against the model's config before restoring."""
    try:
        user = spectrum_files.read_spectrum(spectrum_path, kind=kind)
    except spectrum_files.SpectrumFileError as e:
        raise PredictError(f"--spectrum {e}") from None
    workdir = shipped.SHIPPED_DIR if workdir is None else workdir
    early = workdirs.read_config_file(workdir) if os.path.isdir(workdir) else None
    if early is not None:  # fail fast, before restoring the checkpoint
        data = DataSettings.from_config(early.data)
        atoms_for_formula(formula_text, data.atom_types, data.max_atoms)
    return user


def _write_outputs(out_dir: str, title: str, hill: str, z, positions, cands, spectrum, oracle):
    """The files of the module docstring but ``prediction.json``; ``positions`` [k, n, 3]."""
    k = len(positions)
    os.makedirs(out_dir, exist_ok=True)
    sdir.write_sdf(os.path.join(out_dir, "samples.sdf"), z, positions, title=hill)
    atomic.write_bytes(os.path.join(out_dir, "candidates.csv"), candidates.csv_bytes(cands))
    atomic.write_bytes(os.path.join(out_dir, "candidates.sdf"), candidates.sdf_bytes(cands, k))
    _write_overlay(os.path.join(out_dir, "overlay.png"), spectrum, cands, title, oracle)


def predict(
    workdir: str | None,
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
    runner: ModelRunner | None = None,
) -> dict:
    """Runs the whole prediction (see the module docstring); returns the summary dict.

    The summary (also ``prediction.json``) has the settings, ``notes`` (every conversion of the
    spectrum and formula), ``warnings`` (one line per change the reader made to the data),
    ``num_candidates``, ``unassigned_samples`` and the ``top`` 5 candidates.
    """
    if k < 1 or oracle not in ("none", "xtb"):
        raise PredictError(f"need --k >= 1 and --oracle none|xtb, got {k}, {oracle!r}")
    user = _read_inputs(workdir, spectrum_path, formula_text, kind)
    runner = runner or ModelRunner(workdir)
    runner.check(settings)
    hill, z = atoms_for_formula(formula_text, runner.data.atom_types, runner.data.max_atoms)
    notes = list(user.notes)
    tokens = _formula_tokens(hill, runner.data, notes)
    row = features.featurize(
        _example(z, user.absorbance, tokens, runner.data),
        max_atoms=int(z.size),  # no padding: one molecule, one compilation either way
        **runner.data.featurize_kwargs(),
    )
    positions = runner.run([row], seed, k, settings)["positions"][0][:, : z.size]
    cands, unassigned = candidates.group_candidates(z, positions)
    for c in cands:
        c["fraction"] = round(c["count"] / k, 6)
    if oracle == "xtb":
        candidates.score_with_oracle(cands, z, positions, user.absorbance, workers, timeout_s)
    cands = candidates.rank_candidates(cands, by_oracle=oracle == "xtb")
    title = f"{os.path.basename(spectrum_path)} ({hill}), k={k}"
    _write_outputs(out_dir, title, hill, z, positions, cands, user.absorbance, oracle)
    summary = dict(
        formula=hill,
        spectrum=os.path.abspath(spectrum_path),
        kind=user.kind,
        notes=notes,
        warnings=list(user.warnings),
        k=k,
        sampler=settings.name,
        steps=settings.num_steps(runner.schedule),
        eta=settings.eta if settings.name == "fast" else None,
        spacing=settings.spacing if settings.name == "fast" else None,
        guidance=settings.guidance,
        seed=seed,
        oracle=oracle,
        model=runner.fingerprint(),
        workdir=runner.workdir,
        num_candidates=len(cands),
        unassigned_samples=unassigned,
        top=[{f: c.get(f) for f in candidates.CSV_FIELDS} for c in cands[:5]],
    )
    atomic.write_json(os.path.join(out_dir, "prediction.json"), summary)
    return summary


INPUT_ERRORS = (
    PredictError,
    SampleError,
    generate.GenerateError,
    workdirs.InferenceError,
    checkpointing.CheckpointError,
    features.ExampleError,
)  # bad flags or inputs: the command line reports them in one line, exit status 2
