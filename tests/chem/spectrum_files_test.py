import numpy as np
import pytest

from irgeodiff_jax.chem import spectra
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
        ("narrow", "absorbance", "must cover 500–4000"),
        ("nan", "absorbance", "NaN"),
        ("negative", "absorbance", "below -1%"),
        ("flat", "absorbance", "flat"),
        ("zero_t", "transmittance", r"transmittance must be in \(0, 1\]"),
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
        path = _csv(tmp_path, x[x > 1000], y[x > 1000])
    elif case == "nan":
        y[10] = np.nan
        path = _csv(tmp_path, x, y)
    elif case == "negative":
        path = _csv(tmp_path, x, y - 0.2 * y.max())
    elif case == "flat":
        path = _csv(tmp_path, x, np.full_like(x, 0.3))
    elif case == "zero_t":
        path = _csv(tmp_path, x, np.where(x > 3000, 0.0, 0.5))
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
    y[5] = -0.001 * y.max()
    s = read_spectrum(_csv(tmp_path, x, y, "noisy.csv"), kind="absorbance")
    assert s.absorbance.min() >= 0 and any("clipped to 0" in n for n in s.notes)
