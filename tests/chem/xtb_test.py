"""Tests for the GFN2-xTB IR oracle (chem.xtb) and its normal-mode maths (chem.hessian)."""

import importlib.util
import os
import re

import numpy as np
import pytest
import scipy.constants as sc
from scipy.spatial.transform import Rotation

from data_pipeline import qm9pack_source
from irgeodiff_jax.chem import elements, hessian, xtb

WATER_Z = [8, 1, 1]
WATER_X = [[0.0, 0.0, 0.117], [0.0, 0.757, -0.467], [0.0, -0.757, -0.467]]


@pytest.fixture(scope="module")
def water():
    return xtb.ir_spectrum(WATER_Z, WATER_X)


@pytest.fixture(scope="module")
def methane():
    mol = qm9pack_source.molecule(1)
    return xtb.ir_spectrum(mol.atomic_numbers, mol.positions_angstrom)


# --- unit conversions and normal-mode maths (no tblite) -------------------------------------


def test_intensity_factor_from_codata():
    factor = sc.Avogadro * sc.e**2 / (12 * sc.epsilon_0 * sc.c**2 * sc.atomic_mass) / 1e3
    assert hessian.INTENSITY_KM_MOL == pytest.approx(factor, rel=1e-7)  # CODATA 2018 vs 2022
    assert hessian.INTENSITY_KM_MOL == pytest.approx(974.88, abs=0.01)


def test_diatomic_point_charges_analytic():
    # Harmonic diatomic along z with force constant k and charges +q/-q: exact results.
    k, q = 0.5, 0.4  # Eh/bohr², e
    masses = np.array([1.008, 18.998])
    pos = np.array([[0.0, 0.0, 0.0], [0.0, 0.0, 1.7]])
    hess = np.zeros((6, 6))
    for a, b, sign in ((2, 2, 1), (5, 5, 1), (2, 5, -1), (5, 2, -1)):
        hess[a, b] = sign * k
    dmu = np.zeros((6, 3))
    dmu[2, 2], dmu[5, 2] = -q, q  # mu_z = q (z_1 - z_0)
    assert hessian.is_linear(masses, pos)
    freqs, modes = hessian.normal_modes(hess, masses, pos, linear=True)
    assert freqs.shape == (1,) and modes.shape == (6, 1)
    reduced = masses[0] * masses[1] / masses.sum() * sc.atomic_mass
    k_si = (
        k
        * sc.physical_constants["Hartree energy"][0]
        / sc.physical_constants["Bohr radius"][0] ** 2
    )
    expected_cm1 = np.sqrt(k_si / reduced) / (2 * np.pi * sc.c) / 100
    np.testing.assert_allclose(freqs[0], expected_cm1, rtol=1e-6)
    intensity = hessian.ir_intensities(dmu, modes, masses)
    np.testing.assert_allclose(
        intensity[0], 974.88 * q**2 * masses.sum() / masses.prod(), rtol=1e-4
    )


def test_negative_curvature_reported_as_negative_frequency():
    masses = np.array([12.0, 12.0])
    pos = np.array([[0.0, 0.0, 0.0], [0.0, 0.0, 1.2]])
    hess = np.zeros((6, 6))
    hess[2, 2] = hess[5, 5] = -0.1
    hess[2, 5] = hess[5, 2] = 0.1
    freqs, _ = hessian.normal_modes(hess, masses, pos, linear=True)
    assert freqs[0] < 0


def test_is_linear_from_inertia():
    masses = elements.masses_amu([6, 6, 1])
    assert hessian.is_linear(masses, np.array([[0, 0, 0], [0, 0, 1.2], [0, 0, 2.3]], float))
    assert not hessian.is_linear(masses, np.array([[0, 0, 0], [0, 0, 1.2], [0, 1.0, 2.3]], float))


# --- the oracle ----------------------------------------------------------------------------


def test_water_spectrum(water):
    assert water.frequencies_cm1.shape == (3,) and water.intensities_km_mol.shape == (3,)
    bend, s1, s2 = water.frequencies_cm1
    assert 1500 < bend < 1650 and 3500 < s1 < s2 < 3800
    assert water.num_imaginary == 0 and not water.linear
    assert water.max_gradient <= xtb.OPT_GRADIENT_LIMIT
    # GFN2-xTB's water bend is more intense than B3LYP's (~70 km/mol); stretches are weak.
    assert 50 < water.intensities_km_mol[0] < 250
    assert np.all((water.intensities_km_mol[1:] > 1) & (water.intensities_km_mol[1:] < 60))
    assert water.positions_angstrom.shape == (3, 3) and water.energy_hartree < -5.0
    assert water.num_singlepoints >= 1 + 6 * 3


def test_methane_spectrum_and_selection_rules(methane):
    f, a = methane.frequencies_cm1, methane.intensities_km_mol
    assert f.shape == (9,) and methane.num_imaginary == 0
    assert 1300 < f[0] and f[-1] < 3200
    # Td: the two triply degenerate T2 modes are IR active, the E and A1 modes are dark.
    np.testing.assert_allclose(f[:3], f[0], atol=1.0)
    np.testing.assert_allclose(f[6:], f[6], atol=1.0)
    np.testing.assert_allclose(a[:3], a[0], rtol=1e-2)
    np.testing.assert_allclose(a[6:], a[6], rtol=1e-2)
    assert a[0] > 1 and a[6] > 1 and np.all(a[3:6] < 0.05)


def test_methane_dipole_sum_rules(methane):
    # Atomic polar tensors of a neutral molecule sum to zero; for a molecule without a dipole
    # the intensities add up to sum_i |P_i|_F² / m_i (Crawford's G sum rule).
    x = methane.positions_angstrom / hessian.BOHR_ANGSTROM
    session = xtb._Session(methane.atomic_numbers, x, None)
    _, dmu = hessian.central_difference(session.gradient_and_dipole, x, xtb.FD_STEP_BOHR)
    apt = dmu.reshape(5, 3, 3)
    np.testing.assert_allclose(apt.sum(axis=0), 0.0, atol=1e-4)
    masses = elements.masses_amu(methane.atomic_numbers)
    g_sum = hessian.INTENSITY_KM_MOL * np.sum(np.sum(apt**2, axis=(1, 2)) / masses)
    np.testing.assert_allclose(methane.intensities_km_mol.sum(), g_sum, rtol=2e-3)


@pytest.mark.parametrize("index", [4, 5])  # C#C, C#N
def test_linear_molecules_have_3n_minus_5_modes(index):
    mol = qm9pack_source.molecule(index)
    spec = xtb.ir_spectrum(mol.atomic_numbers, mol.positions_angstrom)
    n = len(mol.atomic_numbers)
    assert spec.linear
    assert spec.frequencies_cm1.shape == (3 * n - 5,) == mol.harmonic_frequencies_cm1.shape
    assert spec.num_imaginary == 0 and spec.frequencies_cm1[0] > 300
    assert np.all(spec.intensities_km_mol >= 0)


def test_frequencies_match_xtb_documentation():
    # Unoptimised doublet CH4···OH complex from the xtb documentation ("Calculation of
    # Vibrational Frequencies", `xtb min.xyz --hess --uhf 1`, GFN2-xTB) with its printed values.
    x = [
        [-0.12888312425142, -0.00640246259879, -0.00997057133406],
        [1.44011699709596, 0.12229812355524, -0.02854203428735],
        [-0.41612454870604, 1.02694842152161, -0.04938812535015],
        [-0.26306601703832, -0.58286887757121, -0.90445094952445],
        [-0.26440375738028, -0.51708010658031, 0.92386857306799],
        [2.45008586500521, 0.26032015001761, 0.01133571198248],
        [2.61210033905108, 0.98358191645276, 0.62026402303033],
    ]
    documented = [211.99, 360.40, 405.89, 601.08, 759.17, 829.07, 1371.91, 1375.70]
    documented += [1477.42, 2297.37, 3115.69, 3190.88, 3197.05, 3648.64]
    spec = xtb.ir_spectrum([6, 1, 1, 1, 1, 8, 1], x, optimize=False)
    assert spec.optimization_seconds == 0.0
    np.testing.assert_allclose(spec.positions_angstrom, x, atol=1e-12)
    # The softest mode (40.69 cm⁻¹ there) depends on how non-stationary points are projected.
    np.testing.assert_allclose(spec.frequencies_cm1[1:], documented, atol=3.0)
    assert spec.energy_hartree == pytest.approx(-8.640016786693, abs=1e-4)


def test_translation_rotation_invariance():
    mol = qm9pack_source.molecule(11)  # CC=O
    ref = xtb.ir_spectrum(mol.atomic_numbers, mol.positions_angstrom)
    rot = Rotation.from_euler("zyx", [0.7, -1.1, 2.3]).as_matrix()
    moved = mol.positions_angstrom @ rot.T + np.array([3.0, -7.5, 12.0])
    spec = xtb.ir_spectrum(mol.atomic_numbers, moved)
    np.testing.assert_allclose(spec.frequencies_cm1, ref.frequencies_cm1, atol=1.0)
    np.testing.assert_allclose(spec.intensities_km_mol, ref.intensities_km_mol, rtol=0.02, atol=0.1)
    assert spec.energy_hartree == pytest.approx(ref.energy_hartree, abs=1e-7)


@pytest.mark.parametrize(
    "z, x, reason",
    [
        (WATER_Z, [[0, 0, np.nan], [0, 0.757, -0.467], [0, -0.757, -0.467]], "NaN"),
        (WATER_Z, [[0, 0, 0.117], [0, 0, 0.2], [0, -0.757, -0.467]], "overlap"),
        ([92, 1, 1], WATER_X, "U (Z=92) is not supported"),
        ([], np.zeros((0, 3)), "non-empty"),
        (WATER_Z, [[0, 0, 0], [0, 0, 1]], "shape"),
        ([1], [[0, 0, 0]], "single atom"),
        ([8.0, 1.0, 1.0], WATER_X, "integers"),
    ],
)
def test_bad_input_raises_oracle_error(z, x, reason):
    with pytest.raises(xtb.OracleError, match=re.escape(reason)):
        xtb.ir_spectrum(z, x)
    assert reason in xtb.ir_spectrum_safe(z, x)


def test_timeout_raises():
    mol = qm9pack_source.molecule(11)
    with pytest.raises(xtb.OracleError, match="timeout after"):
        xtb.ir_spectrum(mol.atomic_numbers, mol.positions_angstrom, timeout_s=0.0)
    reason = xtb.ir_spectrum_safe(mol.atomic_numbers, mol.positions_angstrom, timeout_s=0.0)
    assert reason.startswith("timeout after")


def test_scf_failure_is_reported(monkeypatch):
    monkeypatch.setattr(xtb, "SCF_MAX_ITER", 2)
    with pytest.raises(xtb.OracleError, match="tblite: SCF not converged"):
        xtb.ir_spectrum(WATER_Z, WATER_X)


def test_optimiser_failure_is_reported(monkeypatch):
    monkeypatch.setattr(xtb, "OPT_MAX_STEPS", 2)
    stretched = np.array(WATER_X) * 1.3
    with pytest.raises(xtb.OracleError, match="geometry optimisation not converged"):
        xtb.ir_spectrum(WATER_Z, stretched)


def test_spectrum_is_frozen(water):
    with pytest.raises(AttributeError):
        water.energy_hartree = 0.0


# --- QM9 benchmark (slow) ------------------------------------------------------------------


def _load_benchmark():
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    path = os.path.join(root, "benchmarks", "xtb_vs_qm9.py")
    spec = importlib.util.spec_from_file_location("xtb_vs_qm9", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_qm9_benchmark_minima_frequencies_and_speed():
    summary = _load_benchmark().main(["--num", "20", "--seed", "0"])
    assert summary["num_failed"] == 0
    assert summary["num_with_imaginary"] == 0
    assert summary["mad_cm1_over_all_modes"] < 60.0
    assert summary["mad_cm1_mean_over_molecules"] < 60.0
    # One-core CPU time (wall time on this shared machine is reported by the benchmark).
    assert summary["median_cpu_s"] < 2.0
