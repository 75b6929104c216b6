"""Parse the `<stem>_extended.json` sidecars that travel with a scene's GeoTIFF.

Two kinds exist:

* Capella's own extended metadata (SAR). It carries the calibration (``scale_factor``), the
  pixel spacing and the acquisition time that the TIFF itself does not, so a SAR scene cannot be
  used without it. Field names and nesting follow real Capella product_version 1.x files.
  A converted product (a dB or 8-bit copy beside the original sidecar) may say what its pixels
  now are in an optional top-level ``"orbitwatch_radiometry"``: one of ``intensity``,
  ``amplitude``, ``db``, ``display`` (see :mod:`pipelines.scene.radiometry`).
* orbitwatch's small optical sidecar (``{"orbitwatch_optical": 1, ...}``), needed only for
  integer-DN optical tiles (scale/offset per band) or to give an acquisition time and pixel size
  the TIFF lacks.

Every problem raises :class:`~pipelines.errors.SidecarError` naming the file and the exact key,
because a batch report that says only "bad metadata" cannot be acted on.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from pipelines.errors import SidecarError

#: Capella image data types this reader can calibrate (see :mod:`pipelines.scene.reader`).
SUPPORTED_SAR_DATA_TYPES = ("UInt16", "Float32", "CInt16")

#: The version of the orbitwatch optical sidecar format this reader understands.
OPTICAL_SIDECAR_VERSION = 1

#: Units an optical sidecar band may declare; anything else would not be reflectance/kelvin.
OPTICAL_UNITS = ("reflectance", "kelvin")

_MISSING = object()

_ISO_RE = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})(?:[T ](\d{2}):(\d{2})(?::(\d{2})(?:\.(\d+))?)?)?"
    r"\s*(Z|z|UTC|[+-]\d{2}:?\d{2})?$"
)
_TIFF_DT_RE = re.compile(r"^(\d{4}):(\d{2}):(\d{2})[ T](\d{2}):(\d{2}):(\d{2})$")


def parse_timestamp(text: str) -> datetime:
    """Parse an ISO-8601 / TIFF timestamp into an aware UTC datetime.

    Capella writes nanoseconds (``2024-07-09T04:03:29.010153366Z``), which
    :func:`datetime.fromisoformat` rejects, so the fraction is cut to microseconds here
    (truncated, not rounded, so a time never moves into the next second). A timestamp without a
    zone is taken as UTC: every source we read (Capella, Landsat/Sentinel metadata) is UTC.
    Raises ValueError on anything else; callers wrap it with the file and key.
    """
    s = text.strip()
    m = _TIFF_DT_RE.match(s)
    if m:
        y, mo, d, h, mi, se = (int(g) for g in m.groups())
        return datetime(y, mo, d, h, mi, se, tzinfo=timezone.utc)
    m = _ISO_RE.match(s)
    if not m:
        raise ValueError(f"not an ISO-8601 timestamp: {text!r}")
    y, mo, d = int(m[1]), int(m[2]), int(m[3])
    h = int(m[4] or 0)
    mi = int(m[5] or 0)
    se = int(m[6] or 0)
    micro = int((m[7] or "0")[:6].ljust(6, "0"))
    tz = m[8]
    if tz in (None, "Z", "z", "UTC"):
        tzinfo = timezone.utc
    else:
        sign = 1 if tz[0] == "+" else -1
        digits = tz[1:].replace(":", "")
        tzinfo = timezone(sign * timedelta(hours=int(digits[:2]), minutes=int(digits[2:])))
    # datetime() itself rejects month 13, hour 25 ... with a ValueError.
    return datetime(y, mo, d, h, mi, se, micro, tzinfo=tzinfo).astimezone(timezone.utc)


@dataclass(frozen=True)
class CapellaMetadata:
    """The fields of a Capella ``_extended.json`` that orbitwatch uses, typed and checked."""

    product_type: str
    product_version: str | None
    platform: str
    mode: str
    collect_id: str
    start: datetime
    stop: datetime
    data_type: str
    rows: int
    columns: int
    pixel_spacing_row: float
    pixel_spacing_column: float
    scale_factor: float
    radiometry: str
    enl: float | None
    center_frequency_hz: float
    polarizations: str
    image_geometry: dict
    look_angle_deg: float | None
    incidence_angle_deg: float | None
    prf_hz: float | None
    raw: dict
    #: The optional ``orbitwatch_radiometry`` key: what the pixels are (None: the data type says).
    encoding: str | None = None


# --------------------------------------------------------------------------- typed lookups


def _lookup(doc: dict, key: str, path: str | Path | None) -> Any:
    """Walk a dotted key; _MISSING if any level is absent. A non-object level is an error."""
    cur: Any = doc
    walked: list[str] = []
    for part in key.split("."):
        if not isinstance(cur, dict):
            raise SidecarError(f"key '{'.'.join(walked)}' is {type(cur).__name__}, expected an object", path)
        walked.append(part)
        if part not in cur:
            return _MISSING
        cur = cur[part]
    return cur


def _str(doc: dict, key: str, path: str | Path | None, *, required: bool = True) -> str | None:
    v = _lookup(doc, key, path)
    if v is _MISSING or v is None:
        if required:
            raise SidecarError(f"missing key '{key}'", path)
        return None
    if not isinstance(v, str) or not v.strip():
        raise SidecarError(f"key '{key}' must be a non-empty string, got {v!r}", path)
    return v


def _num(doc: dict, key: str, path: str | Path | None, *, required: bool = True,
         positive: bool = False) -> float | None:
    v = _lookup(doc, key, path)
    if v is _MISSING or v is None:
        if required:
            raise SidecarError(f"missing key '{key}'", path)
        return None
    # bool is an int subclass; `true` is never a valid number in these files.
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
        raise SidecarError(f"key '{key}' must be a finite number, got {v!r}", path)
    if positive and v <= 0:
        raise SidecarError(f"key '{key}' must be > 0, got {v!r}", path)
    return float(v)


def _int(doc: dict, key: str, path: str | Path | None) -> int:
    v = _lookup(doc, key, path)
    if v is _MISSING or v is None:
        raise SidecarError(f"missing key '{key}'", path)
    if isinstance(v, bool) or not isinstance(v, int) or v <= 0:
        raise SidecarError(f"key '{key}' must be a positive integer, got {v!r}", path)
    return v


def _time(doc: dict, key: str, path: str | Path | None) -> datetime:
    s = _str(doc, key, path)
    try:
        return parse_timestamp(s)  # type: ignore[arg-type]
    except ValueError as exc:
        raise SidecarError(f"key '{key}' is not a valid timestamp: {s!r} ({exc})", path) from None


def _mean_prf(doc: dict, path: str | Path | None) -> float | None:
    """Mean of collect.radar.prf[*].prf: Capella lists one PRF per segment of the collect."""
    v = _lookup(doc, "collect.radar.prf", path)
    if v is _MISSING or v is None:
        return None
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        return _num(doc, "collect.radar.prf", path, positive=True)
    if not isinstance(v, list):
        raise SidecarError(f"key 'collect.radar.prf' must be a list of {{'prf': number}}, got {type(v).__name__}", path)
    vals: list[float] = []
    for i, item in enumerate(v):
        if not isinstance(item, dict):
            raise SidecarError(f"key 'collect.radar.prf[{i}]' must be an object, got {item!r}", path)
        p = item.get("prf")
        if isinstance(p, bool) or not isinstance(p, (int, float)) or not math.isfinite(p) or p <= 0:
            raise SidecarError(f"key 'collect.radar.prf[{i}].prf' must be a positive number, got {p!r}", path)
        vals.append(float(p))
    return sum(vals) / len(vals) if vals else None


# --------------------------------------------------------------------------- Capella


def parse_sidecar(doc: dict, path: str | Path | None = None) -> CapellaMetadata:
    """Check and type a Capella extended-metadata document (already loaded from JSON)."""
    if not isinstance(doc, dict):
        raise SidecarError(f"sidecar must be a JSON object, got {type(doc).__name__}", path)
    if "collect" not in doc:
        raise SidecarError("missing key 'collect' (not a Capella extended-metadata file)", path)
    data_type = _str(doc, "collect.image.data_type", path)
    if data_type not in SUPPORTED_SAR_DATA_TYPES:
        raise SidecarError(
            f"unsupported data type '{data_type}' in 'collect.image.data_type' "
            f"(supported: {', '.join(SUPPORTED_SAR_DATA_TYPES)})", path)
    geometry = _lookup(doc, "collect.image.image_geometry", path)
    if geometry is _MISSING:
        raise SidecarError("missing key 'collect.image.image_geometry'", path)
    if not isinstance(geometry, dict):
        raise SidecarError(f"key 'collect.image.image_geometry' must be an object, got {type(geometry).__name__}", path)
    version = _lookup(doc, "product_version", path)
    if version is not _MISSING and version is not None and not isinstance(version, (str, int, float)):
        raise SidecarError(f"key 'product_version' must be a string, got {version!r}", path)
    start = _time(doc, "collect.start_timestamp", path)
    stop = _time(doc, "collect.stop_timestamp", path)
    if stop < start:
        raise SidecarError(f"'collect.stop_timestamp' ({stop.isoformat()}) is before "
                           f"'collect.start_timestamp' ({start.isoformat()})", path)
    tx = _str(doc, "collect.radar.transmit_polarization", path)
    rx = _str(doc, "collect.radar.receive_polarization", path)
    return CapellaMetadata(
        product_type=_str(doc, "product_type", path),  # type: ignore[arg-type]
        product_version=None if version is _MISSING or version is None else str(version),
        platform=_str(doc, "collect.platform", path),  # type: ignore[arg-type]
        mode=_str(doc, "collect.mode", path),  # type: ignore[arg-type]
        collect_id=_str(doc, "collect.collect_id", path),  # type: ignore[arg-type]
        start=start,
        stop=stop,
        data_type=data_type,  # type: ignore[arg-type]
        rows=_int(doc, "collect.image.rows", path),
        columns=_int(doc, "collect.image.columns", path),
        pixel_spacing_row=_num(doc, "collect.image.pixel_spacing_row", path, positive=True),  # type: ignore[arg-type]
        pixel_spacing_column=_num(doc, "collect.image.pixel_spacing_column", path, positive=True),  # type: ignore[arg-type]
        scale_factor=_num(doc, "collect.image.scale_factor", path, positive=True),  # type: ignore[arg-type]
        radiometry=_str(doc, "collect.image.radiometry", path),  # type: ignore[arg-type]
        enl=_num(doc, "collect.image.enl", path, required=False),
        center_frequency_hz=_num(doc, "collect.radar.center_frequency", path, positive=True),  # type: ignore[arg-type]
        polarizations=f"{tx}{rx}",
        image_geometry=geometry,
        look_angle_deg=_num(doc, "collect.image.center_pixel.look_angle", path, required=False),
        incidence_angle_deg=_num(doc, "collect.image.center_pixel.incidence_angle", path, required=False),
        prf_hz=_mean_prf(doc, path),
        raw=doc,
        encoding=_encoding(doc, path),
    )


def _encoding(doc: dict, path: str | Path | None) -> str | None:
    """The optional ``orbitwatch_radiometry`` key, checked: a typo must not fall back to a guess."""
    from pipelines.scene.radiometry import ENCODINGS

    v = doc.get("orbitwatch_radiometry")
    if v is None:
        return None
    if not isinstance(v, str) or v.strip().lower() not in ENCODINGS:
        raise SidecarError(f"key 'orbitwatch_radiometry' must be one of {', '.join(ENCODINGS)}, got {v!r}", path)
    return v.strip().lower()


def load_json(path: str | Path) -> dict:
    """Read a sidecar's JSON object; SidecarError on a missing file, bad JSON or a non-object."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SidecarError(f"missing sidecar {p.name}", p) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise SidecarError(f"cannot read sidecar: {exc}", p) from None
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise SidecarError(f"sidecar is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}", p) from None
    if not isinstance(doc, dict):
        raise SidecarError(f"sidecar must be a JSON object, got {type(doc).__name__}", p)
    return doc


def read_sidecar(path: str | Path) -> CapellaMetadata:
    """Load and parse a Capella ``<stem>_extended.json``."""
    return parse_sidecar(load_json(path), path)


# --------------------------------------------------------------------------- optical


@dataclass(frozen=True)
class BandCalibration:
    """Linear DN -> physical value for one optical band: ``value = DN * scale + offset``."""

    scale: float
    offset: float
    unit: str  # "reflectance" | "kelvin"


def is_optical_sidecar(doc: dict) -> bool:
    """True when the document declares itself an orbitwatch optical sidecar."""
    return isinstance(doc, dict) and "orbitwatch_optical" in doc


def parse_optical_sidecar(doc: dict, path: str | Path | None = None) -> dict[str, BandCalibration]:
    """Check an optical sidecar and return its per-band calibration (key: band name as written).

    Scene.metadata keeps the document itself; this only validates it and extracts the numbers
    the reader needs, so a typo in a scale surfaces at open time, not as wrong reflectances.
    """
    version = doc.get("orbitwatch_optical")
    if isinstance(version, bool) or version != OPTICAL_SIDECAR_VERSION:
        raise SidecarError(f"key 'orbitwatch_optical' must be {OPTICAL_SIDECAR_VERSION}, got {version!r}", path)
    _str(doc, "platform", path, required=False)
    if _lookup(doc, "acquired", path) is not _MISSING:
        _time(doc, "acquired", path)
    _num(doc, "sun_zenith_deg", path, required=False)
    _num(doc, "pixel_size_m", path, required=False, positive=True)
    nodata = _lookup(doc, "nodata", path)
    if nodata is not _MISSING and nodata is not None:
        _num(doc, "nodata", path)
    bands = _lookup(doc, "bands", path)
    if bands is _MISSING or bands is None:
        return {}
    if not isinstance(bands, dict):
        raise SidecarError(f"key 'bands' must be an object of band name -> {{scale, offset, unit}}, "
                           f"got {type(bands).__name__}", path)
    out: dict[str, BandCalibration] = {}
    for name, entry in bands.items():
        key = f"bands.{name}"
        if not isinstance(entry, dict):
            raise SidecarError(f"key '{key}' must be an object with scale/offset/unit, got {entry!r}", path)
        if "." in name:
            raise SidecarError(f"band name {name!r} in 'bands' must not contain '.'", path)
        scale = _num(doc, f"{key}.scale", path, required=False)
        offset = _num(doc, f"{key}.offset", path, required=False)
        unit = entry.get("unit", "reflectance")
        if scale is not None and scale == 0:
            raise SidecarError(f"key '{key}.scale' must not be 0", path)
        if unit not in OPTICAL_UNITS:
            raise SidecarError(f"key '{key}.unit' must be one of {', '.join(OPTICAL_UNITS)}, got {unit!r}", path)
        out[name] = BandCalibration(scale=1.0 if scale is None else scale,
                                    offset=0.0 if offset is None else offset, unit=unit)
    return out
