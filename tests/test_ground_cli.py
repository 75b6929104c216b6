"""The ground and consumer CLIs end to end: subscribe, ingest, deliver, status, requeue, consumer serve."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx
from typer.testing import CliRunner

from _ground_util import Recorder, make_alerts, wait_for
from pipelines.alerts.model import feature_collection
from pipelines.ground.cli import ground_app
from pipelines.ground.signing import webhook_headers

ROOT = Path(__file__).resolve().parents[1]
runner = CliRunner()


def run(*args: str) -> tuple[int, str]:
    r = runner.invoke(ground_app, list(args))
    return r.exit_code, r.stdout


def test_subscribe_ingest_deliver_status(tmp_path: Path) -> None:
    db = str(tmp_path / "g.sqlite")
    geo = tmp_path / "alerts.geojson"
    geo.write_text(json.dumps(feature_collection(make_alerts(9))))
    with Recorder() as rec, Recorder(lambda n, h: (500, {})) as broken:
        code, out = run("subscribe", rec.url, "--store", db, "--name", "ops", "--kinds", "vessel,fire",
                        "--bbox", "0,50,20,60")
        assert code == 0 and out.strip().startswith("whsec_")  # generated secret printed once
        code, _ = run("subscribe", broken.url, "--store", db, "--name", "broken", "--secret", out.strip())
        assert code == 0
        acks = tmp_path / "acks.txt"
        code, out = run("ingest", str(geo), "--store", db, "--ack-file", str(acks), "--json")
        assert code == 0 and json.loads(out)["stored"] == 9
        assert len(acks.read_text().split()) == 9
        code, _ = run("deliver", "--store", db, "--mode", "once", "--base-delay", "0.01")
        assert code == 0 and len(rec.requests) == 6
        code, _ = run("deliver", "--store", db, "--mode", "drain", "--max-age", "0", "--base-delay", "0.01")
        assert code == 0
        code, out = run("status", "--store", db, "--json")
        doc = json.loads(out)
        assert doc["alerts"] == 9
        assert [(s["name"], s["delivered"], s["dead"]) for s in doc["subscribers"]] == [("ops", 6, 0), ("broken", 0, 9)]
        assert len(doc["dead_letters"]) == 9
        code, out = run("status", "--store", db)
        assert code == 0 and "dead letters" in out and "broken" in out
        code, _ = run("requeue", "--store", db, "--subscriber", "broken")
        assert code == 0
        code, _ = run("disable", "broken", "--store", db)
        code, out = run("status", "--store", db, "--json")
        assert [s["pending"] for s in json.loads(out)["subscribers"]] == [0, 9]
        assert json.loads(out)["subscribers"][1]["active"] is False
        assert run("enable", "broken", "--store", db)[0] == 0


def test_cli_errors_exit_2(tmp_path: Path) -> None:
    db = str(tmp_path / "g.sqlite")
    assert run("subscribe", "http://127.0.0.1:9/", "--store", db, "--bbox", "1,2,x,4")[0] == 2
    assert run("subscribe", "gopher://x", "--store", db)[0] == 2
    assert run("subscribe", "http://127.0.0.1:9/", "--store", db, "--kinds", "ship")[0] == 2
    assert run("status", "--store", str(tmp_path / "none.sqlite"))[0] == 2
    assert run("disable", "nobody", "--store", db)[0] == 2
    assert run("deliver", "--store", db, "--base-delay", "0")[0] == 2
    assert run("ingest", str(tmp_path / "missing.bin"), "--store", db)[0] == 2
    bad = tmp_path / "bad.geojson"
    bad.write_text(json.dumps({"type": "FeatureCollection", "features": [{"type": "Feature"}]}))
    assert run("ingest", str(bad), "--store", db)[0] == 1  # a bad feature is reported, exit 1


def test_serve_folder_once(tmp_path: Path) -> None:
    inbox = tmp_path / "in"
    inbox.mkdir()
    (inbox / "p1.geojson").write_text(json.dumps(feature_collection(make_alerts(4))))
    db = str(tmp_path / "g.sqlite")
    assert run("serve", str(inbox), "--store", db, "--once")[0] == 0
    assert json.loads(run("status", "--store", db, "--json")[1])["alerts"] == 4
    assert run("serve", str(tmp_path / "nope"), "--store", db)[0] == 2


def test_consumer_serve_subprocess_verifies_and_stops_on_sigterm(tmp_path: Path) -> None:
    secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    env = dict(os.environ, PYTHONPATH=str(ROOT), ORBITWATCH_WEBHOOK_SECRET=secret)
    p = subprocess.Popen([sys.executable, "-m", "pipelines.ground.cli", "consumer", "serve", "--port", "0",
                          "--db", str(tmp_path / "c.sqlite")], cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True)
    try:
        line = p.stdout.readline() if p.stdout else ""
        assert line.startswith("listening http://127.0.0.1:")
        url = line.split()[1]
        body = b'{"type":"alert.vessel","timestamp":"2024-07-01T12:00:00Z","data":{"id":"x"}}'
        r = httpx.post(url, content=body, headers=webhook_headers([secret], "msg_cli", body), timeout=5)
        assert r.status_code == 200
        r = httpx.post(url, content=body + b" ", headers=webhook_headers([secret], "msg_cli", body), timeout=5)
        assert r.status_code == 401
        wait_for(lambda: httpx.get(url, timeout=5).json().get("accepted") == 1, what="stored")
    finally:
        p.send_signal(signal.SIGTERM)
        assert p.wait(timeout=20) == 0


def test_ingest_packet_stream_from_stdin(tmp_path: Path) -> None:
    import pipelines.alerts.packets as packets
    blob = b"".join(bytes(p) for p in packets.alerts_to_packets(make_alerts(6)))
    db = str(tmp_path / "g.sqlite")
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    r = subprocess.run([sys.executable, "-m", "pipelines.ground.cli", "ground", "serve", "-", "--store", db],
                       input=blob, cwd=ROOT, env=env, capture_output=True, timeout=60)
    assert r.returncode == 0, r.stderr.decode()
    assert json.loads(run("status", "--store", db, "--json")[1])["alerts"] == 6


def test_ingest_corrupt_packets_exit_0_not_acked_strict_exit_1(tmp_path: Path) -> None:
    """Exit-status contract: a readable file with CRC-corrupt packets is a normal noisy pass (exit 0),
    the corrupt alert is reported and not acked (so it is re-sent); --strict turns it into exit 1."""
    import pipelines.alerts.packets as packets
    alerts = make_alerts(5)
    pk = [bytearray(p) for p in packets.alerts_to_packets(alerts)]
    pk[2][20] ^= 0x10  # one flipped bit in the third alert's payload: its CRC fails
    f = tmp_path / "pass.bin"
    f.write_bytes(b"".join(bytes(p) for p in pk))
    db, acks = str(tmp_path / "g.sqlite"), tmp_path / "acks.txt"
    code, out = run("ingest", str(f), "--store", db, "--ack-file", str(acks), "--json")
    assert code == 0
    rep = json.loads(out)
    assert rep["corrupt"] == 1 and rep["stored"] == 4 and rep["acked"] == 4
    assert sorted(acks.read_text().split()) == sorted(a.alert_id for i, a in enumerate(alerts) if i != 2)
    assert run("ingest", str(f), "--store", db, "--strict")[0] == 1
    assert run("ingest", str(f), str(tmp_path / "missing.bin"), "--store", db)[0] == 2  # unreadable file
    assert run("ingest", str(f), "--store", db, "--unresolved", "drop")[0] == 2  # usage error


def test_names_urls_and_errors_with_brackets_print_verbatim(tmp_path: Path) -> None:
    """Rich markup used to eat ``[...]``: an IPv6 URL printed as ``http:///hook``, ``ops[eu]`` as ``ops``."""
    db = str(tmp_path / "g.sqlite")
    url = "http://[fe80::1]:8080/hook"
    r = runner.invoke(ground_app, ["subscribe", url, "--store", db, "--name", "ops[eu]",
                                   "--secret", "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"])
    assert r.exit_code == 0, r.output
    assert f"subscriber ops[eu] (id 1) -> {url}" in r.stderr
    r = runner.invoke(ground_app, ["status", "--store", db], env={"COLUMNS": "200"})
    assert r.exit_code == 0 and "ops[eu]" in r.stdout and url in r.stdout
    r = runner.invoke(ground_app, ["subscribe", "http://127.0.0.1:9/", "--store", db, "--bbox", "1,2,[x],4"])
    assert r.exit_code == 2
    assert "error: bbox must be four numbers west,south,east,north: '1,2,[x],4'" in r.stderr
