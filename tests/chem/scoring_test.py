import pytest
from rdkit import Chem

from irgeodiff_jax.chem import elements, scoring


def _with_h(smiles):
    """Molecule with explicit H atoms and no implicit ones, like a geometry-built Mol."""
    mol = Chem.AddHs(Chem.MolFromSmiles(smiles))
    for atom in mol.GetAtoms():
        atom.SetNoImplicit(True)
    return mol


def _methyl_radical_from_geometry():
    """CH3 with explicit H atoms and one radical electron, as a bond assigner would leave it."""
    rw = Chem.RWMol()
    c = rw.AddAtom(Chem.Atom(6))
    for _ in range(3):
        h = rw.AddAtom(Chem.Atom(1))
        rw.AddBond(c, h, Chem.BondType.SINGLE)
    for atom in rw.GetAtoms():
        atom.SetNoImplicit(True)
    rw.GetAtomWithIdx(c).SetNumRadicalElectrons(1)
    mol = rw.GetMol()
    Chem.SanitizeMol(mol)
    return mol


def test_identity_and_isomers():
    ethanol = _with_h("OCC")
    assert scoring.canonical_smiles(ethanol) == "CCO"
    assert scoring.inchikey(ethanol) == scoring.inchikey("CCO")
    assert scoring.same_molecule(ethanol, "CCO")
    assert not scoring.same_molecule(ethanol, "COC")
    assert scoring.same_molecule("C[C@H](N)O", "CC(N)O")  # stereo removed
    assert scoring.canonical_smiles("C[C@H](N)O") == scoring.canonical_smiles("CC(N)O")


def test_similarity():
    assert scoring.similarity(_with_h("CCO"), "OCC") == 1.0
    s = scoring.similarity("CCO", "COC")
    assert 0.0 <= s < 1.0
    assert scoring.similarity("CCO", "COC") == scoring.similarity("COC", "CCO")
    assert scoring.similarity("c1ccccc1O", "c1ccccc1N") > scoring.similarity("c1ccccc1O", "CCCC")
    with pytest.raises(scoring.ScoringError, match="sanitised"):
        scoring.similarity(Chem.MolFromSmiles("C(C)(C)(C)(C)C", sanitize=False), "CC")


@pytest.mark.parametrize(
    "smiles", ["CCO", "c1ccccc1", "c1cc[nH]c1", "CC#N", "O=C1CC1", "CS(C)(=O)=O", "OP(O)(O)=O"]
)
def test_good_molecules(smiles):
    for mol in (Chem.MolFromSmiles(smiles), _with_h(smiles)):
        assert scoring.is_valid(mol) and scoring.is_stable(mol) and scoring.is_connected(mol)


def test_radicals_not_stable():
    radical = _methyl_radical_from_geometry()
    assert not scoring.is_stable(radical)
    assert scoring.is_valid(radical) and scoring.is_connected(radical)
    assert not scoring.is_stable(Chem.MolFromSmiles("[CH2]CO"))
    # an unsaturated carbon without a radical flag is not exactly saturated either
    rw = Chem.RWMol(_with_h("C"))
    rw.RemoveAtom(4)  # CH3 left with no radical electron recorded
    assert rw.GetAtomWithIdx(0).GetNumRadicalElectrons() == 0
    assert not scoring.is_stable(rw.GetMol()) and scoring.is_valid(rw.GetMol())


def test_charges():
    ammonium = Chem.MolFromSmiles("C[N+](C)(C)C")
    assert scoring.is_valid(ammonium) and not scoring.is_stable(ammonium)
    assert scoring.is_valid(Chem.MolFromSmiles("C[N+](=O)[O-]"))


def test_pentavalent_carbon_and_fragments():
    penta = Chem.MolFromSmiles("C(C)(C)(C)(C)C", sanitize=False)
    assert not scoring.is_valid(penta) and not scoring.is_stable(penta)
    assert scoring.is_connected(penta)
    assert scoring.canonical_smiles(penta) is None and scoring.inchikey(penta) is None
    split = _with_h("CC.O")
    assert not scoring.is_connected(split) and not scoring.is_valid(split)
    assert scoring.is_stable(split)
    assert not scoring.is_connected(Chem.Mol())


def test_score_dict():
    ok = scoring.score(_with_h("CCO"), "OCC")
    assert ok == dict(valid=True, stable=True, connected=True, match=True, sim_g=1.0, smiles="CCO")
    iso = scoring.score(_with_h("COC"), "CCO")
    assert iso["valid"] and not iso["match"] and iso["sim_g"] < 1.0 and iso["smiles"] == "COC"
    split = scoring.score(_with_h("CC.O"), "CCO")
    assert not split["connected"] and not split["valid"] and split["smiles"] == "CC"
    assert split["sim_g"] == scoring.similarity("CC", "CCO")
    bad = scoring.score(Chem.MolFromSmiles("C(C)(C)(C)(C)C", sanitize=False), "CC(C)(C)C")
    assert bad == dict(
        valid=False, stable=False, connected=True, match=False, sim_g=0.0, smiles=None
    )
    none = scoring.score(None, "CCO")
    assert not any(none[k] for k in ("valid", "stable", "connected", "match"))


def test_bad_inputs():
    with pytest.raises(scoring.ScoringError, match="cannot parse"):
        scoring.score(_with_h("CC"), "C1CC")
    with pytest.raises(scoring.ScoringError, match="expected an RDKit Mol"):
        scoring.is_valid(3.0)
    with pytest.raises(elements.UnknownElementError, match="Na"):
        scoring.is_valid(Chem.MolFromSmiles("C[Na]"))


def test_3d_geometry_with_stereocentres_matches_its_stereo_free_smiles():
    """InChI reads stereo from 3D coordinates; identity must not (references carry no stereo)."""
    from rdkit.Chem import AllChem

    mol = Chem.AddHs(Chem.MolFromSmiles("C[C@H](O)[C@@H](C)N"))
    assert AllChem.EmbedMolecule(mol, randomSeed=0) == 0
    assert scoring.same_molecule(mol, "CC(O)C(C)N")
    assert scoring.score(mol, "CC(O)C(C)N")["match"]
    assert not scoring.same_molecule(mol, "CCC(O)CN")  # a constitutional isomer still differs
