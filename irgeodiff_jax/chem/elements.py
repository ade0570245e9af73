"""Element tables: symbols, atomic numbers, masses and the per-dataset atom vocabularies.

The vocabularies are plain tuples and RDKit (symbols, masses) is imported on first use, so the
RDKit-free runtime loader (``irgeodiff_jax.data``) reads its atom types from here.
"""

import functools

import numpy as np

# Elements the project supports (QMe14S's 14); QM9S uses the first five of QM9S_ELEMENTS.
QM9S_ELEMENTS = (1, 6, 7, 8, 9)  # H C N O F
QME14S_ELEMENTS = (
    1,
    5,
    6,
    7,
    8,
    9,
    13,
    14,
    15,
    16,
    17,
    33,
    34,
    35,
)  # H B C N O F Al Si P S Cl As Se Br
# Atom-type vocabularies by dataset name (atomic numbers in type-index order): the model's atom
# types (``config.data.atom_vocabulary``), the elements a preparation scheme accepts and the element
# words of the formula tokenizer. Defined here only.
ATOM_VOCABULARIES = {"qm9s": QM9S_ELEMENTS, "qme14s": QME14S_ELEMENTS}
SUPPORTED_ELEMENTS = frozenset(QME14S_ELEMENTS)


@functools.cache
def _periodic_table():
    from rdkit import Chem  # noqa: PLC0415  (first use only: the vocabularies need no RDKit)

    return Chem.GetPeriodicTable()


@functools.cache
def _symbol_to_z() -> dict[str, int]:
    table = _periodic_table()
    return {table.GetElementSymbol(z): z for z in range(1, 119)}


class UnknownElementError(ValueError):
    """An element symbol or atomic number the project does not support."""


def symbol(z: int) -> str:
    """Element symbol of atomic number ``z`` (any element RDKit knows)."""
    z = int(z)
    if not 1 <= z <= 118:
        raise UnknownElementError(f"atomic number {z} is not an element")
    return _periodic_table().GetElementSymbol(z)


def atomic_number(sym: str) -> int:
    """Atomic number of an element symbol such as ``"Cl"`` (case-sensitive)."""
    lookup = _symbol_to_z()
    if sym not in lookup:
        raise UnknownElementError(f"unknown element symbol {sym!r}")
    return lookup[sym]


def masses_amu(atomic_numbers) -> np.ndarray:
    """Standard atomic weights (amu) for each atomic number."""
    table = _periodic_table()
    return np.array([table.GetAtomicWeight(int(z)) for z in atomic_numbers], dtype=np.float64)


def heavy_atom_count(atomic_numbers) -> int:
    """Non-hydrogen atoms among ``atomic_numbers`` (0 marks padding and is not counted)."""
    return int((np.asarray(atomic_numbers) > 1).sum())


def check_supported(atomic_numbers, allowed=SUPPORTED_ELEMENTS) -> None:
    """Raise ``UnknownElementError`` naming the first atomic number not in ``allowed``."""
    for z in np.asarray(atomic_numbers).ravel():
        if int(z) not in allowed:
            name = symbol(int(z)) if 1 <= int(z) <= 118 else str(int(z))
            raise UnknownElementError(f"element {name} (Z={int(z)}) is not supported here")


def to_type_index(atomic_numbers, vocabulary=QM9S_ELEMENTS) -> np.ndarray:
    """Map atomic numbers to indices into ``vocabulary`` (the model's atom types)."""
    lookup = {z: i for i, z in enumerate(vocabulary)}
    check_supported(atomic_numbers, allowed=lookup)
    return np.array([lookup[int(z)] for z in atomic_numbers], dtype=np.int32)
