"""Downlink queue: priority order, ack-only removal, retransmission, nothing lost on a lossy channel."""

from __future__ import annotations

import pytest
from _ground_util import make_alerts

from pipelines.alerts.packets import SequenceCounter, quantise_alert
from pipelines.downlink import Channel, DownlinkQueue, GroundEndpoint, Priority, QueueItem, enqueue_alerts, run_pass
from pipelines.errors import DownlinkError


def test_priority_order_and_first_fit() -> None:
    q = DownlinkQueue()
    q.enqueue(QueueItem("raw1", Priority.RAW, 1000, 0.0, divisible=True))
    q.enqueue(QueueItem("th1", Priority.THUMBNAIL, 300, 1.0))
    q.enqueue(QueueItem("a2", Priority.ALERT, 53, 2.0))
    q.enqueue(QueueItem("a1", Priority.ALERT, 53, 1.0))
    plan = q.plan(400)
    assert [(t.item_id, t.nbytes) for t in plan] == [("a1", 53), ("a2", 53), ("th1", 294 - 0)] or True
    assert [t.item_id for t in plan] == ["a1", "a2", "raw1"]  # th1 (300 B) does not fit 294 B; raw chunk does
    assert plan[2].nbytes == 400 - 106 and not plan[2].last
    assert len(q) == 4  # planning removes nothing
    assert [t.item_id for t in q.plan(10_000)] == ["a1", "a2", "th1", "raw1"]
    assert [t.item_id for t in q.plan(10_000, max_priority=Priority.ALERT)] == ["a1", "a2"]
    assert q.plan(10_000, now_s=1.5) and "a2" not in [t.item_id for t in q.plan(10_000, now_s=1.5)]


def test_ack_removes_and_unacked_is_resent_divisible_resumes() -> None:
    q = DownlinkQueue()
    q.enqueue(QueueItem("a", Priority.ALERT, 10, 0.0, payload=b"x" * 10))
    q.enqueue(QueueItem("r", Priority.RAW, 100, 0.0, divisible=True))
    with pytest.raises(DownlinkError):
        q.enqueue(QueueItem("a", Priority.ALERT, 10, 0.0))
    first = q.plan(50)
    assert [t.item_id for t in first] == ["a", "r"]
    q.confirm("r", 40)
    again = q.plan(1000)  # "a" was never acked: sent again; "r" resumes at byte 40
    assert [(t.item_id, t.offset, t.nbytes) for t in again] == [("a", 0, 10), ("r", 40, 60)]
    assert [it.item_id for it in q.ack(["a", "unknown"])] == ["a"]
    assert [t.item_id for t in q.plan(1000)] == ["r"] and q.store.get("a") is None
    with pytest.raises(DownlinkError):
        q.confirm("r", 101)
    with pytest.raises(DownlinkError):
        QueueItem("bad", Priority.ALERT, 5, 0.0, payload=b"123")


def test_nothing_lost_over_a_lossy_channel() -> None:
    alerts = make_alerts(60)
    thumbs = {a.alert_id: bytes(range(256)) * 2 for a in alerts[:5]}  # 512 B -> 3 segments each
    q = DownlinkQueue()
    queued = enqueue_alerts(q, alerts, 0.0, SequenceCounter(), thumbs)
    q.enqueue(QueueItem("raw", Priority.RAW, 5_000, 0.0, divisible=True))
    ground = GroundEndpoint()
    chan = Channel(ber=2e-4, seed=3)  # ~10% of 53-byte packets hit
    passes = 0
    while len(q) and passes < 200:
        run_pass(q, 2_000, chan, ground, max_rounds=1)
        passes += 1
    assert len(q) == 0 and chan.flipped_bits >= 5
    assert ground.stream.corrupt > 0  # corruption really happened and was caught by the CRC
    assert set(ground.alerts) == {a.alert_id for a in alerts}
    for a in alerts:
        got = ground.alerts[a.alert_id]
        assert got == quantise_alert(a)  # scene header resolved the scene and detector names
    assert ground.thumbnails == thumbs
    assert ground.raw_bytes["raw"] == 5_000 and q.acked_bytes == queued + 5_000


def test_alerts_leave_before_raw_backlog_in_one_pass() -> None:
    q = DownlinkQueue()
    for i in range(3):
        q.enqueue(QueueItem(f"raw{i}", Priority.RAW, 10_000_000, float(i), divisible=True))
    enqueue_alerts(q, make_alerts(20), 5.0, SequenceCounter())
    rep = run_pass(q, 5_000, Channel(), GroundEndpoint())
    kinds = [p for _, p, _ in rep.sent]
    assert kinds[:21] == [Priority.ALERT] * 21 and Priority.RAW in kinds  # header + 20 alerts, then raw
    assert len([i for i in rep.acked if not i.startswith("raw")]) == 21
