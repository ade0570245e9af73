"""The training-time sample check: scores in a side process, writes at the next eval point."""

import jax
import numpy as np

from configs import test as test_config
from irgeodiff_jax.diffusion import schedules
from irgeodiff_jax.models import factory
from irgeodiff_jax.sampling import sample_check


class _Writer:
    def __init__(self):
        self.records = []

    def write(self, step_, values, stage=""):
        self.records.append((step_, stage, dict(values)))


def test_summarize_counts_per_sample_and_per_spectrum():
    results = [
        {"spectrum_id": 0, "valid": True, "stable": True, "match": False},
        {"spectrum_id": 0, "valid": True, "stable": False, "match": True},
        {"spectrum_id": 1, "valid": False, "stable": False, "match": False},
        {"spectrum_id": 1, "valid": True, "stable": True, "match": False},
    ]
    pos = np.zeros((2, 2, 3, 3))
    pos[..., 0] = [0.0, 1.0, 3.0]  # closest pair 1 Å in every sample; third slot padded below
    mask = np.array([[True, True, True], [True, True, False]])
    out = sample_check.summarize(results, pos, mask)
    assert out == {
        "sample_check/validity": 0.75,
        "sample_check/stability": 0.5,
        "sample_check/mol_acc": 0.5,
        "sample_check/closest_pair": 1.0,
    }


def test_hook_samples_validation_spectra_and_writes_scores():
    config = test_config.get_config()
    config.training.sample_check.update(every_steps=10, num_spectra=2, samples=2, sampler_steps=3)
    models = factory.create_models(config)
    params = jax.jit(lambda k: factory.init_params(models, config, k))(jax.random.key(0))
    schedule = schedules.schedule_from_config(config.diffusion)
    hook = sample_check.SampleCheck(config, models, schedule)
    writer = _Writer()
    hook.after_eval("autoencoder", 10, params, writer, final=False)  # other stages: nothing
    hook.after_eval("diffusion", 5, params, writer, final=False)  # not a multiple: nothing
    assert hook._thread is None
    hook.after_eval("diffusion", 10, params, writer, final=False)
    hook.end_stage("diffusion", writer)
    assert [(s, st) for s, st, _ in writer.records] == [(10, "diffusion")]
    values = writer.records[0][2]
    assert set(values) == {f"sample_check/{k}" for k in
                           ("validity", "stability", "mol_acc", "closest_pair")}  # fmt: skip
    assert all(0.0 <= values[k] <= 1.0 for k in values if not k.endswith("closest_pair"))
    assert values["sample_check/closest_pair"] > 0
