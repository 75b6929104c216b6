"""Fire alerts as FIRMS-style CSV rows (NASA FIRMS active-fire text format, VIIRS/MODIS column order).

Why FIRMS-style: fire agencies and GIS tools already parse FIRMS CSV. Columns whose FIRMS meaning
we cannot honestly fill are renamed instead of faked: FIRMS' ``bright_ti4`` (Kelvin) becomes
``swir_excess`` (our detectors' summed SWIR intensity excess) and ``frp`` (MW) becomes
``frp_proxy`` (swir_excess x pixel area, not megawatts). The trailing orbitwatch columns keep
every alert field so ``read_firms_csv`` restores the alerts exactly (positions to 1e-7 deg).
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Iterable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, TextIO

import numpy as np

from pipelines.alerts.model import Alert
from pipelines.errors import AlertError

FIRMS_COLUMNS = ("latitude", "longitude", "swir_excess", "scan", "track", "acq_date", "acq_time", "satellite",
                 "instrument", "confidence", "version", "frp_proxy", "daynight")
EXTRA_COLUMNS = ("alert_id", "scene", "acquired", "score", "row", "col", "area_m2", "detector", "pixels", "attrs")
COLUMNS = FIRMS_COLUMNS + EXTRA_COLUMNS
#: FIRMS' confidence letters (VIIRS: low / nominal / high).
CONF_LETTER = {"low": "l", "nominal": "n", "high": "h"}
#: Day when the solar zenith angle is below 85 deg: the MODIS Collection 6 active-fire day/night
#: threshold (Giglio et al. 2016, Remote Sens. Environ. 178, 31-41).
DAY_MAX_SZA_DEG = 85.0
VERSION = "orbitwatch-0.1"
_OWN_ATTRS = ("swir_excess", "frp_proxy", "confidence")


def solar_zenith_deg(lat: float, lon: float, when: datetime) -> float:
    """Solar zenith angle from the analytic sun vector (about 0.01 deg; ample for day/night)."""
    from pipelines.node.orbit import gmst_rad, julian_dates, sun_vector_eci

    jd, fr = julian_dates(when, np.array([0.0]))
    s = sun_vector_eci(jd, fr)[0]
    g = float(gmst_rad(jd, fr)[0])
    lst = g + math.radians(lon)
    la = math.radians(lat)
    up = np.array([math.cos(la) * math.cos(lst), math.cos(la) * math.sin(lst), math.sin(la)])
    return math.degrees(math.acos(float(np.clip(np.dot(up, s), -1.0, 1.0))))


def _confidence(alert: Alert) -> str:
    c = alert.attrs.get("confidence")
    if isinstance(c, str) and c in CONF_LETTER:
        return CONF_LETTER[c]
    if isinstance(c, str) and c in CONF_LETTER.values():
        return c
    from detectors.fire.clusters import firms_confidence_class

    return CONF_LETTER[firms_confidence_class(float(alert.score))]


def _num(v: Any) -> str:
    return "" if v is None else repr(float(v))


def fire_row(alert: Alert, satellite: str, instrument: str) -> dict[str, str]:
    """One CSV row (as a dict of column -> text) for one fire alert."""
    if alert.kind != "fire":
        raise AlertError(f"FIRMS rows are for fires, got a {alert.kind} alert {alert.alert_id}")
    acq = alert.acquired.astimezone(timezone.utc)
    n = alert.attrs.get("n_pixels") or (len(alert.pixels) if alert.pixels else None)
    pix_km = math.sqrt(float(alert.area_m2) / float(n)) / 1000.0 if alert.area_m2 and n else None
    day = solar_zenith_deg(alert.lat, alert.lon, acq) < DAY_MAX_SZA_DEG
    rest = {k: v for k, v in alert.attrs.items() if k not in _OWN_ATTRS}
    return {
        "latitude": f"{alert.lat:.7f}", "longitude": f"{alert.lon:.7f}",
        "swir_excess": _num(alert.attrs.get("swir_excess")),
        "scan": "" if pix_km is None else f"{pix_km:.3f}", "track": "" if pix_km is None else f"{pix_km:.3f}",
        "acq_date": acq.strftime("%Y-%m-%d"), "acq_time": acq.strftime("%H%M"),
        "satellite": satellite, "instrument": instrument, "confidence": _confidence(alert), "version": VERSION,
        "frp_proxy": _num(alert.attrs.get("frp_proxy")), "daynight": "D" if day else "N",
        "alert_id": alert.alert_id, "scene": alert.scene, "acquired": acq.isoformat(), "score": repr(float(alert.score)),
        "row": repr(float(alert.row)), "col": repr(float(alert.col)), "area_m2": _num(alert.area_m2),
        "detector": alert.detector,
        "pixels": "" if alert.pixels is None else json.dumps([[int(r), int(c)] for r, c in alert.pixels],
                                                             separators=(",", ":")),
        "attrs": json.dumps(rest, sort_keys=True, separators=(",", ":")) if rest else "",
    }


def write_firms_csv(dest: str | Path | TextIO, alerts: Iterable[Alert], satellite: str = "orbitwatch",
                    instrument: str = "SAR/optical") -> int:
    """Write fire alerts as CSV (header + one row each); returns the number of rows."""
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=COLUMNS, lineterminator="\n")
    w.writeheader()
    n = 0
    for a in alerts:
        w.writerow(fire_row(a, satellite, instrument))
        n += 1
    if isinstance(dest, (str, Path)):
        Path(dest).write_text(buf.getvalue(), encoding="utf-8")
    else:
        dest.write(buf.getvalue())
    return n


def read_firms_csv(src: str | Path | TextIO) -> list[Alert]:
    """Inverse of :func:`write_firms_csv`; AlertError on missing columns or bad values."""
    text = Path(src).read_text(encoding="utf-8") if isinstance(src, (str, Path)) else src.read()
    rows = list(csv.DictReader(io.StringIO(text)))
    out: list[Alert] = []
    for i, r in enumerate(rows):
        try:
            attrs: dict[str, Any] = json.loads(r["attrs"]) if r["attrs"] else {}
            for k in ("swir_excess", "frp_proxy"):
                if r[k]:
                    attrs[k] = float(r[k])
            attrs["confidence"] = {v: k for k, v in CONF_LETTER.items()}[r["confidence"]]
            out.append(Alert(
                alert_id=r["alert_id"], scene=r["scene"], kind="fire", score=float(r["score"]),
                lon=float(r["longitude"]), lat=float(r["latitude"]), row=float(r["row"]), col=float(r["col"]),
                acquired=datetime.fromisoformat(r["acquired"]), detector=r["detector"],
                area_m2=float(r["area_m2"]) if r["area_m2"] else None,
                pixels=[(int(a), int(b)) for a, b in json.loads(r["pixels"])] if r["pixels"] else None,
                attrs=attrs,
            ))
        except AlertError:
            raise
        except (KeyError, ValueError, TypeError) as exc:
            raise AlertError(f"FIRMS CSV row {i + 1}: {exc!r}") from exc
    return out
