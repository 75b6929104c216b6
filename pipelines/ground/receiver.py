"""Ground receiver: downlinked CCSDS space packets (or GeoJSON) in, stored alerts and acks out.

Why it acks only after the commit: the ack lets the spacecraft's downlink queue drop an alert for
good, so it must never leave the ground before the alert is durable in the store. Corrupt packets
(CRC failure, truncation) are counted and reported but neither stored nor acked, so the downlink
sends them again. Duplicates (the same ``alert_id`` downlinked twice, e.g. because an ack was lost)
are acked again and stored once.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from pipelines.alerts.model import Alert
from pipelines.errors import AlertError, GroundError, PacketError
from pipelines.ground.store import AlertStore

log = logging.getLogger(__name__)

#: CCSDS primary header: 6 bytes; bytes 4-5 hold (packet data field length - 1).
PRIMARY_HEADER_LEN = 6
MAX_ERRORS_KEPT = 50
GEOJSON_SUFFIXES = (".geojson", ".json")

AckCallback = Callable[[list[str]], None]


@dataclass(slots=True)
class IngestReport:
    """What one receive call did; ``acked`` are the alert ids safe for the downlink to drop."""

    source: str = ""
    packets: int = 0
    corrupt: int = 0
    alerts: int = 0
    stored: int = 0
    duplicates: int = 0
    deliveries: int = 0
    acked: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def add(self, other: "IngestReport") -> None:
        """Fold another report into this one (a folder of files -> one report)."""
        self.packets += other.packets
        self.corrupt += other.corrupt
        self.alerts += other.alerts
        self.stored += other.stored
        self.duplicates += other.duplicates
        self.deliveries += other.deliveries
        self.acked.extend(other.acked)
        self.errors.extend(other.errors[: max(0, MAX_ERRORS_KEPT - len(self.errors))])

    def as_dict(self) -> dict[str, Any]:
        """JSON-friendly summary (acked ids as a count: there may be millions)."""
        return {"source": self.source, "packets": self.packets, "corrupt": self.corrupt, "alerts": self.alerts,
                "stored": self.stored, "duplicates": self.duplicates, "deliveries": self.deliveries,
                "acked": len(self.acked), "errors": self.errors}


def split_frames(buf: bytes | bytearray | memoryview) -> tuple[list[bytes], int]:
    """Cut concatenated space packets at their length fields.

    Returns the complete packets and how many bytes they used; an incomplete tail is left for
    the next read (a stream) or reported as truncated (a file).
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


def _decode(packet: bytes) -> Alert:
    """One packet -> Alert, through pipelines.alerts.packets (the encoding's owner)."""
    from pipelines.alerts.packets import decode_packet

    res = decode_packet(packet)
    if isinstance(res, Alert):
        return res
    alert = getattr(res, "alert", None)
    if isinstance(alert, Alert):
        return alert
    if isinstance(res, tuple) and res and isinstance(res[0], Alert):
        return res[0]
    raise PacketError(f"decode_packet returned {type(res).__name__}, not an Alert")


class Receiver:
    """Decodes, validates, de-duplicates and stores alerts; calls ``on_ack`` after each commit."""

    def __init__(self, store: AlertStore, on_ack: AckCallback | None = None, batch_size: int = 5000) -> None:
        if batch_size < 1:
            raise GroundError(f"batch_size must be >= 1, got {batch_size}")
        self.store = store
        self.on_ack = on_ack
        self.batch_size = batch_size

    # --- core -------------------------------------------------------------------------------
    def _commit(self, alerts: list[Alert], report: IngestReport, packets: int, corrupt: int) -> None:
        counters = {"packets_received": packets, "packets_corrupt": corrupt}
        if alerts:
            res = self.store.add_alerts(alerts, source=report.source, counters=counters)
            report.stored += len(res.new)
            report.duplicates += len(res.duplicates)
            report.deliveries += res.deliveries
            ids = list(dict.fromkeys(a.alert_id for a in alerts))
            report.acked.extend(ids)
            if self.on_ack is not None:
                self.on_ack(ids)  # only now: the alerts are committed
        elif packets or corrupt:
            self.store.bump(**counters)

    def receive_packets(self, packets: Iterable[bytes], source: str = "packets",
                        report: IngestReport | None = None) -> IngestReport:
        """Decode individual packets; bad ones are counted in ``report.corrupt`` with a reason."""
        rep = report if report is not None else IngestReport(source=source)
        batch: list[Alert] = []
        n_pk = n_bad = 0
        for pk in packets:
            n_pk += 1
            rep.packets += 1
            try:
                a = _decode(pk)
            except (PacketError, AlertError) as exc:
                n_bad += 1
                rep.corrupt += 1
                if len(rep.errors) < MAX_ERRORS_KEPT:
                    rep.errors.append(f"packet {rep.packets - 1}: {exc}")
                log.warning("%s: corrupt packet %d dropped: %s", source, rep.packets - 1, exc)
                continue
            batch.append(a)
            rep.alerts += 1
            if len(batch) >= self.batch_size:
                self._commit(batch, rep, n_pk, n_bad)
                batch, n_pk, n_bad = [], 0, 0
        self._commit(batch, rep, n_pk, n_bad)
        return rep

    def receive_bytes(self, data: bytes, source: str = "bytes") -> IngestReport:
        """A whole downlink pass: concatenated packets; a truncated tail counts as one corrupt packet."""
        frames, used = split_frames(data)
        rep = self.receive_packets(frames, source)
        if used < len(data):
            self._truncated(rep, len(data) - used)
        return rep

    def _truncated(self, rep: IngestReport, nbytes: int) -> None:
        rep.packets += 1
        rep.corrupt += 1
        msg = f"truncated packet: {nbytes} trailing bytes"
        if len(rep.errors) < MAX_ERRORS_KEPT:
            rep.errors.append(msg)
        log.warning("%s: %s", rep.source, msg)
        self.store.bump(packets_received=1, packets_corrupt=1)

    def receive_stream(self, stream: BinaryIO, source: str = "stream", chunk_size: int = 1 << 16) -> IngestReport:
        """Read packets as they arrive (pipe, socket file, growing file) until EOF.

        Each read's complete packets are committed and acked together, so a live link is stored
        with sub-read latency while a fast file still gets large transactions.
        """
        rep = IngestReport(source=source)
        buf = bytearray()
        read = getattr(stream, "read1", stream.read)
        while True:
            chunk = read(chunk_size)
            if not chunk:
                break
            buf += chunk
            frames, used = split_frames(buf)
            if frames:
                del buf[:used]
                self.receive_packets(frames, source, rep)
        if buf:
            self._truncated(rep, len(buf))
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
                self._commit(batch, rep, 0, 0)
                batch = []
        rep.alerts += len(batch)
        rep.corrupt += bad
        self._commit(batch, rep, 0, 0)
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
