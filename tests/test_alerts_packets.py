"""CCSDS alert packets: round trips, size, CRC on every bit, sequence-count wrap, stream resync."""

from __future__ import annotations

import struct
from datetime import datetime, timezone

import pytest
from fastcrc import crc16
from spacepackets.ccsds.spacepacket import SequenceFlags, SpacePacketHeader

from pipelines.alerts.model import Alert, make_alert_id
from pipelines.alerts.packets import (
    APID_SCENE,
    APID_VESSEL,
    SEQ_COUNT_MODULO,
    PacketStream,
    SequenceCounter,
    alerts_to_packets,
    decode_packet,
    encode_alert,
    encode_scene_header,
    make_scene_key,
    packets_to_alerts,
    quantise_alert,
)
from pipelines.errors import PacketError

T = datetime(2024, 7, 1, 12, 0, 3, 456789, tzinfo=timezone.utc)


def _alert(kind: str, i: int = 0, scene: str = "CAPELLA_C13_SP_GEO_HH_20240701120003", **kw) -> Alert:
    base = dict(alert_id=make_alert_id(scene, kind, 100.0 + i, 200.0, "sar-cfar"), scene=scene, kind=kind,
                score=0.87654, lon=-70.123456789, lat=-52.987654321, row=1234.56 + i, col=20345.03, acquired=T,
                detector="sar-cfar" if kind != "fire" else "fire-rules")
    if kind == "fire":
        base.update(area_m2=2700.3, pixels=[(1235, 20345), (1236, 20345), (1235, 20346)],
                    attrs={"confidence": "high"})
    else:
        base.update(length_m=123.456, width_m=18.27, heading_deg=359.996, attrs={"rcs": 3.0})
    base.update(kw)
    return Alert(**base)


ALL = [_alert("vessel"), _alert("lifeboat", 1, length_m=None, width_m=None, heading_deg=None), _alert("fire", 2)]


def test_crc_is_ccitt_false() -> None:
    assert crc16.ibm_3740(b"123456789") == 0x29B1  # CRC-16/CCITT-FALSE check value (PUS packet error control)


@pytest.mark.parametrize("alert", ALL, ids=lambda a: a.kind)
def test_round_trip_equals_quantised_original(alert: Alert) -> None:
    pk = encode_alert(alert, 5)
    assert len(pk) <= 64
    got = decode_packet(pk).alert
    q = quantise_alert(alert)
    # Without a scene header the stem and (unknown) detector names are placeholders...
    assert got.scene == f"scene-{make_scene_key(alert.scene):08x}"
    assert got.detector == alert.detector  # ...but the repo's detectors resolve from KNOWN_DETECTORS
    got.scene = alert.scene
    assert got == q
    # What is quantised, exactly:
    assert abs(got.lon - alert.lon) <= 5e-8 and abs(got.lat - alert.lat) <= 5e-8
    assert abs(got.score - alert.score) <= 5e-5
    assert abs((got.acquired - alert.acquired).total_seconds()) <= 5e-4
    assert abs(got.row - alert.row) <= 1 / 32 and abs(got.col - alert.col) <= 1 / 32


def test_vessel_fields_and_heading_wrap() -> None:
    got = decode_packet(encode_alert(ALL[0], 0)).alert
    assert (got.length_m, got.width_m, got.heading_deg) == (123.5, 18.3, 0.0)  # 359.996 rounds to 360 == 0
    assert got.attrs == {}  # attrs are not carried
    lb = decode_packet(encode_alert(ALL[1], 0)).alert
    assert (lb.length_m, lb.width_m, lb.heading_deg) == (None, None, None)


def test_big_fire_cluster_carries_count_only() -> None:
    big = _alert("fire", 3, pixels=[(1235 + k, 20345) for k in range(40)])
    pk = encode_alert(big, 1)
    got = decode_packet(pk).alert
    assert len(pk) == 54 and got.pixels is None and got.attrs == {"pixel_count": 40}
    assert got.area_m2 == pytest.approx(2700.3, rel=1e-7)


@pytest.mark.parametrize("col", [93.495, 93.5, 94.47, 20345.03])
def test_fire_pixels_survive_centre_rounding_across_half_pixel(col: float) -> None:
    # col 93.495 quantises to 93.5 (1/16 px): the on-board and ground whole-pixel centres must agree,
    # or every carried pixel comes back shifted (the fire alert seen in the end-to-end link test).
    px = [(92, 93), (92, 94), (93, 95)]
    fire = _alert("fire", 4, row=92.0, col=col, pixels=px) if col < 1000 else _alert("fire", 4)
    got = decode_packet(encode_alert(fire, 0)).alert
    assert got.pixels == [(int(r), int(c)) for r, c in fire.pixels]
    assert got.pixels == quantise_alert(fire).pixels


def test_scene_header_restores_names_and_sizes() -> None:
    alerts = [_alert("vessel", i, detector="my-new-detector") for i in range(3)] + [_alert("fire", 9)]
    pk = alerts_to_packets(alerts, headers=True)
    assert len(pk) == 5 and SpacePacketHeader.unpack(pk[0]).apid == APID_SCENE
    assert all(len(p) <= 64 for p in pk[1:])
    back = packets_to_alerts(pk)
    assert back == [quantise_alert(a) for a in alerts]
    # Without the header the unknown detector is a placeholder, not a wrong name.
    assert decode_packet(pk[1]).alert.detector.startswith("detector-")


def test_alerts_to_packets_default_is_one_packet_per_alert() -> None:
    # The ground receiver relies on this (tests/test_ground_receiver.py).
    assert len(alerts_to_packets(ALL)) == 3


def test_every_single_bit_flip_is_caught() -> None:
    pk = encode_alert(ALL[2], 77)
    for bit in range(8 * len(pk)):
        bad = bytearray(pk)
        bad[bit // 8] ^= 0x80 >> (bit % 8)
        with pytest.raises(PacketError):
            decode_packet(bytes(bad))


def test_sequence_counts_wrap_at_14_bits() -> None:
    c = SequenceCounter({APID_VESSEL: SEQ_COUNT_MODULO - 2})
    counts = [decode_packet(encode_alert(ALL[0], c.next(APID_VESSEL))).seq_count for _ in range(4)]
    assert counts == [16382, 16383, 0, 1]
    with pytest.raises(PacketError):
        encode_alert(ALL[0], SEQ_COUNT_MODULO)
    assert decode_packet(encode_alert(ALL[0], 0)).seq_flags == SequenceFlags.UNSEGMENTED


def _with_crc(raw: bytes) -> bytes:
    return raw + crc16.ibm_3740(raw).to_bytes(2, "big")


def test_bad_length_version_apid_are_rejected() -> None:
    pk = encode_alert(ALL[0], 3)
    with pytest.raises(PacketError, match="length"):
        decode_packet(pk[:-1])
    with pytest.raises(PacketError, match="length"):
        decode_packet(pk + b"\x00")
    body = pk[:-2]
    odd_apid = bytes([body[0] | 0x07, 0xFF]) + body[2:]
    with pytest.raises(PacketError, match="APID"):
        decode_packet(_with_crc(odd_apid))
    v1 = bytes([body[0] | 0x20]) + body[1:]
    with pytest.raises(PacketError, match="version"):
        decode_packet(_with_crc(v1))
    wrong_fmt = body[:6] + bytes([9]) + body[7:]
    with pytest.raises(PacketError, match="format version"):
        decode_packet(_with_crc(wrong_fmt))
    with pytest.raises(PacketError):
        decode_packet(b"\x08\x01")


def test_scene_header_key_must_match_stem() -> None:
    pk = encode_scene_header("SCENE_A", T, 0, ["sar-cfar"])
    raw = bytearray(pk[:-2])
    raw[7:11] = struct.pack(">I", make_scene_key("SCENE_B"))
    with pytest.raises(PacketError, match="does not match"):
        decode_packet(_with_crc(bytes(raw)))


def test_stream_resyncs_after_corruption_and_garbage() -> None:
    alerts = [_alert("vessel", i) for i in range(10)] + [_alert("fire", 20)]
    pk = alerts_to_packets(alerts, headers=True)
    bad = bytearray(pk[4])
    bad[5] ^= 0x40  # length field: would shift every later packet without resync
    blob = b"\x00\xff\x13garbage" + b"".join(pk[:4]) + bytes(bad) + b"".join(pk[5:])
    for chunk in (len(blob), 1, 7):
        s = PacketStream()
        got = []
        for i in range(0, len(blob), chunk):
            got += s.feed(blob[i:i + chunk])
        got += s.close()
        ids = [d.alert.alert_id for d in got if d.alert is not None]
        expect = [a.alert_id for k, a in enumerate(alerts) if k + 1 != 4]
        assert ids == expect, chunk
        assert s.corrupt == 2 and s.skipped_bytes >= 10 + len(bad)
        # The scene header in the stream resolved names for the alerts that followed.
        assert {d.alert.scene for d in got if d.alert is not None} == {alerts[0].scene}


def test_stream_truncated_tail_counts_as_corrupt() -> None:
    pk = alerts_to_packets(ALL)
    s = PacketStream()
    got = s.feed(b"".join(pk) + pk[0][:20])
    assert len(got) == 3 and s.corrupt == 0
    assert s.close() == [] and s.corrupt == 1 and s.skipped_bytes == 20


def test_encode_rejects_bad_alert_id_and_ranges() -> None:
    with pytest.raises(PacketError):
        encode_alert(_alert("vessel", alert_id="xyz"), 0)
    with pytest.raises(PacketError):
        encode_alert(_alert("vessel", length_m=7000.0), 0)
    with pytest.raises(PacketError):
        encode_alert(_alert("vessel", row=-5.0), 0)
