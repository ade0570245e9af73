"""Shared config pieces: ``parse_arg`` and the data/model groups used by every config file.

Config files call ``parse_arg(arg, stage=..., size=...)`` on the string after the colon of
``--config=configs/qm9s.py:stage=autoencoder,size=small`` (big_vision convention) and assemble
``config.data`` and ``config.model`` from ``data_config()`` and ``model_config(size)``; the
training sections (``training``, ``optimizer``, ``diffusion``, ...) come from ``configs/recipe.py``.
``irgeodiff_jax.models.factory.create_models`` is the only code that reads ``config.model``.
"""

import ml_collections

# Model sizes. "base" is the paper / reference code (QM9S); "small" is a cheaper option of our
# own (not from the paper); "tiny" is for tests and CI (forward+backward well under a second).
SIZES = ("base", "small", "tiny")

_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")


def _coerce(key: str, text: str, default):
    """Converts ``text`` to the type of ``default`` (bool, int, float or str)."""
    if isinstance(default, bool):
        if text.lower() not in _TRUE + _FALSE:
            raise ValueError(f"config arg {key}={text!r} is not a boolean")
        return text.lower() in _TRUE
    if isinstance(default, int | float):
        try:
            return type(default)(text)
        except ValueError:
            raise ValueError(
                f"config arg {key}={text!r} is not a {type(default).__name__}"
            ) from None
    return text


def parse_arg(arg: str | None, **defaults) -> ml_collections.ConfigDict:
    """Parses ``"key=value,key=value"`` into a ConfigDict over ``defaults``.

    Values take the type of their default. Example:
    ``parse_arg("stage=autoencoder,size=small", stage="all", size="base")`` ->
    ``{"stage": "autoencoder", "size": "small"}``.

    Raises:
      ValueError: on an unknown key, an item without ``=``, or a value of the wrong type.
    """
    parsed = dict(defaults)
    for item in (arg or "").split(","):
        item = item.strip()
        if not item:
            continue
        key, sep, text = item.partition("=")
        key = key.strip()
        if not sep:
            raise ValueError(f"config arg {item!r} is not of the form key=value")
        if key not in defaults:
            raise ValueError(f"unknown config arg {key!r}; known: {sorted(defaults)}")
        parsed[key] = _coerce(key, text.strip(), defaults[key])
    return ml_collections.ConfigDict(parsed)


def data_config() -> ml_collections.ConfigDict:
    """QM9S data basics (method.md §2, §9)."""
    data = ml_collections.ConfigDict()
    data.max_atoms = 29  # largest QM9 molecule (with hydrogens); batches are padded to this
    data.atom_types = (1, 6, 7, 8, 9)  # atomic numbers of the type vocabulary: H, C, N, O, F
    data.spectrum_points = 3200  # 500-4000 cm^-1 grid, integer tokens 0..99
    data.formula_len = 16  # padded length of the formula token sequence
    data.num_fg = 20  # functional groups (QM9S SMARTS table)
    data.blank_spectra = False  # ablation: zero spectra (same formulas, atom types, geometries)
    return data


def _transformer(dim: int, heads: int, ff: int, layers: int) -> dict:
    return {"dim": dim, "num_heads": heads, "ff_dim": ff, "num_layers": layers}


def _sizes(size: str) -> dict:
    """Width/depth table: attention, EGNN and spectral-embedding sizes per model size."""
    if size == "base":
        return {
            "attn": _transformer(512, 8, 2048, 4),
            "head_hidden": 256,
            "embedding": "token_attention",
            "egnn_hidden": 256,
            "encoder_layers": 1,
            "decoder_layers": 9,
            "denoiser_layers": 9,
        }
    if size == "small":
        return {
            "attn": _transformer(256, 8, 1024, 3),
            "head_hidden": 128,
            "embedding": "float_linear",
            "egnn_hidden": 128,
            "encoder_layers": 1,
            "decoder_layers": 6,
            "denoiser_layers": 6,
        }
    if size == "tiny":
        return {
            "attn": _transformer(32, 2, 64, 1),
            "head_hidden": 32,
            "embedding": "float_linear",
            "egnn_hidden": 32,
            "encoder_layers": 1,
            "decoder_layers": 2,
            "denoiser_layers": 2,
        }
    raise ValueError(f"unknown model size {size!r}; expected one of {SIZES}")


def model_config(size: str = "base") -> ml_collections.ConfigDict:
    """``config.model`` for a size in ``SIZES`` (``base`` = paper sizes, method.md §2–§5)."""
    s = _sizes(size)
    attn = s["attn"]
    model = ml_collections.ConfigDict()
    model.dtype = "float32"  # computation dtype: "float32" or "bfloat16" (params stay float32)
    model.spectral_encoder = ml_collections.ConfigDict(
        {
            "num_groups": 20,
            "dim": attn["dim"],
            "num_heads": attn["num_heads"],
            "ff_dim": attn["ff_dim"],
            "num_encoder_layers": attn["num_layers"],
            "num_decoder_layers": attn["num_layers"],
            "patch_size": 64,
            "spectrum_levels": 100,
            "formula_vocab": 26,
            "embedding": s["embedding"],
            "dropout_rate": 0.1,
        }
    )
    cross_attention = ml_collections.ConfigDict({**attn, "hidden_dim": s["head_hidden"]})
    egnn = {"hidden_dim": s["egnn_hidden"], "coords_range": 15.0, "kernel": "dense"}
    model.autoencoder = ml_collections.ConfigDict(
        {
            "num_atom_types": 5,
            "latent_h_dim": 16,
            "cross_attention": cross_attention,
            **egnn,
            "encoder_layers": s["encoder_layers"],
            "decoder_layers": s["decoder_layers"],
            "dropout_rate": 0.1,
            # Memory switch: EGNN blocks as a rematerialised loop (lax.scan).
            "scan_layers": False,
        }
    )
    model.denoiser = ml_collections.ConfigDict(
        {
            "cross_attention": cross_attention.copy_and_resolve_references(),
            "edge": ml_collections.ConfigDict({**attn, "out_dim": 16}),
            **egnn,
            "num_layers": s["denoiser_layers"],
            # Optimisation switch: "unordered" = N(N-1)/2 pairs (exact), "ordered" = all N^2.
            "edge_pairs": "unordered",
            "dropout_rate": 0.1,
            # Memory switch: recompute EGNN-block and edge-layer activations in the backward pass.
            "remat": False,
            # Memory switch: EGNN blocks and edge layers as rematerialised loops (lax.scan).
            "scan_layers": False,
            # Learning option (not the paper): read the previous clean-latent estimate.
            "self_condition": False,
        }
    )
    return model
