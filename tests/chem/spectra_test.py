import numpy as np
import pytest

from irgeodiff_jax.chem import spectra

RNG_SEED = 0


def _random_spectra(n, length, seed=RNG_SEED):
    """Positive, peaky random spectra [n, length]."""
    rng = np.random.default_rng(seed)
    x = np.arange(length)
    out = np.zeros((n, length))
    for i in range(n):
        centres = rng.uniform(0, length, size=8)
        heights = rng.uniform(0.1, 1.0, size=8)
        width = rng.uniform(2, 8)
        out[i] = (heights / (1 + ((x[:, None] - centres) / width) ** 2)).sum(-1)
    return out + rng.uniform(0, 1e-3, size=out.shape)


def _naive_sis(a, b, grid_cm1, sigma_cm1):
    """Independent transcription of eqs. 16-17 with the reference's preprocessing.

    Max-normalise, floor at 1e-10, multiply by the dense Gaussian matrix
    K[i, j] = exp(-(x_i - x_j)^2 / 2σ^2) (zero outside the grid), normalise to sum 1, then
    SID = Σ p ln(p/q) + q ln(q/p) with an explicit loop.
    """
    x = np.asarray(grid_cm1, dtype=np.float64)
    kernel = np.exp(-((x[:, None] - x[None, :]) ** 2) / (2 * sigma_cm1**2))
    vecs = []
    for y in (a, b):
        y = np.maximum(np.asarray(y, np.float64) / np.max(y), 1e-10)
        y = y @ kernel
        vecs.append(y / y.sum())
    p, q = vecs
    sid = 0.0
    for i in range(len(p)):
        sid += p[i] * np.log(p[i] / q[i]) + q[i] * np.log(q[i] / p[i])
    return 1.0 / (1.0 + sid)


def test_grid_constants():
    g = spectra.grid(*spectra.MODEL_GRID)
    assert g.shape == (3200,) and g[0] == 500.0 and g[-1] == 4000.0
    e = spectra.grid(*spectra.EVAL_GRID)
    assert e.shape == (3501,)
    np.testing.assert_allclose(np.diff(e), 1.0)
    with pytest.raises(spectra.SpectrumError, match="lo < hi"):
        spectra.grid(4000, 500, 10)


def test_sis_identity_symmetry_range():
    g = spectra.grid(500, 4000, 701)
    a, b = _random_spectra(2, 701)
    assert spectra.sis(a, a, g) == pytest.approx(1.0, abs=1e-12)
    assert spectra.sis(a, 3.7 * a, g) == pytest.approx(1.0, abs=1e-12)  # scale-invariant
    s_ab = spectra.sis(a, b, g)
    assert s_ab == pytest.approx(spectra.sis(b, a, g), abs=1e-14)
    assert 0.0 < s_ab < 1.0


@pytest.mark.parametrize("sigma", [10.0, 25.0])
def test_sis_equals_naive_transcription(sigma):
    g = spectra.grid(500, 4000, 701)  # 5 cm^-1 spacing: σ in cm^-1 ≠ σ in points
    specs = _random_spectra(6, 701, seed=3)
    for a, b in zip(specs[:3], specs[3:], strict=True):
        got = spectra.sis(a, b, g, smooth_sigma_cm1=sigma)
        assert got == pytest.approx(_naive_sis(a, b, g, sigma), abs=1e-9)


def test_sis_eval_grid_and_region_equal_naive_on_slice():
    g = spectra.grid(*spectra.EVAL_GRID)
    a, b = _random_spectra(2, g.size, seed=5)
    full = spectra.sis(a, b, g)
    assert full == pytest.approx(_naive_sis(a, b, g, 10.0), abs=1e-9)
    star = spectra.sis(a, b, g, region=spectra.FUNCTIONAL_REGION_CM1)
    keep = (g >= 1350) & (g <= 4000)
    assert keep.sum() == 2651  # the reference's 1350-4000 grid at 1 cm^-1
    assert star == pytest.approx(spectra.sis(a[keep], b[keep], g[keep]), abs=1e-14)
    assert star == pytest.approx(_naive_sis(a[keep], b[keep], g[keep], 10.0), abs=1e-9)
    assert abs(star - full) > 1e-4


def test_sis_batch_equals_scalar():
    g = spectra.grid(500, 4000, 701)
    pred = _random_spectra(5, 701, seed=7)
    target = _random_spectra(5, 701, seed=8)
    batch = spectra.sis_batch(pred, target, g)
    single = [spectra.sis(p, t, g) for p, t in zip(pred, target, strict=True)]
    np.testing.assert_allclose(batch, single, rtol=0, atol=1e-14)
    shared = spectra.sis_batch(pred, target[0], g, region=(1350, 4000))
    single = [spectra.sis(p, target[0], g, region=(1350, 4000)) for p in pred]
    np.testing.assert_allclose(shared, single, rtol=0, atol=1e-14)


def test_sis_no_smoothing_and_errors():
    g = spectra.grid(500, 4000, 701)
    a, b = _random_spectra(2, 701, seed=11)
    assert spectra.sis(a, b, g, smooth_sigma_cm1=0.0) == pytest.approx(
        _naive_sis(a, b, g, 1e-6), abs=1e-9
    )
    with pytest.raises(spectra.SpectrumError, match="NaN"):
        spectra.sis(np.where(np.arange(701) == 3, np.nan, a), b, g)
    with pytest.raises(spectra.SpectrumError, match="pred must be"):
        spectra.sis(a[:-1], b[:-1], g)
    with pytest.raises(spectra.SpectrumError, match="positive maximum"):
        spectra.sis(np.zeros(701), b, g)


def test_broaden_peak_position_height_area():
    g = spectra.grid(500, 4000, 14001)  # 0.25 cm^-1
    f, y, fwhm = 2250.0, 3.0, 15.0
    spec = spectra.broaden([f], [y], g, fwhm_cm1=fwhm)
    assert g[np.argmax(spec)] == pytest.approx(f)
    assert spec.max() == pytest.approx(y * 2 / (np.pi * fwhm), rel=1e-12)
    half = spec >= spec.max() / 2
    assert g[half][-1] - g[half][0] == pytest.approx(fwhm, abs=0.5)
    # area over [500, 4000] = y · (2/π) arctan(2W/F), W = 1750 (-> y on the whole real line)
    area = np.trapezoid(spec, g)
    assert area == pytest.approx(y * 2 / np.pi * np.arctan(2 * 1750 / fwhm), rel=1e-5)
    wide = spectra.grid(-1e6, 1e6 + 4500, 2_000_001)
    assert np.trapezoid(spectra.broaden([f], [y], wide, fwhm_cm1=fwhm), wide) == pytest.approx(
        y, rel=2e-5
    )


def test_broaden_scale_sum_and_batch():
    g = spectra.grid(500, 4000, 3501)
    spec = spectra.broaden([1000.0], [1.0], g, scale=0.965)
    assert g[np.argmax(spec)] == pytest.approx(965.0)
    f = np.array([[1000.0, 3000.0], [1500.0, 2000.0]])
    y = np.array([[1.0, 2.0], [0.5, 0.0]])
    batch = spectra.broaden(f, y, g)
    assert batch.shape == (2, 3501)
    one = spectra.broaden([1000.0], [1.0], g) + spectra.broaden([3000.0], [2.0], g)
    np.testing.assert_allclose(batch[0], one, rtol=1e-12)
    with pytest.raises(spectra.SpectrumError, match="non-negative"):
        spectra.broaden([1000.0], [-1.0], g)
    with pytest.raises(spectra.SpectrumError, match="one shape"):
        spectra.broaden([1000.0, 2.0], [1.0], g)


def test_tokenize_hand_examples():
    np.testing.assert_array_equal(spectra.tokenize([0.0, 0.5, 1.0, 0.25]), [0, 49, 99, 24])
    np.testing.assert_array_equal(spectra.tokenize([-1.0, 2.0, 1.0]), [0, 99, 49])
    np.testing.assert_array_equal(spectra.tokenize([0.0, 3.0], levels=10), [0, 9])
    batch = spectra.tokenize([[1.0, 2.0], [4.0, 1.0]])
    np.testing.assert_array_equal(batch, [[49, 99], [99, 24]])
    assert batch.dtype == np.int32
    y = np.random.default_rng(1).random(3200)
    ref = np.clip((y / max(y) * 99).astype(int), 0, 99)  # the reference's process_spec
    np.testing.assert_array_equal(spectra.tokenize(y), ref)


@pytest.mark.parametrize(
    "bad, msg",
    [
        (np.zeros(5), "positive"),
        (-np.ones(5), "positive"),
        (np.array([1.0, np.nan]), "NaN"),
        (np.ones((2, 2, 2)), "expects"),
        (np.float64(1.0), "expects"),
    ],
)
def test_tokenize_errors(bad, msg):
    with pytest.raises(spectra.SpectrumError, match=msg):
        spectra.tokenize(bad)


def test_resample_linear_and_batched():
    src = spectra.grid(*spectra.EVAL_GRID)
    dst = spectra.grid(*spectra.MODEL_GRID)
    line = 2.0 * src + 1.0
    np.testing.assert_allclose(spectra.resample(line, src, dst), 2.0 * dst + 1.0, rtol=1e-12)
    batch = np.stack([np.sin(src / 100), np.cos(src / 50)])
    out = spectra.resample(batch, src, dst)
    assert out.shape == (2, 3200)
    np.testing.assert_allclose(out[1], np.interp(dst, src, batch[1]), rtol=0, atol=1e-12)


def test_resample_errors():
    src = spectra.grid(500, 4000, 3501)
    y = np.ones(3501)
    with pytest.raises(spectra.SpectrumError, match="not covered"):
        spectra.resample(y, src, spectra.grid(400, 4000, 100))
    with pytest.raises(spectra.SpectrumError, match="NaN"):
        spectra.resample(np.where(src > 600, y, np.nan), src, src)
    with pytest.raises(spectra.SpectrumError, match="last axis"):
        spectra.resample(y[:-1], src, src)
    with pytest.raises(spectra.SpectrumError, match="increasing"):
        spectra.resample(y, src[::-1], src)


@pytest.mark.parametrize(
    "bad, kwargs, msg",
    [
        (np.array([1.0, np.inf, 2.0]), {}, "NaN or inf"),
        (np.array([1.0, -0.5, 2.0]), {}, "negative"),
        (np.zeros(4), {}, "flat"),
        (np.full(4, 2.0), {}, "flat"),
        (np.ones(4) + np.arange(4), {"expected_length": 5}, "expected 5"),
    ],
)
def test_validate_errors(bad, kwargs, msg):
    with pytest.raises(spectra.SpectrumError, match=msg):
        spectra.validate(bad, **kwargs)


def test_validate_accepts_tiny_negatives():
    y = np.array([0.0, 1.0, -1e-9, 0.5])
    np.testing.assert_array_equal(spectra.validate(y, expected_length=4), y)
