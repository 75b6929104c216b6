"""The store's alert index (R*Tree over position, time, score, kind): exact answers, paging, migration.

Every query is checked against a brute-force filter written independently (plain comparisons on
the features clients see), over random filters that include antimeridian boxes, sub-second time
bounds, kind subsets and score minimums.
"""

from __future__ import annotations

import json
import random
import sqlite3
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from pipelines.alerts.model import KINDS, Alert, make_alert_id
from pipelines.alerts.packets import alerts_to_packets, encode_thumbnail_segments
from pipelines.errors import AlertQueryError, StoreError
from pipelines.ground.receiver import Receiver
from pipelines.ground.store import SCHEMA_VERSION, AlertFilter, AlertStore

T0 = datetime(2024, 1, 1, tzinfo=timezone.utc)


def _alerts(n: int, seed: int = 3) -> list[Alert]:
    rnd = random.Random(seed)
    out = []
    for i in range(n):
        k = KINDS[i % 3]
        secs = rnd.randint(0, 86400 * 30) + rnd.choice([0, 0, 0.25, 0.000001])
        out.append(Alert(alert_id=make_alert_id("s", k, i, 0, "d"), scene="s", kind=k,  # type: ignore[arg-type]
                         score=round(rnd.random(), rnd.choice([2, 4])),
                         lon=round(rnd.uniform(-180, 180), rnd.choice([1, 3, 9])),
                         lat=round(rnd.uniform(-80, 80), rnd.choice([1, 3, 9])), row=float(i), col=0.0,
                         acquired=T0 + timedelta(seconds=secs), detector="d"))
    if n >= 7:  # points on the edges a query may use: the antimeridian, whole-degree lines, equal times
        out[0].lon, out[1].lon, out[2].lon, out[3].lon = 180.0, -180.0, 10.1, 10.0
        out[4].acquired = out[5].acquired = out[6].acquired
    return out


_SEEN: dict[int, list[tuple[Alert, float, float, float]]] = {}


def _client_view(alerts: list[Alert]) -> list[tuple[Alert, float, float, float]]:
    """(alert, lon, lat, score) as the GeoJSON features give them (computed once per list)."""
    if id(alerts) not in _SEEN:
        rows = []
        for a in alerts:
            f = a.to_feature()
            rows.append((a, *f["geometry"]["coordinates"], f["properties"]["score"]))
        _SEEN[id(alerts)] = rows
    return _SEEN[id(alerts)]


@pytest.fixture(scope="module")
def filled(tmp_path_factory: pytest.TempPathFactory) -> tuple[AlertStore, list[Alert]]:
    alerts = _alerts(2500)
    st = AlertStore(tmp_path_factory.mktemp("idx") / "g.sqlite")
    for i in range(0, len(alerts), 700):
        st.add_alerts(alerts[i:i + 700])
    yield st, alerts
    st.close()


def _expected(alerts: list[Alert], f: AlertFilter) -> list[Alert]:
    """Brute force on the features (what a client sees), newest first."""
    out = []
    for a, lon, lat, score in _client_view(alerts):
        if f.kinds is not None and a.kind not in f.kinds:
            continue
        if f.min_score is not None and score < f.min_score:
            continue
        if f.start is not None and a.acquired < f.start:
            continue
        if f.end is not None and a.acquired > f.end:
            continue
        if f.bbox is not None:
            w, s, e, n = f.bbox
            if not s <= lat <= n:
                continue
            if (w <= e and not w <= lon <= e) or (w > e and not (lon >= w or lon <= e)):
                continue
        out.append(a)
    return sorted(out, key=lambda a: a.acquired, reverse=True)


def _random_filter(rnd: random.Random, alerts: list[Alert]) -> AlertFilter:
    bbox = None
    r = rnd.random()
    if r < 0.5:
        s, n = sorted([round(rnd.uniform(-90, 90), 2), round(rnd.uniform(-90, 90), 2)])
        bbox = (round(rnd.uniform(-180, 180), rnd.choice([0, 1, 4])), s, round(rnd.uniform(-180, 180), 1), n)
    elif r < 0.6:
        a = rnd.choice(alerts)
        bbox = (a.lon, a.lat, a.lon, a.lat)  # a box that is one alert's exact position
    elif r < 0.7:
        bbox = (170.0, -90.0, -170.0, 90.0)  # across the antimeridian
    ta, tb = sorted([rnd.choice(alerts).acquired, rnd.choice(alerts).acquired])
    if rnd.random() < 0.3:
        ta += timedelta(microseconds=rnd.choice([1, 250000]))
    start = None if rnd.random() < 0.3 else ta
    end = None if rnd.random() < 0.3 else max(tb, start or tb)
    kinds = rnd.choice([None, ("vessel",), ("vessel", "fire"), ("lifeboat", "fire"), (), KINDS])
    score = rnd.choice([None, 0.5, round(rnd.random(), 4), 0.33333])
    return AlertFilter(bbox=bbox, start=start, end=end, kinds=kinds, min_score=score)


def test_queries_are_exact_and_newest_first(filled: tuple[AlertStore, list[Alert]]) -> None:
    st, alerts = filled
    rnd = random.Random(7)
    for i in range(250):
        f = _random_filter(rnd, alerts)
        exp = _expected(alerts, f)
        offset = rnd.choice([0, 0, 7])
        page = st.query(f, limit=40, offset=offset)
        assert page.matched == len(exp), f
        got = page.alerts
        assert [a.acquired for a in got] == [a.acquired for a in exp[offset:offset + 40]], f
        assert {a.alert_id for a in got} <= {a.alert_id for a in exp}
        assert len({a.alert_id for a in got}) == len(got)
        # The markers come from the index alone and agree with the features.
        pts = st.query_points(f, limit=40).points
        if offset == 0:
            assert [p[0] for p in pts] == [a.alert_id for a in got]
            for p, a in zip(pts, got, strict=True):
                ft = a.to_feature()
                assert (p[1], p[2], [p[3], p[4]]) == (a.kind, ft["properties"]["score"], ft["geometry"]["coordinates"])
                assert p[5] == pytest.approx(a.acquired.timestamp(), abs=1e-6)
        # The same selection in Python (used for live updates) agrees.
        assert i % 5 or sum(f.matches(a.kind, score, a.lon, a.lat, a.acquired)
                   for a, _, _, score in _client_view(alerts)) == len(exp)


def test_paging_covers_every_match_once_and_capped_counts_page_the_same(filled: tuple[AlertStore, list[Alert]]) -> None:
    st, alerts = filled
    f = AlertFilter(kinds=("vessel", "fire"), min_score=0.2)
    full = [a.alert_id for a in st.query(f, limit=10_000).alerts]
    assert len(full) == len(_expected(alerts, f)) > 1000
    seen: list[str] = []
    offset = 0
    while True:
        # count_limit below the matches: matched is unknown and the page comes from a time window.
        page = st.query(f, limit=300, offset=offset, count_limit=100)
        assert page.matched is None and page.matched_at_least == 101
        seen += [a["id"] for a in page.features]
        if not page.has_more:
            break
        offset += 300
    assert seen == full
    assert st.query(f, limit=300, offset=len(full)).features == []


def test_filter_validation() -> None:
    for bad in [dict(bbox=(0, 10, 1, 5)), dict(bbox=(0, 0, 200, 1)), dict(bbox=(0, 0, 1)),
                dict(start=T0, end=T0 - timedelta(seconds=1)), dict(kinds=("ship",)), dict(min_score=1.5),
                dict(bbox=(0, 0, float("nan"), 1))]:
        with pytest.raises(AlertQueryError):
            AlertFilter(**bad)  # type: ignore[arg-type]
    with pytest.raises(AlertQueryError):
        AlertStore.__new__(AlertStore)._check_paging(-1, 0, 10)
    assert AlertFilter(kinds=()).boxes() == []


def test_extent_cursor_and_alerts_since(tmp_path: Path) -> None:
    alerts = _alerts(50)
    with AlertStore(tmp_path / "g.sqlite") as st:
        assert st.extent() is None and st.cursor() == 0
        st.add_alerts(alerts[:30])
        c = st.cursor()
        assert c == 30
        st.add_alerts(alerts[30:])
        cur, pts = st.alerts_since(c, AlertFilter(kinds=("fire",)))
        assert cur == 50 and [p[0] for p in pts] == [a.alert_id for a in alerts[30:] if a.kind == "fire"]
        (w, s, e, n), (t0, t1) = st.extent()  # type: ignore[misc]
        assert (w, e) == (-180.0, 180.0) and s == min(a.to_feature()["geometry"]["coordinates"][1] for a in alerts)
        assert t0 == min(a.to_feature()["properties"]["acquired"] for a in alerts
                         if a.acquired == min(x.acquired for x in alerts))
        assert st.alerts_since(50) == (50, [])


def _v1_store(path: Path, alerts: list[Alert]) -> None:
    """A store as schema version 1 wrote it (no index, no thumbnails table)."""
    c = sqlite3.connect(path)
    c.executescript("""
        CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
        CREATE TABLE alerts (alert_id TEXT PRIMARY KEY, kind TEXT NOT NULL, score REAL NOT NULL, lon REAL NOT NULL,
            lat REAL NOT NULL, acquired TEXT NOT NULL, scene TEXT NOT NULL, feature TEXT NOT NULL, source TEXT,
            received_at REAL NOT NULL);
        INSERT INTO meta VALUES ('schema_version', '1');
    """)
    rows = []
    for a in alerts:
        f = a.to_feature()
        rows.append((a.alert_id, a.kind, f["properties"]["score"], a.lon, a.lat, f["properties"]["acquired"], a.scene,
                     json.dumps(f), None, 0.0))
    c.executemany("INSERT INTO alerts VALUES (?,?,?,?,?,?,?,?,?,?)", rows)
    c.commit()
    c.close()


def test_version_1_store_is_migrated_and_backfilled_on_open(tmp_path: Path) -> None:
    alerts = _alerts(400)
    _v1_store(tmp_path / "old.sqlite", alerts)
    with AlertStore(tmp_path / "old.sqlite") as st:
        assert st.conn.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()[0] == str(SCHEMA_VERSION)
        f = AlertFilter(bbox=(-90, -45, 90, 45), kinds=("lifeboat",))
        assert st.query(f).matched == len(_expected(alerts, f)) > 0
        assert st.extent() is not None
        st.add_alerts(_alerts(410)[400:])  # the insert path keeps indexing after the migration
        assert st.query(AlertFilter(), limit=0).matched == 410
    with AlertStore(tmp_path / "old.sqlite") as st:  # opening again does not index twice
        assert st.conn.execute("SELECT COUNT(*) FROM alerts_rtree").fetchone()[0] == 410
    with sqlite3.connect(tmp_path / "old.sqlite") as c:
        c.execute("UPDATE meta SET value = '7' WHERE key = 'schema_version'")
    with pytest.raises(StoreError, match="schema version 7"):
        AlertStore(tmp_path / "old.sqlite")


def test_thumbnails_stored_by_the_receiver_when_asked(tmp_path: Path) -> None:
    alerts = _alerts(2)
    blob = bytes(range(256)) * 2
    stream = b"".join(alerts_to_packets(alerts)) + b"".join(encode_thumbnail_segments(alerts[0].alert_id, blob, 0))
    with AlertStore(tmp_path / "g.sqlite") as st:
        rep = Receiver(st).receive_bytes(stream)  # default: counted, not stored, not acked
        assert rep.ignored == len(encode_thumbnail_segments(alerts[0].alert_id, blob, 0)) > 1
        assert rep.thumbnails == 0 and st.thumbnail(alerts[0].alert_id) is None
        acks: list[str] = []
        rep = Receiver(st, on_ack=acks.extend, thumbnails=True).receive_bytes(stream)
        assert rep.thumbnails == 1 and rep.ignored == 0 and f"thumb:{alerts[0].alert_id}" in acks
        assert st.thumbnail(alerts[0].alert_id) == blob and st.thumbnail(alerts[1].alert_id) is None


def test_per_alert_delivery_state_and_requeue(tmp_path: Path) -> None:
    import sys

    sys.path.insert(0, str(Path(__file__).parent))
    from _web_util import make_console_store

    alerts = make_console_store(tmp_path / "g.sqlite", n=6)
    with AlertStore(tmp_path / "g.sqlite") as st:
        states = {d["subscriber"]: d["state"] for d in st.deliveries_of(alerts[1].alert_id)}
        assert states == {"ops": "dead", "sar": "pending"}  # alert 1 is a lifeboat
        assert st.deliveries_of(alerts[0].alert_id)[0]["state"] == "delivered"
        assert st.requeue_delivery(alerts[1].alert_id, "ops") is True
        assert st.delivery(alerts[1].alert_id, "ops")["state"] == "pending"
        assert st.requeue_delivery(alerts[1].alert_id, "ops") is False  # not dead any more
        with pytest.raises(StoreError, match="no delivery"):
            st.requeue_delivery(alerts[0].alert_id, "sar")  # sar only takes lifeboats
