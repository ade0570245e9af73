"""Builds the three Linen modules from a config (the only code that reads ``config.model``).

Contract used by trainers and tools:

* ``create_models(config) -> {"classifier", "autoencoder", "denoiser"}`` Linen modules;
* ``init_for_testing(config, seed) -> {"encode", "decode", "denoise", "classify"}`` pure
  functions with randomly initialised parameters (deterministic mode, jitted; numpy or jax
  arrays in, jax arrays out). Shapes: ``B`` molecules, ``N`` atom slots, ``L`` spectrum
  tokens, ``F`` formula tokens:

  - ``encode(positions [B,N,3], atom_types [B,N] int, atom_mask [B,N], spectrum_tokens [B,L]
    int, formula_tokens [B,F] int) -> mu_x [B,N,3]``
  - ``decode(z_x [B,N,3], atom_types, atom_mask, spectrum_tokens, formula_tokens) ->
    positions [B,N,3]``
  - ``denoise(z_t [B,N,3], t [B] in [0,1], atom_types, atom_mask, spectrum_tokens,
    formula_tokens) -> eps [B,N,3]``
  - ``classify(spectrum_tokens, formula_tokens) -> logits [B, num_groups]``
"""

from collections.abc import Callable

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from irgeodiff_jax.models.autoencoder import Autoencoder
from irgeodiff_jax.models.denoiser import Denoiser
from irgeodiff_jax.models.spectral_encoder import SpectralClassifier

DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}


def _dtype(name: str):
    if name not in DTYPES:
        raise ValueError(f"config.model.dtype={name!r}; expected one of {sorted(DTYPES)}")
    return DTYPES[name]


def _check_data_consistency(config: ml_collections.ConfigDict) -> None:
    """The model vocabulary sizes must match ``config.data`` when it is present."""
    data = config.get("data")
    if data is None:
        return
    n_types = config.model.autoencoder.num_atom_types
    if "atom_types" in data and len(data.atom_types) != n_types:
        raise ValueError(
            f"config.model.autoencoder.num_atom_types={n_types} but config.data.atom_types has "
            f"{len(data.atom_types)} entries"
        )
    n_groups = config.model.spectral_encoder.num_groups
    if "num_fg" in data and data.num_fg != n_groups:
        raise ValueError(
            f"config.model.spectral_encoder.num_groups={n_groups} but config.data.num_fg="
            f"{data.num_fg}"
        )


def create_models(config: ml_collections.ConfigDict) -> dict[str, nn.Module]:
    """``{"classifier": SpectralClassifier, "autoencoder": Autoencoder, "denoiser": Denoiser}``.

    Raises:
      ValueError: on an unknown dtype or vocabulary sizes inconsistent with ``config.data``.
    """
    _check_data_consistency(config)
    model = config.model
    dtype = _dtype(model.dtype)
    enc, ae, den = model.spectral_encoder, model.autoencoder, model.denoiser
    classifier = SpectralClassifier(**enc.to_dict(), dtype=dtype)
    autoencoder = Autoencoder(
        num_atom_types=ae.num_atom_types,
        latent_h_dim=ae.latent_h_dim,
        attn_dim=ae.cross_attention.dim,
        attn_layers=ae.cross_attention.num_layers,
        attn_heads=ae.cross_attention.num_heads,
        attn_ff_dim=ae.cross_attention.ff_dim,
        attn_hidden_dim=ae.cross_attention.hidden_dim,
        hidden_dim=ae.hidden_dim,
        encoder_layers=ae.encoder_layers,
        decoder_layers=ae.decoder_layers,
        coords_range=ae.coords_range,
        kernel=ae.kernel,
        dropout_rate=ae.dropout_rate,
        dtype=dtype,
        scan_layers=ae.get("scan_layers", False),
    )
    denoiser = Denoiser(
        latent_h_dim=ae.latent_h_dim,
        hidden_dim=den.hidden_dim,
        num_layers=den.num_layers,
        coords_range=den.coords_range,
        kernel=den.kernel,
        atom_attn_dim=den.cross_attention.dim,
        atom_attn_layers=den.cross_attention.num_layers,
        atom_attn_heads=den.cross_attention.num_heads,
        atom_attn_ff_dim=den.cross_attention.ff_dim,
        atom_attn_hidden_dim=den.cross_attention.hidden_dim,
        edge_dim=den.edge.dim,
        edge_layers=den.edge.num_layers,
        edge_heads=den.edge.num_heads,
        edge_ff_dim=den.edge.ff_dim,
        edge_out_dim=den.edge.out_dim,
        edge_pairs=den.edge_pairs,
        dropout_rate=den.dropout_rate,
        dtype=dtype,
        remat=den.get("remat", False),  # configs saved before the switches existed lack them
        scan_layers=den.get("scan_layers", False),
        self_condition=den.get("self_condition", False),
    )
    return {"classifier": classifier, "autoencoder": autoencoder, "denoiser": denoiser}


def example_inputs(config: ml_collections.ConfigDict, batch: int = 1, num_atoms: int = 3):
    """Zero-valued model inputs of the configured shapes (for init and shape evaluation).

    Returns:
      dict with ``positions [B,N,3]``, ``atom_types [B,N]``, ``atom_mask [B,N]``,
      ``spectrum_tokens [B,L]``, ``formula_tokens [B,F]`` and ``t [B]``.
    """
    data = config.data
    return {
        "positions": jnp.zeros((batch, num_atoms, 3), jnp.float32),
        "atom_types": jnp.zeros((batch, num_atoms), jnp.int32),
        "atom_mask": jnp.ones((batch, num_atoms), jnp.float32),
        "spectrum_tokens": jnp.zeros((batch, data.spectrum_points), jnp.int32),
        "formula_tokens": jnp.ones((batch, data.formula_len), jnp.int32),
        "t": jnp.zeros((batch,), jnp.float32),
    }


def init_params(models: dict[str, nn.Module], config, key: jax.Array) -> dict:
    """Random float32 parameters ``{"classifier", "autoencoder", "denoiser"}`` (pure)."""
    x = example_inputs(config)
    k_cls, k_ae, k_den = jax.random.split(key, 3)
    cls_vars = models["classifier"].init(
        k_cls, x["spectrum_tokens"], x["formula_tokens"], deterministic=True
    )
    encoding = models["classifier"].apply(
        cls_vars,
        x["spectrum_tokens"],
        x["formula_tokens"],
        deterministic=True,
        method="encode",
    )
    ae_vars = models["autoencoder"].init(
        k_ae, x["positions"], x["atom_types"], x["atom_mask"], encoding, deterministic=True
    )
    z_h = jnp.zeros((*x["atom_mask"].shape, models["denoiser"].latent_h_dim), jnp.float32)
    den_vars = models["denoiser"].init(
        k_den,
        x["positions"],
        x["t"],
        z_h,
        x["atom_mask"],
        encoding,
        deterministic=True,
        method="forward",
    )
    return {
        "classifier": cls_vars["params"],
        "autoencoder": ae_vars["params"],
        "denoiser": den_vars["params"],
    }


def _pure_functions(models: dict[str, nn.Module], params: dict) -> dict[str, Callable]:
    """Deterministic, params-closed functions over numpy/jax inputs (jitted)."""
    cls, ae, den = models["classifier"], models["autoencoder"], models["denoiser"]

    def encoding_and_z_h(atom_types, atom_mask, spectrum_tokens, formula_tokens):
        enc = cls.apply(
            {"params": params["classifier"]},
            spectrum_tokens,
            formula_tokens,
            deterministic=True,
            method="encode",
        )
        z_h = ae.apply(
            {"params": params["autoencoder"]},
            atom_types,
            atom_mask,
            enc,
            deterministic=True,
            method="embed_atoms",
        )
        return enc, z_h

    def encode(positions, atom_types, atom_mask, spectrum_tokens, formula_tokens):
        _, z_h = encoding_and_z_h(atom_types, atom_mask, spectrum_tokens, formula_tokens)
        return ae.apply(
            {"params": params["autoencoder"]}, positions, z_h, atom_mask, method="encode"
        )

    def decode(z_x, atom_types, atom_mask, spectrum_tokens, formula_tokens):
        _, z_h = encoding_and_z_h(atom_types, atom_mask, spectrum_tokens, formula_tokens)
        return ae.apply({"params": params["autoencoder"]}, z_x, z_h, atom_mask, method="decode")

    def denoise(z_t, t, atom_types, atom_mask, spectrum_tokens, formula_tokens):
        enc, z_h = encoding_and_z_h(atom_types, atom_mask, spectrum_tokens, formula_tokens)
        return den.apply(
            {"params": params["denoiser"]},
            z_t,
            t,
            z_h,
            atom_mask,
            enc,
            deterministic=True,
            method="forward",
        )

    def classify(spectrum_tokens, formula_tokens):
        _, logits = cls.apply(
            {"params": params["classifier"]}, spectrum_tokens, formula_tokens, deterministic=True
        )
        return logits

    fns = {"encode": encode, "decode": decode, "denoise": denoise, "classify": classify}
    return {name: _numpy_friendly(jax.jit(fn)) for name, fn in fns.items()}


def _numpy_friendly(fn: Callable) -> Callable:
    """Casts numpy inputs to jax arrays with model dtypes (ints -> int32, floats -> float32)."""

    def cast(a):
        a = np.asarray(a) if not isinstance(a, jax.Array) else a
        if jnp.issubdtype(a.dtype, jnp.integer):
            return jnp.asarray(a, jnp.int32)
        return jnp.asarray(a, jnp.float32)

    def wrapped(*args):
        return fn(*(cast(a) for a in args))

    wrapped.__doc__ = fn.__doc__
    return wrapped


def init_for_testing(config: ml_collections.ConfigDict, seed: int) -> dict[str, Callable]:
    """Pure functions ``encode``, ``decode``, ``denoise``, ``classify`` with random parameters.

    Deterministic mode (no dropout); each function is jitted and accepts numpy or jax arrays
    (shapes in the module docstring; booleans and floats are accepted as masks).
    """
    models = create_models(config)
    key = jax.random.key(seed)
    init = jax.jit(lambda k: init_params(models, config, k)).lower(key)
    # Compiled at XLA's lowest backend optimisation level: init runs once, and its many
    # independent initialiser kernels take about twice as long to compile at the default level.
    params = init.compile(compiler_options={"xla_backend_optimization_level": 0})(key)
    return _pure_functions(models, params)
