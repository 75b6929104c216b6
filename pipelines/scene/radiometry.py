"""How a SAR scene's pixels encode backscatter, and their conversion to linear power (``sigma0``).

The detectors take linear power and normalise each tile by its median / MAD in dB
(:func:`detectors.sar.network.normalise`), so an absolute gain never matters; what matters is
reading the encoding right: amplitude read as intensity halves every contrast in dB, and dB read
as anything linear destroys the image. Four encodings are accepted:

* ``amplitude``: ``sigma0 = (v * gain) ** 2``. Capella's own products (uint16 counts, float32
  amplitude, the magnitude of CInt16 SLCs) with ``gain = collect.image.scale_factor``.
* ``intensity``: linear power, ``sigma0 = v * gain ** 2``.
* ``db``: ``sigma0 = 10 ** (v / 10)`` (``10 log10(sigma0)``, typically -40..+20; may be negative).
* ``display``: an 8-bit display-stretched picture (a quicklook, an SSDD chip) with an unknown
  stretch; read as amplitude, ``sigma0 = (v + 0.5) ** 2``, the convention of the SSDD chips the
  learned detector was validated on (benchmarks/eval_vessels.py, detectors/training/data_sar.py).
  A stretch that clips the bright tail (a 98th-percentile clip) loses the targets' contrast for
  good: no decoding can give it back.

``gain`` is the sidecar's ``scale_factor`` only while the TIFF still holds the product's own data
type (a uint16 TIFF with a ``UInt16`` sidecar, float32 with ``Float32``); a converted product
(float dB beside the original ``UInt16`` sidecar, say) is taken as already calibrated (gain 1).
A stored 0 is no-data in every encoding (Capella's DN 0, a quicklook's black fill, the 0 that
SNAP and most exports write where a dB image has no data), as are NaN / inf and the TIFF's nodata.

How ``auto`` decides (:func:`decide`), first match wins: the user's ``--radiometry``; words in the
metadata (the sidecar's ``orbitwatch_radiometry``, then the TIFF band unit, band description and
radiometry/unit tags, then the sidecar's ``collect.image.radiometry``): ``dB`` / ``decibel``,
``display`` / ``stretched`` / ``quicklook``, ``amplitude`` / ``magnitude`` / ``(DN*scale)^2``,
``intensity`` / ``power``; then the data type: complex -> amplitude (magnitude), uint8 -> display,
uint16 -> amplitude counts; float: a share of negative values above :data:`DB_NEGATIVE_SHARE` or a
negative median -> dB, else the sidecar's word (Capella ``Float32`` is amplitude), else a weaker
word such as ``sigma0`` / ``Sigma0_HH`` (SNAP's linear-power band name) -> intensity. Whatever was
decided is checked against the values (:func:`check_values`): an error names the file and the
problem rather than letting a wrong reading reach the detectors.
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pipelines.errors import RadiometryError

log = logging.getLogger(__name__)

#: The encodings a SAR scene's pixels can be in (see the module docstring).
ENCODINGS: tuple[str, ...] = ("intensity", "amplitude", "db", "display")
#: What ``--radiometry`` accepts.
CHOICES: tuple[str, ...] = ("auto", *ENCODINGS)

#: dB values a real SAR image can hold: below -100 dB or above +60 dB is a fill value or not dB.
DB_MIN, DB_MAX = -100.0, 60.0
#: Share of negative valid values above which float data are taken as dB (linear data have none).
DB_NEGATIVE_SHARE = 0.01
#: Largest value of an 8-bit display picture.
DISPLAY_MAX = 255.0

#: TIFF tags (dataset or band 1) whose value may say the encoding; compared case-insensitively.
ENCODING_TAGS = ("ORBITWATCH_RADIOMETRY", "RADIOMETRY", "RADIOMETRIC_ENCODING", "PIXEL_ENCODING", "UNITS",
                 "UNIT", "UNIT_TYPE", "BAND_UNIT", "DATA_UNITS", "PIXEL_UNITS", "VALUE_TYPE")

_STRONG_WORDS: tuple[tuple[str, frozenset[str]], ...] = (
    ("db", frozenset({"db", "decibel", "decibels", "log10"})),
    ("display", frozenset({"display", "stretch", "stretched", "quicklook", "browse"})),
    ("amplitude", frozenset({"amplitude", "amplitudes", "magnitude", "amp"})),
    ("intensity", frozenset({"intensity", "intensities", "power"})),
)
#: Words that name a backscatter coefficient without saying its encoding: as the whole band
#: description or unit they mean linear power (SNAP's ``Sigma0_HH``), so a weak hint.
_WEAK_WORDS = frozenset({"sigma0", "beta0", "gamma0", "sigma", "beta", "nought", "naught", "backscatter"})
_DN_SCALE_SQUARED = re.compile(r"\(\s*dn\s*\*\s*scale\w*\s*\)\s*(\^|\*\*)\s*2")
_TOKENS = re.compile(r"[a-z0-9]+")


@dataclass(frozen=True)
class Hint:
    """An encoding named by the metadata: ``strong`` words say it, weak ones only suggest it."""

    encoding: str
    strong: bool
    source: str  # e.g. "band unit 'dB'", "TIFF tag RADIOMETRY", "sidecar collect.image.radiometry"


@dataclass(frozen=True)
class Radiometry:
    """What a SAR scene's pixels are and how they become sigma0 (see :func:`to_sigma0`)."""

    encoding: str
    #: Amplitude gain: the sidecar's scale_factor for the product's own data type, else 1.
    gain: float
    #: Where the decision came from: "override", "metadata", "data type" or "values".
    source: str
    #: One line for the scene's notes: the encoding, the formula and why.
    note: str


def check_choice(value: object, path: str | Path | None = None) -> str:
    """``value`` as one of :data:`CHOICES` (any case); RadiometryError otherwise."""
    if isinstance(value, str):
        v = value.strip().lower()
        if v in CHOICES:
            return v
    raise RadiometryError(f"radiometry must be one of {', '.join(CHOICES)}, got {value!r}", path)


def hint_from_text(text: object, source: str) -> Hint | None:
    """The encoding a piece of metadata text names, or None. ``source`` says where it was read."""
    if not isinstance(text, str) or not text.strip():
        return None
    low = text.lower()
    if low.strip() in ENCODINGS:
        return Hint(low.strip(), True, source)
    if _DN_SCALE_SQUARED.search(low):  # "sigma_nought: (DN*scale)^2": the values are amplitude counts
        return Hint("amplitude", True, source)
    tokens = set(_TOKENS.findall(low))
    for enc, words in _STRONG_WORDS:
        if tokens & words:
            return Hint(enc, True, source)
    if tokens & _WEAK_WORDS:
        return Hint("intensity", False, source)
    return None


def first_hints(hints: Iterable[Hint | None]) -> tuple[Hint | None, Hint | None]:
    """(first strong hint, first weak hint) of ``hints`` in order of precedence; either may be None.

    A later strong hint that disagrees is logged, never used: the first source is the most specific.
    """
    strong: Hint | None = None
    weak: Hint | None = None
    for h in hints:
        if h is None:
            continue
        if h.strong:
            if strong is None:
                strong = h
            elif h.encoding != strong.encoding:
                log.info("radiometry: %s says %s, but %s (used) says %s", h.source, h.encoding, strong.source,
                         strong.encoding)
        elif weak is None:
            weak = h
    return strong, weak


@dataclass(frozen=True)
class ValueStats:
    """What a sample of a scene's valid values says about their encoding."""

    n: int
    negative_share: float
    median: float
    minimum: float
    maximum: float

    @classmethod
    def of(cls, values: np.ndarray) -> "ValueStats":
        v = np.asarray(values, dtype=np.float64).ravel()
        if v.size == 0:
            return cls(0, 0.0, math.nan, math.nan, math.nan)
        return cls(int(v.size), float(np.count_nonzero(v < 0)) / v.size, float(np.median(v)),
                   float(v.min()), float(v.max()))

    def looks_db(self) -> bool:
        """Negative values in quantity, or a negative median: linear data cannot be that."""
        return self.n > 0 and (self.negative_share > DB_NEGATIVE_SHARE or self.median < 0)

    def describe(self) -> str:
        return (f"median {self.median:.4g}, {100 * self.negative_share:.3g} % negative, range "
                f"{self.minimum:.4g}..{self.maximum:.4g} in a sample of {self.n:,} valid pixels")


_FORMULA = {"amplitude": "sigma0 = (v * {gain:.6g}) ** 2", "intensity": "sigma0 = v * {gain:.6g} ** 2",
            "db": "sigma0 = 10 ** (v / 10)", "display": "sigma0 = (v + 0.5) ** 2"}


def _result(encoding: str, gain: float, source: str, why: str) -> Radiometry:
    formula = _FORMULA[encoding].format(gain=gain)
    return Radiometry(encoding, gain, source, f"radiometry: {encoding} ({formula}); {why}")


def decide(*, storage: str, native: bool, scale_factor: float, data_type: str, override: str,
           hints: Iterable[Hint | None], stats: Callable[[], ValueStats], path: str | Path) -> Radiometry | None:
    """The encoding of a SAR scene (see the module docstring), or None when nothing says what a
    converted product holds (the caller refuses the file then, naming the data types).

    ``storage``: "complex", "uint8", "uint16" or "float" (the TIFF's samples); ``native``: the TIFF
    still holds the sidecar's ``data_type``; ``stats`` is called only when the values must decide
    (it reads a bounded sample of pixels).
    """
    gain = scale_factor if native else 1.0
    gain_why = (f"gain = the sidecar's scale_factor ({data_type} data)" if native
                else f"gain 1: the TIFF is not the sidecar's {data_type}, taken as converted and calibrated")
    if storage == "complex":
        if override not in ("auto", "amplitude"):
            raise RadiometryError(f"--radiometry {override} does not apply to a complex (I/Q) SLC: its magnitude "
                                  "is amplitude (use auto or amplitude)", path)
        return _result("amplitude", gain, "data type", "the magnitude of complex I/Q samples; " + gain_why)
    if override != "auto":
        return _result(override, gain, "override", f"set by --radiometry; {gain_why}")
    strong, weak = first_hints(hints)
    if strong is not None:
        return _result(strong.encoding, gain, "metadata", f"from the {strong.source}; {gain_why}")
    if storage == "uint8":
        return _result("display", gain, "data type", "8-bit data taken as a display-stretched picture "
                       "(stretch unknown; pass --radiometry if it is not)")
    if storage == "uint16":
        if native:
            return _result("amplitude", gain, "data type", f"amplitude counts (Capella {data_type}); {gain_why}")
        return None
    s = stats()
    if s.looks_db():
        return _result("db", gain, "values", f"float values look like dB ({s.describe()})")
    if native:
        return _result("amplitude", gain, "metadata", f"Capella {data_type} is amplitude; {gain_why}")
    if weak is not None:
        return _result("intensity", gain, "metadata", f"the {weak.source} names a backscatter coefficient "
                       f"without dB or amplitude: taken as linear power; {gain_why}")
    return None


def check_values(values: np.ndarray, valid: np.ndarray, encoding: str, path: str | Path, where: str,
                 overridden: bool = False) -> None:
    """RadiometryError when the valid ``values`` cannot be in ``encoding`` (see the module docstring).

    ``where`` says which pixels (a window, a sample) for the message; ``overridden``: the encoding
    came from ``--radiometry`` (the message then says how to undo it).
    """
    if not valid.any():
        return
    v = values[valid]
    fix = ("check --radiometry (auto decides from the metadata and the values)" if overridden
           else "say what the pixels are with --radiometry or a band unit")
    if encoding in ("amplitude", "intensity", "display"):
        neg = int(np.count_nonzero(v < 0))
        if neg:
            raise RadiometryError(
                f"{neg:,} of {v.size:,} valid pixels {where} are negative (min {float(v.min()):.4g}): {encoding} "
                f"cannot be negative; the data look like dB (--radiometry db), or {fix}", path)
    if encoding == "display":
        top = float(v.max())
        if top > DISPLAY_MAX:
            raise RadiometryError(f"pixels {where} reach {top:.6g}: a display-stretched picture holds 0..255; {fix}",
                                  path)
    if encoding == "db":
        lo, hi = float(v.min()), float(v.max())
        if lo < DB_MIN or hi > DB_MAX:
            raise RadiometryError(
                f"values {where} span {lo:.4g}..{hi:.4g} dB, outside {DB_MIN:g}..+{DB_MAX:g}: not dB, or a no-data "
                f"value the TIFF does not declare (set its nodata); {fix}", path)


def to_sigma0(values: np.ndarray, encoding: str, gain: float) -> np.ndarray:
    """Stored values (float64) -> linear power; invalid pixels are the caller's to zero."""
    if encoding == "amplitude":
        return (values * gain) ** 2
    if encoding == "intensity":
        return values * (gain * gain)
    if encoding == "db":
        return np.power(10.0, np.clip(values, DB_MIN, DB_MAX) / 10.0)
    if encoding == "display":
        return (values + 0.5) ** 2
    raise RadiometryError(f"unknown radiometric encoding {encoding!r}")


def to_amplitude(values: np.ndarray, encoding: str) -> np.ndarray:
    """Stored values -> uncalibrated amplitude, for display (quicklooks); no gain applied."""
    if encoding == "intensity":
        return np.sqrt(np.maximum(values, 0.0))
    if encoding == "db":
        return np.power(10.0, np.clip(values, DB_MIN, DB_MAX) / 20.0)
    if encoding == "display":
        return values + 0.5
    return values
