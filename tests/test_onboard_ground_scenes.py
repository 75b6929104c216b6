"""Ground receiver and scene headers: persisted scene table, held / placeholder alerts, CRC rejection.

Real SQLite stores, the real packet encoder; every alert compared to what one packet can carry
(``quantise_alert``).
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from pipelines.alerts.packets import (
    SequenceCounter,
    alerts_to_packets,
    encode_alert,
    encode_scene_header,
    make_scene_key,
    quantise_alert,
)
from pipelines.errors import GroundError
from pipelines.ground.receiver import Receiver, scene_ack_id
from pipelines.ground.store import AlertStore, Subscriber
from _ground_util import make_alerts

SECRET = "whsec_" + "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


def _scene_alerts(n: int = 4, scene: str = "CAPELLA_C13_SP_GEO_HH_20240709") -> list:
    # A detector name the decoder cannot know without the header.
    return [replace(a, detector="my-new-detector") for a in make_alerts(n, scene=scene)]


def _header(alerts: list) -> bytes:
    return encode_scene_header(alerts[0].scene, alerts[0].acquired, 0, {a.detector for a in alerts})


def _pk(alerts: list) -> list[bytes]:
    c = SequenceCounter()
    return [encode_alert(a, c.next(0x101)) for a in alerts]


def _sub(st: AlertStore) -> None:
    st.add_subscriber(Subscriber(name="ops", url="http://127.0.0.1:9/hook", secret=SECRET))


def _expected(a) -> object:  # type: ignore[no-untyped-def]
    q = quantise_alert(a)
    return q.to_feature()


def test_hold_alerts_until_header_then_release_with_real_names(tmp_path: Path) -> None:
    alerts = _scene_alerts()
    db = tmp_path / "g.sqlite"
    acks: list[str] = []
    with AlertStore(db) as st:
        _sub(st)
        rep = Receiver(st, on_ack=acks.extend, unresolved="hold").receive_bytes(b"".join(_pk(alerts)), "early")
        # Durable and acked (the node may drop them), but not alerts yet and nothing delivered.
        assert (rep.held, rep.stored, rep.deliveries) == (4, 0, 0)
        assert set(acks) == {a.alert_id for a in alerts}
        assert st.held_count() == 4 and st.alert_count() == 0 and st.pending_count() == 0
        # A repeat while held is a duplicate, not a second held copy.
        assert Receiver(st, unresolved="hold").receive_packets(_pk(alerts)[:1]).duplicates == 1
    with AlertStore(db) as st:  # a restarted ground: the held alerts are still there
        rep = Receiver(st, on_ack=acks.extend, unresolved="hold").receive_bytes(_header(alerts), "header")
        assert (rep.scene_headers, rep.scenes_new, rep.released, rep.stored) == (1, 1, 4, 4)
        # A scene header (APID 0x100) is a packet the receiver understands, never a corrupt one.
        assert rep.corrupt == 0 and rep.packets == 1 and rep.errors == []
        assert st.counters().get("packets_corrupt", 0) == 0
        assert scene_ack_id(make_scene_key(alerts[0].scene)) in acks
        assert st.held_count() == 0 and st.pending_count() == 4
        for a in alerts:
            assert st.alert(a.alert_id).to_feature() == _expected(a)
        assert st.counters()["alerts_held"] == 4 and st.counters()["alerts_released"] == 4


def test_scene_table_persists_so_later_passes_decode_real_names(tmp_path: Path) -> None:
    alerts = _scene_alerts(6)
    db = tmp_path / "g.sqlite"
    with AlertStore(db) as st:
        rep = Receiver(st, unresolved="hold").receive_bytes(_header(alerts) + b"".join(_pk(alerts[:2])))
        assert (rep.stored, rep.held, rep.corrupt, rep.packets) == (2, 0, 0, 3)
        assert {st.alert(a.alert_id).scene for a in alerts[:2]} == {alerts[0].scene}  # the real name
    with AlertStore(db) as st:
        assert make_scene_key(alerts[0].scene) in st.scene_headers()
        rep = Receiver(st, unresolved="hold").receive_bytes(b"".join(_pk(alerts[2:])))
        assert (rep.stored, rep.held) == (4, 0)
        assert all(st.alert(a.alert_id).to_feature() == _expected(a) for a in alerts)
        # The same header again: acked again, nothing new.
        rep = Receiver(st).receive_bytes(_header(alerts))
        assert rep.scenes_new == 0 and rep.acked == [scene_ack_id(make_scene_key(alerts[0].scene))]


def test_header_later_in_the_same_batch_resolves_earlier_alerts(tmp_path: Path) -> None:
    alerts = _scene_alerts(3)
    with AlertStore(tmp_path / "g.sqlite") as st:
        rep = Receiver(st, unresolved="hold").receive_packets([*_pk(alerts), _header(alerts)])
        assert (rep.stored, rep.held) == (3, 0)
        assert all(st.alert(a.alert_id).to_feature() == _expected(a) for a in alerts)


def test_placeholder_policy_stores_at_once_and_renames_when_header_arrives(tmp_path: Path) -> None:
    alerts = _scene_alerts(3)
    key = make_scene_key(alerts[0].scene)
    with AlertStore(tmp_path / "g.sqlite") as st:
        _sub(st)
        rep = Receiver(st).receive_bytes(b"".join(_pk(alerts)))
        assert (rep.stored, rep.deliveries) == (3, 3)
        assert st.alert(alerts[0].alert_id).scene == f"scene-{key:08x}"
        assert st.alert(alerts[0].alert_id).detector.startswith("detector-")
        rep = Receiver(st).receive_bytes(_header(alerts))
        assert rep.renamed == 3
        assert all(st.alert(a.alert_id).to_feature() == _expected(a) for a in alerts)
        assert st.conn.execute("SELECT COUNT(*) FROM alerts WHERE scene = ?", (alerts[0].scene,)).fetchone()[0] == 3


def test_corrupt_header_and_length_field_flip_rejected_not_acked_stream_resyncs(tmp_path: Path) -> None:
    alerts = _scene_alerts(5)
    hdr = bytearray(_header(alerts))
    hdr[10] ^= 0x04  # bit flip inside the header body: CRC fails
    pk = _pk(alerts)
    bad_len = bytearray(pk[1])
    bad_len[5] ^= 0x01  # bit flip in the length field: without resync every later packet would shift
    acks: list[str] = []
    with AlertStore(tmp_path / "g.sqlite") as st:
        rx = Receiver(st, on_ack=acks.extend, unresolved="hold")
        rep = rx.receive_bytes(bytes(hdr) + pk[0] + bytes(bad_len) + b"".join(pk[2:]), "noisy")
        assert rep.corrupt == 2 and rep.errors
        assert rep.held == 4  # every intact alert kept (durably, waiting for the header)
        assert scene_ack_id(make_scene_key(alerts[0].scene)) not in acks and alerts[1].alert_id not in acks
        assert st.counters()["packets_corrupt"] == 2
        # The retransmission of both rejected packets completes the scene.
        rep = rx.receive_bytes(_header(alerts) + pk[1], "resend")
        assert (rep.corrupt, rep.stored, rep.released) == (0, 5, 4)
        assert all(st.alert(a.alert_id).to_feature() == _expected(a) for a in alerts)


def test_thumbnail_packets_are_counted_not_acked_and_bad_policy_rejected(tmp_path: Path) -> None:
    from pipelines.alerts.packets import encode_thumbnail_segments

    a = _scene_alerts(1)[0]
    with AlertStore(tmp_path / "g.sqlite") as st:
        rep = Receiver(st).receive_bytes(b"".join(encode_thumbnail_segments(a.alert_id, b"x" * 300, 0)))
        assert rep.ignored == 2 and rep.acked == [] and rep.corrupt == 0
        with pytest.raises(GroundError, match="unresolved"):
            Receiver(st, unresolved="drop")  # type: ignore[arg-type]


def test_headerless_sender_default_unchanged() -> None:
    # alerts_to_packets keeps its header-less default (its own tests pin it); senders that want
    # real names on the ground pass headers=True or queue through downlink.enqueue_alerts.
    assert len(alerts_to_packets(make_alerts(3))) == 3
    assert len(alerts_to_packets(make_alerts(3), headers=True)) == 4
