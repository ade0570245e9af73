"""Fixed-shape, deterministic, resumable, host-sliced batches of molecules (grain over a source).

Batching scheme (the same on every host, so all hosts agree on shapes at every step):

* Epoch ``e`` visits the split in the order ``default_rng([seed, e]).permutation(len)``
  (identity order when ``shuffle=False``).
* Each molecule goes to the smallest size bucket N >= its atom count (one bucket, ``max_atoms``,
  when ``data.buckets`` is empty). Walking the epoch order, a *global* batch of
  ``batch_size * process_count`` molecules is emitted whenever a bucket fills, so a batch holds
  molecules of one bucket only and is padded to that bucket's N.
* Host ``p`` of ``P`` takes rows ``p::P`` of every global batch: hosts read disjoint slices, and a
  local batch has ``batch_size`` rows.
* At the end of an epoch the part-filled buckets are dropped (``drop_remainder=True``) or emitted
  as final batches padded with empty rows (``id == -1``, ``num_atoms == 0``, no atoms). A bucket
  holding fewer molecules than one global batch would never fill, so with ``drop_remainder``
  its molecules would never be seen: that is an error, not a silent loss.

The number of batches per epoch is the same in every epoch, so batch ``k`` of the stream is batch
``k % batches_per_epoch`` of epoch ``k // batches_per_epoch``; the iterator state is just ``k``
(plus settings that must not change across a restore) and is JSON-serialisable.

``batch_size`` is the per-host (local) batch size; the global batch is
``batch_size * process_count``.
"""

import grain
import numpy as np

from irgeodiff_jax.chem import elements
from irgeodiff_jax.data import features, sources, types
from irgeodiff_jax.data.settings import DataSettings, bucket_sizes

STATE_VERSION = 1


def assign_buckets(num_atoms, sizes, id_of) -> np.ndarray:
    """Index of the smallest bucket that holds each molecule, [len] int32.

    Args:
        num_atoms: [len] atom counts.
        sizes: sorted bucket sizes.
        id_of: callable index -> molecule id (for the error message).
    """
    n = np.asarray(num_atoms)
    bucket = np.searchsorted(np.asarray(sizes), n, side="left")
    if np.any(bucket >= len(sizes)):
        i = int(np.argmax(bucket >= len(sizes)))
        raise features.ExampleError(
            f"molecule {id_of(i)}: has {int(n[i])} atoms, more than max_atoms={sizes[-1]}"
        )
    return bucket.astype(np.int32)


def epoch_order(length: int, seed: int, epoch: int, shuffle: bool) -> np.ndarray:
    """Visiting order of the split in ``epoch``, [length] int64."""
    if not shuffle:
        return np.arange(length)
    return np.random.default_rng([int(seed), int(epoch)]).permutation(length)


def global_batches(order, bucket_of, global_batch: int, drop_remainder: bool) -> list:
    """Group an epoch's order into (bucket, [<= global_batch] indices) batches, in emit order."""
    buffers: dict[int, list] = {}
    out = []
    for i in order:
        b = int(bucket_of[i])
        buf = buffers.setdefault(b, [])
        buf.append(int(i))
        if len(buf) == global_batch:
            out.append((b, np.array(buf)))
            buffers[b] = []
    if not drop_remainder:
        out.extend((b, np.array(buf)) for b, buf in sorted(buffers.items()) if buf)
    return out


def batches_per_epoch(bucket_of, num_buckets: int, global_batch: int, drop_remainder: bool) -> int:
    """Number of global batches every epoch yields (independent of the order)."""
    counts = np.bincount(np.asarray(bucket_of, np.int64), minlength=num_buckets)
    full = int(np.sum(counts // global_batch))
    return full if drop_remainder else full + int(np.sum(counts % global_batch > 0))


class _BatchMaker:
    """Maps a stream position k to the host's local batch (pure given the constructor args)."""

    def __init__(
        self,
        source,
        *,
        sizes,
        bucket_of,
        featurize_kw,
        seed,
        shuffle,
        global_batch,
        drop_remainder,
        process_index,
        process_count,
    ):
        self.source, self.sizes, self.bucket_of = source, sizes, bucket_of
        self.featurize_kw, self.seed, self.shuffle = featurize_kw, seed, shuffle
        self.global_batch, self.drop_remainder = global_batch, drop_remainder
        self.process_index, self.process_count = process_index, process_count
        self.per_epoch = batches_per_epoch(bucket_of, len(sizes), global_batch, drop_remainder)
        self._plans: dict[int, list] = {}

    def plan(self, epoch: int) -> list:
        """The global batches of ``epoch`` (the last two epochs' plans are cached)."""
        plans = self._plans  # grain threads may call this concurrently: never mutate in place
        if epoch not in plans:
            order = epoch_order(len(self.source), self.seed, epoch, self.shuffle)
            plan = global_batches(order, self.bucket_of, self.global_batch, self.drop_remainder)
            self._plans = {e: p for e, p in plans.items() if e == epoch - 1} | {epoch: plan}
            return plan
        return plans[epoch]

    def __call__(self, k: int, _unused=None) -> types.Batch:
        bucket, indices = self.plan(k // self.per_epoch)[k % self.per_epoch]
        local = indices[self.process_index :: self.process_count]
        n = self.sizes[bucket]
        rows = [
            features.featurize(self.source[int(i)], max_atoms=n, **self.featurize_kw) for i in local
        ]
        local_batch = self.global_batch // self.process_count
        if len(rows) < local_batch:
            rows += [self._empty_row(n)] * (local_batch - len(rows))
        return features.collate(rows)

    def _empty_row(self, n: int) -> dict:
        first = self.source[0]
        return features.empty_row(
            n,
            spectrum_points=len(first["spectrum"]),
            formula_len=len(first["formula_tokens"]),
            num_fg=len(first["fg_labels"]),
        )


class IteratorStateError(ValueError):
    """A resumed iterator's saved state came from other data settings (seed, batch, buckets)."""


class BatchIterator:
    """Iterator over `types.Batch` with a JSON-serialisable, exactly restorable state."""

    def __init__(self, maker: _BatchMaker, num_epochs, read_options, settings: dict):
        self._maker = maker
        self._settings = settings
        self.batches_per_epoch = maker.per_epoch
        ds = grain.MapDataset.range(maker.per_epoch).repeat(num_epochs).map_with_index(maker)
        self._iter = iter(ds.to_iter_dataset(read_options))

    def __iter__(self):
        return self

    def __next__(self) -> types.Batch:
        return next(self._iter)

    def get_state(self) -> dict:
        """``{"version", "next_batch", <settings>}``: plain ints/strings (JSON-serialisable)."""
        return {
            "version": STATE_VERSION,
            "next_batch": int(self._iter.get_state()["next_index"]),
            **self._settings,
        }

    def set_state(self, state: dict) -> None:
        """Resume so that the next batch is the one that followed when ``state`` was taken."""
        changed = {k: (state.get(k), v) for k, v in self._settings.items() if state.get(k) != v}
        if state.get("version") != STATE_VERSION or changed:
            detail = ", ".join(f"{k} {a!r} then, {b!r} now" for k, (a, b) in changed.items())
            raise IteratorStateError(
                f"the saved data iterator state does not match this pipeline "
                f"({detail or f'state {state}'}): resume with the settings it was saved with, "
                f"or start in a new workdir"
            )
        self._iter.set_state({"next_index": int(state["next_batch"])})


def batch_iterator(
    source,
    *,
    batch_size: int,
    seed: int,
    max_atoms: int,
    buckets=(),
    vocab=elements.QM9S_ELEMENTS,
    levels: int = features.TOKEN_LEVELS,
    formula_len: int | None = None,
    num_fg: int | None = None,
    blank_spectrum: bool = False,
    process_index: int = 0,
    process_count: int = 1,
    shuffle: bool = True,
    drop_remainder: bool = True,
    num_epochs: int | None = None,
    num_threads: int = 0,
    prefetch: int = 4,
) -> BatchIterator:
    """`BatchIterator` over any random-access source of schema-v1 examples.

    Args:
        source: ``len()``, ``[i] -> dict`` and ``num_atoms()`` (see `sources`).
        batch_size: local (per-host) batch size B.
        seed: shuffle seed; the same seed gives the same batches.
        max_atoms: largest padded size N.
        buckets: extra padded sizes (e.g. ``(12, 18)``); empty for a single size.
        vocab: atomic numbers in type-index order.
        blank_spectrum: zero every spectrum (the blank-spectrum ablation; `features.featurize`).
        num_epochs: None for an endless stream.
        num_threads: grain prefetch threads (0 reads in the calling thread).
    """
    if not 0 <= process_index < process_count:
        raise ValueError(f"process_index={process_index} not in [0, {process_count})")
    if batch_size < 1 or len(source) == 0:
        raise ValueError(f"need batch_size >= 1 and a non-empty source ({source!r})")
    sizes = bucket_sizes(buckets, max_atoms)
    if len(sizes) > 1:
        bucket_of = assign_buckets(source.num_atoms(), sizes, lambda i: int(source[i]["id"]))
    else:
        bucket_of = np.zeros(len(source), np.int32)  # atom counts are checked per example
    featurize_kw = {
        "vocab": tuple(vocab),
        "levels": levels,
        "formula_len": formula_len,
        "num_fg": num_fg,
        "blank_spectrum": blank_spectrum,
    }
    maker = _BatchMaker(
        source,
        sizes=sizes,
        bucket_of=bucket_of,
        featurize_kw=featurize_kw,
        seed=seed,
        shuffle=shuffle,
        global_batch=batch_size * process_count,
        drop_remainder=drop_remainder,
        process_index=process_index,
        process_count=process_count,
    )
    counts = np.bincount(bucket_of, minlength=len(sizes))
    short = [(n, int(c)) for n, c in zip(sizes, counts, strict=True) if 0 < c < maker.global_batch]
    if drop_remainder and len(sizes) > 1 and short:
        raise ValueError(
            f"{source!r}: bucket N={short[0][0]} holds {short[0][1]} molecules, fewer than one "
            f"global batch of {maker.global_batch}, so they would never be trained on; use fewer "
            f"buckets (data.buckets) or a smaller batch"
        )
    if maker.per_epoch == 0:
        raise ValueError(
            f"{source!r} has {len(source)} examples: no full global batch of "
            f"{batch_size * process_count} (use drop_remainder=False or a smaller batch)"
        )
    settings = {
        "source": repr(source),
        "seed": int(seed),
        "batch_size": int(batch_size),
        "process_index": int(process_index),
        "process_count": int(process_count),
        "buckets": list(sizes),
        "shuffle": bool(shuffle),
    }
    read_options = grain.ReadOptions(num_threads=num_threads, prefetch_buffer_size=prefetch)
    return BatchIterator(maker, num_epochs, read_options, settings)


def make_batch_iterator(
    data_config,
    split: str,
    *,
    batch_size: int,
    seed: int,
    process_index: int = 0,
    process_count: int = 1,
    shuffle: bool = True,
    drop_remainder: bool = True,
    num_epochs: int | None = None,
) -> BatchIterator:
    """Batches of ``split`` from the source ``data_config`` selects (`sources.get_source`).

    Shapes and vocabulary come from `DataSettings.from_config` (``max_atoms``, ``buckets``,
    ``atom_types``/``atom_vocabulary``, ``spectrum_levels``, ``formula_len``, ``num_fg``,
    ``blank_spectra``); also
    reads ``num_threads`` (0) and the source keys. Pass ``process_index=jax.process_index(),
    process_count=jax.process_count()`` on multi-host.
    """
    settings = DataSettings.from_config(data_config)
    source = sources.get_source(data_config, split)
    return batch_iterator(
        source,
        batch_size=batch_size,
        seed=seed,
        max_atoms=settings.max_atoms,
        buckets=settings.buckets,
        **settings.featurize_kwargs(),
        process_index=process_index,
        process_count=process_count,
        shuffle=shuffle,
        drop_remainder=drop_remainder,
        num_epochs=num_epochs,
        num_threads=int(data_config.get("num_threads", 0)),
    )
