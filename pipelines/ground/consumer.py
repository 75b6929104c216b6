"""Reference webhook consumer: what a rescue centre or fire service runs to receive orbitwatch alerts.

It shows the receiving half of Standard Webhooks done right, and is the endpoint our own tests and
benchmark deliver to:

* verify the signature over the exact raw body, constant-time (``hmac.compare_digest``);
* reject timestamps outside a tolerance (default 5 min) so a captured request cannot be replayed
  later; 400 for a missing/malformed header or a stale timestamp, 401 for a wrong signature;
* use ``webhook-id`` as an idempotency key: a repeat (a retry whose 2xx got lost, or a replay
  inside the tolerance) is answered 200 and not processed again;
* accept both payload formats a subscriber can ask for: the JSON envelope and CAP 1.2 XML
  (``application/cap+xml``, validated; a body that is not a CAP alert is answered 400), each
  indexed by its alert id;
* store what it accepts in SQLite (the ``webhook-id`` primary key is the seen-set, so it survives
  a restart) and only then answer 2xx, so a 2xx means "durably received".
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from pipelines.alerts.cap import cap_to_alert
from pipelines.errors import AlertError, GroundError, WebhookSignatureError, WebhookTimestampError
from pipelines.ground.signing import DEFAULT_TOLERANCE_S, secret_key, verify

log = logging.getLogger(__name__)

#: Content type of CAP 1.2 payloads (subscribers created with ``--format cap``).
CAP_CONTENT_TYPE = "application/cap+xml"
MAX_BODY = 1 << 20  # alerts are ~1 kB; anything this big is not ours

_SCHEMA = """
CREATE TABLE IF NOT EXISTS received (
    webhook_id   TEXT PRIMARY KEY,
    timestamp    INTEGER NOT NULL,
    received_at  REAL NOT NULL,
    content_type TEXT,
    type         TEXT,
    alert_id     TEXT,
    body         TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
"""


@dataclass(slots=True)
class Received:
    """One accepted webhook, as stored."""

    webhook_id: str
    timestamp: int
    received_at: float
    content_type: str | None
    type: str | None
    alert_id: str | None
    body: str


EventHook = Callable[[Received], None]


class ConsumerStore:
    """SQLite file of accepted webhooks; thread-safe (one connection, one lock: requests are tiny)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        try:
            self.conn = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None, timeout=30)
            self.conn.execute("PRAGMA journal_mode=WAL")
            self.conn.execute("PRAGMA synchronous=NORMAL")
            self.conn.executescript(_SCHEMA)
        except sqlite3.DatabaseError as exc:
            raise GroundError(f"cannot open consumer store: {exc}", self.path) from exc

    def add(self, r: Received) -> bool:
        """Store unless this webhook-id was seen before; True if it is new."""
        with self._lock:
            cur = self.conn.execute(
                "INSERT OR IGNORE INTO received VALUES (?,?,?,?,?,?,?)",
                (r.webhook_id, r.timestamp, r.received_at, r.content_type, r.type, r.alert_id, r.body))
            new = cur.rowcount == 1
            self.conn.execute("INSERT INTO counters VALUES (?, 1) ON CONFLICT(name) DO UPDATE SET value = value + 1",
                              ("accepted" if new else "duplicates",))
            return new

    def bump(self, name: str) -> None:
        """Count a rejection (bad_signature, bad_request...)."""
        with self._lock:
            self.conn.execute("INSERT INTO counters VALUES (?, 1) ON CONFLICT(name) DO UPDATE SET value = value + 1",
                              (name,))

    def counters(self) -> dict[str, int]:
        """accepted / duplicates / bad_signature / bad_timestamp / bad_request totals."""
        with self._lock:
            return {k: v for k, v in self.conn.execute("SELECT name, value FROM counters")}

    def received(self) -> list[Received]:
        """Everything accepted, in arrival order."""
        with self._lock:
            rows = self.conn.execute("SELECT * FROM received ORDER BY received_at, rowid").fetchall()
        return [Received(*r) for r in rows]

    def close(self) -> None:
        """Close the connection."""
        with self._lock:
            self.conn.close()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: the ground sends many small requests per connection
    # Headers and body go out in separate writes; with Nagle on, each reply waits ~40 ms for the
    # client's delayed ACK. TCP_NODELAY makes a keep-alive request/response cost what it should.
    disable_nagle_algorithm = True
    server: "_Server"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        log.debug("%s " + format, self.address_string(), *args)

    def _reply(self, code: int, payload: dict[str, Any]) -> None:
        body = json.dumps(payload).encode()
        self.send_response(code)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self) -> None:  # noqa: N802 - stdlib naming
        c = self.server.consumer
        try:
            length = int(self.headers.get("content-length", ""))
        except ValueError:
            c.store.bump("bad_request")
            self.close_connection = True
            return self._reply(411, {"error": "content-length required"})
        if length < 0 or length > MAX_BODY:
            c.store.bump("bad_request")
            self.close_connection = True
            return self._reply(413, {"error": "body too large"})
        body = self.rfile.read(length)
        if c.path is not None and self.path.split("?", 1)[0] != c.path:
            return self._reply(404, {"error": "not found"})
        headers = {k.lower(): v for k, v in self.headers.items()}
        if not all(headers.get(h) for h in ("webhook-id", "webhook-timestamp", "webhook-signature")):
            c.store.bump("bad_request")
            return self._reply(400, {"error": "missing webhook-id, webhook-timestamp or webhook-signature"})
        try:
            msg_id, ts = verify(c.secrets, headers, body, tolerance_s=c.tolerance_s)
        except WebhookTimestampError as exc:
            c.store.bump("bad_timestamp")
            return self._reply(400, {"error": str(exc)})
        except WebhookSignatureError as exc:
            c.store.bump("bad_signature")
            return self._reply(401, {"error": str(exc)})
        ctype = headers.get("content-type")
        etype = alert_id = None
        if ctype and ctype.startswith("application/json"):
            try:
                doc = json.loads(body)
                etype = doc.get("type")
                alert_id = (doc.get("data") or {}).get("id")
            except (ValueError, AttributeError):
                c.store.bump("bad_request")
                return self._reply(400, {"error": "body is not a JSON object"})
        elif ctype and ctype.startswith(CAP_CONTENT_TYPE):
            # CAP 1.2 subscribers: validate the document and index it by the same alert id as JSON.
            try:
                cap_alert = cap_to_alert(body.decode("utf-8"))
            except (AlertError, UnicodeDecodeError) as exc:
                c.store.bump("bad_request")
                return self._reply(400, {"error": f"body is not a valid orbitwatch CAP 1.2 alert: {exc}"})
            etype, alert_id = f"alert.{cap_alert.kind}", cap_alert.alert_id
        rec = Received(msg_id, ts, time.time(), ctype, etype, alert_id, body.decode("utf-8", "replace"))
        new = c.store.add(rec)
        if new and c.on_event is not None:
            c.on_event(rec)
        self._reply(200, {"ok": True, "duplicate": not new})

    def do_GET(self) -> None:  # noqa: N802 - a health check for load balancers and for `serve --wait`
        self._reply(200, {"ok": True, **self.server.consumer.store.counters()})


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256
    consumer: "WebhookConsumer"


class WebhookConsumer:
    """The reference consumer server; ``start()`` runs it in a background thread, ``serve()`` in this one."""

    def __init__(self, secrets: Sequence[str], db_path: str | Path, host: str = "127.0.0.1", port: int = 0,
                 tolerance_s: float = DEFAULT_TOLERANCE_S, path: str | None = None,
                 on_event: EventHook | None = None, bind: bool = True) -> None:
        if not secrets:
            raise GroundError("the consumer needs at least one webhook secret")
        for s in secrets:
            secret_key(s)  # fail now on a malformed secret, not on the first request
        if tolerance_s <= 0:
            raise GroundError(f"tolerance_s must be > 0, got {tolerance_s}")
        self.secrets = list(secrets)
        self.tolerance_s = tolerance_s
        self.path = path
        self.on_event = on_event
        self.store = ConsumerStore(db_path)
        self._server = _Server((host, port), _Handler, bind_and_activate=False)
        self._server.consumer = self
        self._thread: threading.Thread | None = None
        self._listening = False
        if bind:
            self._server.server_bind()

    @property
    def port(self) -> int:
        """The bound port (useful with port=0)."""
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        """The URL subscribers should POST to."""
        host = self._server.server_address[0]
        return f"http://{host}:{self.port}{self.path or '/'}"

    def listen(self) -> None:
        """Start accepting connections (bound but not listening = connection refused = "down")."""
        if not self._listening:
            self._server.server_activate()
            self._listening = True

    def start(self) -> "WebhookConsumer":
        """Listen and serve in a daemon thread."""
        self.listen()
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="webhook-consumer", daemon=True)
        self._thread.start()
        return self

    def serve(self) -> None:
        """Listen and serve in this thread until ``shutdown()`` (or KeyboardInterrupt)."""
        self.listen()
        self._server.serve_forever(poll_interval=0.2)

    def shutdown(self) -> None:
        """Stop serving and close the socket and the store."""
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join()
            self._thread = None
        self.close()

    def close(self) -> None:
        """Close the socket and the store (after ``serve()`` returned)."""
        self._server.server_close()
        self.store.close()

    def __enter__(self) -> "WebhookConsumer":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.shutdown()
