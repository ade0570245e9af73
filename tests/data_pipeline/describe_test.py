"""describe: one JSON object with the contract keys, for embedded and builder outputs."""

import json

import pytest

from data_pipeline import build_qm9_ir, describe, embedded

KEYS = {
    "source",
    "num_molecules",
    "splits",
    "max_atoms",
    "elements",
    "screened_out",
    "spectrum_grid",
}


def run(capsys, argv):
    code = describe.main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def test_embedded_prints_the_contract_keys(capsys):
    code, out, _ = run(capsys, ["--source", "embedded"])
    assert code == 0 and out.count("\n") == 1
    obj = json.loads(out)
    assert set(obj) == KEYS
    info = embedded.manifest()
    assert obj["source"] == "embedded"
    assert obj["num_molecules"] == info["counts"]["kept"]
    assert obj["splits"] == {k: info["counts"][k] for k in ("train", "validation", "test")}
    assert obj["screened_out"] == info["counts"]["screened_out"]
    assert obj["spectrum_grid"] == {"lo": 500.0, "hi": 4000.0, "points": 3200}
    assert set(obj["elements"]) <= {"H", "C", "N", "O", "F"} and "C" in obj["elements"]
    assert 9 <= obj["max_atoms"] <= 29


def test_builder_output_dir(capsys, tmp_path):
    argv = ["--out", str(tmp_path), "--indices", "1-3,10", "--no_progress"]
    assert build_qm9_ir.main(argv) == 0
    code, out, _ = run(capsys, ["--source", "qm9_ir", "--data_dir", str(tmp_path)])
    assert code == 0
    obj = json.loads(out)
    assert set(obj) == KEYS and obj["source"] == "qm9_ir"
    assert obj["num_molecules"] == 4 and obj["screened_out"] == 0
    assert sum(obj["splits"].values()) == 4 and obj["splits"]["test"] == 1
    assert obj["max_atoms"] == 6 and obj["elements"] == ["H", "C", "N", "O"]


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--source", "qm9s"], "needs --data_dir with the official release files"),
        (["--source", "qm9_ir"], "needs --data_dir"),
    ],
)
def test_missing_data_dir_is_a_one_line_error(capsys, argv, message):
    code, out, err = run(capsys, argv)
    assert code == 2 and out == "" and message in err and err.count("\n") == 1
