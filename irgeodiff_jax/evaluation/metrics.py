"""Aggregate per-sample results into the paper's metrics (method.md §8, reference-notes §1.9).

Input: for each spectrum, its k per-sample result dicts (``chem.score_job`` records) ordered by
``sample_index``. A sample whose scoring job failed (crash, timeout, error) counts as not valid,
not stable, not connected and not matched, and has no sim_g; ``failures`` counts them.

Averaging (S spectra, k samples each, S·k samples):

* ``validity``, ``stability``, ``connectivity``: fraction of all S·k samples (as the reference's
  ``structural_analysis``: the denominator is every sample).
* ``sim_g``: mean Tanimoto (Morgan r=1, 2,048 bits) over the **stable** samples of all spectra
  (the paper evaluates on stable molecules only). ``max_sim_g``: mean over spectra with at least
  one stable sample of the per-spectrum maximum over its stable samples (spectra without one are
  left out, like the reference's ``nanmean``). ``sim_g_all`` / ``max_sim_g_all``: the same over
  every sample with a sanitisable molecule (the reference's unrestricted numbers).
* ``mol_acc``: fraction of all S spectra for which any of the k samples matches the reference
  (InChIKey of the sample, or of its largest fragment when disconnected).
  ``mol_acc_at_k[j]`` (j ≤ k): the same using only samples 0..j−1 (sample order as written by
  the sampler, so the curve is monotone in j). ``acc_top1``/``acc_top3`` = the curve at 1 and 3.
  ``mol_acc_by_heavy_atoms`` (when the references' sizes are given): ``mol_acc`` over the spectra
  whose reference has n heavy (non-hydrogen) atoms, ``{"n": {"spectra": count, "mol_acc": a}}``;
  recovery falls steeply with size (the number of isomers of a formula grows with it), so a
  split's accuracy depends on its mix of sizes.
* Oracle (spectra chosen for it: ``oracle_spectra``; only stable samples are sent to xTB):
  ``identity_kept``: fraction of the stable oracle samples whose re-optimised geometry has the
  sample's InChIKey (oracle failures count as not kept). ``sis`` / ``sis_star``: mean over the
  samples that are stable **and** kept their identity (SIS* on 1350–4000 cm⁻¹).
  ``max_sis`` / ``max_sis_star``: mean over oracle spectra with at least one such sample of the
  per-spectrum maximum.
* Re-ranking (beyond the paper): each oracle spectrum's k samples are ordered by SIS (samples
  without a counted SIS last; ties keep sample order). ``reranked_top1`` / ``reranked_top3``:
  fraction of oracle spectra whose first / first three re-ranked samples contain a match
  (top-3 numbers only when k ≥ 3);
  ``unranked_top1`` / ``unranked_top3``: the same on the same spectra in sample order.

Means over an empty set are ``None`` (JSON null), never NaN.
"""

from collections import Counter
from collections.abc import Mapping, Sequence

import numpy as np

DEFAULT_KS = (1, 5, 10, 20, 30, 40, 50)


def _mean(values) -> float | None:
    values = [float(v) for v in values]
    return float(np.mean(values)) if values else None


def _ok(r: Mapping) -> bool:
    return r.get("status") == "ok"


def _flag(r: Mapping, key: str) -> bool:
    return _ok(r) and bool(r.get(key))


def match_matrix(per_spectrum: Sequence[Sequence[Mapping]]) -> np.ndarray:
    """[S, k] bool: sample j of spectrum i matched its reference."""
    return np.array([[_flag(r, "match") for r in rs] for rs in per_spectrum], dtype=bool)


def accuracy_at_k(matches: np.ndarray, ks: Sequence[int]) -> dict[int, float]:
    """Fraction of spectra with a match among their first j samples, for each j ≤ k in ``ks``.

    Args:
        matches: [S, k] bool.
        ks: requested j values (those larger than k are dropped).
    """
    if matches.ndim != 2 or matches.shape[0] == 0:
        return {}
    hit_prefix = np.logical_or.accumulate(matches, axis=1)  # [S, k]
    k = matches.shape[1]
    return {int(j): float(hit_prefix[:, j - 1].mean()) for j in sorted(set(ks)) if 1 <= j <= k}


def accuracy_by_size(matches: np.ndarray, sizes: Sequence[int]) -> dict[str, dict]:
    """``mol_acc`` per reference size: ``{str(n): {"spectra": count, "mol_acc": a}}``, n ascending.

    Args:
        matches: [S, k] bool (``match_matrix``).
        sizes: S sizes (heavy-atom counts of the references), one per row of ``matches``.
    """
    sizes = np.asarray(sizes)
    if sizes.shape != (matches.shape[0],):
        raise ValueError(f"need one size per spectrum: {sizes.shape} for {matches.shape[0]}")
    hit = matches.any(axis=1)
    return {
        str(n): {"spectra": int((sizes == n).sum()), "mol_acc": float(hit[sizes == n].mean())}
        for n in sorted(set(sizes.tolist()))
    }


def counted_sis(r: Mapping, key: str = "sis") -> float | None:
    """The sample's SIS if it counts (stable, oracle ok, identity kept), else None."""
    if not (_flag(r, "stable") and r.get("oracle_status") == "ok" and r.get("identity_kept")):
        return None
    value = r.get(key)
    return None if value is None else float(value)


def rerank_order(records: Sequence[Mapping]) -> list[int]:
    """Positions of ``records`` ordered by counted SIS, best first; uncounted last, stable ties."""

    def key(pos: int):
        s = counted_sis(records[pos])
        return (s is None, -(s or 0.0), pos)

    return sorted(range(len(records)), key=key)


def _best(values) -> float | None:
    values = [v for v in values if v is not None]
    return max(values) if values else None


def spectrum_summary(records: Sequence[Mapping]) -> dict:
    """One row of ``per_spectrum.csv`` from a spectrum's k results (sorted by sample_index)."""
    stable_sims = [r["sim_g"] for r in records if _flag(r, "stable") and r.get("sim_g") is not None]
    matches = [_flag(r, "match") for r in records]
    smiles = Counter(r.get("smiles") for r in records if _ok(r) and r.get("smiles"))
    row = dict(
        num_samples=len(records),
        num_failed=sum(not _ok(r) for r in records),
        num_valid=sum(_flag(r, "valid") for r in records),
        num_stable=sum(_flag(r, "stable") for r in records),
        num_connected=sum(_flag(r, "connected") for r in records),
        num_matched=sum(matches),
        first_match_index=matches.index(True) if any(matches) else None,
        mean_sim_g=_mean(stable_sims),
        max_sim_g=_best(stable_sims),
        most_common_smiles=smiles.most_common(1)[0][0] if smiles else None,
    )
    oracle = [r for r in records if r.get("oracle") == "xtb"]
    if oracle:
        sis = [counted_sis(r) for r in records]
        sis_star = [counted_sis(r, "sis_star") for r in records]
        order = rerank_order(records)
        row.update(
            num_oracle=sum(r.get("oracle_status") in ("ok", "failed") for r in oracle),
            num_identity_kept=sum(bool(r.get("identity_kept")) for r in oracle),
            mean_sis=_mean(v for v in sis if v is not None),
            max_sis=_best(sis),
            mean_sis_star=_mean(v for v in sis_star if v is not None),
            max_sis_star=_best(sis_star),
            reranked_top1_match=bool(matches and matches[order[0]]),
            reranked_top3_match=any(matches[p] for p in order[:3]),
        )
    return row


def _structural(per_spectrum: Sequence[Sequence[Mapping]], ks: Sequence[int], heavy_atoms) -> dict:
    samples = [r for rs in per_spectrum for r in rs]
    k = max(len(rs) for rs in per_spectrum)
    stable_sims = [
        [r["sim_g"] for r in rs if _flag(r, "stable") and r.get("sim_g") is not None]
        for rs in per_spectrum
    ]
    all_sims = [
        [r["sim_g"] for r in rs if _ok(r) and r.get("sim_g") is not None] for rs in per_spectrum
    ]
    matches = match_matrix(per_spectrum)
    curve = accuracy_at_k(matches, tuple(ks) + (1, 3, k))
    reasons = Counter((r.get("reason") or "")[:80] for r in samples if not _ok(r))
    out = dict(
        num_spectra=len(per_spectrum),
        samples_per_spectrum=k,
        num_samples=len(samples),
        failures=sum(not _ok(r) for r in samples),
        failure_reasons=dict(reasons.most_common(10)),
        validity=_mean(_flag(r, "valid") for r in samples),
        stability=_mean(_flag(r, "stable") for r in samples),
        connectivity=_mean(_flag(r, "connected") for r in samples),
        sim_g=_mean(v for s in stable_sims for v in s),
        max_sim_g=_mean(max(s) for s in stable_sims if s),
        sim_g_all=_mean(v for s in all_sims for v in s),
        max_sim_g_all=_mean(max(s) for s in all_sims if s),
        mol_acc=float(matches.any(axis=1).mean()),
        mol_acc_at_k={str(j): v for j, v in curve.items() if j in set(ks)},
        acc_top1=curve.get(1),
        acc_top3=curve.get(3),
    )
    if heavy_atoms is not None:
        out["mol_acc_by_heavy_atoms"] = accuracy_by_size(matches, heavy_atoms)
    return out


def _oracle(per_spectrum: Sequence[Sequence[Mapping]]) -> dict:
    chosen = [rs for rs in per_spectrum if any(r.get("oracle") == "xtb" for r in rs)]
    sent = [r for rs in chosen for r in rs if r.get("oracle_status") in ("ok", "failed")]
    per_sis = [[v for v in map(counted_sis, rs) if v is not None] for rs in chosen]
    per_star = [
        [v for v in (counted_sis(r, "sis_star") for r in rs) if v is not None] for rs in chosen
    ]
    matches = match_matrix(chosen) if chosen else np.zeros((0, 0), bool)
    orders = [rerank_order(rs) for rs in chosen]
    reranked = [[bool(matches[i, p]) for p in order] for i, order in enumerate(orders)]
    top3 = bool(chosen) and matches.shape[1] >= 3  # like acc_top3: only when k >= 3
    return dict(
        oracle_spectra=len(chosen),
        oracle_samples=len(sent),
        oracle_failures=sum(r.get("oracle_status") == "failed" for r in sent),
        identity_kept=_mean(bool(r.get("identity_kept")) for r in sent),
        num_sis_samples=sum(len(s) for s in per_sis),
        sis=_mean(v for s in per_sis for v in s),
        max_sis=_mean(max(s) for s in per_sis if s),
        sis_star=_mean(v for s in per_star for v in s),
        max_sis_star=_mean(max(s) for s in per_star if s),
        reranked_top1=_mean(r[0] for r in reranked) if chosen else None,
        reranked_top3=_mean(any(r[:3]) for r in reranked) if top3 else None,
        unranked_top1=_mean(m[0] for m in matches) if chosen else None,
        unranked_top3=_mean(m[:3].any() for m in matches) if top3 else None,
    )


def aggregate(
    per_spectrum: Sequence[Sequence[Mapping]],
    ks=DEFAULT_KS,
    heavy_atoms: Sequence[int] | None = None,
) -> dict:
    """All metrics (see the module docstring) for S spectra's sample results.

    Args:
        per_spectrum: S lists of k result dicts, each sorted by ``sample_index``.
        ks: points of the accuracy curve (values above k are dropped).
        heavy_atoms: S heavy-atom counts of the references (None: no ``mol_acc_by_heavy_atoms``).

    Returns:
        The ``metrics.json`` dict; oracle keys are present only if some sample went to the oracle.
    """
    if not per_spectrum or any(len(rs) == 0 for rs in per_spectrum):
        raise ValueError("aggregate needs at least one spectrum, each with at least one sample")
    out = _structural(per_spectrum, ks, heavy_atoms)
    if any(r.get("oracle") == "xtb" for rs in per_spectrum for r in rs):
        out.update(_oracle(per_spectrum))
    return out
