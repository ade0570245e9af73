"""utils.geometry against numpy references: masked means and centring, distances, edge masks,
random rotations and reflections."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from irgeodiff_jax.utils import geometry

# Two molecules padded to 5 atoms: 4 real, then 2 real (padding rows hold junk on purpose).
MASK = np.array([[1, 1, 1, 1, 0], [1, 1, 0, 0, 0]], np.float32)


def _positions(seed=0):
    return np.random.default_rng(seed).normal(size=(2, 5, 3)).astype(np.float32) * 2.0 + 1.0


def test_masked_mean_averages_real_atoms_only():
    x = _positions()
    out = np.asarray(geometry.masked_mean(jnp.asarray(x), jnp.asarray(MASK)))
    assert out.shape == (2, 1, 3)
    np.testing.assert_allclose(out[0, 0], x[0, :4].mean(0), rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(out[1, 0], x[1, :2].mean(0), rtol=1e-6, atol=1e-6)


def test_masked_mean_of_an_all_padding_row_is_zero_not_nan():
    x = _positions()
    out = geometry.masked_mean(jnp.asarray(x), jnp.zeros((2, 5)))
    np.testing.assert_array_equal(out, 0.0)


def test_remove_mean_with_mask_centres_real_atoms_and_zeroes_padding():
    x = _positions(1)
    out = np.asarray(geometry.remove_mean_with_mask(jnp.asarray(x), jnp.asarray(MASK)))
    expected = np.zeros_like(x)
    expected[0, :4] = x[0, :4] - x[0, :4].mean(0)
    expected[1, :2] = x[1, :2] - x[1, :2].mean(0)
    np.testing.assert_allclose(out, expected, atol=1e-6)
    np.testing.assert_allclose((out * MASK[..., None]).sum(1), 0.0, atol=1e-5)
    # idempotent, and the padding junk never leaks into real atoms
    again = geometry.remove_mean_with_mask(jnp.asarray(out), jnp.asarray(MASK))
    np.testing.assert_allclose(again, out, atol=1e-6)
    junk = x.copy()
    junk[0, 4] = 1e3
    junk[1, 2:] = -1e3
    np.testing.assert_allclose(
        geometry.remove_mean_with_mask(jnp.asarray(junk), jnp.asarray(MASK)), out, atol=1e-6
    )


def test_remove_mean_with_mask_accepts_a_boolean_mask():
    x = jnp.asarray(_positions(2))
    np.testing.assert_allclose(
        geometry.remove_mean_with_mask(x, jnp.asarray(MASK, bool)),
        geometry.remove_mean_with_mask(x, jnp.asarray(MASK)),
    )


def test_pairwise_sq_dist_matches_numpy():
    x = _positions(3)
    out = np.asarray(geometry.pairwise_sq_dist(jnp.asarray(x)))
    expected = ((x[:, :, None, :] - x[:, None, :, :]) ** 2).sum(-1)
    assert out.shape == (2, 5, 5)
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(np.diagonal(out, axis1=1, axis2=2), 0.0)
    np.testing.assert_allclose(out, np.swapaxes(out, 1, 2))
    # 3-4-5 triangle
    tri = jnp.array([[0.0, 0, 0], [3, 0, 0], [3, 4, 0]])
    np.testing.assert_allclose(geometry.pairwise_sq_dist(tri)[0], [0, 9, 25])


def test_edge_mask_pairs_distinct_real_atoms():
    out = np.asarray(geometry.edge_mask(jnp.asarray(MASK)))
    assert out.shape == (2, 5, 5) and out.dtype == np.float32
    expected = MASK[:, :, None] * MASK[:, None, :] * (1 - np.eye(5))
    np.testing.assert_array_equal(out, expected)
    assert out[0].sum() == 4 * 3 and out[1].sum() == 2 * 1


@pytest.mark.parametrize("reflect", [False, True])
def test_random_orthogonal_is_orthogonal_with_the_requested_determinant(reflect):
    keys = jax.random.split(jax.random.key(0), 8)
    mats = [np.asarray(geometry.random_orthogonal(k, reflect)) for k in keys]
    for q in mats:
        np.testing.assert_allclose(q @ q.T, np.eye(3), atol=1e-5)
        np.testing.assert_allclose(np.linalg.det(q), -1.0 if reflect else 1.0, atol=1e-5)
    assert len({q.tobytes() for q in mats}) == len(mats)  # a different matrix per key


def test_rotation_preserves_distances_and_commutes_with_centring():
    x = jnp.asarray(_positions(4))
    q = geometry.random_orthogonal(jax.random.key(5), reflect=True)
    mask = jnp.asarray(MASK)
    rotated = (x @ q.T) * mask[..., None]
    np.testing.assert_allclose(
        geometry.pairwise_sq_dist(rotated) * geometry.edge_mask(mask),
        geometry.pairwise_sq_dist(x * mask[..., None]) * geometry.edge_mask(mask),
        rtol=1e-4,
        atol=1e-4,
    )
    np.testing.assert_allclose(
        geometry.remove_mean_with_mask(rotated, mask),
        geometry.remove_mean_with_mask(x, mask) @ q.T,
        atol=1e-5,
    )
