"""Shared helpers for the ground-segment tests: alerts, free ports, small real HTTP endpoints."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from pipelines.alerts.model import KINDS, Alert, make_alert_id


def make_alert(i: int, kind: str | None = None, score: float = 0.9, lon: float = 10.0, lat: float = 54.0,
               scene: str = "S1") -> Alert:
    """A valid alert with a unique, stable id per (scene, i)."""
    k = kind or KINDS[i % 3]
    return Alert(alert_id=make_alert_id(scene, k, float(i), float(i * 7 % 1000), "test"), scene=scene, kind=k,
                 score=score, lon=lon, lat=lat, row=float(i), col=float(i * 7 % 1000),
                 acquired=datetime(2024, 7, 1, 12, 0, tzinfo=timezone.utc), detector="test",
                 length_m=20.0 if k != "fire" else None,
                 pixels=[(i, i)] if k == "fire" else None, area_m2=400.0 if k == "fire" else None)


def make_alerts(n: int, **kw: Any) -> list[Alert]:
    return [make_alert(i, **kw) for i in range(n)]


class Recorder:
    """A real HTTP endpoint whose answer is decided per request by ``respond(n, headers) -> (status, headers)``."""

    def __init__(self, respond: Callable[[int, dict[str, str]], tuple[int, dict[str, str]]] | None = None,
                 delay_s: float = 0.0) -> None:
        self.requests: list[tuple[dict[str, str], bytes]] = []
        self.lock = threading.Lock()
        self.respond = respond or (lambda n, h: (200, {}))
        self.delay_s = delay_s
        self.release = threading.Event()
        rec = self

        class H(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a: Any) -> None:
                pass

            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers["content-length"]))
                headers = {k.lower(): v for k, v in self.headers.items()}
                with rec.lock:
                    rec.requests.append((headers, body))
                    n = len(rec.requests)
                if rec.delay_s:
                    rec.release.wait(rec.delay_s)
                status, extra = rec.respond(n, headers)
                self.send_response(status)
                for k, v in extra.items():
                    self.send_header(k, v)
                self.send_header("content-length", "0")
                self.end_headers()

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def __enter__(self) -> "Recorder":
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()

    def ids(self) -> list[str]:
        with self.lock:
            return [h["webhook-id"] for h, _ in self.requests]

    def bodies(self) -> list[dict[str, Any]]:
        with self.lock:
            return [json.loads(b) for _, b in self.requests]


def wait_for(cond: Callable[[], bool], timeout: float = 20.0, what: str = "condition") -> None:
    """Poll until ``cond()``; fail the test (not hang) if it never happens."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")
