"""Ground receiver: downlinked CCSDS space packets (or GeoJSON) in, stored alerts and acks out.

Why it acks only after the commit: the ack lets the spacecraft's downlink queue drop an item for
good, so it must never leave the ground before the item is durable in the store. Corrupt packets
(CRC failure, truncation) are counted and reported but neither stored nor acked, so the downlink
sends them again. Duplicates (the same ``alert_id`` downlinked twice, e.g. because an ack was lost)
are acked again and stored once.

Scene headers (APID 0x100) give alerts their scene stem and detector names. The receiver keeps a
scene table that lives in the store (``scenes`` table), so a header received in one pass -- or by
an earlier process -- resolves alert packets of later passes. Headers are acked as
``scene:<key hex>`` (the downlink queue's item id). An alert packet whose header has not arrived
yet is handled by ``unresolved``:

* ``"hold"`` (what the onboard link flows use): the alert is stored durably in ``held_alerts`` and
  acked -- nothing is lost and nothing is re-sent -- but it is neither an alert nor delivered until
  its header arrives; then it is released with its real scene name in the header's transaction.
  No subscriber ever sees a placeholder name. The cost: a sender that never sends headers never
  gets its alerts delivered (``held_count`` / the ``alerts_held`` counter show it).
* ``"placeholder"`` (default, backwards compatible with header-less senders such as
  ``alerts_to_packets(alerts)``): stored at once as ``scene-<key hex>``, renamed in place when the
  header arrives. Webhooks already sent keep the placeholder name; later ones carry the real name
  (payloads are built from the stored feature at send time).

Byte streams (a pass file, stdin) go through :class:`~pipelines.alerts.packets.PacketStream`, which
resynchronises after a corrupt packet: a flipped bit in a length field costs that packet only,
not every packet after it.
"""

from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, Literal

from pipelines.alerts.model import Alert
from pipelines.alerts.packets import DecodedPacket, PacketStream, SceneTable, decode_packet
from pipelines.alerts.thumbnail import ThumbnailAssembler
from pipelines.errors import AlertError, GroundError
from pipelines.ground.store import AlertStore, resolve_alert

log = logging.getLogger(__name__)

#: CCSDS primary header: 6 bytes; bytes 4-5 hold (packet data field length - 1).
PRIMARY_HEADER_LEN = 6
MAX_ERRORS_KEPT = 50
GEOJSON_SUFFIXES = (".geojson", ".json")
UNRESOLVED_POLICIES = ("placeholder", "hold")
_PLACEHOLDER = re.compile(r"scene-([0-9a-f]{8})")

AckCallback = Callable[[list[str]], None]
Unresolved = Literal["placeholder", "hold"]


def scene_ack_id(scene_key: int) -> str:
    """Ack id of a scene header: the downlink queue's item id (``pipelines.downlink.link.ack_id``)."""
    return f"scene:{scene_key:08x}"


@dataclass(slots=True)
class IngestReport:
    """What one receive call did; ``acked`` are the item ids safe for the downlink to drop."""

    source: str = ""
    packets: int = 0
    corrupt: int = 0
    alerts: int = 0
    stored: int = 0
    duplicates: int = 0
    deliveries: int = 0
    acked: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    #: Scene headers received / stored for the first time.
    scene_headers: int = 0
    scenes_new: int = 0
    #: Alerts held for their header; held alerts released (and placeholder alerts renamed) now.
    held: int = 0
    released: int = 0
    renamed: int = 0
    #: Valid packets this receiver does not store (thumbnail segments unless ``thumbnails``): not acked.
    ignored: int = 0
    #: Thumbnail chips completed and stored (``Receiver(thumbnails=True)``), acked as ``thumb:<alert id>``.
    thumbnails: int = 0

    def add(self, other: "IngestReport") -> None:
        """Fold another report into this one (a folder of files -> one report)."""
        for name in ("packets", "corrupt", "alerts", "stored", "duplicates", "deliveries", "scene_headers",
                     "scenes_new", "held", "released", "renamed", "ignored", "thumbnails"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.acked.extend(other.acked)
        self.errors.extend(other.errors[: max(0, MAX_ERRORS_KEPT - len(self.errors))])

    def as_dict(self) -> dict[str, Any]:
        """JSON-friendly summary (acked ids as a count: there may be millions)."""
        return {"source": self.source, "packets": self.packets, "corrupt": self.corrupt, "alerts": self.alerts,
                "stored": self.stored, "duplicates": self.duplicates, "deliveries": self.deliveries,
                "acked": len(self.acked), "errors": self.errors, "scene_headers": self.scene_headers,
                "scenes_new": self.scenes_new, "held": self.held, "released": self.released,
                "renamed": self.renamed, "ignored": self.ignored, "thumbnails": self.thumbnails}

    def _error(self, msg: str) -> None:
        if len(self.errors) < MAX_ERRORS_KEPT:
            self.errors.append(msg)


def split_frames(buf: bytes | bytearray | memoryview) -> tuple[list[bytes], int]:
    """Cut concatenated space packets at their length fields (no resynchronisation).

    Returns the complete packets and how many bytes they used. Kept for callers that frame
    packets themselves; the receiver reads byte streams with ``PacketStream`` instead, because a
    corrupted length field here would shift every later packet.
    """
    out: list[bytes] = []
    mv = memoryview(buf)
    pos, n = 0, len(mv)
    while n - pos >= PRIMARY_HEADER_LEN:
        total = PRIMARY_HEADER_LEN + ((mv[pos + 4] << 8) | mv[pos + 5]) + 1
        if n - pos < total:
            break
        out.append(bytes(mv[pos:pos + total]))
        pos += total
    return out, pos


def file_ack_writer(ack_file: Path) -> AckCallback:
    """An ``on_ack`` that appends each committed alert id to ``ack_file`` (one per line, fsynced).

    Why a file: in file mode the node reads it before its next contact and acks the listed ids
    (see :mod:`pipelines.flows.onboard`); appending after the store's commit means an id is only
    ever acked once it is durable on the ground, and a torn last line is ignored by the reader.
    """
    ack_file = Path(ack_file)

    def write(ids: list[str]) -> None:
        ack_file.parent.mkdir(parents=True, exist_ok=True)
        with ack_file.open("a", encoding="utf-8") as fh:
            fh.write("".join(f"{i}\n" for i in ids))
            fh.flush()
            os.fsync(fh.fileno())
    return write


class Receiver:
    """Decodes, validates, de-duplicates and stores alerts and scene headers; calls ``on_ack`` after each commit."""

    def __init__(self, store: AlertStore, on_ack: AckCallback | None = None, batch_size: int = 5000,
                 unresolved: Unresolved = "placeholder", thumbnails: bool = False) -> None:
        """``thumbnails``: reassemble thumbnail segments (APID 0x104) and store whole chips for the web
        console, acked as ``thumb:<alert id>`` (the downlink queue's item id) once committed; off by
        default, when segments are counted as ``ignored`` and not acked (so they stay queued on board).
        """
        if batch_size < 1:
            raise GroundError(f"batch_size must be >= 1, got {batch_size}")
        if unresolved not in UNRESOLVED_POLICIES:
            raise GroundError(f"unresolved must be one of {UNRESOLVED_POLICIES}, got {unresolved!r}")
        self.store = store
        self.on_ack = on_ack
        self.batch_size = batch_size
        self.unresolved = unresolved
        #: Segments of thumbnails not complete yet (kept across batches and calls of this receiver).
        self.thumbs: ThumbnailAssembler | None = ThumbnailAssembler() if thumbnails else None
        #: Scene table shared with every PacketStream of this receiver; loaded from the store.
        self.scenes: SceneTable = store.scene_headers()

    # --- core -------------------------------------------------------------------------------
    def _placeholder_key(self, alert: Alert) -> int | None:
        """The scene key of an alert decoded without its header (None: it has a real name)."""
        m = _PLACEHOLDER.fullmatch(alert.scene)
        if m is None or any(h.scene == alert.scene for h in self.scenes.values()):
            return None
        return int(m.group(1), 16)

    def _commit(self, decoded: list[DecodedPacket], report: IngestReport, packets: int, corrupt: int,
                features: list[Alert] | None = None) -> None:
        """Store one batch (headers, alerts, held alerts; ``features``: GeoJSON alerts) and ack it."""
        counters = {"packets_received": packets, "packets_corrupt": corrupt}
        alerts: list[Alert] = list(features or [])
        held: list[tuple[int, Alert]] = []
        scenes = []
        chips: dict[str, bytes] = {}
        for d in decoded:
            if d.thumb is not None and self.thumbs is not None:
                try:
                    done = self.thumbs.add(d)
                except AlertError as exc:  # segments that disagree: drop them, the downlink re-sends
                    report._error(f"thumbnail {d.thumb.alert_id}: {exc}")
                    self.thumbs.discard(d.thumb.alert_id)
                    continue
                if done is not None:
                    chips[done[0]] = done[1]
                continue
            if d.scene is not None:
                scenes.append(d.scene)
                report.scene_headers += 1
            elif d.alert is not None:
                a = d.alert
                key = self._placeholder_key(a)
                if key is not None and key in self.scenes:
                    a = resolve_alert(a, self.scenes[key])  # header came later in this same batch
                elif key is not None and self.unresolved == "hold":
                    held.append((key, a))
                    continue
                alerts.append(a)
            else:
                report.ignored += 1
        if not (alerts or held or scenes or chips):
            if packets or corrupt:
                self.store.bump(**counters)
            return
        try:
            res = self.store.add_downlink(alerts, scenes, held, source=report.source, counters=counters,
                                          thumbnails=chips)
        except BaseException:
            self.scenes = self.store.scene_headers()  # forget headers that were not committed
            raise
        report.stored += len(res.new)
        report.duplicates += len(res.duplicates)
        report.deliveries += res.deliveries
        report.scenes_new += len(res.scenes_new)
        report.held += len(res.held)
        report.released += len(res.released)
        report.renamed += len(res.fixed)
        report.thumbnails += len(chips)
        ids = list(dict.fromkeys([*(a.alert_id for a in alerts), *(a.alert_id for _, a in held),
                                  *(scene_ack_id(h.scene_key) for h in scenes), *(f"thumb:{a}" for a in chips)]))
        report.acked.extend(ids)
        if self.on_ack is not None:
            self.on_ack(ids)  # only now: everything acked is committed

    def receive_packets(self, packets: Iterable[bytes], source: str = "packets",
                        report: IngestReport | None = None) -> IngestReport:
        """Decode individual whole packets; bad ones are counted in ``report.corrupt`` with a reason."""
        rep = report if report is not None else IngestReport(source=source)
        batch: list[DecodedPacket] = []
        n_pk = n_bad = 0
        for pk in packets:
            n_pk += 1
            rep.packets += 1
            try:
                d = decode_packet(pk, self.scenes)
            except AlertError as exc:  # PacketError included
                n_bad += 1
                rep.corrupt += 1
                rep._error(f"packet {rep.packets - 1}: {exc}")
                log.warning("%s: corrupt packet %d dropped: %s", source, rep.packets - 1, exc)
                continue
            if d.scene is not None:
                self.scenes[d.scene.scene_key] = d.scene
            elif d.alert is not None:
                rep.alerts += 1
            batch.append(d)
            if len(batch) >= self.batch_size:
                self._commit(batch, rep, n_pk, n_bad)
                batch, n_pk, n_bad = [], 0, 0
        self._commit(batch, rep, n_pk, n_bad)
        return rep

    def _feed(self, stream: PacketStream, data: bytes, rep: IngestReport, final: bool) -> None:
        """Push bytes through the resynchronising splitter and commit what came out, in batches."""
        corrupt0, skipped0 = stream.corrupt, stream.skipped_bytes
        decoded = stream.feed(data) if data else []
        tail = 0
        if final:
            before = stream.skipped_bytes
            decoded += stream.close()
            tail = stream.skipped_bytes - before
            if tail:
                rep._error(f"truncated packet or trailing garbage: {tail} bytes at the end")
        bad = stream.corrupt - corrupt0
        if bad > (1 if tail else 0):
            rep._error(f"{bad} corrupt packet(s): {stream.skipped_bytes - skipped0} bytes skipped (CRC/header)")
            log.warning("%s: %d corrupt packet(s) dropped, %d bytes skipped", rep.source, bad,
                        stream.skipped_bytes - skipped0)
        rep.corrupt += bad
        rep.packets += len(decoded) + bad
        rep.alerts += sum(1 for d in decoded if d.alert is not None)
        for i in range(0, max(1, len(decoded)), self.batch_size):
            chunk = decoded[i:i + self.batch_size]
            self._commit(chunk, rep, len(chunk) + (bad if i == 0 else 0), bad if i == 0 else 0)

    def receive_bytes(self, data: bytes, source: str = "bytes") -> IngestReport:
        """A whole downlink pass: concatenated packets; corrupt ones skipped, a truncated tail counted."""
        rep = IngestReport(source=source)
        self._feed(PacketStream(self.scenes), data, rep, final=True)
        return rep

    def receive_stream(self, stream: BinaryIO, source: str = "stream", chunk_size: int = 1 << 16) -> IngestReport:
        """Read packets as they arrive (pipe, socket file, growing file) until EOF.

        Each read's complete packets are committed and acked together, so a live link is stored
        with sub-read latency while a fast file still gets large transactions.
        """
        rep = IngestReport(source=source)
        ps = PacketStream(self.scenes)
        read = getattr(stream, "read1", stream.read)
        while True:
            chunk = read(chunk_size)
            if not chunk:
                break
            self._feed(ps, chunk, rep, final=False)
        self._feed(ps, b"", rep, final=True)
        return rep

    # --- GeoJSON ----------------------------------------------------------------------------
    def receive_geojson(self, doc: dict[str, Any] | str | Path, source: str | None = None) -> IngestReport:
        """A FeatureCollection (the `orbitwatch scan` output) or one Feature; bad features count as corrupt."""
        if isinstance(doc, (str, Path)):
            path = Path(doc)
            try:
                doc = json.loads(path.read_text())
            except (OSError, ValueError) as exc:
                raise GroundError(f"cannot read GeoJSON: {exc}", path) from exc
            source = source or str(path)
        rep = IngestReport(source=source or "geojson")
        if not isinstance(doc, dict):
            raise GroundError("GeoJSON document must be an object")
        if doc.get("type") == "Feature":
            feats: list[Any] = [doc]
        elif doc.get("type") == "FeatureCollection" and isinstance(doc.get("features"), list):
            feats = doc["features"]
        else:
            raise GroundError("GeoJSON must be a FeatureCollection or a Feature")
        batch: list[Alert] = []
        bad = 0
        for i, f in enumerate(feats):
            try:
                batch.append(Alert.from_feature(f))
            except AlertError as exc:
                bad += 1
                if len(rep.errors) < MAX_ERRORS_KEPT:
                    rep.errors.append(f"feature {i}: {exc}")
                continue
            if len(batch) >= self.batch_size:
                rep.alerts += len(batch)
                self._commit([], rep, 0, 0, features=batch)
                batch = []
        rep.alerts += len(batch)
        rep.corrupt += bad
        self._commit([], rep, 0, 0, features=batch)
        if bad:
            self.store.bump(features_invalid=bad)
        return rep

    def receive_file(self, path: str | Path) -> IngestReport:
        """A packet file (any name) or a GeoJSON file (.geojson/.json)."""
        p = Path(path)
        if p.suffix.lower() in GEOJSON_SUFFIXES:
            return self.receive_geojson(p)
        try:
            with p.open("rb") as fh:
                return self.receive_stream(fh, source=str(p), chunk_size=1 << 20)
        except OSError as exc:
            raise GroundError(f"cannot read packet file: {exc}", p) from exc

    def receive_folder(self, folder: str | Path, pattern: str = "*") -> Iterator[IngestReport]:
        """Every regular file in a folder not ingested before (by path, size and mtime), oldest first.

        Files whose name starts with '.' or ends in '.part'/'.tmp' are still being written and are
        skipped; write-then-rename is how uploads should arrive.
        """
        folder = Path(folder)
        files = [f for f in folder.glob(pattern) if f.is_file() and not f.name.startswith(".")
                 and not f.name.endswith((".part", ".tmp"))]
        for f in sorted(files, key=lambda f: (f.stat().st_mtime_ns, f.name)):
            if self.store.file_done(f):
                continue
            rep = self.receive_file(f)
            self.store.mark_file_done(f)
            yield rep
