r"""Sample k geometries per spectrum of a dataset split with a trained model.

    python -m irgeodiff_jax.sample [--workdir=W] --out=DIR --split=test [--num_spectra=M] \
        [--heavy_atoms=n] --samples_per_spectrum=k [--sampler=ancestral|fast --steps=K] [--eta=0] \
        [--spacing=uniform|quadratic] [--guidance=1 --guidance_interval=0,1] [--batch_size=B] \
        [--seed=S] [--buckets=14,16,18,20,23] [--attention_spectra=A] [--verbose]

Restores the EMA parameters of the training workdir W (without ``--workdir``: the model shipped
with the package, ``irgeodiff_jax/pretrained/``, whose data settings name the embedded subset)
and samples the first M molecules of the split (``--heavy_atoms=n``: the first M of those with
n non-hydrogen atoms), B spectra per jitted batch, one chunk per batch
in DIR (``sampling/dataset.py``; the format is ``sampling/samples_dir.py``). Prints a JSON
summary. Re-running the same command resumes: it skips the spectra of every completed chunk and
writes the same arrays as an uninterrupted run. ``--buckets`` pads each batch only to the
smallest of these sizes (and ``max_atoms``) that holds its molecules, instead of the model
config's ``data.buckets`` (``--buckets=``: every batch padded to ``max_atoms``): the same
samples up to float rounding (``ModelRunner``), at a cost that grows with the real atoms
(``benchmarks/buckets.py``). ``--guidance=w`` (w != 1) samples with classifier-free guidance,
for models trained with ``diffusion.condition_dropout > 0`` (refused for others). Bad flags
or inputs give a one-line ``sample: error: ...`` and exit status 2.
"""

import json

from absl import flags

from irgeodiff_jax.data import sources
from irgeodiff_jax.sampling import dataset, generate, sampler_flags
from irgeodiff_jax.utils import cli

FLAGS = flags.FLAGS


def define_flags() -> None:
    """The command-line flags (defined only when run as a program, so importing is free)."""
    flags.DEFINE_string(
        "workdir", None, "Training workdir (EMA parameters are used; unset: the shipped model)."
    )
    flags.DEFINE_string("out", None, "Output samples directory (resumed if it exists).")
    flags.DEFINE_enum("split", "test", list(sources.SPLITS), "Dataset split to sample.")
    flags.DEFINE_integer("num_spectra", -1, "First M molecules of the split (<0: all).")
    flags.DEFINE_integer(
        "heavy_atoms", None, "Only molecules with this many non-hydrogen atoms (default: any)."
    )
    flags.DEFINE_integer("samples_per_spectrum", 50, "Samples per spectrum (k).")
    sampler_flags.define()
    flags.DEFINE_list(
        "guidance_interval", ["0", "1"], "Normalised times lo,hi: guidance only at lo < t <= hi."
    )
    flags.DEFINE_integer("batch_size", 8, "Spectra per jitted batch (x k samples each).")
    flags.DEFINE_integer("seed", 0, "Sampling seed (keys derive from seed and spectrum id).")
    flags.DEFINE_list(
        "buckets", None, "Padded sizes below max_atoms, e.g. 14,16,18,20,23 (unset: the config's)."
    )
    flags.DEFINE_integer(
        "attention_spectra", 0, "Save attention maps of the first A spectra of the split."
    )
    flags.DEFINE_bool("verbose", False, "Show library INFO logs (JAX, Orbax, progress).")


def _interval(values) -> tuple[float, float]:
    try:
        lo, hi = (float(v) for v in values)
    except ValueError:
        raise generate.GenerateError(
            f"--guidance_interval must be two numbers lo,hi, got {','.join(values)}"
        ) from None
    return lo, hi


def main(argv) -> None:
    del argv
    cli.quiet_library_logs(FLAGS.verbose)
    try:
        if not FLAGS.out:
            raise dataset.SampleError("--out is required")
        summary = dataset.run_sampling(
            FLAGS.workdir,
            FLAGS.out,
            split=FLAGS.split,
            num_spectra=FLAGS.num_spectra,
            samples_per_spectrum=FLAGS.samples_per_spectrum,
            settings=sampler_flags.settings(guidance_interval=_interval(FLAGS.guidance_interval)),
            batch_size=FLAGS.batch_size,
            seed=FLAGS.seed,
            attention_spectra=FLAGS.attention_spectra,
            buckets=cli.int_list(FLAGS.buckets, "--buckets", "sample"),
            heavy_atoms=FLAGS.heavy_atoms,
        )
    except dataset.INPUT_ERRORS as e:
        cli.exit_usage(f"sample: error: {e}")
    print(json.dumps(summary, indent=1))


if __name__ == "__main__":
    define_flags()
    cli.run(main, "sample")
