"""``python -m irgeodiff_jax.predict`` on xTB-oracle spectra of methanol (CSV and JCAMP-DX)."""

import csv
import json
import os
import re

import numpy as np
import pytest
from rdkit import Chem

from data_pipeline import qm9pack_source
from irgeodiff_jax.chem import spectra, xtb
from irgeodiff_jax.sampling import candidates, generate, prediction
from irgeodiff_jax.sampling.runner import ModelRunner
from irgeodiff_jax.training import shipped
from tests.helpers.cli import run_cli

METHANOL_QM9_INDEX = 8  # "CO"
K = 4
FAST = generate.SamplerSettings("fast", steps=3)
FAST_QUADRATIC = generate.SamplerSettings("fast", steps=3, eta=1.0, spacing="quadratic")


def _write_jcamp(path: str, x: np.ndarray, y: np.ndarray, yunits: str) -> None:
    """A small JCAMP-DX 4.24 file, ##XYDATA=(X++(Y..Y)) with one y value per line."""
    factor = 1e-6
    lines = [
        "##TITLE=methanol (GFN2-xTB, broadened)",
        "##JCAMP-DX=4.24",
        "##DATA TYPE=INFRARED SPECTRUM",
        "##XUNITS=1/CM",
        f"##YUNITS={yunits}",
        "##XFACTOR=1.0",
        f"##YFACTOR={factor}",
        f"##FIRSTX={x[0]:.6f}",
        f"##LASTX={x[-1]:.6f}",
        f"##NPOINTS={x.size}",
        f"##FIRSTY={round(y[0] / factor) * factor}",
        "##XYDATA=(X++(Y..Y))",
    ]
    lines += [f"{xi:.6f} {round(yi / factor)}" for xi, yi in zip(x, y, strict=True)]
    lines.append("##END=")
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")


@pytest.fixture(scope="module")
def methanol(tmp_path_factory) -> dict:
    """xTB geometry and spectrum of methanol written as a CSV (absorbance) and a JDX (%T)."""
    mol = qm9pack_source.molecule(METHANOL_QM9_INDEX)
    ir = xtb.ir_spectrum(mol.atomic_numbers, mol.positions_angstrom)
    grid = spectra.grid(*spectra.EVAL_GRID)
    real = ir.frequencies_cm1 > 0
    absorbance = spectra.broaden(ir.frequencies_cm1[real], ir.intensities_km_mol[real], grid)
    absorbance = absorbance / absorbance.max()
    root = tmp_path_factory.mktemp("methanol")
    csv_path, jdx_path = str(root / "methanol.csv"), str(root / "methanol.jdx")
    np.savetxt(csv_path, np.c_[grid, absorbance], delimiter=",", header="cm-1,A", comments="")
    _write_jcamp(jdx_path, grid[::2], 100 * 10 ** (-0.5 * absorbance[::2]), "TRANSMITTANCE")
    return dict(
        csv=csv_path,
        jdx=jdx_path,
        z=np.asarray(ir.atomic_numbers),
        positions=np.asarray(ir.positions_angstrom),
        spectrum=spectra.resample(absorbance, grid, spectra.grid(*spectra.MODEL_GRID)),
    )


@pytest.fixture(scope="module")
def runner(trained_workdir):
    return ModelRunner(trained_workdir["workdir"])


def _read_csv(path: str) -> list[dict]:
    with open(path) as f:
        reader = csv.DictReader(f)
        assert tuple(reader.fieldnames) == candidates.CSV_FIELDS
        return list(reader)


@pytest.mark.parametrize("fmt", ["csv", "jdx"])
def test_predict_writes_ranked_candidates_and_plot(
    runner, trained_workdir, methanol, fmt, tmp_path
):
    kind = "absorbance" if fmt == "csv" else None  # the JCAMP-DX file states transmittance
    settings = FAST if fmt == "csv" else FAST_QUADRATIC
    out = str(tmp_path / fmt)
    summary = prediction.predict(
        trained_workdir["workdir"],
        methanol[fmt],
        "CH4O",
        out,
        k=K,
        kind=kind,
        settings=settings,
        runner=runner,
    )
    assert summary["formula"] == "CH4O" and summary["kind"] == (
        "absorbance" if kind else "transmittance"
    )
    recorded = [summary[key] for key in ("sampler", "steps", "eta", "spacing", "guidance")]
    assert recorded == ["fast", 3, settings.eta, settings.spacing, 1.0]
    rows = _read_csv(os.path.join(out, "candidates.csv"))
    assert [int(r["rank"]) for r in rows] == list(range(1, len(rows) + 1))
    counts = [int(r["count"]) for r in rows]
    assert counts == sorted(counts, reverse=True)
    assert sum(counts) + summary["unassigned_samples"] == K
    assert summary["num_candidates"] == len(rows) == len(set(r["smiles"] for r in rows))
    assert len(Chem.SDMolSupplier(os.path.join(out, "candidates.sdf"), removeHs=False)) == len(rows)
    samples = Chem.SDMolSupplier(os.path.join(out, "samples.sdf"), removeHs=False, sanitize=False)
    assert len(samples) == K and all(m.GetNumAtoms() == 6 for m in samples)
    assert os.path.getsize(os.path.join(out, "overlay.png")) > 0
    assert os.path.exists(os.path.join(out, "prediction.json"))
    assert summary["warnings"] == []  # whole range recorded, nothing clipped


def test_partial_coverage_is_reported_as_a_warning(runner, trained_workdir, methanol, tmp_path):
    x, y = np.loadtxt(methanol["csv"], delimiter=",", skiprows=1).T
    part = tmp_path / "from_1000.csv"
    np.savetxt(part, np.c_[x[x >= 1000], y[x >= 1000]], delimiter=",")
    out = str(tmp_path / "out")
    summary = prediction.predict(
        trained_workdir["workdir"],
        str(part),
        "CH4O",
        out,
        k=K,
        kind="absorbance",
        settings=FAST,
        runner=runner,
    )
    assert len(summary["warnings"]) == 1 and "\n" not in summary["warnings"][0]
    with open(os.path.join(out, "prediction.json")) as f:
        assert json.load(f)["warnings"] == summary["warnings"]


def test_oracle_ranks_the_true_structure_by_sis(methanol):
    z, x = methanol["z"], methanol["positions"]
    rng = np.random.default_rng(0)
    collapsed = np.zeros_like(x) + rng.normal(0, 0.05, x.shape)  # bonds cannot be assigned
    apart = x.copy()
    apart[1] += 5.0  # O pulled away: "C.O"-like fragments
    positions = np.stack([apart, apart, x, x + rng.normal(0, 0.01, x.shape), collapsed, x])
    cands, unassigned = candidates.group_candidates(z, positions)
    assert unassigned == 1
    assert [c["smiles"] for c in cands][0] == "CO" and cands[0]["count"] == 3
    assert cands[0]["stable"] and not cands[1]["stable"]
    candidates.score_with_oracle(
        cands, z, positions, methanol["spectrum"], workers=1, timeout_s=300
    )
    ranked = candidates.rank_candidates(cands, by_oracle=True)
    assert ranked[0]["smiles"] == "CO" and ranked[0]["identity_kept"]
    assert ranked[0]["oracle_sis"] > 0.9  # its own xTB spectrum
    assert ranked[1]["oracle_status"] == "skipped_unstable" and ranked[1].get("oracle_sis") is None


def test_bad_inputs_raise_one_line_errors(runner, trained_workdir, methanol, tmp_path):
    workdir = trained_workdir["workdir"]
    cases = [
        (dict(formula_text="C2H5Cl"), "does not know Cl; it was trained on H, C, N, O, F only"),
        (
            dict(formula_text="C10H22"),
            "has 32 atoms (with hydrogens); the model supports at most 29",
        ),
        (dict(formula_text="CH4O2x"), "malformed formula"),
        (dict(spectrum_path=methanol["csv"], kind=None), "state whether the file holds"),
        (dict(spectrum_path=str(tmp_path / "missing.csv")), "file not found"),
    ]
    for change, message in cases:
        kw = dict(
            workdir=workdir,
            spectrum_path=methanol["csv"],
            formula_text="CH4O",
            out_dir=str(tmp_path / "out"),
            kind="absorbance",
            k=K,
            settings=FAST,
            runner=runner,
        )
        kw.update(change)
        with pytest.raises(prediction.PredictError, match=re.escape(message)) as info:
            prediction.predict(**kw)
        assert "\n" not in str(info.value)
    assert not os.path.exists(tmp_path / "out")  # nothing written for bad input


def test_cli_exit_status_and_message(trained_workdir, methanol, tmp_path):
    garbage = tmp_path / "garbage.csv"
    garbage.write_text("wavenumber,absorbance\n500,1\nnot a number\n")
    base = [f"--workdir={trained_workdir['workdir']}", f"--out={tmp_path / 'out'}"]
    for extra, message in [
        (
            [f"--spectrum={methanol['csv']}", "--kind=absorbance", "--formula=C2H5Cl"],
            "does not know Cl",
        ),
        (
            [f"--spectrum={garbage}", "--kind=absorbance", "--formula=CH4O"],
            "garbage.csv: line 3 is not two numbers",
        ),
        (
            [f"--spectrum={methanol['csv']}", "--kind=absorbance", "--formula=CH4O"]
            + ["--sampler=fast", "--eta=2"],
            "eta must be in [0, 1], got 2.0",
        ),
        (  # the test model trained without condition dropout
            [f"--spectrum={methanol['csv']}", "--kind=absorbance", "--formula=CH4O"]
            + ["--guidance=2"],
            "--guidance=2 needs a model trained with diffusion.condition_dropout > 0",
        ),
    ]:
        proc = run_cli("irgeodiff_jax.predict", *base, *extra)
        assert proc.returncode == 2, proc.stderr[-2000:]
        last = proc.stderr.strip().splitlines()[-1]
        assert last.startswith("predict: error: ") and message in last
        assert "Traceback" not in proc.stderr
    assert not os.path.exists(tmp_path / "out")


def test_without_workdir_the_shipped_model_is_used(
    trained_workdir, methanol, tmp_path, monkeypatch
):
    model_dir = str(tmp_path / "pretrained")
    shipped.export_model(trained_workdir["workdir"], model_dir)
    monkeypatch.setattr(shipped, "SHIPPED_DIR", model_dir)
    out = str(tmp_path / "out")
    summary = prediction.predict(
        None, methanol["csv"], "CH4O", out, k=K, kind="absorbance", settings=FAST
    )
    assert summary["workdir"] == os.path.abspath(model_dir)
    rows = _read_csv(os.path.join(out, "candidates.csv"))
    assert sum(int(r["count"]) for r in rows) + summary["unassigned_samples"] == K
    reference = prediction.predict(
        trained_workdir["workdir"], methanol["csv"], "CH4O", str(tmp_path / "ref"),
        k=K, kind="absorbance", settings=FAST,
    )  # fmt: skip
    assert [r["smiles"] for r in reference["top"]] == [r["smiles"] for r in summary["top"]]
