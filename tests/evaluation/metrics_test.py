import numpy as np
import pytest

from irgeodiff_jax.chem import score_job
from irgeodiff_jax.evaluation import metrics
from tests.helpers.samples import ETHANOL, ethanol_samples, qm9


def _score(name_or_pos, reference=ETHANOL, sid=0, idx=0):
    cases = ethanol_samples()
    pos = cases[name_or_pos] if isinstance(name_or_pos, str) else name_or_pos
    ref = qm9(reference)
    return score_job.score_sample(score_job.ScoreJob(sid, idx, ref.atomic_numbers, pos, ref.smiles))


def test_per_sample_cases_from_real_geometries():
    exact, isomer, radical, broken = (_score(n) for n in ("exact", "isomer", "radical", "broken"))
    assert exact["match"] and exact["stable"] and exact["valid"] and exact["sim_g"] == 1.0
    assert exact["smiles"] == "CCO"
    assert isomer["stable"] and isomer["valid"] and not isomer["match"]
    assert isomer["smiles"] == "COC" and 0.0 <= isomer["sim_g"] < 1.0
    assert not radical["stable"] and not radical["connected"] and not radical["match"]
    assert radical["bonds_assigned"]
    assert not broken["valid"] and not broken["bonds_assigned"] and broken["sim_g"] is None
    assert "overlapping" in broken["bond_error"]
    assert all(r["status"] == "ok" for r in (exact, isomer, radical, broken))


def test_aggregate_hand_built_spectrum():
    names = ("isomer", "exact", "radical", "broken")
    records = [_score(n, idx=j) for j, n in enumerate(names)]
    sims = {n: r["sim_g"] for n, r in zip(names, records, strict=True)}
    m = metrics.aggregate([records], ks=(1, 2, 3, 4, 50))
    assert m["num_spectra"] == 1 and m["samples_per_spectrum"] == 4 and m["failures"] == 0
    assert m["validity"] == 0.5 and m["stability"] == 0.5 and m["connectivity"] == 0.5
    assert m["sim_g"] == pytest.approx((sims["isomer"] + 1.0) / 2)  # stable samples only
    assert m["max_sim_g"] == 1.0
    assert m["sim_g_all"] == pytest.approx((sims["isomer"] + 1.0 + sims["radical"]) / 3)
    assert m["mol_acc"] == 1.0
    assert m["mol_acc_at_k"] == {"1": 0.0, "2": 1.0, "3": 1.0, "4": 1.0}  # 50 > k dropped
    assert m["acc_top1"] == 0.0 and m["acc_top3"] == 1.0
    assert "sis" not in m


def test_failed_samples_count_against_every_rate():
    job = score_job.ScoreJob(0, 1, np.array([8, 1, 1]), np.zeros((3, 3)), "O")
    ok = _score("exact")
    failed = score_job.failed_result(job, "timeout: no result after 3 s")
    m = metrics.aggregate([[ok, failed]], ks=(1, 2))
    assert m["failures"] == 1 and m["validity"] == 0.5 and m["stability"] == 0.5
    assert m["failure_reasons"] == {"timeout: no result after 3 s": 1}
    assert m["sim_g"] == 1.0 and m["mol_acc"] == 1.0


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_accuracy_at_k_monotone_on_random_data(seed):
    rng = np.random.default_rng(seed)
    matches = rng.random((40, 50)) < rng.uniform(0.0, 0.1)
    curve = metrics.accuracy_at_k(matches, (1, 5, 10, 20, 30, 40, 50, 60))
    values = [curve[k] for k in sorted(curve)]
    assert sorted(curve) == [1, 5, 10, 20, 30, 40, 50]
    assert all(a <= b for a, b in zip(values, values[1:], strict=False))
    assert curve[50] == matches.any(axis=1).mean()
    assert curve[1] == matches[:, 0].mean()


def _random_record(rng, sid, j, oracle):
    stable = bool(rng.random() < 0.6)
    r = dict(score_job.RESULT_DEFAULTS, spectrum_id=sid, sample_index=j, status="ok")
    r.update(
        valid=stable or bool(rng.random() < 0.3),
        stable=stable,
        connected=stable,
        match=stable and bool(rng.random() < 0.2),
        sim_g=float(rng.random()),
    )
    if rng.random() < 0.05:
        r.update(status="failed", reason="worker process died (exit code 3) while scoring")
    if oracle and stable:
        r.update(
            oracle="xtb",
            oracle_status="ok",
            identity_kept=bool(rng.random() < 0.8),
            sis=float(rng.random()),
            sis_star=float(rng.random()),
        )
    elif oracle:
        r.update(oracle="xtb", oracle_status="skipped_unstable")
    return r


def test_metrics_in_valid_ranges_on_random_records():
    rng = np.random.default_rng(3)
    groups = [[_random_record(rng, i, j, oracle=i < 6) for j in range(10)] for i in range(12)]
    m = metrics.aggregate(groups)
    fractions = (
        "validity",
        "stability",
        "connectivity",
        "sim_g",
        "max_sim_g",
        "mol_acc",
        "identity_kept",
        "sis",
        "max_sis",
        "sis_star",
        "max_sis_star",
        "reranked_top1",
        "reranked_top3",
        "unranked_top1",
        "unranked_top3",
    )
    for key in fractions:
        assert 0.0 <= m[key] <= 1.0, key
    assert m["max_sim_g"] >= m["sim_g"] and m["max_sis"] >= m["sis"]
    assert m["oracle_spectra"] == 6 and m["num_spectra"] == 12
    assert m["reranked_top3"] >= m["reranked_top1"]
    assert list(m["mol_acc_at_k"]) == ["1", "5", "10"]


def test_rerank_orders_by_counted_sis_and_improves_top1():
    def rec(j, sis, match, kept=True):
        r = dict(score_job.RESULT_DEFAULTS, spectrum_id=0, sample_index=j, status="ok")
        r.update(
            valid=True,
            stable=True,
            connected=True,
            match=match,
            sim_g=0.5,
            oracle="xtb",
            oracle_status="ok",
            identity_kept=kept,
            sis=sis,
            sis_star=sis,
        )
        return r

    records = [
        rec(0, 0.4, False),
        rec(1, 0.99, False, kept=False),
        rec(2, 0.9, True),
        rec(3, 0.6, False),
    ]
    assert metrics.rerank_order(records) == [2, 3, 0, 1]  # identity lost → ranked last
    m = metrics.aggregate([records], ks=(1, 4))
    assert m["reranked_top1"] == 1.0 and m["unranked_top1"] == 0.0
    assert m["sis"] == pytest.approx((0.4 + 0.9 + 0.6) / 3) and m["max_sis"] == 0.9
    assert m["identity_kept"] == 0.75 and m["num_sis_samples"] == 3
    row = metrics.spectrum_summary(records)
    assert row["reranked_top1_match"] and row["first_match_index"] == 2


def test_aggregate_rejects_empty_input():
    with pytest.raises(ValueError, match="at least one"):
        metrics.aggregate([])


def test_accuracy_by_size_groups_spectra_by_reference_size():
    matches = np.array([[0, 1], [0, 0], [1, 1], [0, 0], [0, 0]], dtype=bool)
    got = metrics.accuracy_by_size(matches, [9, 9, 7, 9, 8])
    assert list(got) == ["7", "8", "9"]  # ascending sizes, JSON-ready keys
    assert got["7"] == {"spectra": 1, "mol_acc": 1.0}
    assert got["8"] == {"spectra": 1, "mol_acc": 0.0}
    assert got["9"]["spectra"] == 3 and got["9"]["mol_acc"] == pytest.approx(1 / 3)
    # the counts add up to the split, and the size-weighted mean is the split's mol_acc
    total = sum(v["spectra"] * v["mol_acc"] for v in got.values())
    assert sum(v["spectra"] for v in got.values()) == 5 and total == pytest.approx(2)
    with pytest.raises(ValueError, match="one size per spectrum"):
        metrics.accuracy_by_size(matches, [9, 9])


def test_aggregate_reports_accuracy_by_size_only_when_sizes_are_given():
    exact, isomer = _score("exact"), _score("isomer")
    per_spectrum = [[isomer, exact], [isomer, isomer]]
    assert "mol_acc_by_heavy_atoms" not in metrics.aggregate(per_spectrum, ks=(1, 2))
    m = metrics.aggregate(per_spectrum, ks=(1, 2), heavy_atoms=[3, 4])
    assert m["mol_acc"] == 0.5
    assert m["mol_acc_by_heavy_atoms"] == {
        "3": {"spectra": 1, "mol_acc": 1.0},
        "4": {"spectra": 1, "mol_acc": 0.0},
    }
