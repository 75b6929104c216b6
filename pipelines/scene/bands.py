"""Optical band identity: GeoTIFF band descriptions -> STAC ``eo`` common names.

Why a table: detectors ask for bands by physical meaning ("swir22", "lwir11"), never by the
position in a file or a mission's band number, so one fire detector runs on Landsat-8,
Sentinel-2 or a synthetic tile alike.

What a description may be (case-insensitive, extra words allowed, e.g. ``"20230514 20m: B11 1610nm"``):

1. a STAC common name itself: ``red``, ``swir16``, ``lwir11`` ...;
2. a mission band number: Landsat-8 ``B1``..``B11`` or Sentinel-2 ``B01``..``B12``, ``B8A``;
3. failing both, a centre wavelength (``"1610nm"``, ``"2.19um"``) mapped by the STAC ranges.

Ambiguity (``B1``..``B11`` exist in both missions with different meanings) is settled per file by
:func:`band_family`: a hint (sidecar ``platform`` / TIFF tags) wins; without one, any zero-padded
number (``B04``), ``B8A`` or ``B12`` (bands Landsat-8 does not have) means Sentinel-2 for the
whole file; otherwise Landsat-8 is assumed (USGS's own naming is unpadded).

Sentinel-2's three red-edge bands map to the STAC 1.1 names ``rededge071``/``rededge075``/
``rededge078`` (not three times ``rededge``, which would be a duplicate band in a full-band file).
Landsat-8 ``B8`` (panchromatic) maps to ``pan``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

#: STAC eo common names this reader accepts, with their wavelength range in micrometres.
#: Order matters for wavelength lookup: narrower/more specific names first.
COMMON_NAMES: dict[str, tuple[float, float]] = {
    "coastal": (0.40, 0.45),
    "blue": (0.45, 0.53),
    "green": (0.51, 0.60),
    "red": (0.62, 0.69),
    "rededge071": (0.69, 0.73),
    "rededge075": (0.73, 0.76),
    "rededge078": (0.76, 0.80),
    "rededge": (0.69, 0.79),
    "nir08": (0.75, 0.90),
    "nir09": (0.85, 1.05),
    "nir": (0.75, 1.00),
    "pan": (0.50, 0.70),
    "cirrus": (1.35, 1.40),
    "swir16": (1.55, 1.75),
    "swir22": (2.08, 2.35),
    "lwir11": (10.5, 11.5),
    "lwir12": (11.5, 12.5),
    "lwir": (10.5, 12.5),
}

#: Bands delivered in kelvin (brightness temperature); all others are reflectance (0..1).
THERMAL_BANDS = frozenset({"lwir", "lwir11", "lwir12"})

#: Landsat-8 OLI/TIRS band numbers (USGS naming, unpadded).
LANDSAT8: dict[str, str] = {
    "B1": "coastal", "B2": "blue", "B3": "green", "B4": "red", "B5": "nir08",
    "B6": "swir16", "B7": "swir22", "B8": "pan", "B9": "cirrus", "B10": "lwir11", "B11": "lwir12",
}

#: Sentinel-2 MSI band numbers (ESA naming, zero-padded; unpadded forms accepted too).
SENTINEL2: dict[str, str] = {
    "B01": "coastal", "B02": "blue", "B03": "green", "B04": "red", "B05": "rededge071",
    "B06": "rededge075", "B07": "rededge078", "B08": "nir", "B8A": "nir08", "B09": "nir09",
    "B10": "cirrus", "B11": "swir16", "B12": "swir22",
}

FAMILIES: dict[str, dict[str, str]] = {"landsat-8": LANDSAT8, "sentinel-2": SENTINEL2}

_TOKEN_RE = re.compile(r"(?<![A-Za-z0-9])B(\d{1,2}A?)(?![A-Za-z0-9])", re.IGNORECASE)
_WAVE_RE = re.compile(r"(\d+(?:\.\d+)?)\s*(nm|um|µm|micron|microns)(?![A-Za-z])", re.IGNORECASE)
_WORD_RE = re.compile(r"[a-z0-9]+")


def normalise_hint(hint: str | None) -> str | None:
    """Map a platform/mission string ("Sentinel-2A", "LANDSAT_8", "S2B", "LC08") to a family key."""
    if not hint:
        return None
    h = hint.strip().lower().replace("_", "-").replace(" ", "-")
    if "sentinel-2" in h or "sentinel2" in h or re.match(r"^s2[ab-]?", h):
        return "sentinel-2"
    if "landsat" in h or re.match(r"^(l[co]0?[89]|lc[89])", h):
        return "landsat-8"
    return None


def _token(desc: str) -> str | None:
    m = _TOKEN_RE.search(desc)
    return m.group(1).upper() if m else None


def _by_wavelength(desc: str) -> str | None:
    m = _WAVE_RE.search(desc)
    if not m:
        return None
    um = float(m.group(1)) / (1000.0 if m.group(2).lower() == "nm" else 1.0)
    for name, (lo, hi) in COMMON_NAMES.items():
        if name in ("pan", "rededge", "nir", "lwir"):  # broad names: never chosen from a wavelength
            continue
        if lo <= um <= hi:
            return name
    return None


def common_band_name(desc: str | None, hint: str | None = None) -> str | None:
    """One band description -> STAC common name, or None when it is not recognisable.

    ``hint`` is a family ("landsat-8" / "sentinel-2") or a platform string; without it an
    unpadded ``B1``..``B11`` is read as Landsat-8 (use :func:`resolve_band_names` for a whole
    file, which infers the family from all its descriptions).
    """
    if not desc or not desc.strip():
        return None
    words = _WORD_RE.findall(desc.lower())
    for w in words:  # a common name written as a whole word wins
        if w in COMMON_NAMES:
            return w
    family = normalise_hint(hint) or (hint if hint in FAMILIES else None)
    tok = _token(desc)
    if tok is not None:
        padded = tok if tok == "8A" or len(tok.rstrip("A")) == 2 else f"0{tok}"
        padded = "B" + padded
        if family is None:
            family = "sentinel-2" if (padded in SENTINEL2 and ("B" + tok) not in LANDSAT8) else "landsat-8"
        if family == "sentinel-2":
            name = SENTINEL2.get(padded)
        else:
            name = LANDSAT8.get("B" + tok.lstrip("0"))
        if name is not None:
            return name
    return _by_wavelength(desc)


def band_family(descriptions: Sequence[str | None], hint: str | None = None) -> str:
    """Decide which mission's numbering a file uses (see the module docstring for the rule)."""
    fam = normalise_hint(hint)
    if fam is not None:
        return fam
    for d in descriptions:
        tok = _token(d or "")
        if tok is None:
            continue
        if tok == "8A" or tok == "12" or (len(tok) == 2 and tok.startswith("0")):
            return "sentinel-2"
    return "landsat-8"


def resolve_band_names(descriptions: Sequence[str | None], hint: str | None = None) -> tuple[str | None, ...]:
    """All band descriptions of one file -> common names (None where unrecognised)."""
    fam = band_family(descriptions, hint)
    return tuple(common_band_name(d, fam) for d in descriptions)
