"""The SQLite alert store: durability settings, de-duplication, fan-out filters, subscriber checks."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from _ground_util import make_alert, make_alerts
from pipelines.errors import StoreError, SubscriberError
from pipelines.ground.signing import generate_secret
from pipelines.ground.store import AlertStore, Outcome, Subscriber, webhook_id_for


def sub(name: str, **kw: object) -> Subscriber:
    return Subscriber(name=name, url=f"http://127.0.0.1:9/{name}", secret=generate_secret(), **kw)  # type: ignore[arg-type]


def test_wal_and_synchronous_normal(tmp_path: Path) -> None:
    with AlertStore(tmp_path / "g.sqlite") as st:
        assert st.conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert st.conn.execute("PRAGMA synchronous").fetchone()[0] == 1  # NORMAL
    assert (tmp_path / "g.sqlite").stat().st_mode & 0o077 == 0  # it holds signing secrets
    with pytest.raises(StoreError):
        AlertStore(tmp_path / "h.sqlite", synchronous="SOMETIMES")


def test_not_a_database_is_a_store_error(tmp_path: Path) -> None:
    p = tmp_path / "junk.sqlite"
    p.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(StoreError):
        AlertStore(p)


def test_dedupe_by_alert_id_within_and_across_batches(tmp_path: Path) -> None:
    with AlertStore(tmp_path / "g.sqlite") as st:
        st.add_subscriber(sub("a"))
        alerts = make_alerts(10)
        r1 = st.add_alerts(alerts + alerts[:3])
        assert len(r1.new) == 10 and len(r1.duplicates) == 3 and r1.deliveries == 10
        r2 = st.add_alerts(alerts[5:] + [make_alert(10)])
        assert r2.new == [make_alert(10).alert_id] and len(r2.duplicates) == 5 and r2.deliveries == 1
        assert st.alert_count() == 11
        assert st.pending_count() == 11
        assert st.counters()["alerts_duplicate"] == 8
        assert st.alert(alerts[0].alert_id).to_feature() == alerts[0].to_feature()


def test_store_persists_across_reopen(tmp_path: Path) -> None:
    p = tmp_path / "g.sqlite"
    with AlertStore(p) as st:
        st.add_subscriber(sub("a"))
        st.add_alerts(make_alerts(5))
    with AlertStore(p) as st:
        assert st.alert_count() == 5 and st.pending_count() == 5
        assert st.subscriber("a").name == "a"


def test_filters_kinds_score_bbox(tmp_path: Path) -> None:
    with AlertStore(tmp_path / "g.sqlite") as st:
        fire = st.add_subscriber(sub("fire", kinds=("fire",)))
        hi = st.add_subscriber(sub("hi", min_score=0.8))
        box = st.add_subscriber(sub("box", bbox=(0.0, 50.0, 20.0, 60.0)))
        fiji = st.add_subscriber(sub("fiji", bbox=(170.0, -25.0, -170.0, -10.0)))  # crosses 180
        alerts = [
            make_alert(0, kind="fire", score=0.5, lon=10, lat=55),
            make_alert(1, kind="vessel", score=0.9, lon=10, lat=55),
            make_alert(2, kind="vessel", score=0.95, lon=30, lat=55),
            make_alert(3, kind="lifeboat", score=0.85, lon=179.5, lat=-17),
            make_alert(4, kind="fire", score=0.9, lon=-179.5, lat=-17),
            make_alert(5, kind="vessel", score=0.9, lon=0.0, lat=-17),
        ]
        st.add_alerts(alerts)

        def got(s: Subscriber) -> set[int]:
            ids = {r[0] for r in st.conn.execute("SELECT alert_id FROM deliveries WHERE subscriber_id=?", (s.id,))}
            return {i for i, a in enumerate(alerts) if a.alert_id in ids}
        assert got(fire) == {0, 4}
        assert got(hi) == {1, 2, 3, 4, 5}
        assert got(box) == {0, 1}
        assert got(fiji) == {3, 4}


def test_inactive_subscriber_gets_nothing_new_and_backfill(tmp_path: Path) -> None:
    with AlertStore(tmp_path / "g.sqlite") as st:
        st.add_subscriber(sub("off"))
        st.set_active("off", False, "maintenance")
        st.add_alerts(make_alerts(4))
        assert st.pending_count() == 0
        late = st.add_subscriber(sub("late", kinds=("vessel",)), backfill=True)
        assert st.pending_count([int(late.id or 0)]) == sum(a.kind == "vessel" for a in make_alerts(4))
        assert st.subscriber("off").disabled_reason == "maintenance"


@pytest.mark.parametrize("kw", [
    {"url": "ftp://x/y"}, {"url": "not a url"}, {"secret": "whsec_" + "A" * 8}, {"secret": "whsec_%%%"},
    {"kinds": ("ship",)}, {"kinds": ()}, {"min_score": 1.5}, {"bbox": (0, 10, 5, 5)}, {"bbox": (0, 1, 2)},
    {"bbox": (200, 0, 10, 10)}, {"format": "xml"}, {"concurrency": 0}, {"timeout_s": 0}, {"name": " "},
])
def test_bad_subscribers_are_rejected(tmp_path: Path, kw: dict[str, object]) -> None:
    base: dict[str, object] = {"name": "x", "url": "http://127.0.0.1:9/", "secret": generate_secret()}
    base.update(kw)
    with AlertStore(tmp_path / "g.sqlite") as st:
        with pytest.raises(SubscriberError):
            st.add_subscriber(Subscriber(**base))  # type: ignore[arg-type]
        assert st.subscribers() == []


def test_duplicate_name_and_unknown_subscriber(tmp_path: Path) -> None:
    with AlertStore(tmp_path / "g.sqlite") as st:
        st.add_subscriber(sub("a"))
        with pytest.raises(SubscriberError):
            st.add_subscriber(sub("a"))
        with pytest.raises(SubscriberError):
            st.subscriber("nobody")
        with pytest.raises(SubscriberError):
            st.set_active("nobody", False)
        with pytest.raises(StoreError):
            st.alert("0000000000000000")


def test_outcomes_requeue_and_status(tmp_path: Path) -> None:
    with AlertStore(tmp_path / "g.sqlite") as st:
        a = st.add_subscriber(sub("a"))
        alerts = make_alerts(3)
        st.add_alerts(alerts)
        due = st.due(int(a.id or 0), now=1e12, limit=10)
        assert [d.webhook_id for d in due] == [webhook_id_for(x.alert_id, "a") for x in alerts]
        st.record_outcomes([
            Outcome(due[0].webhook_id, a.id or 0, "delivered", 1.0, 200),
            Outcome(due[1].webhook_id, a.id or 0, "dead", 1.0, 500, "HTTP 500"),
            Outcome(due[2].webhook_id, a.id or 0, "pending", 1.0, None, "refused", next_attempt_at=2e12),
        ])
        assert st.due(int(a.id or 0), now=1e12, limit=10) == []
        [row] = st.status()
        assert (row["pending"], row["delivered"], row["dead"]) == (1, 1, 1)
        [dl] = st.dead_letters()
        assert dl["alert_id"] == alerts[1].alert_id and dl["last_error"] == "HTTP 500"
        assert st.requeue_dead("a") == 1
        assert st.delivery(alerts[1].alert_id, "a")["state"] == "pending"
        # An outcome for an already-final message changes nothing (a late duplicate result).
        st.record_outcomes([Outcome(due[0].webhook_id, a.id or 0, "dead", 2.0, 500, "late")])
        assert st.delivery(alerts[0].alert_id, "a")["state"] == "delivered"


def test_second_writer_waits_then_errors_cleanly(tmp_path: Path) -> None:
    p = tmp_path / "g.sqlite"
    with AlertStore(p) as st:
        other = sqlite3.connect(p, isolation_level=None)
        other.execute("BEGIN IMMEDIATE")  # someone holds the write lock
        slow = AlertStore(p, busy_timeout_s=0.05)
        with pytest.raises(StoreError):
            slow.add_alerts(make_alerts(1))
        other.execute("ROLLBACK")
        slow.add_alerts(make_alerts(1))
        assert st.alert_count() == 1
        slow.close()
        other.close()
