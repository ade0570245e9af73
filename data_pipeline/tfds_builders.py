"""tfds builders ``qm9_ir``, ``qm9s``, ``qme14s``: array_record datasets of schema-v1 examples.

No TensorFlow is needed to build or read them (tensorflow-datasets 4.9.10 writes array_record and
serialises examples with its own numpy/protobuf path). Build::

  python -m data_pipeline.tfds_builders --name qm9_ir --manual_dir BUILD_DIR --data_dir OUT
  python -m data_pipeline.tfds_builders --name qm9s --manual_dir QM9S_FILES --data_dir OUT

``manual_dir`` is a ``build_qm9_ir`` output directory (``qm9_ir``) or the official release files
(``qm9s``/``qme14s``, see `data_pipeline.qm9s_release` / `data_pipeline.qme14s_release`). Read::

  tfds.data_source("qm9_ir", data_dir=OUT)["train"][i]   # -> dict of numpy arrays / bytes

Every molecule is screened (`prepare.screen`: bonds from the geometry must give the SMILES),
the survivors are split (`prepare.split_ids`) and prepared (`prepare.prepare_example`). Counts,
removed ids with reasons, settings and split sizes are stored in the dataset's ``metadata.json``
(``builder.info.metadata``).
"""

import argparse
import os
import sys

import numpy as np
import tensorflow_datasets as tfds
from etils import epath

from data_pipeline import describe, merge_shards, prepare, qm9s_release, qme14s_release

_FG = {"qm9s": 20, "qme14s": 26}


class BuildError(ValueError):
    """A dataset cannot be built (unknown name, missing input directory)."""


def features(scheme: str, formula_len: int) -> tfds.features.FeaturesDict:
    """Example schema v1 as tfds features (ragged atom axis as a dynamic first dimension)."""
    return tfds.features.FeaturesDict(
        {
            "id": tfds.features.Scalar(np.int64),
            "smiles": tfds.features.Text(),
            "formula": tfds.features.Text(),
            "atomic_numbers": tfds.features.Tensor(shape=(None,), dtype=np.int32),
            "positions": tfds.features.Tensor(shape=(None, 3), dtype=np.float32),
            "spectrum": tfds.features.Tensor(shape=(prepare.MODEL_GRID[2],), dtype=np.float32),
            "fg_labels": tfds.features.Tensor(shape=(_FG[scheme],), dtype=np.bool_),
            "formula_tokens": tfds.features.Tensor(shape=(formula_len,), dtype=np.int32),
        }
    )


class _ScreenedBuilder(tfds.core.GeneratorBasedBuilder, skip_registration=True):
    """Common flow: read geometries -> screen -> split -> prepare each split's molecules."""

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "Example schema v1."}
    SCHEME = "qm9s"
    TOLERANCE_ANGSTROM = 0.4
    FREQUENCY_SCALE = 1.0

    @tfds.core.utils.classproperty
    @classmethod
    def code_path(cls) -> epath.Path:
        # tfds's default looks the module up through `importlib_resources` (a backport that is
        # not installed) for builders outside `__main__`; the file path is all it needs.
        return epath.Path(__file__)

    def __init__(self, *, split_seed: int = 0, num_test: int | None = None, formula_len=16, **kw):
        self._split_seed, self._num_test, self._formula_len = split_seed, num_test, formula_len
        self._report: dict = {}
        super().__init__(**kw)

    def _info(self) -> tfds.core.DatasetInfo:
        return tfds.core.DatasetInfo(
            builder=self,
            description=(self.__doc__ or "").strip(),
            features=features(self.SCHEME, self._formula_len),
            metadata=tfds.core.MetadataDict(),
        )

    # Subclasses: geometry-only molecules for screening, and full molecules for a set of ids.
    def _geometries(self, manual_dir: str) -> list:
        raise NotImplementedError

    def _molecules(self, manual_dir: str, ids: set):
        raise NotImplementedError

    def _split_generators(self, dl_manager):
        manual_dir = os.fspath(dl_manager.manual_dir)
        raws = self._geometries(manual_dir)
        report = prepare.screening_report(raws, tolerance_angstrom=self.TOLERANCE_ANGSTROM)
        kept = [int(r.id) for r in raws if str(r.id) not in report["removed"]]
        num_test = self._num_test
        if num_test is None:
            num_test = describe.default_num_test(len(kept))
        splits = prepare.split_ids(kept, seed=self._split_seed, num_test=num_test)
        self._report = {"failed": {}, "screening": report}
        self._record_metadata(len(raws), splits, num_test)
        return {
            name: self._generate_examples(manual_dir, {int(i) for i in ids})
            for name, ids in splits.items()
        }

    def _generate_examples(self, manual_dir: str, ids: set):
        settings = {"scheme": self.SCHEME, "frequency_scale": self.FREQUENCY_SCALE}
        for raw in self._molecules(manual_dir, ids):
            try:
                example = prepare.prepare_example(raw, formula_len=self._formula_len, **settings)
            except prepare.PrepareError as e:
                self._report["failed"][str(raw.id)] = str(e)  # = metadata["prepare_failed"]
                continue
            yield int(raw.id), example

    def _record_metadata(self, num_read: int, splits: dict, num_test: int) -> None:
        report = self._report["screening"]
        self.info.metadata.update(
            {
                "builder": "data_pipeline.tfds_builders",
                "schema_version": prepare.SCHEMA_VERSION,
                "num_read": int(num_read),
                "screened_out": int(report["num_removed"]),
                "screened_by_category": report["by_category"],
                "screened_out_ids": report["removed"],
                "prepare_failed": self._report["failed"],  # filled while examples are made
                "split_ids_counts": {k: int(len(v)) for k, v in splits.items()},
                "settings": {
                    "scheme": self.SCHEME,
                    "frequency_scale": self.FREQUENCY_SCALE,
                    "fwhm_cm1": 15.0,
                    "formula_len": self._formula_len,
                    "tolerance_angstrom": self.TOLERANCE_ANGSTROM,
                    "split_seed": self._split_seed,
                    "num_test": int(num_test),
                    "model_grid": list(prepare.MODEL_GRID),
                },
            }
        )


class Qm9Ir(_ScreenedBuilder):
    """QM9-IR: QM9 geometries re-optimised with GFN2-xTB and xTB IR sticks (this project)."""

    MANUAL_DOWNLOAD_INSTRUCTIONS = "manual_dir = a (merged) data_pipeline.build_qm9_ir output."

    def _geometries(self, manual_dir):
        self._raws = {int(r.id): r for r in merge_shards.read_build(manual_dir)}
        return list(self._raws.values())

    def _molecules(self, manual_dir, ids):
        return (self._raws[i] for i in sorted(ids))


class Qm9s(_ScreenedBuilder):
    """QM9S (Zou et al. 2023): B3LYP geometries and broadened IR spectra, 500-4000 cm^-1."""

    MANUAL_DOWNLOAD_INSTRUCTIONS = (
        "manual_dir = the QM9S files: qm9s.pt (or qm9s_geometries.npz/.xyz) and ir_boraden.csv."
    )
    _MODULE, _CSV, _PREFIX = qm9s_release, qm9s_release.IR_CSV, "qm9s"

    def _geometries(self, manual_dir):
        with_spectra = set(qm9s_release.read_csv_ids(os.path.join(manual_dir, self._CSV)).tolist())
        self._geoms = qm9s_release.read_geometries(manual_dir, prefix=self._PREFIX)
        mols = self._MODULE.iter_molecules(manual_dir, with_spectra=False, geometries=self._geoms)
        return [r for r in mols if int(r.id) in with_spectra]

    def _molecules(self, manual_dir, ids):
        return self._MODULE.iter_molecules(manual_dir, ids=ids, geometries=self._geoms)


class Qme14s(Qm9s):
    """QMe14S: 14 elements, B3LYP/TZVP, IR spectra on 3,500 points over 500-4000 cm^-1."""

    MANUAL_DOWNLOAD_INSTRUCTIONS = (
        "manual_dir = qme14s_geometries.npz (or .xyz, or qme14s.pt) and qme14s_ir.csv."
    )
    SCHEME = "qme14s"
    TOLERANCE_ANGSTROM = 0.3
    _MODULE, _CSV, _PREFIX = qme14s_release, qme14s_release.IR_CSV, qme14s_release.PREFIX


BUILDERS = {"qm9_ir": Qm9Ir, "qm9s": Qm9s, "qme14s": Qme14s}


def build(name: str, manual_dir: str, data_dir: str, **kw) -> tfds.core.DatasetBuilder:
    """Build (or reuse) dataset ``name`` under ``data_dir``; returns the builder."""
    if name not in BUILDERS:
        raise BuildError(f"unknown dataset {name!r}; choose from {sorted(BUILDERS)}")
    cls = BUILDERS[name]
    if not os.path.isdir(manual_dir) or not os.listdir(manual_dir):
        raise BuildError(
            f"manual_dir {manual_dir} is missing or empty; expected: "
            f"{cls.MANUAL_DOWNLOAD_INSTRUCTIONS}"
        )
    builder = cls(data_dir=data_dir, file_format="array_record", **kw)
    config = tfds.download.DownloadConfig(manual_dir=manual_dir)
    builder.download_and_prepare(download_config=config)
    return builder


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m data_pipeline.tfds_builders", description=__doc__)
    p.add_argument("--name", required=True, choices=sorted(BUILDERS))
    p.add_argument("--manual_dir", required=True)
    p.add_argument("--data_dir", required=True)
    p.add_argument("--split_seed", type=int, default=0)
    p.add_argument(
        "--num_test", type=int, default=None, help="default: 1000 (a tenth below 10,000 molecules)"
    )
    args = p.parse_args(argv)
    try:
        builder = build(
            args.name,
            args.manual_dir,
            args.data_dir,
            split_seed=args.split_seed,
            num_test=args.num_test,
        )
    except (ValueError, FileNotFoundError) as e:
        print(f"tfds_builders: error: {' '.join(str(e).split())}", file=sys.stderr)
        return 2
    counts = {k: v.num_examples for k, v in builder.info.splits.items()}
    meta = builder.info.metadata
    print(
        f"{args.name}: {counts}; screened out {meta['screened_out']}, "
        f"prepare failed {len(meta['prepare_failed'])} -> {builder.data_dir}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
