"""``report.format_table``: the one metrics formatter of ``evaluate`` and ``quickstart``."""

from irgeodiff_jax.evaluation import report

METRICS = {
    "num_spectra": 2,
    "samples_per_spectrum": 10,
    "validity": 0.5,
    "sim_g": None,
    "mol_acc": 0.25,
    "reranked_top1": 0.5,
    "failure_reasons": {},  # not a table row
    "mol_acc_at_k": {"10": 0.25, "1": 0.0, "5": 0.125},
    "mol_acc_by_heavy_atoms": {
        "9": {"spectra": 1, "mol_acc": 0.0},
        "8": {"spectra": 1, "mol_acc": 0.5},
    },
}


def test_plain_text_table():
    assert report.format_table(METRICS).splitlines() == [
        "num_spectra            2",
        "samples_per_spectrum   10",
        "validity               0.5000",
        "sim_g                  None",
        "mol_acc                0.2500",
        "reranked_top1          0.5000",
        "mol_acc@1              0.0000",
        "mol_acc@5              0.1250",
        "mol_acc@10             0.2500",
        "mol_acc 8 heavy (1)    0.5000",
        "mol_acc 9 heavy (1)    0.0000",
    ]


def test_markdown_table_skips_missing_values():
    table = report.format_table(METRICS, report.SUMMARY_ROWS, markdown=True)
    assert table.splitlines() == [
        "| metric | value |",
        "|---|---|",
        "| molecular accuracy (any of k matches) | 0.250 |",
        "| validity | 0.500 |",
        "| top-1 re-ranked by SIS (oracle spectra) | 0.500 |",
        "| mol acc @ k=1 | 0.000 |",
        "| mol acc @ k=5 | 0.125 |",
        "| mol acc @ k=10 | 0.250 |",
        "| mol acc, 8 heavy atoms (n = 1) | 0.500 |",
        "| mol acc, 9 heavy atoms (n = 1) | 0.000 |",
    ]
