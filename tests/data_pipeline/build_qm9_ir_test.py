"""QM9-IR builder: determinism across workers/kills/array shards, failure logging, merge, errors."""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from data_pipeline import build_qm9_ir, merge_shards, shard_io

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# QM9 indices 1-20 are the smallest molecules (<= 4 heavy atoms): ~0.05-0.3 s of xTB each.
SMALL = "1-8"


def run_build(out, indices=SMALL, *extra):
    argv = ["--out", str(out), "--indices", indices, "--shard_size", "2", "--no_progress"]
    assert build_qm9_ir.main(argv + list(extra)) == 0


def shard_bytes(directory) -> dict:
    return {j: open(p, "rb").read() for j, p in shard_io.list_shards(directory).items()}


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """Uninterrupted 2-worker build of QM9 1-8 (4 shards), one molecule made to fail."""
    out = tmp_path_factory.mktemp("reference")
    run_build(out, SMALL, "--workers", "2", "--test_corrupt_ids", "5")
    return out


def test_reference_build_contents(reference):
    shards = shard_io.list_shards(reference)
    assert sorted(shards) == [0, 1, 2, 3]
    mols = merge_shards.read_build(reference)
    assert [m.id for m in mols] == [1, 2, 3, 4, 6, 7, 8]
    for m in mols:
        n = m.num_atoms
        assert m.positions_angstrom.shape == (n, 3)
        assert m.frequencies_cm1.shape == m.intensities_km_mol.shape
        assert m.frequencies_cm1.shape[0] in (3 * n - 6, 3 * n - 5)
        assert np.all(m.intensities_km_mol >= 0)
    arrays = shard_io.load_npz(shards[0])
    assert np.all(np.isfinite(arrays["energy_hartree"])) and np.all(arrays["energy_hartree"] < 0)
    info = json.load(open(os.path.join(reference, "build_info.json")))
    assert info["builder_version"] == build_qm9_ir.BUILDER_VERSION
    assert info["versions"]["tblite"] and info["settings"]["omp_num_threads"] == 1


def test_failure_is_logged_and_run_continues(reference):
    lines = [json.loads(s) for s in open(os.path.join(reference, "failures.jsonl"))]
    assert lines == [{"id": 5, "reason": "positions contain NaN or infinite values"}]
    assert merge_shards.read_failures(reference) == {5: lines[0]["reason"]}


def run_molecule_crashing_on_2(task: dict) -> dict:
    """A builder job that kills its worker process on QM9 molecule 2 (runs in the workers)."""
    if task["id"] == 2:
        os._exit(3)
    return build_qm9_ir.run_molecule(task)


def test_worker_crash_is_logged_and_replaced(tmp_path):
    argv = ["--out", str(tmp_path), "--indices", "1-4", "--shard_size", "2", "--no_progress"]
    args = build_qm9_ir.parse_args(argv + ["--workers", "1"])
    stats = build_qm9_ir.build(args, job_fn=run_molecule_crashing_on_2)
    assert stats["computed"] == 4 and stats["failed"] == 1
    failures = merge_shards.read_failures(tmp_path)
    assert list(failures) == [2] and "worker process died" in failures[2]
    assert [m.id for m in merge_shards.read_build(tmp_path)] == [1, 3, 4]


def _kill_after_first_shard(out, indices, shard_size, workers, timeout=300):
    cmd = [sys.executable, "-m", "data_pipeline.build_qm9_ir", "--out", str(out)]
    cmd += ["--indices", indices, "--shard_size", str(shard_size), "--workers", str(workers)]
    cmd += ["--no_progress", "--test_corrupt_ids", "5"]
    proc = subprocess.Popen(cmd, cwd=ROOT, start_new_session=True, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + timeout
    while not os.path.exists(shard_io.shard_path(out, 0)):
        assert proc.poll() is None, "builder exited before writing a shard"
        assert time.monotonic() < deadline
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)  # the builder and its workers
    proc.wait()
    return len(shard_io.list_shards(out))


def test_sigkill_then_resume_gives_identical_shards(reference, tmp_path):
    num_before = _kill_after_first_shard(tmp_path, SMALL, 2, workers=1)
    assert 1 <= num_before < 4, "the kill must interrupt the build"
    run_build(tmp_path, SMALL, "--workers", "1", "--test_corrupt_ids", "5")
    assert shard_bytes(tmp_path) == shard_bytes(reference)
    assert open(tmp_path / "failures.jsonl").read() == open(reference / "failures.jsonl").read()


def test_array_shards_merge_to_the_single_run(reference, tmp_path):
    parts = [tmp_path / "part0", tmp_path / "part1"]
    for i, part in enumerate(parts):
        run_build(part, SMALL, "--shard", f"{i}/2", "--test_corrupt_ids", "5")
    assert sorted(shard_io.list_shards(parts[0])) == [0, 1]
    assert sorted(shard_io.list_shards(parts[1])) == [2, 3]
    with pytest.raises(merge_shards.MergeError, match="missing"):
        merge_shards.merge([str(parts[0])], str(tmp_path / "incomplete"))
    stats = merge_shards.merge([str(p) for p in parts], str(tmp_path / "merged"))
    assert stats == {"shards": 4, "molecules": 7, "failures": 1}
    assert shard_bytes(tmp_path / "merged") == shard_bytes(reference)
    merged_failures = open(tmp_path / "merged" / "failures.jsonl").read()
    assert merged_failures == open(reference / "failures.jsonl").read()


def test_resume_refuses_a_different_build(reference, capsys):
    argv = ["--out", str(reference), "--indices", "1-9", "--shard_size", "2", "--no_progress"]
    assert build_qm9_ir.main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert "holds a different build" in err and "\n" not in err


def test_truncated_shard_is_a_one_line_error(reference, tmp_path):
    data = open(shard_io.shard_path(reference, 0), "rb").read()
    bad = tmp_path / "shard-00000.npz"
    bad.write_bytes(data[: len(data) // 2])
    with pytest.raises(shard_io.ShardError, match="shard-00000.npz: corrupt or truncated"):
        shard_io.load_npz(str(bad))
    assert not shard_io.shard_complete(str(tmp_path), 0, np.array([1, 2]))


def test_parse_helpers_and_chunk_ranges_cover_everything():
    assert build_qm9_ir.parse_indices("3,1-2, 10-11").tolist() == [3, 1, 2, 10, 11]
    for bad in ("1,1", "a-b", ""):
        with pytest.raises(build_qm9_ir.BuildError):
            build_qm9_ir.parse_indices(bad)
    assert build_qm9_ir.parse_shard("2/5") == (2, 5)
    for bad in ("5/5", "-1/3", "1"):
        with pytest.raises(build_qm9_ir.BuildError):
            build_qm9_ir.parse_shard(bad)
    for num_chunks, n in ((1309, 64), (3, 5), (10, 3)):
        covered = [j for i in range(n) for j in build_qm9_ir.chunk_range(num_chunks, (i, n))]
        assert covered == list(range(num_chunks))


@pytest.mark.slow
def test_twenty_molecules_sigkill_resume_matches_uninterrupted(tmp_path):
    """Acceptance 1: 20 molecules from scratch, SIGKILL mid-way, re-run == uninterrupted run."""
    full, killed = tmp_path / "full", tmp_path / "killed"
    run_build(full, "1-20", "--workers", "2", "--shard_size", "4", "--test_corrupt_ids", "5")
    num_before = _kill_after_first_shard(killed, "1-20", 4, workers=2)
    assert 1 <= num_before < 5
    run_build(killed, "1-20", "--workers", "2", "--shard_size", "4", "--test_corrupt_ids", "5")
    assert len(shard_bytes(full)) == 5
    assert shard_bytes(killed) == shard_bytes(full)
