"""IR spectra: wavenumber grids, resampling, Lorentzian broadening, tokens and SID/SIS.

All functions take and return numpy arrays; spectra are indexed ``[..., L]`` with the wavenumber
axis last. Grids are in cm⁻¹, strictly increasing.

Constants (method.md §2, §8; reference-notes §1.1, §1.9):

* ``MODEL_GRID``: the grid the spectral encoder reads, 3,200 points over 500–4000 cm⁻¹.
* ``EVAL_GRID``: the reference evaluation grid (and the QM9S source grid), 1 cm⁻¹ steps.
* ``QME14S_SOURCE_GRID``: QMe14S's source grid (3,500 points).
* ``FUNCTIONAL_REGION_CM1``: the range of SIS*.
"""

import functools

import numpy as np
from scipy import ndimage

MODEL_GRID = (500.0, 4000.0, 3200)
EVAL_GRID = (500.0, 4000.0, 3501)
QM9S_SOURCE_GRID = EVAL_GRID
QME14S_SOURCE_GRID = (500.0, 4000.0, 3500)
FUNCTIONAL_REGION_CM1 = (1350.0, 4000.0)
FREQUENCY_SCALE_B3LYP = 0.965  # the reference's scale factor for B3LYP/def2-TZVP frequencies
DEFAULT_FWHM_CM1 = 15.0
TOKEN_LEVELS = 100
SIS_FLOOR = 1e-10
# exp(-x) underflows to exactly 0 in float64 for x > ~745: beyond this many standard deviations
# the reference's dense Gaussian matrix holds only zeros (or values < 1e-300), so cutting the
# kernel there changes nothing measurable.
_KERNEL_RADIUS_SIGMAS = float(np.sqrt(2.0 * 700.0))


class SpectrumError(ValueError):
    """A spectrum or grid that cannot be used (NaN/inf, wrong length, flat, bad grid...)."""


def grid(lo_cm1: float, hi_cm1: float, points: int) -> np.ndarray:
    """``points`` evenly spaced wavenumbers from ``lo_cm1`` to ``hi_cm1`` inclusive, [points]."""
    if not (np.isfinite(lo_cm1) and np.isfinite(hi_cm1)) or hi_cm1 <= lo_cm1:
        raise SpectrumError(f"grid needs finite lo < hi, got ({lo_cm1}, {hi_cm1})")
    if int(points) != points or points < 2:
        raise SpectrumError(f"grid needs an integer number of points >= 2, got {points}")
    return np.linspace(float(lo_cm1), float(hi_cm1), int(points))


def _check_grid(g, name: str) -> np.ndarray:
    g = np.asarray(g, dtype=np.float64)
    if g.ndim != 1 or g.size < 2:
        raise SpectrumError(f"{name} must be 1-D with >= 2 points, got shape {g.shape}")
    if not np.all(np.isfinite(g)):
        raise SpectrumError(f"{name} contains NaN or inf")
    if not np.all(np.diff(g) > 0):
        raise SpectrumError(f"{name} must be strictly increasing")
    return g


def _check_finite(y: np.ndarray, name: str) -> None:
    if not np.all(np.isfinite(y)):
        raise SpectrumError(f"{name} contains NaN or inf")


def validate(spectrum, expected_length: int | None = None, negative_tol: float = 1e-6):
    """Check a spectrum (or a batch [..., L]) and return it as float64.

    Raises ``SpectrumError`` with a one-line reason for: NaN/inf; values below
    ``-negative_tol * max|y|`` (per row); a flat row (max == min, e.g. all zeros); a last axis
    whose length is not ``expected_length``; a 0-d input.
    """
    y = np.asarray(spectrum, dtype=np.float64)
    if y.ndim == 0:
        raise SpectrumError("spectrum must have at least one axis, got a scalar")
    if expected_length is not None and y.shape[-1] != expected_length:
        raise SpectrumError(f"spectrum has {y.shape[-1]} points, expected {expected_length}")
    _check_finite(y, "spectrum")
    if y.shape[-1] == 0:
        raise SpectrumError("spectrum is empty")
    top = np.max(np.abs(y), axis=-1)
    if np.any(np.min(y, axis=-1) < -negative_tol * top):
        raise SpectrumError(f"spectrum has negative values below -{negative_tol:g} x max|y|")
    if np.any(np.max(y, axis=-1) <= np.min(y, axis=-1)):
        raise SpectrumError("spectrum is flat (all values equal, e.g. all zero)")
    return y


def resample(spectrum, src_grid_cm1, dst_grid_cm1) -> np.ndarray:
    """Linear interpolation of ``spectrum`` [..., Ls] from ``src_grid_cm1`` onto ``dst_grid_cm1``.

    Returns [..., Ld]. ``dst_grid_cm1`` must lie inside ``src_grid_cm1`` (to 1e-9 of the span):
    there is no extrapolation.
    """
    src = _check_grid(src_grid_cm1, "source grid")
    dst = np.asarray(dst_grid_cm1, dtype=np.float64)
    if dst.ndim != 1 or dst.size == 0:
        raise SpectrumError(f"target grid must be 1-D and non-empty, got shape {dst.shape}")
    _check_finite(dst, "target grid")
    y = np.asarray(spectrum, dtype=np.float64)
    if y.ndim == 0 or y.shape[-1] != src.size:
        raise SpectrumError(
            f"spectrum has shape {y.shape}: its last axis must match the {src.size}-point grid"
        )
    _check_finite(y, "spectrum")
    tol = 1e-9 * (src[-1] - src[0])
    if dst.min() < src[0] - tol or dst.max() > src[-1] + tol:
        raise SpectrumError(
            f"target grid [{dst.min():g}, {dst.max():g}] is not covered by the source grid "
            f"[{src[0]:g}, {src[-1]:g}]"
        )
    x = np.clip(dst, src[0], src[-1])
    right = np.clip(np.searchsorted(src, x, side="right"), 1, src.size - 1)
    left = right - 1
    w = (x - src[left]) / (src[right] - src[left])
    return y[..., left] * (1.0 - w) + y[..., right] * w


def broaden(
    frequencies_cm1,
    intensities,
    grid_cm1,
    *,
    fwhm_cm1: float = DEFAULT_FWHM_CM1,
    scale: float = 1.0,
) -> np.ndarray:
    """Lorentzian-broadened spectrum of stick lines (eq. 15), evaluated on ``grid_cm1``.

    ``Lo(x) = F/(2π) · Σ_n y_n / ((x − a·x_n)² + F²/4)`` with F = ``fwhm_cm1`` and a = ``scale``
    (the frequency scale factor). Each line integrates to ``y_n`` over the real line.

    Args:
        frequencies_cm1: [..., n] harmonic frequencies (cm⁻¹).
        intensities: [..., n] IR intensities (non-negative, any unit).
        grid_cm1: [L] wavenumbers.

    Returns:
        [..., L] float64. Builds a [..., L, n] intermediate: broaden large batches in chunks.
    """
    x = _check_grid(grid_cm1, "grid")
    f = np.asarray(frequencies_cm1, dtype=np.float64)
    y = np.asarray(intensities, dtype=np.float64)
    if f.shape != y.shape or f.ndim == 0:
        raise SpectrumError(f"frequencies {f.shape} and intensities {y.shape} must have one shape")
    _check_finite(f, "frequencies")
    _check_finite(y, "intensities")
    if np.any(y < 0):
        raise SpectrumError("intensities must be non-negative")
    if not (np.isfinite(fwhm_cm1) and fwhm_cm1 > 0 and np.isfinite(scale) and scale > 0):
        raise SpectrumError(f"need fwhm_cm1 > 0 and scale > 0, got {fwhm_cm1}, {scale}")
    centre = scale * f[..., None, :]  # [..., 1, n]
    lines = (fwhm_cm1 / (2 * np.pi)) / ((x[:, None] - centre) ** 2 + 0.25 * fwhm_cm1**2)
    return np.einsum("...ln,...n->...l", lines, y)


def tokenize(spectrum, levels: int = TOKEN_LEVELS) -> np.ndarray:
    """Integer tokens as the reference encoder input: floor(y / max(y) · (levels−1)), clipped.

    Args:
        spectrum: [L] or [B, L]; each row is scaled by its own maximum.

    Returns:
        int32 array of the same shape, values in [0, levels−1].
    """
    y = np.asarray(spectrum, dtype=np.float64)
    if y.ndim not in (1, 2) or y.shape[-1] == 0:
        raise SpectrumError(f"tokenize expects [L] or [B, L], got shape {y.shape}")
    _check_finite(y, "spectrum")
    if levels < 2:
        raise SpectrumError(f"levels must be >= 2, got {levels}")
    top = np.max(y, axis=-1, keepdims=True)
    if np.any(top <= 0):
        raise SpectrumError("spectrum maximum must be positive (all-zero or negative spectrum)")
    tokens = np.floor(y / top * (levels - 1))
    return np.clip(tokens, 0, levels - 1).astype(np.int32)


@functools.lru_cache(maxsize=32)
def _gaussian_kernel(sigma_points: float, length: int) -> np.ndarray:
    """exp(−d²/2σ²) for d = −r..r, r = min(length−1, ~37σ); unnormalised (see ``sis``)."""
    radius = int(min(length - 1, np.ceil(_KERNEL_RADIUS_SIGMAS * sigma_points)))
    d = np.arange(-radius, radius + 1, dtype=np.float64)
    return np.exp(-(d**2) / (2.0 * sigma_points**2))


def _grid_spacing(g: np.ndarray) -> float:
    steps = np.diff(g)
    if np.ptp(steps) > 1e-6 * steps.mean():
        raise SpectrumError("SIS smoothing needs an evenly spaced grid")
    return float(steps.mean())


def _region_slice(g: np.ndarray, region) -> np.ndarray:
    lo, hi = region
    keep = (g >= lo - 1e-9) & (g <= hi + 1e-9)
    if keep.sum() < 2:
        raise SpectrumError(f"region {region} holds fewer than 2 grid points")
    return keep


def _prepare(y: np.ndarray, smooth_sigma_cm1: float, spacing: float) -> np.ndarray:
    """Max-normalise, floor, smooth and sum-normalise each row of y [B, L]."""
    top = np.max(y, axis=-1, keepdims=True)
    if np.any(top <= 0):
        raise SpectrumError("SIS needs spectra with a positive maximum")
    y = np.maximum(y / top, SIS_FLOOR)
    if smooth_sigma_cm1 > 0:
        kernel = _gaussian_kernel(smooth_sigma_cm1 / spacing, y.shape[-1])
        y = ndimage.correlate1d(y, kernel, axis=-1, mode="constant", cval=0.0)
    return y / np.sum(y, axis=-1, keepdims=True)


def sis_batch(pred, target, grid_cm1, *, region=None, smooth_sigma_cm1: float = 10.0) -> np.ndarray:
    """Spectral information similarity SIS = 1/(1+SID) (eqs. 16–17) for a batch, [B].

    Per row, as in the reference evaluation (reference-notes §1.9):

    1. ``region=(lo, hi)`` (SIS*) first keeps only grid points in [lo, hi]; everything below
       is computed on that slice. (The reference interpolates onto 1350–4000 at 1 cm⁻¹ and then
       computes; on the 1 cm⁻¹ evaluation grid these are the same points.)
    2. divide by the row maximum, then floor at 1e-10 (the reference divides by the maximum only
       when it exceeds 1; dividing always makes SIS scale-invariant);
    3. Gaussian smoothing, σ = ``smooth_sigma_cm1`` / grid spacing points, as a direct discrete
       convolution (``scipy.ndimage.correlate1d``, symmetric kernel) with zero padding outside
       the grid and no renormalisation at the edges, i.e. the reference's dense
       ``make_conv_matrix`` product. The kernel is cut at ~37σ, where its values are < 1e-300.
       ``smooth_sigma_cm1=0`` disables smoothing;
    4. normalise to sum 1: p (pred), q (target); SID = Σ p ln(p/q) + q ln(q/p).

    Args:
        pred: [B, L] spectra on ``grid_cm1``.
        target: [B, L] or [L] (broadcast to every row of ``pred``).
        grid_cm1: [L] evenly spaced wavenumbers.

    Returns:
        [B] float64 in (0, 1].
    """
    g = _check_grid(grid_cm1, "grid")
    p = np.asarray(pred, dtype=np.float64)
    q = np.asarray(target, dtype=np.float64)
    if p.ndim != 2 or p.shape[-1] != g.size:
        raise SpectrumError(f"pred must be [B, {g.size}], got {p.shape}")
    shared_target = q.ndim == 1
    if shared_target:
        q = q[None]
    if q.shape[-1] != p.shape[-1] or (not shared_target and q.shape != p.shape):
        raise SpectrumError(f"target {q.shape} must be [{g.size}] or match pred {p.shape}")
    _check_finite(p, "pred")
    _check_finite(q, "target")
    if smooth_sigma_cm1 < 0 or not np.isfinite(smooth_sigma_cm1):
        raise SpectrumError(f"smooth_sigma_cm1 must be >= 0, got {smooth_sigma_cm1}")
    if region is not None:
        keep = _region_slice(g, region)
        g, p, q = g[keep], p[:, keep], q[:, keep]
    spacing = _grid_spacing(g)
    pn = _prepare(p, smooth_sigma_cm1, spacing)
    qn = _prepare(q, smooth_sigma_cm1, spacing)
    sid = np.sum((pn - qn) * (np.log(pn) - np.log(qn)), axis=-1)
    return 1.0 / (1.0 + sid)


def sis(pred, target, grid_cm1, *, region=None, smooth_sigma_cm1: float = 10.0) -> float:
    """SIS of two spectra [L] on ``grid_cm1``; see ``sis_batch`` for every detail."""
    p = np.asarray(pred, dtype=np.float64)
    q = np.asarray(target, dtype=np.float64)
    if p.ndim != 1 or q.ndim != 1:
        raise SpectrumError(f"sis expects two 1-D spectra, got {p.shape} and {q.shape}")
    out = sis_batch(p[None], q, grid_cm1, region=region, smooth_sigma_cm1=smooth_sigma_cm1)
    return float(out[0])
