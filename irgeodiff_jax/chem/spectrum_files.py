"""Reading a user's IR spectrum from a file and putting it on the model grid.

Formats:

* two-column text (``.csv``, ``.txt``, ``.dat``, anything not ``.jdx``/``.dx``): wavenumber
  (cm⁻¹) and intensity per line, separated by commas, semicolons, tabs or spaces; header lines
  before the data and ``#`` comments are skipped. The caller states ``kind`` ("absorbance" or
  "transmittance"): a text file does not say.
* JCAMP-DX (``.jdx``, ``.dx``), read with the ``jcamp`` package: ``##XUNITS`` 1/CM,
  MICROMETERS or NANOMETERS (converted to cm⁻¹), ``##YUNITS`` ABSORBANCE or TRANSMITTANCE give
  ``kind`` unless the caller states it (a contradiction is an error).

Conversion: transmittance T becomes absorbance A = −log10(T). T is taken as a fraction in
(0, 1] unless its maximum exceeds 1.5, in which case it is percent and divided by 100 (the
returned ``notes`` say which). Values of T in (1, 1.05] (noise above the baseline) are clipped to
1; T ≤ 0 or T > 1.05 after scaling is an error. Absorbance may dip below zero by baseline noise:
values down to −1 % of the maximum are clipped to 0 (stated in ``notes``), lower is an error.

The spectrum must cover 500–4000 cm⁻¹ (ends within ``EDGE_TOLERANCE_CM1`` are extended with
the end value, stated in ``notes``), is linearly resampled onto the model grid and divided by its
maximum. Every problem raises ``SpectrumFileError`` with one line saying what to fix.
"""

import contextlib
import dataclasses
import io
import os
import re

import numpy as np

from irgeodiff_jax.chem import spectra

KINDS = ("absorbance", "transmittance")
EDGE_TOLERANCE_CM1 = 5.0
PERCENT_THRESHOLD = 1.5
TRANSMITTANCE_CLIP = 1.05
NEGATIVE_ABSORBANCE_TOLERANCE = 0.01
JCAMP_SUFFIXES = (".jdx", ".dx", ".jcamp")
_SPLIT = re.compile(r"[,;\s]+")


class SpectrumFileError(ValueError):
    """A spectrum file that cannot be used, with a one-line reason."""


@dataclasses.dataclass(frozen=True)
class UserSpectrum:
    """A user's spectrum on a model grid.

    Attributes:
        absorbance: [L] float64 on ``grid_cm1``, max-normalised to 1.
        grid_cm1: [L] wavenumbers.
        kind: what the file held ("absorbance" or "transmittance").
        notes: human-readable statements of every conversion made.
        source_range_cm1: (min, max) wavenumber in the file.
    """

    absorbance: np.ndarray
    grid_cm1: np.ndarray
    kind: str
    notes: tuple[str, ...]
    source_range_cm1: tuple[float, float]


def _fail(path: str, message: str) -> SpectrumFileError:
    return SpectrumFileError(f"{os.path.basename(path)}: {message}")


def read_columns(path: str) -> tuple[np.ndarray, np.ndarray]:
    """(x [n], y [n]) from a two-column text file; SpectrumFileError on malformed lines."""
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            lines = f.read().splitlines()
    except OSError as e:
        raise _fail(path, f"cannot read file ({e.strerror or e})") from None
    rows, started = [], False
    for number, raw in enumerate(lines, start=1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        fields = [f for f in _SPLIT.split(line) if f]
        try:
            values = [float(v) for v in fields]
        except ValueError:
            if started:
                raise _fail(
                    path, f"line {number} is not two numbers: {raw.strip()[:60]!r}"
                ) from None
            continue  # header line before the data
        if len(values) != 2:
            raise _fail(path, f"line {number} has {len(values)} columns, expected 2")
        rows.append(values)
        started = True
    if len(rows) < 2:
        raise _fail(path, "no two-column numeric data found (wavenumber, intensity)")
    data = np.asarray(rows, dtype=np.float64)
    return data[:, 0], data[:, 1]


def _x_to_cm1(path: str, x: np.ndarray, units: str) -> np.ndarray:
    units = units.strip().upper()
    if units in ("", "1/CM", "CM-1", "CM^-1", "1/CM-1", "WAVENUMBERS"):
        return x
    if units in ("MICROMETERS", "MICRONS", "UM"):
        return 1e4 / x
    if units == "NANOMETERS":
        return 1e7 / x
    raise _fail(path, f"##XUNITS={units} is not supported (use 1/CM, MICROMETERS or NANOMETERS)")


def _kind_from_units(units: str) -> str | None:
    units = units.strip().upper()
    if "ABSORBANCE" in units:
        return "absorbance"
    if "TRANSMITTANCE" in units:
        return "transmittance"
    return None


def read_jcamp(path: str) -> tuple[np.ndarray, np.ndarray, str | None]:
    """(x [n] cm⁻¹, y [n], kind from ##YUNITS or None) from a JCAMP-DX file."""
    import jcamp

    try:
        with contextlib.redirect_stdout(io.StringIO()):  # jcamp prints its check warnings
            data = jcamp.readfile(path)
    except OSError as e:
        raise _fail(path, f"cannot read file ({e.strerror or e})") from None
    except Exception as e:  # noqa: BLE001 - the parser raises many types on malformed input
        raise _fail(path, f"not a readable JCAMP-DX file ({type(e).__name__}: {e})") from None
    if data.get("children"):
        raise _fail(path, "compound (multi-block) JCAMP-DX files are not supported")
    x = np.asarray(data.get("x", []), dtype=np.float64)
    y = np.asarray(data.get("y", []), dtype=np.float64)
    if x.size < 2 or x.size != y.size:
        raise _fail(path, f"JCAMP-DX data block holds {x.size} x and {y.size} y values")
    x = _x_to_cm1(path, x, str(data.get("xunits", "")))
    return x, y, _kind_from_units(str(data.get("yunits", "")))


def _sorted_unique(path: str, x: np.ndarray, y: np.ndarray):
    if not (np.all(np.isfinite(x)) and np.all(np.isfinite(y))):
        bad = int(np.sum(~np.isfinite(x)) + np.sum(~np.isfinite(y)))
        raise _fail(path, f"{bad} NaN or infinite values; remove or fill them")
    order = np.argsort(x, kind="stable")
    x, y = x[order], y[order]
    if np.any(np.diff(x) <= 0):
        raise _fail(path, "repeated wavenumbers; each wavenumber must appear once")
    return x, y


def to_absorbance(path: str, y: np.ndarray, kind: str) -> tuple[np.ndarray, list[str]]:
    """Absorbance [n] (see the module docstring) and the notes on what was converted."""
    notes = []
    if kind == "transmittance":
        t = y
        if np.max(t) > PERCENT_THRESHOLD:
            t = t / 100.0
            notes.append("transmittance read as percent (max > 1.5) and divided by 100")
        else:
            notes.append("transmittance read as a fraction in (0, 1]")
        if np.min(t) <= 0 or np.max(t) > TRANSMITTANCE_CLIP:
            raise _fail(
                path,
                f"transmittance must be in (0, 1] (or percent), got "
                f"[{np.min(t):.4g}, {np.max(t):.4g}] after scaling",
            )
        if np.max(t) > 1:
            notes.append(f"{int(np.sum(t > 1))} transmittance values above 1 clipped to 1")
        a = -np.log10(np.minimum(t, 1.0))
        notes.append("absorbance = -log10(T)")
    else:
        a = y.astype(np.float64)
    top = np.max(a)
    if top <= 0 or np.max(a) == np.min(a):
        raise _fail(path, "spectrum is flat or has no positive absorbance")
    if np.min(a) < -NEGATIVE_ABSORBANCE_TOLERANCE * top:
        raise _fail(
            path,
            f"absorbance goes down to {np.min(a):.4g} (below -1% of its maximum "
            f"{top:.4g}); correct the baseline or state the right kind",
        )
    if np.min(a) < 0:
        notes.append(f"{int(np.sum(a < 0))} slightly negative absorbance values clipped to 0")
        a = np.maximum(a, 0.0)
    return a, notes


def _cover(path: str, x: np.ndarray, a: np.ndarray, lo: float, hi: float, notes: list):
    if x[0] > lo + EDGE_TOLERANCE_CM1 or x[-1] < hi - EDGE_TOLERANCE_CM1:
        raise _fail(
            path, f"wavenumbers span {x[0]:.1f}–{x[-1]:.1f} cm-1 but must cover {lo:g}–{hi:g} cm-1"
        )
    if x[0] > lo:
        x, a = np.concatenate([[lo], x]), np.concatenate([[a[0]], a])
        notes.append(f"low end extended from {x[1]:.1f} to {lo:g} cm-1 with the end value")
    if x[-1] < hi:
        x, a = np.concatenate([x, [hi]]), np.concatenate([a, [a[-1]]])
        notes.append(f"high end extended from {x[-2]:.1f} to {hi:g} cm-1 with the end value")
    return x, a


def read_spectrum(path: str, *, kind: str | None = None, grid=spectra.MODEL_GRID) -> UserSpectrum:
    """Reads a spectrum file and returns it on ``grid`` as max-normalised absorbance.

    Args:
        path: a two-column text file or a JCAMP-DX file (by suffix).
        kind: "absorbance" or "transmittance"; required for text files, optional for JCAMP-DX.
        grid: (lo, hi, points) of the target grid (default: the model grid).

    Raises:
        SpectrumFileError: unreadable file, unknown/contradicting kind, NaN values, a range not
            covering the grid, negative absorbance or transmittance out of range, flat spectrum.
    """
    if kind is not None and kind not in KINDS:
        raise SpectrumFileError(f"kind must be one of {KINDS}, got {kind!r}")
    if not os.path.isfile(path):
        raise _fail(path, "file not found")
    if path.lower().endswith(JCAMP_SUFFIXES):
        x, y, file_kind = read_jcamp(path)
        if kind is not None and file_kind is not None and kind != file_kind:
            raise _fail(path, f"file says {file_kind} (##YUNITS) but kind={kind!r} was given")
        kind = kind or file_kind
        if kind is None:
            raise _fail(path, "##YUNITS is neither absorbance nor transmittance; state the kind")
    else:
        x, y = read_columns(path)
        if kind is None:
            raise _fail(path, "state whether the file holds absorbance or transmittance")
    x, y = _sorted_unique(path, x, y)
    a, notes = to_absorbance(path, y, kind)
    lo, hi, points = grid
    x_cov, a_cov = _cover(path, x, a, lo, hi, notes)
    target = spectra.grid(lo, hi, points)
    on_grid = spectra.resample(a_cov, x_cov, target)
    if np.max(on_grid) <= 0 or np.ptp(on_grid) == 0:
        raise _fail(path, f"spectrum is flat between {lo:g} and {hi:g} cm-1")
    notes.append(f"resampled linearly onto {points} points, {lo:g}–{hi:g} cm-1; max-normalised")
    return UserSpectrum(
        absorbance=on_grid / np.max(on_grid),
        grid_cm1=target,
        kind=kind,
        notes=tuple(notes),
        source_range_cm1=(float(x[0]), float(x[-1])),
    )
