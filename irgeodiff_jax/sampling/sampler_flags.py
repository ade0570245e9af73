"""The sampler's command-line flags, shared by ``sample`` and ``predict``.

``define()`` registers ``--sampler --steps --eta --spacing --guidance`` (call it only from a
program's flag definitions, so importing stays free); ``settings()`` turns their values into a
``generate.SamplerSettings`` (whose ``check`` rejects bad values with a one-line error).
"""

from absl import flags

from irgeodiff_jax.diffusion import sampler as sampler_lib
from irgeodiff_jax.sampling import generate

FLAGS = flags.FLAGS


def define() -> None:
    """Registers the sampler flags."""
    flags.DEFINE_enum("sampler", "ancestral", list(generate.SAMPLERS), "Reverse chain.")
    flags.DEFINE_integer("steps", 50, "Steps of the fast sampler (ancestral: always T).")
    flags.DEFINE_float("eta", 0.0, "Fast sampler stochasticity in [0, 1] (0: DDIM).")
    flags.DEFINE_enum(
        "spacing", "uniform", list(sampler_lib.SPACINGS), "Fast sampler timestep grid."
    )
    flags.DEFINE_float(
        "guidance", 1.0, "Classifier-free guidance weight (1: none; needs condition dropout)."
    )


def settings(**extra) -> generate.SamplerSettings:
    """``SamplerSettings`` from the flags' values; ``extra`` sets further fields (e.g. the
    guidance interval, which only ``sample`` takes)."""
    return generate.SamplerSettings(
        FLAGS.sampler,
        FLAGS.steps,
        FLAGS.eta,
        guidance=FLAGS.guidance,
        spacing=FLAGS.spacing,
        **extra,
    )
