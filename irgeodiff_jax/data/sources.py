"""Random-access sources of prepared examples (schema v1) for the input pipeline.

A source has ``len(source)``, ``source[i] -> dict`` (schema v1, ``smiles``/``formula`` as str) and
``source.num_atoms() -> [len] int32`` (used for size buckets and the max-atoms check). Two kinds:

* `EmbeddedSource`: the QM9-IR subset shipped in ``irgeodiff_jax/data/embedded/``
  (`embedded_subset`), prepared once per process (`prepare.prepare_example`) and cached in memory;
  the split is the one recorded in the subset's manifest. Preparing needs RDKit (FG labels), so
  `prepare` is imported only when this source is used.
* `TfdsSource`: a dataset built by ``data_pipeline.tfds_builders`` (array_record), read with
  ``tfds.data_source(name, data_dir=...)``; needs no TensorFlow.

`get_source(data_config, split)` picks one from ``data_config.source`` / ``data_config.data_dir``.
"""

import functools
import os

import numpy as np
from absl import logging

from irgeodiff_jax.data import embedded_subset
from irgeodiff_jax.data.settings import DataSettings

SPLITS = ("train", "validation", "test")
RELEASE_SOURCES = ("qm9_ir", "qm9s", "qme14s")
_LOGGED: set = set()


class SourceError(ValueError):
    """A data source that cannot be opened (missing dataset, unknown split or name)."""


def _check_split(split: str) -> None:
    if split not in SPLITS:
        raise SourceError(f"unknown split {split!r}; expected one of {SPLITS}")


class InMemorySource:
    """A list of prepared examples held in memory."""

    def __init__(self, examples, name: str = "in_memory"):
        self._examples = list(examples)
        self.name = name

    def __len__(self) -> int:
        return len(self._examples)

    def __getitem__(self, index: int) -> dict:
        return self._examples[index]

    @functools.cached_property
    def _num_atoms(self) -> np.ndarray:
        return np.array([len(e["atomic_numbers"]) for e in self._examples], np.int32)

    def num_atoms(self) -> np.ndarray:
        """Atom count of every example, [len] int32."""
        return self._num_atoms

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, len={len(self)})"


@functools.lru_cache(maxsize=4)
def _embedded_splits(directory: str | None, settings: tuple) -> dict:
    """All embedded molecules prepared with ``settings``, grouped by the manifest's split."""
    from irgeodiff_jax.data import prepare  # noqa: PLC0415  (RDKit: only for this source)

    kwargs = dict(settings)
    info = embedded_subset.manifest(directory)
    if kwargs["frequency_scale"] is None:
        kwargs["frequency_scale"] = float(info.get("frequency_scale", 1.0))
    split_ids = info["splits"]
    by_id = {}
    for raw in embedded_subset.load_embedded(directory):
        by_id[int(raw.id)] = prepare.prepare_example(raw, **kwargs)
    out = {}
    for split in SPLITS:
        ids = [int(i) for i in split_ids.get(split, [])]
        missing = [i for i in ids if i not in by_id]
        if missing:
            raise SourceError(f"embedded manifest lists {split} ids not in the npz: {missing[:5]}")
        out[split] = [by_id[i] for i in ids]
    return out


class EmbeddedSource(InMemorySource):
    """One split of the embedded QM9-IR subset, prepared once per process and cached.

    Args:
        split: "train" | "validation" | "test" (the manifest's split ids).
        directory: embedded directory (default: the package's ``data/embedded``).
        **prepare_settings: ``prepare_example`` keywords (`DataSettings.prepare_kwargs`:
            scheme, frequency_scale — None means the manifest's —, fwhm_cm1, formula_len,
            formula_vocab).
    """

    def __init__(self, split: str, directory: str | None = None, **prepare_settings):
        _check_split(split)
        settings = tuple(sorted(prepare_settings.items()))
        examples = _embedded_splits(directory, settings)[split]
        super().__init__(examples, name=f"embedded/{split}")


def _to_str(value) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


class TfdsSource:
    """One split of a built tfds dataset (array_record), read without TensorFlow."""

    def __init__(self, name: str, split: str, data_dir: str):
        _check_split(split)
        import tensorflow_datasets as tfds  # noqa: PLC0415  (heavy import, only when used)

        if not os.path.isdir(os.path.join(data_dir, name)):
            raise SourceError(
                f"no built tfds dataset {name!r} in data_dir={data_dir!r}; build it with "
                f"`python -m data_pipeline.tfds_builders --name {name} --data_dir {data_dir} ...`"
            )
        sources = tfds.data_source(name, data_dir=data_dir)
        if split not in sources:
            raise SourceError(f"dataset {name!r} in {data_dir!r} has no split {split!r}")
        self._source = sources[split]
        self.name = f"{name}/{split}"

    def __len__(self) -> int:
        return len(self._source)

    def __getitem__(self, index: int) -> dict:
        ex = dict(self._source[int(index)])
        ex["smiles"] = _to_str(ex["smiles"])
        ex["formula"] = _to_str(ex["formula"])
        return ex

    @functools.cached_property
    def _num_atoms(self) -> np.ndarray:
        return np.array(
            [len(self._source[i]["atomic_numbers"]) for i in range(len(self))], np.int32
        )

    def num_atoms(self) -> np.ndarray:
        """Atom count of every example, [len] int32 (reads every record once, then cached)."""
        return self._num_atoms

    def __repr__(self) -> str:
        return f"TfdsSource(name={self.name!r}, len={len(self)})"


def _log_once(message: str) -> None:
    if message not in _LOGGED:
        _LOGGED.add(message)
        logging.info(message)


def get_source(data_config, split: str):
    """The source for ``split`` chosen by ``data_config``.

    ``data_config.source`` is ``"embedded"`` or a release name (``"qm9_ir"``, ``"qm9s"``,
    ``"qme14s"``). A release is read from ``data_config.data_dir`` (a tfds data_dir holding the
    built dataset); with no ``data_dir`` the embedded subset is used instead. The choice is logged
    in one line (once per process).
    """
    name = data_config.get("source", "embedded")
    data_dir = data_config.get("data_dir", None)
    if name not in ("embedded", *RELEASE_SOURCES):
        raise SourceError(f"data.source={name!r}; expected 'embedded' or one of {RELEASE_SOURCES}")
    if name != "embedded" and data_dir:
        source = TfdsSource(name, split, os.fspath(data_dir))
        _log_once(f"data: using tfds dataset {name!r} from data_dir={data_dir}")
        return source
    directory = data_config.get("embedded_dir", None)
    settings = DataSettings.from_config(data_config).prepare_kwargs()
    source = EmbeddedSource(split, directory, **settings)
    reason = "data.source='embedded'" if name == "embedded" else "data.data_dir is not set"
    where = f" from {directory}" if directory else ""
    _log_once(f"data: using the embedded QM9-IR subset{where} ({reason})")
    return source
