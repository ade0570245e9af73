"""Tests for irgeodiff_jax.models.attention (small dims: dim 32, 4 heads, ff 64).

Model init and dropout keys use the "rbg" PRNG implementation, which compiles several times
faster than threefry on CPU; the modules are agnostic to the key type.
"""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from irgeodiff_jax.models.attention import (
    KV,
    DecoderStack,
    MultiHeadAttention,
    SpecAtomCrossAttention,
    masked_softmax,
)

DIM, HEADS, FF = 32, 4, 64


def _attend(module, x, memory, mask, deterministic=True):
    return module(x, module.project_kv(memory), mask, deterministic=deterministic)


def _decode(module, x, x_mask, memory, memory_mask, deterministic=True):
    kvs = module.project_memory(memory)
    return module(x, x_mask, kvs, memory_mask, deterministic=deterministic)


def _rbg(seed):
    return jax.random.key(seed, impl="rbg")


def _random_mask(key, shape):
    mask = jax.random.bernoulli(key, 0.6, shape)
    return mask.at[..., 0].set(True)


def _init_mha(key, b=2, q=5, k=7, dim=DIM, heads=HEADS, dtype=jnp.float32):
    """MHA, its params, queries, memory and key mask; also the K/V and output (one jit)."""
    mha = MultiHeadAttention(heads, dim, dropout_rate=0.1, dtype=dtype)
    kx, km, kmask = jax.random.split(key, 3)
    x = jax.random.normal(kx, (b, q, dim))
    memory = jax.random.normal(km, (b, k, dim))
    mask = _random_mask(kmask, (b, k))

    @jax.jit
    def init_and_run(rng):
        params = mha.init(rng, x, memory, mask, method=_attend)
        kv = mha.apply(params, memory, method=mha.project_kv)
        return params, kv, mha.apply(params, x, memory, mask, method=_attend)

    params, kv, out = init_and_run(_rbg(0))
    return mha, params, x, memory, mask, kv, out


@pytest.fixture(scope="module")
def mha_setup():
    """One float32 MHA (dim 32, 4 heads) with params, queries [2,5], memory [2,7] and mask."""
    return _init_mha(jax.random.key(1))[:5]


@pytest.mark.parametrize(
    "b,q,k,dim,heads,dtype", [(1, 3, 4, 16, 2, jnp.bfloat16), (3, 9, 2, 32, 8, jnp.float32)]
)
def test_mha_shapes_and_dtypes(keys, b, q, k, dim, heads, dtype):
    _, params, _, _, _, kv, out = _init_mha(next(keys), b, q, k, dim, heads, dtype)
    assert all(leaf.dtype == jnp.float32 for leaf in jax.tree.leaves(params))
    chex.assert_shape([kv.k, kv.v], (b, k, heads, dim // heads))
    chex.assert_shape(out, (b, q, dim))
    assert out.dtype == dtype
    chex.assert_tree_all_finite(out)


def test_mha_matches_direct_computation(keys, mha_setup):
    mha, params, x, memory, mask = mha_setup
    p = jax.tree.map(np.asarray, params["params"])

    def lin(name, a):
        return a @ p[name]["kernel"] + p[name]["bias"]

    dh = DIM // HEADS
    q = lin("query", x).reshape(2, 5, HEADS, dh)
    k = lin("key", memory).reshape(2, 7, HEADS, dh)
    v = lin("value", memory).reshape(2, 7, HEADS, dh)
    scores = np.einsum("bqhd,bkhd->bhqk", q, k) / np.sqrt(dh)
    scores = np.where(np.asarray(mask)[:, None, None, :], scores, -np.inf)
    w = np.exp(scores - scores.max(-1, keepdims=True))
    w = w / w.sum(-1, keepdims=True)
    expected = lin("out", np.einsum("bhqk,bkhd->bqhd", w, v).reshape(2, 5, DIM))
    out = mha.apply(params, x, memory, mask, method=_attend)
    np.testing.assert_allclose(out, expected, atol=1e-5, rtol=1e-5)


def test_precomputed_kv_reuse_is_identical(keys, mha_setup):
    mha, params, x, memory, mask = mha_setup
    kv = mha.apply(params, memory, method=mha.project_kv)
    assert isinstance(kv, KV)
    reused = mha.apply(params, x, kv, mask, deterministic=True)
    direct = mha.apply(params, x, memory, mask, method=_attend)
    np.testing.assert_array_equal(reused, direct)


def test_masked_key_values_do_not_affect_output(keys, mha_setup):
    mha, params, x, memory, mask = mha_setup
    junk = 1e3 * jax.random.normal(next(keys), memory.shape)
    memory2 = jnp.where(mask[..., None], memory, junk)
    out1 = mha.apply(params, x, memory, mask, method=_attend)
    out2 = mha.apply(params, x, memory2, mask, method=_attend)
    np.testing.assert_allclose(out1, out2, atol=1e-5)


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16])
def test_all_masked_rows_are_finite(mha_setup, dtype):
    mha, params, x, memory, _ = mha_setup
    mha = mha.clone(dtype=dtype)
    mask = jnp.zeros((2, 7), dtype=bool).at[1].set(True)
    out, state = mha.apply(params, x, memory, mask, method=_attend, mutable=["intermediates"])
    chex.assert_tree_all_finite(out)
    (w,) = state["intermediates"]["attention_weights"]
    np.testing.assert_array_equal(w[0], 0.0)
    np.testing.assert_allclose(w[1].sum(-1), 1.0, atol=1e-6)
    scores = jnp.full((1, 1, 2, 3), -1e30)
    chex.assert_tree_all_finite(masked_softmax(scores, jnp.zeros((1, 3))))


def test_attention_weights_are_sown(keys, mha_setup):
    mha, params, x, memory, mask = mha_setup
    _, state = mha.apply(params, x, memory, mask, method=_attend, mutable=["intermediates"])
    (w,) = state["intermediates"]["attention_weights"]
    chex.assert_shape(w, (2, HEADS, 5, 7))
    np.testing.assert_allclose(jnp.sum(w * mask[:, None, None, :], -1), 1.0, atol=1e-6)
    np.testing.assert_array_equal(jnp.where(mask[:, None, None, :], 0.0, w), 0.0)


def test_dim_not_divisible_by_heads_raises(keys):
    mha = MultiHeadAttention(num_heads=3, dim=32)
    x = jnp.ones((1, 2, 32))
    with pytest.raises(ValueError, match="not divisible"):
        mha.init(next(keys), x, x, jnp.ones((1, 2)), method=_attend)


@pytest.mark.parametrize("self_attention,dtype", [(True, jnp.float32), (False, jnp.bfloat16)])
def test_decoder_stack_shapes_and_structure(keys, self_attention, dtype):
    stack = DecoderStack(2, DIM, HEADS, FF, 0.1, self_attention, dtype)
    x = jax.random.normal(next(keys), (2, 6, DIM))
    x_mask = _random_mask(next(keys), (2, 6))
    memory = jax.random.normal(next(keys), (2, 5, DIM))
    m_mask = _random_mask(next(keys), (2, 5))

    @jax.jit
    def init_and_run(rng):
        params = stack.init(rng, x, x_mask, memory, m_mask, method=_decode)
        kvs = stack.apply(params, memory, method=stack.project_memory)
        return params, kvs, stack.apply(params, x, x_mask, kvs, m_mask, deterministic=True)

    params, kvs, out = init_and_run(_rbg(1))
    assert ("self_attn" in params["params"]["layers_0"]) == self_attention
    assert len(kvs) == 2
    chex.assert_shape([kv.k for kv in kvs] + [kv.v for kv in kvs], (2, 5, HEADS, DIM // HEADS))
    chex.assert_shape(out, (2, 6, DIM))
    assert out.dtype == dtype
    chex.assert_tree_all_finite(out)
    with pytest.raises(ValueError, match="memory KVs"):
        stack.apply(params, x, x_mask, kvs[:1], m_mask, deterministic=True)


class SpecAtomSetup:
    """SpecAtomCrossAttention (2 layers) with params, 6 atoms (2 padded in row 1), 5 spec tokens,
    and jitted forwards (deterministic with sown weights; with dropout)."""

    def __init__(self):
        self.module = SpecAtomCrossAttention(
            out_dim=16, dim=DIM, num_layers=2, num_heads=HEADS, ff_dim=FF
        )
        kh, ks = jax.random.split(jax.random.key(2))
        self.h = jax.random.normal(kh, (2, 6, 16))
        self.atom_mask = jnp.array([[1] * 6, [1] * 4 + [0, 0]], dtype=bool)
        self.spec = jax.random.normal(ks, (2, 5, DIM))
        self.spec_mask = jnp.array([[1] * 5, [1] * 4 + [0]], dtype=bool)
        args = (self.h, self.atom_mask, self.spec, self.spec_mask)
        self.params = jax.jit(lambda r: self.module.init(r, *args, method=_decode))(_rbg(2))
        self.forward = jax.jit(self._forward)
        self.forward_dropout = jax.jit(self._forward_dropout)

    def _forward(self, h, atom_mask):
        return self.module.apply(
            self.params,
            h,
            atom_mask,
            self.spec,
            self.spec_mask,
            method=_decode,
            mutable=["intermediates"],
        )

    def _forward_dropout(self, rng):
        return self.module.apply(
            self.params,
            self.h,
            self.atom_mask,
            self.spec,
            self.spec_mask,
            method=_decode,
            deterministic=False,
            rngs={"dropout": rng},
        )


@pytest.fixture(scope="module")
def spec_atom():
    return SpecAtomSetup()


def test_spec_atom_permutation_equivariance(keys, spec_atom):
    out, _ = spec_atom.forward(spec_atom.h, spec_atom.atom_mask)
    chex.assert_shape(out, (2, 6, 16))
    chex.assert_tree_all_finite(out)
    perm = jax.random.permutation(next(keys), 6)
    out_p, _ = spec_atom.forward(spec_atom.h[:, perm], spec_atom.atom_mask[:, perm])
    np.testing.assert_allclose(out_p, out[:, perm], atol=1e-5)


def test_spec_atom_padding_invariance(keys, spec_atom):
    h, atom_mask = spec_atom.h, spec_atom.atom_mask
    out, _ = spec_atom.forward(h, atom_mask)
    extra = 100.0 * jax.random.normal(next(keys), (2, 3, h.shape[-1]))
    h_pad = jnp.concatenate([h, extra], axis=1)
    mask_pad = jnp.concatenate([atom_mask, jnp.zeros((2, 3), dtype=bool)], axis=1)
    out_pad, _ = spec_atom.forward(h_pad, mask_pad)
    real = np.asarray(atom_mask)
    np.testing.assert_allclose(out_pad[:, :6][real], out[real], atol=1e-5)


def test_spec_atom_dropout(spec_atom):
    det1, _ = spec_atom.forward(spec_atom.h, spec_atom.atom_mask)
    det2, _ = spec_atom.forward(spec_atom.h, spec_atom.atom_mask)
    np.testing.assert_array_equal(det1, det2)
    rng = _rbg(3)
    drop1 = spec_atom.forward_dropout(rng)
    drop2 = spec_atom.forward_dropout(rng)
    np.testing.assert_array_equal(drop1, drop2)
    assert not np.allclose(drop1, det1, atol=1e-4)
    assert not np.allclose(spec_atom.forward_dropout(_rbg(4)), drop1, atol=1e-4)


def test_spec_atom_sows_all_layers(spec_atom):
    _, state = spec_atom.forward(spec_atom.h, spec_atom.atom_mask)
    layers = state["intermediates"]["decoder"]
    assert sorted(layers) == ["layers_0", "layers_1"]
    (cross,) = layers["layers_1"]["cross_attn"]["attention_weights"]
    (self_w,) = layers["layers_1"]["self_attn"]["attention_weights"]
    chex.assert_shape(cross, (2, HEADS, 6, 5))
    chex.assert_shape(self_w, (2, HEADS, 6, 6))
    np.testing.assert_array_equal(self_w[1, :, :, 4:], 0.0)
    np.testing.assert_array_equal(cross[1, :, :, 4], 0.0)
    np.testing.assert_allclose(cross.sum(-1), 1.0, atol=1e-6)


def test_no_mask_equals_all_real_mask(mha_setup):
    mha, params, x, memory, _ = mha_setup
    kv = mha.apply(params, memory, method=mha.project_kv)
    unmasked = mha.apply(params, x, kv, None, deterministic=True)
    all_real = mha.apply(params, x, kv, jnp.ones((2, 7)), deterministic=True)
    np.testing.assert_allclose(unmasked, all_real, atol=1e-6)
