"""Tiny datasets from real QM9 geometries (qm9pack) with synthetic stick spectra.

``write_build_dir``: a one-shard ``build_qm9_ir`` output directory; ``build_embedded``: an
embedded-format dataset packed from one; ``tiny_config``: ``configs/test.py`` reading it.
``write_xyz`` / ``write_wide_csv`` / ``random_spectra``: files in the QM9S / QMe14S release
layouts.
"""

import json
import os
import pathlib

import numpy as np

from configs import test as test_config
from data_pipeline import qm9pack_source, shard_io


def qm9_molecules(num: int, seed: int):
    """``num`` QM9 molecules of qm9pack, chosen by ``seed``."""
    return qm9pack_source.molecules(qm9pack_source.sample_indices(num, seed=seed))


def write_build_dir(path, mols, seed=0) -> None:
    """A one-shard ``build_qm9_ir`` output with QM9 geometries and synthetic stick spectra."""
    path = pathlib.Path(path)
    rng = np.random.default_rng(seed)
    rows = []
    for m in mols:
        k = 3 * len(m.atomic_numbers) - 6
        rows.append(
            {
                "id": m.index,
                "energy": -10.0,
                "num_imaginary": 0,
                "max_gradient": 1e-4,
                "atomic_numbers": m.atomic_numbers,
                "positions": m.positions_angstrom,
                "frequencies": np.sort(rng.uniform(400, 3900, k)),
                "intensities": rng.uniform(0, 100, k),
            }
        )
    path.mkdir(parents=True, exist_ok=True)
    shard_io.write_shard(str(path), 0, rows, [m.smiles for m in mols])
    info = {
        "num_selected": len(mols),
        "shard_size": len(mols),
        "builder_version": "synthetic-test",
        "selection": {"seed": seed},
    }
    (path / "build_info.json").write_text(json.dumps(info))


def build_embedded(
    root: str, num: int = 40, num_test: int = 2, seed: int = 3, name: str = "emb"
) -> str:
    """Packs ``num`` QM9 molecules with synthetic sticks into ``root/<name>``; returns that dir.

    Does nothing if that directory already holds a packed dataset.
    """
    from data_pipeline import embedded  # noqa: PLC0415

    out = os.path.join(root, name)
    if not os.path.exists(os.path.join(out, embedded.MANIFEST_NAME)):
        write_build_dir(os.path.join(root, "build"), qm9_molecules(num, seed))
        embedded.pack(
            os.path.join(root, "build"), out, num_test=num_test, split_seed=0, tolerance=0.4
        )
    return out


def tiny_config(stage: str, embedded_dir: str, **training):
    """``configs/test.py`` reading ``embedded_dir``, no progress bar, synchronous checkpoints."""
    config = test_config.get_config(f"stage={stage}")
    config.data.embedded_dir = embedded_dir
    config.training.progress_bar = False
    config.training.async_checkpointing = False
    for key, value in training.items():
        config.training[key] = value
    return config


def random_spectra(n_rows: int, points: int, seed: int = 0) -> np.ndarray:
    """[n_rows, points] float32 in [0, 178): stand-ins for release spectra."""
    rng = np.random.default_rng(seed)
    return (rng.random((n_rows, points)) * 178.0).astype(np.float32)


def write_wide_csv(path, ids, spectra, header=None) -> None:
    """The release layout: unnamed integer id column, then one column per grid point."""
    import pandas as pd  # noqa: PLC0415  (only the release-reader tests need it)

    header = header if header is not None else [str(v) for v in range(500, 500 + spectra.shape[1])]
    frame = pd.DataFrame(spectra, index=pd.Index(ids), columns=header)
    frame.to_csv(path)  # first header cell empty (unnamed index)


def write_xyz(path, mols) -> None:
    """Multi-molecule XYZ with ``id=<index> smiles=<smiles>`` comment lines."""
    with open(path, "w") as f:
        for m in mols:
            f.write(f"{len(m.atomic_numbers)}\nid={m.index} smiles={m.smiles}\n")
            for z, (x, y, w) in zip(m.atomic_numbers, m.positions_angstrom, strict=True):
                sym = {1: "H", 6: "C", 7: "N", 8: "O", 9: "F"}[int(z)]
                f.write(f"{sym} {x:.6f} {y:.6f} {w:.6f}\n")
