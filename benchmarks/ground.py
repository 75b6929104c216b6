"""Ground segment throughput: ingest into the SQLite store, and signed webhook delivery to a local consumer.

Targets (issue "Ground segment"): ingest >= 10,000 alerts/s; delivery >= 500 webhooks/s on a
2-core machine. The consumer is the real reference consumer (verifies every signature, stores
every message in SQLite) in its own process, on 127.0.0.1, so both ends' CPU cost is counted.

    .venv/bin/python benchmarks/ground.py            # prints a table, writes benchmarks/results/ground.json
    .venv/bin/python benchmarks/ground.py --quick    # smaller run for a smoke test
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from pipelines.alerts.model import KINDS, Alert, feature_collection, make_alert_id  # noqa: E402
from pipelines.ground.receiver import Receiver  # noqa: E402
from pipelines.ground.signing import generate_secret  # noqa: E402
from pipelines.ground.store import AlertStore, Subscriber  # noqa: E402
from pipelines.ground.webhooks import DeliveryWorker, RetryPolicy  # noqa: E402


def alerts(n: int, scene: str) -> list[Alert]:
    """Synthetic alerts with realistic fields (ids as the detectors make them)."""
    t = datetime(2024, 7, 1, 12, tzinfo=timezone.utc)
    out = []
    for i in range(n):
        k = KINDS[i % 3]
        out.append(Alert(alert_id=make_alert_id(scene, k, i // 1000, i % 1000, "bench"), scene=scene, kind=k,
                         score=0.5 + (i % 50) / 100, lon=-10 + (i % 400) * 0.05, lat=40 + (i % 300) * 0.05,
                         row=i // 1000, col=i % 1000, acquired=t, detector="bench",
                         length_m=25.0 if k != "fire" else None, heading_deg=90.0 if k != "fire" else None,
                         pixels=[(i // 1000, i % 1000)] if k == "fire" else None,
                         area_m2=900.0 if k == "fire" else None))
    return out


def bench_ingest(tmp: Path, n: int) -> dict[str, Any]:
    """Store + fan-out to 2 subscribers, from Alert objects, from GeoJSON, and from packets if available."""
    res: dict[str, Any] = {"alerts": n, "subscribers": 2}
    db = tmp / "ingest.sqlite"
    with AlertStore(db) as st:
        for name in ("a", "b"):
            st.add_subscriber(Subscriber(name=name, url=f"http://127.0.0.1:9/{name}", secret=generate_secret()))
        data = alerts(n, "objects")
        t0 = time.perf_counter()
        rx = Receiver(st, batch_size=5000)
        for i in range(0, n, 5000):
            st.add_alerts(data[i:i + 5000])
        res["objects_per_s"] = n / (time.perf_counter() - t0)

        doc = feature_collection(alerts(n, "geojson"))
        path = tmp / "alerts.geojson"
        path.write_text(json.dumps(doc))
        t0 = time.perf_counter()
        rep = rx.receive_file(path)
        res["geojson_per_s"] = n / (time.perf_counter() - t0)
        res["geojson_stored"] = rep.stored

        t0 = time.perf_counter()
        rep = rx.receive_file(path)  # the same pass again: everything is a duplicate
        res["geojson_duplicates_per_s"] = n / (time.perf_counter() - t0)
        try:
            from pipelines.alerts.packets import alerts_to_packets
        except ImportError:
            res["packets_per_s"] = None
        else:
            blob = b"".join(bytes(p) for p in alerts_to_packets(alerts(n, "packets")))
            t0 = time.perf_counter()
            rep = rx.receive_bytes(blob, "bench")
            res["packets_per_s"] = n / (time.perf_counter() - t0)
            res["packets_stored"] = rep.stored
        res["deliveries_queued"] = st.pending_count()
    return res


def bench_delivery(tmp: Path, n: int, concurrency: int) -> dict[str, Any]:
    """Drain n webhooks to the reference consumer running in its own process."""
    secret = generate_secret()
    env = dict(os.environ, PYTHONPATH=str(ROOT), ORBITWATCH_WEBHOOK_SECRET=secret)
    proc = subprocess.Popen([sys.executable, "-m", "pipelines.ground.cli", "consumer", "serve", "--port", "0",
                             "--db", str(tmp / "consumer.sqlite")], env=env, stdout=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline() if proc.stdout else ""
        if not line.startswith("listening "):
            raise RuntimeError(f"consumer did not start: {line!r}")
        url = line.split()[1]
        db = tmp / "deliver.sqlite"
        with AlertStore(db) as st:
            st.add_subscriber(Subscriber(name="c", url=url, secret=secret, concurrency=concurrency))
            st.add_alerts(alerts(n, "deliver"))
        worker = DeliveryWorker(db, policy=RetryPolicy(base_s=0.1, cap_s=1), max_workers=concurrency)
        t0 = time.perf_counter()
        stats = worker.run("drain")
        dt = time.perf_counter() - t0
        import httpx
        accepted = httpx.get(url, timeout=10).json().get("accepted", 0)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    return {"webhooks": n, "concurrency": concurrency, "seconds": dt, "per_s": n / dt,
            "delivered": stats.delivered, "retried": stats.retried, "consumer_accepted": accepted}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--ingest", type=int, default=50_000)
    ap.add_argument("--deliver", type=int, default=5_000)
    ap.add_argument("--concurrency", type=int, default=16)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "ground.json")
    args = ap.parse_args()
    if args.quick:
        args.ingest, args.deliver = 5_000, 500
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory() as td:
        ingest = bench_ingest(Path(td), args.ingest)
        delivery = bench_delivery(Path(td), args.deliver, args.concurrency)
    doc = {
        "when": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform(),
                    "loadavg_before": load_before, "loadavg_after": os.getloadavg()},
        "ingest": ingest, "delivery": delivery,
        "targets": {"ingest_per_s": 10_000, "delivery_per_s": 500},
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(doc, indent=2))
    tmp.replace(args.out)

    t = Table("measure", "rate", "target", title=f"ground segment ({os.cpu_count()} CPUs, load {load_before[0]:.2f})")
    t.add_row(f"ingest Alert objects ({args.ingest:,}, 2 subscribers)", f"{ingest['objects_per_s']:,.0f} /s", "10,000 /s")
    t.add_row("ingest GeoJSON file (parse + store)", f"{ingest['geojson_per_s']:,.0f} /s", "10,000 /s")
    t.add_row("ingest GeoJSON again (all duplicates)", f"{ingest['geojson_duplicates_per_s']:,.0f} /s", "")
    pk = ingest.get("packets_per_s")
    t.add_row("ingest packet stream (decode + CRC + store)", "n/a (no packets module)" if pk is None else f"{pk:,.0f} /s", "10,000 /s")
    t.add_row(f"deliver signed webhooks ({args.deliver:,}, concurrency {args.concurrency})",
              f"{delivery['per_s']:,.0f} /s", "500 /s")
    Console().print(t)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
