"""GeoJSON FeatureCollections of alerts, written atomically.

Why atomic: the ground and the CLI watch output folders; a reader must never see half a file, so
we write a temporary file in the same directory, fsync it and ``os.replace`` it into place.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from pipelines.alerts.model import Alert, feature_collection
from pipelines.errors import AlertError


def alerts_to_geojson(alerts: Iterable[Alert]) -> str:
    """The FeatureCollection document as text (compact, UTF-8 safe)."""
    return json.dumps(feature_collection(list(alerts)), ensure_ascii=False, separators=(",", ":"))


def geojson_to_alerts(doc: str | bytes | dict[str, Any]) -> list[Alert]:
    """Parse a FeatureCollection (or a single Feature); AlertError on anything malformed."""
    try:
        data = json.loads(doc) if isinstance(doc, (str, bytes)) else doc
    except json.JSONDecodeError as exc:
        raise AlertError(f"not JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise AlertError("GeoJSON document must be an object")
    if data.get("type") == "Feature":
        return [Alert.from_feature(data)]
    if data.get("type") != "FeatureCollection" or not isinstance(data.get("features"), list):
        raise AlertError("GeoJSON document is neither a FeatureCollection nor a Feature")
    return [Alert.from_feature(f) for f in data["features"]]


def write_geojson(path: str | Path, alerts: Iterable[Alert]) -> Path:
    """Atomically (temp file + fsync + os.replace) write alerts as a FeatureCollection."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    text = alerts_to_geojson(alerts)
    fd, tmp = tempfile.mkstemp(prefix=f".{p.name}.", suffix=".tmp", dir=p.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, p)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    return p


def read_geojson(path: str | Path) -> list[Alert]:
    """Alerts from a GeoJSON file written by :func:`write_geojson` (or any conforming producer)."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise AlertError(f"cannot read: {exc}", p) from exc
    try:
        return geojson_to_alerts(text)
    except AlertError as exc:
        raise AlertError(exc.reason, p) from exc
