"""The onboard downlink queue on disk: a :class:`~pipelines.downlink.queue.QueueStore` in one SQLite file (WAL).

Why on disk: a node reboot (watchdog, SEU, power cycle) must lose nothing that was detected and
send nothing twice under a new identity. Every queue item keeps its id (the alert id) and its exact
packet bytes (payload, including the CCSDS sequence count assigned once at enqueue time), so a
retransmission after a restart is bit-identical to the one before and the ground de-duplicates it
by alert id. The per-APID sequence counters and the set of collects already processed live in the
same file, so they advance exactly when the items they produced become durable (use
:meth:`SqliteQueueStore.transaction` around enqueue + ``save_counter`` + ``mark_collect``).

Ordering: :class:`DownlinkQueue` numbers items with an in-memory counter that restarts at zero in
a new process, so this store ignores ``QueueItem.order`` and keeps its own monotonic insertion
number: first in, first out holds across restarts.

``synchronous=NORMAL`` in WAL mode: a commit survives a process crash (SIGKILL) but not a power
cut between checkpoints; pass ``synchronous="FULL"`` for the latter (one fsync per commit).
"""

from __future__ import annotations

import contextlib
import logging
import sqlite3
import time
from collections.abc import Iterable, Iterator
from pathlib import Path

from pipelines.alerts.packets import KNOWN_APIDS, SequenceCounter
from pipelines.downlink.queue import Priority, QueueItem
from pipelines.errors import DownlinkError

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS items (
    item_id   TEXT PRIMARY KEY,
    priority  INTEGER NOT NULL,
    nbytes    INTEGER NOT NULL,
    created_s REAL NOT NULL,
    payload   BLOB,
    divisible INTEGER NOT NULL,
    confirmed INTEGER NOT NULL,
    attempts  INTEGER NOT NULL,
    ord       INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS items_order ON items (priority, created_s, ord);
CREATE TABLE IF NOT EXISTS seq_counters (apid INTEGER PRIMARY KEY, next INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS collects (
    path TEXT PRIMARY KEY, state TEXT NOT NULL CHECK (state IN ('done', 'failed')), scene TEXT,
    alerts INTEGER NOT NULL DEFAULT 0, detail TEXT, at REAL NOT NULL
);
"""

_COLS = "item_id, priority, nbytes, created_s, payload, divisible, confirmed, attempts, ord"


def _row(r: tuple) -> QueueItem:
    return QueueItem(item_id=r[0], priority=Priority(r[1]), nbytes=r[2], created_s=r[3],
                     payload=None if r[4] is None else bytes(r[4]), divisible=bool(r[5]), confirmed=r[6],
                     attempts=r[7], order=r[8])


class SqliteQueueStore:
    """Durable :class:`QueueStore`; one connection, one process (the node's downlink owner)."""

    def __init__(self, path: str | Path, synchronous: str = "NORMAL", busy_timeout_s: float = 30.0) -> None:
        self.path = Path(path)
        if synchronous.upper() not in ("OFF", "NORMAL", "FULL", "EXTRA"):
            raise DownlinkError(f"synchronous must be OFF|NORMAL|FULL|EXTRA, got {synchronous!r}", self.path)
        self._depth = 0
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            # isolation_level=None: transactions are ours (BEGIN IMMEDIATE), never implicit.
            self.conn = sqlite3.connect(self.path, timeout=busy_timeout_s, isolation_level=None)
            mode = self.conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                raise DownlinkError(f"could not switch the queue to WAL mode (got {mode})", self.path)
            self.conn.execute(f"PRAGMA synchronous={synchronous.upper()}")
            self.conn.executescript(_SCHEMA)
            row = self.conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
            if row is None:
                self.conn.execute("INSERT OR IGNORE INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
            elif int(row[0]) != SCHEMA_VERSION:
                raise DownlinkError(f"queue schema version {row[0]} is not {SCHEMA_VERSION}", self.path)
        except sqlite3.DatabaseError as exc:
            raise DownlinkError(f"cannot open downlink queue: {exc}", self.path) from exc

    # --- plumbing ---------------------------------------------------------------------------
    def close(self) -> None:
        """Close the connection; an open transaction is rolled back (nothing half-written stays)."""
        self.conn.close()

    def __enter__(self) -> "SqliteQueueStore":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        """Group several writes into one atomic commit (nests: only the outermost commits).

        Why: "alerts queued", "sequence counter advanced" and "collect processed" must become true
        together; a crash between them would either lose alerts or reprocess a collect.
        """
        if self._depth == 0:
            try:
                self.conn.execute("BEGIN IMMEDIATE")
            except sqlite3.OperationalError as exc:
                raise DownlinkError(f"queue is locked by another writer: {exc}", self.path) from exc
        self._depth += 1
        try:
            yield
        except BaseException:
            self._depth -= 1
            if self._depth == 0:
                self.conn.execute("ROLLBACK")
            raise
        self._depth -= 1
        if self._depth == 0:
            self.conn.execute("COMMIT")

    # --- QueueStore protocol ----------------------------------------------------------------
    def put(self, item: QueueItem) -> None:
        """Insert a new item at the back of its priority class (re-putting an id replaces it in place)."""
        with self.transaction():
            row = self.conn.execute("SELECT ord FROM items WHERE item_id = ?", (item.item_id,)).fetchone()
            if row is None:
                nxt = self.conn.execute("SELECT value FROM meta WHERE key = 'next_ord'").fetchone()
                ord_ = int(nxt[0]) if nxt else 0
                self.conn.execute("INSERT OR REPLACE INTO meta VALUES ('next_ord', ?)", (str(ord_ + 1),))
            else:
                ord_ = int(row[0])
            item.order = ord_
            self.conn.execute(
                f"INSERT OR REPLACE INTO items ({_COLS}) VALUES (?,?,?,?,?,?,?,?,?)",
                (item.item_id, int(item.priority), item.nbytes, item.created_s, item.payload, int(item.divisible),
                 item.confirmed, item.attempts, ord_))

    def get(self, item_id: str) -> QueueItem | None:
        r = self.conn.execute(f"SELECT {_COLS} FROM items WHERE item_id = ?", (item_id,)).fetchone()
        return None if r is None else _row(r)

    def update(self, item: QueueItem) -> None:
        """Persist progress (``confirmed``, ``attempts``) of a queued item; the payload never changes."""
        self.conn.execute("UPDATE items SET confirmed = ?, attempts = ? WHERE item_id = ?",
                          (item.confirmed, item.attempts, item.item_id))

    def delete(self, item_ids: Iterable[str]) -> list[QueueItem]:
        """Remove acknowledged items in one transaction; unknown ids are ignored."""
        gone: list[QueueItem] = []
        with self.transaction():
            for i in dict.fromkeys(item_ids):
                it = self.get(i)
                if it is not None:
                    self.conn.execute("DELETE FROM items WHERE item_id = ?", (i,))
                    gone.append(it)
        return gone

    def count(self) -> int:
        return int(self.conn.execute("SELECT COUNT(*) FROM items").fetchone()[0])

    def ordered(self) -> list[QueueItem]:
        """Priority class, then first in first out (by creation time, then durable insertion order)."""
        return [_row(r) for r in self.conn.execute(f"SELECT {_COLS} FROM items ORDER BY priority, created_s, ord")]

    # --- sequence counters ------------------------------------------------------------------
    def load_counter(self) -> SequenceCounter:
        """The per-APID sequence counter as last saved (fresh counters start at 0)."""
        return SequenceCounter({int(a): int(n) for a, n in self.conn.execute("SELECT apid, next FROM seq_counters")})

    def save_counter(self, counter: SequenceCounter, apids: Iterable[int] | None = None) -> None:
        """Persist the counter's next values (call inside the transaction that queued its packets)."""
        keys = sorted(KNOWN_APIDS) if apids is None else list(apids)
        with self.transaction():
            self.conn.executemany("INSERT OR REPLACE INTO seq_counters VALUES (?, ?)",
                                  [(int(a), int(counter.peek(a))) for a in keys])

    # --- processed collects -----------------------------------------------------------------
    def collect_state(self, path: str | Path) -> str | None:
        """'done', 'failed' or None (not processed yet) for a collect file."""
        r = self.conn.execute("SELECT state FROM collects WHERE path = ?", (str(Path(path).resolve()),)).fetchone()
        return None if r is None else str(r[0])

    def mark_collect(self, path: str | Path, state: str, scene: str | None = None, alerts: int = 0,
                     detail: str | None = None, now: float | None = None) -> None:
        """Record a processed (or permanently failed) collect, so no later pass scans it again."""
        if state not in ("done", "failed"):
            raise DownlinkError(f"collect state must be 'done' or 'failed', got {state!r}")
        with self.transaction():
            self.conn.execute("INSERT OR REPLACE INTO collects VALUES (?, ?, ?, ?, ?, ?)",
                              (str(Path(path).resolve()), state, scene, int(alerts), detail,
                               time.time() if now is None else now))

    def collects(self) -> list[dict[str, object]]:
        """Every processed collect (path, state, scene, alerts, detail), oldest first."""
        cur = self.conn.execute("SELECT path, state, scene, alerts, detail FROM collects ORDER BY at, path")
        return [dict(zip(("path", "state", "scene", "alerts", "detail"), r)) for r in cur]
