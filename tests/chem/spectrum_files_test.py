import numpy as np
import pytest

from irgeodiff_jax.chem import spectra, spectrum_files
from irgeodiff_jax.chem.spectrum_files import SpectrumFileError, read_spectrum

FREQS = np.array([720.0, 1050.0, 1460.0, 1720.0, 2950.0, 3400.0])
INTENS = np.array([20.0, 60.0, 15.0, 100.0, 45.0, 30.0])


def _absorbance(x):
    """Broadened test lines at wavenumbers ``x`` (any order)."""
    order = np.argsort(x)
    y = np.empty_like(x)
    y[order] = spectra.broaden(FREQS, INTENS, x[order], fwhm_cm1=15.0)
    return y


def _expected_on_model_grid():
    y = _absorbance(spectra.grid(*spectra.MODEL_GRID))
    return y / y.max()


def _write(path, text):
    path.write_text(text)
    return str(path)


def _jcamp(path, x, y, yunits, yfactor=1e-6, xunits="1/CM", per_line=10):
    """A hand-written JCAMP-DX 4.24 file in the ##XYDATA=(X++(Y..Y)) AFFN format."""
    ints = np.round(y / yfactor).astype(np.int64)
    lines = [
        "##TITLE=test spectrum",
        "##JCAMP-DX=4.24",
        "##DATA TYPE=INFRARED SPECTRUM",
        f"##XUNITS={xunits}",
        f"##YUNITS={yunits}",
        "##XFACTOR=1.0",
        f"##YFACTOR={yfactor}",
        f"##FIRSTX={x[0]:.6f}",
        f"##LASTX={x[-1]:.6f}",
        f"##NPOINTS={x.size}",
        f"##FIRSTY={ints[0] * yfactor}",
        "##XYDATA=(X++(Y..Y))",
    ]
    for start in range(0, x.size, per_line):
        values = " ".join(str(v) for v in ints[start : start + per_line])
        lines.append(f"{x[start]:.6f} {values}")
    lines.append("##END=")
    return _write(path, "\n".join(lines) + "\n")


def test_csv_absorbance_matches_direct_broadening(tmp_path):
    x = np.arange(400.0, 4100.0, 0.5)
    rows = "\n".join(f"{a:.2f},{b:.8e}" for a, b in zip(x, _absorbance(x), strict=True))
    path = _write(tmp_path / "a.csv", "wavenumber,absorbance\n" + rows + "\n")
    s = read_spectrum(path, kind="absorbance")
    assert s.absorbance.shape == (3200,) and s.absorbance.max() == 1.0 and s.kind == "absorbance"
    np.testing.assert_allclose(s.absorbance, _expected_on_model_grid(), atol=2e-3)
    assert s.source_range_cm1 == (400.0, 4099.5)
    assert s.warnings == () and s.coverage == 1.0


def test_txt_percent_transmittance_descending_with_header(tmp_path):
    x = np.arange(4050.0, 450.0, -1.0)  # instruments often write high → low
    a = _absorbance(x)
    t = 100.0 * 10 ** (-(a / a.max()))  # percent transmittance, max absorbance 1
    rows = "\n".join(f"{u:.1f}\t{v:.6f}" for u, v in zip(x, t, strict=True))
    path = _write(tmp_path / "t.txt", "# FTIR export\nWavenumber\tT%\n" + rows + "\n")
    s = read_spectrum(path, kind="transmittance")
    assert any("percent" in n for n in s.notes) and any("-log10" in n for n in s.notes)
    np.testing.assert_allclose(s.absorbance, _expected_on_model_grid(), atol=2e-3)


def test_jcamp_transmittance_fraction_and_absorbance(tmp_path):
    x = np.linspace(400.0, 4200.0, 3801)
    a = _absorbance(x) / _absorbance(x).max()
    t_path = _jcamp(tmp_path / "t.jdx", x, 10 ** (-a), "TRANSMITTANCE")
    s = read_spectrum(t_path)  # kind from ##YUNITS
    assert s.kind == "transmittance" and any("fraction" in n for n in s.notes)
    np.testing.assert_allclose(s.absorbance, _expected_on_model_grid(), atol=3e-3)
    a_path = _jcamp(tmp_path / "a.jdx", x, a, "ABSORBANCE")
    np.testing.assert_allclose(
        read_spectrum(a_path, kind="absorbance").absorbance, _expected_on_model_grid(), atol=2e-3
    )
    with pytest.raises(SpectrumFileError, match="file says absorbance"):
        read_spectrum(a_path, kind="transmittance")


def test_jcamp_micrometres_are_converted(tmp_path):
    x_um = np.linspace(1e4 / 4100.0, 1e4 / 450.0, 20000)  # X++(Y..Y): evenly spaced in µm
    x_cm1 = 1e4 / x_um
    a = _absorbance(x_cm1)
    path = _jcamp(tmp_path / "um.jdx", x_um, a / a.max(), "ABSORBANCE", xunits="MICROMETERS")
    s = read_spectrum(path)
    np.testing.assert_allclose(s.absorbance, _expected_on_model_grid(), atol=5e-3)


def _csv(tmp_path, x, y, name="bad.csv"):
    rows = "\n".join(f"{a},{b}" for a, b in zip(x, y, strict=True))
    return _write(tmp_path / name, rows + "\n")


@pytest.mark.parametrize(
    "case, kind, message",
    [
        ("narrow", "absorbance", "at least 60% must be recorded"),
        ("nan", "absorbance", "NaN"),
        ("negative", "absorbance", "below -50%"),
        ("flat", "absorbance", "flat"),
        ("negative_t", "transmittance", "not a transmittance"),
        ("no_kind", None, "state whether"),
        ("three_columns", "absorbance", "3 columns"),
        ("garbage", "absorbance", "no two-column numeric data"),
        ("text_in_data", "absorbance", "line 3 is not two numbers"),
    ],
)
def test_bad_inputs_raise_one_line_errors(tmp_path, case, kind, message):
    x = np.arange(400.0, 4100.0, 2.0)
    y = _absorbance(x)
    if case == "narrow":
        path = _csv(tmp_path, x[x > 2000], y[x > 2000])  # 57% of 500–4000
    elif case == "nan":
        y[10] = np.nan
        path = _csv(tmp_path, x, y)
    elif case == "negative":
        path = _csv(tmp_path, x, y - 0.6 * y.max())
    elif case == "flat":
        path = _csv(tmp_path, x, np.full_like(x, 0.3))
    elif case == "negative_t":
        path = _csv(tmp_path, x, np.where(x > 3000, -0.5, 0.5))
    elif case in ("no_kind",):
        path = _csv(tmp_path, x, y)
    elif case == "three_columns":
        path = _write(tmp_path / "bad.csv", "500,0.1,3\n600,0.2,4\n")
    elif case == "garbage":
        path = _write(tmp_path / "bad.csv", "hello world\nnot a spectrum\n")
    else:
        path = _write(tmp_path / "bad.csv", "500,0.1\n600,0.2\nabc,def\n")
    with pytest.raises(SpectrumFileError, match=message) as err:
        read_spectrum(path, kind=kind)
    assert "\n" not in str(err.value) and "bad.csv" in str(err.value)


def test_missing_file_bad_kind_and_unreadable_jcamp(tmp_path):
    with pytest.raises(SpectrumFileError, match="file not found"):
        read_spectrum(str(tmp_path / "none.csv"), kind="absorbance")
    with pytest.raises(SpectrumFileError, match="kind must be one of"):
        read_spectrum(str(tmp_path / "none.csv"), kind="reflectance")
    path = _write(tmp_path / "bad.jdx", "##TITLE=x\n##XYDATA=(X++(Y..Y))\n1 2 3\n##END=\n")
    with pytest.raises(SpectrumFileError, match="bad.jdx"):
        read_spectrum(path, kind="absorbance")


def test_small_baseline_noise_is_clipped_and_stated(tmp_path):
    x = np.arange(400.0, 4100.0, 2.0)
    y = _absorbance(x)
    y[100] = -0.001 * y.max()  # at 600 cm-1 (points outside 500–4000 are not used)
    s = read_spectrum(_csv(tmp_path, x, y, "noisy.csv"), kind="absorbance")
    assert s.absorbance.min() >= 0 and any("clipped to 0" in n for n in s.notes)
    assert len(s.warnings) == 1 and "1 negative absorbance values" in s.warnings[0]


# --- instrument exports (issue 9, item 5): units, clipping, partial coverage ------------------

GRID = spectra.grid(*spectra.MODEL_GRID)
_SQZ = ("@ABCDEFGHI", "@abcdefghi")
_DIF = ("%JKLMNOPQR", "%jklmnopqr")


def _coded(value, digits):
    text = str(abs(int(value)))
    return digits[0 if value >= 0 else 1][int(text[0])] + text[1:]


def _jcamp_dif(path, x, y, yunits, *, yfactor, xfactor=1.0, per_line=12):
    """JCAMP-DX ``(X++(Y..Y))`` in compressed DIF form with Y checks (the usual archive form).

    Each line holds X/XFACTOR, the first Y in SQZ form and the differences in DIF form; the last
    Y of a line is repeated at the start of the next as its check value.
    """
    ints = np.round(y / yfactor).astype(np.int64)
    lines = [
        "##TITLE=synthetic test spectrum",
        "##JCAMP-DX=4.24",
        "##DATA TYPE=INFRARED SPECTRUM",
        "$$ written by spectrum_files_test.py",
        "##XUNITS=1/CM",
        f"##YUNITS={yunits}",
        f"##XFACTOR={xfactor}",
        f"##YFACTOR={yfactor}",
        f"##DELTAX={(x[-1] - x[0]) / (x.size - 1):.6f}",
        f"##FIRSTX={x[0]:.6f}",
        f"##LASTX={x[-1]:.6f}",
        f"##FIRSTY={ints[0] * yfactor}",
        f"##NPOINTS={x.size}",
        "##XYDATA=(X++(Y..Y))",
    ]
    for start in range(0, x.size - 1, per_line):
        stop = min(start + per_line, x.size - 1)
        chunk = ints[start : stop + 1]
        text = f"{x[start] / xfactor:.3f}" + _coded(chunk[0], _SQZ)
        lines.append(text + "".join(_coded(d, _DIF) for d in np.diff(chunk)))
    lines.append("##END=")
    return _write(path, "\n".join(lines) + "\n")


def _jcamp_xy_pairs(path, x, y, yunits, *, xfactor, yfactor):
    """JCAMP-DX ``(XY..XY)`` pairs, X and Y stored as integers times XFACTOR / YFACTOR."""
    xi, yi = np.round(x / xfactor).astype(np.int64), np.round(y / yfactor).astype(np.int64)
    pairs = [f"{a},{b}" for a, b in zip(xi, yi, strict=True)]
    lines = [
        "##TITLE=synthetic pairs",
        "##JCAMP-DX=4.24",
        "##XUNITS=1/CM",
        f"##YUNITS={yunits}",
        f"##XFACTOR={xfactor}",
        f"##YFACTOR={yfactor}",
        f"##NPOINTS={x.size}",
        "##XYPOINTS=(XY..XY)",
        *(" ".join(pairs[i : i + 6]) for i in range(0, len(pairs), 6)),
        "##END=",
    ]
    return _write(path, "\n".join(lines) + "\n")


def _rule_on_grid(x, a):
    """What the reader must give for absorbance ``a`` at ``x``: linear, 0 where not recorded
    (ends within 5 cm-1 of the grid ends are extended instead), max 1."""
    order = np.argsort(x)
    out = np.interp(GRID, x[order], a[order])  # constant beyond the ends
    if x.min() > GRID[0] + 5.0:
        out[GRID < x.min()] = 0.0
    if x.max() < GRID[-1] - 5.0:
        out[GRID > x.max()] = 0.0
    return out / out.max()


def _quantised(y, factor):
    return np.round(y / factor) * factor


def _norm_absorbance(x):
    a = _absorbance(x)
    return a / a.max()


@pytest.mark.parametrize(
    "yunits, label, base_e",
    [
        ("(micromol/mol)-1m-1 (base 10)", "absorptivity", False),
        ("ABSORPTIVITY", "absorptivity", False),
        ("MOLAR ABSORPTIVITY L/(mol cm)", "absorptivity", False),
        ("L mol-1 cm-1", "absorptivity", False),
        ("(micromol/mol)-1m-1 (base e)", "absorptivity", True),
        ("ABSORBANCE", "absorbance", False),
    ],
)
def test_jcamp_absorptivity_units_dif_descending(tmp_path, yunits, label, base_e):
    x = np.linspace(4000.0, 450.0, 3551)  # descending, 1 cm-1 steps, stored as X/XFACTOR
    y = 3.2e-4 * _norm_absorbance(x) * (np.log(10.0) if base_e else 1.0)
    path = _jcamp_dif(tmp_path / "nist.jdx", x, y, yunits, yfactor=1e-9, xfactor=0.5)
    s = read_spectrum(path)
    assert s.kind == "absorbance" and s.warnings == () and s.coverage == 1.0
    assert s.source_range_cm1 == (450.0, 4000.0)
    assert s.notes[0] == f"##YUNITS={yunits} read as {label}"
    assert any("absorptivity (absorbance per concentration" in n for n in s.notes) == (
        label == "absorptivity"
    )
    assert any("base-e values" in n for n in s.notes) == base_e
    np.testing.assert_allclose(s.absorbance, _rule_on_grid(x, _quantised(y, 1e-9)), atol=1e-9)
    np.testing.assert_allclose(s.absorbance, _expected_on_model_grid(), atol=2e-3)
    with pytest.raises(SpectrumFileError, match="file says absorbance"):
        read_spectrum(path, kind="transmittance")


def test_jcamp_xy_pairs_apply_xfactor_and_yfactor(tmp_path):
    x = np.arange(4100.0, 449.9, -0.5)
    y = _norm_absorbance(x)
    path = _jcamp_xy_pairs(tmp_path / "pairs.dx", x, y, "ABSORBANCE", xfactor=0.1, yfactor=1e-7)
    s = read_spectrum(path)
    assert s.source_range_cm1 == pytest.approx((450.0, 4100.0)) and s.warnings == ()
    np.testing.assert_allclose(s.absorbance, _expected_on_model_grid(), atol=2e-3)


def test_unknown_yunits_need_a_stated_kind(tmp_path):
    x = np.linspace(450.0, 4000.0, 3551)
    path = _jcamp(tmp_path / "au.jdx", x, _norm_absorbance(x), "ARBITRARY UNITS")
    with pytest.raises(SpectrumFileError, match=r"##YUNITS=ARBITRARY UNITS is neither absorb"):
        read_spectrum(path)
    np.testing.assert_allclose(
        read_spectrum(path, kind="absorbance").absorbance, _expected_on_model_grid(), atol=2e-3
    )


@pytest.mark.parametrize(
    "units, kind, label, percent, base_e",
    [
        ("TRANSMITTANCE", "transmittance", "transmittance", False, False),
        ("%T", "transmittance", "transmittance", True, False),
        ("% Transmittance", "transmittance", "transmittance", True, False),
        ("PERCENT TRANSMISSION", "transmittance", "transmittance", True, False),
        ("absorbance", "absorbance", "absorbance", False, False),
        ("Absorbance (base e)", "absorbance", "absorbance", False, True),
        ("(micromol/mol)-1m-1 (base 10)", "absorbance", "absorptivity", False, False),
        ("M-1 cm-1", "absorbance", "absorptivity", False, False),
        ("cm2/molecule CROSS SECTION", "absorbance", "absorptivity", False, False),
        ("REFLECTANCE", None, None, False, False),
        ("ARBITRARY UNITS", None, None, False, False),
        ("", None, None, False, False),
    ],
)
def test_parse_yunits(units, kind, label, percent, base_e):
    parsed = spectrum_files.parse_yunits(units)
    if kind is None:
        assert parsed is None
    else:
        assert (parsed.kind, parsed.label, parsed.percent, parsed.base_e) == (
            kind,
            label,
            percent,
            base_e,
        )


def _partial_file(tmp_path, fmt, x):
    a = _norm_absorbance(x)
    if fmt == "jdx-absorptivity":  # like an archive gas-phase file
        y = _quantised(2.5e-4 * a, 1e-9)
        return _jcamp_dif(
            tmp_path / "p.jdx", x, y, "(micromol/mol)-1m-1 (base 10)", yfactor=1e-9
        ), y
    if fmt == "jdx-transmittance":
        t = _quantised(10 ** (-a), 1e-8)
        return _jcamp_dif(tmp_path / "p.jdx", x, t, "TRANSMITTANCE", yfactor=1e-8), -np.log10(t)
    if fmt == "jdx-absorbance":
        y = _quantised(a, 1e-6)
        return _jcamp(tmp_path / "p.jdx", x, y, "ABSORBANCE"), y
    # a chemist's ATR export: descending, percent transmittance, a header line
    t = 100.0 * 10 ** (-a)
    rows = "\n".join(f"{u:.2f},{v:.8f}" for u, v in zip(x, t, strict=True))
    path = _write(tmp_path / "atr.csv", "Wavenumber (cm-1),%T\n" + rows + "\n")
    return path, -np.log10(np.round(t, 8) / 100.0)


@pytest.mark.parametrize(
    "x0, x1, fmt, share, filled",
    [
        (454.0, 3780.0, "jdx-absorptivity", "93.7", "3780.0–4000"),
        (449.0, 3801.0, "jdx-transmittance", "94.3", "3801.0–4000"),
        (600.0, 4000.0, "jdx-absorbance", "97.1", "500–600.0"),
        (650.0, 4000.0, "csv-percent", "95.7", "500–650.0"),
    ],
)
def test_partial_range_is_filled_with_zero_and_stated(tmp_path, x0, x1, fmt, share, filled):
    x = np.linspace(x0, x1, int(round(2 * (x1 - x0))) + 1)  # 0.5 cm-1 steps
    if fmt == "csv-percent":
        x = x[::-1]
    path, a = _partial_file(tmp_path, fmt, x)
    s = read_spectrum(path, kind="transmittance" if fmt == "csv-percent" else None)
    assert s.warnings == (
        f"recorded range {x0:.1f}–{x1:.1f} cm-1 covers {share}% of the model grid "
        f"500–4000 cm-1; absorbance set to 0 where not recorded ({filled} cm-1)",
    )
    assert "warning: " + s.warnings[0] in s.notes
    assert s.coverage == pytest.approx((min(x1, 4000.0) - max(x0, 500.0)) / 3500.0)
    outside = (GRID < x0) | (GRID > x1)
    assert outside.sum() > 0 and np.all(s.absorbance[outside] == 0.0)
    np.testing.assert_allclose(s.absorbance, _rule_on_grid(x, a), atol=1e-6)
    np.testing.assert_allclose(s.absorbance[~outside], _expected_on_model_grid()[~outside], 0, 3e-3)


def test_transmittance_above_one_is_clipped_to_one(tmp_path):
    x = np.linspace(400.0, 4200.0, 3801)
    t = 10 ** (-_norm_absorbance(x))
    noisy = (x >= 1800.0) & (x <= 1900.0)
    t[noisy] = 1.10  # noise above the 100 % baseline
    path = _jcamp(tmp_path / "t110.jdx", x, t, "TRANSMITTANCE", yfactor=1e-8)
    s = read_spectrum(path)
    assert s.warnings == (
        "101 transmittance values above 1 (up to 1.1, noise above the 100 % baseline) "
        "clipped to 1 (absorbance 0)",
    )
    assert np.all(s.absorbance[(GRID > 1800.0) & (GRID < 1900.0)] == 0.0)
    a = -np.log10(np.minimum(_quantised(t, 1e-8), 1.0))
    np.testing.assert_allclose(s.absorbance, _rule_on_grid(x, a), atol=1e-7)
    keep = (GRID < 1790.0) | (GRID > 1910.0)
    np.testing.assert_allclose(s.absorbance[keep], _expected_on_model_grid()[keep], atol=3e-3)


def test_transmittance_zeros_are_raised_to_the_floor(tmp_path):
    x = np.linspace(400.0, 4200.0, 3801)
    a_true = 4.0 * _norm_absorbance(x)  # strongest band would be absorbance 4
    t = _quantised(10 ** (-a_true), 1e-9)
    t[a_true > 3.5] = 0.0  # a saturated band reads exactly 0
    path = _jcamp(tmp_path / "t0.jdx", x, t, "TRANSMITTANCE", yfactor=1e-9)
    s = read_spectrum(path)
    n = int(np.sum(t < 1e-3))
    assert n > 5 and s.warnings == (
        f"{n} transmittance values below 0.001 (down to 0; saturated bands) raised to 0.001 "
        "(absorbance 3) before -log10",
    )
    a = -np.log10(np.maximum(t, 1e-3))  # max 3: the plateau normalises to exactly 1
    np.testing.assert_allclose(s.absorbance, _rule_on_grid(x, a), atol=1e-6)
    assert np.sum(s.absorbance == 1.0) >= 3 and np.all(s.absorbance <= 1.0)
    unsaturated = np.abs(GRID - 2950.0) < 30.0
    np.testing.assert_allclose(
        s.absorbance[unsaturated], (4.0 / 3.0) * _expected_on_model_grid()[unsaturated], atol=5e-3
    )


def test_absorbance_dip_is_clipped_to_zero_not_shifted(tmp_path):
    x = np.linspace(400.0, 4200.0, 3801)
    dip = np.exp(-(((x - 2200.0) / 40.0) ** 2))
    y = 0.9 * _norm_absorbance(x)
    y = y - (0.086 + y[x == 2200.0]) * dip  # baseline sags to -0.086 at 2200 cm-1
    y = _quantised(y, 1e-6)
    assert y.min() == pytest.approx(-0.086, abs=1e-5)
    path = _jcamp(tmp_path / "dip.jdx", x, y, "ABSORBANCE")
    s = read_spectrum(path)
    n = int(np.sum(y < 0))
    assert s.warnings == (
        f"{n} negative absorbance values (down to {y.min():.4g}, "
        f"{100 * -y.min() / y.max():.3g}% of the maximum) clipped to 0; baseline not shifted",
    )
    assert "down to -0.086" in s.warnings[0]
    assert np.all(s.absorbance[np.abs(GRID - 2200.0) < 20.0] == 0.0)
    np.testing.assert_allclose(s.absorbance, _rule_on_grid(x, np.maximum(y, 0.0)), atol=1e-9)
    far = np.abs(GRID - 2200.0) > 150.0  # bands untouched: no offset was added
    np.testing.assert_allclose(s.absorbance[far], _expected_on_model_grid()[far], atol=3e-3)


def test_percent_transmittance_units_and_values_above_100(tmp_path):
    x = np.linspace(450.0, 4000.0, 3551)
    t = 100.0 * 10 ** (-_norm_absorbance(x))
    t[(x > 2400.0) & (x < 2410.0)] = 100.4  # 9 points of baseline noise
    path = _jcamp(tmp_path / "pt.jdx", x, t, "%T", yfactor=1e-6)
    s = read_spectrum(path)
    assert s.kind == "transmittance" and s.notes[0] == "##YUNITS=%T read as transmittance"
    assert (
        "transmittance read as percent (max 100.4 > 1.5, as the units say) and divided by 100"
        in s.notes
    )
    assert s.warnings == (
        "9 transmittance values above 1 (up to 1.004, noise above the 100 % baseline) "
        "clipped to 1 (absorbance 0)",
    )
    a = -np.log10(np.minimum(_quantised(t, 1e-6) / 100.0, 1.0))
    np.testing.assert_allclose(s.absorbance, _rule_on_grid(x, a), atol=1e-7)


@pytest.mark.parametrize(
    "x0, x1, share",
    [
        (2500.0, 4000.0, "42.9"),
        (500.0, 1800.0, "37.1"),
        (1910.0, 4000.0, "59.7"),
        (4000.0, 9000.0, "0.0"),
    ],
)
def test_too_little_coverage_is_refused_with_the_threshold(tmp_path, x0, x1, share):
    x = np.linspace(x0, x1, 500)
    path = _csv(tmp_path, x, _norm_absorbance(x) + 0.01, "short.csv")
    with pytest.raises(SpectrumFileError) as err:
        read_spectrum(path, kind="absorbance")
    assert str(err.value) == (
        f"short.csv: wavenumbers span {x0:.1f}–{x1:.1f} cm-1, {share}% of the model grid "
        "500–4000 cm-1; at least 60% must be recorded"
    )
    assert spectrum_files.MIN_COVERAGE == 0.6


def test_exactly_the_threshold_is_accepted(tmp_path):
    x = np.linspace(1900.0, 4000.0, 4201)  # 2100 of 3500 cm-1 = 60 %
    s = read_spectrum(_csv(tmp_path, x, _norm_absorbance(x), "edge.csv"), kind="absorbance")
    assert s.coverage == pytest.approx(0.6) and len(s.warnings) == 1
    assert np.all(s.absorbance[GRID < 1900.0] == 0.0) and s.absorbance.max() == 1.0


def test_out_of_range_transmittance_and_missing_firstx_are_refused(tmp_path):
    x = np.linspace(450.0, 4000.0, 200)
    path = _csv(tmp_path, x, np.where(x > 3000.0, 180.0, 50.0), "t180.csv")
    with pytest.raises(SpectrumFileError, match=r"spans 50–180 %, outside -5–150 %"):
        read_spectrum(path, kind="transmittance")
    bad = _write(
        tmp_path / "nofirstx.jdx",
        "##TITLE=x\n##YUNITS=ABSORBANCE\n##LASTX=4000\n##NPOINTS=3\n"
        "##XYDATA=(X++(Y..Y))\n500 1 2 3\n##END=\n",
    )
    with pytest.raises(SpectrumFileError, match=r"nofirstx.jdx: JCAMP-DX header lacks ##FIRSTX"):
        read_spectrum(bad)
