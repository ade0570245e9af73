"""GFN2-xTB IR oracle on random QM9 molecules: minima, frequency agreement with B3LYP, timing.

Usage (one core, as the dataset builder runs it):
  OMP_NUM_THREADS=1 python benchmarks/xtb_vs_qm9.py --num 20 --seed 0

For each molecule (``qm9pack_source.sample_indices(num, seed)``) the oracle re-optimises the QM9
geometry and computes harmonic frequencies and intensities. Reported per molecule: imaginary
modes, mean absolute deviation (MAD) between the sorted GFN2-xTB frequencies and QM9's sorted
B3LYP/6-31G(2df,p) harmonic frequencies (both unscaled), wall times of the optimisation and of
the Hessian, and the process CPU time. A final JSON line summarises everything, including the
gain from restarting the displaced SCFs from the reference wavefunction (measured on the
molecule closest to 19 atoms).
"""

import argparse
import json
import os
import sys
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402

from data_pipeline import qm9pack_source  # noqa: E402
from irgeodiff_jax.chem import hessian, xtb  # noqa: E402

TARGET_ATOMS = 19  # the size the timing target refers to


def _restart_gain(mol, repeats: int = 2) -> dict:
    """Seconds for the 6N displaced singlepoints with fresh vs restarted SCF guesses."""
    spectrum = xtb.ir_spectrum(mol.atomic_numbers, mol.positions_angstrom)
    x = spectrum.positions_angstrom / hessian.BOHR_ANGSTROM
    timings = {}
    for mode in ("fresh", "restart"):
        best = np.inf
        for _ in range(repeats):
            session = xtb._Session(spectrum.atomic_numbers, x, None)
            if mode == "restart":
                session.run(x, keep_as_guess=True)
            start = time.perf_counter()
            hessian.central_difference(session.gradient_and_dipole, x, xtb.FD_STEP_BOHR)
            best = min(best, time.perf_counter() - start)
        timings[f"hessian_{mode}_s"] = round(best, 3)
    timings["speedup"] = round(timings["hessian_fresh_s"] / timings["hessian_restart_s"], 2)
    timings["num_atoms"] = len(mol.atomic_numbers)
    return timings


def _run_one(mol) -> dict:
    start, cpu_start = time.perf_counter(), time.process_time()
    result = xtb.ir_spectrum_safe(mol.atomic_numbers, mol.positions_angstrom)
    total, cpu = time.perf_counter() - start, time.process_time() - cpu_start
    row = {"index": int(mol.index), "smiles": mol.smiles, "num_atoms": len(mol.atomic_numbers)}
    if isinstance(result, str):
        return {**row, "error": result}
    ref = np.sort(mol.harmonic_frequencies_cm1)
    ours = np.sort(result.frequencies_cm1)
    if len(ref) != len(ours):
        return {**row, "error": f"mode count {len(ours)} vs QM9 {len(ref)}"}
    return {
        **row,
        "num_modes": len(ours),
        "linear": result.linear,
        "num_imaginary": result.num_imaginary,
        "min_freq_cm1": round(float(ours[0]), 1),
        "mad_cm1": round(float(np.mean(np.abs(ours - ref))), 1),
        "mean_signed_dev_cm1": round(float(np.mean(ours - ref)), 1),
        "max_intensity_km_mol": round(float(result.intensities_km_mol.max()), 1),
        "opt_s": round(result.optimization_seconds, 3),
        "hess_s": round(result.hessian_seconds, 3),
        "total_s": round(total, 3),
        "cpu_s": round(cpu, 3),
        "singlepoints": result.num_singlepoints,
    }


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--num", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    mols = qm9pack_source.molecules(qm9pack_source.sample_indices(args.num, args.seed))
    rows = []
    for mol in mols:
        row = _run_one(mol)
        rows.append(row)
        print(json.dumps(row), flush=True)

    ok = [r for r in rows if "error" not in r]
    sizes = np.array([r["num_atoms"] for r in ok])
    nearest = int(sizes[np.argmin(np.abs(sizes - TARGET_ATOMS))]) if ok else None
    at_size = [r for r in ok if r["num_atoms"] == nearest]
    mad_all = np.concatenate(
        [np.full(r["num_modes"], r["mad_cm1"]) for r in ok]
    )  # mode-weighted overall MAD
    gain_mol = min(mols, key=lambda m: abs(len(m.atomic_numbers) - TARGET_ATOMS))
    summary = {
        "num_molecules": len(rows),
        "num_failed": len(rows) - len(ok),
        "failures": [r for r in rows if "error" in r],
        "num_with_imaginary": sum(r["num_imaginary"] > 0 for r in ok),
        "mad_cm1_mean_over_molecules": round(float(np.mean([r["mad_cm1"] for r in ok])), 1),
        "mad_cm1_over_all_modes": round(float(np.mean(mad_all)), 1),
        "mad_cm1_max": max(r["mad_cm1"] for r in ok),
        "timing_size": nearest,
        "timing_num_molecules": len(at_size),
        "median_opt_s": round(float(np.median([r["opt_s"] for r in at_size])), 3),
        "median_hess_s": round(float(np.median([r["hess_s"] for r in at_size])), 3),
        "median_total_s": round(float(np.median([r["total_s"] for r in at_size])), 3),
        "median_cpu_s": round(float(np.median([r["cpu_s"] for r in at_size])), 3),
        "median_total_s_all_sizes": round(float(np.median([r["total_s"] for r in ok])), 3),
        "restart_gain": _restart_gain(gain_mol),
        "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
    }
    print(json.dumps(summary))
    return summary


if __name__ == "__main__":
    main()
