"""The ground web console's API, its OGC API - Features (read by OWSLib) and its access rules.

Real parts: the app runs under a real uvicorn server on 127.0.0.1 (a free port, in a thread), the
OGC API's client is OWSLib's ``owslib.ogcapi.features.Features``, and when QGIS's Python bindings are
installed (Debian ``python3-qgis``) QGIS's own OAPIF provider loads the layer.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import textwrap
import time
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any, Iterator

import httpx
import pytest
from typer.testing import CliRunner

sys.path.insert(0, str(Path(__file__).parent))
from _web_util import make_alerts, make_console_store, running  # noqa: E402

from pipelines.alerts.model import Alert  # noqa: E402
from pipelines.alerts.thumbnail import read_thumbnail  # noqa: E402
from pipelines.errors import StoreError, WebConfigError  # noqa: E402
from pipelines.ground.cli import ground_app  # noqa: E402
from pipelines.ground.store import AlertStore  # noqa: E402
from pipelines.ground.web import check_bind, create_app  # noqa: E402

TOKEN = "t0ken-for-tests"
N = 60


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[Alert]]:
    path = tmp_path_factory.mktemp("web") / "ground.sqlite"
    return path, make_console_store(path, n=N)


@pytest.fixture(scope="module")
def server(store: tuple[Path, list[Alert]]) -> Iterator[str]:
    """The read-only app (no token)."""
    with running(create_app(store[0], poll_s=0.5)) as url:
        yield url


@pytest.fixture()
def writable(tmp_path: Path) -> Iterator[tuple[str, Path, list[Alert]]]:
    """An app with a token over its own store (the tests change delivery states)."""
    path = tmp_path / "g.sqlite"
    alerts = make_console_store(path, n=6)
    with running(create_app(path, token=TOKEN)) as url:
        yield url, path, alerts


def _get(url: str, **params: Any) -> Any:
    r = httpx.get(url, params=params or None, timeout=30)  # params={} would drop the URL's own query
    r.raise_for_status()
    return r.json()


# --- console API -----------------------------------------------------------------------------------
def test_info_and_markers_with_filters(server: str, store: tuple[Path, list[Alert]]) -> None:
    _, alerts = store
    info = _get(server + "/api/info")
    assert info["alerts"] == N and info["writable"] is False and info["extent"]["interval"][0] == "2024-07-01T00:00:00Z"
    page = _get(server + "/api/alerts")
    assert page["matched"] == N == len(page["points"])
    assert page["points"][0][0] == alerts[-1].alert_id  # newest first
    fires = _get(server + "/api/alerts", kind="fire", min_score=0.5)
    assert {p[1] for p in fires["points"]} == {"fire"}
    assert fires["matched"] == sum(1 for a in alerts if a.kind == "fire" and a.score >= 0.5)
    west = _get(server + "/api/alerts", bbox="-40,25,0,60", start="2024-07-01T02:00:00Z", end="2024-07-01T06:00:00Z")
    exp = [a for a in alerts
           if a.lon <= 0 and 2 * 3600 <= (a.acquired - alerts[0].acquired).total_seconds() <= 6 * 3600]
    assert sorted(p[0] for p in west["points"]) == sorted(a.alert_id for a in exp)
    assert _get(server + "/api/alerts", kind="")["matched"] == 0  # every kind unticked: nothing
    r = httpx.get(server + "/api/alerts", params={"bbox": "1,2,3"}, timeout=10)
    assert r.status_code == 400 and "bbox" in r.json()["detail"]
    r = httpx.get(server + "/api/alerts", params={"start": "yesterday"}, timeout=10)
    assert r.status_code == 400 and "RFC 3339" in r.json()["detail"]


def test_new_alerts_appear_through_since_polling(tmp_path: Path) -> None:
    path = tmp_path / "g.sqlite"
    with AlertStore(path) as st:
        st.add_alerts(make_alerts(5, seed=1))
    with running(create_app(path)) as url:
        cursor = _get(url + "/api/alerts")["cursor"]
        assert _get(url + "/api/alerts", since=cursor)["points"] == []
        new = make_alerts(4, seed=2)
        with AlertStore(path) as st:  # another connection, as the receiver process would be
            st.add_alerts(new)
        r = _get(url + "/api/alerts", since=cursor, kind="vessel,lifeboat")
        assert [p[0] for p in r["points"]] == [a.alert_id for a in new if a.kind != "fire"]
        assert _get(url + "/api/alerts", since=r["cursor"])["points"] == []


def test_alert_detail_geojson_cap_thumbnail_and_deliveries(server: str, store: tuple[Path, list[Alert]]) -> None:
    _, alerts = store
    a = alerts[1]  # a lifeboat: "ops" dead-lettered it, "sar" has it pending; it has a thumbnail
    d = _get(f"{server}/api/alerts/{a.alert_id}")
    assert d["feature"] == a.to_feature() and d["thumbnail"] is True
    assert {x["subscriber"]: x["state"] for x in d["deliveries"]} == {"ops": "dead", "sar": "pending"}
    assert _get(f"{server}/{d['links']['geojson']}") == a.to_feature()
    cap = httpx.get(f"{server}/{d['links']['cap']}", timeout=10)
    root = ET.fromstring(cap.content)
    ns = {"c": "urn:oasis:names:tc:emergency:cap:1.2"}
    assert root.find("c:identifier", ns).text == f"orbitwatch-{a.alert_id}"  # type: ignore[union-attr]
    png = httpx.get(f"{server}/{d['links']['thumbnail']}", timeout=10)
    assert png.headers["content-type"] == "image/png" and png.content[:8] == b"\x89PNG\r\n\x1a\n"
    with AlertStore(store[0]) as st:
        side = read_thumbnail(st.thumbnail(a.alert_id) or b"").codes.shape[0]
    assert int.from_bytes(png.content[16:20], "big") == side  # IHDR width: the chip at native size
    assert httpx.get(f"{server}/api/alerts/{alerts[-1].alert_id}/thumbnail.png", timeout=10).status_code == 404
    assert httpx.get(f"{server}/api/alerts/nope", timeout=10).status_code == 404


def test_subscribers_hide_url_secrets(server: str) -> None:
    subs = _get(server + "/api/subscribers")["subscribers"]
    ops = next(s for s in subs if s["name"] == "ops")
    assert ops["url"] == "https://ops.example/hook" and (ops["delivered"], ops["dead"]) == (1, 1)
    assert "s3cret" not in json.dumps(subs) and "secret" not in ops


def test_console_page_and_offline_assets(server: str) -> None:
    r = httpx.get(server + "/", timeout=10)
    assert r.status_code == 200 and "static/console.js" in r.text
    assert "default-src 'self'" in r.headers["content-security-policy"]
    for asset in ("static/vendor/leaflet/leaflet.js", "static/vendor/leaflet/leaflet.css", "static/console.js",
                  "static/vendor/natural-earth/land-110m.geojson"):
        assert httpx.get(f"{server}/{asset}", timeout=10).status_code == 200, asset
    assert "http" not in r.text.replace("https://leafletjs.com", "")  # nothing fetched from the internet


# --- access ----------------------------------------------------------------------------------------
def test_read_only_without_token(server: str, store: tuple[Path, list[Alert]]) -> None:
    _, alerts = store
    for path in (f"/api/alerts/{alerts[1].alert_id}/deliveries/ops/requeue", "/api/subscribers/ops/requeue"):
        r = httpx.post(server + path, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10)
        assert r.status_code == 403 and "read-only" in r.json()["detail"] and "--token" in r.json()["detail"]
    with AlertStore(store[0]) as st:
        assert st.delivery(alerts[1].alert_id, "ops")["state"] == "dead"


def test_requeue_needs_the_token(writable: tuple[str, Path, list[Alert]]) -> None:
    url, path, alerts = writable
    target = f"{url}/api/alerts/{alerts[1].alert_id}/deliveries/ops/requeue"
    assert _get(url + "/api/info")["writable"] is True
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": TOKEN}):
        r = httpx.post(target, headers=headers, timeout=10)
        assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"
    ok = {"Authorization": f"Bearer {TOKEN}"}
    r = httpx.post(target, headers=ok, timeout=10)
    assert r.status_code == 200 and r.json() == {"requeued": 1}
    with AlertStore(path) as st:
        assert st.delivery(alerts[1].alert_id, "ops")["state"] == "pending"
    assert httpx.post(target, headers=ok, timeout=10).status_code == 409  # not dead any more
    assert httpx.post(f"{url}/api/subscribers/ops/requeue", headers=ok, timeout=10).json() == {"requeued": 0}
    assert httpx.post(f"{url}/api/subscribers/nobody/requeue", headers=ok, timeout=10).status_code == 404


def test_bind_beyond_localhost_needs_a_token(tmp_path: Path) -> None:
    for host in ("127.0.0.1", "localhost", "::1", "[::1]", "127.0.0.2"):
        check_bind(host, None)
    for host in ("0.0.0.0", "::", "192.168.1.10", "ground.example"):
        with pytest.raises(WebConfigError, match="without a token"):
            check_bind(host, None)
        check_bind(host, TOKEN)
    path = tmp_path / "g.sqlite"
    AlertStore(path).close()
    res = CliRunner().invoke(ground_app, ["web", "--store", str(path), "--host", "0.0.0.0"],
                             env={"ORBITWATCH_WEB_TOKEN": ""})
    assert res.exit_code == 2 and "refusing to listen on '0.0.0.0' without a token" in res.output
    res = CliRunner().invoke(ground_app, ["web", "--store", str(tmp_path / "typo.sqlite")])
    assert res.exit_code == 2 and "no such store" in res.output
    with pytest.raises(StoreError):
        create_app(tmp_path / "typo.sqlite")


# --- OGC API - Features through OWSLib -----------------------------------------------------------
def test_ogc_landing_conformance_collection(server: str, store: tuple[Path, list[Alert]]) -> None:
    from owslib.ogcapi.features import Features

    _, alerts = store
    api = Features(server + "/ogc/")
    rels = {link["rel"] for link in api.links}
    assert {"self", "service-desc", "conformance", "data"} <= rels
    conf = api.conformance()["conformsTo"]
    assert "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/core" in conf
    assert "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/geojson" in conf
    assert api.feature_collections() == ["alerts"]
    col = api.collection("alerts")
    w, s, e, n = col["extent"]["spatial"]["bbox"][0]
    assert w == min(a.to_feature()["geometry"]["coordinates"][0] for a in alerts) and s < n
    assert col["extent"]["temporal"]["interval"][0][0] == "2024-07-01T00:00:00Z"
    assert "paths" in api.api()  # the service-desc link leads to the OpenAPI document


def test_ogc_items_bbox_datetime_kind_and_paging(server: str, store: tuple[Path, list[Alert]]) -> None:
    from owslib.ogcapi.features import Features

    _, alerts = store
    api = Features(server + "/ogc/")
    everything = api.collection_items("alerts", limit=1000)
    assert everything["numberMatched"] == everything["numberReturned"] == N
    box = [-20.0, 30.0, 10.0, 55.0]
    res = api.collection_items("alerts", bbox=box, datetime_="2024-07-01T03:00:00Z/..", kind="vessel,fire", limit=5)
    exp = [a for a in alerts if box[0] <= a.lon <= box[2] and box[1] <= a.lat <= box[3] and a.kind != "lifeboat"
           and a.acquired >= alerts[18].acquired]
    assert res["numberMatched"] == len(exp) and res["numberReturned"] == min(5, len(exp))
    assert all(f["properties"]["kind"] != "lifeboat" for f in res["features"])
    # Follow the next links to the end: every match once, in order, newest first.
    ids: list[str] = []
    page: dict[str, Any] | None = api.collection_items("alerts", limit=7, offset=0)
    while page is not None:
        ids += [f["id"] for f in page["features"]]
        nxt = next((link["href"] for link in page["links"] if link["rel"] == "next"), None)
        page = _get(nxt) if nxt else None
    assert ids == [a.alert_id for a in reversed(alerts)]
    one = api.collection_item("alerts", alerts[3].alert_id)
    assert one["id"] == alerts[3].alert_id and one["geometry"] == alerts[3].to_feature()["geometry"]
    instant = api.collection_items("alerts", datetime_=alerts[5].to_feature()["properties"]["acquired"])
    assert [f["id"] for f in instant["features"]] == [alerts[5].alert_id]


def test_ogc_errors(server: str) -> None:
    base = server + "/ogc/collections"
    for params in ({"bbox": "0,0,1"}, {"limit": "x"}, {"offset": "-1"}, {"datetime": "2024-13-01T00:00:00Z"},
                   {"kind": "ship"}, {"crs": "EPSG:4326"}, {"unknown": "1"}, {"f": "html"}):
        r = httpx.get(base + "/alerts/items", params=params, timeout=10)
        assert r.status_code == 400 and r.json()["code"] == "InvalidParameterValue", params
    assert httpx.get(base + "/boats/items", timeout=10).status_code == 404
    r = httpx.get(base + "/alerts/items/nope", timeout=10)
    assert r.status_code == 404 and r.json()["code"] == "NotFound"
    r = httpx.get(base + "/alerts/items", params={"limit": "50000"}, timeout=10)
    assert r.status_code == 200 and r.headers["content-type"] == "application/geo+json"  # limit capped at 10,000


QGIS_SCRIPT = textwrap.dedent("""
    import json, os, sys
    os.environ["QT_QPA_PLATFORM"] = "offscreen"
    from qgis.core import QgsApplication, QgsFeatureRequest, QgsRectangle, QgsVectorLayer
    app = QgsApplication([], False)
    app.initQgis()
    layer = QgsVectorLayer("url='" + sys.argv[1] + "' typename='alerts'", "alerts", "OAPIF")
    out = {"valid": layer.isValid(), "count": layer.featureCount(),
           "fields": [f.name() for f in layer.fields()],
           "features": len(list(layer.getFeatures())),
           "in_box": len(list(layer.getFeatures(QgsFeatureRequest().setFilterRect(QgsRectangle(-20, 30, 10, 55)))))}
    print("RESULT " + json.dumps(out))
    app.exitQgis()
""")


def _qgis_python() -> str | None:
    py = shutil.which("python3", path="/usr/bin")
    if py is None:
        return None
    ok = subprocess.run([py, "-c", "import qgis.core"], capture_output=True, timeout=60).returncode == 0
    return py if ok else None


def test_qgis_loads_the_layer(server: str, store: tuple[Path, list[Alert]]) -> None:
    """QGIS's OGC API - Features connection (the OAPIF provider) loads the collection and filters by bbox."""
    py = _qgis_python()
    if py is None:
        pytest.skip("QGIS Python bindings not installed (Debian: apt-get install python3-qgis qgis-providers)")
    _, alerts = store
    t0 = time.monotonic()
    out = subprocess.run([py, "-c", QGIS_SCRIPT, server + "/ogc"], capture_output=True, text=True, timeout=300)
    line = next((x for x in out.stdout.splitlines() if x.startswith("RESULT ")), None)
    assert line is not None, out.stdout + out.stderr
    res = json.loads(line[len("RESULT "):])
    assert res["valid"] and res["count"] == res["features"] == N, res
    assert {"alert_id", "kind", "score", "acquired"} <= set(res["fields"])
    assert res["in_box"] == sum(1 for a in alerts if -20 <= a.lon <= 10 and 30 <= a.lat <= 55)
    assert time.monotonic() - t0 < 300
