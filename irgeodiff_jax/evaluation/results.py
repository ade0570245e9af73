"""Per-sample results of an evaluation (``per_sample.jsonl``) and the index of a samples directory.

``per_sample.jsonl`` holds one JSON line per scored sample (a ``chem.score_job`` result),
appended as soon as it arrives; a later line for the same (spectrum id, sample index) replaces an
earlier one, so re-scoring (e.g. with the oracle) only appends.
"""

import json
import os

from irgeodiff_jax.chem import elements
from irgeodiff_jax.sampling import samples_dir as sdir

PER_SAMPLE = "per_sample.jsonl"


class EvaluationError(ValueError):
    """Bad arguments or inputs to the evaluation (one-line reason)."""


def load_results(path: str) -> dict[tuple[int, int], dict]:
    """Per-sample results keyed by (spectrum_id, sample_index); later lines win.

    A truncated last line (a run killed mid-write) is ignored, so that sample is re-scored.
    """
    out = {}
    if not os.path.exists(path):
        return out
    with open(path) as f:
        for line in f:
            try:
                r = json.loads(line)
                out[(int(r["spectrum_id"]), int(r["sample_index"]))] = r
            except (json.JSONDecodeError, KeyError, TypeError, ValueError):
                continue
    return out


def append_result(f, record: dict) -> None:
    """Appends one JSON line with a single write, flushed and synced."""
    f.write(json.dumps(record, sort_keys=True) + "\n")
    f.flush()
    os.fsync(f.fileno())


def reference_index(samples_dir: str) -> dict[int, tuple[str, int]]:
    """id → (reference SMILES, heavy atoms of the reference) for every completed spectrum, in
    directory order; each chunk is read once."""
    manifest = sdir.read_manifest(samples_dir)
    out = {}
    for name in manifest["chunks"]:
        chunk = sdir.load_chunk(samples_dir, name)
        for row, sid in enumerate(chunk["ids"]):
            heavy = elements.heavy_atom_count(chunk["atomic_numbers"][row])
            out[int(sid)] = (str(chunk["reference_smiles"][row]), heavy)
    return out


def spectrum_index(samples_dir: str) -> dict[int, str]:
    """id → reference SMILES for every completed spectrum, in directory order."""
    return {sid: smiles for sid, (smiles, _) in reference_index(samples_dir).items()}
