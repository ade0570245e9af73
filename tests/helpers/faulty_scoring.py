"""A scoring function for pool tests that kills its worker or hangs on chosen samples.

It runs in the pool's worker processes, so it lives in an importable module (picklable by
reference); pick the samples with ``functools.partial(score_with_faults, crash=..., hang=...)``.
"""

import os
import time

from irgeodiff_jax.chem import score_job


def score_with_faults(job: score_job.ScoreJob, crash=(), hang=()) -> dict:
    """``os._exit(3)`` on samples in ``crash``, sleeps forever on those in ``hang``, else scores.

    ``crash`` and ``hang`` hold ``(spectrum_id, sample_index)`` pairs.
    """
    key = (int(job.spectrum_id), int(job.sample_index))
    if key in crash:
        os._exit(3)
    if key in hang:
        time.sleep(1e6)
    return score_job.score_sample(job)
