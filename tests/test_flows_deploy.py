"""End to end, the way the README says: real `prefect server`, `prefect deploy --all`, a process worker.

Slow (a server, a deploy and a worker subprocess each import Prefect); CI runs it. Everything
lives in tmp (PREFECT_HOME, SQLite database, outputs); the server is stopped in the finalizer.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PREFECT = str(Path(sys.executable).with_name("prefect"))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=10) as r:  # noqa: S310 - 127.0.0.1 only
        return json.loads(r.read() or b"null")


@pytest.fixture
def prefect_server(tmp_path: Path) -> Iterator[dict[str, str]]:
    """A real `prefect server start` on a free port; yields the environment that points at it."""
    port = _free_port()
    home = tmp_path / "prefect-home"
    env = dict(os.environ, PREFECT_HOME=str(home), PREFECT_API_URL=f"http://127.0.0.1:{port}/api",
               PREFECT_API_DATABASE_CONNECTION_URL=f"sqlite+aiosqlite:///{home / 'prefect.db'}",
               PREFECT_SERVER_ANALYTICS_ENABLED="false", PREFECT_UI_ENABLED="false",
               PREFECT_SERVER_UI_ENABLED="false", PWD=str(REPO))
    log = (tmp_path / "server.log").open("w")
    proc = subprocess.Popen([PREFECT, "server", "start", "--host", "127.0.0.1", "--port", str(port)],
                            env=env, cwd=REPO, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                _get(f"http://127.0.0.1:{port}/api/health")
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"prefect server did not start:\n{(tmp_path / 'server.log').read_text()[-3000:]}")
                time.sleep(1)
        yield env
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
        log.close()


def _prefect(env: dict[str, str], *args: str, timeout: float = 180) -> str:
    res = subprocess.run([PREFECT, "--no-prompt", *args], env=env, cwd=REPO, capture_output=True, text=True,
                         timeout=timeout)
    assert res.returncode == 0, f"prefect {' '.join(args)} failed:\n{res.stdout[-3000:]}\n{res.stderr[-3000:]}"
    return res.stdout + res.stderr


def _wait_final(api: str, flow_run_id: str, timeout_s: float = 180) -> dict:
    deadline = time.monotonic() + timeout_s
    while True:
        state = _get(f"{api}/flow_runs/{flow_run_id}")["state"]
        if state["type"] in ("COMPLETED", "FAILED", "CRASHED", "CANCELLED") or time.monotonic() > deadline:
            return state
        time.sleep(2)


def _schedule(env: dict[str, str], name: str, params: dict) -> str:
    run = _prefect(env, "deployment", "run", name, "--params", json.dumps(params))
    return re.search(r"UUID:\s*([0-9a-f-]{36})", run).group(1)


@pytest.mark.slow
def test_deploy_all_and_run_on_a_process_worker(prefect_server: dict[str, str], tmp_path: Path) -> None:
    from _ground_util import make_alerts
    from pipelines.alerts.packets import iter_packets, quantise_alert
    from pipelines.downlink.sqlite_store import SqliteQueueStore
    from pipelines.flows.onboard import queue_scene

    env = prefect_server
    api = env["PREFECT_API_URL"]
    _prefect(env, "work-pool", "create", "orbitwatch-process", "--type", "process")
    out = _prefect(env, "deploy", "--all")
    for name in ("scan-folder/sample-scenes", "scan-scene/one-scene", "deliver-alerts/ground-inbox",
                 "onboard-pass/onboard-pass", "downlink-contact/downlink-contact"):
        assert _get(f"{api}/deployments/name/{name}")["work_pool_name"] == "orbitwatch-process", out
    # Issue 6: the onboard deployments default to the committed sample scenes and one durable queue.
    onboard = _get(f"{api}/deployments/name/onboard-pass/onboard-pass")["parameters"]
    contact = _get(f"{api}/deployments/name/downlink-contact/downlink-contact")["parameters"]
    assert onboard["inbox"] == "sample_scenes" and onboard["queue_db"] == contact["queue_db"]
    assert contact["ground_inbox"] == "out/downlink" and contact["ack_file"]

    # Three runs for one worker poll, all writing to tmp, not to out/: the committed default scene;
    # an onboard pass over sample_scenes/ with no energy to spare (it plans, defers, queues nothing);
    # a contact that downlinks a queue prepared here.
    alerts = make_alerts(5, scene="S-deploy")
    queue_db, contact_q = tmp_path / "onboard.sqlite", tmp_path / "contact.sqlite"
    queue_scene(contact_q, "collect.tif", [a.to_feature() for a in alerts], created_s=0.0)
    runs = {
        "scan": _schedule(env, "scan-scene/one-scene", {"out_dir": str(tmp_path / "out")}),
        "onboard": _schedule(env, "onboard-pass/onboard-pass", {"queue_db": str(queue_db), "energy_wh": 0.0,
                                                                 "device": "cpu"}),
        "contact": _schedule(env, "downlink-contact/downlink-contact", {
            "queue_db": str(contact_q), "ground_inbox": str(tmp_path / "downlink"),
            "ack_file": str(tmp_path / "acks.txt"), "contact_id": "deploy"}),
    }
    worker = subprocess.run([PREFECT, "worker", "start", "--pool", "orbitwatch-process", "--run-once"],
                            env=env, cwd=REPO, capture_output=True, text=True, timeout=400)
    for what, flow_run_id in runs.items():
        state = _wait_final(api, flow_run_id)
        assert state["type"] == "COMPLETED", f"{what}: {state}\nworker:\n{worker.stdout[-4000:]}\n{worker.stderr[-4000:]}"
    geojson = tmp_path / "out" / "scenes" / "butte_ca_landsat8.geojson"
    assert json.loads(geojson.read_text())["type"] == "FeatureCollection"
    with SqliteQueueStore(queue_db) as st:  # the pass opened its queue and scanned nothing
        assert st.count() == 0 and st.collects() == []
    down = tmp_path / "downlink" / "deploy-r01.bin"  # one round: file mode waits for the ack file
    got = {d.alert.alert_id: d.alert for d in iter_packets(down.read_bytes()) if d.alert is not None}
    assert {k: v.to_feature() for k, v in got.items()} == {a.alert_id: quantise_alert(a).to_feature() for a in alerts}
    with SqliteQueueStore(contact_q) as st:  # not acked yet: everything stays queued for the next contact
        assert st.count() == len(alerts) + 1
