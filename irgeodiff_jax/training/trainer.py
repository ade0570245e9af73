"""``train_and_evaluate(config, workdir)``: the three training stages over a device mesh.

``workdir`` holds ``config.json`` and, per stage (``classifier``, ``autoencoder``, ``diffusion``;
``config.stage = "all"`` runs the three in order), ``checkpoints/<step>/``, ``metrics.jsonl``
and ``tb/``. Each stage: (1) the GLOBAL batch ``training.<stage>.batch_size`` must divide by
the device count; each host loads only its ``batch // process_count`` slice; (2) restore-or-
init: the newest readable checkpoint of ``workdir/<stage>`` (train state with EMA and optimiser
state, root key, data-iterator position), else fresh parameters overlaid with ``init_from``'s
(matching leaves of ``init_from_modules``) and then with the previous stage's final parameters
(``training.transfer``: EMA or raw); (3) one ``jit``-compiled step, state replicated and
donated, batch sharded on ``data``; (4) checkpoints every ``checkpoint_every_steps`` and at the
end, evaluation (EMA parameters, validation split) every ``eval_every_steps`` and at the end,
metrics to JSONL/TensorBoard and a tqdm bar (steps/s, ETA) on process 0. A non-finite loss term
raises ``NonFiniteLossError`` naming stage, step and term (nothing saved). SIGTERM saves the
current step and ends cleanly (``StageResult.preempted``). Re-running the command resumes.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import time

import jax
import ml_collections
import numpy as np
import tqdm
from absl import logging

from irgeodiff_jax.data import input_pipeline
from irgeodiff_jax.models import factory
from irgeodiff_jax.training import checkpointing, latent_scale, metrics, preemption, sharding, step
from irgeodiff_jax.training import workdir as workdirs

EVAL_KEY_SALT = 0x7FFFFFFF


class NonFiniteLossError(FloatingPointError):
    """A loss term (or the gradient) became NaN/inf during training."""


class ConfigError(ValueError):
    """An inconsistent training config."""


@dataclasses.dataclass
class StageResult:
    """What a stage did: ``final_step``, ``num_steps``, last ``train``/``eval`` metrics."""

    stage: str
    final_step: int
    num_steps: int
    preempted: bool = False
    train: dict = dataclasses.field(default_factory=dict)
    eval: dict = dataclasses.field(default_factory=dict)
    steps_per_sec: float = float("nan")


@dataclasses.dataclass
class _Run:
    """Everything a stage loop needs (built by ``_setup_stage``)."""

    stage: str
    config: ml_collections.ConfigDict
    mesh: jax.sharding.Mesh
    local_batch: int
    iterator: input_pipeline.BatchIterator
    num_steps: int
    state: object
    root_key: jax.Array
    train_step: object
    eval_step: object
    manager: object
    writer: metrics.MetricWriter
    hooks: tuple = ()


def stages_to_run(config) -> tuple[str, ...]:
    return step.STAGES if config.stage == "all" else (step.check_stage(config.stage),)


def train_and_evaluate(
    config: ml_collections.ConfigDict, workdir: str, hooks: tuple = ()
) -> dict[str, StageResult]:
    """Runs ``config.stage`` (or all three stages) in ``workdir``; returns results per stage.

    Stops after a preempted stage (SIGTERM) without starting the next one. ``hooks``: objects
    with ``after_eval(stage, step, ema_params, writer, final=...)`` (called after every
    evaluation) and ``end_stage(stage, writer)``, e.g. ``sampling.sample_check.SampleCheck``.
    """
    workdir = os.path.abspath(workdir)
    os.makedirs(workdir, exist_ok=True)
    if jax.process_index() == 0:
        with open(os.path.join(workdir, workdirs.CONFIG_FILE), "w") as f:
            f.write(config.to_json_best_effort(indent=2))
    results = {}
    for stage in stages_to_run(config):
        results[stage] = train_stage(config, workdir, stage, hooks)
        if results[stage].preempted:
            break
    return results


def setup_mesh(config, stage: str) -> tuple[jax.sharding.Mesh, int]:
    """The ``data`` mesh and the per-host batch (raises ShardingError if indivisible)."""
    n = int(config.mesh.data)
    mesh = sharding.make_mesh(None if n == -1 else n)
    global_batch = int(config.training[stage].batch_size)
    return mesh, sharding.check_batch_size(global_batch, mesh)


def stage_seed(config, stage: str) -> int:
    return int(config.seed) * 1000 + step.STAGES.index(stage)


def stage_data(config, stage: str):
    """``config.data`` for ``stage``: the classifier reads no atoms, so its batches keep one
    padded size (size buckets would only add compilations)."""
    if stage != "classifier" or not config.data.get("buckets", ()):
        return config.data
    data = config.data.copy_and_resolve_references()
    data.buckets = ()
    return data


def setup_data(config, stage: str, local_batch: int) -> input_pipeline.BatchIterator:
    return input_pipeline.make_batch_iterator(
        stage_data(config, stage),
        "train",
        batch_size=local_batch,
        seed=stage_seed(config, stage),
        process_index=jax.process_index(),
        process_count=jax.process_count(),
    )


def num_train_steps(config, stage: str, batches_per_epoch: int) -> int:
    """``training.<stage>.num_steps`` or ``training.num_steps`` or epochs × batches."""
    for budget in (config.training[stage].num_steps, config.training.num_steps):
        if budget is not None:
            if int(budget) < 1:
                raise ConfigError(f"stage {stage}: num_steps must be >= 1, got {budget}")
            return int(budget)
    return int(config.training[stage].num_epochs) * int(batches_per_epoch)


def initial_params(models, config, workdir: str, stage: str, key) -> dict:
    """Fresh parameters, overlaid by ``config.init_from`` and then by the previous stage."""
    params = jax.jit(lambda k: factory.init_params(models, config, k))(key)
    params = {m: params[m] for m in step.STAGE_MODULES[stage]}
    if config.get("init_from"):
        src = workdirs.load_for_inference(config.init_from)
        params = workdirs.overlay_params(
            params, src.params, config.init_from_modules, exact=False,
            what=f"init_from {config.init_from} ({src.stage} step {src.step})",
        )  # fmt: skip
    earlier = step.STAGES[: step.STAGES.index(stage)]
    present = [s for s in workdirs.stages_with_checkpoints(workdir) if s in earlier]
    if present:
        use_ema = config.training.transfer == "ema"
        prev = workdirs.load_for_inference(workdir, stage=present[-1], use_ema=use_ema)
        what = f"stage {stage} from {prev.stage} step {prev.step}"
        params = workdirs.overlay_params(params, prev.params, prev.params, exact=True, what=what)
    elif earlier:
        logging.warning("stage %s: no earlier stage in %s; starting from scratch", stage, workdir)
    if stage == "diffusion" and config.diffusion.get("normalize_latents", False):
        params = _with_latent_scale(models, config, params)
    return params


def _with_latent_scale(models, config, params: dict) -> dict:
    """``params`` with the autoencoder's ``latent_scale`` estimated on training batches."""
    _, local_batch = setup_mesh(config, "diffusion")
    it = setup_data(config, "diffusion", local_batch)
    count = min(int(config.diffusion.get("latent_scale_batches", 32)), it.batches_per_epoch)
    batches = [step.device_batch(next(it)) for _ in range(count)]
    unit = {**params, "autoencoder": {**params["autoencoder"], "latent_scale": np.float32(1.0)}}
    scale = latent_scale.estimate_latent_scale(step.make_chain(models, config), unit, batches)
    logging.info("stage diffusion: latent scale %.4f (from %d training batches)", scale, count)
    return {**params, "autoencoder": {**params["autoencoder"], "latent_scale": np.float32(scale)}}


def with_decay_steps(config, stage: str, num_steps: int):
    """``config``, or a copy whose ``warmup_cosine`` schedule without ``decay_steps`` decays to
    zero over the stage's step budget (resuming with a larger budget stretches the decay)."""
    opt = config.optimizer[stage]
    if opt.get("schedule") != "warmup_cosine" or int(opt.get("decay_steps", 0)) > 0:
        return config
    config = config.copy_and_resolve_references()
    with config.unlocked():
        config.optimizer[stage].decay_steps = int(num_steps)
    return config


def setup_state(models, config, workdir: str, stage: str, mesh, manager):
    """Restore-or-init: ``(state, root_key, data_state | None)``."""
    repl = sharding.replicated(mesh)
    impl = config.training.get("prng_impl", "threefry2x32")
    root = jax.random.fold_in(jax.random.key(int(config.seed), impl=impl), step.STAGES.index(stage))
    abstract = step.abstract_checkpoint(models, config, stage, sharding=repl)
    restored = checkpointing.restore_latest(manager, abstract)
    if restored:
        ckpt_step, tree, extra = restored
        logging.info("stage %s: resuming from checkpoint step %d", stage, ckpt_step)
        root = jax.random.wrap_key_data(np.asarray(tree[step.RNG]), impl=impl)
        return tree[step.TRAIN_STATE], root, extra.get("data")
    params = initial_params(models, config, workdir, stage, jax.random.fold_in(root, 1))
    create = jax.jit(
        lambda p: step.create_train_state(models, config, stage, p), out_shardings=repl
    )
    return create(params), root, None


def _setup_stage(config, workdir: str, stage: str) -> _Run:
    mesh, local_batch = setup_mesh(config, stage)
    iterator = setup_data(config, stage, local_batch)
    num_steps = num_train_steps(config, stage, iterator.batches_per_epoch)
    config = with_decay_steps(config, stage, num_steps)
    models = factory.create_models(config)
    manager = checkpointing.make_manager(
        workdirs.checkpoint_dir(workdir, stage),
        max_to_keep=int(config.training.keep_checkpoints),
        async_save=bool(config.training.async_checkpointing),
    )
    state, root_key, data_state = setup_state(models, config, workdir, stage, mesh, manager)
    if data_state is not None:
        try:
            iterator.set_state(data_state)
        except input_pipeline.IteratorStateError as e:
            raise input_pipeline.IteratorStateError(f"stage {stage} in {workdir}: {e}") from None
    train_step, eval_step = sharding.make_jitted_steps(models, config, stage, mesh)
    writer = metrics.MetricWriter(os.path.join(workdir, stage), enabled=jax.process_index() == 0)
    root_key = jax.device_put(root_key, sharding.replicated(mesh))
    return _Run(
        stage, config, mesh, local_batch, iterator, num_steps, state, root_key, train_step,
        eval_step, manager, writer,
    )  # fmt: skip


def save_checkpoint(run: _Run, step_: int, state) -> None:
    extra = {
        "stage": run.stage,
        "data": run.iterator.get_state(),
        "config": json.loads(run.config.to_json_best_effort()),
    }
    tree = {step.TRAIN_STATE: state, step.RNG: jax.random.key_data(run.root_key)}
    checkpointing.save(run.manager, step_, tree, extra)


def evaluate(run: _Run, params) -> dict[str, float]:
    """Validation metrics of ``params`` (EMA) over ``num_eval_batches`` (None: the split)."""
    try:
        it = input_pipeline.make_batch_iterator(
            stage_data(run.config, run.stage), "validation", batch_size=run.local_batch, seed=0,
            process_index=jax.process_index(), process_count=jax.process_count(),
            shuffle=False, drop_remainder=False, num_epochs=1,
        )  # fmt: skip
    except ValueError as e:  # an empty validation split
        logging.warning("stage %s: no evaluation (%s)", run.stage, str(e).splitlines()[0])
        return {}
    key = jax.random.fold_in(run.root_key, EVAL_KEY_SALT)
    limit, totals = run.config.training.num_eval_batches, {}
    for i, batch in enumerate(it):
        if limit is not None and i >= int(limit):
            break
        sums = jax.device_get(
            run.eval_step(params, sharding.shard_batch(step.device_batch(batch), run.mesh), key)
        )
        totals = {k: totals.get(k, 0.0) + float(v) for k, v in sums.items()}
    return step.summarize_eval(totals, run.stage) if totals else {}


def check_finite(run: _Run, step_: int, values: dict) -> None:
    """Raises NonFiniteLossError for the first non-finite loss term (then loss, grad norm)."""
    for term in (*step.LOSS_TERMS[run.stage], "loss", "grad_norm"):
        if term in values and not math.isfinite(values[term]):
            last = run.manager.latest_step()
            raise NonFiniteLossError(
                f"stage {run.stage}: non-finite {term} ({values[term]}) at step {step_}; "
                f"nothing saved, last checkpoint: {last if last is not None else 'none'}"
            )


class _Logger:
    """Averages train metrics over each log interval; smoothed loss; steps/s."""

    def __init__(self, run: _Run, start: int):
        self.run, self.sums, self.count = run, {}, 0
        self.loss_ema, self.t0, self.s0, self.rate = None, None, start, float("nan")

    def add(self, step_: int, values: dict) -> None:
        self.sums = {k: self.sums.get(k, 0.0) + v for k, v in values.items()}
        self.count += 1
        loss, prev = values["loss"], self.loss_ema
        self.loss_ema = loss if prev is None else 0.98 * prev + 0.02 * loss
        if self.t0 is None:  # start timing after the first (compiling) step
            self.t0, self.s0 = time.perf_counter(), step_

    def flush(self, step_: int) -> dict:
        means = {f"train/{k}": v / max(self.count, 1) for k, v in self.sums.items()}
        means["train/loss_ema"] = self.loss_ema
        if self.t0 is not None and step_ > self.s0:
            self.rate = (step_ - self.s0) / (time.perf_counter() - self.t0)
            means["train/steps_per_sec"] = self.rate
        self.run.writer.write(step_, means, stage=self.run.stage)
        self.sums, self.count = {}, 0
        return means


def _finish(run: _Run, state, step_: int, *, save: bool) -> None:
    if save and run.manager.latest_step() != step_:
        save_checkpoint(run, step_, state)
    run.manager.wait_until_finished()
    run.manager.close()
    run.writer.close()


def _run_eval(run: _Run, state, step_: int, result: StageResult) -> None:
    result.eval = evaluate(run, state.ema_params)
    if result.eval:
        run.writer.write(step_, {f"eval/{k}": v for k, v in result.eval.items()}, run.stage)
        logging.info("stage %s step %d eval: %s", run.stage, step_, result.eval)
    for hook in run.hooks:
        hook.after_eval(run.stage, step_, state.ema_params, run.writer,
                        final=step_ == run.num_steps)  # fmt: skip


def train_stage(config, workdir: str, stage: str, hooks: tuple = ()) -> StageResult:
    """Trains one stage to its step budget (resuming if ``workdir/<stage>`` has checkpoints)."""
    run = _setup_stage(config, workdir, stage)
    run.hooks = tuple(hooks)
    state, start = run.state, int(jax.device_get(run.state.step))
    run.state = None  # the loop owns (and donates) the state
    result = StageResult(stage, start, run.num_steps)
    if start >= run.num_steps:
        logging.info("stage %s: already complete (step %d)", stage, start)
        return _finish(run, state, start, save=False) or result
    bar = tqdm.tqdm(
        total=run.num_steps, initial=start, desc=stage, dynamic_ncols=True, mininterval=1.0,
        disable=not (config.training.progress_bar and jax.process_index() == 0),
    )  # fmt: skip
    try:
        with preemption.SigtermFlag() as sigterm:
            state = _loop(run, state, start, result, bar, sigterm)
    except BaseException:
        run.manager.wait_until_finished()
        run.writer.close()
        raise
    finally:
        bar.close()
    for hook in run.hooks:
        hook.end_stage(stage, run.writer)
    _finish(run, state, result.final_step, save=True)
    return result


def _loop(run: _Run, state, start: int, result: StageResult, bar, sigterm: preemption.SigtermFlag):
    """Steps ``start + 1 … num_steps``. Metrics of step k are read after step k + 1 is
    dispatched, except before a checkpoint, an evaluation or a preemption exit."""
    tc, logger, pending = run.config.training, _Logger(run, start), None
    for k in range(start + 1, run.num_steps + 1):
        batch = sharding.shard_batch(step.device_batch(next(run.iterator)), run.mesh)
        state, out = run.train_step(state, batch, run.root_key)
        if pending is not None:
            _after_step(run, logger, bar, result, *pending)
        pending = (k, out)
        stop = sigterm.agreed(k, int(tc.preemption_check_every_steps))
        ckpt = k % int(tc.checkpoint_every_steps) == 0 or k == run.num_steps
        ev = k % int(tc.eval_every_steps) == 0 or k == run.num_steps
        if stop or ckpt or ev:
            _after_step(run, logger, bar, result, *pending)
            pending = None
        result.final_step = k
        if ckpt or stop:
            save_checkpoint(run, k, state)
        if ev:
            _run_eval(run, state, k, result)
        if stop:
            logging.warning("stage %s: SIGTERM: saved step %d; exiting", run.stage, k)
            result.preempted = True
            break
    result.steps_per_sec = logger.rate
    return state


def _after_step(run: _Run, logger: _Logger, bar, result: StageResult, k: int, out) -> None:
    values = {name: float(v) for name, v in jax.device_get(out).items()}
    check_finite(run, k, values)
    logger.add(k, values)
    bar.update(1)
    if k % int(run.config.training.log_every_steps) == 0 or k == run.num_steps:
        result.train = logger.flush(k)
        bar.set_postfix(loss=f"{values['loss']:.4g}", refresh=False)
