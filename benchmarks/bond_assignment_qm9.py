"""Agreement of geometry-derived SMILES with QM9's SMILES: ours vs RDKit DetermineBonds.

Run from the repository root:
    python -m benchmarks.bond_assignment_qm9 --num 2000 --seed 0

Draws ``num`` QM9 molecules (``qm9pack_source.sample_indices``), assigns bonds from the stored
B3LYP geometries with ``geometry_to_smiles`` and with RDKit's
``rdDetermineBonds.DetermineBonds(mol, charge=0, useHueckel=True)``, and compares both with the
canonical, stereo-free QM9 SMILES. Agreement is reported over all molecules and over those whose
reference SMILES has no formal charge (zwitterions cannot come out of a neutral assignment).
Prints the disagreeing indices with both SMILES, then one JSON object with the numbers.
"""

import argparse
import contextlib
import json
import os
import statistics
import time

from rdkit import Chem, rdBase
from rdkit.Chem import rdDetermineBonds

from data_pipeline import qm9pack_source
from irgeodiff_jax.chem import bonds, elements


def _is_charged(smiles: str) -> bool:
    mol = Chem.MolFromSmiles(smiles)
    return mol is not None and any(a.GetFormalCharge() != 0 for a in mol.GetAtoms())


def _xyz_block(z, pos) -> str:
    lines = [str(len(z)), ""]
    lines += [
        f"{elements.symbol(int(a))} {x:.6f} {y:.6f} {w:.6f}"
        for a, (x, y, w) in zip(z, pos, strict=True)
    ]
    return "\n".join(lines) + "\n"


@contextlib.contextmanager
def _quiet_stderr():
    """Silence C++ writes to stderr (DetermineBonds prints distance warnings past RDLog)."""
    saved = os.dup(2)
    with open(os.devnull, "w") as null:
        os.dup2(null.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)


def rdkit_smiles(z, pos) -> str | None:
    """RDKit DetermineBonds (Hückel connectivity, neutral) canonical SMILES, None on failure."""
    with rdBase.BlockLogs(), _quiet_stderr():
        try:
            mol = Chem.MolFromXYZBlock(_xyz_block(z, pos))
            rdDetermineBonds.DetermineBonds(mol, charge=0, useHueckel=True)
            return bonds.mol_to_canonical_smiles(mol)
        except Exception:  # DetermineBonds raises ValueError / RuntimeError on failure
            return None


def _timed(fn, *args):
    start = time.perf_counter()
    out = fn(*args)
    return out, time.perf_counter() - start


def _summary(name, results, refs, neutral):
    agree = sum(results[k] == refs[k] for k in refs)
    agree_neutral = sum(results[k] == refs[k] for k in neutral)
    return {
        f"{name}_failures": sum(v is None for v in results.values()),
        f"{name}_agree": agree,
        f"{name}_agree_pct": 100.0 * agree / len(refs),
        f"{name}_agree_neutral": agree_neutral,
        f"{name}_agree_neutral_pct": 100.0 * agree_neutral / max(len(neutral), 1),
    }


def run(num: int, seed: int) -> dict:
    """Benchmark ``num`` QM9 molecules drawn with ``seed``; returns the summary dict."""
    indices = [int(i) for i in qm9pack_source.sample_indices(num, seed)]
    refs, charged, ours, theirs, t_ours, t_theirs = {}, [], {}, {}, [], []
    for index in indices:
        mol = qm9pack_source.molecule(index)
        refs[index] = bonds.canonical_smiles(mol.smiles)
        if _is_charged(mol.smiles):
            charged.append(index)
        z, pos = mol.atomic_numbers, mol.positions_angstrom
        ours[index], dt = _timed(bonds.geometry_to_smiles, z, pos)
        t_ours.append(dt)
        theirs[index], dt = _timed(rdkit_smiles, z, pos)
        t_theirs.append(dt)
    neutral = [k for k in indices if k not in set(charged)]
    summary = {"num": num, "seed": seed, "charged_references": len(charged)}
    summary["neutral_references"] = len(neutral)
    summary.update(_summary("ours", ours, refs, neutral))
    summary.update(_summary("rdkit", theirs, refs, neutral))
    summary["ours_median_ms"] = 1000.0 * statistics.median(t_ours)
    summary["rdkit_median_ms"] = 1000.0 * statistics.median(t_theirs)
    summary["ours_max_ms"] = 1000.0 * max(t_ours)
    summary["ours_disagree"] = [
        {"index": k, "reference": refs[k], "ours": ours[k], "rdkit": theirs[k]}
        for k in neutral
        if ours[k] != refs[k]
    ]
    summary["rdkit_disagree_indices"] = [k for k in neutral if theirs[k] != refs[k]]
    summary["charged_indices"] = charged
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--num", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    summary = run(args.num, args.seed)
    print("Disagreements (neutral references): index | QM9 | ours | RDKit")
    for row in summary["ours_disagree"]:
        print(f"  {row['index']} | {row['reference']} | {row['ours']} | {row['rdkit']}")
    for name in ("ours", "rdkit"):
        print(
            f"{name:6s} agree {summary[f'{name}_agree_pct']:.2f} % (all), "
            f"{summary[f'{name}_agree_neutral_pct']:.2f} % (neutral refs), "
            f"failures {summary[f'{name}_failures']}, "
            f"median {summary[f'{name}_median_ms']:.2f} ms/molecule"
        )
    print(f"charged/zwitterionic references: {summary['charged_references']} of {args.num}")
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
