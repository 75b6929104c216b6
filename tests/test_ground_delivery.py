"""Webhook delivery against real HTTP servers on 127.0.0.1: retries, outages, slow endpoints, dead letters."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from _ground_util import Recorder, make_alerts, wait_for
from pipelines.errors import GroundError, StoreError
from pipelines.ground.consumer import Received, WebhookConsumer
from pipelines.ground.signing import generate_secret, verify
from pipelines.ground.store import AlertStore, Subscriber, webhook_id_for
from pipelines.ground.webhooks import DeliveryWorker, RetryPolicy, _retry_after

FAST = RetryPolicy(base_s=0.02, cap_s=0.2, max_age_s=3600)
ROOT = Path(__file__).resolve().parents[1]


def add(st: AlertStore, name: str, url: str, secret: str | None = None, **kw: object) -> Subscriber:
    return st.add_subscriber(Subscriber(name=name, url=url, secret=secret or generate_secret(), **kw))  # type: ignore[arg-type]


def test_delivers_signed_standard_webhooks_with_filters(tmp_path: Path) -> None:
    db = tmp_path / "g.sqlite"
    secret = generate_secret()
    alerts = make_alerts(30)
    with WebhookConsumer([secret], tmp_path / "c.sqlite") as all_c, Recorder() as fires:
        with AlertStore(db) as st:
            add(st, "all", all_c.url, secret)
            fire_sub = add(st, "fires", fires.url, kinds=("fire",), min_score=0.5)
            st.add_alerts(alerts)
        stats = DeliveryWorker(db, policy=FAST).run("drain")
        assert stats.delivered == 30 + 10 and stats.pending_left == 0
        got = all_c.store.received()
        assert sorted(r.alert_id for r in got) == sorted(a.alert_id for a in alerts)  # type: ignore[misc]
        by_id = {a.alert_id: a for a in alerts}
        for r in got:
            doc = json.loads(r.body)
            a = by_id[doc["data"]["id"]]
            assert doc == {"type": f"alert.{a.kind}", "timestamp": "2024-07-01T12:00:00Z", "data": a.to_feature()}
            assert r.webhook_id == webhook_id_for(a.alert_id, "all") and r.content_type == "application/json"
        # The filtered endpoint got exactly the fires, each verifiable with its own secret.
        assert sorted(b["data"]["id"] for b in fires.bodies()) == sorted(a.alert_id for a in alerts if a.kind == "fire")
        for h, body in fires.requests:
            verify([fire_sub.secret], h, body)
        with AlertStore(db) as st:
            assert [(s["name"], s["delivered"], s["pending"], s["dead"]) for s in st.status()] == [
                ("all", 30, 0, 0), ("fires", 10, 0, 0)]


def test_consumer_down_then_up_everything_arrives_once(tmp_path: Path) -> None:
    db = tmp_path / "g.sqlite"
    secret = generate_secret()
    alerts = make_alerts(40)
    c = WebhookConsumer([secret], tmp_path / "c.sqlite")  # bound, not listening: connection refused
    try:
        with AlertStore(db) as st:
            add(st, "c", c.url, secret)
            st.add_alerts(alerts)
        worker = DeliveryWorker(db, policy=FAST, poll_s=0.05)
        result: dict[str, object] = {}
        t = threading.Thread(target=lambda: result.update(stats=worker.run("drain")))
        t.start()
        with AlertStore(db) as st:  # wait until every message failed at least once
            wait_for(lambda: st.conn.execute(
                "SELECT COUNT(*) FROM deliveries WHERE attempts >= 1 AND state='pending'").fetchone()[0] == 40,
                what="failed attempts while the consumer is down")
            assert "ConnectError" in str(st.delivery(alerts[0].alert_id, "c")["last_error"])
        c.start()
        t.join(timeout=60)
        assert not t.is_alive()
        stats = result["stats"]
        assert stats.delivered == 40 and stats.retried >= 40 and stats.dead == 0  # type: ignore[attr-defined]
        assert sorted(r.alert_id for r in c.store.received()) == sorted(a.alert_id for a in alerts)  # type: ignore[misc]
        assert c.store.counters().get("duplicates", 0) == 0
    finally:
        c.shutdown()


def test_retries_reuse_the_webhook_id_and_resign(tmp_path: Path) -> None:
    db = tmp_path / "g.sqlite"
    fails: dict[str, int] = {}

    def respond(n: int, h: dict[str, str]) -> tuple[int, dict[str, str]]:
        k = h["webhook-id"]
        fails[k] = fails.get(k, 0) + 1
        return (500, {}) if fails[k] <= 2 else (204, {})
    with Recorder(respond) as rec:
        with AlertStore(db) as st:
            s = add(st, "r", rec.url)
            st.add_alerts(make_alerts(5))
        stats = DeliveryWorker(db, policy=FAST, poll_s=0.05).run("drain")
        assert stats.delivered == 5 and stats.retried == 10
        ids = rec.ids()
        assert len(ids) == 15 and all(ids.count(i) == 3 for i in set(ids))
        bodies: dict[str, set[bytes]] = {}
        for h, body in rec.requests:
            verify([s.secret], h, body)
            bodies.setdefault(h["webhook-id"], set()).add(body)
        assert all(len(b) == 1 for b in bodies.values())  # byte-identical body on every retry
        with AlertStore(db) as st:
            d = st.delivery(make_alerts(1)[0].alert_id, "r")
            assert (d["state"], d["attempts"], d["last_status"]) == ("delivered", 3, 204)


def test_slow_consumer_does_not_hold_up_the_others(tmp_path: Path) -> None:
    db = tmp_path / "g.sqlite"
    with Recorder(delay_s=60) as slow, Recorder() as fast:
        with AlertStore(db) as st:
            add(st, "slow", slow.url, concurrency=2, timeout_s=120)
            add(st, "fast", fast.url, concurrency=4)
            st.add_alerts(make_alerts(60))
        worker = DeliveryWorker(db, policy=FAST, poll_s=0.05, max_workers=8)
        t = threading.Thread(target=worker.run, args=("forever",))
        t.start()
        try:
            wait_for(lambda: len(slow.requests) == 2, what="the slow endpoint's two slots taken")
            wait_for(lambda: len(fast.requests) == 60, what="all 60 to the fast endpoint")
            assert len(slow.requests) == 2  # its two slots are still stuck, nothing else was taken
        finally:
            slow.release.set()
            worker.stop()
            t.join(timeout=60)
        with AlertStore(db) as st:
            slow_row, fast_row = st.status()
            assert fast_row["delivered"] == 60
            assert slow_row["delivered"] == 2 and slow_row["pending"] == 58  # stopped cleanly, nothing lost


def test_timeout_counts_as_failure_and_is_retried(tmp_path: Path) -> None:
    db = tmp_path / "g.sqlite"
    gate = threading.Event()

    def respond(n: int, h: dict[str, str]) -> tuple[int, dict[str, str]]:
        if n == 1:
            gate.wait(10)  # the first request hangs past the subscriber's timeout
        return 200, {}
    with Recorder(respond) as rec:
        with AlertStore(db) as st:
            add(st, "t", rec.url, timeout_s=0.3)
            st.add_alerts(make_alerts(1))
        try:
            stats = DeliveryWorker(db, policy=FAST, poll_s=0.05).run("drain")
        finally:
            gate.set()
        assert stats.delivered == 1 and stats.retried == 1
        assert rec.ids()[0] == rec.ids()[1]
        with AlertStore(db) as st:
            assert st.delivery(make_alerts(1)[0].alert_id, "t")["attempts"] == 2


def test_dead_letter_after_max_age(tmp_path: Path) -> None:
    db = tmp_path / "g.sqlite"
    now = [1_000_000.0]
    with Recorder(lambda n, h: (500, {})) as rec:
        with AlertStore(db) as st:
            add(st, "broken", rec.url)
            st.add_alerts(make_alerts(3), now=now[0])
        policy = RetryPolicy(base_s=1, cap_s=10, max_age_s=3600)
        w = DeliveryWorker(db, policy=policy, clock=lambda: now[0], seed=1)
        s1 = w.run("once")
        assert (s1.retried, s1.dead, s1.pending_left) == (3, 0, 3)
        now[0] += 1800  # still young: retried again
        assert w.run("once").retried == 3
        now[0] += 1801  # older than max age: the next failure is final
        s3 = w.run("once")
        assert (s3.dead, s3.pending_left) == (3, 0)
        assert w.run("drain").attempts == 0  # nothing left to do: drain returns at once
        with AlertStore(db) as st:
            [row] = st.status()
            assert row["dead"] == 3
            dl = st.dead_letters()
            assert {d["attempts"] for d in dl} == {3} and {d["last_error"] for d in dl} == {"HTTP 500"}
            assert st.requeue_dead() == 3  # and a manual replay brings them back
            assert st.pending_count() == 3
    assert len(rec.requests) == 9


def test_max_attempts_also_dead_letters(tmp_path: Path) -> None:
    db = tmp_path / "g.sqlite"
    with Recorder(lambda n, h: (404, {})) as rec:
        with AlertStore(db) as st:
            add(st, "nf", rec.url)
            st.add_alerts(make_alerts(2))
        stats = DeliveryWorker(db, policy=RetryPolicy(base_s=0.01, cap_s=0.02, max_attempts=3), poll_s=0.02).run("drain")
        assert stats.dead == 2 and len(rec.requests) == 6


def test_410_gone_disables_only_that_subscriber_and_keeps_its_messages(tmp_path: Path) -> None:
    db = tmp_path / "g.sqlite"
    with Recorder(lambda n, h: (410, {})) as gone, Recorder() as ok:
        with AlertStore(db) as st:
            add(st, "gone", gone.url, concurrency=1)
            add(st, "ok", ok.url)
            st.add_alerts(make_alerts(10))
        stats = DeliveryWorker(db, policy=FAST, poll_s=0.05).run("drain")
        assert stats.disabled == ["gone"] and len(gone.requests) == 1 and len(ok.requests) == 10
        with AlertStore(db) as st:
            g = st.subscriber("gone")
            assert not g.active and "410" in str(g.disabled_reason)
            assert st.pending_count([int(g.id or 0)]) == 10
            st.set_active("gone", True)  # the operator re-enables it: it gets everything, in full


def test_retry_after_is_honoured(tmp_path: Path) -> None:
    db = tmp_path / "g.sqlite"
    now = [5_000.0]
    with Recorder(lambda n, h: (503, {"Retry-After": "120"})) as rec:
        with AlertStore(db) as st:
            add(st, "busy", rec.url)
            st.add_alerts(make_alerts(1), now=now[0])
        DeliveryWorker(db, policy=RetryPolicy(base_s=1, cap_s=600), clock=lambda: now[0]).run("once")
        with AlertStore(db) as st:
            d = st.delivery(make_alerts(1)[0].alert_id, "busy")
            assert d["next_attempt_at"] >= now[0] + 120 and d["last_status"] == 503
    assert _retry_after("Wed, 21 Oct 2015 07:28:00 GMT", 1445412480.0 - 60) == pytest.approx(60)
    assert _retry_after("soon", 0) is None and _retry_after(None, 0) is None


def test_backoff_is_exponential_with_full_jitter_and_capped() -> None:
    import random
    p = RetryPolicy(base_s=2, cap_s=30)
    rng = random.Random(0)
    for attempts, ceiling in [(1, 2), (2, 4), (3, 8), (4, 16), (5, 30), (20, 30)]:
        ds = [p.delay(attempts, rng) for _ in range(300)]
        assert 0 <= min(ds) and max(ds) <= ceiling and max(ds) > ceiling * 0.8
    with pytest.raises(GroundError):
        RetryPolicy(base_s=0)
    with pytest.raises(GroundError):
        RetryPolicy(max_attempts=0)


def test_one_delivery_process_per_store(tmp_path: Path) -> None:
    db = tmp_path / "g.sqlite"
    with Recorder(delay_s=30) as slow:
        with AlertStore(db) as st:
            add(st, "s", slow.url, concurrency=1)
            st.add_alerts(make_alerts(1))
        w1 = DeliveryWorker(db, policy=FAST, poll_s=0.05)
        t = threading.Thread(target=w1.run, args=("forever",))
        t.start()
        try:
            wait_for(lambda: len(slow.requests) == 1, what="first worker sending")
            with pytest.raises(StoreError):
                DeliveryWorker(db).run("once")
        finally:
            slow.release.set()
            w1.stop()
            t.join(timeout=30)
    with pytest.raises(GroundError):
        DeliveryWorker(db).run("sometimes")  # type: ignore[arg-type]


def test_unreachable_payload_format_is_recorded_not_lost(tmp_path: Path) -> None:
    db = tmp_path / "g.sqlite"
    with Recorder() as rec:
        with AlertStore(db) as st:
            s = add(st, "x", rec.url)
            st.add_alerts(make_alerts(1))
            st.conn.execute("UPDATE subscribers SET format='yaml' WHERE id=?", (s.id,))  # a hand-edited store
        stats = DeliveryWorker(db, policy=FAST).run("once")
        assert stats.retried == 1 and rec.requests == []
        with AlertStore(db) as st:
            assert "yaml" in str(st.delivery(make_alerts(1)[0].alert_id, "x")["last_error"])


def _deliver_cmd(db: Path) -> list[str]:
    return [sys.executable, "-m", "pipelines.ground.cli", "ground", "deliver", "--store", str(db), "--mode", "drain",
            "--base-delay", "0.05", "--max-delay", "0.2", "--poll-s", "0.05"]


def test_killed_delivery_process_loses_nothing(tmp_path: Path) -> None:
    """SIGKILL the delivery process while requests are in flight, restart it: every alert arrives."""
    db = tmp_path / "g.sqlite"
    secret = generate_secret()
    n = 120
    gate = threading.Event()
    seen: list[str] = []

    def on_event(r: Received) -> None:  # the consumer "acts" on each alert; after 40 it stalls
        seen.append(r.webhook_id)
        if len(seen) > 40:
            gate.wait(60)
    with WebhookConsumer([secret], tmp_path / "c.sqlite", on_event=on_event) as c:
        with AlertStore(db) as st:
            add(st, "c", c.url, secret, concurrency=4)
            st.add_alerts(make_alerts(n))
        env = dict(os.environ, PYTHONPATH=str(ROOT))
        p = subprocess.Popen(_deliver_cmd(db), cwd=ROOT, env=env, stderr=subprocess.PIPE)
        try:
            wait_for(lambda: len(seen) >= 44, what="the consumer stalling with requests in flight")
        finally:
            p.send_signal(signal.SIGKILL)
            p.wait(timeout=30)
        gate.set()
        with AlertStore(db) as st:
            [row] = st.status()
            assert row["delivered"] <= 40 and row["pending"] >= n - 40  # in-flight work was not recorded
        r = subprocess.run(_deliver_cmd(db), cwd=ROOT, env=env, capture_output=True, timeout=120)
        assert r.returncode == 0, r.stderr.decode()
        got = c.store.received()
        assert sorted(x.webhook_id for x in got) == sorted(webhook_id_for(a.alert_id, "c") for a in make_alerts(n))
        # The messages in flight at the kill came again, with the same ids, and were dropped as repeats.
        assert c.store.counters()["accepted"] == n
        assert c.store.counters()["duplicates"] >= 1
        with AlertStore(db) as st:
            [row] = st.status()
            assert (row["delivered"], row["pending"], row["dead"]) == (n, 0, 0)


def test_unopenable_store_releases_the_delivery_lock(tmp_path: Path) -> None:
    db = tmp_path / "junk.sqlite"
    db.write_bytes(b"not a database" * 200)
    for _ in range(2):  # the second try must fail on the store again, not on a leaked lock
        with pytest.raises(StoreError) as exc:
            DeliveryWorker(db).run("once")
        assert "another delivery worker" not in str(exc.value)


def test_cap_subscriber_gets_signed_cap_xml_json_subscriber_gets_json(tmp_path: Path) -> None:
    """Per-subscriber format: the subscriber that asked for CAP 1.2 gets CAP XML over real HTTP,
    signed with its own secret; the one beside it still gets the JSON envelope."""
    from pipelines.alerts.cap import CAP_NS, cap_to_alert, validate_cap
    from pipelines.errors import WebhookSignatureError

    db = tmp_path / "g.sqlite"
    cap_secret, json_secret = generate_secret(), generate_secret()
    alerts = make_alerts(6)
    with WebhookConsumer([cap_secret], tmp_path / "cap.sqlite") as cap_c, Recorder() as raw, \
            WebhookConsumer([json_secret], tmp_path / "json.sqlite") as json_c:
        with AlertStore(db) as st:
            add(st, "cap-consumer", cap_c.url, cap_secret, format="cap")
            raw_sub = add(st, "cap-raw", raw.url, format="cap", kinds=("fire", "lifeboat"))
            add(st, "json-consumer", json_c.url, json_secret)
            st.add_alerts(alerts)
        stats = DeliveryWorker(db, policy=FAST).run("drain")
        assert stats.pending_left == 0 and stats.dead == 0
        # The reference consumer verified every signature (a bad one is a 401, kept pending) and
        # parsed every CAP body back to the very alert that was stored.
        got = cap_c.store.received()
        assert sorted(r.alert_id for r in got) == sorted(a.alert_id for a in alerts)  # type: ignore[misc]
        by_id = {a.alert_id: a for a in alerts}
        for r in got:
            assert r.content_type == "application/cap+xml" and r.type == f"alert.{by_id[r.alert_id].kind}"
            root = validate_cap(r.body)
            assert root.tag == f"{{{CAP_NS}}}alert"
            assert root.findtext(f"{{{CAP_NS}}}identifier") == f"orbitwatch-{r.alert_id}"
            assert cap_to_alert(r.body).to_feature() == by_id[r.alert_id].to_feature()
            assert r.webhook_id == webhook_id_for(r.alert_id, "cap-consumer")  # type: ignore[arg-type]
        # Raw requests as they came over the wire: CAP XML, signature checks with this subscriber's
        # secret only, and any change to the body breaks it.
        assert len(raw.requests) == sum(a.kind in ("fire", "lifeboat") for a in alerts)
        for h, body in raw.requests:
            assert h["content-type"].startswith("application/cap+xml")
            assert body.startswith(b'<?xml version="1.0" encoding="UTF-8"?>')
            a = cap_to_alert(body.decode())
            assert a.kind in ("fire", "lifeboat") and h["webhook-id"] == webhook_id_for(a.alert_id, "cap-raw")
            verify([raw_sub.secret], h, body)
            with pytest.raises(WebhookSignatureError):
                verify([cap_secret], h, body)
            with pytest.raises(WebhookSignatureError):
                verify([raw_sub.secret], h, body.replace(b"orbitwatch-", b"orbitwatcH-", 1))
        # The JSON subscriber's payloads are unchanged by its neighbours' format.
        for r in json_c.store.received():
            assert r.content_type == "application/json"
            assert json.loads(r.body)["data"] == by_id[r.alert_id].to_feature()  # type: ignore[index]
        assert len(json_c.store.received()) == len(alerts)
