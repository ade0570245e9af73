"""Finite-difference Hessians, normal modes and IR intensities (pure NumPy, atomic units).

Conventions: positions in bohr, energies in Hartree (Eh), gradients in Eh/bohr, dipoles in e·bohr,
masses in amu (unified atomic mass units, Da).

Units of the two spectral quantities (CODATA 2018 constants below):

* Frequencies. The mass-weighted Hessian ``H_ij / sqrt(m_i m_j)`` has eigenvalues ``lam`` in
  Eh / (bohr² amu). Converting amu to electron masses (1 amu = 1822.888486 m_e) gives atomic units,
  in which the angular frequency is ``omega = sqrt(lam / 1822.888486)`` in Eh/ħ, and the wavenumber
  is ``omega`` times the Hartree in cm⁻¹ (219474.6313632). Negative eigenvalues (saddle points)
  are reported as negative wavenumbers ``-sqrt(|lam| ...)`` ("imaginary" modes).
* Intensities. For a normal coordinate ``Q`` (unit-norm mass-weighted eigenvector ``l``), the
  Cartesian displacement is ``dx_i = l_i dQ / sqrt(m_i)``, so
  ``dmu/dQ = sum_i (dmu/dx_i) l_i / sqrt(m_i)``. With ``mu`` in e·bohr and ``x`` in bohr, ``dmu/dx``
  is in units of ``e`` and ``dmu/dQ`` in ``e / sqrt(amu)``: the length unit cancels. The integrated
  absorption coefficient of a harmonic fundamental (double-harmonic approximation) is
  ``A = N_A / (12 eps0 c²) |dmu/dQ|²`` (SI). For ``|dmu/dQ| = 1 e / sqrt(amu)`` this is
  ``N_A e² / (12 eps0 c² amu) = 9.7489e5 m/mol = 974.89 km/mol``, the usual factor (equivalently
  42.256 km/mol per (D/Å)²/amu).
"""

import numpy as np

# CODATA 2018.
AVOGADRO = 6.02214076e23  # 1/mol
ELEMENTARY_CHARGE = 1.602176634e-19  # C
ATOMIC_MASS_UNIT_KG = 1.66053906660e-27  # kg
VACUUM_PERMITTIVITY = 8.8541878128e-12  # F/m
SPEED_OF_LIGHT = 299792458.0  # m/s
BOHR_ANGSTROM = 0.529177210903  # Å per bohr
AMU_ELECTRON_MASSES = 1822.888486209  # electron masses per amu
HARTREE_CM1 = 219474.6313632  # cm⁻¹ per Hartree

# km/mol per (e/sqrt(amu))²: N_A e² / (12 eps0 c² amu), converted from m/mol to km/mol.
INTENSITY_KM_MOL = (
    AVOGADRO
    * ELEMENTARY_CHARGE**2
    / (12.0 * VACUUM_PERMITTIVITY * SPEED_OF_LIGHT**2 * ATOMIC_MASS_UNIT_KG)
    / 1000.0
)

# Smallest/largest principal moment of inertia below which a geometry counts as linear.
LINEAR_INERTIA_RATIO = 1e-5


def central_difference(evaluate, positions_bohr: np.ndarray, step_bohr: float):
    """Hessian and dipole derivatives by central differences of analytic gradients.

    Every Cartesian coordinate is displaced by ``+step`` and ``-step``; each displaced geometry
    costs one call of ``evaluate`` (6N calls), which yields both the gradient and the dipole.

    Args:
      evaluate: ``positions [N, 3] (bohr) -> (gradient [N, 3] Eh/bohr, dipole [3] e·bohr)``.
      positions_bohr: [N, 3] reference geometry.
      step_bohr: displacement per coordinate.

    Returns:
      ``(hessian [3N, 3N] Eh/bohr², symmetrised; dipole_derivatives [3N, 3] in e)``, rows ordered
      atom-major (x0, y0, z0, x1, ...).
    """
    x0 = np.asarray(positions_bohr, dtype=np.float64)
    n3 = x0.size
    hessian = np.empty((n3, n3))
    dmu = np.empty((n3, 3))
    for k in range(n3):
        shift = np.zeros(n3)
        shift[k] = step_bohr
        g_plus, mu_plus = evaluate(x0 + shift.reshape(x0.shape))
        g_minus, mu_minus = evaluate(x0 - shift.reshape(x0.shape))
        hessian[k] = (np.ravel(g_plus) - np.ravel(g_minus)) / (2.0 * step_bohr)
        dmu[k] = (np.asarray(mu_plus) - np.asarray(mu_minus)) / (2.0 * step_bohr)
    return 0.5 * (hessian + hessian.T), dmu


def principal_moments(masses_amu: np.ndarray, positions: np.ndarray) -> np.ndarray:
    """Principal moments of inertia [3] (ascending) about the centre of mass."""
    m = np.asarray(masses_amu, dtype=np.float64)
    r = positions - (m[:, None] * positions).sum(0) / m.sum()
    second_moment = np.einsum("i,ij,ik->jk", m, r, r)
    tensor = np.trace(second_moment) * np.eye(3) - second_moment
    return np.linalg.eigvalsh(tensor)


def is_linear(masses_amu: np.ndarray, positions: np.ndarray) -> bool:
    """Whether the geometry is linear (diatomics included), from its inertia tensor."""
    if len(masses_amu) < 3:
        return True
    moments = principal_moments(masses_amu, positions)
    return bool(moments[0] <= LINEAR_INERTIA_RATIO * moments[2])


def internal_basis(masses_amu: np.ndarray, positions: np.ndarray, linear: bool) -> np.ndarray:
    """Orthonormal basis [3N, 3N - k] of mass-weighted space orthogonal to rigid motions.

    ``k`` = 5 for linear and 6 for nonlinear geometries: the three translations and the
    rotations about the centre of mass (only two independent ones when linear) are removed.
    """
    m = np.asarray(masses_amu, dtype=np.float64)
    sqrt_m = np.sqrt(m)
    r = positions - (m[:, None] * positions).sum(0) / m.sum()
    rigid = []
    for axis in np.eye(3):
        rigid.append((sqrt_m[:, None] * axis[None, :]).ravel())  # translation
        rigid.append((sqrt_m[:, None] * np.cross(axis[None, :], r)).ravel())  # rotation
    rigid = np.stack(rigid, axis=1)  # [3N, 6]
    num_external = 5 if linear else 6
    u, _, _ = np.linalg.svd(rigid, full_matrices=True)
    # Left singular vectors beyond the rigid subspace's rank span its orthogonal complement.
    return u[:, num_external:]


def normal_modes(hessian: np.ndarray, masses_amu: np.ndarray, positions: np.ndarray, linear: bool):
    """Harmonic wavenumbers and mass-weighted normal modes with rigid motions projected out.

    Args:
      hessian: [3N, 3N] Cartesian Hessian, Eh/bohr².
      masses_amu: [N] atomic masses.
      positions: [N, 3] geometry (any length unit; only directions of rotations matter).
      linear: whether to remove 5 (linear) or 6 rigid motions.

    Returns:
      ``(wavenumbers [M] cm⁻¹ ascending, negative for imaginary modes; modes [3N, M] unit-norm
      mass-weighted eigenvectors)``, M = 3N - 5 or 3N - 6.
    """
    inv_sqrt_m = np.repeat(1.0 / np.sqrt(np.asarray(masses_amu, dtype=np.float64)), 3)
    weighted = hessian * inv_sqrt_m[:, None] * inv_sqrt_m[None, :]
    basis = internal_basis(masses_amu, positions, linear)
    eigvals, vecs = np.linalg.eigh(basis.T @ weighted @ basis)
    wavenumbers = np.sign(eigvals) * np.sqrt(np.abs(eigvals) / AMU_ELECTRON_MASSES) * HARTREE_CM1
    return wavenumbers, basis @ vecs


def ir_intensities(dipole_derivatives: np.ndarray, modes: np.ndarray, masses_amu: np.ndarray):
    """IR intensities [M] in km/mol (double-harmonic approximation).

    Args:
      dipole_derivatives: [3N, 3] Cartesian derivatives of the dipole, in e (e·bohr / bohr).
      modes: [3N, M] unit-norm mass-weighted normal modes.
      masses_amu: [N] atomic masses.
    """
    inv_sqrt_m = np.repeat(1.0 / np.sqrt(np.asarray(masses_amu, dtype=np.float64)), 3)
    dmu_dq = dipole_derivatives.T @ (modes * inv_sqrt_m[:, None])  # [3, M], e / sqrt(amu)
    return INTENSITY_KM_MOL * np.sum(dmu_dq**2, axis=0)
