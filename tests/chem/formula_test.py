import numpy as np
import pytest

from data_pipeline import qm9pack_source
from irgeodiff_jax.chem import elements, formula


def test_parse_examples_and_hill_order():
    assert formula.parse("C4H6O") == {"C": 4, "H": 6, "O": 1}
    assert list(formula.parse("OH6C4")) == ["C", "H", "O"]
    assert formula.parse("CH3OH") == {"C": 1, "H": 4, "O": 1}
    assert list(formula.parse("H2O")) == ["H", "O"]
    assert list(formula.parse("NH3BrCl")) == ["Br", "Cl", "H", "N"]  # no carbon: alphabetical
    assert formula.parse(" C12H22O11 ") == {"C": 12, "H": 22, "O": 11}


@pytest.mark.parametrize("bad", ["", "c4h6o", "4C", "C0", "C04", "C4 H6", "C(H3)2", "CH3+", "Xx2"])
def test_parse_errors(bad):
    with pytest.raises(formula.FormulaError):
        formula.parse(bad)


def test_unknown_element_message():
    with pytest.raises(formula.FormulaError, match="unknown element 'Xx'"):
        formula.parse("CXx")
    with pytest.raises(formula.FormulaError, match="string"):
        formula.parse(None)


def test_atomic_numbers_round_trip():
    np.testing.assert_array_equal(formula.to_atomic_numbers("C2H6O"), [6, 6, 8, 1, 1, 1, 1, 1, 1])
    np.testing.assert_array_equal(formula.to_atomic_numbers("H2O"), [8, 1, 1])
    assert formula.from_atomic_numbers([8, 1, 6, 1, 1, 1]) == "CH4O"
    assert formula.from_atomic_numbers([17, 1]) == "ClH"
    for f in ["C4H6O", "C9H20", "CH2ClF", "C2H3BrN2OSSe", "F6S"]:
        assert formula.from_atomic_numbers(formula.to_atomic_numbers(f)) == f
    with pytest.raises(formula.FormulaError):
        formula.from_atomic_numbers([6, 0])
    with pytest.raises(formula.FormulaError, match="no atoms"):
        formula.from_atomic_numbers([])


def test_vocabulary_sizes_and_layout():
    qm9s = formula.FormulaTokenizer.for_dataset("qm9s")
    assert qm9s.vocab_size == 26
    assert qm9s.vocab[:9] == ("[PAD]", "[BOS]", "[EOS]", "[UNK]", "H", "C", "N", "O", "F")
    assert formula.FormulaTokenizer.for_dataset("qm9s_full").vocab_size == 27
    qme = formula.FormulaTokenizer.for_dataset("qme14s")
    assert qme.vocab_size == 39
    assert set(qme.vocab[4:18]) == {elements.symbol(z) for z in elements.QME14S_ELEMENTS}
    with pytest.raises(formula.FormulaError, match="unknown formula vocabulary"):
        formula.FormulaTokenizer.for_dataset("qm7")


def test_encode_decode():
    tok = formula.FormulaTokenizer.for_dataset("qm9s")
    ids = tok.encode("C4H6O", max_len=10)
    assert ids.dtype == np.int32 and ids.shape == (10,)
    words = [tok.vocab[i] for i in ids]
    assert words == ["[BOS]", "C", "4", "H", "6", "O", "[EOS]", "[PAD]", "[PAD]", "[PAD]"]
    assert tok.decode(ids) == "C4H6O"
    assert tok.decode(tok.encode("OC4H6", max_len=8)) == "C4H6O"
    assert tok.decode(tok.encode("CH4", 5)) == "CH4"
    assert tok.words("CHF3") == ["C", "H", "F", "3"]


def test_unknown_words_and_errors():
    tok = formula.FormulaTokenizer.for_dataset("qm9s")
    ids = tok.encode("C2H5Cl", max_len=8)
    expected = [formula.BOS_ID] + [tok.word_to_id[w] for w in ("C", "2", "H", "5")]
    assert list(ids[:7]) == expected + [formula.UNK_ID, formula.EOS_ID]
    with pytest.raises(formula.FormulaError, match="'Cl'"):
        tok.encode("C2H5Cl", max_len=8, strict=True)
    with pytest.raises(formula.FormulaError, match="max_len"):
        tok.encode("C4H6O", max_len=6)
    with pytest.raises(formula.FormulaError, match=r"\[UNK\]"):
        tok.decode(ids)
    with pytest.raises(formula.FormulaError, match="outside"):
        tok.decode([1, 40, 2])
    with pytest.raises(formula.FormulaError, match="does not follow"):
        tok.decode([1, 9, 5, 2])


def _qm9_formulas():
    """Distinct Hill formulas of all 130,831 qm9pack molecules (element counts from the table)."""
    col = qm9pack_source.table()["Elements"]
    counts = {s: col.str.count(f"'{s}'").to_numpy() for s in ("C", "H", "N", "O", "F")}
    assert sum(c.sum() for c in counts.values()) == qm9pack_source.table()["N_atoms"].sum()
    rows = np.stack([counts[s] for s in ("C", "H", "N", "O", "F")], axis=1)
    out = []
    for row in np.unique(rows, axis=0):
        out.append(formula.to_hill({s: int(n) for s, n in zip("CHNOF", row, strict=True) if n}))
    return out


def test_qm9_formulas_representable():
    formulas = _qm9_formulas()
    full = formula.FormulaTokenizer.for_dataset("qm9s_full")
    ref = formula.FormulaTokenizer.for_dataset("qm9s")
    not_in_ref = []
    for f in formulas:
        assert full.decode(full.encode(f, max_len=12, strict=True)) == f
        try:
            assert ref.decode(ref.encode(f, max_len=12, strict=True)) == f
        except formula.FormulaError:
            not_in_ref.append(f)
    # The 26-word reference-size vocabulary lacks only the count 20 (C9H20).
    assert not_in_ref == ["C9H20"]
