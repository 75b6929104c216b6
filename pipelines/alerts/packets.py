"""Alerts as compact CCSDS Space Packets (CCSDS 133.0-B-2), built with the ``spacepackets`` library.

Why packets: an alert must fit a few dozen bytes so that it can ride a 200 kbps relay or the first
seconds of a contact; a GeoJSON feature is ~10x larger. Every packet ends with a CRC-16/CCITT
(poly 0x1021, init 0xFFFF: the Packet Error Control of ECSS PUS, ECSS-E-ST-70-41C) over the whole
packet, so the ground detects corruption and does not acknowledge, and the spacecraft resends.

Stable API (the ground segment calls these):

* ``encode_alert(alert, seq_count, scene_key=None) -> bytes``
* ``encode_scene_header(scene, acquired, seq_count, detectors=()) -> bytes``
* ``encode_thumbnail_segments(alert_id, blob, first_seq_count) -> list[bytes]``
* ``decode_packet(data, scenes=None) -> DecodedPacket`` (``.alert`` is the Alert for alert packets;
  PacketError on bad CRC, length, version or unknown APID)
* ``alerts_to_packets(alerts, headers=False, counter=None) -> list[bytes]`` (one packet per alert;
  ``headers=True`` puts a scene header before each scene's first alert)
* ``packets_to_alerts(packets, scenes=None) -> list[Alert]`` (scene headers in the input are
  applied to the alerts that follow; other packets are skipped)
* ``PacketStream`` (``feed(bytes) -> list[DecodedPacket]``, ``close()``): splits a byte stream of
  concatenated packets and resynchronises after a corrupt one.
* ``quantise_alert(alert) -> Alert``: exactly what the ground gets back from one alert packet.

Alert packet (APID per kind: vessel 0x101, lifeboat 0x102, fire 0x103; no secondary header):
6-byte primary header, then big-endian
``u8 format | 8 B alert_id | u32 scene_key | u32 s since 2000-01-01Z + u16 ms | i32 lat, i32 lon
(1e-7 deg) | u16 score*1e4 | u16 detector key | u32 row*16 | u32 col*16``, then per kind
vessel/lifeboat ``u16 length dm | u16 width dm | u16 heading 0.01 deg`` (0xFFFF = unknown), fire
``f32 area m^2 | u16 pixel count | u8 carried | carried x (i8 drow, i8 dcol)``, then the CRC. Pixel
offsets are relative to the *transmitted* centre rounded to whole pixels (``round(row_q / 16)``),
the only centre the ground knows.
Vessels and lifeboats: 53 bytes; fires 54-64 bytes.

Quantisation (what ``quantise_alert`` applies): lon/lat to 1e-7 deg (1.1 cm), score to 1e-4 (the
GeoJSON contract's own rounding, hence u16 rather than u8),
acquired to 1 ms, row/col to 1/16 pixel, length/width to 0.1 m, heading to 0.01 deg, fire area to
float32. Fire pixel lists travel only for clusters of <= 5 pixels within +-127 px of the centre
(larger clusters carry the count, decoded as ``attrs["pixel_count"]``, ``pixels=None``). Not
carried: ``attrs``; lengths/widths/headings of fires; pixels/areas of vessels. The scene name and
detector names travel once per scene in the scene header (APID 0x100); an alert decoded without its
header gets scene ``scene-<key hex>`` and detector ``detector-<key hex>`` unless the detector is one
of :data:`KNOWN_DETECTORS`. Thumbnails (APID 0x104) are segmented with the CCSDS sequence flags.
"""

from __future__ import annotations

import hashlib
import logging
import math
import struct
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta, timezone
from pathlib import Path

from fastcrc import crc16  # spacepackets' own CRC dependency (CRC-16/CCITT-FALSE = ibm_3740)
from spacepackets.ccsds.spacepacket import PacketType, SequenceFlags, SpacePacket, SpacePacketHeader

from pipelines.alerts.model import Alert
from pipelines.errors import PacketError

log = logging.getLogger(__name__)

APID_SCENE = 0x100
APID_VESSEL = 0x101
APID_LIFEBOAT = 0x102
APID_FIRE = 0x103
APID_THUMBNAIL = 0x104
APID_BY_KIND = {"vessel": APID_VESSEL, "lifeboat": APID_LIFEBOAT, "fire": APID_FIRE}
KIND_BY_APID = {v: k for k, v in APID_BY_KIND.items()}
KNOWN_APIDS = frozenset({APID_SCENE, APID_THUMBNAIL, *APID_BY_KIND.values()})

#: Sequence counts are 14 bits (CCSDS 133.0-B-2 sec. 4.1.3.4.2): they wrap after 16383.
SEQ_COUNT_MODULO = 1 << 14
PRIMARY_HEADER_LEN = 6
CRC_LEN = 2
#: Our payload format version (first user-data byte), bumped on any layout change.
FORMAT_VERSION = 1
#: Largest packet the reader accepts: bounds resync's look-ahead; thumbnails segment below it.
MAX_PACKET_LEN = 1024
#: Thumbnail segment payload so a segment packet stays <= 256 bytes (fits one small TM frame).
THUMB_SEGMENT_BYTES = 256 - PRIMARY_HEADER_LEN - 1 - 8 - 2 - 2 - CRC_LEN

TIME_EPOCH = datetime(2000, 1, 1, tzinfo=timezone.utc)
MAX_FIRE_PIXELS_CARRIED = 5
NONE16 = 0xFFFF

_ALERT_HEAD = struct.Struct(">B8sIIHiiHHII")  # 39 bytes
_VESSEL_TAIL = struct.Struct(">HHH")
_FIRE_TAIL = struct.Struct(">fHB")
_SCENE_HEAD = struct.Struct(">BIIHB")
_THUMB_HEAD = struct.Struct(">B8sHH")  # format, alert_id, total length, offset

#: Detectors resolvable without a scene header (the repo's registered detector names).
KNOWN_DETECTORS: tuple[str, ...] = ("sar-cfar", "sar-learned", "fire-rules", "fire-learned", "fire-learned-onnx",
                                    "fire-rules:schroeder2016", "fire-rules:murphy2016",
                                    "fire-rules:kumar_roy2018", "fire-rules:contextual_bt")


def make_scene_key(scene: str) -> int:
    """32-bit key of a scene stem: deterministic, so the encoder needs no state to assign keys."""
    return int.from_bytes(hashlib.blake2b(scene.encode("utf-8"), digest_size=4).digest(), "big")


def detector_key(name: str) -> int:
    """16-bit key of a detector name (resolved via the scene header or KNOWN_DETECTORS)."""
    return int.from_bytes(hashlib.blake2b(name.encode("utf-8"), digest_size=2).digest(), "big")


_KNOWN_BY_KEY = {detector_key(n): n for n in KNOWN_DETECTORS}


@dataclass(frozen=True, slots=True)
class SceneHeader:
    """Per-scene context sent once: key -> stem, acquisition time, detector names."""

    scene_key: int
    scene: str
    acquired: datetime
    detectors: dict[int, str] = field(default_factory=dict)


SceneTable = dict[int, SceneHeader]


@dataclass(frozen=True, slots=True)
class ThumbSegment:
    """One piece of a thumbnail blob (see :mod:`pipelines.alerts.thumbnail`)."""

    alert_id: str
    total_len: int
    offset: int
    data: bytes


@dataclass(frozen=True, slots=True)
class DecodedPacket:
    """One verified packet; exactly one of ``alert``, ``scene``, ``thumb`` is set."""

    apid: int
    seq_count: int
    seq_flags: SequenceFlags
    length: int
    alert: Alert | None = None
    scene: SceneHeader | None = None
    thumb: ThumbSegment | None = None

    @property
    def kind(self) -> str:
        return "alert" if self.alert is not None else "scene" if self.scene is not None else "thumbnail"


class SequenceCounter:
    """Per-APID 14-bit source sequence counts (the ground uses gaps to count lost packets)."""

    def __init__(self, start: dict[int, int] | None = None) -> None:
        self._next = dict(start or {})

    def next(self, apid: int) -> int:
        n = self._next.get(apid, 0)
        self._next[apid] = (n + 1) % SEQ_COUNT_MODULO
        return n

    def peek(self, apid: int) -> int:
        return self._next.get(apid, 0)


# --- low level ---------------------------------------------------------------------------------

def _packet(apid: int, seq_count: int, body: bytes, flags: SequenceFlags = SequenceFlags.UNSEGMENTED) -> bytes:
    """Primary header (spacepackets) + body + CRC-16 over everything before it."""
    if not (0 <= seq_count < SEQ_COUNT_MODULO):
        raise PacketError(f"sequence count must be in [0, {SEQ_COUNT_MODULO - 1}], got {seq_count}")
    hdr = SpacePacketHeader(packet_type=PacketType.TM, apid=apid, seq_count=seq_count,
                            data_len=len(body) + CRC_LEN - 1, sec_header_flag=False, seq_flags=flags)
    raw = bytes(SpacePacket(hdr, None, body).pack())
    return raw + crc16.ibm_3740(raw).to_bytes(2, "big")


def _time_fields(dt: datetime) -> tuple[int, int]:
    ms_total = round((dt.astimezone(timezone.utc) - TIME_EPOCH) / timedelta(milliseconds=1))
    sec, ms = divmod(ms_total, 1000)
    if not (0 <= sec <= 0xFFFFFFFF):
        raise PacketError(f"time {dt.isoformat()} outside the packet's 2000-2136 range")
    return sec, ms


def _time_from(sec: int, ms: int) -> datetime:
    return TIME_EPOCH + timedelta(seconds=sec, milliseconds=ms)


def _u16_or_none(value: float | None, scale: float, what: str, modulo: int | None = None) -> int:
    if value is None:
        return NONE16
    q = round(float(value) * scale)
    if modulo is not None:
        q %= modulo
    if not (0 <= q < NONE16):
        raise PacketError(f"{what} {value} does not fit the packet (0..{(NONE16 - 1) / scale})")
    return q


def _pixel_origin(row_q: int, col_q: int) -> tuple[int, int]:
    """Whole-pixel reference that fire pixel offsets are relative to.

    Why from the *quantised* centre: the ground only knows ``row_q / 16``, so encoder and decoder
    must both round that value. Rounding the unquantised centre instead disagrees whenever the
    1/16-pixel rounding crosses a .5 boundary (col 93.495 -> 93 on board, 93.5 -> 94 on the
    ground), and every carried pixel came back shifted by one.
    """
    return int(round(row_q / 16)), int(round(col_q / 16))


def _fire_pixels(alert: Alert) -> tuple[int, list[tuple[int, int]] | None]:
    """Pixel count and the offsets to carry (None when the cluster is too big or too spread)."""
    px = alert.pixels or []
    r0, c0 = _pixel_origin(round(alert.row * 16), round(alert.col * 16))
    if len(px) > MAX_FIRE_PIXELS_CARRIED:
        return len(px), None
    offs = [(int(r) - r0, int(c) - c0) for r, c in px]
    if any(not (-128 <= d <= 127) for o in offs for d in o):
        return len(px), None
    return len(px), offs


# --- encoding ----------------------------------------------------------------------------------

def encode_alert(alert: Alert, seq_count: int, scene_key: int | None = None) -> bytes:
    """One alert -> one packet (53-64 bytes). ``scene_key`` defaults to the key of ``alert.scene``."""
    key = make_scene_key(alert.scene) if scene_key is None else scene_key
    if not (0 <= key <= 0xFFFFFFFF):
        raise PacketError(f"scene key must be a u32, got {key}")
    try:
        aid = bytes.fromhex(alert.alert_id)
    except ValueError as exc:
        raise PacketError(f"alert_id {alert.alert_id!r} is not hex") from exc
    if len(aid) != 8:
        raise PacketError(f"alert_id {alert.alert_id!r} must be 16 hex characters (8 bytes)")
    sec, ms = _time_fields(alert.acquired)
    row_q, col_q = round(alert.row * 16), round(alert.col * 16)
    if not (0 <= row_q <= 0xFFFFFFFF and 0 <= col_q <= 0xFFFFFFFF):
        raise PacketError(f"row/col ({alert.row}, {alert.col}) outside [0, 2^28) pixels")
    body = _ALERT_HEAD.pack(FORMAT_VERSION, aid, key, sec, ms, round(alert.lat * 1e7), round(alert.lon * 1e7),
                            round(float(alert.score) * 10000), detector_key(alert.detector), row_q, col_q)
    if alert.kind == "fire":
        area = math.nan if alert.area_m2 is None else float(alert.area_m2)
        n, offs = _fire_pixels(alert)
        if n > 0xFFFF:
            raise PacketError(f"fire cluster of {n} pixels exceeds the u16 count")
        carried = offs or []
        body += _FIRE_TAIL.pack(area, n, len(carried) if offs is not None else 0)
        body += b"".join(struct.pack(">bb", dr, dc) for dr, dc in carried)
    else:
        body += _VESSEL_TAIL.pack(_u16_or_none(alert.length_m, 10, "length_m"),
                                  _u16_or_none(alert.width_m, 10, "width_m"),
                                  _u16_or_none(alert.heading_deg, 100, "heading_deg", modulo=36000))
    return _packet(APID_BY_KIND[alert.kind], seq_count, body)


def encode_scene_header(scene: str, acquired: datetime, seq_count: int, detectors: Iterable[str] = ()) -> bytes:
    """The once-per-scene packet that gives alerts their scene stem and detector names back."""
    stem = scene.encode("utf-8")
    names = sorted(set(detectors))
    if len(stem) > 255 or len(names) > 255 or any(len(n.encode()) > 255 for n in names):
        raise PacketError("scene stem, detector names and detector count must each fit 255")
    sec, ms = _time_fields(acquired)
    body = _SCENE_HEAD.pack(FORMAT_VERSION, make_scene_key(scene), sec, ms, len(stem)) + stem + bytes([len(names)])
    for n in names:
        b = n.encode("utf-8")
        body += struct.pack(">HB", detector_key(n), len(b)) + b
    return _packet(APID_SCENE, seq_count, body)


def encode_thumbnail_segments(alert_id: str, blob: bytes, first_seq_count: int,
                              segment_bytes: int = THUMB_SEGMENT_BYTES) -> list[bytes]:
    """Split a thumbnail blob over packets with CCSDS first/continuation/last flags.

    Every segment repeats the alert id, total length and offset, so a lost segment is detected
    (and the whole thumbnail is re-requested) instead of silently reassembling garbage.
    """
    if not blob:
        raise PacketError("empty thumbnail")
    if len(blob) > 0xFFFF:
        raise PacketError(f"thumbnail of {len(blob)} B exceeds 65535 B")
    if not (1 <= segment_bytes <= MAX_PACKET_LEN - 32):
        raise PacketError(f"segment_bytes must be in [1, {MAX_PACKET_LEN - 32}]")
    aid = bytes.fromhex(alert_id)
    chunks = [blob[i:i + segment_bytes] for i in range(0, len(blob), segment_bytes)]
    out = []
    for i, chunk in enumerate(chunks):
        if len(chunks) == 1:
            flags = SequenceFlags.UNSEGMENTED
        elif i == 0:
            flags = SequenceFlags.FIRST_SEGMENT
        elif i == len(chunks) - 1:
            flags = SequenceFlags.LAST_SEGMENT
        else:
            flags = SequenceFlags.CONTINUATION_SEGMENT
        body = _THUMB_HEAD.pack(FORMAT_VERSION, aid, len(blob), i * segment_bytes) + chunk
        out.append(_packet(APID_THUMBNAIL, (first_seq_count + i) % SEQ_COUNT_MODULO, body, flags))
    return out


def quantise_alert(alert: Alert) -> Alert:
    """The alert exactly as one packet brings it back (see the module docstring)."""
    sec, ms = _time_fields(alert.acquired)
    q = replace(
        alert,
        score=round(float(alert.score) * 10000) / 10000,
        lon=round(alert.lon * 1e7) / 1e7, lat=round(alert.lat * 1e7) / 1e7,
        row=round(alert.row * 16) / 16, col=round(alert.col * 16) / 16,
        acquired=_time_from(sec, ms), attrs={}, pixels=None, area_m2=None,
        length_m=None, width_m=None, heading_deg=None,
    )
    if alert.kind == "fire":
        n, offs = _fire_pixels(alert)
        q.area_m2 = None if alert.area_m2 is None else float(struct.unpack(">f", struct.pack(">f", alert.area_m2))[0])
        # Carried pixels are exact integers: the ground gets the very same list back.
        q.pixels = None if offs is None else [(int(r), int(c)) for r, c in (alert.pixels or [])]
        if offs is None:
            q.attrs = {"pixel_count": n}
    else:
        q.length_m = None if alert.length_m is None else round(alert.length_m * 10) / 10
        q.width_m = None if alert.width_m is None else round(alert.width_m * 10) / 10
        q.heading_deg = None if alert.heading_deg is None else (round(alert.heading_deg * 100) % 36000) / 100
    return q


# --- decoding ----------------------------------------------------------------------------------

def _check(data: bytes) -> SpacePacketHeader:
    """Header sanity, exact length, CRC. Raises PacketError with the reason."""
    if len(data) < PRIMARY_HEADER_LEN + CRC_LEN:
        raise PacketError(f"packet of {len(data)} B is shorter than header + CRC")
    hdr = SpacePacketHeader.unpack(data)
    if hdr.ccsds_version != 0:
        raise PacketError(f"CCSDS version {hdr.ccsds_version} != 0")
    if hdr.packet_len != len(data):
        raise PacketError(f"length field says {hdr.packet_len} B, got {len(data)} B")
    if crc16.ibm_3740(bytes(data)) != 0:
        raise PacketError("CRC-16 mismatch")
    if hdr.packet_type != PacketType.TM or hdr.sec_header_flag:
        raise PacketError("not an orbitwatch TM packet (type/secondary header flag)")
    if hdr.apid not in KNOWN_APIDS:
        raise PacketError(f"unknown APID 0x{hdr.apid:03x}")
    return hdr


def _decode_alert(apid: int, body: bytes, scenes: SceneTable | None) -> Alert:
    (ver, aid, key, sec, ms, lat_q, lon_q, score_q, det_k, row_q, col_q) = _ALERT_HEAD.unpack_from(body)
    if ver != FORMAT_VERSION:
        raise PacketError(f"alert format version {ver} != {FORMAT_VERSION}")
    kind = KIND_BY_APID[apid]
    hdr = (scenes or {}).get(key)
    scene = hdr.scene if hdr is not None else f"scene-{key:08x}"
    detector = (hdr.detectors.get(det_k) if hdr is not None else None) or _KNOWN_BY_KEY.get(det_k) \
        or f"detector-{det_k:04x}"
    row, col = row_q / 16, col_q / 16
    kw: dict = {}
    rest = body[_ALERT_HEAD.size:]
    if kind == "fire":
        if len(rest) < _FIRE_TAIL.size:
            raise PacketError("fire packet too short")
        area, n, carried = _FIRE_TAIL.unpack_from(rest)
        offs_raw = rest[_FIRE_TAIL.size:]
        if len(offs_raw) != 2 * carried or carried > MAX_FIRE_PIXELS_CARRIED:
            raise PacketError(f"fire packet carries {len(offs_raw)} B of pixels, expected {2 * carried}")
        r0, c0 = _pixel_origin(row_q, col_q)
        offs = [struct.unpack_from(">bb", offs_raw, 2 * i) for i in range(carried)]
        kw["area_m2"] = None if math.isnan(area) else float(area)
        if carried == n:
            kw["pixels"] = [(r0 + dr, c0 + dc) for dr, dc in offs]
        else:
            kw["attrs"] = {"pixel_count": n}
    else:
        if len(rest) != _VESSEL_TAIL.size:
            raise PacketError(f"{kind} packet tail is {len(rest)} B, expected {_VESSEL_TAIL.size}")
        length, width, heading = _VESSEL_TAIL.unpack(rest)
        kw["length_m"] = None if length == NONE16 else length / 10
        kw["width_m"] = None if width == NONE16 else width / 10
        kw["heading_deg"] = None if heading == NONE16 else heading / 100
    return Alert(alert_id=aid.hex(), scene=scene, kind=kind, score=score_q / 10000, lon=lon_q / 1e7, lat=lat_q / 1e7,
                 row=row, col=col, acquired=_time_from(sec, ms), detector=detector, **kw)


def _decode_scene(body: bytes) -> SceneHeader:
    ver, key, sec, ms, n = _SCENE_HEAD.unpack_from(body)
    if ver != FORMAT_VERSION:
        raise PacketError(f"scene header format version {ver} != {FORMAT_VERSION}")
    pos = _SCENE_HEAD.size
    stem = body[pos:pos + n].decode("utf-8")
    pos += n
    count = body[pos]
    pos += 1
    dets: dict[int, str] = {}
    for _ in range(count):
        k, ln = struct.unpack_from(">HB", body, pos)
        pos += 3
        dets[k] = body[pos:pos + ln].decode("utf-8")
        pos += ln
    if pos != len(body):
        raise PacketError(f"scene header has {len(body) - pos} trailing bytes")
    if make_scene_key(stem) != key:
        raise PacketError(f"scene key 0x{key:08x} does not match stem {stem!r}")
    return SceneHeader(scene_key=key, scene=stem, acquired=_time_from(sec, ms), detectors=dets)


def decode_packet(data: bytes | bytearray | memoryview, scenes: SceneTable | None = None) -> DecodedPacket:
    """Verify and decode one whole packet; ``scenes`` resolves scene keys and detector names.

    A scene header is returned, not applied: callers that want later alerts resolved add
    ``pkt.scene`` to their table (``PacketStream`` and ``packets_to_alerts`` do).
    """
    data = bytes(data)
    hdr = _check(data)
    body = data[PRIMARY_HEADER_LEN:-CRC_LEN]
    try:
        base = dict(apid=hdr.apid, seq_count=hdr.seq_count, seq_flags=hdr.seq_flags, length=len(data))
        if hdr.apid in KIND_BY_APID:
            if hdr.seq_flags != SequenceFlags.UNSEGMENTED:
                raise PacketError("alert packets are never segmented")
            return DecodedPacket(alert=_decode_alert(hdr.apid, body, scenes), **base)
        if hdr.apid == APID_SCENE:
            return DecodedPacket(scene=_decode_scene(body), **base)
        ver, aid, total, offset = _THUMB_HEAD.unpack_from(body)
        if ver != FORMAT_VERSION:
            raise PacketError(f"thumbnail format version {ver} != {FORMAT_VERSION}")
        chunk = body[_THUMB_HEAD.size:]
        if offset + len(chunk) > total:
            raise PacketError("thumbnail segment runs past the declared total length")
        return DecodedPacket(thumb=ThumbSegment(aid.hex(), total, offset, chunk), **base)
    except PacketError:
        raise
    except (struct.error, UnicodeDecodeError, IndexError, ValueError) as exc:
        # A CRC-valid packet with a broken body: an encoder bug or a format mismatch.
        raise PacketError(f"malformed APID 0x{hdr.apid:03x} body: {exc}") from exc


# --- many packets ------------------------------------------------------------------------------

def alerts_to_packets(alerts: Sequence[Alert], headers: bool = False,
                      counter: SequenceCounter | None = None) -> list[bytes]:
    """Encode alerts in order, counting sequence numbers per APID.

    ``headers=True`` inserts one scene header (with the scene's detector names) before each
    scene's first alert, so ``packets_to_alerts`` restores scene stems and detector names.
    """
    seq = counter or SequenceCounter()
    out: list[bytes] = []
    sent: set[str] = set()
    by_scene: dict[str, set[str]] = {}
    for a in alerts:
        by_scene.setdefault(a.scene, set()).add(a.detector)
    for a in alerts:
        if headers and a.scene not in sent:
            out.append(encode_scene_header(a.scene, a.acquired, seq.next(APID_SCENE), by_scene[a.scene]))
            sent.add(a.scene)
        out.append(encode_alert(a, seq.next(APID_BY_KIND[a.kind])))
    return out


def packets_to_alerts(packets: Iterable[bytes], scenes: SceneTable | None = None) -> list[Alert]:
    """Ground side: decode whole packets, applying scene headers; corrupt packets raise PacketError.

    Use :class:`PacketStream` for raw byte streams where corrupt packets must be skipped.
    """
    table: SceneTable = scenes if scenes is not None else {}
    out: list[Alert] = []
    for p in packets:
        d = decode_packet(p, table)
        if d.scene is not None:
            table[d.scene.scene_key] = d.scene
        elif d.alert is not None:
            out.append(d.alert)
    return out


class PacketStream:
    """Incremental splitter of concatenated packets that survives corruption.

    Why resync: one flipped bit in a length field would otherwise shift every later packet. A
    candidate packet is accepted only when its header is plausible (version 0, TM, known APID,
    length <= MAX_PACKET_LEN) and its CRC verifies; otherwise the reader slides one byte and
    tries again. Skipped bytes and corrupt episodes are counted.
    """

    def __init__(self, scenes: SceneTable | None = None, max_packet_len: int = MAX_PACKET_LEN) -> None:
        self.scenes: SceneTable = scenes if scenes is not None else {}
        self.max_packet_len = max_packet_len
        self._buf = bytearray()
        self.packets = 0
        self.corrupt = 0
        self.skipped_bytes = 0
        self._in_garbage = False

    def _plausible_len(self, pos: int) -> int | None:
        b = self._buf
        if (b[pos] >> 5) != 0 or (b[pos] >> 4) & 1 != PacketType.TM or (b[pos] >> 3) & 1:
            return None
        apid = ((b[pos] & 0x07) << 8) | b[pos + 1]
        total = PRIMARY_HEADER_LEN + ((b[pos + 4] << 8) | b[pos + 5]) + 1
        if apid not in KNOWN_APIDS or total > self.max_packet_len or total < PRIMARY_HEADER_LEN + CRC_LEN + 1:
            return None
        return total

    def _skip(self, n: int) -> None:
        if not self._in_garbage:
            self.corrupt += 1
            self._in_garbage = True
        self.skipped_bytes += n

    def _drain(self, final: bool) -> list[DecodedPacket]:
        out: list[DecodedPacket] = []
        pos = 0
        b = self._buf
        while len(b) - pos >= PRIMARY_HEADER_LEN:
            total = self._plausible_len(pos)
            if total is None:
                self._skip(1)
                pos += 1
                continue
            if len(b) - pos < total:
                if final:
                    self._skip(1)
                    pos += 1
                    continue
                break
            try:
                d = decode_packet(b[pos:pos + total], self.scenes)
            except PacketError as exc:
                if not self._in_garbage:
                    log.warning("corrupt packet at stream offset +%d: %s", pos, exc)
                self._skip(1)
                pos += 1
                continue
            self._in_garbage = False
            if d.scene is not None:
                self.scenes[d.scene.scene_key] = d.scene
            self.packets += 1
            out.append(d)
            pos += total
        if final and pos < len(b):
            self._skip(len(b) - pos)
            pos = len(b)
        del b[:pos]
        return out

    def feed(self, data: bytes | bytearray | memoryview) -> list[DecodedPacket]:
        """Add bytes; return every packet now complete and valid."""
        self._buf.extend(data)
        return self._drain(final=False)

    def close(self) -> list[DecodedPacket]:
        """End of stream: whatever is left is either packets or counted as skipped garbage."""
        out = self._drain(final=True)
        self._in_garbage = False
        return out


def iter_packets(data: bytes, scenes: SceneTable | None = None) -> Iterator[DecodedPacket]:
    """All valid packets of a complete byte string (a downlinked file)."""
    s = PacketStream(scenes)
    yield from s.feed(data)
    yield from s.close()


def read_packet_file(path: str | Path, scenes: SceneTable | None = None) -> tuple[list[DecodedPacket], PacketStream]:
    """Decode a packet file; the stream object carries the corrupt/skipped counters."""
    s = PacketStream(scenes)
    with open(path, "rb") as fh:
        out = s.feed(fh.read())
    out += s.close()
    return out, s
