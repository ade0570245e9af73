"""The data settings of a config, read from ``config.data`` in one place.

``DataSettings.from_config(config.data)`` is the only reader of the keys below; the loader, the
embedded source, the sampler, the sample check and ``predict`` take their padded sizes, atom
vocabulary, token lengths and preparation settings from it (a ``ConfigDict`` or a plain dict):

=====================  ==========  ==========================================================
key                    default     meaning
=====================  ==========  ==========================================================
``max_atoms``          29          largest padded atom count N (QM9 with hydrogens)
``buckets``            ()          extra, smaller padded sizes (one compilation each)
``atom_types``         —           atomic numbers of the atom-type vocabulary, in index order
``atom_vocabulary``    ``"qm9s"``  the same by name (`elements.ATOM_VOCABULARIES`) or numbers;
                                   read when ``atom_types`` is absent (both: they must agree)
``formula_len``        16          padded length of the formula token sequence
``spectrum_levels``    100         spectrum token levels
``num_fg``             None        functional-group labels per molecule (None: not checked)
``fg_scheme``          ``"qm9s"``  preparation scheme: elements accepted, FG SMARTS table
``formula_vocab``      None        formula tokenizer preset (None: ``fg_scheme``)
``fwhm_cm1``           15.0        Lorentzian FWHM used to broaden stick spectra
``frequency_scale``    None        stick frequency factor (None: the source's, e.g. the manifest)
``blank_spectra``      False       ablation: every spectrum is replaced by zeros after it is
                                   checked (formulas, atom types and geometries unchanged)
=====================  ==========  ==========================================================

Numpy only, no RDKit (the vocabularies come from ``chem.elements``, which imports RDKit lazily).
"""

from __future__ import annotations

import dataclasses

from irgeodiff_jax.chem import elements
from irgeodiff_jax.data import features


def vocabulary(name_or_atomic_numbers) -> tuple[int, ...]:
    """Atomic numbers of a named vocabulary (``"qm9s"``/``"qme14s"``) or an explicit sequence."""
    if isinstance(name_or_atomic_numbers, str):
        if name_or_atomic_numbers not in elements.ATOM_VOCABULARIES:
            known = sorted(elements.ATOM_VOCABULARIES)
            raise ValueError(f"unknown atom vocabulary {name_or_atomic_numbers!r}; known: {known}")
        return elements.ATOM_VOCABULARIES[name_or_atomic_numbers]
    return tuple(int(z) for z in name_or_atomic_numbers)


# Padded sizes that split QM9's atom counts into groups of similar size (embedded training split:
# 1,890 molecules, 9-29 atoms, mean 18.1, 92 % between 14 and 23); ``max_atoms`` (29) is added.
QM9_BUCKETS = (14, 16, 18, 20, 23)


def bucket_sizes(buckets, max_atoms: int) -> tuple[int, ...]:
    """Sorted padded sizes: ``buckets`` (may be empty) plus ``max_atoms`` as the largest."""
    sizes = sorted({int(b) for b in (buckets or ())} | {int(max_atoms)})
    if sizes[0] < 1 or sizes[-1] > max_atoms:
        raise ValueError(f"buckets {tuple(buckets)} must lie in [1, max_atoms={max_atoms}]")
    return tuple(sizes)


def _atom_types(data_config) -> tuple[int, ...]:
    named = data_config.get("atom_vocabulary", None)
    explicit = data_config.get("atom_types", None)
    if explicit is None:
        return vocabulary("qm9s" if named is None else named)
    types = vocabulary(explicit)
    if named is not None and vocabulary(named) != types:
        raise ValueError(
            f"config.data.atom_types {types} and atom_vocabulary {named!r} disagree; set one"
        )
    return types


@dataclasses.dataclass(frozen=True)
class DataSettings:
    """Shapes, vocabulary and preparation settings of the data (see the module docstring).

    Attributes:
      max_atoms: largest padded atom count N.
      buckets: extra, smaller padded sizes (``sizes`` adds ``max_atoms``).
      atom_types: atomic numbers in type-index order.
      formula_len: padded length of the formula tokens.
      spectrum_levels: number of spectrum token levels.
      num_fg: functional-group labels per molecule, or None (not checked).
      fg_scheme: preparation scheme (``"qm9s"`` or ``"qme14s"``).
      formula_vocab: formula tokenizer preset, or None for ``fg_scheme``'s.
      fwhm_cm1: Lorentzian FWHM of the stick-spectrum broadening.
      frequency_scale: stick frequency factor, or None for the source's own.
      blank_spectra: the blank-spectrum ablation (``features.featurize(blank_spectrum=True)``).
    """

    max_atoms: int = 29
    buckets: tuple[int, ...] = ()
    atom_types: tuple[int, ...] = elements.QM9S_ELEMENTS
    formula_len: int = 16
    spectrum_levels: int = features.TOKEN_LEVELS
    num_fg: int | None = None
    fg_scheme: str = "qm9s"
    formula_vocab: str | None = None
    fwhm_cm1: float = 15.0
    frequency_scale: float | None = None
    blank_spectra: bool = False

    def __post_init__(self):
        bucket_sizes(self.buckets, self.max_atoms)  # ValueError for a bucket outside the range

    @classmethod
    def from_config(cls, data_config) -> DataSettings:
        """Reads ``config.data`` (``ConfigDict`` or dict); absent keys take the defaults above.

        Raises:
          ValueError: unknown vocabulary, disagreeing ``atom_types``/``atom_vocabulary``, or
            buckets outside ``[1, max_atoms]``.
        """
        get, d = data_config.get, cls()
        num_fg, scale = get("num_fg", None), get("frequency_scale", None)
        return cls(
            max_atoms=int(get("max_atoms", d.max_atoms)),
            buckets=tuple(int(b) for b in get("buckets", ()) or ()),
            atom_types=_atom_types(data_config),
            formula_len=int(get("formula_len", d.formula_len)),
            spectrum_levels=int(get("spectrum_levels", d.spectrum_levels)),
            num_fg=None if num_fg is None else int(num_fg),
            fg_scheme=str(get("fg_scheme", d.fg_scheme)),
            formula_vocab=get("formula_vocab", None) or None,
            fwhm_cm1=float(get("fwhm_cm1", d.fwhm_cm1)),
            frequency_scale=None if scale is None else float(scale),
            blank_spectra=bool(get("blank_spectra", False)),
        )

    @property
    def sizes(self) -> tuple[int, ...]:
        """Sorted padded sizes: ``buckets`` and ``max_atoms`` (the largest)."""
        return bucket_sizes(self.buckets, self.max_atoms)

    @property
    def formula_preset(self) -> str:
        """The formula tokenizer preset: ``formula_vocab``, else ``fg_scheme``."""
        return self.formula_vocab or self.fg_scheme

    def featurize_kwargs(self) -> dict:
        """Keywords of ``features.featurize`` but ``max_atoms`` (a batch's padded size)."""
        return {
            "vocab": self.atom_types,
            "levels": self.spectrum_levels,
            "formula_len": self.formula_len,
            "num_fg": self.num_fg,
            "blank_spectrum": self.blank_spectra,
        }

    def prepare_kwargs(self) -> dict:
        """Keywords of ``prepare.prepare_example`` (``frequency_scale`` may be None)."""
        return {
            "scheme": self.fg_scheme,
            "frequency_scale": self.frequency_scale,
            "fwhm_cm1": self.fwhm_cm1,
            "formula_len": self.formula_len,
            "formula_vocab": self.formula_vocab,
        }
