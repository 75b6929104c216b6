"""Alerts as OASIS Common Alerting Protocol 1.2 messages (CAP-V1.2, OASIS Standard, July 2010).

Why CAP: it is what emergency services' systems already ingest (maritime rescue coordination
centres, fire agencies, IPAWS, Google Public Alerts). Every alert field also travels as a CAP
``parameter`` so that ``cap_to_alert`` restores the alert exactly; only the position is written to
1e-7 deg (the GeoJSON contract's precision), in the CAP ``circle`` "lat,lon radius_km".
"""

from __future__ import annotations

import json
import math
import re
import xml.etree.ElementTree as ET
from datetime import datetime, timezone
from typing import Any
from urllib.parse import quote

from pipelines.alerts.model import Alert
from pipelines.errors import AlertError

CAP_NS = "urn:oasis:names:tc:emergency:cap:1.2"
_Q = f"{{{CAP_NS}}}"

#: Element order of the CAP 1.2 XML schema's sequences (schema section 3.4), required ones marked.
ALERT_ORDER = ("identifier", "sender", "sent", "status", "msgType", "source", "scope", "restriction",
               "addresses", "code", "note", "references", "incidents", "info")
ALERT_REQUIRED = ("identifier", "sender", "sent", "status", "msgType", "scope")
INFO_ORDER = ("language", "category", "event", "responseType", "urgency", "severity", "certainty", "audience",
              "eventCode", "effective", "onset", "expires", "senderName", "headline", "description",
              "instruction", "web", "contact", "parameter", "resource", "area")
INFO_REQUIRED = ("category", "event", "urgency", "severity", "certainty")
AREA_ORDER = ("areaDesc", "polygon", "circle", "geocode", "altitude", "ceiling")
STATUSES = ("Actual", "Exercise", "System", "Test", "Draft")

#: Per kind: CAP category, event, urgency, severity, and the instruction. Lifeboats mean people
#: in distress (SAR convention: Rescue/Immediate/Severe); vessels are maritime-domain awareness
#: (Transport/Future/Minor); fires follow the Fire category.
KIND_CAP: dict[str, tuple[str, str, str, str]] = {
    "vessel": ("Transport", "Vessel detected", "Future", "Minor"),
    "lifeboat": ("Rescue", "Possible lifeboat or liferaft detected", "Immediate", "Severe"),
    "fire": ("Fire", "Active fire detected", "Immediate", "Moderate"),
}
_FLOAT_PARAMS = ("score", "row", "col", "length_m", "width_m", "heading_deg", "area_m2")


def cap_time(dt: datetime) -> str:
    r"""CAP 1.2 dateTime, ``YYYY-MM-DDThh:mm:ss-00:00``, always in UTC.

    Why this exact form: the OASIS schema restricts every dateTime (sent, effective, onset,
    expires) to the pattern ``\d\d\d\d-\d\d-\d\dT\d\d:\d\d:\d\d[-,+]\d\d:\d\d``: no fractional
    seconds (they are dropped: the time is truncated to the second) and no ``Z``. The schema
    accepts ``+00:00`` and ``-00:00`` alike; CAP 1.2 (sec. 3.2.1 ``sent``, sec. 3.3.2) says UTC MUST
    be written ``-00:00``, so that is the one written. A naive datetime is UTC, as in the Alert model.
    """
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    s = dt.astimezone(timezone.utc).replace(microsecond=0).isoformat(timespec="seconds")
    return s.replace("+00:00", "-00:00")


def cap_identifier(alert_id: str) -> str:
    """The CAP ``identifier`` of an alert: ``orbitwatch-`` plus the alert id, percent-encoded.

    CAP 1.2 sec. 3.2.1 forbids spaces, commas and the restricted characters ``<`` and ``&`` in
    identifiers; percent-encoding everything but ``[A-Za-z0-9_.~-]`` removes them and stays
    one-to-one, so distinct alerts keep distinct identifiers (our 16-hex ids pass unchanged).
    """
    return "orbitwatch-" + quote(alert_id, safe="")


#: Characters XML 1.0 cannot carry at all (not even as character references): text holding one
#: would make the document not well-formed, which no consumer can parse.
_XML_ILLEGAL = re.compile(r"[^\t\n\r\x20-\uD7FF\uE000-\uFFFD\U00010000-\U0010FFFF]")


def _parse_time(s: str) -> datetime:
    return datetime.fromisoformat(s.strip().replace("-00:00", "+00:00")).astimezone(timezone.utc)


def _radius_km(alert: Alert, min_radius_km: float) -> float:
    if alert.kind == "fire" and alert.area_m2:
        return max(min_radius_km, math.sqrt(float(alert.area_m2) / math.pi) / 1000.0)
    if alert.length_m:
        return max(min_radius_km, float(alert.length_m) / 2000.0)
    return min_radius_km


def alert_to_cap(alert: Alert, sender: str = "orbitwatch@example.org", status: str = "Actual",
                 sent: datetime | None = None, min_radius_km: float = 0.5) -> str:
    """One CAP 1.2 ``<alert>`` document (UTF-8 XML text).

    ``min_radius_km``: the circle's smallest radius, i.e. the positional uncertainty announced
    (0.5 km: geolocation error of a SAR/optical smallsat product plus vessel drift in minutes).
    """
    if status not in STATUSES:
        raise AlertError(f"CAP status must be one of {STATUSES}, got {status!r}")
    if not sender or re.search(r"[\s,<&]", sender):
        raise AlertError(f"CAP sender must be non-empty without spaces, commas, '<' or '&': {sender!r}")
    category, event, urgency, severity = KIND_CAP[alert.kind]
    ET.register_namespace("", CAP_NS)
    root = ET.Element(_Q + "alert")

    def sub(parent: ET.Element, tag: str, text: str) -> ET.Element:
        bad = _XML_ILLEGAL.search(text)
        if bad:
            raise AlertError(f"CAP {tag} cannot carry {bad.group()!r}, a character XML 1.0 forbids: {text[:80]!r}")
        el = ET.SubElement(parent, _Q + tag)
        el.text = text
        return el

    sub(root, "identifier", cap_identifier(alert.alert_id))
    sub(root, "sender", sender)
    sub(root, "sent", cap_time(sent or datetime.now(timezone.utc)))
    sub(root, "status", status)
    sub(root, "msgType", "Alert")
    sub(root, "scope", "Public")
    info = ET.SubElement(root, _Q + "info")
    sub(info, "language", "en-US")
    sub(info, "category", category)
    sub(info, "event", event)
    sub(info, "urgency", urgency)
    sub(info, "severity", severity)
    # CAP certainty: "Likely" is p > ~50%, "Possible" p <= ~50% (CAP 1.2 sec. 3.2.2).
    sub(info, "certainty", "Likely" if alert.score > 0.5 else "Possible")
    sub(info, "effective", cap_time(alert.acquired))
    sub(info, "senderName", "orbitwatch satellite edge analytics")
    sub(info, "headline", f"{event} (score {alert.score:.2f})")
    desc = f"{event} by {alert.detector} in scene {alert.scene}, acquired {cap_time(alert.acquired)}."
    if alert.length_m:
        desc += f" Estimated length {float(alert.length_m):.1f} m."
    if alert.area_m2:
        desc += f" Burning area about {float(alert.area_m2):.0f} m2."
    sub(info, "description", desc)
    params: dict[str, Any] = {"alert_id": alert.alert_id, "scene": alert.scene, "kind": alert.kind,
                              "detector": alert.detector, "acquired": alert.acquired.isoformat()}
    for name in _FLOAT_PARAMS:
        v = getattr(alert, name)
        if v is not None:
            params[name] = repr(float(v))
    if alert.pixels is not None:
        params["pixels"] = json.dumps([[int(r), int(c)] for r, c in alert.pixels], separators=(",", ":"))
    if alert.attrs:
        params["attrs"] = json.dumps(alert.attrs, sort_keys=True, separators=(",", ":"))
    for k, v in params.items():
        p = ET.SubElement(info, _Q + "parameter")
        sub(p, "valueName", f"orbitwatch:{k}")
        sub(p, "value", str(v))
    area = ET.SubElement(info, _Q + "area")
    sub(area, "areaDesc", f"Around {alert.lat:.4f}, {alert.lon:.4f} (WGS84)")
    sub(area, "circle", f"{alert.lat:.7f},{alert.lon:.7f} {_radius_km(alert, min_radius_km):.3f}")
    xml = ET.tostring(root, encoding="unicode")
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + xml


def _check_order(el: ET.Element, order: tuple[str, ...], required: tuple[str, ...], where: str) -> None:
    tags = []
    for child in el:
        if not child.tag.startswith(_Q):
            raise AlertError(f"CAP {where}: element {child.tag} is not in the CAP 1.2 namespace")
        tags.append(child.tag[len(_Q):])
    pos = [order.index(t) if t in order else -1 for t in tags]
    if -1 in pos:
        raise AlertError(f"CAP {where}: unknown element {tags[pos.index(-1)]!r}")
    if pos != sorted(pos):
        raise AlertError(f"CAP {where}: elements out of schema order: {tags}")
    missing = [t for t in required if t not in tags]
    if missing:
        raise AlertError(f"CAP {where}: missing required {missing}")


def validate_cap(xml: str) -> ET.Element:
    """Check namespace, required elements and the schema's element order; returns the root.

    A light run-time check (no lxml at run time); the tests hold :func:`alert_to_cap` to the
    OASIS CAP-v1.2.xsd itself (tests/test_alerts_cap_schema.py).
    """
    try:
        root = ET.fromstring(xml.encode("utf-8") if isinstance(xml, str) else xml)
    except ET.ParseError as exc:
        raise AlertError(f"CAP is not well-formed XML: {exc}") from exc
    if root.tag != _Q + "alert":
        raise AlertError(f"CAP root must be {{{CAP_NS}}}alert, got {root.tag}")
    _check_order(root, ALERT_ORDER, ALERT_REQUIRED, "alert")
    if root.findtext(_Q + "status") not in STATUSES:
        raise AlertError(f"CAP status {root.findtext(_Q + 'status')!r} not allowed")
    for info in root.findall(_Q + "info"):
        _check_order(info, INFO_ORDER, INFO_REQUIRED, "info")
        for area in info.findall(_Q + "area"):
            _check_order(area, AREA_ORDER, ("areaDesc",), "area")
        for p in info.findall(_Q + "parameter"):
            _check_order(p, ("valueName", "value"), ("valueName", "value"), "parameter")
    return root


def cap_to_alert(xml: str) -> Alert:
    """Inverse of :func:`alert_to_cap` (validates first); AlertError on anything malformed."""
    root = validate_cap(xml)
    info = root.find(_Q + "info")
    if info is None:
        raise AlertError("CAP alert has no info block")
    params = {p.findtext(_Q + "valueName", ""): p.findtext(_Q + "value", "") for p in info.findall(_Q + "parameter")}
    params = {k.removeprefix("orbitwatch:"): v for k, v in params.items() if k.startswith("orbitwatch:")}
    circle = info.findtext(f"{_Q}area/{_Q}circle")
    try:
        if circle is None:
            raise AlertError("CAP area has no circle")
        latlon, _radius = circle.split()
        lat, lon = (float(x) for x in latlon.split(","))
        floats = {k: float(params[k]) for k in _FLOAT_PARAMS if k in params}
        return Alert(
            alert_id=params["alert_id"], scene=params["scene"], kind=params["kind"],  # type: ignore[arg-type]
            score=floats["score"], lon=lon, lat=lat, row=floats["row"], col=floats["col"],
            acquired=datetime.fromisoformat(params["acquired"]), detector=params["detector"],
            length_m=floats.get("length_m"), width_m=floats.get("width_m"), heading_deg=floats.get("heading_deg"),
            area_m2=floats.get("area_m2"),
            pixels=None if "pixels" not in params else [(int(r), int(c)) for r, c in json.loads(params["pixels"])],
            attrs=json.loads(params["attrs"]) if "attrs" in params else {},
        )
    except AlertError:
        raise
    except (KeyError, ValueError, TypeError) as exc:
        raise AlertError(f"CAP message lacks orbitwatch parameters or has bad values: {exc!r}") from exc
