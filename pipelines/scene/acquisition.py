"""When a scene was acquired, and where that time came from.

Why a module of its own: the same question ("which time do we stamp on this scene's alerts?")
is asked by every format (a GeoTIFF tile, a Capella product, a Landsat folder, a SAFE, a STAC
item), and users very often have none of our sidecars, only the file names the providers give.
Those names carry the time: Capella, Sentinel-1 and Sentinel-2 product identifiers hold the start
of the acquisition to the second; Landsat identifiers hold only the date.

Every scene records its source in ``Scene.acquired_source`` (copied to each alert as the property
``acquired_source``). The values are:

* ``sidecar``: the orbitwatch optical sidecar's ``acquired`` or Capella's ``collect.start_timestamp``
  in ``<stem>_extended.json``;
* ``tiff-tag:<TAG>``: a TIFF metadata tag (``ACQUISITION_DATETIME``...; ``TIFFTAG_IMAGEDESCRIPTION``
  for Capella metadata embedded in the GeoTIFF; ``TIFFTAG_DATETIME``, the file's *creation* time,
  only when nothing better exists);
* ``mtl``: Landsat ``DATE_ACQUIRED`` + ``SCENE_CENTER_TIME``; ``mtd``: Sentinel-2 ``SENSING_TIME``;
  ``stac``: a STAC item's ``datetime`` (or ``start_datetime``);
* ``product-id``: the product identifier in the file or folder name, to the second;
  ``product-id-date``: a Landsat identifier, which holds only the date: the time of day is the
  satellite's equator crossing (10:00 mean local solar time, descending) at the scene's longitude,
  good to about half an hour;
* ``--acquired``: the time the user gave (``orbitwatch scan --acquired``, flow parameter
  ``acquired``).

The user's time fills in; it never overrides a time the scene itself records (a folder scan with
one ``--acquired`` would otherwise stamp every scene with it and silently corrupt the alerts of the
scenes that know their time). It does replace the two approximate sources, ``product-id-date`` and
``tiff-tag:TIFFTAG_DATETIME``. When it is ignored, a warning says so.
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

from pipelines.errors import SceneError

log = logging.getLogger(__name__)

#: The value of ``acquired_source`` when the user gave the time.
USER_SOURCE = "--acquired"

#: Sources that are estimates: a user-given time replaces them.
APPROXIMATE_SOURCES = frozenset({"product-id-date", "tiff-tag:TIFFTAG_DATETIME"})

#: Mean local solar time (hours) at which Landsat 8/9 cross the equator, descending (USGS:
#: "10:00 a.m. +/- 15 minutes"); Landsat 4/5 crossed at 9:45, Landsat 7 at 10:00.
LANDSAT_CROSSING_HOURS = {"4": 9.75, "5": 9.75, "7": 10.0, "8": 10.0, "9": 10.0}

#: WRS-2 path 001 crosses the equator (descending) at 64.60 W; paths step 360/233 degrees westward.
WRS2_PATH1_LON = -64.60
WRS2_PATH_STEP = 360.0 / 233.0

_CAPELLA_RE = re.compile(r"CAPELLA_C\d{2}_[A-Z]{2}_[A-Z]{3,4}_[A-Z]{2}_(\d{14})_(\d{14})")
_S1_ID_RE = re.compile(r"S1[A-D]_[A-Z0-9]{2}_[A-Z]{3}[A-Z_]_[0-9][A-Z]{3}_(\d{8}T\d{6})_(\d{8}T\d{6})_")
_S1_FILE_RE = re.compile(r"s1[a-d]-[a-z0-9]{2,3}-[a-z]{3}-[a-z]{2}-(\d{8}t\d{6})-(\d{8}t\d{6})-", re.IGNORECASE)
_S2_ID_RE = re.compile(r"S2[A-D]_MSI(?:L1C|L2A|L1B)_(\d{8}T\d{6})_N\d{4}_R\d{3}_T\d{2}[A-Z]{3}_")
_S2_FILE_RE = re.compile(r"(?:^|[_/])T\d{2}[A-Z]{3}_(\d{8}T\d{6})_")
_LANDSAT_RE = re.compile(r"L[COTEM]0([4-9])_L[12][A-Z]{2}_(\d{3})(\d{3})_(\d{8})_\d{8}_\d{2}_(?:T1|T2|RT|A1|A2)")


@dataclass(frozen=True)
class ProductTime:
    """A time read from a product identifier: ``source`` is ``product-id`` or ``product-id-date``."""

    when: datetime
    source: str
    identifier: str  # the matched identifier, for messages
    mission: str  # "capella" | "sentinel-1" | "sentinel-2" | "landsat"


def _utc(fmt: str, text: str) -> datetime:
    return datetime.strptime(text.upper(), fmt).replace(tzinfo=timezone.utc)


def landsat_overpass_utc(day: datetime, lon_deg: float, satellite: str = "8") -> datetime:
    """The UTC time at which a Landsat satellite passes longitude ``lon_deg`` on ``day``.

    Mean local solar time of the crossing minus longitude / 15 h (why: the orbit is
    sun-synchronous, so the local solar time of the pass is fixed; the latitude drift of a
    descending pass is a few minutes, well inside the +/- 30 min we claim).
    """
    hours = LANDSAT_CROSSING_HOURS.get(satellite, 10.0) - lon_deg / 15.0
    base = datetime(day.year, day.month, day.day, tzinfo=timezone.utc)
    return base + timedelta(hours=hours)


def wrs2_path_lon(path: int) -> float:
    """Longitude (deg, -180..180) where WRS-2 ``path`` crosses the equator, descending."""
    lon = WRS2_PATH1_LON - (path - 1) * WRS2_PATH_STEP
    return (lon + 180.0) % 360.0 - 180.0


def time_from_identifier(name: str, lon_deg: float | None = None) -> ProductTime | None:
    """The acquisition time a product identifier holds, or None when ``name`` holds none.

    Capella (``CAPELLA_C14_SP_GEO_HH_20240709040329_...``), Sentinel-1 (product id or measurement
    file name), Sentinel-2 (product id, or a band file ``T10UFB_20230514T190919_B04``) give the
    acquisition start to the second. Landsat (``LC08_L1TP_099069_20200827_..._02_T1``) gives the
    date: the time is the descending equator crossing at ``lon_deg`` (the scene centre), or at
    the WRS-2 path's equator crossing when the longitude is unknown.
    """
    m = _CAPELLA_RE.search(name)
    if m:
        return ProductTime(_utc("%Y%m%d%H%M%S", m.group(1)), "product-id", m.group(0), "capella")
    for rx in (_S1_ID_RE, _S1_FILE_RE):
        m = rx.search(name)
        if m:
            return ProductTime(_utc("%Y%m%dT%H%M%S", m.group(1)), "product-id", m.group(0).strip("_-"), "sentinel-1")
    for rx in (_S2_ID_RE, _S2_FILE_RE):
        m = rx.search(name)
        if m:
            return ProductTime(_utc("%Y%m%dT%H%M%S", m.group(1)), "product-id", m.group(0).strip("_/"), "sentinel-2")
    m = _LANDSAT_RE.search(name)
    if m:
        sat, path, day = m.group(1), int(m.group(2)), _utc("%Y%m%d", m.group(4))
        lon = lon_deg if lon_deg is not None and math.isfinite(lon_deg) else wrs2_path_lon(path)
        return ProductTime(landsat_overpass_utc(day, lon, sat), "product-id-date", m.group(0), "landsat")
    return None


def time_from_path(path: Path, lon_deg: float | None = None, extra: Iterable[str] = ()) -> ProductTime | None:
    """:func:`time_from_identifier` on ``extra`` names (an item id...), the file name, then the
    names of the two folders above it (a product folder holding renamed files)."""
    names = [*extra, path.name, path.parent.name, path.parent.parent.name]
    for n in names:
        if n:
            hit = time_from_identifier(n, lon_deg)
            if hit is not None:
                return hit
    return None


def resolve_acquired(own: tuple[datetime, str] | None, user: datetime | None, where: Path,
                     missing: str) -> tuple[datetime, str]:
    """Combine the scene's own time (with its source) and the user's (see the module docstring).

    ``missing`` is the error message when neither exists; ``--acquired`` is suggested in it.
    """
    if user is not None and user.tzinfo is None:
        user = user.replace(tzinfo=timezone.utc)
    if own is not None:
        when, source = own
        if user is None:
            return when, source
        if source in APPROXIMATE_SOURCES:
            log.info("%s: using --acquired %s instead of the approximate %s time %s", where.name,
                     user.isoformat(), source, when.isoformat())
            return user.astimezone(timezone.utc), USER_SOURCE
        if abs((user - when).total_seconds()) > 1.0:
            log.warning("%s: ignoring --acquired %s: the scene records its own time %s (%s)", where.name,
                        user.isoformat(), when.isoformat(), source)
        return when, source
    if user is not None:
        return user.astimezone(timezone.utc), USER_SOURCE
    raise SceneError(f"{missing}; or give the time with --acquired (flow parameter 'acquired')", where)


def parse_user_time(text: str | datetime | None) -> datetime | None:
    """``--acquired`` / flow ``acquired`` -> aware UTC datetime (None passes through).

    Raises SceneError on text that is not ISO 8601, so a typo fails before any scene is read.
    """
    from pipelines.scene.sidecar import parse_timestamp

    if text is None or isinstance(text, datetime):
        if isinstance(text, datetime) and text.tzinfo is None:
            return text.replace(tzinfo=timezone.utc)
        return text
    try:
        return parse_timestamp(str(text))
    except ValueError:
        raise SceneError(f"--acquired {text!r} is not an ISO 8601 time (e.g. 2025-08-01T18:40:00Z)") from None
