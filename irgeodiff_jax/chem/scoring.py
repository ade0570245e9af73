"""Per-molecule structural metrics (method.md §8, reference-notes §1.9).

Inputs are RDKit Mols as produced by the geometry → Mol bond assigner (explicit H atoms, possibly
radical electrons, possibly several fragments) or SMILES strings. Identity and similarity use the
"clean" molecule: all hydrogens removed, stereochemistry removed, canonical SMILES.

* ``same_molecule``: InChIKey equality (the reference's match test), falling back to canonical
  SMILES equality when an InChIKey cannot be made.
* ``similarity`` (sim_g): Tanimoto of Morgan fingerprints, radius 1, 2,048 bits, computed on the
  molecule re-read from its clean canonical SMILES, as the reference does.
* ``is_valid``: no atom above its largest allowed valence and one connected fragment. Valences:
  H1 B3 C4 N3 O2 F1 Al3 Si4 P{3,5} S{2,4,6} Cl1 As{3,5} Se{2,4,6} Br1. A charged atom uses the
  valences of its isoelectronic element (atomic number minus charge: N+ as C, O− as F).
* ``is_stable``: every atom exactly saturated: no radical electrons, all formal charges 0 and
  every atom's valence (bond orders of a Kekulé form + hydrogens) in its allowed set.
* ``score``: as in the reference, a disconnected sample is scored (SMILES, match, sim_g) on its
  largest fragment; ``connected`` reports the disconnection.
"""

import numpy as np
from rdkit import Chem, DataStructs
from rdkit.Chem import rdFingerprintGenerator
from rdkit.rdBase import BlockLogs

from irgeodiff_jax.chem import elements

ALLOWED_VALENCES = {
    1: (1,),
    5: (3,),
    6: (4,),
    7: (3,),
    8: (2,),
    9: (1,),
    13: (3,),
    14: (4,),
    15: (3, 5),
    16: (2, 4, 6),
    17: (1,),
    33: (3, 5),
    34: (2, 4, 6),
    35: (1,),
}
MORGAN_RADIUS = 1
MORGAN_BITS = 2048
_MORGAN = rdFingerprintGenerator.GetMorganGenerator(radius=MORGAN_RADIUS, fpSize=MORGAN_BITS)


class ScoringError(ValueError):
    """An input that is neither an RDKit Mol nor a parseable SMILES string."""


def _as_mol(mol_or_smiles) -> Chem.Mol:
    if isinstance(mol_or_smiles, Chem.Mol):
        return mol_or_smiles
    if isinstance(mol_or_smiles, str):
        with BlockLogs():
            mol = Chem.MolFromSmiles(mol_or_smiles)
        if mol is None:
            raise ScoringError(f"cannot parse SMILES {mol_or_smiles!r}")
        return mol
    raise ScoringError(f"expected an RDKit Mol or SMILES, got {type(mol_or_smiles).__name__}")


def _clean(mol) -> Chem.Mol | None:
    """All-H-removed, stereo-free, sanitised copy without coordinates; None if RDKit cannot
    sanitise it. The conformer is dropped because InChI perceives stereo from 3D coordinates:
    a sampled geometry would otherwise never match its (stereo-free) reference SMILES."""
    try:
        with BlockLogs():
            out = Chem.RemoveAllHs(_as_mol(mol))
            Chem.RemoveStereochemistry(out)
            out.RemoveAllConformers()
        return out
    except ScoringError:
        raise
    except Exception:  # RDKit sanitisation errors (valence, kekulisation) have several types
        return None


def canonical_smiles(mol) -> str | None:
    """Canonical SMILES of the H-suppressed, stereo-free molecule; None if it cannot be made."""
    clean = _clean(mol)
    return None if clean is None else Chem.MolToSmiles(clean, canonical=True)


def inchikey(mol) -> str | None:
    """Standard InChIKey of the clean molecule; None if RDKit/InChI cannot make one."""
    clean = _clean(mol)
    if clean is None:
        return None
    with BlockLogs():
        try:
            key = Chem.MolToInchiKey(clean)
        except Exception:  # InChI conversion failures
            return None
    return key or None


def same_molecule(a, b) -> bool:
    """True if ``a`` and ``b`` (Mols or SMILES) are the same compound (InChIKey, else SMILES)."""
    ka, kb = inchikey(a), inchikey(b)
    if ka is not None and kb is not None:
        return ka == kb
    sa, sb = canonical_smiles(a), canonical_smiles(b)
    return sa is not None and sa == sb


def _fingerprint(mol):
    smiles = canonical_smiles(mol)
    if smiles is None:
        raise ScoringError("molecule cannot be sanitised, no fingerprint")
    with BlockLogs():
        reread = Chem.MolFromSmiles(smiles)
    if reread is None:
        raise ScoringError(f"canonical SMILES {smiles!r} does not parse back")
    return _MORGAN.GetFingerprint(reread)


def similarity(mol_a, mol_b) -> float:
    """sim_g: Tanimoto of Morgan (radius 1, 2,048-bit) fingerprints of the clean molecules.

    Raises ``ScoringError`` if either molecule cannot be sanitised.
    """
    return float(DataStructs.TanimotoSimilarity(_fingerprint(mol_a), _fingerprint(mol_b)))


def is_connected(mol) -> bool:
    """True if the molecular graph (hydrogens included) is one non-empty fragment."""
    m = _as_mol(mol)
    return m.GetNumAtoms() > 0 and len(Chem.GetMolFrags(m)) == 1


def _valences(mol: Chem.Mol) -> np.ndarray | None:
    """Per-atom valence: Kekulé bond orders + implicit/explicit H count; None if not kekulisable."""
    m = Chem.Mol(mol)
    try:
        with BlockLogs():
            m.UpdatePropertyCache(strict=False)
            if any(b.GetIsAromatic() for b in m.GetBonds()):
                Chem.Kekulize(m, clearAromaticFlags=True)
    except Exception:  # kekulisation failure: not a valid structure
        return None
    out = np.zeros(m.GetNumAtoms())
    for atom in m.GetAtoms():
        bonds = sum(b.GetBondTypeAsDouble() for b in atom.GetBonds())
        out[atom.GetIdx()] = bonds + atom.GetNumExplicitHs() + atom.GetNumImplicitHs()
    return out


def _allowed(atom: Chem.Atom) -> tuple[int, ...]:
    z = atom.GetAtomicNum()
    elements.check_supported([z])
    return ALLOWED_VALENCES.get(z - atom.GetFormalCharge(), ())


def is_valid(mol) -> bool:
    """No atom over its largest allowed valence, and the graph is connected."""
    m = _as_mol(mol)
    if not is_connected(m):
        return False
    val = _valences(m)
    if val is None:
        return False
    for atom in m.GetAtoms():
        allowed = _allowed(atom)
        if not allowed or val[atom.GetIdx()] > max(allowed):
            return False
    return True


def is_stable(mol) -> bool:
    """Every atom exactly saturated: no radicals, no formal charges, valence in the allowed set."""
    m = _as_mol(mol)
    if any(a.GetNumRadicalElectrons() or a.GetFormalCharge() for a in m.GetAtoms()):
        return False
    val = _valences(m)
    if val is None:
        return False
    return all(val[a.GetIdx()] in _allowed(a) for a in m.GetAtoms())


def _largest_fragment(mol: Chem.Mol) -> Chem.Mol:
    frags = Chem.GetMolFrags(mol, asMols=True, sanitizeFrags=False)
    return max(frags, key=lambda f: f.GetNumAtoms())


def score(sample_mol, reference_smiles: str) -> dict:
    """Structural metrics of one sample against its reference molecule.

    Args:
        sample_mol: RDKit Mol from the bond assigner (or SMILES); None means assignment failed.
        reference_smiles: the reference molecule.

    Returns:
        dict with ``valid, stable, connected, match`` (bool), ``sim_g`` (float, 0.0 when the
        sample cannot be sanitised) and ``smiles`` (clean canonical SMILES of the sample, or of
        its largest fragment; None if it cannot be made).
    """
    reference = _as_mol(reference_smiles)
    if sample_mol is None:
        return dict(valid=False, stable=False, connected=False, match=False, sim_g=0.0, smiles=None)
    mol = _as_mol(sample_mol)
    connected = is_connected(mol)
    core = mol if connected or mol.GetNumAtoms() == 0 else _largest_fragment(mol)
    smiles = canonical_smiles(core)
    sim = similarity(core, reference) if smiles is not None else 0.0
    return dict(
        valid=is_valid(mol),
        stable=is_stable(mol),
        connected=connected,
        match=smiles is not None and same_molecule(core, reference),
        sim_g=sim,
        smiles=smiles,
    )
