"""Model directories: export of a trained run, loading without a workdir, corrupt files."""

import json
import os

import jax
import numpy as np
import pytest

from irgeodiff_jax.training import shipped
from irgeodiff_jax.training import workdir as workdirs
from tests.helpers.cli import run_cli


@pytest.fixture(scope="module")
def exported(trained_workdir, tmp_path_factory):
    out = str(tmp_path_factory.mktemp("model"))
    proc = run_cli("irgeodiff_jax.export_model", f"--workdir={trained_workdir['workdir']}",
                   f"--out={out}")  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    return out, json.loads(proc.stdout.strip().splitlines()[-1])


def test_exported_model_loads_as_the_workdir_does(trained_workdir, exported):
    out, meta = exported
    ref = workdirs.load_for_inference(trained_workdir["workdir"])
    got = shipped.load_model(out)
    assert (got.stage, got.step, meta["step"]) == ("diffusion", ref.step, ref.step)
    want = json.loads(ref.config.to_json_best_effort())
    for field in shipped.MACHINE_PATHS:
        assert meta[f"trained_{field}"] == want["data"][field]
        want["data"][field] = None
    assert got.config.to_dict() == want
    flat_ref, flat_got = jax.tree.leaves(ref.params), jax.tree.leaves(got.params)
    assert len(flat_ref) == len(flat_got)
    for a, b in zip(flat_ref, flat_got, strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    assert meta["latent_scale"] == float(ref.params["autoencoder"]["latent_scale"])


def test_corrupt_and_missing_model_files_are_one_line_errors(exported, tmp_path):
    out, _ = exported
    with pytest.raises(shipped.ModelFileError, match="no exported model"):
        shipped.load_model(str(tmp_path))
    for name in (shipped.CONFIG_NAME, shipped.META_NAME):
        (tmp_path / name).write_bytes(open(os.path.join(out, name), "rb").read())
    blob = open(os.path.join(out, shipped.PARAMS_NAME), "rb").read()
    (tmp_path / shipped.PARAMS_NAME).write_bytes(blob[: len(blob) // 2])  # truncated
    with pytest.raises(shipped.ModelFileError, match="sha256"):
        shipped.load_model(str(tmp_path))
    os.remove(tmp_path / shipped.META_NAME)  # without the checksum: msgpack itself fails
    with pytest.raises(shipped.ModelFileError, match="unreadable"):
        shipped.load_model(str(tmp_path))


def test_export_of_a_workdir_without_diffusion_exits_2(tmp_path):
    proc = run_cli("irgeodiff_jax.export_model", f"--workdir={tmp_path}", f"--out={tmp_path}/m")
    assert proc.returncode == 2 and "error:" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


def test_the_shipped_model_is_packaged_small_and_loads():
    """The model in ``irgeodiff_jax/pretrained`` (issue 10): listed as package data, ≤ 25 MB,
    loads, carries its latent scale and no path of the machine that trained it."""
    assert shipped.has_model(), f"no model in {shipped.SHIPPED_DIR}"
    setup_cfg = os.path.join(os.path.dirname(os.path.dirname(shipped.SHIPPED_DIR)), "setup.cfg")
    if os.path.exists(setup_cfg):  # source checkout (an installed wheel has no setup.cfg)
        assert "pretrained/*" in open(setup_cfg).read()
    names = (shipped.CONFIG_NAME, shipped.PARAMS_NAME, shipped.META_NAME)
    size = sum(os.path.getsize(os.path.join(shipped.SHIPPED_DIR, n)) for n in names)
    assert size <= 25 * 2**20
    bundle = shipped.load_model()
    meta = json.load(open(os.path.join(shipped.SHIPPED_DIR, shipped.META_NAME)))
    assert bundle.stage == "diffusion" and bundle.step == meta["step"] > 0
    scale = float(bundle.params["autoencoder"]["latent_scale"])
    assert scale == meta["latent_scale"] and 0 < scale != 1.0  # a scale estimated on data
    assert all(bundle.config.data[f] is None for f in shipped.MACHINE_PATHS)
    assert bundle.config.model.denoiser.hidden_dim > 0
