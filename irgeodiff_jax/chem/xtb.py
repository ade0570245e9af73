"""GFN2-xTB IR oracle: optimised geometry, harmonic frequencies and IR intensities via tblite.

Procedure (method.md §8–§9): optional L-BFGS-B geometry optimisation on the GFN2-xTB energy and
analytic gradient; a Hessian by central differences of analytic gradients (step
``FD_STEP_BOHR`` = 0.005 bohr; with SCF accuracy 0.01 the gradient noise, ~3e-8 Eh/bohr, keeps
the Hessian noise near 3e-6 Eh/bohr², a few cm⁻¹ at most); dipole derivatives by central
differences of the SCF dipole from the same displaced calculations (6N singlepoints in total);
mass weighting, projection of rigid translations/rotations (5 for linear, 6 otherwise), and
double-harmonic IR intensities. The unit conversions are derived in ``hessian.py``.

Conventions: frequencies ascending in cm⁻¹; imaginary modes (negative Hessian eigenvalues) are
reported as negative frequencies and counted in ``IRSpectrum.num_imaginary``. No frequency scaling
is applied here. Neutral molecules; odd electron counts run as doublets (one unpaired electron).

Threads: tblite uses OpenMP. Callers should run one process per core with ``OMP_NUM_THREADS=1``
set before tblite is imported (the dataset builder owns the process pool; use
``ir_spectrum_safe`` in pool workers).
"""

import dataclasses
import time

import numpy as np
import scipy.optimize
from tblite.exceptions import TBLiteRuntimeError, TBLiteValueError
from tblite.interface import Calculator

from irgeodiff_jax.chem import elements, hessian

FD_STEP_BOHR = 0.005  # finite-difference displacement per Cartesian coordinate
SCF_ACCURACY = 0.01  # tblite accuracy (1.0 default); 0.01 keeps FD gradient noise ~1e-8 Eh/bohr
SCF_MAX_ITER = 250
OPT_GRADIENT_TARGET = 5e-5  # L-BFGS-B stopping threshold on max|g| (Eh/bohr)
OPT_GRADIENT_LIMIT = 1e-4  # largest max|g| (Eh/bohr) accepted as a converged optimisation
OPT_MAX_STEPS = 1000
MIN_DISTANCE_ANGSTROM = 0.5  # closer atom pairs count as overlapping


class OracleError(RuntimeError):
    """The oracle could not produce a spectrum (bad input, SCF/optimiser failure, timeout)."""


@dataclasses.dataclass(frozen=True)
class IRSpectrum:
    """IR stick spectrum of one molecule at its (optimised) GFN2-xTB geometry.

    Attributes:
      frequencies_cm1: [M] harmonic wavenumbers, ascending; negative = imaginary mode.
        M = 3N - 6, or 3N - 5 for linear molecules.
      intensities_km_mol: [M] IR intensities (double-harmonic), km/mol.
      positions_angstrom: [N, 3] geometry the frequencies belong to (optimised if requested).
      energy_hartree: GFN2-xTB total energy at that geometry.
      atomic_numbers: [N] int32.
      linear: whether the geometry was treated as linear (5 rigid modes removed).
      num_imaginary: number of negative frequencies.
      max_gradient: max |dE/dx| (Eh/bohr) at that geometry.
      optimization_seconds: wall time of the geometry optimisation (0 if not optimised).
      hessian_seconds: wall time of the finite-difference Hessian and normal-mode analysis.
      num_singlepoints: SCF calculations used in total.
    """

    frequencies_cm1: np.ndarray
    intensities_km_mol: np.ndarray
    positions_angstrom: np.ndarray
    energy_hartree: float
    atomic_numbers: np.ndarray
    linear: bool
    num_imaginary: int
    max_gradient: float
    optimization_seconds: float
    hessian_seconds: float
    num_singlepoints: int


def _one_line(error: Exception) -> str:
    text = " ".join(str(error).split())
    return text or type(error).__name__


def _validated(atomic_numbers, positions_angstrom) -> tuple[np.ndarray, np.ndarray]:
    """Checked ``(atomic_numbers [N] int32, positions [N, 3] float64 Å)``; OracleError if bad."""
    z = np.asarray(atomic_numbers)
    x = np.asarray(positions_angstrom, dtype=np.float64)
    if z.ndim != 1 or z.size == 0:
        raise OracleError(f"atomic_numbers must be a non-empty 1-D array, got shape {z.shape}")
    if not np.issubdtype(z.dtype, np.integer):
        raise OracleError(f"atomic_numbers must be integers, got dtype {z.dtype}")
    if x.shape != (z.size, 3):
        raise OracleError(f"positions must have shape ({z.size}, 3), got {x.shape}")
    if z.size < 2:
        raise OracleError("a single atom has no vibrational modes")
    try:
        elements.check_supported(z)
    except elements.UnknownElementError as e:
        raise OracleError(_one_line(e)) from None
    if not np.all(np.isfinite(x)):
        raise OracleError("positions contain NaN or infinite values")
    dist = np.linalg.norm(x[:, None, :] - x[None, :, :], axis=-1)
    dist[np.diag_indices(z.size)] = np.inf
    i, j = np.unravel_index(np.argmin(dist), dist.shape)
    if dist[i, j] < MIN_DISTANCE_ANGSTROM:
        raise OracleError(
            f"atoms {min(i, j)} and {max(i, j)} overlap ({dist[i, j]:.3f} Å < "
            f"{MIN_DISTANCE_ANGSTROM} Å)"
        )
    return z.astype(np.int32), x


class _Session:
    """One tblite calculator for one molecule, with a cooperative deadline and SCF restarts."""

    def __init__(self, z: np.ndarray, x_bohr: np.ndarray, timeout_s: float | None):
        self.start = time.perf_counter()
        self.timeout_s = timeout_s
        self.num_singlepoints = 0
        self.calc = Calculator(
            "GFN2-xTB",
            z,
            x_bohr,
            charge=0.0,
            uhf=int(z.sum()) % 2,
            color=False,
            logger=lambda _message: None,
        )
        self.calc.set("verbosity", 0)
        self.calc.set("accuracy", SCF_ACCURACY)
        self.calc.set("max-iter", SCF_MAX_ITER)
        self.guess = None  # tblite Result used as the SCF starting point

    def check_time(self) -> None:
        elapsed = time.perf_counter() - self.start
        if self.timeout_s is not None and elapsed > self.timeout_s:
            raise OracleError(f"timeout after {elapsed:.1f} s (limit {self.timeout_s} s)")

    def run(self, x_bohr: np.ndarray, keep_as_guess: bool):
        """One singlepoint at ``x_bohr``; restarts from (and optionally replaces) the guess."""
        self.check_time()
        self.num_singlepoints += 1
        self.calc.update(positions=np.ascontiguousarray(x_bohr, dtype=np.float64))
        if self.guess is None:
            res = self.calc.singlepoint()
        else:
            res = self.calc.singlepoint(self.guess, copy=not keep_as_guess)
        if keep_as_guess:
            self.guess = res
        energy, gradient = float(res.get("energy")), res.get("gradient")
        if not (np.isfinite(energy) and np.all(np.isfinite(gradient))):
            raise OracleError("tblite returned a non-finite energy or gradient")
        return energy, gradient, res

    def gradient_and_dipole(self, x_bohr: np.ndarray):
        """Gradient [N, 3] and dipole [3] at a displaced geometry (guess left unchanged)."""
        _, gradient, res = self.run(x_bohr, keep_as_guess=False)
        return gradient, res.get("dipole")


def _optimize(session: _Session, x_bohr: np.ndarray) -> np.ndarray:
    """L-BFGS-B minimum near ``x_bohr`` [N, 3]; OracleError unless max|g| <= the limit."""

    def energy_and_gradient(flat):
        energy, gradient, _ = session.run(flat.reshape(x_bohr.shape), keep_as_guess=True)
        return energy, gradient.ravel()

    result = scipy.optimize.minimize(
        energy_and_gradient,
        x_bohr.ravel(),
        jac=True,
        method="L-BFGS-B",
        options={
            "maxiter": OPT_MAX_STEPS,
            "maxfun": 2 * OPT_MAX_STEPS,
            "gtol": OPT_GRADIENT_TARGET,
            "ftol": 1e-15,
            "maxcor": 30,
        },
    )
    max_g = float(np.max(np.abs(result.jac)))
    if not np.isfinite(max_g) or max_g > OPT_GRADIENT_LIMIT:
        raise OracleError(
            f"geometry optimisation not converged after {result.nit} steps "
            f"(max|g| = {max_g:.2e} Eh/bohr > {OPT_GRADIENT_LIMIT}): {_one_line(result.message)}"
        )
    return result.x.reshape(x_bohr.shape)


def _spectrum(z: np.ndarray, x_angstrom: np.ndarray, optimize: bool, timeout_s) -> IRSpectrum:
    x_bohr = x_angstrom / hessian.BOHR_ANGSTROM
    session = _Session(z, x_bohr, timeout_s)
    if optimize:
        x_bohr = _optimize(session, x_bohr)
    opt_done = time.perf_counter()
    energy, gradient, _ = session.run(x_bohr, keep_as_guess=True)
    hess, dmu = hessian.central_difference(session.gradient_and_dipole, x_bohr, FD_STEP_BOHR)
    masses = elements.masses_amu(z)
    linear = hessian.is_linear(masses, x_bohr)
    freqs, modes = hessian.normal_modes(hess, masses, x_bohr, linear)
    intensities = hessian.ir_intensities(dmu, modes, masses)
    end = time.perf_counter()
    return IRSpectrum(
        frequencies_cm1=freqs,
        intensities_km_mol=intensities,
        positions_angstrom=x_bohr * hessian.BOHR_ANGSTROM,
        energy_hartree=energy,
        atomic_numbers=z,
        linear=linear,
        num_imaginary=int(np.sum(freqs < 0)),
        max_gradient=float(np.max(np.abs(gradient))),
        optimization_seconds=opt_done - session.start if optimize else 0.0,
        hessian_seconds=end - opt_done,
        num_singlepoints=session.num_singlepoints,
    )


def ir_spectrum(atomic_numbers, positions_angstrom, *, optimize=True, timeout_s=None) -> IRSpectrum:
    """GFN2-xTB harmonic IR spectrum of a neutral molecule.

    Args:
      atomic_numbers: [N] integers, elements in ``elements.SUPPORTED_ELEMENTS``, N >= 2.
      positions_angstrom: [N, 3] Cartesian coordinates in Å.
      optimize: re-optimise the geometry first (L-BFGS-B to max|g| <= 1e-4 Eh/bohr).
      timeout_s: wall-time budget in seconds, checked before every singlepoint (None: no limit).

    Returns:
      The ``IRSpectrum`` (frequencies, intensities, geometry, energy, diagnostics).

    Raises:
      OracleError: bad input (empty, NaN, overlapping atoms, unsupported element), SCF or
        optimiser not converged, timeout, or any tblite error; the message is one line.
    """
    z, x = _validated(atomic_numbers, positions_angstrom)
    try:
        return _spectrum(z, x, optimize, timeout_s)
    except (TBLiteRuntimeError, TBLiteValueError) as e:
        raise OracleError(f"tblite: {_one_line(e)}") from None


def ir_spectrum_safe(
    atomic_numbers, positions_angstrom, *, optimize=True, timeout_s=None
) -> IRSpectrum | str:
    """Like ``ir_spectrum`` but returns the failure reason (a string) instead of raising."""
    try:
        return ir_spectrum(
            atomic_numbers, positions_angstrom, optimize=optimize, timeout_s=timeout_s
        )
    except OracleError as e:
        return str(e)
