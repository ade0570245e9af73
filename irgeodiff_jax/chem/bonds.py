"""Bonds and bond orders from 3D geometry: the valence-guided assignment of paper App. D.1.

``geometry_to_mol`` turns atomic numbers and positions (Å) of a neutral molecule into a
sanitized RDKit molecule with the geometry attached as a 3D conformer:

1. connectivity: atoms ``i, j`` are bonded if ``d_ij < L_ij / 100 + tolerance`` (``L_ij`` is
   the single-bond length in pm, ``bond_orders.single_bond_pm``);
2. terminal atoms are saturated, 3. Hückel ring systems get Kekulé orders, 4. the remaining
   free valence is placed by a maximum-weight matching preferring bonds short relative to their
   single-bond length, 5. hypervalent states of P/S/As/Se are refined (bounded enumeration),
   6. the result must be neutral with no charged atom;
7. if an atom has more neighbours than its largest valence, or free valence is left over, the
   most stretched bond (> 0.15 Å beyond its single-bond length) is removed and the assignment
   restarted, at most 10 times. Free valence that remains becomes radical electrons.

Every failure raises ``BondAssignmentError`` (a ``ValueError``) with a one-line reason.
"""

import networkx as nx
import numpy as np
from rdkit import Chem, rdBase

from irgeodiff_jax.chem import bond_orders

DEFAULT_TOLERANCE_ANGSTROM = 0.4  # δ = 40 pm for QM9S (30 pm for QMe14S)
# Closest allowed approach of two atoms. The shortest real bond is H–H at 0.74 Å, so anything
# below 0.5 Å is a clash (duplicated or collapsed atoms), not a molecule.
MIN_DISTANCE_ANGSTROM = 0.5
MAX_ATOMS = 1000
_MAX_OUTER_ITERATIONS = 10
_MIN_STRETCH_ANGSTROM = 0.15
_BOND_TYPES = {1: Chem.BondType.SINGLE, 2: Chem.BondType.DOUBLE, 3: Chem.BondType.TRIPLE}


class BondAssignmentError(ValueError):
    """A geometry that cannot be turned into a neutral molecule (with the reason)."""


def _as_inputs(atomic_numbers, positions_angstrom) -> tuple[np.ndarray, np.ndarray]:
    """Validated ``([N] int64, [N, 3] float64)`` copies of the inputs."""
    try:
        z_raw = np.asarray(atomic_numbers)
        pos = np.asarray(positions_angstrom, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise BondAssignmentError(f"inputs are not numeric arrays: {err}") from None
    if z_raw.ndim != 1:
        raise BondAssignmentError(f"atomic_numbers must be 1-D, got shape {z_raw.shape}")
    if z_raw.size == 0:
        raise BondAssignmentError("empty molecule (no atoms)")
    if z_raw.size > MAX_ATOMS:
        raise BondAssignmentError(f"{z_raw.size} atoms is more than the supported {MAX_ATOMS}")
    if pos.shape != (z_raw.size, 3):
        raise BondAssignmentError(f"positions must have shape ({z_raw.size}, 3), got {pos.shape}")
    if z_raw.dtype.kind not in "iuf" or z_raw.dtype == np.bool_:
        raise BondAssignmentError(f"atomic_numbers must be integers, got dtype {z_raw.dtype}")
    if not np.all(np.isfinite(z_raw)) or np.any(np.round(z_raw) != z_raw):
        raise BondAssignmentError("atomic_numbers must be whole numbers")
    z = z_raw.astype(np.int64)
    unknown = sorted({int(v) for v in z} - bond_orders.SUPPORTED)
    if unknown:
        raise BondAssignmentError(f"unsupported atomic number(s) {unknown}")
    if not np.all(np.isfinite(pos)):
        raise BondAssignmentError("positions contain NaN or infinity")
    return z, pos


def _distance_matrix(pos: np.ndarray) -> np.ndarray:
    """``[N, N]`` distances; raises if two atoms overlap."""
    dist = np.sqrt(((pos[:, None, :] - pos[None, :, :]) ** 2).sum(-1))
    if len(pos) > 1:
        off = dist + np.diag(np.full(len(pos), np.inf))
        i, j = np.unravel_index(np.argmin(off), off.shape)
        if off[i, j] < MIN_DISTANCE_ANGSTROM:
            raise BondAssignmentError(
                f"atoms {i} and {j} are {off[i, j]:.3f} Å apart "
                f"(< {MIN_DISTANCE_ANGSTROM} Å: overlapping atoms)"
            )
    return dist


def _most_stretched(adjacency, stretch, atoms=None, exclude=()) -> tuple[int, int] | None:
    """Bond with the largest stretch above the minimum (optionally touching ``atoms``)."""
    mask = np.triu(adjacency, 1) & (stretch > _MIN_STRETCH_ANGSTROM)
    if atoms is not None:
        touch = np.zeros(len(adjacency), dtype=bool)
        touch[list(atoms)] = True
        mask &= touch[:, None] | touch[None, :]
    for i, j in exclude:
        mask[min(i, j), max(i, j)] = False
    if not mask.any():
        return None
    i, j = np.unravel_index(np.argmax(np.where(mask, stretch, -np.inf)), stretch.shape)
    return int(i), int(j)


def _assign_with_bond_removal(z, dist, tolerance):
    """Outer loop of step 7. Returns ``(order [N, N], radicals [N])`` of the best attempt."""
    ref = bond_orders.single_bond_matrix_angstrom(z)
    stretch = dist - ref
    adjacency = dist < ref + tolerance
    np.fill_diagonal(adjacency, False)
    best, best_adjacency, tried = None, None, set()
    reason = "no bond assignment found"
    for _ in range(_MAX_OUTER_ITERATIONS):
        result = bond_orders.assign_with_valence_refinement(z, adjacency, dist, ref)
        if result is None:  # an atom has more neighbours than its largest valence
            degree = adjacency.sum(axis=1)
            over = [i for i, c in enumerate(bond_orders.valence_choices(z, degree)) if not c]
            reason = f"atom {over[0]} (Z={z[over[0]]}) has {degree[over[0]]} neighbours"
            bond = _most_stretched(adjacency, stretch, atoms=over)
            if bond is None:
                break
            adjacency = adjacency.copy()
            adjacency[bond] = adjacency[bond[::-1]] = False
            continue
        if best is None or int(result[1].sum()) < int(best[1].sum()):
            best, best_adjacency = result, adjacency
        if int(best[1].sum()) == 0:
            break
        bond = _most_stretched(best_adjacency, stretch, exclude=tried)
        if bond is None:
            break
        tried.add(bond)
        adjacency = best_adjacency.copy()
        adjacency[bond] = adjacency[bond[::-1]] = False
    if best is None:
        raise BondAssignmentError(f"valence cannot be satisfied: {reason}")
    return best


def _build_mol(z, pos, order, radicals) -> Chem.Mol:
    """Sanitized RDKit molecule with explicit atoms, bond orders, radicals and a 3D conformer."""
    rw = Chem.RWMol()
    for zi, ri in zip(z, radicals, strict=True):
        atom = Chem.Atom(int(zi))
        atom.SetNoImplicit(True)
        atom.SetNumRadicalElectrons(int(ri))
        rw.AddAtom(atom)
    for i, j in zip(*np.nonzero(np.triu(order, 1)), strict=True):
        rw.AddBond(int(i), int(j), _BOND_TYPES[int(order[i, j])])
    mol = rw.GetMol()
    conf = Chem.Conformer(len(z))
    conf.Set3D(True)
    for i, p in enumerate(pos):
        conf.SetAtomPosition(i, p.tolist())
    mol.AddConformer(conf, assignId=True)
    Chem.SanitizeMol(mol)
    return mol


def _check_neutral(mol: Chem.Mol) -> None:
    """Step 6: no formal charge anywhere (so the total charge is zero)."""
    charged = [a.GetIdx() for a in mol.GetAtoms() if a.GetFormalCharge() != 0]
    if charged:
        raise BondAssignmentError(f"charged atoms {charged} in a molecule that must be neutral")


def geometry_to_mol(
    atomic_numbers, positions_angstrom, *, tolerance_angstrom=DEFAULT_TOLERANCE_ANGSTROM
) -> Chem.Mol:
    """Neutral RDKit molecule with bonds and bond orders inferred from a 3D geometry.

    Args:
        atomic_numbers: ``[N]`` integers from H B C N O F Al Si P S Cl As Se Br.
        positions_angstrom: ``[N, 3]`` Cartesian coordinates in Å.
        tolerance_angstrom: δ added to the single-bond length for connectivity (0.4 Å QM9S,
            0.3 Å QMe14S).

    Returns:
        Sanitized ``Chem.Mol`` with all atoms explicit (atom order as given), the positions as
        its 3D conformer, and leftover valence as radical electrons.

    Raises:
        BondAssignmentError: empty or malformed input, NaN/inf, overlapping atoms (closer than
            ``MIN_DISTANCE_ANGSTROM``), unsupported elements, unsatisfiable valences or an RDKit
            sanitization failure.
    """
    z, pos = _as_inputs(atomic_numbers, positions_angstrom)
    try:
        tolerance = float(tolerance_angstrom)
    except (TypeError, ValueError):
        raise BondAssignmentError(
            f"tolerance must be a number, got {tolerance_angstrom!r}"
        ) from None
    if not 0.0 <= tolerance <= 2.0:
        raise BondAssignmentError(f"tolerance must be in [0, 2] Å, got {tolerance}")
    dist = _distance_matrix(pos)
    try:
        order, radicals = _assign_with_bond_removal(z, dist, tolerance)
    except (OverflowError, nx.NetworkXException) as err:  # matching too large / graph error
        raise BondAssignmentError(f"bond-order search failed: {err}") from None
    with rdBase.BlockLogs():
        try:
            mol = _build_mol(z, pos, order, radicals)
        except Exception as err:  # RDKit raises several unrelated types
            raise BondAssignmentError(f"RDKit rejected the molecule: {err}") from None
    _check_neutral(mol)
    return mol


def mol_to_canonical_smiles(mol: Chem.Mol) -> str:
    """Canonical SMILES without explicit hydrogens and without stereochemistry."""
    with rdBase.BlockLogs():
        try:
            clean = Chem.Mol(mol)
            # Stereo first: RemoveHs keeps hydrogens that carry double-bond stereo (imines).
            Chem.RemoveStereochemistry(clean)
            clean = Chem.RemoveHs(clean)
            return Chem.MolToSmiles(clean, canonical=True)
        except Exception as err:  # RDKit raises several unrelated types
            raise BondAssignmentError(f"RDKit could not write SMILES: {err}") from None


def geometry_to_smiles(atomic_numbers, positions_angstrom, **kw) -> str | None:
    """Canonical SMILES (no stereo, no explicit H) of ``geometry_to_mol``; ``None`` on failure."""
    try:
        return mol_to_canonical_smiles(geometry_to_mol(atomic_numbers, positions_angstrom, **kw))
    except BondAssignmentError:
        return None


def canonical_smiles(smiles: str) -> str | None:
    """A reference SMILES written the same way as ``geometry_to_smiles``; ``None`` if unparsable."""
    if not isinstance(smiles, str):
        return None
    with rdBase.BlockLogs():
        try:
            mol = Chem.MolFromSmiles(smiles)
        except Exception:  # RDKit raises several unrelated types
            return None
    if mol is None:
        return None
    try:
        return mol_to_canonical_smiles(mol)
    except BondAssignmentError:
        return None
