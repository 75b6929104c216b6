"""A downlink pass end to end: queue -> (noisy) channel -> ground decoder -> acks -> queue.

Why a channel model: "nothing is lost" is only a claim until packets are actually corrupted. The
model flips independent bits at a post-decoding bit error rate; the ground's CRC check rejects the
hit packets, they are not acknowledged, and the next round or pass sends them again.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from pipelines.alerts.model import Alert
from pipelines.alerts.packets import (
    APID_BY_KIND,
    APID_SCENE,
    DecodedPacket,
    PacketStream,
    SequenceCounter,
    encode_alert,
    encode_scene_header,
    make_scene_key,
)
from pipelines.alerts.thumbnail import ThumbnailAssembler, thumbnail_packets
from pipelines.downlink.queue import DownlinkQueue, Priority, QueueItem, Transfer
from pipelines.errors import DownlinkError

log = logging.getLogger(__name__)

#: Frame size for the packet error rate of size-only (raw) transfers: one CCSDS TM transfer frame
#: of 1115 bytes (the RS(255,223) interleave-5 frame of CCSDS 131.0-B / 132.0-B).
FRAME_BYTES = 1115


def scene_item_id(scene: str) -> str:
    return f"scene:{make_scene_key(scene):08x}"


def thumb_item_id(alert_id: str) -> str:
    return f"thumb:{alert_id}"


def ack_id(pkt: DecodedPacket) -> str | None:
    """Queue id a verified packet acknowledges (thumbnail segments: only when the blob is whole)."""
    if pkt.alert is not None:
        return pkt.alert.alert_id
    if pkt.scene is not None:
        return f"scene:{pkt.scene.scene_key:08x}"
    return None


def enqueue_alerts(queue: DownlinkQueue, alerts: Sequence[Alert], created_s: float, counter: SequenceCounter,
                   thumbnails: dict[str, bytes] | None = None) -> int:
    """Queue one scene header per new scene, one packet per alert, and optional thumbnails.

    Returns the bytes queued. Sequence counts are assigned here, once: a retransmission is the
    same packet (same count), which the ground de-duplicates by alert id.
    """
    total = 0
    seen: set[str] = set()
    dets: dict[str, set[str]] = {}
    for a in alerts:
        dets.setdefault(a.scene, set()).add(a.detector)
    for a in alerts:
        if a.scene not in seen:
            seen.add(a.scene)
            sid = scene_item_id(a.scene)
            if queue.store.get(sid) is None:
                pk = encode_scene_header(a.scene, a.acquired, counter.next(APID_SCENE), dets[a.scene])
                queue.enqueue(QueueItem(sid, Priority.ALERT, len(pk), created_s, payload=pk))
                total += len(pk)
        pk = encode_alert(a, counter.next(APID_BY_KIND[a.kind]))
        queue.enqueue(QueueItem(a.alert_id, Priority.ALERT, len(pk), created_s, payload=pk))
        total += len(pk)
    for aid, blob in (thumbnails or {}).items():
        a = next((x for x in alerts if x.alert_id == aid), None)
        if a is None:
            raise DownlinkError(f"thumbnail for unknown alert {aid}")
        pk = b"".join(thumbnail_packets(a, blob, counter))
        queue.enqueue(QueueItem(thumb_item_id(aid), Priority.THUMBNAIL, len(pk), created_s, payload=pk))
        total += len(pk)
    return total


class Channel:
    """Independent bit errors at ``ber`` (seeded, so tests are reproducible)."""

    def __init__(self, ber: float = 0.0, seed: int = 0) -> None:
        if not (0.0 <= ber < 0.5):
            raise DownlinkError(f"bit error rate must be in [0, 0.5), got {ber}")
        self.ber = ber
        self.rng = np.random.default_rng(seed)
        self.flipped_bits = 0

    def transmit(self, data: bytes) -> bytes:
        """The bytes as received: each bit flipped with probability ``ber``."""
        if self.ber == 0.0 or not data:
            return data
        nbits = 8 * len(data)
        k = int(self.rng.binomial(nbits, self.ber))
        if k == 0:
            return data
        out = bytearray(data)
        for pos in self.rng.choice(nbits, size=k, replace=False):
            out[pos >> 3] ^= 0x80 >> (pos & 7)
        self.flipped_bits += k
        return bytes(out)

    def frame_success(self) -> float:
        """Probability that one transfer frame arrives intact: (1 - BER)^(8 * FRAME_BYTES)."""
        return math.exp(8 * FRAME_BYTES * math.log1p(-self.ber)) if self.ber else 1.0

    def deliver_size_only(self, nbytes: int) -> int:
        """Bytes of a size-only (raw) chunk that arrive in intact frames.

        Lost frames are re-sent later (selective repeat, as CFDP class 2 NAKs do), so the
        delivered count is what the ground confirms.
        """
        frames = -(-nbytes // FRAME_BYTES)
        ok = frames if self.ber == 0.0 else int(self.rng.binomial(frames, self.frame_success()))
        return nbytes if ok == frames else ok * FRAME_BYTES


class GroundEndpoint:
    """Minimal ground receiver: verifies packets, reassembles thumbnails, returns ack ids."""

    def __init__(self) -> None:
        self.stream = PacketStream()
        self.thumbs = ThumbnailAssembler()
        self.alerts: dict[str, Alert] = {}
        self.thumbnails: dict[str, bytes] = {}
        self.raw_bytes: dict[str, int] = {}

    def receive(self, data: bytes) -> list[str]:
        ids: list[str] = []
        for pkt in self.stream.feed(data) + self.stream.close():
            if pkt.thumb is not None:
                done = self.thumbs.add(pkt)
                if done is not None:
                    self.thumbnails[done[0]] = done[1]
                    ids.append(thumb_item_id(done[0]))
                continue
            if pkt.alert is not None:
                self.alerts.setdefault(pkt.alert.alert_id, pkt.alert)
            aid = ack_id(pkt)
            if aid is not None:
                ids.append(aid)
        return ids


@dataclass(slots=True)
class PassReport:
    """What one contact or relay session moved."""

    budget_bytes: int
    sent_bytes: int = 0
    acked: list[str] = field(default_factory=list)
    rounds: int = 0
    #: (item_id, priority, bytes) in send order, for latency accounting.
    sent: list[tuple[str, Priority, int]] = field(default_factory=list)


def run_pass(queue: DownlinkQueue, budget_bytes: int, channel: Channel, ground: GroundEndpoint,
             now_s: float | None = None, max_rounds: int = 16,
             max_priority: Priority = Priority.RAW) -> PassReport:
    """Send, let the ground acknowledge, resend what was not acknowledged, until the budget is spent.

    Acks come back within the pass (the uplink is open during a contact); whatever is still
    unacknowledged at the end stays queued for the next pass.
    """
    rep = PassReport(budget_bytes=budget_bytes)
    if not len(queue):
        return rep
    left = budget_bytes
    while left > 0 and rep.rounds < max_rounds:
        transfers: list[Transfer] = queue.plan(left, now_s=now_s, max_priority=max_priority)
        if not transfers:
            break
        rep.rounds += 1
        blob = b"".join(t.data for t in transfers if t.data is not None)
        acks = ground.receive(channel.transmit(blob)) if blob else []
        for t in transfers:
            rep.sent_bytes += t.nbytes
            left -= t.nbytes
            rep.sent.append((t.item_id, t.priority, t.nbytes))
            if t.data is None:
                got = channel.deliver_size_only(t.nbytes)
                ground.raw_bytes[t.item_id] = ground.raw_bytes.get(t.item_id, 0) + got
                queue.confirm(t.item_id, t.offset + got)
                it = queue.store.get(t.item_id)
                if it is not None and it.remaining == 0:
                    acks.append(t.item_id)
        gone = queue.ack(acks)
        rep.acked.extend(it.item_id for it in gone)
    return rep
