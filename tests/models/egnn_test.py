"""EGNN: equivariance, permutation, padding, dense vs jraph-sparse message passing."""

import functools

import jax
import jax.numpy as jnp
import jraph
import numpy as np
import pytest

from irgeodiff_jax.models import egnn_sparse
from irgeodiff_jax.models.egnn import EGNN, block_params_from_tree, message_passing
from irgeodiff_jax.utils.geometry import random_orthogonal
from tests.helpers.model_params import random_like

HIDDEN, LAYERS, FEAT, OUT = 32, 2, 7, 5
TOL = 1e-5


def _inputs(seed, batch=2, n=6, num_real=(6, 4), feat=FEAT, edge_dim=None):
    """Random features/positions with the first ``num_real[b]`` atoms real, padded rows zero.

    Inputs come from numpy: every new jax.random shape costs a compilation, which is slow on
    this shared machine.
    """
    rng = np.random.default_rng(seed)
    mask = (np.arange(n)[None, :] < np.asarray(num_real)[:, None]).astype(np.float32)
    h = rng.normal(size=(batch, n, feat)).astype(np.float32) * mask[..., None]
    x = rng.normal(size=(batch, n, 3)).astype(np.float32) * 1.5 * mask[..., None]
    a = None
    if edge_dim is not None:
        a = rng.normal(size=(batch, n, n, edge_dim)).astype(np.float32)
        a = 0.5 * (a + np.swapaxes(a, 1, 2))
    return h, x, mask, a


def _model(**kw):
    return EGNN(hidden_dim=HIDDEN, num_layers=LAYERS, out_dim=OUT, **kw)


@functools.partial(jax.jit, static_argnums=0)
def _apply(model, params, h, x, mask, a=None):
    return model.apply(params, h, x, mask, a)


def _init(model, h, a=None, seed=0):
    """Random parameters of ``model`` for features ``h`` and edge attributes ``a``, plus the
    (jitted, compiled once per module and shape) apply function."""
    a0 = None if a is None else jnp.zeros((1, 3, 3, a.shape[-1]))
    args = (jnp.zeros((1, 3, h.shape[-1])), jnp.zeros((1, 3, 3)), jnp.ones((1, 3)))
    shapes = jax.eval_shape(lambda: model.init(jax.random.key(0), *args, a0))
    return random_like(shapes, seed), functools.partial(_apply, model)


@pytest.mark.parametrize("reflect", [False, True])
@pytest.mark.parametrize("edge_dim", [None, 3])
def test_e3_equivariance(keys, reflect, edge_dim):
    h, x, mask, a = _inputs(0, edge_dim=edge_dim)
    model = _model()
    params, apply = _init(model, h, a)
    out = apply(params, h, x, mask, a)
    q = random_orthogonal(next(keys), reflect=reflect)
    shift = np.array([[[2.0, -3.0, 1.5]]], np.float32)
    moved = apply(params, h, (x @ q.T + shift) * mask[..., None], mask, a)
    expected_x = (out.x @ q.T + shift) * mask[..., None]
    np.testing.assert_allclose(moved.x, expected_x, atol=TOL)
    np.testing.assert_allclose(moved.h, out.h, atol=TOL)
    assert float(jnp.max(jnp.abs(out.x - x))) > 1e-4  # the update actually moves atoms


def test_permutation_equivariance(keys):
    h, x, mask, a = _inputs(0, num_real=(6, 6), edge_dim=2)
    model = _model()
    params, apply = _init(model, h, a)
    out = apply(params, h, x, mask, a)
    perm = np.array([3, 0, 5, 1, 4, 2])
    moved = apply(params, h[:, perm], x[:, perm], mask[:, perm], a[:, perm][:, :, perm])
    np.testing.assert_allclose(moved.x, out.x[:, perm], atol=TOL)
    np.testing.assert_allclose(moved.h, out.h[:, perm], atol=TOL)


@pytest.mark.parametrize("garbage", [False, True])
def test_padding_invariance(keys, garbage):
    """Extra padded atoms (zero rows, or arbitrary finite rows) change nothing on real atoms."""
    h, x, mask, a = _inputs(0, n=5, num_real=(5, 3), edge_dim=2)
    model = _model()
    params, apply = _init(model, h, a)
    out = apply(params, h, x, mask, a)
    extra = 3

    def pad(v, axis):
        zeros = jnp.zeros(v.shape[:axis] + (extra,) + v.shape[axis + 1 :], v.dtype)
        return jnp.concatenate([v, zeros], axis=axis)

    hp, xp, mp, ap = pad(h, 1), pad(x, 1), pad(mask, 1), pad(pad(a, 1), 2)
    if garbage:
        rows = 1.0 - mp
        hp = hp + 7.0 * rows[..., None]
        xp = xp + np.random.default_rng(1).normal(size=xp.shape) * 9.0 * rows[..., None]
        ap = ap + 5.0 * (1.0 - mp[:, :, None, None] * mp[:, None, :, None])
    padded = apply(params, hp, xp, mp, ap)
    real = mask.astype(bool)[..., None]
    np.testing.assert_allclose(jnp.where(real, padded.x[:, :5], 0), out.x, atol=TOL)
    np.testing.assert_allclose(jnp.where(real, padded.h[:, :5], 0), out.h, atol=TOL)
    assert not np.any(padded.x[:, 5:]) and not np.any(padded.h[:, 5:])


def test_shapes_dtypes_and_unprojected_output(keys):
    h, x, mask, _ = _inputs(0, batch=3, n=6, num_real=(6, 2, 1))
    model = EGNN(hidden_dim=HIDDEN, num_layers=1, out_dim=None)
    params, apply = _init(model, h)
    out = apply(params, h, x, mask)
    assert out.h.shape == (3, 6, HIDDEN) and out.x.shape == (3, 6, 3)
    assert out.h.dtype == jnp.float32 and out.x.dtype == jnp.float32
    assert "embedding_out" not in params["params"]
    # A single real atom has no neighbours: its position is left unchanged.
    np.testing.assert_allclose(out.x[2, 0], x[2, 0], atol=TOL)


@pytest.mark.parametrize("edge_dim", [None, 4])
def test_dense_and_sparse_kernels_agree(keys, edge_dim):
    h, x, mask, a = _inputs(0, batch=3, n=7, num_real=(7, 5, 2), edge_dim=edge_dim)
    dense = _model(kernel="dense")
    params, apply = _init(dense, h, a)
    out_dense = apply(params, h, x, mask, a)
    out_sparse = _apply(_model(kernel="sparse"), params, h, x, mask, a)
    np.testing.assert_allclose(out_sparse.x, out_dense.x, atol=TOL)
    np.testing.assert_allclose(out_sparse.h, out_dense.h, atol=TOL)


def test_sparse_block_on_real_edges_only(keys):
    """A truly sparse edge list (real pairs only, no masked edges) matches the dense block."""
    h, x, mask, a = _inputs(0, batch=2, n=5, num_real=(5, 3), feat=HIDDEN, edge_dim=2)
    model = _model()
    variables, _ = _init(model, h, a)
    p = block_params_from_tree(variables["params"]["block_0"])
    h_dense, x_dense = jax.jit(functools.partial(message_passing, "dense"))(p, h, x, a, mask)
    m = np.asarray(mask, bool)
    flat = np.flatnonzero(m.reshape(-1))
    index = -np.ones(m.size, int)
    index[flat] = np.arange(flat.size)
    recv, send = [], []
    for b in range(m.shape[0]):
        real = np.flatnonzero(m[b]) + b * m.shape[1]
        recv += [i for i in real for j in real if i != j]
        send += [j for i in real for j in real if i != j]
    recv, send = np.array(recv), np.array(send)
    n = m.shape[1]
    attr = np.asarray(a)[recv // n, recv % n, send % n]
    graph = jraph.GraphsTuple(
        nodes={
            "h": h.reshape(-1, HIDDEN)[flat],
            "x": x.reshape(-1, 3)[flat],
            "mask": np.ones(flat.size, bool),
        },
        edges={"attr": attr, "mask": np.ones(len(recv), bool)},
        receivers=jnp.asarray(index[recv]),
        senders=jnp.asarray(index[send]),
        n_node=jnp.asarray(m.sum(1)),
        n_edge=jnp.asarray([np.sum(recv // n == b) for b in range(m.shape[0])]),
        globals=None,
    )
    out = jax.jit(egnn_sparse.sparse_block)(p, graph)
    np.testing.assert_allclose(out.nodes["x"], x_dense.reshape(-1, 3)[flat], atol=TOL)
    np.testing.assert_allclose(out.nodes["h"], h_dense.reshape(-1, HIDDEN)[flat], atol=TOL)


def test_reference_initialisation(keys):
    """Real initialisers: PyTorch-default Linear bounds, bias-free phi_x head with gain 1e-3."""
    model = EGNN(hidden_dim=HIDDEN, num_layers=1, out_dim=None)
    h, x, mask, _ = _inputs(0)
    block = jax.jit(model.init)(next(keys), h, x, mask)["params"]["block_0"]
    assert set(block["coord_out"]) == {"kernel"}
    bound = 1e-3 * np.sqrt(6.0 / (HIDDEN + 1))
    assert 0 < float(jnp.max(jnp.abs(block["coord_out"]["kernel"]))) <= bound
    fan_in = 2 * HIDDEN + 2  # [h_i, h_j, r_ij (current), r_ij (layer 0)]
    assert block["edge_in"]["kernel"].shape == (fan_in, HIDDEN)
    assert float(jnp.max(jnp.abs(block["edge_in"]["kernel"]))) <= 1 / np.sqrt(fan_in)


def test_unknown_kernel_is_a_clear_error(keys):
    h, x, mask, _ = _inputs(0)
    with pytest.raises(ValueError, match="unknown message-passing kernel"):
        _init(_model(kernel="ragged"), h)
