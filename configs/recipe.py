"""The training recipe shared by every config: ``stage``, ``training``, ``optimizer``, ``mesh``,
``diffusion``, ``loss``, and the data-source fields.

Not a runnable config by itself: ``configs/qm9s.py``, ``configs/qme14s.py``,
``configs/cpu_small.py`` and ``configs/test.py`` call these functions and override what differs.

Fields (all overridable from the command line, e.g. ``--config.training.num_steps=200``):

``config.stage``: ``"classifier"`` | ``"autoencoder"`` | ``"diffusion"`` | ``"all"`` (the three in
    order). Each stage trains in ``workdir/<stage>/``.
``config.seed`` (set by the dataset config): root PRNG key and data order.
``config.init_from``: another run's workdir whose final EMA parameters initialise the modules in
    ``config.init_from_modules`` (leaves whose path and shape match; the rest stay freshly
    initialised), e.g. QMe14S fine-tuning from a QM9S run. None: no such initialisation.
``config.training``:
    ``num_steps`` (step budget applied to EVERY stage;
    None: ``num_epochs × batches_per_epoch``), ``log_every_steps``, ``eval_every_steps``,
    ``checkpoint_every_steps``, ``keep_checkpoints`` (keep-last-k), ``async_checkpointing``,
    ``num_eval_batches`` (None: the whole validation split), ``transfer`` (``"ema"`` or
    ``"params"``: which parameters of the previous stage start the next one),
    ``progress_bar``, ``preemption_check_every_steps`` (multi-host SIGTERM agreement interval),
    ``prng_impl`` (``"threefry2x32"``: shardable, identical on every backend; ``"rbg"``:
    compiles dropout ~2× faster on CPU, identical across shardings but not across backends),
    and one group per stage, ``training.<stage>.{batch_size (GLOBAL), num_epochs, num_steps,
    microbatches}`` (``num_steps`` there overrides ``training.num_steps`` for that stage only;
    ``microbatches`` splits each train step's batch into that many chunks whose gradients are
    summed: the same update, less memory, faster on CPUs; the batch must divide by it).
``config.optimizer.<stage>``: the fields of ``training.optim.make_optimizer`` plus ``ema_rate``.
``config.mesh.data``: number of devices on the ``data`` axis (-1: all devices).
``config.diffusion``: ``schedule`` ("polynomial_2"), ``num_steps`` (T = 1000), ``precision``,
    and the learning-efficiency options (``diffusion()``); ``config.loss``: ``kl_weight``,
    ``latent_noise`` (``loss()``).
Compute dtype (bf16 on accelerators) is ``config.model.dtype`` ("float32" | "bfloat16").
"""

import ml_collections
from ml_collections import config_dict

STAGES = ("classifier", "autoencoder", "diffusion")


def stage_training(batch_size: int, num_epochs: int) -> ml_collections.ConfigDict:
    """``config.training.<stage>``: global batch size, epochs, optional step budget."""
    return ml_collections.ConfigDict(
        {
            "batch_size": batch_size,
            "num_epochs": num_epochs,
            "num_steps": config_dict.placeholder(int),
            "microbatches": 1,
        }
    )


def training(batch_sizes=(256, 128, 64), num_epochs=(100, 300, 1000)) -> ml_collections.ConfigDict:
    """``config.training`` with the paper's per-stage batch sizes and epochs by default."""
    cfg = ml_collections.ConfigDict(
        {
            "num_steps": config_dict.placeholder(int),
            "log_every_steps": 100,
            "eval_every_steps": 2000,
            "checkpoint_every_steps": 2000,
            "keep_checkpoints": 3,
            "async_checkpointing": True,
            "num_eval_batches": config_dict.placeholder(int),
            "transfer": "ema",
            "progress_bar": True,
            "preemption_check_every_steps": 10,
            "prng_impl": "threefry2x32",
            # Diffusion only: sample validation spectra and score them in a side process
            # (irgeodiff_jax/sampling/sample_check.py); every_steps 0 = off.
            "sample_check": {
                "every_steps": 0,
                "num_spectra": 16,
                "samples": 4,
                "sampler_steps": 50,
                "timeout_s": 60.0,
            },
        }
    )
    for stage, batch, epochs in zip(STAGES, batch_sizes, num_epochs, strict=True):
        cfg[stage] = stage_training(batch, epochs)
    return cfg


def _noam_adam(name, learning_rate, warmup_steps, ema_rate, **fields):
    """Adam-family optimiser group with the Noam schedule (d = 512) and adaptive clipping."""
    base = {
        "name": name,
        "learning_rate": learning_rate,
        "warmup_steps": warmup_steps,
        "model_dim": 512,
        "b1": 0.9,
        "b2": 0.999,
        "eps": 1e-8,
        "weight_decay": 0.0,
        "amsgrad": False,
        "grad_clip": "adaptive",
        "schedule": "noam",  # or "warmup_constant" / "warmup_cosine" (learning_rate = peak)
        "decay_steps": 0,  # warmup_cosine: rate zero at this update (0: the stage's budget)
        "ema_rate": ema_rate,
    }
    return ml_collections.ConfigDict({**base, **fields})


def classifier_optimizer(learning_rate=0.8, warmup_steps=1000, ema_rate=0.999):
    """Stage 1 (τθ, BCE): Adam β = (0.9, 0.98), ε = 1e-9, Noam (d = 512)."""
    return _noam_adam("adam", learning_rate, warmup_steps, ema_rate, b2=0.98, eps=1e-9)


def autoencoder_optimizer(learning_rate=0.1, warmup_steps=3000, ema_rate=0.999):
    """Stage 2 (AE + L_cls): AdamW (PyTorch defaults β = (0.9, 0.999), ε = 1e-8, wd 0.01)."""
    return _noam_adam("adamw", learning_rate, warmup_steps, ema_rate, weight_decay=0.01)


def diffusion_optimizer(learning_rate=0.2, warmup_steps=3000, ema_rate=0.999):
    """Stage 3 (L_LDM + decoder reconstruction): AdamW AMSGrad, weight decay 1e-12."""
    return _noam_adam(
        "adamw", learning_rate, warmup_steps, ema_rate, weight_decay=1e-12, amsgrad=True
    )


def optimizer() -> ml_collections.ConfigDict:
    """``config.optimizer`` with one paper-setting group per stage."""
    return ml_collections.ConfigDict(
        {
            "classifier": classifier_optimizer(),
            "autoencoder": autoencoder_optimizer(),
            "diffusion": diffusion_optimizer(),
        }
    )


def diffusion() -> ml_collections.ConfigDict:
    """``config.diffusion``: noise schedule, T and precision (method.md §6), and the learning-
    efficiency options, all off by default (the paper's recipe):

    ``target`` ("eps" | "x0" | "v": what the denoiser network predicts), ``timestep_power``
    (training times ``round(T·u^p)``; 1 = uniform), ``min_snr_gamma`` (0 = unweighted loss),
    ``atom_weighting`` ("molecule": molecules weigh alike; "atom": atoms do, see
    ``training/losses.py``),
    ``normalize_latents`` (divide the latent by the std of ``mu_x``, estimated on
    ``latent_scale_batches`` training batches when the diffusion stage starts), ``fixed_latents``
    (freeze the atom embedding in the diffusion stage and take the latent target without
    dropout, so each molecule's latent is fixed; see ``training/losses.py``),
    ``frozen_autoencoder`` (fixed latents, and the whole autoencoder frozen: the denoiser reads
    the dropout-free atom features and the decoder's reconstruction term leaves the loss, so a
    step runs no backward pass through the autoencoder and skips its decoder; evaluation still
    reports ``recon``), ``condition_dropout`` (the probability that a training molecule's
    denoiser sees the null spectral condition, its spectral tokens zeroed; 0 = the paper; above
    0 the samplers can use classifier-free guidance, ``sample --guidance``).
    """
    return ml_collections.ConfigDict(
        {
            "schedule": "polynomial_2",
            "num_steps": 1000,
            "precision": 1e-5,
            "target": "eps",
            "timestep_power": 1.0,
            "min_snr_gamma": 0.0,
            "atom_weighting": "molecule",
            "normalize_latents": False,
            "latent_scale_batches": 32,
            "fixed_latents": False,
            "frozen_autoencoder": False,
            "condition_dropout": 0.0,
        }
    )


def loss() -> ml_collections.ConfigDict:
    """``config.loss``: ``kl_weight`` of the autoencoder's latent term (paper 0.01) and
    ``latent_noise``, the std of zero-CoM noise added to ``mu_x`` before decoding in training
    (0 = the paper; > 0 teaches the decoder to tolerate the sampler's latent error)."""
    return ml_collections.ConfigDict({"kl_weight": 0.01, "latent_noise": 0.0})


def mesh() -> ml_collections.ConfigDict:
    """``config.mesh``: ``data`` = devices on the data axis (-1 = all)."""
    return ml_collections.ConfigDict({"data": -1})


def add_data_source(data: ml_collections.ConfigDict, source: str = "embedded") -> None:
    """Adds the loader's source fields to ``config.data`` (``irgeodiff_jax.data.sources``).

    ``source``: ``"embedded"`` or a release name (``"qm9_ir"``, ``"qm9s"``, ``"qme14s"``) read
    from ``data_dir`` (a built tfds directory; unset: the embedded subset is used, and logged);
    ``embedded_dir``: another embedded-format directory (tests); ``buckets``: extra padded sizes
    below ``max_atoms`` (one compilation each); ``num_threads``: loader threads.
    """
    data.source = source
    data.data_dir = config_dict.placeholder(str)
    data.embedded_dir = config_dict.placeholder(str)
    data.buckets = ()
    data.num_threads = 0


def add_training_sections(config: ml_collections.ConfigDict, stage: str) -> None:
    """Adds ``stage``, ``init_from``, ``init_from_modules``, ``training``, ``optimizer``, ``mesh``
    and (unless present) ``diffusion``.

    Raises:
        ValueError: for an unknown stage name.
    """
    if stage not in (*STAGES, "all"):
        raise ValueError(f"stage={stage!r}; expected one of {(*STAGES, 'all')}")
    config.stage = stage
    config.init_from = config_dict.placeholder(str)
    config.init_from_modules = ("autoencoder", "denoiser")
    config.training = training()
    config.optimizer = optimizer()
    config.mesh = mesh()
    config.loss = loss()
    if "diffusion" not in config:
        config.diffusion = diffusion()
