"""The receiver: packets and GeoJSON into the store, CRC failures counted, duplicates dropped, acks after commit."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from _ground_util import make_alerts
from pipelines.alerts.model import feature_collection
from pipelines.errors import GroundError
from pipelines.ground.receiver import Receiver, split_frames
from pipelines.ground.signing import generate_secret
from pipelines.ground.store import AlertStore, Subscriber


def _packet(payload: bytes) -> bytes:
    """A bare CCSDS frame (header + data field) for the framing tests; no CRC semantics needed."""
    return bytes([0x08, 0x01, 0xC0, 0x00]) + (len(payload) - 1).to_bytes(2, "big") + payload


def test_split_frames_cuts_at_length_fields_and_keeps_the_tail() -> None:
    a, b = _packet(b"x" * 10), _packet(b"y" * 300)
    frames, used = split_frames(a + b + b[:7])
    assert frames == [a, b] and used == len(a) + len(b)
    assert split_frames(b"\x08\x01") == ([], 0)


def test_geojson_ingest_dedupes_and_acks_after_commit(tmp_path: Path) -> None:
    alerts = make_alerts(12)
    path = tmp_path / "alerts.geojson"
    path.write_text(json.dumps(feature_collection(alerts)))
    acks: list[list[str]] = []
    with AlertStore(tmp_path / "g.sqlite") as st:
        st.add_subscriber(Subscriber(name="a", url="http://127.0.0.1:9/", secret=generate_secret()))

        def on_ack(ids: list[str]) -> None:
            # Acked ids are already committed: a second connection can see them.
            with AlertStore(tmp_path / "g.sqlite") as other:
                assert other.existing_ids(ids) == set(ids)
            acks.append(ids)
        rx = Receiver(st, on_ack=on_ack, batch_size=5)
        rep = rx.receive_file(path)
        assert (rep.alerts, rep.stored, rep.duplicates, rep.corrupt, rep.deliveries) == (12, 12, 0, 0, 12)
        assert [len(a) for a in acks] == [5, 5, 2]
        rep2 = rx.receive_geojson(feature_collection(alerts[:4]) | {})
        assert (rep2.stored, rep2.duplicates, len(rep2.acked)) == (0, 4, 4)  # duplicates are acked again
        one = rx.receive_geojson(alerts[0].to_feature())
        assert one.duplicates == 1
        assert st.alert_count() == 12 and st.pending_count() == 12


def test_geojson_bad_features_are_counted_not_stored(tmp_path: Path) -> None:
    good = make_alerts(3)
    doc = feature_collection(good)
    doc["features"].append({"type": "Feature", "properties": {"kind": "ufo"}})
    doc["features"].append(good[0].to_feature() | {"properties": {**good[0].to_feature()["properties"], "score": 7}})
    with AlertStore(tmp_path / "g.sqlite") as st:
        rep = Receiver(st).receive_geojson(doc, source="mixed")
        assert (rep.stored, rep.corrupt, len(rep.errors)) == (3, 2, 2)
        assert st.counters()["features_invalid"] == 2


def test_geojson_errors(tmp_path: Path) -> None:
    bad = tmp_path / "bad.geojson"
    bad.write_text("{not json")
    with AlertStore(tmp_path / "g.sqlite") as st:
        rx = Receiver(st)
        with pytest.raises(GroundError):
            rx.receive_file(bad)
        with pytest.raises(GroundError):
            rx.receive_geojson({"type": "Point", "coordinates": [0, 0]})
        with pytest.raises(GroundError):
            rx.receive_file(tmp_path / "missing.bin")
        with pytest.raises(GroundError):
            Receiver(st, batch_size=0)


def test_folder_ingest_skips_done_and_partial_files(tmp_path: Path) -> None:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    (inbox / "a.geojson").write_text(json.dumps(feature_collection(make_alerts(3))))
    (inbox / "b.geojson.part").write_text("{half")
    with AlertStore(tmp_path / "g.sqlite") as st:
        rx = Receiver(st)
        assert [r.stored for r in rx.receive_folder(inbox)] == [3]
        assert list(rx.receive_folder(inbox)) == []  # already done
        (inbox / "c.json").write_text(json.dumps(feature_collection(make_alerts(5))))
        assert [r.stored for r in rx.receive_folder(inbox)] == [2]


# --- packets: need pipelines.alerts.packets (the CCSDS encoding, owned by the alerts package) ---------

def _packets() -> object:
    import pipelines.alerts.packets as packets

    return packets


def _encode(alerts: list) -> list[bytes]:
    mod = _packets()
    return [bytes(p) for p in mod.alerts_to_packets(alerts)]  # type: ignore[attr-defined]


def test_packets_roundtrip_dedupe_corrupt_and_ack(tmp_path: Path) -> None:
    alerts = make_alerts(20)
    pk = _encode(alerts)
    bad = bytearray(pk[3])
    bad[len(bad) // 2] ^= 0xFF  # one flipped byte in the data field: CRC must fail
    stream = b"".join(pk[:3]) + bytes(bad) + b"".join(pk[4:]) + pk[0] + pk[1]  # plus two repeats
    acks: list[str] = []
    with AlertStore(tmp_path / "g.sqlite") as st:
        rep = Receiver(st, on_ack=acks.extend).receive_bytes(stream, "pass-1")
        assert (rep.packets, rep.corrupt, rep.stored, rep.duplicates) == (22, 1, 19, 2)
        assert alerts[3].alert_id not in acks  # not acked: the downlink must send it again
        assert set(acks) == {a.alert_id for a in alerts} - {alerts[3].alert_id}
        assert st.counters()["packets_corrupt"] == 1
        for a in alerts[:3]:
            assert st.alert(a.alert_id).alert_id == a.alert_id
        # The retransmission arrives intact on the next pass.
        rep2 = Receiver(st, on_ack=acks.extend).receive_stream(io.BytesIO(pk[3]), "pass-2")
        assert rep2.stored == 1 and st.alert_count() == 20


def test_packet_file_truncated_tail(tmp_path: Path) -> None:
    pk = _encode(make_alerts(5))
    f = tmp_path / "pass.bin"
    f.write_bytes(b"".join(pk) + pk[0][:9])
    with AlertStore(tmp_path / "g.sqlite") as st:
        rep = Receiver(st).receive_file(f)
        assert (rep.stored, rep.corrupt) == (5, 1) and "truncated" in rep.errors[0]
