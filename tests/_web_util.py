"""Helpers of the web console tests: a populated store and a real uvicorn server on a free port."""

from __future__ import annotations

import socket
import threading
import time
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Iterator

import httpx
import numpy as np

from pipelines.alerts.model import KINDS, Alert, make_alert_id
from pipelines.alerts.thumbnail import make_thumbnail
from pipelines.ground.signing import generate_secret
from pipelines.ground.store import AlertStore, Outcome, Subscriber

T0 = datetime(2024, 7, 1, 0, 0, tzinfo=timezone.utc)


def make_alerts(n: int, seed: int = 0, scene: str = "S1A_IW_GRDH_20240701") -> list[Alert]:
    """``n`` alerts spread over the North Atlantic and Mediterranean, one every 10 minutes from T0."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        k = KINDS[i % 3]
        out.append(Alert(
            alert_id=make_alert_id(f"{scene}-{seed}", k, i, 0, "test"), scene=scene, kind=k,  # type: ignore[arg-type]
            score=round(float(rng.uniform(0.3, 1.0)), 4), lon=float(rng.uniform(-40, 30)),
            lat=float(rng.uniform(25, 60)), row=float(i), col=0.0, acquired=T0 + timedelta(minutes=10 * i),
            detector="test", length_m=30.0 if k != "fire" else None, pixels=[(i, 0)] if k == "fire" else None,
            area_m2=900.0 if k == "fire" else None))
    return out


def make_console_store(path: Path, n: int = 60, thumbs: int = 10) -> list[Alert]:
    """A store with ``n`` alerts, thumbnails for the first ``thumbs``, and two subscribers whose
    deliveries are in every state: "ops" got alert 0 delivered and alert 1 dead-lettered, "sar"
    (lifeboats only) has everything pending."""
    alerts = make_alerts(n)
    with AlertStore(path) as st:
        ops = st.add_subscriber(Subscriber(name="ops", url="https://ops.example/hook?key=s3cret",
                                           secret=generate_secret()))
        st.add_subscriber(Subscriber(name="sar", url="https://sar.example/hook", secret=generate_secret(),
                                     kinds=("lifeboat",)))
        st.add_alerts(alerts)
        rng = np.random.default_rng(1)
        st.add_thumbnails({a.alert_id: make_thumbnail(rng.rayleigh(1.0, (64, 64)) + 5.0 * (np.hypot(
            *np.mgrid[-32:32, -32:32]) < 4), 32, 32) for a in alerts[:thumbs]})
        now = time.time()
        d0 = st.delivery(alerts[0].alert_id, "ops")["webhook_id"]
        d1 = st.delivery(alerts[1].alert_id, "ops")["webhook_id"]
        st.record_outcomes([Outcome(d0, int(ops.id or 0), "delivered", now, status=204),
                            Outcome(d1, int(ops.id or 0), "dead", now, status=500, error="HTTP 500")])
    return alerts


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def running(app: object) -> Iterator[str]:
    """Serve an ASGI app with a real uvicorn server on 127.0.0.1 in a thread; yields its base URL."""
    import uvicorn

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning",  # type: ignore[arg-type]
                                           access_log=False))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.02)
    httpx.get(url + "/api/info", timeout=10).raise_for_status()
    try:
        yield url
    finally:
        server.should_exit = True
        thread.join(timeout=20)
