"""Tests for irgeodiff_jax.models.spectral_encoder (small dims: dim 32, 4 heads, ff 64).

Init and dropout keys use the "rbg" PRNG implementation: it compiles several times faster than
threefry on CPU, which keeps these tests fast; the model code is agnostic to the key type.
"""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from irgeodiff_jax.models.spectral_encoder import (
    SpectralClassifier,
    SpectralEncoding,
    TokenAttentionPatchEmbed,
)

SMALL = dict(dim=32, num_heads=4, ff_dim=64, num_encoder_layers=1, num_decoder_layers=1)


def _rbg(seed):
    return jax.random.key(seed, impl="rbg")


def _tokens(seed, batch, length, num_formula, levels=100, vocab=26):
    ks, kf, kn = jax.random.split(jax.random.key(seed), 3)
    spectrum = jax.random.randint(ks, (batch, length), 0, levels)
    formula = jax.random.randint(kf, (batch, num_formula), 1, vocab)
    real = jax.random.randint(kn, (batch, 1), 1, num_formula + 1)
    formula = jnp.where(jnp.arange(num_formula)[None] < real, formula, 0)
    return spectrum, formula


def _check_outputs(encoding, logits, formula, dtype, num_patches, groups, dim=32):
    batch, num_formula = formula.shape
    assert isinstance(encoding, SpectralEncoding)
    chex.assert_shape(encoding.tokens, (batch, num_patches + num_formula, dim))
    chex.assert_shape(encoding.mask, (batch, num_patches + num_formula))
    chex.assert_shape(logits, (batch, groups))
    assert encoding.tokens.dtype == dtype and logits.dtype == dtype
    assert encoding.mask.dtype == jnp.bool_
    chex.assert_tree_all_finite((encoding.tokens, logits))
    np.testing.assert_array_equal(encoding.mask[:, :num_patches], True)
    np.testing.assert_array_equal(encoding.mask[:, num_patches:], formula != 0)


class ClassifierSetup:
    """A small token-attention classifier (L=256, patch 64, F=5, B=2, 20 groups) with params.

    ``forward`` is jitted and may trace only once (it is only called with the base shapes).
    """

    def __init__(self):
        self.model = SpectralClassifier(patch_size=64, **SMALL)
        self.spectrum, self.formula = _tokens(1, 2, 256, 5)
        self.params = jax.jit(
            lambda r: self.model.init(r, self.spectrum, self.formula, deterministic=True)
        )(_rbg(1))
        self.forward = jax.jit(chex.assert_max_traces(self._forward, n=1))

    def _forward(self, params, spectrum, formula):
        return self.model.apply(params, spectrum, formula, deterministic=True)


@pytest.fixture(scope="module")
def clf():
    return ClassifierSetup()


def test_shapes_token_attention_float32(clf):
    encoding, logits = clf.forward(clf.params, clf.spectrum, clf.formula)
    assert all(leaf.dtype == jnp.float32 for leaf in jax.tree.leaves(clf.params))
    _check_outputs(encoding, logits, clf.formula, jnp.float32, num_patches=4, groups=20)


def test_shapes_token_attention_bfloat16(clf):
    model = clf.model.clone(dtype=jnp.bfloat16)
    spectrum, formula = _tokens(2, 3, 512, 4)
    run = jax.jit(lambda p, s, f: model.apply(p, s, f, deterministic=True))
    encoding, logits = run(clf.params, spectrum, formula)
    _check_outputs(encoding, logits, formula, jnp.bfloat16, num_patches=8, groups=20)


def test_shapes_float_linear():
    model = SpectralClassifier(num_groups=7, patch_size=32, embedding="float_linear", **SMALL)
    spectrum, formula = _tokens(0, 1, 128, 3)

    @jax.jit
    def init_and_run(rng):
        params = model.init(rng, spectrum, formula, deterministic=True)
        return params, model.apply(params, spectrum, formula, deterministic=True)

    params, (encoding, logits) = init_and_run(_rbg(0))
    assert params["params"]["patch_embed"]["project"]["kernel"].shape == (32, 32)
    _check_outputs(encoding, logits, formula, jnp.float32, num_patches=4, groups=7)


def test_formula_padding_and_encode_classify(clf):
    _, logits = clf.forward(clf.params, clf.spectrum, clf.formula)
    padded = jnp.concatenate([clf.formula, jnp.zeros((2, 4), clf.formula.dtype)], axis=1)

    @jax.jit
    def encode_then_classify(params, formula):
        model = clf.model
        enc = model.apply(params, clf.spectrum, formula, deterministic=True, method=model.encode)
        return enc, model.apply(params, enc, deterministic=True, method=model.classify)

    encoding, logits_padded = encode_then_classify(clf.params, padded)
    chex.assert_shape(encoding.tokens, (2, 4 + 9, 32))
    np.testing.assert_allclose(logits_padded, logits, atol=1e-5, rtol=1e-5)


def test_dropout_determinism(clf):
    @jax.jit
    def run(rng):
        return clf.model.apply(
            clf.params, clf.spectrum, clf.formula, deterministic=False, rngs={"dropout": rng}
        )[1]

    _, det1 = clf.forward(clf.params, clf.spectrum, clf.formula)
    _, det2 = clf.forward(clf.params, clf.spectrum, clf.formula)
    np.testing.assert_array_equal(det1, det2)
    drop1, drop1_again, drop2 = run(_rbg(5)), run(_rbg(5)), run(_rbg(6))
    np.testing.assert_array_equal(drop1, drop1_again)
    assert not np.allclose(drop1, det1, atol=1e-4)
    assert not np.allclose(drop1, drop2, atol=1e-4)


def test_no_retrace_over_three_calls(clf):
    outputs = []
    for seed in range(3):
        spectrum, formula = _tokens(10 + seed, 2, 256, 5)
        outputs.append(clf.forward(clf.params, spectrum, formula)[1])
    chex.assert_tree_all_finite(outputs)
    assert not np.allclose(outputs[0], outputs[1])


def test_token_attention_patches_are_local():
    embed = TokenAttentionPatchEmbed(dim=16, num_heads=2, patch_size=8, levels=100)
    tokens = jax.random.randint(jax.random.key(3), (1, 32), 0, 100)
    changed = tokens.at[0, 9:12].set((tokens[0, 9:12] + 1) % 100)

    @jax.jit
    def run(rng):
        params = embed.init(rng, tokens, deterministic=True)
        fwd = lambda t: embed.apply(params, t, deterministic=True)  # noqa: E731
        return fwd(tokens), fwd(changed)

    before, after = run(_rbg(3))
    chex.assert_shape(before, (1, 4, 16))
    unchanged = np.array([0, 2, 3])
    np.testing.assert_allclose(after[:, unchanged], before[:, unchanged], atol=1e-6)
    assert not np.allclose(after[:, 1], before[:, 1])


def test_bad_inputs_raise():
    spectrum, formula = _tokens(0, 2, 250, 4)
    model = SpectralClassifier(patch_size=64, **SMALL)
    with pytest.raises(ValueError, match="not divisible by patch_size"):
        model.init(_rbg(0), spectrum, formula, deterministic=True)
    with pytest.raises(ValueError, match="expected spectrum_tokens"):
        model.init(_rbg(0), spectrum[0], formula, deterministic=True)
    with pytest.raises(ValueError, match="batch sizes differ"):
        model.init(_rbg(0), spectrum[:, :128], formula[:1], deterministic=True)
    bad = SpectralClassifier(patch_size=64, embedding="conv", **SMALL)
    with pytest.raises(ValueError, match="unknown embedding"):
        bad.init(_rbg(0), spectrum[:, :128], formula, deterministic=True)


def _expected_param_count(dim, heads, ff, enc, dec, patch, levels, vocab, groups, hidden=256):
    del heads
    mha = 4 * (dim * dim + dim)
    ffn = dim * ff + ff + ff * dim + dim
    norm = 2 * dim
    patch_embed = levels * dim + mha + patch * dim * dim + dim
    encoder = enc * (mha + ffn + 2 * norm) + norm
    decoder = dec * (2 * mha + ffn + 3 * norm) + norm
    head = dim * hidden + hidden + hidden + 1
    return patch_embed + vocab * dim + encoder + groups * dim + decoder + head


def test_paper_config_param_count_without_allocation():
    model = SpectralClassifier()  # dim 512, 8 heads, FF 2048, 4 + 4 layers, 20 groups
    spectrum = jax.ShapeDtypeStruct((1, 3200), jnp.int32)
    formula = jax.ShapeDtypeStruct((1, 16), jnp.int32)
    shapes = jax.eval_shape(
        lambda r, s, f: model.init(r, s, f, deterministic=True), _rbg(0), spectrum, formula
    )
    count = sum(int(np.prod(leaf.shape)) for leaf in jax.tree.leaves(shapes))
    assert shapes["params"]["patch_embed"]["project"]["kernel"].shape == (64 * 512, 512)
    assert count == _expected_param_count(512, 8, 2048, 4, 4, 64, 100, 26, 20)
