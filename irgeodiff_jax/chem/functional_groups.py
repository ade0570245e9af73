"""Functional-group labels: SMARTS substructure matches → multi-hot vectors (method.md §2).

Two schemes, with the reference's SMARTS strings and order: ``"qm9s"`` (20 groups, paper
Table A1, reference-notes §1.2) and ``"qme14s"`` (26 groups, paper Table A2; the same strings are
in the reference's ``qme14s_fg.py``). No SMARTS here is a project invention.

Hydrogens: matching is done on the hydrogen-suppressed molecule (``Chem.RemoveHs``), so a
molecule parsed from SMILES (implicit H) and one with explicit H atoms (from geometry, or
``AddHs``) get the same labels. RDKit's ``X`` (total connections) and ``H`` (total H count)
primitives count implicit hydrogens, so patterns such as ``[OX2H]`` and ``[CX4;H3,H2,H1]`` match
as intended; ``tests/chem/functional_groups_test.py`` checks this. In ``[#6,H][CX3H1](=O)``
(aldehyde) the ``H`` inside the brackets is the "one attached hydrogen" primitive, not a hydrogen
atom, so formaldehyde (CH2O: the carbon carries two H) is not an aldehyde here, as in the
reference.
"""

import functools

import numpy as np
from rdkit import Chem

_QM9S = (
    ("alkane", "[CX4;H3,H2,H1]"),
    ("alkene", "[CX3]=[CX3]"),
    ("alkyne", "[CX2]#[CX2]"),
    ("amine", "[NX3;!$(NC=O)]"),
    ("imine", "[NX2]=[CX3]"),
    ("nitrile", "[NX1]#[CX2]"),
    ("alcohol", "[OX2H;!$(OC=O)]"),
    ("ether", "[OX2H0;!$(OC=O);!$([O]-[O])]"),
    ("haloalkane", "[#6;!$(C(=O)[F])][F]"),
    ("aldehyde", "[#6,H][CX3H1](=O)"),
    ("ketone", "[#6][CX3](=O)[#6]"),
    ("ester", "[CX3](=O)[OX2H0]"),
    ("amide", "[CX3](=O)[NX3]"),
    ("arene", "[$([cX2](:*):*),$([cX3](:*):*)]"),
    ("imidazole", "[#7]:[#6]:[#7]"),
    ("pyrazole", "[#7]:[#7]"),
    ("oxazole", "[#7]:[#6]:[#8]"),
    ("isoxazole", "[#7]:[#8]"),
    ("cyclopropane", "C1CC1"),
    ("epoxide", "C1OC1"),
)

_QME14S = (
    ("alkane", "[CX4;H3,H2,H1]"),
    ("alkene", "[CX3]=[CX3]"),
    ("enamine", "[CX3]=[CX3]([NX3])"),
    ("alkyne", "[CX2]#[CX2]"),
    ("amine", "[NX3;!$(NC=O)]"),
    ("imine", "[NX2]=[CX3]"),
    ("nitrile", "[NX1]#[CX2]"),
    ("alcohol", "[OX2H;!$(OC=O)]"),
    ("ether", "[OX2H0;!$(OC=O);!$([O]-[O])]"),
    ("aldehyde", "[#6,H][CX3H1](=O)"),
    ("ketone", "[#6][CX3](=O)[#6]"),
    ("carboxylic_acid", "[CX3](=O)[OX2H1]"),
    ("ester", "[CX3](=O)[OX2H0]"),
    ("amide", "[CX3](=O)[NX3]"),
    ("carbamate", "[OX2][CX3](=O)[NX3]"),
    ("arene", "[$([cX2](:*):*),$([cX3](:*):*)]"),
    ("imidazole", "[#7]:[#6]:[#7]"),
    ("pyrazole", "[#7]:[#7]"),
    ("oxazole", "[#7]:[#6]:[#8]"),
    ("isoxazole", "[#7]:[#8]"),
    ("cyclopropane", "C1CC1"),
    ("epoxide", "C1OC1"),
    ("haloalkane", "[!#1;!$(C(=[O,S,Se])[#9,#17,#35])][#9,#17,#35]"),
    ("thiol_sulfide", "[SX2]"),
    ("sulfone", "[SX4](=[O,Se])(=[O,Se])"),
    ("sulfonate", "[OX2][SX4](=[O,Se])(=[O,Se])"),
)

SMARTS = {"qm9s": dict(_QM9S), "qme14s": dict(_QME14S)}
GROUP_NAMES = {"qm9s": tuple(n for n, _ in _QM9S), "qme14s": tuple(n for n, _ in _QME14S)}


class FunctionalGroupError(ValueError):
    """An unknown labelling scheme or a molecule that cannot be labelled."""


@functools.lru_cache(maxsize=4)
def _patterns(scheme: str) -> tuple:
    if scheme not in SMARTS:
        raise FunctionalGroupError(f"unknown scheme {scheme!r}, choose from {sorted(SMARTS)}")
    pats = []
    for name, smarts in SMARTS[scheme].items():
        pat = Chem.MolFromSmarts(smarts)
        if pat is None:
            raise FunctionalGroupError(f"SMARTS for {name} does not parse: {smarts}")
        pats.append(pat)
    return tuple(pats)


def _prepare(mol) -> Chem.Mol:
    if isinstance(mol, str):
        parsed = Chem.MolFromSmiles(mol)
        if parsed is None:
            raise FunctionalGroupError(f"cannot parse SMILES {mol!r}")
        return parsed
    if not isinstance(mol, Chem.Mol):
        raise FunctionalGroupError(f"expected an RDKit Mol or SMILES, got {type(mol).__name__}")
    try:
        return Chem.RemoveHs(mol)
    except Exception as e:  # RDKit raises several sanitisation error types
        raise FunctionalGroupError(f"molecule cannot be sanitised: {e}") from None


def labels(mol, scheme: str = "qm9s") -> np.ndarray:
    """Multi-hot functional-group vector [G] bool in the order of ``GROUP_NAMES[scheme]``.

    Args:
        mol: an RDKit Mol (explicit H atoms or not) or a SMILES string.
        scheme: ``"qm9s"`` (G = 20) or ``"qme14s"`` (G = 26).
    """
    pats = _patterns(scheme)
    m = _prepare(mol)
    return np.array([m.HasSubstructMatch(p) for p in pats], dtype=bool)
