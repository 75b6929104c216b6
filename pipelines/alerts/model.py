"""The one typed Alert model. Every encoding (GeoJSON, packets, CAP, FIRMS CSV) starts here."""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Literal

from pipelines.errors import AlertError

Kind = Literal["vessel", "lifeboat", "fire"]
KINDS: tuple[str, ...] = ("vessel", "lifeboat", "fire")


def make_alert_id(scene: str, kind: str, row: float, col: float, detector: str) -> str:
    """Stable, unique id: the same scene, kind, place and detector always give the same id.

    16 hex characters (8 bytes) so that it fits a compact space packet whole. Positions are
    rounded to whole pixels so that float noise between runs does not change the id.
    """
    key = f"{scene}|{kind}|{int(round(row))}|{int(round(col))}|{detector}".encode()
    return hashlib.blake2b(key, digest_size=8).hexdigest()


def _utc(dt: datetime) -> datetime:
    if dt.tzinfo is None:
        return dt.replace(tzinfo=timezone.utc)
    return dt.astimezone(timezone.utc)


def iso_utc(dt: datetime) -> str:
    """ISO 8601 with a ``Z`` suffix, microseconds kept only when present."""
    return _utc(dt).isoformat().replace("+00:00", "Z")


@dataclass(slots=True)
class Alert:
    """One thing worth telling the ground about: a vessel, a lifeboat or a fire cluster."""

    alert_id: str
    scene: str
    kind: Kind
    score: float
    lon: float
    lat: float
    row: float
    col: float
    acquired: datetime
    detector: str
    length_m: float | None = None
    width_m: float | None = None
    heading_deg: float | None = None
    pixels: list[tuple[int, int]] | None = None
    area_m2: float | None = None
    attrs: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise AlertError(f"alert kind must be one of {KINDS}, got {self.kind!r}")
        if not (0.0 <= float(self.score) <= 1.0) or math.isnan(float(self.score)):
            raise AlertError(f"alert score must be in [0, 1], got {self.score!r}")
        if not (-180.0 <= self.lon <= 180.0 and -90.0 <= self.lat <= 90.0):
            raise AlertError(f"alert position out of range: lon={self.lon}, lat={self.lat}")
        self.acquired = _utc(self.acquired)

    # --- GeoJSON (the output contract) ---------------------------------------------------
    def to_feature(self) -> dict[str, Any]:
        """GeoJSON Feature: Point in WGS84 lon/lat plus the contract's properties."""
        props: dict[str, Any] = {
            "alert_id": self.alert_id,
            "scene": self.scene,
            "kind": self.kind,
            "score": round(float(self.score), 4),
            "row": float(self.row),
            "col": float(self.col),
            "detector": self.detector,
            "acquired": iso_utc(self.acquired),
        }
        if self.kind in ("vessel", "lifeboat"):
            props["length_m"] = None if self.length_m is None else round(float(self.length_m), 2)
            if self.width_m is not None:
                props["width_m"] = round(float(self.width_m), 2)
            if self.heading_deg is not None:
                props["heading_deg"] = round(float(self.heading_deg), 1)
        if self.kind == "fire":
            props["pixels"] = [[int(r), int(c)] for r, c in (self.pixels or [])]
            props["area_m2"] = None if self.area_m2 is None else round(float(self.area_m2), 1)
        for k, v in self.attrs.items():
            props.setdefault(k, v)
        return {
            "type": "Feature",
            "id": self.alert_id,
            "geometry": {"type": "Point", "coordinates": [round(self.lon, 7), round(self.lat, 7)]},
            "properties": props,
        }

    @classmethod
    def from_feature(cls, feature: dict[str, Any]) -> "Alert":
        """Inverse of :meth:`to_feature`; raises AlertError on anything malformed."""
        try:
            props = dict(feature["properties"])
            lon, lat = feature["geometry"]["coordinates"][:2]
            known = {"alert_id", "scene", "kind", "score", "row", "col", "detector", "acquired",
                     "length_m", "width_m", "heading_deg", "pixels", "area_m2"}
            pixels = props.get("pixels")
            return cls(
                alert_id=str(props["alert_id"]),
                scene=str(props["scene"]),
                kind=props["kind"],
                score=float(props["score"]),
                lon=float(lon),
                lat=float(lat),
                row=float(props["row"]),
                col=float(props["col"]),
                acquired=datetime.fromisoformat(str(props["acquired"]).replace("Z", "+00:00")),
                detector=str(props["detector"]),
                length_m=props.get("length_m"),
                width_m=props.get("width_m"),
                heading_deg=props.get("heading_deg"),
                pixels=None if pixels is None else [(int(r), int(c)) for r, c in pixels],
                area_m2=props.get("area_m2"),
                attrs={k: v for k, v in props.items() if k not in known},
            )
        except AlertError:
            raise
        except (KeyError, TypeError, ValueError, IndexError) as exc:
            raise AlertError(f"malformed alert feature: {exc!r}") from exc


def feature_collection(alerts: list[Alert]) -> dict[str, Any]:
    """The CLI's output document."""
    return {"type": "FeatureCollection", "features": [a.to_feature() for a in alerts]}
