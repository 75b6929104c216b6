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
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta, timezone
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from pipelines.alerts.model import KINDS, Alert, iso_utc
from pipelines.alerts.packets import SceneHeader
from pipelines.errors import AlertQueryError, StoreError, StoreNotFoundError, SubscriberError
from pipelines.ground.signing import secret_key

log = logging.getLogger(__name__)

State = Literal["pending", "delivered", "dead"]
STATES: tuple[str, ...] = ("pending", "delivered", "dead")
FORMATS: tuple[str, ...] = ("json", "cap")
#: 2: the spatial/temporal index ``alerts_rtree`` and ``thumbnails`` (a version-1 store is migrated on open).
SCHEMA_VERSION = 2
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
-- Thumbnail chips (pipelines.alerts.thumbnail blobs) by alert id; may arrive before their alert.
CREATE TABLE IF NOT EXISTS thumbnails (alert_id TEXT PRIMARY KEY, blob BLOB NOT NULL, received_at REAL NOT NULL);
"""

# The alert index (schema version 2): one R*Tree over position, acquisition time, score and kind, so that
# a bbox + time (+ kind, score) query and its count never touch the alerts table (the console and the
# OGC API read 1,000,000+ alerts). Why these choices:
# * rtree_i32 (integer coordinates), not the default float32 R*Tree: float32 cannot hold seconds over
#   decades (128 s steps) nor 1e-7 deg exactly, so every answer would need a re-check on the alerts
#   table. Integers are exact: lon/lat in 1e-7 deg (the GeoJSON contract's precision: the index agrees
#   with the coordinates clients see), time in whole seconds since 2000-01-01 as [floor, ceil] (plus
#   the exact microseconds in the auxiliary column t_us, read only for a query bound with a fraction),
#   score in 1e-4 (stored scores have 4 decimals), kind as its index in KINDS.
# * Time as an R*Tree dimension rather than a B-tree index on ``acquired``: one index answers bbox and
#   time together, and ``acquired`` text does not sort as time ("...00Z" > "...00.5Z").
# * ``alert_id`` as an auxiliary column, not the alerts rowid: VACUUM may renumber the rowids of a
#   table without an INTEGER PRIMARY KEY, which would silently break a rowid link.
# Kept in step by the only insert path (``add_downlink``); alerts are never moved or deleted.
_INDEX_SCHEMA = """
CREATE VIRTUAL TABLE IF NOT EXISTS alerts_rtree USING rtree_i32(
    id, min_lon, max_lon, min_lat, max_lat, min_t, max_t, min_score, max_score, min_kind, max_kind,
    +alert_id, +t_us
);
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


# --- the alert index: integer keys, filters, pages --------------------------------------------------
#: Index time origin: whole seconds since 2000-01-01 UTC fit int32 from 1932 to 2068.
INDEX_EPOCH = datetime(2000, 1, 1, tzinfo=timezone.utc)
KIND_CODE: dict[str, int] = {k: i for i, k in enumerate(KINDS)}
_I32_MIN, _I32_MAX = -(2 ** 31), 2 ** 31 - 1
_LON7_MAX = 1_800_000_000
_US = timedelta(microseconds=1)
#: Up to this many matches a page is one sort of all of them; above, the newest time window that holds
#: the page is found first (R*Tree counts over growing windows), so a page of a huge match stays cheap.
_DIRECT_SORT = 20_000


def _parse_time(text: str) -> datetime:
    dt = datetime.fromisoformat(str(text).replace("Z", "+00:00"))
    return dt.replace(tzinfo=timezone.utc) if dt.tzinfo is None else dt.astimezone(timezone.utc)


def _e7(v: float) -> int:
    """Degrees -> integer 1e-7 deg, rounded exactly as the GeoJSON contract rounds coordinates."""
    return int(round(round(float(v), 7) * 1e7))


def _score4(v: float) -> int:
    return int(round(round(float(v), 4) * 1e4))


def _clamp32(v: int) -> int:
    return max(_I32_MIN, min(_I32_MAX, v))


def _micros(dt: datetime) -> int:
    """Exact microseconds since INDEX_EPOCH (naive datetimes are UTC)."""
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    return (dt - INDEX_EPOCH) // _US


def _index_row(alert_id: str, kind: str, score: float, lon: float, lat: float,
               acquired: datetime) -> tuple[Any, ...]:
    """One ``alerts_rtree`` row (without its id): point boxes, time as [floor s, ceil s] + exact µs."""
    x, y, sc, k = _e7(lon), _e7(lat), _score4(score), KIND_CODE[kind]
    us = _micros(acquired)
    lo = us // 1_000_000
    hi = lo + (1 if us % 1_000_000 else 0)
    return (x, x, y, y, _clamp32(lo), _clamp32(hi), sc, sc, k, k, alert_id, us)


def _merge_extent(ext: list[float] | None, idx: Sequence[tuple[Any, ...]]) -> list[float]:
    """[west, south, east, north, first µs, last µs] of the stored alerts, grown by one batch."""
    new = [min(r[0] for r in idx) / 1e7, min(r[2] for r in idx) / 1e7, max(r[0] for r in idx) / 1e7,
           max(r[2] for r in idx) / 1e7, min(r[11] for r in idx), max(r[11] for r in idx)]
    if ext is None:
        return new
    return [min(ext[0], new[0]), min(ext[1], new[1]), max(ext[2], new[2]), max(ext[3], new[3]),
            min(ext[4], new[4]), max(ext[5], new[5])]


def _scaled(v: float, exp: int, rounding: str) -> int:
    """``v`` * 10**exp rounded up/down exactly from its decimal form (so 10.1 is 101000000, not ...001)."""
    return int(Decimal(repr(float(v))).scaleb(exp).to_integral_value(rounding))


#: INDEX_EPOCH as Unix seconds: map markers carry Unix time (cheaper to send than ISO text, 10,000 at a time).
_UNIX_2000 = 946_684_800


def micros_to_iso(us: int) -> str:
    """Index microseconds back to the contract's ISO 8601 text (``Z``, microseconds only when present)."""
    return iso_utc(INDEX_EPOCH + timedelta(microseconds=int(us)))


@dataclass(frozen=True, slots=True)
class AlertFilter:
    """Which alerts a query selects. Every bound is inclusive (OGC API ``bbox`` and ``datetime``).

    ``bbox`` is west, south, east, north in degrees; west > east crosses the antimeridian. ``kinds``
    None means all, an empty tuple none. Validated on construction (AlertQueryError).
    """

    bbox: tuple[float, float, float, float] | None = None
    start: datetime | None = None
    end: datetime | None = None
    kinds: tuple[str, ...] | None = None
    min_score: float | None = None

    def __post_init__(self) -> None:
        if self.bbox is not None:
            if len(self.bbox) != 4 or not all(math.isfinite(float(v)) for v in self.bbox):
                raise AlertQueryError(f"bbox must be four finite numbers west,south,east,north, got {self.bbox}")
            w, s, e, n = (float(v) for v in self.bbox)
            if not (-180 <= w <= 180 and -180 <= e <= 180 and -90 <= s <= 90 and -90 <= n <= 90):
                raise AlertQueryError(f"bbox out of range (lon -180..180, lat -90..90): {self.bbox}")
            if s > n:
                raise AlertQueryError(f"bbox south {s} is north of north {n}")
        for name in ("start", "end"):
            v = getattr(self, name)
            if v is not None and not isinstance(v, datetime):
                raise AlertQueryError(f"{name} must be a datetime, got {v!r}")
        if self.start is not None and self.end is not None and _micros(self.start) > _micros(self.end):
            raise AlertQueryError(f"time interval start {self.start} is after its end {self.end}")
        if self.kinds is not None:
            bad = [k for k in self.kinds if k not in KINDS]
            if bad:
                raise AlertQueryError(f"kinds must be among {KINDS}, got {list(self.kinds)}")
        if self.min_score is not None and not (0.0 <= float(self.min_score) <= 1.0):
            raise AlertQueryError(f"min_score must be in [0, 1], got {self.min_score}")

    def boxes(self) -> list[tuple[str, list[int]]]:
        """R*Tree WHERE clauses, one per disjoint box (antimeridian halves x runs of kinds).

        Exact, not a superset: integer bounds are rounded inwards from the query's decimal values; a
        time bound with a fraction of a second also checks the exact microseconds.
        """
        common: list[str] = []
        args: list[int] = []
        lons: list[tuple[int, int] | None] = [None]
        if self.bbox is not None:
            w, s, e, n = (float(v) for v in self.bbox)
            common.append("min_lat >= ? AND max_lat <= ?")
            args += [_scaled(s, 7, ROUND_CEILING), _scaled(n, 7, ROUND_FLOOR)]
            wi, ei = _scaled(w, 7, ROUND_CEILING), _scaled(e, 7, ROUND_FLOOR)
            lons = [(wi, ei)] if w <= e else [(wi, _LON7_MAX), (-_LON7_MAX, ei)]
        if self.start is not None:
            us = _micros(self.start)
            if us % 1_000_000 == 0:
                common.append("min_t >= ?")
                args.append(_clamp32(us // 1_000_000))
            else:
                common.append("max_t >= ? AND t_us >= ?")
                args += [_clamp32(-(-us // 1_000_000)), us]
        if self.end is not None:
            us = _micros(self.end)
            if us % 1_000_000 == 0:
                common.append("max_t <= ?")
                args.append(_clamp32(us // 1_000_000))
            else:
                common.append("min_t <= ? AND t_us <= ?")
                args += [_clamp32(us // 1_000_000), us]
        if self.min_score is not None:
            common.append("min_score >= ?")
            args.append(_scaled(self.min_score, 4, ROUND_CEILING))
        kinds: list[tuple[int, int] | None] = [None]
        if self.kinds is not None and set(self.kinds) != set(KINDS):
            codes = sorted({KIND_CODE[k] for k in self.kinds})
            runs: list[list[int]] = []
            for c in codes:
                if runs and runs[-1][1] == c - 1:
                    runs[-1][1] = c
                else:
                    runs.append([c, c])
            kinds = [(a, b) for a, b in runs]
            if not kinds:
                return []
        out: list[tuple[str, list[int]]] = []
        for lon in lons:
            for kr in kinds:
                where, a = list(common), list(args)
                if lon is not None:
                    where.append("min_lon >= ? AND max_lon <= ?")
                    a += list(lon)
                if kr is not None:
                    where.append("min_kind >= ? AND max_kind <= ?")
                    a += list(kr)
                out.append((" AND ".join(where) or "1", a))
        return out

    def matches(self, kind: str, score: float, lon: float, lat: float, acquired: datetime) -> bool:
        """The same selection in Python (for alerts read by rowid, e.g. live updates)."""
        x, _, y, _, t_lo, t_hi, sc, _, _, _, _, us = _index_row("", kind, score, lon, lat, acquired)
        if self.kinds is not None and kind not in self.kinds:
            return False
        if self.min_score is not None and sc < _scaled(self.min_score, 4, ROUND_CEILING):
            return False
        if self.start is not None and us < _micros(self.start):
            return False
        if self.end is not None and us > _micros(self.end):
            return False
        if self.bbox is None:
            return True
        w, s, e, n = (float(v) for v in self.bbox)
        if not _scaled(s, 7, ROUND_CEILING) <= y <= _scaled(n, 7, ROUND_FLOOR):
            return False
        wi, ei = _scaled(w, 7, ROUND_CEILING), _scaled(e, 7, ROUND_FLOOR)
        return (wi <= x <= ei) if w <= e else (x >= wi or x <= ei)


@dataclass(slots=True)
class AlertPage:
    """One page of a query, newest acquisition first (ties: latest stored first)."""

    features: list[dict[str, Any]]
    #: How many alerts match in all; None when more than the query's ``count_limit``.
    matched: int | None
    #: ``matched`` when known, else ``count_limit + 1`` (a lower bound).
    matched_at_least: int
    offset: int
    limit: int
    #: The store's newest alert rowid when this page was read: pass it to ``alerts_since``.
    cursor: int

    @property
    def alerts(self) -> list[Alert]:
        """The page as Alert objects."""
        return [Alert.from_feature(f) for f in self.features]

    @property
    def has_more(self) -> bool:
        """True when alerts after this page match (a ``next`` link; a full page if the count was cut)."""
        if self.matched is None:
            return len(self.features) == self.limit > 0
        return self.offset + len(self.features) < self.matched


@dataclass(slots=True)
class PointPage:
    """Markers for a map: (alert_id, kind, score, lon, lat, acquired as Unix seconds) per alert, newest first."""

    points: list[tuple[str, str, float, float, float, float]]
    matched: int | None
    matched_at_least: int
    cursor: int


class AlertStore:
    """One connection to the store. Not shared between threads: open one per thread or process."""

    def __init__(self, path: str | Path, synchronous: str = "NORMAL", busy_timeout_s: float = 30.0,
                 cache_mib: int | None = None, mmap_mib: int | None = None) -> None:
        """Open (creating or migrating) a store.

        ``cache_mib`` / ``mmap_mib``: this connection's page cache and memory-mapped reads, for
        read-heavy connections (the web console); mapped pages are shared by all connections through
        the OS page cache, where each connection's page cache is its own.
        """
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
            if cache_mib is not None:
                self.conn.execute(f"PRAGMA cache_size=-{int(cache_mib) * 1024}")
            if mmap_mib is not None:
                self.conn.execute(f"PRAGMA mmap_size={int(mmap_mib) << 20}")
            self._migrate()
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"cannot open alert store: {exc}", self.path) from exc

    def _migrate(self) -> None:
        """Bring a new or version-1 store to SCHEMA_VERSION (index created and backfilled), once.

        Inside BEGIN IMMEDIATE with the version re-read, so two processes opening the same old store
        at once migrate it once; the backfill commits with the version bump or not at all.
        """
        row = self.conn.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
        if row is not None and int(row[0]) == SCHEMA_VERSION:
            return
        if row is not None and int(row[0]) not in (1, SCHEMA_VERSION):
            raise StoreError(f"store schema version {row[0]} is not {SCHEMA_VERSION}", self.path)
        self._begin()
        try:
            row = self.conn.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
            if row is None or int(row[0]) == 1:
                self.conn.execute(_INDEX_SCHEMA.strip())
                n = self._backfill_index()
                if n:
                    log.warning("%s: indexed %d stored alerts (one-time migration to schema %d)",
                                self.path, n, SCHEMA_VERSION)
                self.conn.execute("INSERT OR REPLACE INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
            self.conn.execute("COMMIT")
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise

    def _backfill_index(self) -> int:
        """Index every stored alert not in the index yet (migration); returns how many."""
        self.conn.execute("DELETE FROM alerts_rtree")
        n, last = 0, 0
        ext: list[float] | None = None
        while True:
            rows = self.conn.execute("SELECT rowid, kind, score, lon, lat, acquired, alert_id FROM alerts"
                                     " WHERE rowid > ? ORDER BY rowid LIMIT 50000", (last,)).fetchall()
            if not rows:
                break
            last = rows[-1][0]
            idx = [_index_row(r[6], r[1], r[2], r[3], r[4], _parse_time(r[5])) for r in rows]
            self.conn.executemany("INSERT INTO alerts_rtree VALUES (NULL,?,?,?,?,?,?,?,?,?,?,?,?)", idx)
            ext = _merge_extent(ext, idx)
            n += len(rows)
        if ext is not None:
            self.conn.execute("INSERT OR REPLACE INTO meta VALUES ('extent', ?)", (json.dumps(ext),))
        return n

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
                     counters: dict[str, int] | None = None,
                     thumbnails: dict[str, bytes] | None = None) -> AddResult:
        """One received batch -- scene headers, resolved alerts, alerts awaiting a header -- in ONE transaction.

        Why one transaction: the receiver acknowledges everything in the batch right after this
        returns, so headers, alerts and held alerts must become durable together or not at all.
        Order inside it: new scene headers first (renaming stored placeholder alerts and releasing
        held alerts of those scenes), then ``alerts``, then ``held`` ((scene_key, alert) pairs
        decoded without a header; held unless the header is in the store by now). ``thumbnails``:
        whole thumbnail blobs by alert id (first copy kept), acked with the rest of the batch.
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
                self._index([(r[0], r[1], r[2], r[3], r[4], batch[r[0]].acquired) for r in rows])
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
            if thumbnails:
                self._put_thumbnails(thumbnails, now)
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
        return Alert.from_feature(self.feature(alert_id))

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
            raise StoreNotFoundError(f"no delivery of {alert_id} to {sub.name}", self.path)
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

    # --- the alert index and queries (web console, OGC API) -----------------------------------
    def _index(self, rows: Sequence[tuple[str, str, float, float, float, datetime]]) -> None:
        """Index newly inserted alerts (alert_id, kind, score, lon, lat, acquired) and grow the extent."""
        idx = [_index_row(*r) for r in rows]
        self.conn.executemany("INSERT INTO alerts_rtree VALUES (NULL,?,?,?,?,?,?,?,?,?,?,?,?)", idx)
        row = self.conn.execute("SELECT value FROM meta WHERE key = 'extent'").fetchone()
        ext = _merge_extent(None if row is None else json.loads(row[0]), idx)
        self.conn.execute("INSERT OR REPLACE INTO meta VALUES ('extent', ?)", (json.dumps(ext),))

    def extent(self) -> tuple[tuple[float, float, float, float], tuple[str, str]] | None:
        """((west, south, east, north), (first, last acquired ISO)) of the stored alerts; None if none."""
        row = self.conn.execute("SELECT value FROM meta WHERE key = 'extent'").fetchone()
        if row is None:
            return None
        w, s, e, n, t0, t1 = json.loads(row[0])
        return (w, s, e, n), (micros_to_iso(t0), micros_to_iso(t1))

    def cursor(self) -> int:
        """The newest alert's rowid (0: none): a live-update cursor for :meth:`alerts_since`."""
        return int(self.conn.execute("SELECT COALESCE(MAX(rowid), 0) FROM alerts").fetchone()[0])

    def _count(self, boxes: list[tuple[str, list[int]]], cap: int, extra: str = "",
               extra_args: Sequence[int] = ()) -> int:
        if not boxes:
            return 0
        sql = " UNION ALL ".join(f"SELECT 1 FROM alerts_rtree WHERE {w}{extra}" for w, _ in boxes)
        args = [a for _, ps in boxes for a in (*ps, *extra_args)]
        return int(self.conn.execute(f"SELECT COUNT(*) FROM ({sql} LIMIT ?)", (*args, cap)).fetchone()[0])

    def _window(self, flt: AlertFilter, boxes: list[tuple[str, list[int]]], need: int) -> int | None:
        """The latest ``lo`` such that alerts with ``max_t >= lo`` hold ``need`` matches (None: all time).

        Why: sorting every match of a continent-sized query costs ~0.3 us each; counting a few
        hundred in a narrow time window is ~1 ms, so the windows grow 4x from an hour until one holds
        the page. The page is then exactly the same as a full sort would give.
        """
        ext = self.extent()
        if ext is None:
            return None
        hi = -(-_micros(_parse_time(ext[1][1])) // 1_000_000)
        if flt.end is not None:
            hi = min(hi, -(-_micros(flt.end) // 1_000_000))
        floor = _micros(_parse_time(ext[1][0])) // 1_000_000
        if flt.start is not None:
            floor = max(floor, _micros(flt.start) // 1_000_000)
        span = 3600
        while hi - span > floor:
            if self._count(boxes, need, " AND max_t >= ?", (hi - span,)) >= need:
                return hi - span
            span *= 4
        return None

    def _page_sql(self, flt: AlertFilter, boxes: list[tuple[str, list[int]]], matched_capped: int, count_limit: int,
                  limit: int, offset: int) -> tuple[str, list[int]]:
        """SQL: a CTE ``page`` of the page's rows in order, and ``row``, its (alert_id, kind, score, lon, lat,
        t_us) columns.

        The auxiliary columns (alert_id, t_us) cost a lookup each: read them while sorting when nearly
        every candidate is on the page, else only for the page's rows (a join on the index id).
        """
        extra, extra_args = "", []
        windowed = False
        if matched_capped > min(_DIRECT_SORT, count_limit):
            lo = self._window(flt, boxes, offset + limit)
            if lo is not None:
                extra, extra_args, windowed = " AND max_t >= ?", [lo], True
        aux = not windowed and matched_capped <= 2 * (offset + limit)
        cols = "id, max_t" + (", alert_id, min_kind, min_score, min_lon, min_lat, t_us" if aux else "")
        sql = " UNION ALL ".join(f"SELECT {cols} FROM alerts_rtree WHERE {w}{extra}" for w, _ in boxes)
        args = [a for _, ps in boxes for a in (*ps, *extra_args)]
        cte = f"page AS ({sql} ORDER BY 2 DESC, 1 DESC LIMIT ? OFFSET ?)"
        if aux:
            cte += ", row AS (SELECT id, max_t, alert_id, min_kind, min_score, min_lon, min_lat, t_us FROM page)"
        else:
            cte += (", row AS (SELECT p.id, p.max_t, r.alert_id, r.min_kind, r.min_score, r.min_lon, r.min_lat, r.t_us"
                    " FROM page p CROSS JOIN alerts_rtree r ON r.id = p.id)")
        return cte, [*args, limit, offset]

    @staticmethod
    def _check_paging(limit: int, offset: int, count_limit: int) -> None:
        if limit < 0 or offset < 0:
            raise AlertQueryError(f"limit and offset must be >= 0, got limit={limit}, offset={offset}")
        if count_limit < 0:
            raise AlertQueryError(f"count_limit must be >= 0, got {count_limit}")

    def _read(self) -> None:
        """Start a read transaction: the count, the page and the cursor come from one snapshot."""
        self.conn.execute("BEGIN")

    def query_alerts(self, bbox: tuple[float, float, float, float] | None = None, start: datetime | None = None,
                     end: datetime | None = None, kinds: Sequence[str] | None = None,
                     min_score: float | None = None, limit: int = 100, offset: int = 0,
                     count_limit: int = 100_000) -> AlertPage:
        """Alerts matching a bbox / time interval / kinds / minimum score, as GeoJSON Features, newest first.

        Counting stops after ``count_limit`` matches (``matched`` is then None): an exact count of a
        whole-world query over millions of alerts would cost more than the page itself.
        """
        flt = AlertFilter(bbox=None if bbox is None else tuple(bbox), start=start, end=end,  # type: ignore[arg-type]
                          kinds=None if kinds is None else tuple(kinds), min_score=min_score)
        return self.query(flt, limit=limit, offset=offset, count_limit=count_limit)

    def query(self, flt: AlertFilter, limit: int = 100, offset: int = 0, count_limit: int = 100_000) -> AlertPage:
        """:meth:`query_alerts` with a ready :class:`AlertFilter`."""
        self._check_paging(limit, offset, count_limit)
        boxes = flt.boxes()
        self._read()
        try:
            cursor = self.cursor()
            n = self._count(boxes, count_limit + 1)
            feats: list[dict[str, Any]] = []
            if limit and boxes and (offset < n or n > count_limit):
                cte, args = self._page_sql(flt, boxes, n, count_limit, limit, offset)
                rows = self.conn.execute(
                    f"WITH {cte} SELECT a.feature FROM row r CROSS JOIN alerts a ON a.alert_id = r.alert_id"
                    " ORDER BY r.max_t DESC, r.id DESC", args)
                feats = [json.loads(r[0]) for r in rows]
        finally:
            self.conn.execute("COMMIT")
        known = n <= count_limit
        return AlertPage(features=feats, matched=n if known else None, matched_at_least=n, offset=offset,
                         limit=limit, cursor=cursor)

    def query_points(self, flt: AlertFilter, limit: int = 10_000, count_limit: int = 100_000) -> PointPage:
        """The newest ``limit`` matching alerts as map markers, read from the index alone (no JSON)."""
        self._check_paging(limit, 0, count_limit)
        boxes = flt.boxes()
        self._read()
        try:
            cursor = self.cursor()
            n = self._count(boxes, count_limit + 1)
            pts: list[tuple[str, str, float, float, float, float]] = []
            if limit and boxes and n:
                cte, args = self._page_sql(flt, boxes, n, count_limit, limit, 0)
                rows = self.conn.execute(
                    f"WITH {cte} SELECT alert_id, min_kind, min_score, min_lon, min_lat, t_us FROM row"
                    " ORDER BY max_t DESC, id DESC", args)
                pts = [(aid, KINDS[k], sc / 1e4, x / 1e7, y / 1e7, us / 1e6 + _UNIX_2000)
                       for aid, k, sc, x, y, us in rows]
        finally:
            self.conn.execute("COMMIT")
        return PointPage(points=pts, matched=n if n <= count_limit else None, matched_at_least=n, cursor=cursor)

    def alerts_since(self, cursor: int, flt: AlertFilter | None = None,
                     limit: int = 10_000) -> tuple[int, list[tuple[str, str, float, float, float, float]]]:
        """Alerts stored after ``cursor`` (a rowid from a page or an earlier call) that match ``flt``.

        Returns (new cursor, markers oldest first). Reads at most ``limit`` new rows: when the cursor
        comes back short of :meth:`cursor`, call again.
        """
        rows = self.conn.execute("SELECT rowid, alert_id, kind, score, lon, lat, acquired FROM alerts"
                                 " WHERE rowid > ? ORDER BY rowid LIMIT ?", (int(cursor), int(limit))).fetchall()
        out = []
        for _, aid, kind, score, lon, lat, acquired in rows:
            t = _parse_time(acquired)
            if flt is None or flt.matches(kind, score, lon, lat, t):
                out.append((aid, kind, round(float(score), 4), round(float(lon), 7), round(float(lat), 7),
                            _micros(t) / 1e6 + _UNIX_2000))
        return (int(rows[-1][0]) if rows else int(cursor)), out

    def feature(self, alert_id: str) -> dict[str, Any]:
        """One stored alert's GeoJSON Feature as stored (StoreNotFoundError if unknown)."""
        row = self.conn.execute("SELECT feature FROM alerts WHERE alert_id = ?", (alert_id,)).fetchone()
        if row is None:
            raise StoreNotFoundError(f"no alert {alert_id!r} in the store", self.path)
        return json.loads(row[0])

    # --- thumbnails -------------------------------------------------------------------------------
    def _put_thumbnails(self, blobs: dict[str, bytes], now: float) -> None:
        self.conn.executemany("INSERT OR IGNORE INTO thumbnails VALUES (?, ?, ?)",
                              [(aid, bytes(b), now) for aid, b in blobs.items()])

    def add_thumbnails(self, blobs: dict[str, bytes], now: float | None = None) -> None:
        """Store whole thumbnail blobs by alert id in one transaction (a repeated blob keeps the first)."""
        if not blobs:
            return
        self._begin()
        try:
            self._put_thumbnails(blobs, time.time() if now is None else now)
            self.conn.execute("COMMIT")
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise

    def thumbnail(self, alert_id: str) -> bytes | None:
        """The thumbnail blob of one alert, or None when none was downlinked."""
        row = self.conn.execute("SELECT blob FROM thumbnails WHERE alert_id = ?", (alert_id,)).fetchone()
        return None if row is None else bytes(row[0])

    # --- per-alert delivery state -----------------------------------------------------------------
    def deliveries_of(self, alert_id: str) -> list[dict[str, Any]]:
        """Every subscriber's delivery of one alert (state pending/delivered/dead, attempts, last error)."""
        rows = self.conn.execute(
            "SELECT s.id AS subscriber_id, s.name AS subscriber, s.active, d.state, d.attempts, d.webhook_id,"
            " d.queued_at, d.next_attempt_at, d.last_attempt_at, d.last_status, d.last_error, d.delivered_at"
            " FROM deliveries d JOIN subscribers s ON s.id = d.subscriber_id WHERE d.alert_id = ? ORDER BY s.id",
            (alert_id,))
        return [dict(r) for r in rows]

    def requeue_delivery(self, alert_id: str, subscriber: str | int, now: float | None = None) -> bool:
        """Replay one dead letter (same webhook-id, fresh max-age window); False if it is not dead."""
        sub = self.subscriber(subscriber)
        now = time.time() if now is None else now
        if self.conn.execute("SELECT 1 FROM deliveries WHERE alert_id = ? AND subscriber_id = ?",
                             (alert_id, sub.id)).fetchone() is None:
            raise StoreNotFoundError(f"no delivery of {alert_id} to {sub.name}", self.path)
        cur = self.conn.execute("UPDATE deliveries SET state='pending', next_attempt_at=?, queued_at=?"
                                " WHERE alert_id = ? AND subscriber_id = ? AND state = 'dead'",
                                (now, now, alert_id, sub.id))
        return cur.rowcount == 1
