r"""Score a samples directory and write the evaluation reports.

    python -m irgeodiff_jax.evaluate --samples=DIR --out=DIR2 [--oracle=none|xtb] \
        [--oracle_spectra=M] [--workers=W] [--timeout_s=T] [--ks=1,5,10,20,30,40,50] [--verbose]

Every sample of every completed chunk in DIR (see ``sampling/samples_dir.py``) is scored in a
pool of worker processes; with ``--oracle=xtb`` the stable samples of the M spectra of smallest
id also get the GFN2-xTB oracle (SIS, SIS*). Results are appended to ``DIR2/per_sample.jsonl``
as they arrive, so a re-run only scores what is new (``evaluation/scoring.py``). Writes
``metrics.json``, ``per_spectrum.csv`` and the plots to DIR2 (``evaluation/report.py``) and
prints the metrics table. Bad flags or inputs give a one-line ``evaluate: error: ...`` and exit
status 2.
"""

import os

from absl import flags

from irgeodiff_jax.evaluation import report, scoring
from irgeodiff_jax.utils import cli

_SAMPLES = flags.DEFINE_string("samples", None, "Samples directory written by sample.")
_OUT = flags.DEFINE_string("out", None, "Output directory for the reports.")
_ORACLE = flags.DEFINE_enum("oracle", "none", ["none", "xtb"], "Spectral oracle for SIS.")
_ORACLE_SPECTRA = flags.DEFINE_integer(
    "oracle_spectra", -1, "Oracle on the M spectra of smallest id (<0: all)."
)
_WORKERS = flags.DEFINE_integer("workers", max(1, (os.cpu_count() or 2) - 1), "Worker processes.")
_TIMEOUT = flags.DEFINE_float("timeout_s", 600.0, "Hard time limit per sample (s).")
_KS = flags.DEFINE_string("ks", "1,5,10,20,30,40,50", "Points of the accuracy-vs-k curve.")
_SCALE = flags.DEFINE_float(
    "frequency_scale", 1.0, "Oracle frequency scale (0.965 for B3LYP data)."
)
_VERBOSE = flags.DEFINE_bool("verbose", False, "Show library INFO logs (scoring progress).")


def main(argv) -> None:
    del argv
    cli.quiet_library_logs(_VERBOSE.value)
    try:
        if not _SAMPLES.value or not _OUT.value:
            raise scoring.EvaluationError("--samples and --out are required")
        m = scoring.run_evaluation(
            _SAMPLES.value,
            _OUT.value,
            oracle=_ORACLE.value,
            oracle_spectra=_ORACLE_SPECTRA.value,
            workers=_WORKERS.value,
            timeout_s=_TIMEOUT.value,
            ks=scoring.parse_ks(_KS.value),
            frequency_scale=_SCALE.value,
        )
    except scoring.INPUT_ERRORS as e:
        cli.exit_usage(f"evaluate: error: {e}")
    print(report.format_table(m))
    print(f"reports in {os.path.abspath(_OUT.value)}")


if __name__ == "__main__":
    cli.run(main, "evaluate")
