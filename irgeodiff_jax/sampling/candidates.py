"""Candidate structures from k samples of one formula: grouping, xTB oracle, ranking, files.

Each sample gets bonds (``chem.bonds``) and structural checks (``chem.scoring``); samples with
the same canonical SMILES form one candidate. Candidates are ranked by how many of the k samples
gave them, or, with the oracle, the stable ones are re-optimised with GFN2-xTB in the scoring
worker pool (``chem/worker.py``) and ranked by SIS to the input spectrum first. ``csv_bytes``
and ``sdf_bytes`` are the ``candidates.csv``/``candidates.sdf`` files of ``predict``.
"""

import csv
import io

import numpy as np
from rdkit import Chem

from irgeodiff_jax.chem import bonds, score_job, scoring, spectra, worker

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


def score_with_oracle(cands, z, positions, spectrum, workers: int, timeout_s: float) -> None:
    """Adds oracle fields (SIS to the input) to the stable candidates, in place."""
    settings = score_job.OracleSettings(timeout_s=0.8 * timeout_s)
    jobs = [
        score_job.ScoreJob(
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


def csv_bytes(cands: list[dict]) -> bytes:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=CSV_FIELDS, extrasaction="ignore")
    writer.writeheader()
    for c in cands:
        writer.writerow(c)
    return buf.getvalue().encode()


def sdf_bytes(cands: list[dict], k: int) -> bytes:
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
