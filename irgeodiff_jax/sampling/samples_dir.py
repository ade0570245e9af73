"""The samples directory: what ``sample`` writes and ``evaluate``/``predict`` read.

Layout (format version 1)::

    DIR/manifest.json                  run description + list of completed chunk files
    DIR/chunks/chunk-00000.npz         one chunk of M spectra (arrays below)
    DIR/sdf/<id>.sdf                   all k samples of spectrum <id> (SDF, k records)
    DIR/attention/<id>.npz             optional attention maps of spectrum <id>

``manifest.json`` keys: ``format_version`` (1), ``workdir``, ``config``, ``split``,
``samples_per_spectrum`` (k), ``sampler``, ``steps``, ``spectrum_grid`` ([lo, hi, points] of the
stored input spectra, the model grid), ``extra`` (free-form dict) and ``chunks`` (list of file
names relative to ``DIR/chunks``, in write order).

Chunk arrays (M spectra, N = padded atom count of the chunk, S = spectrum points):

* ``ids`` [M] int64: source molecule / spectrum ids, unique within the directory;
* ``atomic_numbers`` [M, N] int32, 0 on padding; ``atom_mask`` [M, N] bool;
* ``positions`` [M, k, N, 3] float32 Å: the k sampled geometries (padding rows ignored);
* ``reference_positions`` [M, N, 3] float32 Å; ``reference_smiles`` [M] unicode;
* ``spectrum`` [M, S] float32: the input spectrum on ``spectrum_grid``.

Attention file arrays: ``atom_spectrum`` [layers, N, P+F] (atom-to-spectrum-token attention of
one sample, averaged over heads), ``edge_spectrum`` [layers, P+F] (edge-to-token attention,
max over edges), ``atomic_numbers`` [N] (real atoms only), ``num_patches`` (P; token p < P covers
grid points ``[p·patch_size, (p+1)·patch_size)``, the remaining F tokens are formula tokens),
``patch_size`` and ``sample_index``.

Atomicity and resume: every file is written with ``utils.atomic`` (a temporary name in the
same directory, then ``os.replace``). ``SamplesWriter.write_chunk`` writes the SDF and attention
files first, then the chunk, then the manifest, so a chunk listed in the manifest always has its
side files, and a killed run leaves at most an unlisted chunk that the next writer overwrites.
Readers trust only the manifest, so ``evaluate`` can read while ``sample`` is still writing.
"""

import dataclasses
import json
import os
from collections.abc import Iterator, Mapping, Sequence

import numpy as np
from rdkit import Chem
from rdkit.Geometry import Point3D

from irgeodiff_jax.chem import bonds, elements, spectra
from irgeodiff_jax.utils import atomic

FORMAT_VERSION = 1
MANIFEST = "manifest.json"
CHUNK_DIR, SDF_DIR, ATTENTION_DIR = "chunks", "sdf", "attention"
CHUNK_KEYS = (
    "ids",
    "atomic_numbers",
    "atom_mask",
    "positions",
    "reference_positions",
    "reference_smiles",
    "spectrum",
)
# Keys that must match when a writer re-opens an existing directory.
_RESUME_KEYS = ("samples_per_spectrum", "sampler", "steps", "spectrum_grid", "split", "config")


class SamplesFormatError(ValueError):
    """A samples directory, chunk or record that does not follow the format (with the reason)."""


@dataclasses.dataclass(frozen=True)
class RunInfo:
    """What produced the samples (stored in the manifest)."""

    workdir: str
    config: str
    split: str
    samples_per_spectrum: int
    sampler: str
    steps: int
    spectrum_grid: tuple[float, float, int] = spectra.MODEL_GRID
    extra: Mapping = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class AttentionMaps:
    """Attention of one sample over the spectrum tokens (see the module docstring for shapes)."""

    atom_spectrum: np.ndarray  # [layers, N, P+F]
    edge_spectrum: np.ndarray  # [layers, P+F]
    atomic_numbers: np.ndarray  # [N]
    num_patches: int
    patch_size: int
    sample_index: int = 0


@dataclasses.dataclass(frozen=True)
class SpectrumSamples:
    """All samples of one input spectrum, padding removed (n real atoms)."""

    id: int
    atomic_numbers: np.ndarray  # [n] int32
    positions: np.ndarray  # [k, n, 3] float32
    reference_positions: np.ndarray  # [n, 3] float32
    reference_smiles: str
    spectrum: np.ndarray  # [S] float32 on the manifest's spectrum_grid
    chunk: str


def sdf_path(directory: str, spectrum_id: int) -> str:
    return os.path.join(directory, SDF_DIR, f"{int(spectrum_id)}.sdf")


def attention_path(directory: str, spectrum_id: int) -> str:
    return os.path.join(directory, ATTENTION_DIR, f"{int(spectrum_id)}.npz")


def _sample_mol(atomic_numbers: np.ndarray, positions: np.ndarray) -> tuple[Chem.Mol, bool]:
    """Bonded Mol from the bond assigner, else an atoms-only Mol with the conformer."""
    try:
        return bonds.geometry_to_mol(atomic_numbers, positions), True
    except bonds.BondAssignmentError:
        pass
    rw = Chem.RWMol()
    for z in atomic_numbers:
        rw.AddAtom(Chem.Atom(int(z)))
    conf = Chem.Conformer(len(atomic_numbers))
    for i, p in enumerate(np.asarray(positions, dtype=np.float64)):
        conf.SetAtomPosition(i, Point3D(*(float(v) if np.isfinite(v) else 0.0 for v in p)))
    mol = rw.GetMol()
    mol.AddConformer(conf, assignId=True)
    return mol, False


def write_sdf(path: str, atomic_numbers, positions_k, title: str = "") -> int:
    """Atomically writes all k samples of one spectrum to ``path`` (bonds when assignable).

    Records are named ``<title> sample <j>`` and carry the SD properties ``sample_index`` and
    ``bonds_assigned`` (1: bonds from ``bonds.geometry_to_mol``; 0: atoms only).

    Args:
        path: output ``.sdf`` file.
        atomic_numbers: [n] ints (real atoms only).
        positions_k: [k, n, 3] Å.
        title: record name prefix.

    Returns:
        The number of samples written with assigned bonds.
    """
    z = np.asarray(atomic_numbers, dtype=np.int64)
    pos = np.asarray(positions_k, dtype=np.float64)
    if pos.ndim != 3 or pos.shape[1:] != (z.size, 3):
        raise SamplesFormatError(f"positions_k must be [k, {z.size}, 3], got {pos.shape}")
    parts, bonded = [], 0
    for j, x in enumerate(pos):
        mol, ok = _sample_mol(z, x)
        bonded += ok
        mol.SetProp("_Name", f"{title} sample {j}".strip())
        props = f">  <sample_index>\n{j}\n\n>  <bonds_assigned>\n{int(ok)}\n\n"
        parts.append(Chem.MolToMolBlock(mol, kekulize=ok) + props + "$$$$\n")
    atomic.write_text(path, "".join(parts))
    return bonded


def write_attention(directory: str, spectrum_id: int, maps: AttentionMaps) -> None:
    """Atomically writes ``DIR/attention/<id>.npz``."""
    atom = np.asarray(maps.atom_spectrum, dtype=np.float32)
    edge = np.asarray(maps.edge_spectrum, dtype=np.float32)
    z = np.asarray(maps.atomic_numbers, dtype=np.int32)
    if atom.ndim != 3 or edge.shape != (atom.shape[0], atom.shape[2]) or z.shape != atom.shape[1:2]:
        raise SamplesFormatError(
            f"attention shapes must be atom [L, N, T], edge [L, T], atomic_numbers [N]; got "
            f"{atom.shape}, {edge.shape}, {z.shape}"
        )
    if not 0 < maps.num_patches <= atom.shape[2]:
        raise SamplesFormatError(f"num_patches {maps.num_patches} not in 1..{atom.shape[2]}")
    arrays = dict(atom_spectrum=atom, edge_spectrum=edge, atomic_numbers=z)
    arrays.update(
        num_patches=np.int64(maps.num_patches),
        patch_size=np.int64(maps.patch_size),
        sample_index=np.int64(maps.sample_index),
    )
    atomic.savez(attention_path(directory, spectrum_id), arrays)


def read_attention(directory: str, spectrum_id: int) -> AttentionMaps | None:
    """The attention maps of spectrum ``spectrum_id``, or None if none were written."""
    path = attention_path(directory, spectrum_id)
    if not os.path.exists(path):
        return None
    with np.load(path) as f:
        arrays = {key: f[key] for key in ("atom_spectrum", "edge_spectrum", "atomic_numbers")}
        ints = {key: int(f[key]) for key in ("num_patches", "patch_size", "sample_index")}
    return AttentionMaps(**arrays, **ints)


def read_manifest(directory: str) -> dict:
    """The manifest of a samples directory; SamplesFormatError if missing or unreadable."""
    path = os.path.join(directory, MANIFEST)
    try:
        with open(path) as f:
            manifest = json.load(f)
    except FileNotFoundError:
        raise SamplesFormatError(
            f"{directory} is not a samples directory (no {MANIFEST})"
        ) from None
    except (OSError, json.JSONDecodeError) as e:
        raise SamplesFormatError(f"cannot read {path}: {e}") from None
    if manifest.get("format_version") != FORMAT_VERSION:
        raise SamplesFormatError(
            f"{path}: format_version {manifest.get('format_version')!r}, expected {FORMAT_VERSION}"
        )
    return manifest


def _manifest_from(info: RunInfo) -> dict:
    out = dataclasses.asdict(info)
    lo, hi, points = info.spectrum_grid
    out.update(spectrum_grid=[float(lo), float(hi), int(points)], extra=dict(info.extra))
    out.update(format_version=FORMAT_VERSION, chunks=[])
    return out


def load_chunk(directory: str, name: str) -> dict[str, np.ndarray]:
    """The arrays of one chunk file (``name`` relative to ``DIR/chunks``)."""
    path = os.path.join(directory, CHUNK_DIR, name)
    try:
        with np.load(path, allow_pickle=False) as f:
            arrays = {key: f[key] for key in CHUNK_KEYS}
    except (OSError, KeyError, ValueError) as e:
        raise SamplesFormatError(f"cannot read chunk {path}: {e}") from None
    return arrays


def _chunk_ids(directory: str, name: str) -> np.ndarray:
    with np.load(os.path.join(directory, CHUNK_DIR, name), allow_pickle=False) as f:
        return f["ids"]


def completed_ids(directory: str) -> set[int]:
    """Ids of every spectrum in a chunk listed by the manifest (empty if no manifest yet)."""
    if not os.path.exists(os.path.join(directory, MANIFEST)):
        return set()
    manifest = read_manifest(directory)
    return {int(i) for name in manifest["chunks"] for i in _chunk_ids(directory, name)}


def read_samples(directory: str, skip_ids=()) -> Iterator[SpectrumSamples]:
    """Per-spectrum records of every completed chunk, in write order (padding removed).

    Args:
        directory: a samples directory.
        skip_ids: ids not to yield (e.g. already evaluated).
    """
    manifest = read_manifest(directory)
    skip = {int(i) for i in skip_ids}
    for name in manifest["chunks"]:
        c = load_chunk(directory, name)
        for m, sid in enumerate(c["ids"]):
            if int(sid) in skip:
                continue
            mask = c["atom_mask"][m].astype(bool)
            yield SpectrumSamples(
                id=int(sid),
                atomic_numbers=c["atomic_numbers"][m][mask].astype(np.int32),
                positions=c["positions"][m][:, mask],
                reference_positions=c["reference_positions"][m][mask],
                reference_smiles=str(c["reference_smiles"][m]),
                spectrum=c["spectrum"][m],
                chunk=name,
            )


def _check_chunk(arrays: dict, k: int, points: int) -> None:
    ids = arrays["ids"]
    if ids.ndim != 1 or ids.size == 0:
        raise SamplesFormatError(f"ids must be a non-empty [M] array, got shape {ids.shape}")
    m, n = ids.size, arrays["atomic_numbers"].shape[-1]
    expected = {
        "atomic_numbers": (m, n),
        "atom_mask": (m, n),
        "positions": (m, k, n, 3),
        "reference_positions": (m, n, 3),
        "reference_smiles": (m,),
        "spectrum": (m, points),
    }
    for key, shape in expected.items():
        if arrays[key].shape != shape:
            raise SamplesFormatError(f"{key} has shape {arrays[key].shape}, expected {shape}")
    if len(set(ids.tolist())) != m:
        raise SamplesFormatError("ids within a chunk must be unique")
    real = arrays["atomic_numbers"][arrays["atom_mask"]]
    try:
        elements.check_supported(real)
    except elements.UnknownElementError as e:
        raise SamplesFormatError(str(e)) from None
    if np.any(arrays["atom_mask"].sum(axis=1) == 0):
        raise SamplesFormatError("every spectrum needs at least one real atom")


class SamplesWriter:
    """Incremental, atomic, resumable writer of a samples directory.

    ``SamplesWriter(DIR, info)`` creates the directory, or re-opens it to resume: the manifest's
    run description must then agree with ``info`` on k, sampler, steps, grid, split and config.
    ``completed_ids`` tells the sampler what to skip.
    """

    def __init__(self, directory: str, info: RunInfo):
        self.directory = directory
        self.info = info
        fresh = _manifest_from(info)
        if os.path.exists(os.path.join(directory, MANIFEST)):
            self.manifest = read_manifest(directory)
            for key in _RESUME_KEYS:
                if self.manifest.get(key) != fresh[key]:
                    raise SamplesFormatError(
                        f"cannot resume {directory}: {key} is {self.manifest.get(key)!r} there "
                        f"but {fresh[key]!r} now"
                    )
        else:
            os.makedirs(os.path.join(directory, CHUNK_DIR), exist_ok=True)
            self.manifest = fresh
            atomic.write_json(os.path.join(directory, MANIFEST), self.manifest)
        self.completed_ids = completed_ids(directory)

    def write_chunk(
        self,
        *,
        ids,
        atomic_numbers,
        atom_mask,
        positions,
        reference_positions,
        reference_smiles: Sequence[str],
        spectrum,
        attention: Mapping[int, AttentionMaps] | None = None,
    ) -> str:
        """Writes one chunk of M spectra (shapes in the module docstring); returns its file name.

        Side files (SDF per spectrum, optional attention per id in ``attention``) are written
        first, then the chunk, then the manifest. Raises SamplesFormatError on wrong shapes,
        unknown elements, or ids that are already complete.
        """
        arrays = dict(
            ids=np.asarray(ids, dtype=np.int64),
            atomic_numbers=np.asarray(atomic_numbers, dtype=np.int32),
            atom_mask=np.asarray(atom_mask, dtype=bool),
            positions=np.asarray(positions, dtype=np.float32),
            reference_positions=np.asarray(reference_positions, dtype=np.float32),
            reference_smiles=np.asarray([str(s) for s in reference_smiles], dtype=np.str_),
            spectrum=np.asarray(spectrum, dtype=np.float32),
        )
        _check_chunk(arrays, self.info.samples_per_spectrum, int(self.info.spectrum_grid[2]))
        dup = sorted(self.completed_ids & set(arrays["ids"].tolist()))
        if dup:
            raise SamplesFormatError(f"ids already written to {self.directory}: {dup[:5]}")
        for m, sid in enumerate(arrays["ids"]):
            mask = arrays["atom_mask"][m]
            write_sdf(
                sdf_path(self.directory, sid),
                arrays["atomic_numbers"][m][mask],
                arrays["positions"][m][:, mask],
                title=f"spectrum {int(sid)}",
            )
        for sid, maps in (attention or {}).items():
            write_attention(self.directory, sid, maps)
        name = f"chunk-{len(self.manifest['chunks']):05d}.npz"
        atomic.savez(os.path.join(self.directory, CHUNK_DIR, name), arrays)
        self.manifest["chunks"] = self.manifest["chunks"] + [name]
        atomic.write_json(os.path.join(self.directory, MANIFEST), self.manifest)
        self.completed_ids |= set(arrays["ids"].tolist())
        return name
