"""Print one JSON object describing a dataset source (other tools parse it; keep the keys).

Usage:
  python -m data_pipeline.describe [--source embedded|qm9_ir|qm9s|qme14s] [--data_dir D]

Keys (always present): ``source``, ``num_molecules`` (after screening), ``splits`` (counts of
train/validation/test), ``max_atoms``, ``elements`` (symbols, ascending atomic number),
``screened_out`` (count), ``spectrum_grid`` ({lo, hi, points} of the model spectrum).
``embedded`` reads the shipped subset and its manifest; ``qm9_ir`` needs ``--data_dir`` with a
``build_qm9_ir`` output directory (screens it and splits it); ``qm9s``/``qme14s`` need
``--data_dir`` with the official release files.
"""

import argparse
import json
import sys

import numpy as np

from data_pipeline import embedded, merge_shards, prepare, shard_io
from data_pipeline.records import RawMolecule

SOURCES = ("embedded", "qm9_ir", "qm9s", "qme14s")
_TOLERANCE = {"qm9_ir": 0.4, "qm9s": 0.4, "qme14s": 0.3}


class DescribeError(ValueError):
    """The source cannot be described (missing files, unknown source)."""


def _grid() -> dict:
    lo, hi, points = prepare.MODEL_GRID
    return {"lo": lo, "hi": hi, "points": points}


def _symbols(atomic_numbers) -> list[str]:
    from irgeodiff_jax.chem import elements

    return [elements.symbol(int(z)) for z in sorted({int(z) for z in atomic_numbers})]


def summary(source: str, raws: list[RawMolecule], screened_out: int, splits: dict) -> dict:
    """The describe object for already screened molecules ``raws``."""
    return {
        "source": source,
        "num_molecules": len(raws),
        "splits": {k: int(np.asarray(v).size) for k, v in splits.items()},
        "max_atoms": max((r.num_atoms for r in raws), default=0),
        "elements": _symbols(np.concatenate([r.atomic_numbers for r in raws]) if raws else []),
        "screened_out": int(screened_out),
        "spectrum_grid": _grid(),
    }


def default_num_test(num_molecules: int) -> int:
    """1,000 test molecules (paper), or a tenth of the molecules for small sets (< 10,000)."""
    return 1000 if num_molecules >= 10_000 else max(1, num_molecules // 10)


def describe_embedded(directory: str | None = None) -> dict:
    info = embedded.manifest(directory)
    raws = embedded.load_embedded(directory)
    return summary("embedded", raws, len(info["screened_out"]), embedded.splits(directory))


def _screen_and_split(source: str, raws: list[RawMolecule], seed: int) -> dict:
    report = prepare.screening_report(raws, tolerance_angstrom=_TOLERANCE[source])
    kept = [r for r in raws if str(r.id) not in report["removed"]]
    if len(kept) < 2:
        raise DescribeError(f"{source}: only {len(kept)} molecules pass screening")
    split = prepare.split_ids([r.id for r in kept], seed=seed, num_test=default_num_test(len(kept)))
    return summary(source, kept, report["num_removed"], split)


def describe_build(data_dir: str, seed: int = 0) -> dict:
    """A ``build_qm9_ir`` output directory (screened and split here)."""
    return _screen_and_split("qm9_ir", merge_shards.read_build(data_dir), seed)


def describe_release(source: str, data_dir: str | None, seed: int = 0) -> dict:
    """Official QM9S/QMe14S files through their readers (``qm9s_release``, ``qme14s_release``)."""
    if not data_dir:
        raise DescribeError(f"source {source!r} needs --data_dir with the official release files")
    from data_pipeline import qm9s_release, qme14s_release  # pandas: imported only for releases

    readers = {"qm9s": qm9s_release.read_qm9s, "qme14s": qme14s_release.read_qme14s}
    if source not in readers:
        raise DescribeError(f"source {source!r} is not a release; choose from {sorted(readers)}")
    return _screen_and_split(source, list(readers[source](data_dir)), seed)


def describe(source: str, data_dir: str | None = None, seed: int = 0) -> dict:
    if source == "embedded":
        return describe_embedded(data_dir)
    if source == "qm9_ir":
        if not data_dir:
            raise DescribeError("source 'qm9_ir' needs --data_dir with a build_qm9_ir output dir")
        return describe_build(data_dir, seed)
    if source in ("qm9s", "qme14s"):
        return describe_release(source, data_dir, seed)
    raise DescribeError(f"unknown source {source!r}, choose from {SOURCES}")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m data_pipeline.describe", description=__doc__)
    p.add_argument("--source", default="embedded", choices=SOURCES)
    p.add_argument("--data_dir", default=None)
    p.add_argument("--seed", type=int, default=0, help="split seed for sources split here")
    args = p.parse_args(argv)
    try:
        out = describe(args.source, args.data_dir, args.seed)
    except (
        DescribeError,
        embedded.EmbeddedDataError,
        merge_shards.MergeError,
        shard_io.ShardError,
        FileNotFoundError,
        ValueError,
    ) as e:
        print(f"describe: error: {' '.join(str(e).split())}", file=sys.stderr)
        return 2
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
