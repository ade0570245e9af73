"""``python -m irgeodiff_jax.sample``: a resumed run writes what an uninterrupted run writes."""

import dataclasses
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from irgeodiff_jax.chem.elements import heavy_atom_count
from irgeodiff_jax.sampling import generate
from irgeodiff_jax.sampling import samples_dir as sdir
from irgeodiff_jax.sampling.dataset import run_sampling
from irgeodiff_jax.sampling.runner import ModelRunner, SampleError, plan_batches, split_indices
from tests.helpers.cli import REPO, run_cli

FAST = generate.SamplerSettings("fast", steps=3)


@pytest.fixture(scope="module")
def runner(trained_workdir):
    return ModelRunner(trained_workdir["workdir"])


def _by_id(directory: str) -> dict:
    return {s.id: s for s in sdir.read_samples(directory)}


def assert_same_samples(a: str, b: str) -> None:
    """Same spectra, bit-identical arrays and identical SDF files in two samples directories."""
    first, second = _by_id(a), _by_id(b)
    assert sorted(first) == sorted(second) and first
    for sid, x in first.items():
        y = second[sid]
        for field in ("atomic_numbers", "positions", "reference_positions", "spectrum"):
            np.testing.assert_array_equal(getattr(x, field), getattr(y, field), err_msg=field)
        assert x.reference_smiles == y.reference_smiles
        with open(sdir.sdf_path(a, sid), "rb") as fa, open(sdir.sdf_path(b, sid), "rb") as fb:
            assert fa.read() == fb.read()


def test_resume_matches_uninterrupted_run(runner, trained_workdir, tmp_path):
    workdir = trained_workdir["workdir"]
    kw = dict(samples_per_spectrum=2, settings=FAST, batch_size=2, runner=runner)
    full = run_sampling(workdir, str(tmp_path / "full"), num_spectra=5, **kw)
    assert (full["spectra_written"], full["chunks_written"]) == (5, 3)
    # An interrupted run: its first chunk (2 spectra) was written, then it stopped.
    part = run_sampling(workdir, str(tmp_path / "resumed"), num_spectra=2, **kw)
    assert part["spectra_written"] == 2
    resumed = run_sampling(workdir, str(tmp_path / "resumed"), num_spectra=5, **kw)
    assert (resumed["skipped"], resumed["spectra_written"]) == (2, 3)
    assert_same_samples(str(tmp_path / "full"), str(tmp_path / "resumed"))
    again = run_sampling(workdir, str(tmp_path / "resumed"), num_spectra=5, **kw)
    assert (again["skipped"], again["spectra_written"], again["chunks_written"]) == (5, 0, 0)
    # Settings that would mix two runs in one directory are refused.
    with pytest.raises(SampleError, match="seed is 0 there but 1 now"):
        run_sampling(workdir, str(tmp_path / "resumed"), seed=1, num_spectra=5, **kw)
    with pytest.raises(SampleError, match="heavy_atoms is None there but 9 now"):
        run_sampling(workdir, str(tmp_path / "resumed"), heavy_atoms=9, num_spectra=5, **kw)
    with pytest.raises(sdir.SamplesFormatError, match="samples_per_spectrum"):
        run_sampling(
            workdir,
            str(tmp_path / "resumed"),
            num_spectra=5,
            **{**kw, "samples_per_spectrum": 3},
        )


def test_plan_batches_groups_by_bucket_and_skips(runner, trained_workdir):
    from irgeodiff_jax.data import sources

    source = sources.get_source(runner.bundle.config.data, "test")
    first5 = split_indices(source, 5)
    plan = plan_batches(source, runner, indices=first5, batch_size=2, skip_ids=())
    assert [len(ix) for _, ix in plan] == [2, 2, 1]
    assert sorted(i for _, ix in plan for i in ix) == list(range(5))
    first_ids = [int(source[i]["id"]) for i in plan[0][1]]
    rest = plan_batches(source, runner, indices=first5, batch_size=2, skip_ids=first_ids)
    assert rest == plan[1:]


def test_plan_batches_of_one_molecule_size(runner):
    from irgeodiff_jax.data import sources

    source = sources.get_source(runner.bundle.config.data, "test")
    heavy = [heavy_atom_count(source[i]["atomic_numbers"]) for i in range(len(source))]
    assert len(set(heavy)) > 1  # the filter has something to leave out
    n = max(set(heavy), key=heavy.count)
    first3 = split_indices(source, 3, heavy_atoms=n)
    plan = plan_batches(source, runner, indices=first3, batch_size=2, skip_ids=())
    chosen = sorted(i for _, ix in plan for i in ix)
    assert chosen == [i for i, h in enumerate(heavy) if h == n][:3]  # the first 3 of size n
    with pytest.raises(SampleError, match="no molecules with 40 heavy atoms"):
        split_indices(source, 3, heavy_atoms=40)


def test_size_batches_fill_every_batch_but_the_last_across_buckets():
    from irgeodiff_jax.sampling.runner import size_batches

    atoms = [25, 9, 12, 18, 8, 15, 10]  # buckets of (10, 20, 29): 2, 0, 1, 1, 0, 1, 0
    plan = size_batches(atoms, (10, 20, 29), 2, lambda j: j)
    # bucket order, source order within a bucket; a batch is padded for its largest molecule
    assert plan == [(10, [1, 4]), (20, [6, 2]), (20, [3, 5]), (29, [0])]
    assert size_batches(atoms, (29,), 3, lambda j: j) == [
        (29, [0, 1, 2]), (29, [3, 4, 5]), (29, [6])
    ]  # fmt: skip
    # Completed chunks are a prefix: planning what is left gives the rest of the plan.
    left = [j for _, ix in plan[2:] for j in ix]
    rest = size_batches([atoms[j] for j in left], (10, 20, 29), 2, lambda j: j)
    assert [(n, [left[j] for j in ix]) for n, ix in rest] == plan[2:]
    with pytest.raises(ValueError):
        size_batches([30], (10, 29), 2, lambda j: j)


def test_buckets_pad_each_batch_to_its_smallest_size(trained_workdir, tmp_path):
    from irgeodiff_jax.data import sources

    workdir = trained_workdir["workdir"]
    small = ModelRunner(workdir, buckets=(14, 18))
    assert small.sizes == (14, 18, small.data.max_atoms)
    source = sources.get_source(small.bundle.config.data, "test")
    atoms = np.asarray(source.num_atoms())[:8]
    plan = plan_batches(source, small, indices=split_indices(source, 8), batch_size=2, skip_ids=())
    for n, indices in plan:  # the smallest size that holds every molecule of the batch
        assert all(atoms[i] <= n for i in indices)
        assert n == min(s for s in small.sizes if s >= atoms[indices].max())
    assert len({n for n, _ in plan}) > 1
    out = str(tmp_path / "bucketed")
    kw = dict(num_spectra=8, samples_per_spectrum=2, settings=FAST, batch_size=2)
    summary = run_sampling(workdir, out, buckets=(14, 18), **kw)
    assert summary["spectra_written"] == 8
    for s in sdir.read_samples(out):
        assert s.positions.shape == (2, s.atomic_numbers.size, 3)
        assert np.isfinite(s.positions).all()
    with pytest.raises(SampleError, match="cannot resume .*sizes"):
        run_sampling(workdir, out, **kw)  # the config's single size would mix two plans
    quadratic = dict(kw, settings=dataclasses.replace(FAST, spacing="quadratic"))
    with pytest.raises(SampleError, match="cannot resume .*spacing is 'uniform'"):
        run_sampling(workdir, out, buckets=(14, 18), **quadratic)
    with pytest.raises(SampleError, match="must lie in"):
        ModelRunner(workdir, buckets=(0,))


def test_cli_errors_are_one_line(tmp_path):
    proc = run_cli("irgeodiff_jax.sample", f"--workdir={tmp_path / 'nope'}", f"--out={tmp_path}")
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert lines[-1].startswith("sample: error: ") and "no such workdir" in lines[-1]
    assert "Traceback" not in proc.stderr
    proc = run_cli("irgeodiff_jax.sample", f"--out={tmp_path}", "--buckets=14,x")
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines()[-1] == (
        "sample: error: --buckets=14,x: expected comma-separated integers"
    )
    proc = run_cli("irgeodiff_jax.sample", f"--out={tmp_path}", "--guidance_interval=0.5")
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines()[-1] == (
        "sample: error: --guidance_interval must be two numbers lo,hi, got 0.5"
    )
    # The shipped model was trained without condition dropout: it has no unconditional ε̂.
    proc = run_cli("irgeodiff_jax.sample", f"--out={tmp_path / 'g'}", "--guidance=3")
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines()[-1] == (
        "sample: error: --guidance=3 needs a model trained with diffusion.condition_dropout > 0 "
        "(this one: 0); use --guidance=1"
    )
    assert not os.path.exists(tmp_path / "g")


@pytest.mark.slow
def test_sigkill_then_rerun_gives_the_uninterrupted_output(trained_workdir, tmp_path):
    """SIGKILL ``sample`` right after its first chunk appears, re-run, compare with a clean run.

    The ancestral sampler (T denoiser calls per batch) and one spectrum per batch make each
    chunk slow enough that the kill lands mid-run.
    """
    args = [
        f"--workdir={trained_workdir['workdir']}",
        "--split=test",
        "--num_spectra=5",
        "--samples_per_spectrum=2",
        "--sampler=ancestral",
        "--batch_size=1",
    ]
    clean = run_cli("irgeodiff_jax.sample", *args, f"--out={tmp_path / 'clean'}")
    assert clean.returncode == 0, clean.stderr[-2000:]
    killed_dir = tmp_path / "killed"
    proc = subprocess.Popen(
        [sys.executable, "-m", "irgeodiff_jax.sample", *args, f"--out={killed_dir}"],
        cwd=REPO,
        env=dict(os.environ, PYTHONPATH=REPO),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline and proc.poll() is None:
            manifest = killed_dir / sdir.MANIFEST
            if manifest.exists() and json.loads(manifest.read_text())["chunks"]:
                break
            time.sleep(0.02)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait()
    assert proc.returncode == -signal.SIGKILL  # killed, not finished
    done = sdir.completed_ids(str(killed_dir))
    assert 1 <= len(done) < 5
    rerun = run_cli("irgeodiff_jax.sample", *args, f"--out={killed_dir}")
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    assert json.loads(rerun.stdout)["skipped"] == len(done)
    assert_same_samples(str(tmp_path / "clean"), str(killed_dir))
