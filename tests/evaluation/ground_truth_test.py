"""Ground truth through the whole evaluation: the reference geometries written as samples.

The 200 test molecules of the embedded subset, each "sampled" twice as its own reference
geometry (the second copy rotated and translated), must score validity 1 and molecular accuracy
1: any lower value is a defect of bond assignment, scoring or aggregation, not of a model.
"""

import numpy as np
from scipy.spatial.transform import Rotation

from configs import test as test_config
from irgeodiff_jax.data import sources
from irgeodiff_jax.evaluation import scoring
from irgeodiff_jax.sampling import samples_dir as sdir
from tests.helpers.samples import run_info

K, PAD = 2, 29


def test_reference_geometries_score_validity_and_accuracy_one(tmp_path):
    source = sources.get_source(test_config.get_config().data, "test")
    n_mol = len(source)
    arrays = dict(
        ids=np.zeros(n_mol, np.int64), atomic_numbers=np.zeros((n_mol, PAD), np.int32),
        atom_mask=np.zeros((n_mol, PAD), bool), positions=np.zeros((n_mol, K, PAD, 3)),
        reference_positions=np.zeros((n_mol, PAD, 3)), spectrum=np.zeros((n_mol, 3200)),
    )  # fmt: skip
    smiles = []
    rotation = Rotation.from_euler("xyz", [0.3, -1.1, 2.0])
    for m in range(n_mol):
        ex = source[m]
        z, x = np.asarray(ex["atomic_numbers"]), np.asarray(ex["positions"], np.float64)
        n = len(z)
        arrays["ids"][m] = int(ex["id"])
        arrays["atomic_numbers"][m, :n], arrays["atom_mask"][m, :n] = z, True
        arrays["positions"][m, 0, :n] = x
        arrays["positions"][m, 1, :n] = rotation.apply(x) + [5.0, -2.0, 1.0]
        arrays["reference_positions"][m, :n] = x
        arrays["spectrum"][m] = ex["spectrum"]
        smiles.append(str(ex["smiles"]))
    samples = str(tmp_path / "samples")
    sdir.SamplesWriter(samples, run_info(K)).write_chunk(reference_smiles=smiles, **arrays)
    metrics = scoring.run_evaluation(samples, str(tmp_path / "eval"), workers=1, ks=(1, 2))
    assert metrics["num_spectra"] == n_mol == 200
    assert metrics["validity"] == 1.0 and metrics["stability"] == 1.0
    assert metrics["mol_acc"] == 1.0 and metrics["mol_acc_at_k"] == {"1": 1.0, "2": 1.0}
