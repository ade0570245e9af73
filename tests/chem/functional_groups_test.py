import numpy as np
import pytest
from rdkit import Chem

from data_pipeline import qm9pack_source
from irgeodiff_jax.chem import functional_groups as fg

QM9S = fg.GROUP_NAMES["qm9s"]

# One molecule per QM9S group with every group it should carry, worked out by hand from the
# SMARTS. Notes: CH2/CH3 carbons make "alkane" true almost everywhere ([CX4;H3,H2,H1]);
# aromatic atoms never match aliphatic N/O/C primitives (so imidazole is not an amine and
# oxazole is not an ether); the ester/amide heteroatoms are excluded from ether/amine by
# !$(OC=O) / !$(NC=O); ethylene oxide's O is a plain ether oxygen as well as an epoxide.
HAND_LABELS = {
    "CCC": {"alkane"},
    "C=C": {"alkene"},
    "C#C": {"alkyne"},
    "CN": {"alkane", "amine"},
    "C=N": {"imine"},
    "CC#N": {"alkane", "nitrile"},
    "CO": {"alkane", "alcohol"},
    "COC": {"alkane", "ether"},
    "CF": {"alkane", "haloalkane"},
    "CC=O": {"alkane", "aldehyde"},
    "CC(C)=O": {"alkane", "ketone"},
    "CC(=O)OC": {"alkane", "ester"},
    "CC(N)=O": {"alkane", "amide"},
    "c1ccccc1": {"arene"},
    "c1c[nH]cn1": {"arene", "imidazole"},
    "c1cn[nH]c1": {"arene", "pyrazole"},
    "c1cocn1": {"arene", "oxazole"},
    "c1cnoc1": {"arene", "isoxazole"},
    "C1CC1": {"alkane", "cyclopropane"},
    "C1CO1": {"alkane", "ether", "epoxide"},
}


def _vector(names, scheme="qm9s"):
    return np.array([n in names for n in fg.GROUP_NAMES[scheme]], dtype=bool)


def test_group_tables():
    assert len(QM9S) == 20 and len(fg.GROUP_NAMES["qme14s"]) == 26
    assert QM9S[:3] == ("alkane", "alkene", "alkyne") and QM9S[8] == "haloalkane"
    assert fg.SMARTS["qm9s"]["alcohol"] == "[OX2H;!$(OC=O)]"
    assert fg.GROUP_NAMES["qme14s"][-4:] == ("haloalkane", "thiol_sulfide", "sulfone", "sulfonate")
    assert {n for names in HAND_LABELS.values() for n in names} == set(QM9S)


@pytest.mark.parametrize("smiles", list(HAND_LABELS))
def test_qm9s_hand_vectors(smiles):
    mol = Chem.MolFromSmiles(smiles)
    expected = _vector(HAND_LABELS[smiles])
    got = fg.labels(mol)
    assert got.dtype == bool and got.shape == (20,)
    np.testing.assert_array_equal(got, expected)
    # explicit hydrogens (as in molecules built from geometry) give the same labels
    np.testing.assert_array_equal(fg.labels(Chem.AddHs(mol)), expected)


def test_hydrogen_sensitive_patterns():
    # [OX2H]: an O-H oxygen is alcohol, an O-C oxygen is not; formic acid's C-H carbon makes it
    # an "aldehyde" through [#6,H] (the O-H oxygen has one H); formaldehyde's CH2 is not [CX3H1].
    assert fg.labels("CO")[QM9S.index("alcohol")]
    assert not fg.labels("COC")[QM9S.index("alcohol")]
    assert fg.labels("O=CO")[QM9S.index("aldehyde")]
    assert not fg.labels("C=O").any()
    # quaternary carbon alone is not "alkane" (no H), a CH is
    assert not fg.labels("C(F)(F)(F)F")[QM9S.index("alkane")]
    assert fg.labels("C(F)(F)F")[QM9S.index("alkane")]


def test_implicit_and_explicit_hydrogens_agree_on_qm9_sample():
    table = qm9pack_source.table()
    pats = [Chem.MolFromSmarts(s) for s in fg.SMARTS["qm9s"].values()]
    for idx in qm9pack_source.sample_indices(300, seed=0):
        mol = Chem.MolFromSmiles(table.loc[idx, "SMILES"])
        with_h = Chem.AddHs(mol)
        implicit = fg.labels(mol)
        np.testing.assert_array_equal(fg.labels(with_h), implicit)
        direct = np.array([with_h.HasSubstructMatch(p) for p in pats])  # no RemoveHs at all
        np.testing.assert_array_equal(direct, implicit)


@pytest.mark.parametrize(
    "smiles, names",
    [
        ("CC(=O)O", {"alkane", "carboxylic_acid"}),
        ("COC(N)=O", {"alkane", "ester", "amide", "carbamate"}),
        ("C=CN", {"alkene", "enamine", "amine"}),
        ("CS(C)(=O)=O", {"alkane", "sulfone"}),
        ("CS", {"alkane", "thiol_sulfide"}),
        ("CCl", {"alkane", "haloalkane"}),
        ("CC(Cl)=O", {"alkane"}),  # acyl chloride excluded from haloalkane
        ("CS(=O)(=O)OC", {"alkane", "ether", "sulfone", "sulfonate"}),
    ],
)
def test_qme14s_examples(smiles, names):
    np.testing.assert_array_equal(fg.labels(smiles, "qme14s"), _vector(names, "qme14s"))


def test_errors():
    with pytest.raises(fg.FunctionalGroupError, match="unknown scheme"):
        fg.labels("CC", "qm7")
    with pytest.raises(fg.FunctionalGroupError, match="cannot parse"):
        fg.labels("C1CC")
    with pytest.raises(fg.FunctionalGroupError, match="expected an RDKit Mol"):
        fg.labels(42)
    bad = Chem.MolFromSmiles("C(C)(C)(C)(C)C", sanitize=False)
    with pytest.raises(fg.FunctionalGroupError, match="sanitised"):
        fg.labels(bad)
