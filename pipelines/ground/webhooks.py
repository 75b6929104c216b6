"""Standard Webhooks delivery: signed POSTs with retries, dead letters, and no message lost.

Design, and why:

* The store is the queue. Every attempt's outcome is written back (in batches) before the worker
  forgets it, so a worker killed at any moment is restarted from what the database says; anything
  in flight at the kill is simply sent again with the SAME ``webhook-id`` (at-least-once delivery,
  made exactly-once by the consumer's idempotency check).
* One delivery process per store, enforced with an OS file lock (``<store>.deliver.lock``) that
  dies with the process, so a restarted worker knows nobody else is mid-send.
* Sending runs on a thread pool; each subscriber has its own concurrency limit, HTTP client and
  timeout, so a slow or dead endpoint holds at most its own slots and never delays the others.
  Only the dispatcher thread touches SQLite.
* Retries: exponential backoff with full jitter (``uniform(0, min(cap, base * 2**n))``), raised to
  ``Retry-After`` when the endpoint sends one, until the message is ``max_age_s`` old; then it
  becomes a dead letter (``ground status`` lists them, ``ground requeue`` replays them).
* Status codes as the spec suggests: 2xx delivered; 410 Gone disables the subscriber (its messages
  stay pending for when it is re-enabled); everything else, redirects and timeouts included, retries.
"""

from __future__ import annotations

import fcntl
import json
import logging
import queue
import random
import socket
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import IO, Literal

import httpx

from pipelines.alerts.model import Alert
from pipelines.errors import GroundError, StoreError, SubscriberError
from pipelines.ground.signing import webhook_headers
from pipelines.ground.store import AlertStore, DueDelivery, Outcome, Subscriber

log = logging.getLogger(__name__)

Mode = Literal["once", "drain", "forever"]
USER_AGENT = "orbitwatch-ground/0.1 (Standard Webhooks)"
JSON_TYPE = "application/json"
CAP_TYPE = "application/cap+xml"


@dataclass(slots=True, frozen=True)
class RetryPolicy:
    """When to try again and when to give up.

    The defaults follow the spec's example schedule in spirit: first retry within seconds, spread
    out to hours, give up after about three days.
    """

    base_s: float = 5.0
    cap_s: float = 6 * 3600.0
    max_age_s: float = 3 * 24 * 3600.0
    max_attempts: int | None = None

    def __post_init__(self) -> None:
        if not (self.base_s > 0 and self.cap_s >= self.base_s and self.max_age_s >= 0):
            raise GroundError(f"retry policy needs base_s > 0, cap_s >= base_s, max_age_s >= 0: {self}")
        if self.max_attempts is not None and self.max_attempts < 1:
            raise GroundError(f"max_attempts must be >= 1, got {self.max_attempts}")

    def delay(self, attempts: int, rng: random.Random, retry_after: float | None = None) -> float:
        """Seconds until the next try after ``attempts`` failed tries (full jitter)."""
        ceiling = min(self.cap_s, self.base_s * 2.0 ** max(0, attempts - 1))
        d = rng.uniform(0.0, ceiling)
        if retry_after is not None:
            d = max(d, min(retry_after, self.cap_s))
        return d


def build_payload(d: DueDelivery, fmt: str) -> tuple[bytes, str]:
    """The exact bytes to sign and send, and their content type.

    JSON is assembled around the stored compact Feature string, so the body is byte-identical on
    every retry and costs no re-serialisation.
    """
    if fmt == "json":
        head = json.dumps({"type": f"alert.{d.kind}", "timestamp": d.acquired}, separators=(",", ":"))
        return (head[:-1] + ',"data":' + d.feature + "}").encode(), JSON_TYPE
    if fmt == "cap":
        from pipelines.alerts.cap import alert_to_cap  # optional encoding, owned by pipelines.alerts

        return alert_to_cap(Alert.from_feature(json.loads(d.feature))).encode("utf-8"), CAP_TYPE
    raise SubscriberError(f"unknown payload format {fmt!r}")


def _retry_after(value: str | None, now: float) -> float | None:
    """``Retry-After`` as seconds (it may be delta-seconds or an HTTP date)."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        return max(0.0, parsedate_to_datetime(value).timestamp() - now)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None


@dataclass(slots=True)
class _Attempt:
    d: DueDelivery
    status: int | None
    error: str | None
    retry_after: float | None
    attempted_at: float


@dataclass(slots=True)
class DeliveryStats:
    """What one ``run`` did."""

    attempts: int = 0
    delivered: int = 0
    retried: int = 0
    dead: int = 0
    disabled: list[str] = field(default_factory=list)
    pending_left: int = 0


class DeliveryLock:
    """Exclusive per-store lock held by the one delivery process; released by the OS on death."""

    def __init__(self, store_path: str | Path) -> None:
        self.path = Path(f"{store_path}.deliver.lock")
        self._fh: IO[str] | None = None

    def acquire(self) -> None:
        """Take the lock or raise StoreError at once (never wait: two workers is a deployment bug)."""
        fh = open(self.path, "a+")
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            fh.close()
            raise StoreError("another delivery worker is running on this store", self.path) from exc
        self._fh = fh

    def release(self) -> None:
        """Drop the lock (closing the file releases it)."""
        if self._fh is not None:
            self._fh.close()
            self._fh = None


class DeliveryWorker:
    """Delivers pending messages of one store; see the module docstring for the design."""

    def __init__(self, store_path: str | Path, policy: RetryPolicy | None = None, max_workers: int = 64,
                 poll_s: float = 1.0, clock: Callable[[], float] = time.time, seed: int | None = None,
                 synchronous: str = "NORMAL") -> None:
        if max_workers < 1 or poll_s <= 0:
            raise GroundError(f"max_workers must be >= 1 and poll_s > 0, got {max_workers}, {poll_s}")
        self.store_path = Path(store_path)
        self.policy = policy or RetryPolicy()
        self.max_workers = max_workers
        self.poll_s = poll_s
        self.clock = clock
        self.rng = random.Random(seed)
        self.synchronous = synchronous
        self.stop_event = threading.Event()
        self._clients: dict[int, tuple[tuple[float, int], httpx.Client]] = {}

    def stop(self) -> None:
        """Ask a running ``run`` to finish its in-flight sends, record them and return."""
        self.stop_event.set()

    # --- sending (worker threads) -----------------------------------------------------------
    def _client(self, sub: Subscriber) -> httpx.Client:
        key = (float(sub.timeout_s), int(sub.concurrency))
        cached = self._clients.get(int(sub.id or 0))
        if cached is not None and cached[0] == key:
            return cached[1]
        if cached is not None:
            cached[1].close()
        limits = httpx.Limits(max_connections=sub.concurrency, max_keepalive_connections=sub.concurrency)
        # TCP_NODELAY: headers and body are separate writes; without it a small POST can wait for
        # the peer's delayed ACK (~40 ms) on every request of a keep-alive connection.
        transport = httpx.HTTPTransport(limits=limits, socket_options=[(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)])
        client = httpx.Client(transport=transport, timeout=httpx.Timeout(sub.timeout_s), follow_redirects=False,
                              trust_env=False, headers={"user-agent": USER_AGENT})
        self._clients[int(sub.id or 0)] = (key, client)
        return client

    def _send(self, d: DueDelivery, sub: Subscriber, client: httpx.Client, out: "queue.Queue[_Attempt]") -> None:
        attempted = self.clock()
        try:
            body, ctype = build_payload(d, sub.format)
            headers = webhook_headers([sub.secret], d.webhook_id, body)
            headers["content-type"] = ctype
            r = client.post(sub.url, content=body, headers=headers)
            ra = _retry_after(r.headers.get("retry-after"), time.time()) if r.status_code in (429, 503) else None
            err = None if 200 <= r.status_code < 300 else f"HTTP {r.status_code}"
            out.put(_Attempt(d, r.status_code, err, ra, attempted))
        except httpx.TimeoutException as exc:
            out.put(_Attempt(d, None, f"timeout after {sub.timeout_s:g} s ({type(exc).__name__})", None, attempted))
        except httpx.HTTPError as exc:
            out.put(_Attempt(d, None, f"{type(exc).__name__}: {exc}"[:500], None, attempted))
        except Exception as exc:  # noqa: BLE001 - a payload bug must become a recorded failure, not a lost message
            log.exception("building or sending %s failed", d.webhook_id)
            out.put(_Attempt(d, None, f"{type(exc).__name__}: {exc}"[:500], None, attempted))

    # --- deciding (dispatcher thread) -------------------------------------------------------
    def _outcome(self, a: _Attempt, now: float, stats: DeliveryStats) -> Outcome:
        d = a.d
        stats.attempts += 1
        if a.status is not None and 200 <= a.status < 300:
            stats.delivered += 1
            return Outcome(d.webhook_id, d.subscriber_id, "delivered", a.attempted_at, a.status)
        if a.status == 410:
            return Outcome(d.webhook_id, d.subscriber_id, "pending", a.attempted_at, a.status, "410 Gone",
                           next_attempt_at=now, disable_subscriber="410 Gone: endpoint asked to stop")
        attempts = d.attempts + 1
        too_old = now - d.queued_at >= self.policy.max_age_s
        too_many = self.policy.max_attempts is not None and attempts >= self.policy.max_attempts
        if too_old or too_many:
            stats.dead += 1
            log.warning("dead letter %s after %d attempts: %s", d.webhook_id, attempts, a.error)
            return Outcome(d.webhook_id, d.subscriber_id, "dead", a.attempted_at, a.status, a.error)
        stats.retried += 1
        nxt = now + self.policy.delay(attempts, self.rng, a.retry_after)
        return Outcome(d.webhook_id, d.subscriber_id, "pending", a.attempted_at, a.status, a.error, nxt)

    def run(self, mode: Mode = "drain", max_seconds: float | None = None) -> DeliveryStats:
        """Deliver until ``mode`` says stop.

        ``once``: send what is due now, once, and return. ``drain``: keep going (retries included)
        until no active subscriber has a pending message. ``forever``: until :meth:`stop`.
        ``max_seconds`` bounds any mode (in-flight sends still finish and are recorded).
        """
        if mode not in ("once", "drain", "forever"):
            raise GroundError(f"mode must be once|drain|forever, got {mode!r}")
        lock = DeliveryLock(self.store_path)
        lock.acquire()
        try:
            store = AlertStore(self.store_path, synchronous=self.synchronous)
        except BaseException:
            lock.release()
            raise
        stats = DeliveryStats()
        done: "queue.Queue[_Attempt]" = queue.Queue()
        inflight: dict[int, set[str]] = {}
        started, cutoff, rounds = time.monotonic(), self.clock(), 0
        pool = ThreadPoolExecutor(max_workers=self.max_workers, thread_name_prefix="webhook")
        try:
            while True:
                subs = {int(s.id or 0): s for s in store.subscribers(active_only=True)}
                stopping = self.stop_event.is_set() or (
                    max_seconds is not None and time.monotonic() - started >= max_seconds)
                now = self.clock()
                dispatched = 0
                if not stopping:
                    total = sum(len(v) for v in inflight.values())
                    order = list(subs.items())
                    if order:  # rotate so no subscriber is always served first when the pool is short
                        k = rounds % len(order)
                        order = order[k:] + order[:k]
                    rounds += 1
                    for sid, sub in order:
                        busy = inflight.setdefault(sid, set())
                        # Never queue inside the pool: a task waiting there behind a slow
                        # endpoint's tasks would be held up by it.
                        free = min(sub.concurrency - len(busy), self.max_workers - total)
                        if free <= 0:
                            continue
                        client = self._client(sub)
                        for d in store.due(sid, cutoff if mode == "once" else now, free, exclude=busy):
                            busy.add(d.webhook_id)
                            pool.submit(self._send, d, sub, client, done)
                            dispatched += 1
                            total += 1
                n_inflight = sum(len(v) for v in inflight.values())
                if n_inflight == 0 and dispatched == 0:
                    if stopping or mode == "once":
                        break
                    nxt = store.next_due_at(list(subs))
                    if nxt is None and mode == "drain":
                        break
                    wait = self.poll_s if nxt is None else min(self.poll_s, max(0.0, nxt - self.clock()))
                    if self.stop_event.wait(wait):
                        continue
                    continue
                # Wait for at least one result, then take every result already there: one transaction.
                results: list[_Attempt] = []
                try:
                    results.append(done.get(timeout=self.poll_s))
                except queue.Empty:
                    pass
                while True:
                    try:
                        results.append(done.get_nowait())
                    except queue.Empty:
                        break
                now = self.clock()
                outcomes = []
                for a in results:
                    inflight.get(a.d.subscriber_id, set()).discard(a.d.webhook_id)
                    o = self._outcome(a, now, stats)
                    if o.disable_subscriber:
                        name = subs[a.d.subscriber_id].name if a.d.subscriber_id in subs else str(a.d.subscriber_id)
                        if name not in stats.disabled:
                            stats.disabled.append(name)
                            log.warning("subscriber %s answered 410 Gone: disabled", name)
                    outcomes.append(o)
                store.record_outcomes(outcomes)
            stats.pending_left = store.pending_count()
            return stats
        finally:
            pool.shutdown(wait=True)
            # Anything that finished after the loop ended (only on an exception path) is still recorded.
            leftovers = []
            while not done.empty():
                leftovers.append(self._outcome(done.get_nowait(), self.clock(), stats))
            try:
                store.record_outcomes(leftovers)
            finally:
                for _, c in self._clients.values():
                    c.close()
                self._clients.clear()
                store.close()
                lock.release()
