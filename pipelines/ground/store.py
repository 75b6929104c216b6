"""The ground alert store: one SQLite file holding alerts, subscribers and per-subscriber delivery state.

Why SQLite: the ground segment must survive being killed at any moment without losing an alert or
a delivery, and must be trivially deployable. WAL mode lets the receiver write while the delivery
worker and ``status`` read; ``synchronous=NORMAL`` makes a commit durable against a process crash
(not against power loss: pass ``synchronous="FULL"`` for that). Writes are batched: one transaction
per ingested batch and per batch of delivery outcomes, never one per row.

Delivery state lives here, not in the worker, so a delivery process restarted after SIGKILL picks up
exactly where the database says: anything not recorded as delivered is sent again, with the same
``webhook-id`` so the consumer can drop the repeat.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import sqlite3
import time
from datetime import datetime
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from pipelines.alerts.model import KINDS, Alert
from pipelines.alerts.packets import SceneHeader
from pipelines.errors import StoreError, SubscriberError
from pipelines.ground.signing import secret_key

log = logging.getLogger(__name__)

State = Literal["pending", "delivered", "dead"]
STATES: tuple[str, ...] = ("pending", "delivered", "dead")
FORMATS: tuple[str, ...] = ("json", "cap")
SCHEMA_VERSION = 1
_CHUNK = 900  # stay under SQLite's default host-parameter limit in IN (...) lists

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS alerts (
    alert_id    TEXT PRIMARY KEY,
    kind        TEXT NOT NULL,
    score       REAL NOT NULL,
    lon         REAL NOT NULL,
    lat         REAL NOT NULL,
    acquired    TEXT NOT NULL,
    scene       TEXT NOT NULL,
    feature     TEXT NOT NULL,
    source      TEXT,
    received_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS subscribers (
    id              INTEGER PRIMARY KEY,
    name            TEXT NOT NULL UNIQUE,
    url             TEXT NOT NULL,
    secret          TEXT NOT NULL,
    kinds           TEXT NOT NULL,
    min_score       REAL NOT NULL DEFAULT 0,
    bbox            TEXT,
    format          TEXT NOT NULL DEFAULT 'json',
    concurrency     INTEGER NOT NULL DEFAULT 4,
    timeout_s       REAL NOT NULL DEFAULT 15,
    active          INTEGER NOT NULL DEFAULT 1,
    disabled_reason TEXT,
    created_at      REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS deliveries (
    alert_id        TEXT NOT NULL REFERENCES alerts(alert_id),
    subscriber_id   INTEGER NOT NULL REFERENCES subscribers(id) ON DELETE CASCADE,
    webhook_id      TEXT NOT NULL UNIQUE,
    state           TEXT NOT NULL CHECK (state IN ('pending', 'delivered', 'dead')),
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at REAL NOT NULL,
    queued_at       REAL NOT NULL,
    last_attempt_at REAL,
    last_status     INTEGER,
    last_error      TEXT,
    delivered_at    REAL,
    PRIMARY KEY (alert_id, subscriber_id)
);
CREATE INDEX IF NOT EXISTS deliveries_due
    ON deliveries (subscriber_id, next_attempt_at) WHERE state = 'pending';
CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS ingested_files (
    path TEXT PRIMARY KEY, size INTEGER NOT NULL, mtime_ns INTEGER NOT NULL, ingested_at REAL NOT NULL
);
-- Scene headers (APID 0x100) as received: key -> stem, acquisition time, detector names.
CREATE TABLE IF NOT EXISTS scenes (
    scene_key INTEGER PRIMARY KEY, scene TEXT NOT NULL, acquired TEXT NOT NULL, detectors TEXT NOT NULL,
    received_at REAL NOT NULL
);
-- Alerts that arrived before their scene header (held: durable and acked, not yet delivered).
CREATE TABLE IF NOT EXISTS held_alerts (
    alert_id TEXT PRIMARY KEY, scene_key INTEGER NOT NULL, feature TEXT NOT NULL, source TEXT,
    received_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS held_alerts_scene ON held_alerts (scene_key);
"""


def webhook_id_for(alert_id: str, subscriber_name: str) -> str:
    """Deterministic ``webhook-id`` of one (alert, subscriber) message.

    Deterministic rather than random so that even a store rebuilt from the same downlink gives the
    consumer the same idempotency key. No '.' (the spec forbids it in signed ids).
    """
    sub = hashlib.blake2b(subscriber_name.encode(), digest_size=4).hexdigest()
    return f"msg_{alert_id}_{sub}"


@dataclass(slots=True)
class Subscriber:
    """A webhook endpoint and what it wants to hear about."""

    name: str
    url: str
    secret: str
    kinds: tuple[str, ...] = KINDS
    min_score: float = 0.0
    bbox: tuple[float, float, float, float] | None = None  # west, south, east, north (deg)
    format: str = "json"
    concurrency: int = 4
    timeout_s: float = 15.0
    active: bool = True
    disabled_reason: str | None = None
    id: int | None = None
    created_at: float = field(default_factory=time.time)

    def validate(self) -> None:
        """Raise SubscriberError on anything that would only fail later, at delivery time."""
        if not self.name or not self.name.strip():
            raise SubscriberError("subscriber name may not be empty")
        parts = urlsplit(self.url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise SubscriberError(f"subscriber URL must be http(s)://host/..., got {self.url!r}")
        key = secret_key(self.secret)
        if len(key) < 24:
            raise SubscriberError(f"subscriber secret must hold at least 24 bytes, got {len(key)}")
        bad = [k for k in self.kinds if k not in KINDS]
        if bad or not self.kinds:
            raise SubscriberError(f"kinds must be a non-empty subset of {KINDS}, got {list(self.kinds)}")
        if not 0.0 <= self.min_score <= 1.0 or math.isnan(self.min_score):
            raise SubscriberError(f"min_score must be in [0, 1], got {self.min_score}")
        if self.bbox is not None:
            if len(self.bbox) != 4:
                raise SubscriberError(f"bbox must be west,south,east,north, got {self.bbox}")
            w, s, e, n = self.bbox
            if not (-180 <= w <= 180 and -180 <= e <= 180 and -90 <= s <= n <= 90):
                raise SubscriberError(f"bbox out of range or south > north: {self.bbox}")
        if self.format not in FORMATS:
            raise SubscriberError(f"format must be one of {FORMATS}, got {self.format!r}")
        if self.concurrency < 1:
            raise SubscriberError(f"concurrency must be >= 1, got {self.concurrency}")
        if not self.timeout_s > 0:
            raise SubscriberError(f"timeout_s must be > 0, got {self.timeout_s}")

    def matches(self, kind: str, score: float, lon: float, lat: float) -> bool:
        """The per-subscriber filter, applied once when an alert arrives."""
        if kind not in self.kinds or score < self.min_score:
            return False
        if self.bbox is None:
            return True
        w, s, e, n = self.bbox
        if not s <= lat <= n:
            return False
        # west > east: the box crosses the antimeridian (e.g. 170,-50,-170,-30 around Fiji).
        return (w <= lon <= e) if w <= e else (lon >= w or lon <= e)


@dataclass(slots=True)
class AddResult:
    """What one ``add_alerts`` batch did."""

    new: list[str] = field(default_factory=list)
    duplicates: list[str] = field(default_factory=list)
    deliveries: int = 0
    #: Scene keys whose header was stored for the first time by this batch.
    scenes_new: list[int] = field(default_factory=list)
    #: Alerts held because their scene header has not arrived yet (durable, not delivered).
    held: list[str] = field(default_factory=list)
    #: Held alerts released (resolved and stored) because their header arrived in this batch.
    released: list[str] = field(default_factory=list)
    #: Stored placeholder-scene alerts renamed because their header arrived in this batch.
    fixed: list[str] = field(default_factory=list)


def placeholder_scene(scene_key: int) -> str:
    """The scene name :mod:`pipelines.alerts.packets` gives an alert decoded without its header."""
    return f"scene-{scene_key:08x}"


def resolve_alert(alert: Alert, header: SceneHeader) -> Alert:
    """An alert decoded without its scene header, with the header's stem and detector name applied.

    Only placeholder names are replaced: the packet itself carries the acquisition time, and an
    alert that already has a real scene name is returned unchanged.
    """
    if alert.scene != placeholder_scene(header.scene_key):
        return alert
    det = alert.detector
    if det.startswith("detector-"):
        try:
            det = header.detectors.get(int(det[len("detector-"):], 16), det)
        except ValueError:
            pass
    return replace(alert, scene=header.scene, detector=det)


@dataclass(slots=True)
class DueDelivery:
    """One message the worker should (re)send now."""

    webhook_id: str
    alert_id: str
    subscriber_id: int
    attempts: int
    queued_at: float
    kind: str
    acquired: str
    feature: str


@dataclass(slots=True)
class Outcome:
    """The result of one send attempt, recorded in batches by :meth:`AlertStore.record_outcomes`."""

    webhook_id: str
    subscriber_id: int
    state: State  # pending (retry at next_attempt_at), delivered or dead
    attempted_at: float
    status: int | None = None
    error: str | None = None
    next_attempt_at: float | None = None
    disable_subscriber: str | None = None  # reason, e.g. "410 Gone"


def _row_to_subscriber(r: sqlite3.Row) -> Subscriber:
    return Subscriber(
        id=r["id"], name=r["name"], url=r["url"], secret=r["secret"],
        kinds=tuple(k for k in r["kinds"].split(",") if k), min_score=r["min_score"],
        bbox=None if r["bbox"] is None else tuple(json.loads(r["bbox"])),  # type: ignore[arg-type]
        format=r["format"], concurrency=r["concurrency"], timeout_s=r["timeout_s"],
        active=bool(r["active"]), disabled_reason=r["disabled_reason"], created_at=r["created_at"],
    )


def _chunks(seq: Sequence[Any], n: int) -> Iterator[Sequence[Any]]:
    for i in range(0, len(seq), n):
        yield seq[i:i + n]


class AlertStore:
    """One connection to the store. Not shared between threads: open one per thread or process."""

    def __init__(self, path: str | Path, synchronous: str = "NORMAL", busy_timeout_s: float = 30.0) -> None:
        self.path = Path(path)
        if synchronous.upper() not in ("OFF", "NORMAL", "FULL", "EXTRA"):
            raise StoreError(f"synchronous must be OFF|NORMAL|FULL|EXTRA, got {synchronous!r}", self.path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            if not self.path.exists():
                # The store holds subscribers' signing secrets: owner-only from the first byte.
                self.path.touch(mode=0o600)
            # isolation_level=None: we issue BEGIN IMMEDIATE ourselves so a batch takes the write
            # lock up front instead of failing to upgrade half-way (SQLITE_BUSY mid-transaction).
            self.conn = sqlite3.connect(self.path, timeout=busy_timeout_s, isolation_level=None)
            self.conn.row_factory = sqlite3.Row
            mode = self.conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                raise StoreError(f"could not switch to WAL mode (got {mode})", self.path)
            self.conn.execute(f"PRAGMA synchronous={synchronous.upper()}")
            self.conn.execute("PRAGMA foreign_keys=ON")
            self.conn.executescript(_SCHEMA)
            row = self.conn.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
            if row is None:
                self.conn.execute("INSERT OR IGNORE INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
            elif int(row[0]) != SCHEMA_VERSION:
                raise StoreError(f"store schema version {row[0]} is not {SCHEMA_VERSION}", self.path)
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"cannot open alert store: {exc}", self.path) from exc

    # --- plumbing ---------------------------------------------------------------------------
    def close(self) -> None:
        """Close the connection (a WAL checkpoint happens when the last one closes)."""
        self.conn.close()

    def __enter__(self) -> "AlertStore":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _begin(self) -> None:
        try:
            self.conn.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            raise StoreError(f"store is locked by another writer: {exc}", self.path) from exc

    def _bump(self, name: str, n: int) -> None:
        if n:
            self.conn.execute(
                "INSERT INTO counters VALUES (?, ?) ON CONFLICT(name) DO UPDATE SET value = value + excluded.value",
                (name, n))

    def counters(self) -> dict[str, int]:
        """Running totals kept with the data (packets seen, corrupt packets, duplicates...)."""
        return {r[0]: r[1] for r in self.conn.execute("SELECT name, value FROM counters")}

    def bump(self, **counts: int) -> None:
        """Add to counters in their own transaction (for events that store no alert, e.g. corrupt packets)."""
        self._begin()
        try:
            for k, v in counts.items():
                self._bump(k, v)
            self.conn.execute("COMMIT")
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise

    # --- subscribers --------------------------------------------------------------------------
    def add_subscriber(self, sub: Subscriber, backfill: bool = False, now: float | None = None) -> Subscriber:
        """Register an endpoint; with ``backfill`` it also gets every matching alert already stored."""
        sub.validate()
        now = time.time() if now is None else now
        self._begin()
        try:
            cur = self.conn.execute(
                "INSERT INTO subscribers (name, url, secret, kinds, min_score, bbox, format, concurrency,"
                " timeout_s, active, disabled_reason, created_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
                (sub.name, sub.url, sub.secret, ",".join(sub.kinds), float(sub.min_score),
                 None if sub.bbox is None else json.dumps(list(sub.bbox)), sub.format, int(sub.concurrency),
                 float(sub.timeout_s), int(sub.active), sub.disabled_reason, now))
            sub.id = int(cur.lastrowid or 0)
            sub.created_at = now
            if backfill:
                rows = self.conn.execute("SELECT alert_id, kind, score, lon, lat FROM alerts").fetchall()
                self._fan_out([tuple(r) for r in rows], [sub], now)
            self.conn.execute("COMMIT")
        except sqlite3.IntegrityError as exc:
            self.conn.execute("ROLLBACK")
            raise SubscriberError(f"a subscriber named {sub.name!r} already exists") from exc
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        log.info("subscriber %s (%s) added", sub.name, sub.url)
        return sub

    def subscribers(self, active_only: bool = False) -> list[Subscriber]:
        """All subscribers, oldest first."""
        q = "SELECT * FROM subscribers" + (" WHERE active = 1" if active_only else "") + " ORDER BY id"
        return [_row_to_subscriber(r) for r in self.conn.execute(q)]

    def subscriber(self, name_or_id: str | int) -> Subscriber:
        """One subscriber by name or numeric id; SubscriberError if unknown."""
        if isinstance(name_or_id, int) or str(name_or_id).isdigit():
            row = self.conn.execute("SELECT * FROM subscribers WHERE id = ? OR name = ?",
                                    (int(name_or_id), str(name_or_id))).fetchone()
        else:
            row = self.conn.execute("SELECT * FROM subscribers WHERE name = ?", (name_or_id,)).fetchone()
        if row is None:
            raise SubscriberError(f"no subscriber {name_or_id!r}")
        return _row_to_subscriber(row)

    def set_active(self, name_or_id: str | int, active: bool, reason: str | None = None) -> None:
        """Disable (e.g. after 410 Gone) or re-enable a subscriber; its pending messages are kept."""
        sub = self.subscriber(name_or_id)
        self.conn.execute("UPDATE subscribers SET active = ?, disabled_reason = ? WHERE id = ?",
                          (int(active), None if active else reason, sub.id))

    # --- alerts -------------------------------------------------------------------------------
    def _fan_out(self, rows: list[tuple[str, str, float, float, float]], subs: list[Subscriber], now: float) -> int:
        out = []
        for sub in subs:
            for alert_id, kind, score, lon, lat in rows:
                if sub.matches(kind, score, lon, lat):
                    out.append((alert_id, sub.id, webhook_id_for(alert_id, sub.name), now, now))
        if out:
            self.conn.executemany(
                "INSERT OR IGNORE INTO deliveries (alert_id, subscriber_id, webhook_id, state, attempts,"
                " next_attempt_at, queued_at) VALUES (?, ?, ?, 'pending', 0, ?, ?)", out)
        return len(out)

    def existing_ids(self, alert_ids: Sequence[str]) -> set[str]:
        """Which of these alert ids the store already holds."""
        found: set[str] = set()
        for chunk in _chunks(list(alert_ids), _CHUNK):
            q = f"SELECT alert_id FROM alerts WHERE alert_id IN ({','.join('?' * len(chunk))})"
            found.update(r[0] for r in self.conn.execute(q, tuple(chunk)))
        return found

    def add_alerts(self, alerts: Iterable[Alert], source: str | None = None, now: float | None = None,
                   counters: dict[str, int] | None = None) -> AddResult:
        """Store new alerts and queue one delivery per matching active subscriber, in ONE transaction.

        Alerts already in the store (same ``alert_id``: the downlink repeats itself) are reported
        as duplicates and change nothing. ``counters`` are added in the same transaction so that
        the totals never disagree with the data after a crash.
        """
        return self.add_downlink(alerts, source=source, now=now, counters=counters)

    def add_downlink(self, alerts: Iterable[Alert] = (), scenes: Iterable[SceneHeader] = (),
                     held: Iterable[tuple[int, Alert]] = (), source: str | None = None, now: float | None = None,
                     counters: dict[str, int] | None = None) -> AddResult:
        """One received batch -- scene headers, resolved alerts, alerts awaiting a header -- in ONE transaction.

        Why one transaction: the receiver acknowledges everything in the batch right after this
        returns, so headers, alerts and held alerts must become durable together or not at all.
        Order inside it: new scene headers first (renaming stored placeholder alerts and releasing
        held alerts of those scenes), then ``alerts``, then ``held`` ((scene_key, alert) pairs
        decoded without a header; held unless the header is in the store by now).
        """
        now = time.time() if now is None else now
        result = AddResult()
        self._begin()
        try:
            released = self._add_scenes(list(scenes), result, now)
            batch: dict[str, Alert] = {}
            for a in [*alerts, *released]:
                if a.alert_id in batch:
                    result.duplicates.append(a.alert_id)
                else:
                    batch[a.alert_id] = a
            hold: dict[str, tuple[int, Alert]] = {}
            for key, a in held:
                if a.alert_id in batch or a.alert_id in hold:
                    result.duplicates.append(a.alert_id)
                else:
                    hold[a.alert_id] = (key, a)
            seen = self.existing_ids(list(batch) + list(hold)) | self.held_ids(list(batch) + list(hold))
            # Held alerts whose header is in the store by now (another receiver stored it): resolve.
            known = self.scene_headers([k for k, _ in hold.values()])
            for aid, (key, a) in list(hold.items()):
                if aid not in seen and key in known:
                    batch[aid] = resolve_alert(a, known[key])
                    del hold[aid]
            rows, fan = [], []
            for aid, a in batch.items():
                if aid in seen:
                    result.duplicates.append(aid)
                    continue
                feat = a.to_feature()
                props = feat["properties"]
                rows.append((aid, a.kind, props["score"], a.lon, a.lat, props["acquired"], a.scene,
                             json.dumps(feat, separators=(",", ":")), source, now))
                fan.append((aid, a.kind, float(props["score"]), float(a.lon), float(a.lat)))
                result.new.append(aid)
            if rows:
                self.conn.executemany(
                    "INSERT INTO alerts (alert_id, kind, score, lon, lat, acquired, scene, feature, source,"
                    " received_at) VALUES (?,?,?,?,?,?,?,?,?,?)", rows)
                result.deliveries = self._fan_out(fan, self.subscribers(active_only=True), now)
            held_rows = []
            for aid, (key, a) in hold.items():
                if aid in seen:
                    result.duplicates.append(aid)
                    continue
                held_rows.append((aid, int(key), json.dumps(a.to_feature(), separators=(",", ":")), source, now))
                result.held.append(aid)
            if held_rows:
                self.conn.executemany("INSERT INTO held_alerts VALUES (?, ?, ?, ?, ?)", held_rows)
            self._bump("alerts_stored", len(result.new))
            self._bump("alerts_duplicate", len(result.duplicates))
            self._bump("scenes_stored", len(result.scenes_new))
            self._bump("alerts_held", len(result.held))
            self._bump("alerts_released", len(result.released))
            self._bump("alerts_renamed", len(result.fixed))
            for k, v in (counters or {}).items():
                self._bump(k, v)
            self.conn.execute("COMMIT")
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        return result

    def _add_scenes(self, scenes: list[SceneHeader], result: AddResult, now: float) -> list[Alert]:
        """Insert new scene headers; rename their placeholder alerts; return their held alerts, resolved."""
        released: list[Alert] = []
        for h in scenes:
            cur = self.conn.execute(
                "INSERT OR IGNORE INTO scenes VALUES (?, ?, ?, ?, ?)",
                (h.scene_key, h.scene, h.acquired.isoformat(), json.dumps({str(k): v for k, v in h.detectors.items()}),
                 now))
            if cur.rowcount != 1:
                continue  # header repeated by the downlink: nothing new
            result.scenes_new.append(h.scene_key)
            for aid, feature in self.conn.execute("SELECT alert_id, feature FROM alerts WHERE scene = ?",
                                                  (placeholder_scene(h.scene_key),)).fetchall():
                a = resolve_alert(Alert.from_feature(json.loads(feature)), h)
                self.conn.execute("UPDATE alerts SET scene = ?, feature = ? WHERE alert_id = ?",
                                  (a.scene, json.dumps(a.to_feature(), separators=(",", ":")), aid))
                result.fixed.append(aid)
            rows = self.conn.execute("SELECT alert_id, feature FROM held_alerts WHERE scene_key = ?",
                                     (h.scene_key,)).fetchall()
            if rows:
                self.conn.execute("DELETE FROM held_alerts WHERE scene_key = ?", (h.scene_key,))
                for aid, feature in rows:
                    released.append(resolve_alert(Alert.from_feature(json.loads(feature)), h))
                    result.released.append(aid)
        return released

    def held_ids(self, alert_ids: Sequence[str]) -> set[str]:
        """Which of these alert ids are held waiting for their scene header."""
        found: set[str] = set()
        for chunk in _chunks(list(alert_ids), _CHUNK):
            q = f"SELECT alert_id FROM held_alerts WHERE alert_id IN ({','.join('?' * len(chunk))})"
            found.update(r[0] for r in self.conn.execute(q, tuple(chunk)))
        return found

    def held_count(self) -> int:
        """Alerts stored durably but waiting for their scene header (not delivered yet)."""
        return int(self.conn.execute("SELECT COUNT(*) FROM held_alerts").fetchone()[0])

    def scene_headers(self, keys: Sequence[int] | None = None) -> dict[int, SceneHeader]:
        """Stored scene headers (all, or these keys): the receiver's scene table across restarts."""
        if keys is None:
            rows = self.conn.execute("SELECT scene_key, scene, acquired, detectors FROM scenes").fetchall()
        else:
            rows = []
            for chunk in _chunks(sorted(set(keys)), _CHUNK):
                q = (f"SELECT scene_key, scene, acquired, detectors FROM scenes"
                     f" WHERE scene_key IN ({','.join('?' * len(chunk))})")
                rows.extend(self.conn.execute(q, tuple(chunk)).fetchall())
        out: dict[int, SceneHeader] = {}
        for key, scene, acquired, dets in rows:
            out[int(key)] = SceneHeader(scene_key=int(key), scene=scene, acquired=datetime.fromisoformat(acquired),
                                        detectors={int(k): v for k, v in json.loads(dets).items()})
        return out

    def alert(self, alert_id: str) -> Alert:
        """One stored alert, rebuilt from its GeoJSON Feature."""
        row = self.conn.execute("SELECT feature FROM alerts WHERE alert_id = ?", (alert_id,)).fetchone()
        if row is None:
            raise StoreError(f"no alert {alert_id!r} in the store", self.path)
        return Alert.from_feature(json.loads(row[0]))

    def alert_count(self) -> int:
        """How many distinct alerts the store holds."""
        return int(self.conn.execute("SELECT COUNT(*) FROM alerts").fetchone()[0])

    # --- ingested files (so `serve` on a folder never re-reads a finished file) ---------------
    def file_done(self, path: Path) -> bool:
        """True if this exact file (path, size, mtime) was ingested before."""
        st = path.stat()
        row = self.conn.execute("SELECT size, mtime_ns FROM ingested_files WHERE path = ?",
                                (str(path.resolve()),)).fetchone()
        return row is not None and row[0] == st.st_size and row[1] == st.st_mtime_ns

    def mark_file_done(self, path: Path, now: float | None = None) -> None:
        """Remember a fully ingested file (after its alerts were committed)."""
        st = path.stat()
        self.conn.execute("INSERT OR REPLACE INTO ingested_files VALUES (?, ?, ?, ?)",
                          (str(path.resolve()), st.st_size, st.st_mtime_ns, time.time() if now is None else now))

    # --- delivery queue -------------------------------------------------------------------------
    def due(self, subscriber_id: int, now: float, limit: int, exclude: Iterable[str] = ()) -> list[DueDelivery]:
        """Pending messages of one subscriber whose next attempt is due, oldest schedule first."""
        excl = list(exclude)
        q = ("SELECT d.webhook_id, d.alert_id, d.subscriber_id, d.attempts, d.queued_at, a.kind, a.acquired,"
             " a.feature FROM deliveries d JOIN alerts a ON a.alert_id = d.alert_id"
             " WHERE d.subscriber_id = ? AND d.state = 'pending' AND d.next_attempt_at <= ?"
             " ORDER BY d.next_attempt_at LIMIT ?")
        rows = self.conn.execute(q, (subscriber_id, now, limit + len(excl))).fetchall()
        skip = set(excl)
        return [DueDelivery(*r) for r in rows if r[0] not in skip][:limit]

    def next_due_at(self, subscriber_ids: Sequence[int]) -> float | None:
        """Earliest scheduled attempt among these subscribers' pending messages (None: nothing pending)."""
        if not subscriber_ids:
            return None
        q = (f"SELECT MIN(next_attempt_at) FROM deliveries WHERE state = 'pending'"
             f" AND subscriber_id IN ({','.join('?' * len(subscriber_ids))})")
        v = self.conn.execute(q, tuple(subscriber_ids)).fetchone()[0]
        return None if v is None else float(v)

    def pending_count(self, subscriber_ids: Sequence[int] | None = None) -> int:
        """Pending messages (of these subscribers, or of all)."""
        if subscriber_ids is None:
            return int(self.conn.execute("SELECT COUNT(*) FROM deliveries WHERE state='pending'").fetchone()[0])
        if not subscriber_ids:
            return 0
        q = (f"SELECT COUNT(*) FROM deliveries WHERE state = 'pending'"
             f" AND subscriber_id IN ({','.join('?' * len(subscriber_ids))})")
        return int(self.conn.execute(q, tuple(subscriber_ids)).fetchone()[0])

    def record_outcomes(self, outcomes: Sequence[Outcome]) -> None:
        """Persist a batch of attempt results in one transaction (the worker's only write)."""
        if not outcomes:
            return
        self._begin()
        try:
            self.conn.executemany(
                "UPDATE deliveries SET state = ?, attempts = attempts + 1, last_attempt_at = ?, last_status = ?,"
                " last_error = ?, next_attempt_at = COALESCE(?, next_attempt_at),"
                " delivered_at = CASE WHEN ? = 'delivered' THEN ? ELSE delivered_at END"
                " WHERE webhook_id = ? AND state = 'pending'",
                [(o.state, o.attempted_at, o.status, o.error, o.next_attempt_at, o.state, o.attempted_at,
                  o.webhook_id) for o in outcomes])
            for o in outcomes:
                if o.disable_subscriber:
                    self.conn.execute("UPDATE subscribers SET active = 0, disabled_reason = ? WHERE id = ?",
                                      (o.disable_subscriber, o.subscriber_id))
            self.conn.execute("COMMIT")
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise

    def requeue_dead(self, subscriber: str | int | None = None, now: float | None = None) -> int:
        """Give dead letters a fresh life (same webhook-id, new max-age window): manual replay."""
        now = time.time() if now is None else now
        q = "UPDATE deliveries SET state='pending', next_attempt_at=?, queued_at=? WHERE state='dead'"
        args: tuple[Any, ...] = (now, now)
        if subscriber is not None:
            q += " AND subscriber_id = ?"
            args += (self.subscriber(subscriber).id,)
        return self.conn.execute(q, args).rowcount

    def delivery(self, alert_id: str, subscriber: str | int) -> dict[str, Any]:
        """The delivery row of one (alert, subscriber), as a dict."""
        sub = self.subscriber(subscriber)
        row = self.conn.execute("SELECT * FROM deliveries WHERE alert_id = ? AND subscriber_id = ?",
                                (alert_id, sub.id)).fetchone()
        if row is None:
            raise StoreError(f"no delivery of {alert_id} to {sub.name}", self.path)
        return dict(row)

    def status(self) -> list[dict[str, Any]]:
        """Counts by state per subscriber (what `ground status` prints)."""
        counts: dict[int, dict[str, int]] = {}
        for sid, state, n in self.conn.execute(
                "SELECT subscriber_id, state, COUNT(*) FROM deliveries GROUP BY subscriber_id, state"):
            counts.setdefault(sid, {})[state] = n
        out = []
        for s in self.subscribers():
            c = counts.get(int(s.id or 0), {})
            out.append({"id": s.id, "name": s.name, "url": s.url, "active": s.active,
                        "disabled_reason": s.disabled_reason, **{st: c.get(st, 0) for st in STATES}})
        return out

    def dead_letters(self, limit: int = 100) -> list[dict[str, Any]]:
        """The most recent dead letters with their last error, for a human to look at."""
        rows = self.conn.execute(
            "SELECT d.alert_id, s.name AS subscriber, d.webhook_id, d.attempts, d.last_status, d.last_error,"
            " d.last_attempt_at FROM deliveries d JOIN subscribers s ON s.id = d.subscriber_id"
            " WHERE d.state = 'dead' ORDER BY d.last_attempt_at DESC LIMIT ?", (limit,))
        return [dict(r) for r in rows]
