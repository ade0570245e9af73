r"""Ranked candidate structures for a user's own IR spectrum and molecular formula.

    python -m irgeodiff_jax.predict --spectrum=FILE --formula=C4H6O --out=DIR [--workdir=W] \
        [--k=50] [--kind=absorbance|transmittance] [--oracle=none|xtb] \
        [--sampler=ancestral|fast --steps=K --eta=0 --spacing=uniform|quadratic] [--guidance=1] \
        [--seed=0] [--verbose]

Reads FILE (two-column CSV/TXT, or JCAMP-DX ``.jdx``/``.dx``; ``chem/spectrum_files.py``), samples
k geometries with the trained model of W (without ``--workdir``: the model shipped with the
package, ``irgeodiff_jax/pretrained/``), groups identical candidates by canonical SMILES and
ranks them by count (with ``--oracle=xtb``: by GFN2-xTB SIS to the input first); see
``sampling/prediction.py``. Prints the top candidates, then one ``predict: warning: ...`` line on
stderr per change the reader made to the spectrum. Writes ``candidates.csv``, ``candidates.sdf``,
``samples.sdf``, ``overlay.png`` and ``prediction.json`` to DIR.
Bad input (unreadable file, spectrum recording less than 60 % of 500–4000 cm⁻¹
(``spectrum_files.MIN_COVERAGE``), element the model does not know, too many atoms) gives a
one-line error and exit status 2.
"""

import os
import sys

from absl import flags

from irgeodiff_jax.chem import spectrum_files
from irgeodiff_jax.sampling import prediction, sampler_flags
from irgeodiff_jax.utils import cli

FLAGS = flags.FLAGS


def define_flags() -> None:
    """The command-line flags (defined only when run as a program)."""
    flags.DEFINE_string(
        "workdir", None, "Training workdir of the model (unset: the model shipped in the package)."
    )
    flags.DEFINE_string("spectrum", None, "Spectrum file: CSV/TXT or JCAMP-DX.")
    flags.DEFINE_string("formula", None, "Molecular formula, e.g. C4H6O.")
    flags.DEFINE_string("out", None, "Output directory.")
    flags.DEFINE_integer("k", 50, "Number of samples.")
    flags.DEFINE_enum(
        "kind", None, list(spectrum_files.KINDS), "What the file holds (needed for CSV/TXT)."
    )
    flags.DEFINE_enum("oracle", "none", ["none", "xtb"], "Rank by xTB oracle SIS.")
    sampler_flags.define()
    flags.DEFINE_integer("seed", 0, "Sampling seed.")
    flags.DEFINE_integer("workers", 1, "Oracle worker processes.")
    flags.DEFINE_float("timeout_s", 600.0, "Oracle time limit per candidate (s).")
    flags.DEFINE_bool("verbose", False, "Show library INFO logs (JAX, Orbax).")


def main(argv) -> None:
    del argv
    cli.quiet_library_logs(FLAGS.verbose)
    try:
        missing = [name for name in ("spectrum", "formula", "out") if not FLAGS[name].value]
        if missing:
            raise prediction.PredictError("missing " + ", ".join(f"--{name}" for name in missing))
        summary = prediction.predict(
            FLAGS.workdir,
            FLAGS.spectrum,
            FLAGS.formula,
            FLAGS.out,
            k=FLAGS.k,
            kind=FLAGS.kind,
            oracle=FLAGS.oracle,
            settings=sampler_flags.settings(),
            seed=FLAGS.seed,
            workers=FLAGS.workers,
            timeout_s=FLAGS.timeout_s,
        )
    except prediction.INPUT_ERRORS as e:
        cli.exit_usage(f"predict: error: {e}")
    for c in summary["top"]:
        sis = "" if c.get("oracle_sis") is None else f"  SIS={c['oracle_sis']:.3f}"
        print(f"{c['rank']:3d}  {c['smiles']:30s} {c['count']:4d}/{summary['k']}{sis}")
    print(f"{summary['num_candidates']} candidates; files in {os.path.abspath(FLAGS.out)}")
    for warning in summary["warnings"]:
        print(f"predict: warning: {warning}", file=sys.stderr)


if __name__ == "__main__":
    define_flags()
    cli.run(main, "predict")
