"""Reading a user's IR spectrum from a file and putting it on the model grid.

Formats:

* two-column text (``.csv``, ``.txt``, ``.dat``, anything not ``.jdx``/``.dx``/``.jcamp``):
  wavenumber (cm⁻¹) and intensity per line, separated by commas, semicolons, tabs or spaces;
  header lines before the data and ``#`` comments are skipped. The caller states ``kind``
  ("absorbance" or "transmittance"): a text file does not say.
* JCAMP-DX (``.jdx``, ``.dx``, ``.jcamp``), read with the ``jcamp`` package, which applies
  ``##YFACTOR``, takes X from ``##FIRSTX``/``##LASTX``/``##NPOINTS`` for ``(X++(Y..Y))`` data
  and applies ``##XFACTOR`` to ``(XY..XY)`` pairs. ``##XUNITS`` 1/CM (or empty), MICROMETERS or
  NANOMETERS (wavelengths are converted to cm⁻¹). X may run in either direction. ``##YUNITS``
  gives ``kind`` unless the caller states it (a contradiction is an error):

  - absorbance-like ("absorbance"): ABSORBANCE, OPTICAL DENSITY, LOG(1/T); absorptivity,
    molar absorptivity, absorption coefficient or cross section, e.g. ABSORPTIVITY,
    ``(micromol/mol)-1m-1 (base 10)``, ``L/(mol cm)``, ``M-1 cm-1``; base 10 or base e. All
    are proportional to absorbance of the sample, and the constant factor (concentration, path
    length, ln 10) disappears in the max-normalisation below;
  - transmittance ("transmittance"): TRANSMITTANCE, TRANSMISSION, %T, as a fraction or in
    percent.

Conversion, each change of the data stated once in ``warnings`` (one line each):

* transmittance T is read as percent (divided by 100) when its maximum exceeds
  ``PERCENT_THRESHOLD`` (1.5), else as a fraction, whatever the units say (a note states a
  disagreement). T above 1 (noise above a 100 %
  baseline) is clipped to 1; T below ``TRANSMITTANCE_FLOOR`` (0.001, i.e. absorbance 3, the
  photometric limit of an FTIR; zeros are saturated bands) is raised to it; then
  A = −log10(T). T above ``TRANSMITTANCE_MAX`` (150 %) or below ``TRANSMITTANCE_MIN`` (−5 %) is
  not a transmittance and is refused.
* negative absorbance (baseline drift or over-subtraction) is clipped to 0, not shifted: the
  model was trained on spectra with a zero baseline and shifting would lift the whole baseline.
  A dip below −``NEGATIVE_ABSORBANCE_LIMIT`` (50 %) of the maximum is refused: then the zero
  level is as uncertain as the bands are strong.

Only the data inside the grid range (plus the neighbouring point on each side) is checked and
used. Coverage: a recorded range ending within ``EDGE_TOLERANCE_CM1`` (5 cm⁻¹) of a grid end is
extended to it with its end value (a note). Beyond that, grid points outside the recorded range
get absorbance 0, stated in one warning with the recorded range and the coverage. A file must
cover at least ``MIN_COVERAGE`` = 60 % of the grid span (2100 of 3500 cm⁻¹ for 500–4000). Why
60 %: every common mid-IR window or accessory passes with margin (KBr from 400, NaCl and
diamond ATR from ~650 = 96 %, BaF2 from ~800 = 91 %, CaF2 from ~1100 = 83 %), as do exports cut
a few hundred cm⁻¹ short at either end (454–3780 = 94 %); a file holding only one region, such
as the X–H stretches (2500–4000 = 43 %) or the fingerprint (500–1800 = 37 %), is refused, since
zero filling would tell the model that most of the bands are absent.

The result is linearly resampled onto the model grid and divided by its maximum. Every problem
raises ``SpectrumFileError`` with one line saying what to fix.
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
MIN_COVERAGE = 0.6  # fraction of the grid span the file must cover (see the module docstring)
PERCENT_THRESHOLD = 1.5
TRANSMITTANCE_FLOOR = 1e-3  # absorbance 3
TRANSMITTANCE_MAX = 1.5
TRANSMITTANCE_MIN = -0.05
NEGATIVE_ABSORBANCE_LIMIT = 0.5
JCAMP_SUFFIXES = (".jdx", ".dx", ".jcamp")
_SPLIT = re.compile(r"[,;\s]+")
_TRANSMITTANCE_MARKERS = ("TRANSMITTANCE", "TRANSMISSION", "%T")
_ABSORBANCE_MARKERS = ("ABSORBANCE", "OPTICAL DENSITY", "LOG(1/T)", "LOG10(1/T)")
_ABSORPTIVITY_MARKERS = (
    "ABSORPTIVITY",
    "ABSORPTION COEFFICIENT",
    "EXTINCTION",
    "CROSS SECTION",
    "CROSS-SECTION",
    "MOL)-1",
    "MOL-1",
    "/(MOL",
    "/MOL",
    "M-1",
    "M^-1",
    "BASE 10",
    "BASE E",
)


class SpectrumFileError(ValueError):
    """A spectrum file that cannot be used, with a one-line reason."""


@dataclasses.dataclass(frozen=True)
class UserSpectrum:
    """A user's spectrum on a model grid.

    Attributes:
        absorbance: [L] float64 on ``grid_cm1``, max-normalised to 1.
        grid_cm1: [L] wavenumbers.
        kind: what the file held ("absorbance", also for absorptivity units, or
            "transmittance").
        notes: human-readable statements of every conversion made; the warnings are among
            them, prefixed "warning: ".
        source_range_cm1: (min, max) wavenumber in the file.
        warnings: one line per change to the data (clipping, raising to a floor, zero fill).
        coverage: fraction of the grid span that the file recorded (0.6–1).
    """

    absorbance: np.ndarray
    grid_cm1: np.ndarray
    kind: str
    notes: tuple[str, ...]
    source_range_cm1: tuple[float, float]
    warnings: tuple[str, ...] = ()
    coverage: float = 1.0


@dataclasses.dataclass(frozen=True)
class YUnits:
    """What a ``##YUNITS`` string says: kind, a label for the notes, percent, natural log."""

    kind: str
    label: str
    percent: bool = False
    base_e: bool = False


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
    u = " ".join(units.replace("µ", "U").replace("μ", "U").strip().upper().split())
    if u in ("", "1/CM", "CM-1", "CM^-1", "CM**-1", "1/CM-1", "WAVENUMBER", "WAVENUMBERS"):
        return x
    if u in ("MICROMETERS", "MICROMETRES", "MICROMETER", "MICRONS", "UM", "WAVELENGTH (UM)"):
        if np.any(x <= 0):
            raise _fail(path, "wavelengths must be positive")
        return 1e4 / x
    if u in ("NANOMETERS", "NANOMETRES", "NM", "WAVELENGTH (NM)"):
        if np.any(x <= 0):
            raise _fail(path, "wavelengths must be positive")
        return 1e7 / x
    raise _fail(path, f"##XUNITS={units} is not supported (use 1/CM, MICROMETERS or NANOMETERS)")


def parse_yunits(units: str) -> YUnits | None:
    """What ``##YUNITS`` says (see the module docstring), or None if it is none of those."""
    u = " ".join(units.strip().upper().split())
    if not u:
        return None
    squeezed = u.replace(" ", "")
    if any(m in squeezed for m in _TRANSMITTANCE_MARKERS):
        percent = "%" in u or "PERCENT" in u
        return YUnits("transmittance", "transmittance", percent=percent)
    base_e = "BASE E" in u or "NAPIERIAN" in u or "LN(" in u
    if any(m in u for m in _ABSORBANCE_MARKERS):
        return YUnits("absorbance", "absorbance", base_e=base_e)
    if any(m in u for m in _ABSORPTIVITY_MARKERS):
        return YUnits("absorbance", "absorptivity", base_e=base_e)
    return None


def _kind_from_units(units: str) -> str | None:
    parsed = parse_yunits(units)
    return None if parsed is None else parsed.kind


def _read_jcamp_dict(path: str) -> dict:
    import jcamp

    try:
        with contextlib.redirect_stdout(io.StringIO()):  # jcamp prints its check warnings
            data = jcamp.readfile(path)
    except OSError as e:
        raise _fail(path, f"cannot read file ({e.strerror or e})") from None
    except KeyError as e:  # the parser indexes ##FIRSTX, ##LASTX, ##NPOINTS unchecked
        label = str(e).strip("'\"").upper()
        raise _fail(
            path,
            f"JCAMP-DX header lacks ##{label} (X++(Y..Y) data needs ##FIRSTX, ##LASTX, ##NPOINTS)",
        ) from None
    except Exception as e:  # noqa: BLE001 - the parser raises many types on malformed input
        raise _fail(path, f"not a readable JCAMP-DX file ({type(e).__name__}: {e})") from None
    if data.get("children"):
        raise _fail(path, "compound (multi-block) JCAMP-DX files are not supported")
    return data


def _jcamp_xy(path: str, data: dict) -> tuple[np.ndarray, np.ndarray]:
    x = np.asarray(data.get("x", []), dtype=np.float64)
    y = np.asarray(data.get("y", []), dtype=np.float64)
    if x.size < 2 or x.size != y.size:
        raise _fail(path, f"JCAMP-DX data block holds {x.size} x and {y.size} y values")
    return _x_to_cm1(path, x, str(data.get("xunits", ""))), y


def read_jcamp(path: str) -> tuple[np.ndarray, np.ndarray, str | None]:
    """(x [n] cm⁻¹, y [n], kind from ##YUNITS or None) from a JCAMP-DX file."""
    data = _read_jcamp_dict(path)
    x, y = _jcamp_xy(path, data)
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


def _transmittance(path: str, t: np.ndarray, percent: bool, notes: list, warns: list):
    top = float(np.max(t))
    if top > PERCENT_THRESHOLD:
        why = f"max {top:.4g} > {PERCENT_THRESHOLD:g}" + (", as the units say" if percent else "")
        notes.append(f"transmittance read as percent ({why}) and divided by 100")
        t = t / 100.0
    else:
        but = f"; not percent as the units say, max {top:.4g} <= {PERCENT_THRESHOLD:g}"
        notes.append("transmittance read as a fraction" + (but if percent else ""))
    lo, hi = float(np.min(t)), float(np.max(t))
    if hi > TRANSMITTANCE_MAX or lo < TRANSMITTANCE_MIN:
        raise _fail(
            path,
            f"transmittance spans {100 * lo:.4g}–{100 * hi:.4g} %, outside "
            f"{100 * TRANSMITTANCE_MIN:g}–{100 * TRANSMITTANCE_MAX:g} %; not a transmittance "
            "(state the right kind)",
        )
    if hi > 1:
        warns.append(
            f"{int(np.sum(t > 1))} transmittance values above 1 (up to {hi:.4g}, noise above "
            "the 100 % baseline) clipped to 1 (absorbance 0)"
        )
    if lo < TRANSMITTANCE_FLOOR:
        warns.append(
            f"{int(np.sum(t < TRANSMITTANCE_FLOOR))} transmittance values below "
            f"{TRANSMITTANCE_FLOOR:g} (down to {lo:.4g}; saturated bands) raised to "
            f"{TRANSMITTANCE_FLOOR:g} (absorbance {-np.log10(TRANSMITTANCE_FLOOR):g}) before "
            "-log10"
        )
    notes.append("absorbance = -log10(T)")
    return -np.log10(np.clip(t, TRANSMITTANCE_FLOOR, 1.0))


def to_absorbance(
    path: str, y: np.ndarray, kind: str, units: YUnits | None = None
) -> tuple[np.ndarray, list[str], list[str]]:
    """Absorbance [n] (see the module docstring), the notes and the warnings (one line each)."""
    notes, warns = [], []
    if units is not None and units.label == "absorptivity":
        notes.append(
            "absorptivity (absorbance per concentration and path length) used as absorbance; "
            "the constant factor is removed by max-normalisation"
        )
    if units is not None and units.base_e:
        notes.append("base-e values are ln(10) times decadic absorbance; removed by normalisation")
    if kind == "transmittance":
        a = _transmittance(path, y, bool(units and units.percent), notes, warns)
    else:
        a = y.astype(np.float64)
    top = float(np.max(a))
    if top <= 0 or np.max(a) == np.min(a):
        raise _fail(path, "spectrum is flat or has no positive absorbance")
    low = float(np.min(a))
    if low < -NEGATIVE_ABSORBANCE_LIMIT * top:
        raise _fail(
            path,
            f"absorbance goes down to {low:.4g}, below -{100 * NEGATIVE_ABSORBANCE_LIMIT:g}% "
            f"of its maximum {top:.4g}; correct the baseline or state the right kind",
        )
    if low < 0:
        warns.append(
            f"{int(np.sum(a < 0))} negative absorbance values (down to {low:.4g}, "
            f"{100 * -low / top:.3g}% of the maximum) clipped to 0; baseline not shifted"
        )
        a = np.maximum(a, 0.0)
    return a, notes, warns


def _trim(x: np.ndarray, y: np.ndarray, lo: float, hi: float):
    """The points inside [lo, hi] plus the nearest one outside on each side."""
    i0 = max(int(np.searchsorted(x, lo, side="right")) - 1, 0)
    i1 = min(int(np.searchsorted(x, hi, side="left")) + 1, x.size)
    return x[i0:i1], y[i0:i1]


def coverage(x_lo: float, x_hi: float, lo: float, hi: float) -> float:
    """Fraction of [lo, hi] inside [x_lo, x_hi]."""
    return max(0.0, min(x_hi, hi) - max(x_lo, lo)) / (hi - lo)


def _on_grid(x, a, target, recorded: str, notes: list, warns: list) -> np.ndarray:
    """Linear interpolation onto ``target``; short edges extended, the rest filled with 0.

    ``x`` [n] ascending holds the points inside the grid range and at most one beyond each
    end; ``recorded`` is the file's whole range, for the warning.
    """
    lo, hi = float(target[0]), float(target[-1])
    on_grid = np.interp(target, x, a)  # constant beyond the ends
    x0, x1 = float(x[0]), float(x[-1])
    filled = []
    if x0 > lo + EDGE_TOLERANCE_CM1:
        on_grid[target < x0] = 0.0
        filled.append(f"{lo:g}–{x0:.1f}")
    elif x0 > lo:
        notes.append(f"low end extended from {x0:.1f} to {lo:g} cm-1 with the end value")
    if x1 < hi - EDGE_TOLERANCE_CM1:
        on_grid[target > x1] = 0.0
        filled.append(f"{x1:.1f}–{hi:g}")
    elif x1 < hi:
        notes.append(f"high end extended from {x1:.1f} to {hi:g} cm-1 with the end value")
    if filled:
        warns.append(
            f"recorded range {recorded} cm-1 covers "
            f"{100 * coverage(x0, x1, lo, hi):.1f}% of the model grid {lo:g}–{hi:g} cm-1; "
            f"absorbance set to 0 where not recorded ({' and '.join(filled)} cm-1)"
        )
    return on_grid


def read_spectrum(path: str, *, kind: str | None = None, grid=spectra.MODEL_GRID) -> UserSpectrum:
    """Reads a spectrum file and returns it on ``grid`` as max-normalised absorbance.

    Args:
        path: a two-column text file or a JCAMP-DX file (by suffix).
        kind: "absorbance" or "transmittance"; required for text files, optional for JCAMP-DX.
        grid: (lo, hi, points) of the target grid (default: the model grid).

    Returns:
        A ``UserSpectrum``; its ``warnings`` state every change made to the data, one line each.

    Raises:
        SpectrumFileError: unreadable file, unknown/contradicting kind, NaN values, less than
            ``MIN_COVERAGE`` of the grid recorded, absorbance or transmittance beyond the
            limits of the module docstring, flat spectrum.
    """
    if kind is not None and kind not in KINDS:
        raise SpectrumFileError(f"kind must be one of {KINDS}, got {kind!r}")
    if not os.path.isfile(path):
        raise _fail(path, "file not found")
    units, units_note = None, []
    if path.lower().endswith(JCAMP_SUFFIXES):
        data = _read_jcamp_dict(path)
        x, y = _jcamp_xy(path, data)
        yunits = str(data.get("yunits", ""))
        units = parse_yunits(yunits)
        if kind is not None and units is not None and kind != units.kind:
            raise _fail(path, f"file says {units.kind} (##YUNITS) but kind={kind!r} was given")
        if units is None and kind is None:
            raise _fail(
                path,
                f"##YUNITS={yunits or '(none)'} is neither absorbance-like (absorbance, "
                "absorptivity) nor transmittance; state the kind",
            )
        kind = kind or units.kind
        if units is not None:
            units_note.append(f"##YUNITS={yunits} read as {units.label}")
    else:
        x, y = read_columns(path)
        if kind is None:
            raise _fail(path, "state whether the file holds absorbance or transmittance")
    x, y = _sorted_unique(path, x, y)
    lo, hi, points = grid
    share = coverage(float(x[0]), float(x[-1]), lo, hi)
    if share < MIN_COVERAGE:
        raise _fail(
            path,
            f"wavenumbers span {x[0]:.1f}–{x[-1]:.1f} cm-1, {100 * share:.1f}% of the model "
            f"grid {lo:g}–{hi:g} cm-1; at least {100 * MIN_COVERAGE:g}% must be recorded",
        )
    x_in, y_in = _trim(x, y, lo, hi)
    a, notes, warns = to_absorbance(path, y_in, kind, units)
    notes = units_note + notes
    target = spectra.grid(lo, hi, points)
    on_grid = _on_grid(x_in, a, target, f"{x[0]:.1f}–{x[-1]:.1f}", notes, warns)
    if np.max(on_grid) <= 0 or np.ptp(on_grid) == 0:
        raise _fail(path, f"spectrum is flat between {lo:g} and {hi:g} cm-1")
    notes.append(f"resampled linearly onto {points} points, {lo:g}–{hi:g} cm-1; max-normalised")
    notes.extend(f"warning: {w}" for w in warns)
    return UserSpectrum(
        absorbance=on_grid / np.max(on_grid),
        grid_cm1=target,
        kind=kind,
        notes=tuple(notes),
        source_range_cm1=(float(x[0]), float(x[-1])),
        warnings=tuple(warns),
        coverage=share,
    )
