"""Smoke tests of the speed benchmarks at their smallest sizes: JSON keys and numerical agreement
of the compared implementations (no timing assertions: speed is measured, not tested)."""

import json
import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from absl import app

from benchmarks import (
    buckets,
    denoiser_profile,
    edge_stream,
    egnn_kernel,
    memorize,
    memory_plan,
    recipes,
    timing,
    train_step,
)
from configs import cpu_small
from irgeodiff_jax.chem.elements import heavy_atom_count
from irgeodiff_jax.data.embedded_subset import NPZ_NAME, load_embedded
from irgeodiff_jax.models import egnn
from irgeodiff_jax.training import optim

TIMING_KEYS = {"median_s", "min_s", "max_s", "repeats"}


def _assert_timings(times: dict, names: set[str]) -> None:
    assert set(times) == names
    for t in times.values():
        assert set(t) == TIMING_KEYS
        assert 0 < t["min_s"] <= t["median_s"] <= t["max_s"]
        assert t["repeats"] == 1


def test_egnn_kernel_smallest_run_agrees_and_reports(capsys):
    result = egnn_kernel.main(
        ["--batch", "2", "--atoms", "5", "--hidden", "8", "--layers", "1", "--repeats", "1"]
    )
    assert json.loads(capsys.readouterr().out) == json.loads(json.dumps(result))
    assert set(result) == {"config", "forward", "forward_backward", "machine"}
    for mode in ("forward", "forward_backward"):
        part = result[mode]
        assert set(part) == {
            "time",
            "ratio_naive_over_dense",
            "ratio_sparse_over_dense",
            "max_abs_diff",
            "xla_gflops",
        }
        _assert_timings(part["time"], {"dense", "naive", "sparse"})
        assert part["max_abs_diff"]["naive_vs_dense"] < 1e-4
        assert part["max_abs_diff"]["sparse_vs_dense"] < 1e-4
        # The naive kernel multiplies the full [B, N, N, 2H + E] concatenation: more FLOPs.
        assert part["xla_gflops"]["naive"] > part["xla_gflops"]["dense"]
    assert len(result["machine"]["load_average"]) == 3


def test_naive_block_matches_dense_kernel_on_random_inputs():
    h, x, mask, a = egnn_kernel.make_inputs(batch=3, atoms=6, seed=4)
    model = egnn.EGNN(hidden_dim=8, num_layers=2, out_dim=None)
    params = timing.initialise(lambda k: model.init(k, h, x, mask, a)["params"], jax.random.key(1))
    dense = egnn_kernel.implementations(8, 2)["dense"](params, h, x, mask, a)
    naive = egnn_kernel.naive_egnn(params, h, x, mask, a)
    assert timing.max_abs_diff(naive, dense) < 1e-5
    # Padded atoms stay zero in both.
    assert float(jnp.max(jnp.abs(naive[1] * (1 - mask[..., None])))) == 0.0


def test_edge_stream_smallest_run_agrees_and_reports(capsys):
    result = edge_stream.main(
        ["--batch", "2", "--atoms", "4", "--size", "tiny", "--width", "full"]
        + ["--steps", "2", "--repeats", "1"]
    )
    assert json.loads(capsys.readouterr().out) == json.loads(json.dumps(result))
    assert set(result) == {"config", "edge_pairs", "prepare_reuse", "machine"}
    pairs = result["edge_pairs"]
    _assert_timings(pairs["time"], {"unordered", "ordered"})
    assert pairs["max_abs_diff"] < 1e-5
    assert pairs["max_abs_eps"] > 0
    assert pairs["xla_gflops"]["ordered"] > pairs["xla_gflops"]["unordered"]
    reuse = result["prepare_reuse"]
    _assert_timings(reuse["time"], {"reuse", "recompute"})
    assert reuse["steps"] == 2
    assert reuse["max_abs_diff"] < 1e-5
    assert reuse["xla_gflops_one_prepare"] > 0
    carried = reuse["kv_tensors_carried_into_scan_body"]
    assert set(carried) == {"reuse", "recompute"}
    # With prepare hoisted by hand, every K/V tensor enters the loop from outside.
    assert carried["reuse"] == reuse["kv_tensors_expected"]


@pytest.mark.parametrize(
    "main, argv",
    [
        (egnn_kernel.main, ["--atoms", "1"]),
        (egnn_kernel.main, ["--repeats", "0"]),
        (edge_stream.main, ["--steps", "0"]),
        (edge_stream.main, ["--width", "quarter"]),
    ],
)
def test_bad_arguments_exit_with_usage_error(main, argv, capsys):
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    assert "error:" in capsys.readouterr().err


def test_time_interleaved_rejects_zero_repeats():
    with pytest.raises(ValueError, match="repeats must be >= 1"):
        timing.time_interleaved({"noop": lambda: 0}, repeats=0)


def test_memorize_subset_uses_the_same_molecules_in_every_split(tmp_path):
    out = memorize.make_subset(str(tmp_path / "subset"), 8)
    with open(f"{out}/manifest.json") as f:
        splits = json.load(f)["splits"]
    assert len(splits["train"]) == 8 and splits["validation"] == splits["test"] == splits["train"]
    assert not os.path.islink(os.path.join(out, NPZ_NAME))  # the workdir stands on its own
    assert recipes.budget_flags(["1", "2", "3"])[2] == "--config.training.diffusion.num_steps=3"
    counts = memorize.subset_atom_counts(out)
    assert len(counts) == 8 and all(5 <= c <= 29 for c in counts)
    with pytest.raises(app.UsageError, match="three budgets"):
        recipes.budget_flags(["1", "2"])


def test_memorize_subset_of_one_molecule_size(tmp_path):
    out = memorize.make_subset(str(tmp_path / "subset"), 8, heavy_atoms=9)
    with open(f"{out}/manifest.json") as f:
        ids = json.load(f)["splits"]["train"]
    molecules = {int(m.id): m for m in load_embedded(out)}
    assert len(ids) == 8 and all(heavy_atom_count(molecules[i].atomic_numbers) == 9 for i in ids)
    with pytest.raises(app.UsageError, match="with 30 heavy atoms"):
        memorize.make_subset(str(tmp_path / "none"), 1, heavy_atoms=30)


def test_memorize_pads_only_as_far_as_the_subset_needs():
    atoms = [9] * 10 + [13] * 15 + [14] * 10 + [16] * 20 + [21] * 9  # 64 molecules, median 14
    assert memorize.padding_flags(atoms) == [
        "--config.data.max_atoms=21", "--config.data.buckets=(14,)"
    ]  # fmt: skip
    # A bucket one side of which could never fill a batch of 16 is left out.
    assert memorize.padding_flags([10] * 20 + [12] * 10)[1] == "--config.data.buckets=()"
    assert memorize.padding_flags([12] * 40)[1] == "--config.data.buckets=()"


def test_recipe_flags_come_from_the_recipe_table():
    assert recipes.recipe_flags("cpu_small") == []
    assert recipes.recipe_flags("tolerant_decoder_unguided") == [
        "--config.loss.latent_noise=0.3",
        "--config.model.autoencoder.decoder_layers=8",
        "--config.diffusion.frozen_autoencoder=True",
        "--config.optimizer.diffusion.schedule=warmup_cosine",
        "--config.optimizer.diffusion.learning_rate=0.002",
        "--config.model.denoiser.self_condition=True",
    ]
    assert recipes.recipe_flags("paper")[0] == "--config.loss.latent_noise=0.0"
    # A recipe that sets a field of the earlier default sets it once, to its own value.
    rates = [f for f in recipes.recipe_flags("frozen_ae_lr2e-3") if "learning_rate" in f]
    assert rates == ["--config.optimizer.diffusion.learning_rate=0.002"]


def _parent_and_leaf(config, path: str):
    """The section holding the dotted config field ``path``, and the field's name."""
    *parents, leaf = path.split(".")
    node = config
    for part in parents:
        node = node[part]
    return node, leaf


def _resolved(overrides) -> dict:
    """``configs/cpu_small.py`` with ``overrides`` (``path=value``) applied, as a nested dict."""
    config = cpu_small.get_config()
    for item in overrides:
        path, value = item.split("=", 1)
        node, leaf = _parent_and_leaf(config, path)
        kind = type(node[leaf])
        node[leaf] = value == "True" if kind is bool else kind(value)
    return config.to_dict()


def test_cpu_small_default_is_the_tolerant_decoder_unguided_recipe():
    """The winner (memorisation runs v27-v28, then the validation split for the shipped model)
    is ``configs/cpu_small.py``'s default: its recipe's overrides change nothing there, and the
    recipes written against the earlier default put that default back."""
    ae, diffusion = recipes.RECIPES["tolerant_decoder_unguided"]
    assert _resolved((*ae, *diffusion)) == _resolved(())
    previous = _resolved((*recipes.PREVIOUS_AE, *recipes.PREVIOUS_DIFFUSION))
    assert previous["loss"]["latent_noise"] == 0.05
    assert previous["model"]["autoencoder"]["decoder_layers"] == 4
    assert previous["optimizer"]["diffusion"]["learning_rate"] == 0.001
    assert previous["model"]["denoiser"]["self_condition"] is False
    ae, diffusion = recipes.RECIPES["frozen_ae_cosine"]
    assert _resolved((*ae, *diffusion)) == previous  # that default itself
    assert dict(o.split("=", 1) for o in recipes.CONSTANT_RATE) == {
        "diffusion.frozen_autoencoder": "False",
        "optimizer.diffusion.schedule": "warmup_constant",
    }


def test_recovery_recipes_override_existing_fields_and_paper_undoes_cpu_small():
    config = cpu_small.get_config()
    for name, (ae, diffusion) in recipes.RECIPES.items():
        for item in (*ae, *diffusion):
            path, value = item.split("=", 1)
            node, leaf = _parent_and_leaf(config, path)
            assert leaf in node, (name, item)
            # The override parses as the field's type (a typo in a value fails here, not after
            # an hour of training).
            kind = type(node[leaf])
            if kind is bool:
                assert value in ("True", "False"), (name, item)
            else:
                kind(value)
    paper = dict(o.split("=", 1) for o in recipes.PAPER_DIFFUSION)
    assert paper["diffusion.target"] == "eps" and config.diffusion.target == "v"
    assert paper["diffusion.frozen_autoencoder"] == "False" and config.diffusion.frozen_autoencoder
    assert paper["model.denoiser.hidden_dim"] == "32" and config.model.denoiser.hidden_dim == 64


@pytest.mark.parametrize("module", ["memorize", "recovery_recipes"])
def test_recovery_entry_points_define_each_flag_once(module):
    # Each runs as its own program; importing another entry point would define its flags twice.
    done = subprocess.run(
        [sys.executable, "-m", f"benchmarks.{module}", "--help"], capture_output=True, text=True
    )
    # absl's --help prints the flags and exits with status 1; a flag defined twice raises first.
    assert "Error" not in done.stderr, done.stderr[-2000:]
    assert "--workdir: output directory" in done.stdout


def test_denoiser_profile_parts_and_padding(capsys):
    result = denoiser_profile.main(["--config=configs/test.py", "--batch=2", "--atoms=14"])
    assert json.loads(capsys.readouterr().out) == json.loads(json.dumps(result))
    parts = result["gflops"]
    assert set(parts) == {"atom_cross_attention", "edge_stream", "egnn", "call"}
    for part in parts.values():
        assert 0 < part["forward"] < part["forward_backward"]
    shares = sum(
        parts[k]["share_of_call_forward"] for k in ("atom_cross_attention", "edge_stream", "egnn")
    )
    assert 0.9 <= shares <= 1.05  # the three parts are (nearly) the whole call
    pad = result["padding"]
    assert 12 <= pad["real_atoms_mean"] <= 14
    assert 0 < pad["unordered_pairs_real_fraction"] <= 1 and 0 < pad["all_pairs_real_fraction"] <= 1


def test_benchmark_config_of_cpu_small_builds_its_optimizer():
    """cpu_small's cosine rate needs a decay horizon, which only the trainer knows; the
    benchmarks' ``load_config`` gives it one so that their steps build outside the trainer."""
    config = train_step.load_config("configs/cpu_small.py", "float32", 14, [])
    opt = config.optimizer.diffusion
    assert opt.schedule == "warmup_cosine" and 0 < opt.warmup_steps < opt.decay_steps
    params = {"w": jnp.zeros((2,))}
    state = optim.make_optimizer(opt).init(params)
    assert jax.tree.leaves(state)


def test_train_step_batch_and_ratio_helpers():
    batch = train_step.synthetic_batch(0, batch=5, n=20, num_types=5, num_groups=20)
    num = batch["atom_mask"].sum(1)
    assert (num >= train_step.MIN_ATOMS).all() and (num <= 20).all()
    assert (num == batch["num_atoms"]).all()
    com = (batch["positions"] * batch["atom_mask"][..., None]).sum(1)
    assert abs(com).max() < 1e-4
    assert batch["spectrum_tokens"].shape == (5, train_step.SPECTRUM_POINTS)
    base = {"train_step_s": 4.0, "denoiser_call_s": 1.0, "compile_s": 10.0, "peak_rss_gib": 8.0,
            "ancestral_molecules_per_s": 0.01, "fast_molecules_per_s": 0.1}  # fmt: skip
    new = {**base, "train_step_s": 2.0, "peak_rss_gib": 4.0, "fast_molecules_per_s": 0.3}
    got = train_step.ratios(base, new)
    assert got["train_step_s"] == 2.0 and got["peak_rss_gib"] == 0.5
    assert got["fast_molecules_per_s"] == 3.0 and got["denoiser_call_s"] == 1.0
    with pytest.raises(SystemExit):
        train_step.parse_args(["--atoms=5"])


def test_train_step_overrides_take_json_or_python_literals():
    config = train_step.load_config("configs/cpu_small.py", "float32", 21, [
        "diffusion.frozen_autoencoder=True", "model.denoiser.hidden_dim=96",
        'diffusion.target="eps"', "optimizer.diffusion.schedule='warmup_cosine'"])  # fmt: skip
    assert config.diffusion.frozen_autoencoder is True and config.model.denoiser.hidden_dim == 96
    assert config.diffusion.target == "eps"
    assert config.optimizer.diffusion.schedule == "warmup_cosine"
    with pytest.raises(SystemExit, match="not JSON or a Python literal"):
        train_step.load_config("configs/cpu_small.py", "float32", 21, ["diffusion.target=v"])


@pytest.mark.slow
def test_train_step_benchmark_reports_the_contract_keys_against_a_baseline(capsys):
    result = train_step.main(["--config=configs/test.py", "--batch=2", "--atoms=12",
                              "--repeats=1", "--fast_steps=12", "--baseline=HEAD"])  # fmt: skip
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1]) == result
    for figures in (result, result["baseline"]):
        assert set(train_step.FIGURES) <= set(figures)
        assert figures["train_step_s"] > 0 and figures["gflops_per_step"] > 0
        assert figures["device_peak_gib"] is None  # CPU
    assert result["baseline"]["package"] != result["package"]  # the baseline ran its own tree
    assert set(result["ratios"]) >= {"train_step_s", "denoiser_call_s", "peak_rss_gib"}


def test_bucket_plans_follow_the_loader_and_the_sampler():
    atoms = np.array([10, 11, 12, 17, 18, 19, 20, 25, 13, 21])
    # Training: the loader's epoch-0 batches, one padded size each, part-filled ones dropped.
    padded = buckets.train_plan(atoms, (29,), 2, steps=5)
    assert [n for n, _ in padded] == [29] * 5
    assert sorted(i for _, ix in padded for i in ix) == list(range(10))
    bucketed = buckets.train_plan(atoms, (12, 20, 29), 2, steps=3)
    for n, ix in bucketed:
        assert len(ix) == 2 and atoms[ix].max() <= n
        assert n == min(s for s in (12, 20, 29) if s >= atoms[ix].max())
    with pytest.raises(SystemExit, match="batches, < 9 steps"):
        buckets.train_plan(atoms, (12, 20, 29), 2, steps=9)
    # Sampling: every molecule once, batches full but the last (runner.size_batches).
    plan = buckets.sample_plan(atoms, (12, 20, 29), 2, count=-1)
    assert sorted(i for _, ix in plan for i in ix) == list(range(10))
    assert all(atoms[ix].max() <= n for n, ix in plan)
    assert [len(ix) for _, ix in plan] == [2] * 5
    assert sum(len(ix) for _, ix in buckets.sample_plan(atoms, (29,), 4, count=7)) == 7
    assert buckets.first_of_each_size([(12, "a"), (20, "b"), (12, "c")]) == {12: "a", 20: "b"}
    with pytest.raises(SystemExit):
        buckets.parse_args(["--buckets=12,x"])


@pytest.mark.slow
def test_buckets_benchmark_times_both_runs_on_real_molecules(capsys):
    result = buckets.main(["--config=configs/test.py", "--batch=2", "--buckets=18",
                           "--train_steps=2", "--fast_steps=2", "--sample_spectra=5"])  # fmt: skip
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1]) == result
    assert result["padded"]["sizes"] == [29] and result["bucketed"]["sizes"] == [18, 29]
    for run in ("padded", "bucketed"):
        assert result[run]["train_molecules"] == 4 and result[run]["sample_molecules"] == 5
        assert result[run]["train_s"] > 0 and result[run]["sample_s"] > 0
    assert set(result["padded"]["train_batches_per_size"]) == {"29"}
    assert {"train_29", "sample_29"} <= set(result["compile_s"])
    assert result["train_ratio"] > 0 and result["sample_ratio"] > 0


@pytest.mark.slow  # two train-step compilations (~35 s); scan_layers' values: remat_test
def test_memory_plan_compiles_the_train_step_and_scan_layers_shrinks_it(capsys):
    base = ["--config=configs/test.py", "--batch=4", "--atoms=14"]
    plain = memory_plan.main(base)
    assert json.loads(capsys.readouterr().out) == json.loads(json.dumps(plain))
    assert plain["temp_gib"] > 0 and plain["argument_gib"] > 0 and plain["gflops"] > 0
    scan = memory_plan.main(
        [*base, "--override=model.denoiser.scan_layers=true",
         "--override=model.autoencoder.scan_layers=true"]
    )  # fmt: skip
    assert scan["overrides"] == ["model.denoiser.scan_layers=true",
                                 "model.autoencoder.scan_layers=true"]  # fmt: skip
    assert scan["argument_gib"] == plain["argument_gib"]  # same train state
    assert scan["temp_gib"] < plain["temp_gib"]
