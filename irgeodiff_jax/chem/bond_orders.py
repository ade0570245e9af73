"""Reference tables and the graph steps of the valence-guided bond assignment (paper App. D.1).

Everything here is numpy + networkx on a fixed connectivity graph; ``bonds.py`` adds input
checks, the outer bond-removal loop and the RDKit molecule. Bond orders live in a dense
``[N, N]`` int matrix (0 = no bond) and the valence still to be placed per atom in ``free [N]``.
"""

import itertools

import networkx as nx
import numpy as np

SYMBOLS = {1: "H", 5: "B", 6: "C", 7: "N", 8: "O", 9: "F", 13: "Al", 14: "Si", 15: "P", 16: "S"}
SYMBOLS.update({17: "Cl", 33: "As", 34: "Se", 35: "Br"})
SUPPORTED = frozenset(SYMBOLS)

# Allowed valences (number of bonding electron pairs of a neutral atom), lowest first.
VALENCES = {1: (1,), 5: (3,), 6: (4,), 7: (3,), 8: (2,), 9: (1,), 13: (3,), 14: (4,)}
VALENCES.update({15: (3, 5), 16: (2, 4, 6), 17: (1,), 33: (3, 5), 34: (2, 4, 6), 35: (1,)})

# Single-bond lengths in pm. Pairs below are the wiredchemist.com table (bond energies and
# lengths) as collected by Hoogeboom et al. 2022 (EDM, qm9/bond_analyze.py), which the paper cites.
_TABLE_PM = {
    ("H", "H"): 74, ("H", "C"): 109, ("H", "N"): 101, ("H", "O"): 96, ("H", "F"): 92,
    ("H", "B"): 119, ("H", "Si"): 148, ("H", "P"): 144, ("H", "As"): 152, ("H", "S"): 134,
    ("H", "Cl"): 127, ("H", "Br"): 141,
    ("C", "C"): 154, ("C", "N"): 147, ("C", "O"): 143, ("C", "F"): 135, ("C", "Si"): 185,
    ("C", "P"): 184, ("C", "S"): 182, ("C", "Cl"): 177, ("C", "Br"): 194,
    ("N", "N"): 145, ("N", "O"): 140, ("N", "F"): 136, ("N", "Cl"): 175, ("N", "Br"): 214,
    ("N", "S"): 168, ("N", "P"): 177,
    ("O", "O"): 148, ("O", "F"): 142, ("O", "Br"): 172, ("O", "S"): 151, ("O", "P"): 163,
    ("O", "Si"): 163, ("O", "Cl"): 164,
    ("F", "F"): 142, ("F", "S"): 158, ("F", "Si"): 160, ("F", "Cl"): 166, ("F", "Br"): 178,
    ("F", "P"): 156,
    ("B", "Cl"): 175,
    ("Si", "Si"): 233, ("Si", "S"): 200, ("Si", "Cl"): 202, ("Si", "Br"): 215,
    ("Cl", "Cl"): 199, ("Cl", "P"): 203, ("Cl", "S"): 207, ("Cl", "Br"): 214,
    ("S", "S"): 204, ("S", "Br"): 225, ("S", "P"): 210,
    ("Br", "Br"): 228, ("Br", "P"): 222,
    ("P", "P"): 221,
}  # fmt: skip
# Pairs missing above (B, Al, As, Se with most partners) use the sum of the single-bond covalent
# radii of Pyykkö & Atsumi, Chem. Eur. J. 15, 186 (2009), in pm.
_PYYKKO_RADII_PM = {"H": 32, "B": 85, "C": 75, "N": 71, "O": 63, "F": 64, "Al": 126, "Si": 116}
_PYYKKO_RADII_PM.update({"P": 111, "S": 103, "Cl": 99, "As": 121, "Se": 116, "Br": 114})

# Atoms that give a lone pair (2 pi electrons) to a ring when they have no free valence left.
_LONE_PAIR_DONORS = frozenset({7, 8, 15, 16, 33, 34})
_MAX_ORDER = 3
_MAX_VALENCE_COMBOS = 16  # bound on the hypervalent-state enumeration (step 4)
_MAX_RING_EDGES = 120  # skip the aromatic shortcut (step 2) on larger candidate graphs
MAX_MATCHING_NODES = 600  # bound on the split graph handed to the matching (step 3)


def single_bond_pm(z1: int, z2: int) -> float:
    """Reference single-bond length in pm of the element pair ``(z1, z2)``."""
    a, b = SYMBOLS[int(z1)], SYMBOLS[int(z2)]
    if (a, b) in _TABLE_PM:
        return float(_TABLE_PM[(a, b)])
    if (b, a) in _TABLE_PM:
        return float(_TABLE_PM[(b, a)])
    return float(_PYYKKO_RADII_PM[a] + _PYYKKO_RADII_PM[b])


def single_bond_matrix_angstrom(atomic_numbers: np.ndarray) -> np.ndarray:
    """``[N, N]`` reference single-bond lengths in Å for every atom pair."""
    elements = sorted({int(z) for z in atomic_numbers})
    lookup = {(a, b): single_bond_pm(a, b) / 100.0 for a in elements for b in elements}
    z = [int(v) for v in atomic_numbers]
    return np.array([[lookup[(a, b)] for b in z] for a in z], dtype=np.float64)


def valence_choices(atomic_numbers: np.ndarray, degree: np.ndarray) -> list[tuple[int, ...]]:
    """Per atom, the allowed valences not below its degree (empty tuple: over-valent atom)."""
    return [
        tuple(v for v in VALENCES[int(z)] if v >= d)
        for z, d in zip(atomic_numbers, degree, strict=True)
    ]


def useful_valences(choices: list[tuple[int, ...]], adjacency: np.ndarray) -> list[tuple]:
    """Drop valences an atom could never reach: its neighbours can take at most
    ``_MAX_ORDER - 1`` extra bond orders each, and only up to their own largest free valence."""
    degree = adjacency.sum(axis=1)
    room = np.array([c[-1] for c in choices]) - degree
    pruned = []
    for i, c in enumerate(choices):
        nbrs = np.nonzero(adjacency[i])[0]
        reach = degree[i] + int(np.minimum(room[nbrs], _MAX_ORDER - 1).sum())
        pruned.append(tuple(v for v in c if v <= reach) or c[:1])
    return pruned


def valence_combinations(choices: list[tuple[int, ...]]) -> list[np.ndarray]:
    """Valence vectors to try, lowest total first, at most ``_MAX_VALENCE_COMBOS`` of them."""
    base = np.array([c[0] for c in choices], dtype=np.int64)
    multi = [i for i, c in enumerate(choices) if len(c) > 1]
    combos = []
    for values in itertools.product(*(choices[i] for i in multi)):
        v = base.copy()
        v[multi] = values
        combos.append(v)
        if len(combos) >= 8 * _MAX_VALENCE_COMBOS:
            break
    combos.sort(key=lambda v: int(v.sum()))
    return combos[:_MAX_VALENCE_COMBOS]


def _partners(order: np.ndarray, free: np.ndarray, i: int) -> list[int]:
    """Neighbours of ``i`` that still have free valence and a bond below triple."""
    nbrs = np.nonzero(order[i])[0]
    return [int(j) for j in nbrs if free[j] > 0 and order[i, j] < _MAX_ORDER]


def _raise_order(order: np.ndarray, free: np.ndarray, i: int, j: int, step: int) -> None:
    order[i, j] += step
    order[j, i] += step
    free[i] -= step
    free[j] -= step


def saturate_terminal_atoms(order: np.ndarray, free: np.ndarray) -> None:
    """Step 1: an atom with a single unsaturated partner puts all its free valence on that bond.

    These moves are forced, so they are applied repeatedly (each pass raises at least one bond
    order, so at most ``2 * N * _MAX_ORDER`` passes run).
    """
    for _ in range(2 * len(free) * _MAX_ORDER + 1):
        changed = False
        for i in np.nonzero(free > 0)[0]:
            i = int(i)
            if free[i] <= 0:
                continue
            partners = _partners(order, free, i)
            if len(partners) == 1:
                j = partners[0]
                step = min(int(free[i]), int(free[j]), _MAX_ORDER - int(order[i, j]))
                _raise_order(order, free, i, j, step)
                changed = True
        if not changed:
            return


def small_rings(adjacency: np.ndarray) -> list[frozenset[int]]:
    """Rings of 3-8 atoms from a minimum cycle basis of the bond graph (its 2-core only).

    Returns no rings when the 2-core has more than ``_MAX_RING_EDGES`` bonds (never the case
    for molecules; it bounds the cost on random point clouds).
    """
    graph = nx.Graph()
    graph.add_edges_from(zip(*(a.tolist() for a in np.nonzero(np.triu(adjacency, 1))), strict=True))
    core = nx.k_core(graph, 2)
    if core.number_of_edges() > _MAX_RING_EDGES:
        return []
    return [frozenset(c) for c in nx.minimum_cycle_basis(core) if 3 <= len(c) <= 8]


def _ring_systems(rings, free, atomic_numbers) -> list[set[int]]:
    """Fused systems of rings whose atoms could all be aromatic (free 1, donors, boron)."""

    def candidate(i: int) -> bool:
        z = int(atomic_numbers[i])
        return free[i] == 1 or (free[i] == 0 and (z in _LONE_PAIR_DONORS or z == 5))

    systems: list[set[int]] = []
    for ring in rings:
        if not all(candidate(i) for i in ring):
            continue
        touching = [s for s in systems if s & ring]
        merged = set(ring).union(*touching)
        systems = [s for s in systems if not (s & ring)] + [merged]
    return systems


def _huckel_pi_electrons(system: set[int], free, atomic_numbers) -> int:
    return sum(1 if free[i] == 1 else (0 if int(atomic_numbers[i]) == 5 else 2) for i in system)


def assign_aromatic_rings(order: np.ndarray, free: np.ndarray, atomic_numbers, rings) -> None:
    """Step 2: Kekulé orders for ring systems with 4n+2 pi electrons and no open exits.

    A system is only fixed here when none of its unsaturated atoms has an unsaturated partner
    outside the system, so the internal perfect matching chosen is part of some optimal overall
    assignment; any Kekulé structure of the system gives the same aromatic molecule.
    """
    for system in _ring_systems(rings, free, atomic_numbers):
        open_atoms = [i for i in system if free[i] == 1]
        if len(open_atoms) % 2 or _huckel_pi_electrons(system, free, atomic_numbers) % 4 != 2:
            continue
        if any(j not in system for i in open_atoms for j in _partners(order, free, i)):
            continue
        graph = nx.Graph()
        graph.add_nodes_from(open_atoms)
        graph.add_edges_from(
            (i, j) for i, j in itertools.combinations(open_atoms, 2) if order[i, j] > 0
        )
        matching = nx.max_weight_matching(graph, maxcardinality=True)
        if 2 * len(matching) == len(open_atoms):
            for i, j in matching:
                _raise_order(order, free, i, j, 1)


def _matching_weight(distance: float, reference: float) -> int:
    """Integer weight growing as a bond gets shorter relative to its single-bond length."""
    return int(round(1000.0 * (2.0 - distance / reference)))


def match_multiple_bonds(order, free, distances, references) -> None:
    """Step 3: place the remaining free valence by a maximum-weight matching.

    Each atom with ``k`` free valences becomes ``k`` copies; a matched copy pair raises the bond
    order by one. Maximum cardinality first (fewest radicals), then the largest sum of weights,
    i.e. multiple bonds on the bonds that are shortest relative to their single-bond length.
    """
    open_atoms = [int(i) for i in np.nonzero(free > 0)[0]]
    if sum(int(free[i]) for i in open_atoms) > MAX_MATCHING_NODES:
        raise OverflowError("too many unsaturated atoms for the bond-order matching")
    graph = nx.Graph()
    for i, j in itertools.combinations(open_atoms, 2):
        if order[i, j] == 0 or order[i, j] >= _MAX_ORDER:
            continue
        weight = _matching_weight(distances[i, j], references[i, j])
        room = _MAX_ORDER - int(order[i, j])  # copies of i or j that may pair over this bond
        for a in range(min(int(free[i]), room)):
            for b in range(min(int(free[j]), room)):
                graph.add_edge((i, a), (j, b), weight=weight)
    for (i, _), (j, _) in nx.max_weight_matching(graph, maxcardinality=True):
        _raise_order(order, free, i, j, 1)


def assign_orders(atomic_numbers, adjacency, distances, references, valences, rings):
    """Steps 1-3 for one choice of valences.

    Args:
        atomic_numbers: ``[N]`` ints.
        adjacency: ``[N, N]`` bool, symmetric connectivity.
        distances: ``[N, N]`` interatomic distances (Å).
        references: ``[N, N]`` single-bond lengths (Å).
        valences: ``[N]`` target valence per atom (each >= the atom's degree).
        rings: ``small_rings(adjacency)``.

    Returns:
        ``(order [N, N] int, free [N] int)``: bond orders and valence left unplaced (radicals).
    """
    order = adjacency.astype(np.int64)
    free = np.asarray(valences, dtype=np.int64) - order.sum(axis=1)
    saturate_terminal_atoms(order, free)
    assign_aromatic_rings(order, free, atomic_numbers, rings)
    saturate_terminal_atoms(order, free)
    match_multiple_bonds(order, free, distances, references)
    return order, free


def assign_with_valence_refinement(atomic_numbers, adjacency, distances, references):
    """Steps 1-4: try the allowed valence states (bounded), keep the one with fewest radicals.

    Returns:
        ``(order, free)`` of the best state, or ``None`` if some atom has more neighbours than
        its largest allowed valence.
    """
    choices = valence_choices(atomic_numbers, adjacency.sum(axis=1))
    if any(not c for c in choices):
        return None
    choices = useful_valences(choices, adjacency)
    rings = small_rings(adjacency)
    best = None
    for valences in valence_combinations(choices):
        order, free = assign_orders(
            atomic_numbers, adjacency, distances, references, valences, rings
        )
        if best is None or int(free.sum()) < int(best[1].sum()):
            best = (order, free)
        if int(free.sum()) == 0:
            break
    return best
