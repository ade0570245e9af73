import csv
import functools
import json
import os
import subprocess
import sys

import numpy as np

from irgeodiff_jax.chem import spectra, worker, xtb
from irgeodiff_jax.evaluation import scoring
from irgeodiff_jax.evaluation.results import load_results
from irgeodiff_jax.sampling import samples_dir as sdir
from tests.helpers.faulty_scoring import score_with_faults
from tests.helpers.samples import (
    METHANE,
    WATER,
    attention_maps,
    chunk_arrays,
    dimethyl_ether_entry,
    ethanol_entry,
    qm9,
    run_info,
    two_chunk_dir,
)

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _expected_reports(out, oracle):
    names = {
        "metrics.json",
        "per_spectrum.csv",
        "per_sample.jsonl",
        "spectra_overlay.png",
        "mol_acc_vs_k.png",
    }
    if oracle:
        names.add("simg_sis_hist.png")
    return names <= set(os.listdir(out))


def test_evaluate_without_oracle_and_incremental_rerun(tmp_path):
    d = str(tmp_path / "s")
    writer = sdir.SamplesWriter(d, run_info(4))
    writer.write_chunk(
        **chunk_arrays([ethanol_entry(101)], pad_to=9), attention={101: attention_maps(9)}
    )
    out = str(tmp_path / "eval")
    m = scoring.run_evaluation(d, out, workers=1, timeout_s=60, ks=(1, 2, 4, 50))
    assert _expected_reports(out, oracle=False) and os.path.exists(f"{out}/attention_101.png")
    assert m["num_spectra"] == 1 and m["mol_acc_at_k"] == {"1": 0.0, "2": 1.0, "4": 1.0}
    assert m["validity"] == 0.5 and m["stability"] == 0.5 and m["failures"] == 0
    # sampling continues: a new chunk appears; the re-run scores only its 4 samples
    writer.write_chunk(**chunk_arrays([dimethyl_ether_entry(102)], pad_to=9))
    m = scoring.run_evaluation(d, out, workers=1, timeout_s=60, ks=(1, 2, 4, 50))
    with open(f"{out}/per_sample.jsonl") as f:
        assert len(f.readlines()) == 8
    assert m["num_spectra"] == 2 and m["mol_acc"] == 0.5
    with open(f"{out}/metrics.json") as f:
        assert json.load(f)["mol_acc"] == 0.5
    with open(f"{out}/per_spectrum.csv") as f:
        rows = list(csv.DictReader(f))
    assert [r["id"] for r in rows] == ["101", "102"] and rows[1]["num_matched"] == "0"
    assert [r["heavy_atoms"] for r in rows] == ["3", "3"]  # ethanol, dimethyl ether
    assert m["mol_acc_by_heavy_atoms"] == {"3": {"spectra": 2, "mol_acc": 0.5}}
    assert rows[0]["first_match_index"] == "1"


def test_evaluate_marks_crashed_and_timed_out_samples(tmp_path, monkeypatch):
    d = two_chunk_dir(tmp_path / "s")
    faulty = functools.partial(score_with_faults, crash={(101, 1)}, hang={(102, 0)})
    pool = functools.partial(worker.ScoringPool, score_fn=faulty)
    monkeypatch.setattr(worker, "ScoringPool", pool)  # the pool evaluation.scoring creates
    out = str(tmp_path / "eval")
    m = scoring.run_evaluation(d, out, workers=2, timeout_s=3.0, ks=(1, 4))
    assert m["failures"] == 2 and m["num_spectra"] == 2
    results = load_results(f"{out}/per_sample.jsonl")
    assert "died (exit code 3)" in results[(101, 1)]["reason"]
    assert results[(102, 0)]["reason"].startswith("timeout")
    assert results[(101, 0)]["status"] == "ok" and results[(101, 2)]["status"] == "ok"
    assert m["mol_acc"] == 0.0  # the only matching sample (101/1) crashed


def test_cli_end_to_end_without_oracle(tmp_path):
    d = two_chunk_dir(tmp_path / "s")
    out = str(tmp_path / "eval")
    cmd = [
        sys.executable,
        "-m",
        "irgeodiff_jax.evaluate",
        f"--samples={d}",
        f"--out={out}",
        "--oracle=none",
        "--workers=1",
        "--timeout_s=60",
        "--ks=1,5,10,20,30,40,50",
    ]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "mol_acc" in proc.stdout and _expected_reports(out, oracle=False)
    with open(f"{out}/metrics.json") as f:
        m = json.load(f)
    for key in ("validity", "stability", "connectivity", "sim_g", "max_sim_g", "mol_acc"):
        assert 0.0 <= m[key] <= 1.0, key
    assert m["mol_acc_at_k"] == {"1": 0.0} and m["samples_per_spectrum"] == 4
    bad = subprocess.run(
        [sys.executable, "-m", "irgeodiff_jax.evaluate", f"--samples={tmp_path}", f"--out={out}"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert bad.returncode == 2 and "not a samples directory" in bad.stderr
    assert len(bad.stderr.strip().splitlines()) == 1


def _xtb_spectrum(index):
    mol = qm9(index)
    ir = xtb.ir_spectrum(mol.atomic_numbers, mol.positions_angstrom)
    y = spectra.broaden(
        ir.frequencies_cm1, ir.intensities_km_mol, spectra.grid(*spectra.MODEL_GRID)
    )
    return (y / y.max()).astype(np.float32)


def test_evaluate_with_xtb_oracle_on_water_and_methane(tmp_path):
    water, methane = qm9(WATER), qm9(METHANE)
    bent = water.positions_angstrom.copy()
    bent[1] += 0.05  # a slightly distorted water: same molecule after re-optimisation
    far = methane.positions_angstrom.copy()
    far[4] += 6.0  # methyl radical + H: unstable, no oracle
    entries = [
        (1, WATER, np.stack([bent, water.positions_angstrom]), _xtb_spectrum(WATER)),
        (2, METHANE, np.stack([far, methane.positions_angstrom]), _xtb_spectrum(METHANE)),
    ]
    d = str(tmp_path / "s")
    sdir.SamplesWriter(d, run_info(2)).write_chunk(**chunk_arrays(entries, pad_to=5))
    out = str(tmp_path / "eval")
    m = scoring.run_evaluation(d, out, oracle="xtb", workers=1, timeout_s=120, ks=(1, 2))
    assert _expected_reports(out, oracle=True)
    assert m["oracle_spectra"] == 2 and m["oracle_samples"] == 3 and m["identity_kept"] == 1.0
    assert m["num_sis_samples"] == 3 and m["sis"] > 0.95 and m["max_sis"] > 0.99
    assert 0.0 < m["sis_star"] <= 1.0
    # methane's first sample is the radical: re-ranking by SIS puts the exact one first
    assert m["unranked_top1"] == 0.5 and m["reranked_top1"] == 1.0
    assert m["acc_top1"] == 0.5 and m["mol_acc"] == 1.0 and m["stability"] == 0.75


def test_oracle_spectra_are_the_smallest_ids_in_any_directory_order():
    assert scoring.choose_oracle_spectra([5, 3, 9, 1], 2) == {1, 3}
    assert scoring.choose_oracle_spectra([5, 3, 9, 1], -1) == {1, 3, 5, 9}
    assert scoring.choose_oracle_spectra([5, 3], 10) == {3, 5}
