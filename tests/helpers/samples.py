"""Builders for the samples-directory and evaluation tests: real QM9 geometries (ethanol and
friends), stand-in spectra, and the arrays of samples-directory chunks."""

import functools

import numpy as np

from data_pipeline import qm9pack_source
from irgeodiff_jax.chem import spectra
from irgeodiff_jax.sampling import samples_dir as sdir

ETHANOL, DIMETHYL_ETHER, WATER, METHANE = 14, 15, 3, 1


@functools.cache
def qm9(index: int):
    return qm9pack_source.molecule(index)


def ethanol_samples() -> dict[str, np.ndarray]:
    """Sample geometries for the ethanol spectrum (atom order C C O H×6), by what they are."""
    eth, dme = qm9(ETHANOL), qm9(DIMETHYL_ETHER)
    radical = eth.positions_angstrom.copy()
    radical[8] += 6.0  # one H pulled off: ethoxy-type radical + a lone H atom
    broken = np.random.default_rng(0).normal(size=(9, 3)) * 0.2  # collapsed atoms
    return {
        "exact": eth.positions_angstrom,
        "isomer": dme.positions_angstrom[[0, 2, 1, 3, 4, 5, 6, 7, 8]],  # C O C → C C O order
        "radical": radical,
        "broken": broken,
    }


def model_spectrum(index: int) -> np.ndarray:
    """A positive stand-in input spectrum [3200] from the molecule's QM9 frequencies."""
    freqs = qm9(index).harmonic_frequencies_cm1
    y = spectra.broaden(freqs, np.ones_like(freqs), spectra.grid(*spectra.MODEL_GRID))
    return (y / y.max()).astype(np.float32)


def run_info(k: int, **kw) -> sdir.RunInfo:
    defaults = dict(
        workdir="/tmp/w",
        config="configs/test.py",
        split="test",
        samples_per_spectrum=k,
        sampler="ancestral",
        steps=1000,
    )
    defaults.update(kw)
    return sdir.RunInfo(**defaults)


def chunk_arrays(entries, pad_to: int) -> dict:
    """write_chunk kwargs from ``entries`` = [(id, qm9 index, [k, n, 3] samples, spectrum)]."""
    m, k = len(entries), len(entries[0][2])
    out = dict(
        ids=np.array([e[0] for e in entries]),
        atomic_numbers=np.zeros((m, pad_to), np.int32),
        atom_mask=np.zeros((m, pad_to), bool),
        positions=np.zeros((m, k, pad_to, 3), np.float32),
        reference_positions=np.zeros((m, pad_to, 3), np.float32),
        reference_smiles=[qm9(e[1]).smiles for e in entries],
        spectrum=np.stack([e[3] for e in entries]),
    )
    for i, (_, index, samples, _) in enumerate(entries):
        mol = qm9(index)
        n = len(mol.atomic_numbers)
        out["atomic_numbers"][i, :n] = mol.atomic_numbers
        out["atom_mask"][i, :n] = True
        out["positions"][i, :, :n] = samples
        out["reference_positions"][i, :n] = mol.positions_angstrom
    return out


def ethanol_entry(spectrum_id: int, order=("isomer", "exact", "radical", "broken")):
    cases = ethanol_samples()
    samples = np.stack([cases[name] for name in order])
    return (spectrum_id, ETHANOL, samples, model_spectrum(ETHANOL))


def dimethyl_ether_entry(spectrum_id: int, k: int = 4):
    """Dimethyl ether reference whose k samples are all ethanol (in its C O C atom order)."""
    eth = qm9(ETHANOL).positions_angstrom[[0, 2, 1, 3, 4, 5, 6, 7, 8]]
    samples = np.stack([eth] * k)
    return (spectrum_id, DIMETHYL_ETHER, samples, model_spectrum(DIMETHYL_ETHER))


def two_chunk_dir(path, k=4) -> str:
    """A samples directory: chunk 0 = ethanol (id 101, padded to 12), chunk 1 = dimethyl ether
    (id 102, padded to 9), k samples each (``ethanol_entry``, ``dimethyl_ether_entry``)."""
    writer = sdir.SamplesWriter(str(path), run_info(k))
    writer.write_chunk(**chunk_arrays([ethanol_entry(101)], pad_to=12))
    writer.write_chunk(**chunk_arrays([dimethyl_ether_entry(102, k)], pad_to=9))
    return str(path)


def attention_maps(n, layers=2, patches=50, formula=6) -> sdir.AttentionMaps:
    """Random attention of ethanol's n atoms over ``patches`` spectrum + ``formula`` tokens."""
    rng = np.random.default_rng(0)
    atom = rng.random((layers, n, patches + formula))
    return sdir.AttentionMaps(
        atom / atom.sum(-1, keepdims=True),
        atom.max(1),
        qm9(ETHANOL).atomic_numbers,
        patches,
        64,
        sample_index=1,
    )
