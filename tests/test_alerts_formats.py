"""CAP 1.2, FIRMS CSV and GeoJSON encodings: schema order, required elements, exact round trips."""

from __future__ import annotations

import io
import json
import os
import xml.etree.ElementTree as ET
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path

import pytest

from pipelines.alerts.cap import CAP_NS, alert_to_cap, cap_to_alert, validate_cap
from pipelines.alerts.firms import COLUMNS, read_firms_csv, solar_zenith_deg, write_firms_csv
from pipelines.alerts.geojson import read_geojson, write_geojson
from pipelines.alerts.model import Alert, make_alert_id
from pipelines.errors import AlertError

T = datetime(2024, 7, 1, 12, 0, 3, tzinfo=timezone.utc)
Q = f"{{{CAP_NS}}}"


def _fire(i: int = 0, lat: float = 39.5123456789, lon: float = -121.6) -> Alert:
    return Alert(alert_id=make_alert_id("butte", "fire", 10 + i, 20, "fire-rules"), scene="butte", kind="fire",
                 score=0.8123, lon=lon, lat=lat, row=10.25 + i, col=20.5, acquired=T, detector="fire-rules",
                 area_m2=2700.0, pixels=[(10, 20), (11, 20), (10, 21)],
                 attrs={"confidence": "high", "n_pixels": 3.0, "swir_excess": 1.75, "frp_proxy": 4725.0,
                        "mean_confidence": 0.7, "centroid": "intensity-weighted"})


def _vessel() -> Alert:
    return Alert(alert_id=make_alert_id("calais", "lifeboat", 5, 6, "sar-cfar"), scene="calais", kind="lifeboat",
                 score=0.42, lon=1.8512345678, lat=50.96, row=5.0, col=6.0, acquired=T, detector="sar-cfar",
                 length_m=6.2, width_m=2.4, heading_deg=91.5)


def _round7(a: Alert) -> Alert:
    return replace(a, lon=round(a.lon, 7), lat=round(a.lat, 7))


@pytest.mark.parametrize("alert", [_fire(), _vessel()], ids=["fire", "lifeboat"])
def test_cap_valid_and_round_trips(alert: Alert) -> None:
    xml = alert_to_cap(alert, sender="ops@orbitwatch.example", sent=T)
    root = ET.fromstring(xml.encode())
    assert root.tag == Q + "alert"
    for tag in ("identifier", "sender", "sent", "status", "msgType", "scope"):
        assert root.findtext(Q + tag)
    assert root.findtext(Q + "sent") == "2024-07-01T12:00:03-00:00"  # CAP forbids "Z"
    info = root.find(Q + "info")
    for tag in ("category", "event", "urgency", "severity", "certainty"):
        assert info.findtext(Q + tag)
    assert info.findtext(Q + "category") == {"fire": "Fire", "lifeboat": "Rescue"}[alert.kind]
    lat, lon = info.findtext(f"{Q}area/{Q}circle").split()[0].split(",")
    assert float(lat) == pytest.approx(alert.lat, abs=1e-7) and float(lon) == pytest.approx(alert.lon, abs=1e-7)
    assert cap_to_alert(xml) == _round7(alert)


def test_cap_validator_rejects_wrong_order_and_missing() -> None:
    xml = alert_to_cap(_vessel(), sent=T)
    root = validate_cap(xml)
    status, scope = root.find(Q + "status"), root.find(Q + "scope")
    root.remove(status)
    root.insert(list(root).index(scope) + 1, status)  # status after scope: schema violation
    with pytest.raises(AlertError, match="order"):
        validate_cap(ET.tostring(root, encoding="unicode"))
    root = validate_cap(xml)
    root.remove(root.find(Q + "scope"))
    with pytest.raises(AlertError, match="missing"):
        validate_cap(ET.tostring(root, encoding="unicode"))
    with pytest.raises(AlertError):
        validate_cap("<alert/>")
    with pytest.raises(AlertError):
        alert_to_cap(_vessel(), sender="has space")


def test_firms_csv_round_trip_and_columns(tmp_path: Path) -> None:
    fires = [_fire(0), _fire(1, lat=45.0, lon=10.0)]
    path = tmp_path / "fires.csv"
    assert write_firms_csv(path, fires, satellite="L8", instrument="OLI") == 2
    lines = path.read_text().splitlines()
    assert lines[0].split(",") == list(COLUMNS)
    row = dict(zip(COLUMNS, lines[1].split(",")))
    assert row["acq_date"] == "2024-07-01" and row["acq_time"] == "1200" and row["confidence"] == "h"
    assert float(row["scan"]) == pytest.approx(0.030, abs=1e-3)  # sqrt(2700 m2 / 3 px) = 30 m pixels
    # 12:00 UTC is ~04:00 local solar time in California (night), ~12:40 in northern Italy (day).
    assert row["daynight"] == "N" and lines[2].split(",")[COLUMNS.index("daynight")] == "D"
    assert read_firms_csv(path) == [_round7(f) for f in fires]
    buf = io.StringIO()
    write_firms_csv(buf, fires)
    buf.seek(0)
    assert read_firms_csv(buf) == [_round7(f) for f in fires]


def test_firms_rejects_non_fire_and_bad_rows(tmp_path: Path) -> None:
    with pytest.raises(AlertError):
        write_firms_csv(tmp_path / "x.csv", [_vessel()])
    (tmp_path / "bad.csv").write_text(",".join(COLUMNS) + "\n" + ",".join(["x"] * len(COLUMNS)) + "\n")
    with pytest.raises(AlertError):
        read_firms_csv(tmp_path / "bad.csv")


def test_solar_zenith_sanity() -> None:
    # Near the June solstice at local noon on the Tropic of Cancer the sun is almost overhead.
    assert solar_zenith_deg(23.44, 0.0, datetime(2024, 6, 20, 12, 2, tzinfo=timezone.utc)) < 1.0
    assert solar_zenith_deg(0.0, 180.0, datetime(2024, 3, 20, 12, 0, tzinfo=timezone.utc)) > 170.0


def test_geojson_atomic_write_and_round_trip(tmp_path: Path) -> None:
    alerts = [_fire(), _vessel()]
    path = write_geojson(tmp_path / "out" / "alerts.geojson", alerts)
    assert [p.name for p in path.parent.iterdir()] == ["alerts.geojson"]  # no temp file left behind
    back = read_geojson(path)
    assert [a.to_feature() for a in back] == [a.to_feature() for a in alerts]
    doc = json.loads(path.read_text())
    assert doc["type"] == "FeatureCollection" and len(doc["features"]) == 2
    # A failing write leaves the old file intact.
    class Boom(Alert):
        def to_feature(self):  # type: ignore[override]
            raise RuntimeError("boom")
    before = path.read_bytes()
    with pytest.raises(RuntimeError):
        write_geojson(path, [Boom(**{f: getattr(alerts[0], f) for f in Alert.__slots__})])
    assert path.read_bytes() == before and len(os.listdir(path.parent)) == 1
    (tmp_path / "bad.geojson").write_text('{"type": "Nope"}')
    with pytest.raises(AlertError):
        read_geojson(tmp_path / "bad.geojson")
