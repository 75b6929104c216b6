"""The whole link: generated scenes -> onboard-pass -> downlink-contact over a noisy channel -> ground
receiver -> DeliveryWorker -> a real WebhookConsumer on 127.0.0.1.

Reliability item 3 (packet part): packets with flipped bits are rejected by the CRC and sent again;
with flips injected at a fixed rate no wrong alert reaches the ground and none is lost. Everything
is real: Prefect's test harness, rasterio bundles, the detectors, SQLite files, HTTP.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from pipelines.alerts.packets import quantise_alert
from pipelines.detect import ScanOptions
from pipelines.detect import scan_scene as detect
from pipelines.downlink.sqlite_store import SqliteQueueStore
from pipelines.flows.onboard import downlink_contact, onboard_pass, queue_scene, run_contact
from pipelines.ground.consumer import WebhookConsumer
from pipelines.ground.store import AlertStore, Subscriber
from pipelines.ground.webhooks import DeliveryWorker

ROOT = Path(__file__).resolve().parent.parent
SECRET = "whsec_" + "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


def _collects(inbox: Path) -> list[Path]:
    from detectors.synth.optical import make_optical_tile
    from detectors.synth.sar import make_sar_scene
    from pipelines.scene.write import write_optical_tile, write_sar_bundle

    inbox.mkdir(parents=True)
    fire = write_optical_tile(inbox, "fire_collect", make_optical_tile(seed=3, rows=128, cols=128, n_fires=2, traps=False),
                              origin_utm=(500000.0, 4200000.0))
    sea = write_sar_bundle(inbox, "sea_collect", make_sar_scene(seed=5, rows=256, cols=256, spacing_m=1.0, n_vessels=2,
                                                                n_lifeboats=0, land=False),
                           origin_utm=(500000.0, 4000000.0))
    broken = inbox / "zz_broken.tif"
    broken.write_bytes(b"not a GeoTIFF")
    for i, p in enumerate([fire, sea, broken]):  # arrival order = FIFO order
        os.utime(p, ns=(1_700_000_000_000_000_000 + i * 10**9,) * 2)
    return [fire, sea, broken]


@pytest.mark.slow
def test_noisy_link_every_alert_reaches_the_consumer_exactly_once(harness: None, tmp_path: Path) -> None:
    fire, sea, broken = _collects(tmp_path / "inbox")
    queue_db, ground_db = tmp_path / "node" / "queue.sqlite", tmp_path / "ground" / "ground.sqlite"
    downlink = tmp_path / "downlink"

    # Pass 1: energy for the small optical collect only; the SAR collect waits (FIFO, no skipping).
    p1 = onboard_pass(str(tmp_path / "inbox"), str(queue_db), energy_wh=1e-5, device="cpu")
    assert [x["path"] for x in p1["processed"]] == [str(fire)]
    assert p1["deferred"] == [str(sea)]
    assert [f["path"] for f in p1["failed"]] == [str(broken)] and p1["failed"][0]["error"] == "SceneError"
    assert 0 < p1["energy_wh"] <= 1e-5
    # Pass 2: full battery; the broken collect is not retried, the fire collect not rescanned.
    p2 = onboard_pass(str(tmp_path / "inbox"), str(queue_db), device="cpu")
    assert [x["path"] for x in p2["processed"]] == [str(sea)] and p2["failed"] == [] and p2["deferred"] == []
    assert onboard_pass(str(tmp_path / "inbox"), str(queue_db), device="cpu")["processed"] == []

    onboard = {a.alert_id: a for p in (fire, sea) for a in detect(p, ScanOptions(device="cpu")).alerts}
    assert {a.kind for a in onboard.values()} >= {"fire", "vessel"}
    with SqliteQueueStore(queue_db) as st:
        assert st.count() == len(onboard) + 2  # one scene header per scene
        assert {c["state"] for c in st.collects()} == {"done", "failed"}

    with AlertStore(ground_db) as gs:
        gs.add_subscriber(Subscriber(name="rescue", url="http://127.0.0.1:9/x", secret=SECRET))
    with WebhookConsumer([SECRET], tmp_path / "consumer.sqlite", path="/hook") as consumer:
        with AlertStore(ground_db) as gs:
            gs.conn.execute("UPDATE subscribers SET url = ?", (f"http://127.0.0.1:{consumer.port}/hook",))
        contacts, corrupt, flipped = 0, 0, 0
        while contacts < 40:
            contacts += 1
            rep = downlink_contact(str(queue_db), str(downlink), duration_s=30.5, rate_bps=8000.0, ber=1e-3,
                                   seed=contacts, ground_store=str(ground_db), contact_id=f"c{contacts:02d}",
                                   max_rounds=3)
            corrupt += rep["ground_corrupt"]
            flipped += rep["flipped_bits"]
            assert rep["sent_bytes"] <= rep["budget_bytes"] == 435
            DeliveryWorker(ground_db, seed=0).run(mode="drain", max_seconds=30)
            # At no moment has any subscriber been sent a placeholder scene name.
            for r in consumer.store.received():
                assert not json.loads(r.body)["data"]["properties"]["scene"].startswith("scene-")
            if rep["queue_items"] == 0:
                break
        assert contacts > 1  # the budget really forced several contacts
        assert flipped > 0 and corrupt > 0  # bits were flipped and the CRC rejected packets ...
        with AlertStore(ground_db) as gs:
            c = gs.counters()
            assert c["packets_corrupt"] == corrupt
            assert gs.alert_count() == len(onboard) and gs.held_count() == 0  # ... which were sent again
            for aid, a in onboard.items():  # no corrupted alert stored: every field as one packet carries it
                assert gs.alert(aid).to_feature() == quantise_alert(a).to_feature()
        got = consumer.store.received()
        ids = [r.alert_id for r in got]
        assert sorted(ids) == sorted(onboard) and len(set(ids)) == len(ids)  # each exactly once
        for r in got:
            feat = json.loads(r.body)["data"]
            assert feat == quantise_alert(onboard[r.alert_id]).to_feature()
            assert feat["properties"]["scene"] in ("fire_collect", "sea_collect")


@pytest.mark.slow
def test_file_exchange_with_ground_ingest_ack_file(tmp_path: Path) -> None:
    """The documented two-process exchange: downlink file -> `ground ingest --ack-file` -> next contact acks."""
    from _ground_util import make_alerts

    alerts = make_alerts(8, scene="S-files")
    queue_db, ground_db, acks = tmp_path / "q.sqlite", tmp_path / "g.sqlite", tmp_path / "acks.txt"
    queue_scene(queue_db, "collect.tif", [a.to_feature() for a in alerts], created_s=0.0)
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    sent: list[str] = []
    corrupt = 0
    for n in range(1, 10):
        rep = run_contact(queue_db, tmp_path / "inbox", budget_bytes=300, ber=2e-3, seed=n, ack_file=acks,
                          contact_id=f"c{n}")
        if not rep["files"]:
            break
        assert rep["rounds"] == 1  # no acks within a contact in file mode
        r = subprocess.run([sys.executable, "-m", "pipelines.ground.cli", "ground", "ingest", *rep["files"],
                            "--store", str(ground_db), "--ack-file", str(acks), "--unresolved", "hold", "--json"],
                           cwd=ROOT, env=env, capture_output=True, timeout=120)
        # Exit 0 although the noisy link corrupted packets: they are reported and not acked (re-sent).
        assert r.returncode == 0, r.stderr.decode()
        corrupt += json.loads(r.stdout)["corrupt"]
        with AlertStore(ground_db) as gs:  # held alerts wait for their header: never a placeholder name
            assert all(not gs.alert(i).scene.startswith("scene-")
                       for i in gs.existing_ids([a.alert_id for a in alerts]))
        sent += rep["files"]
    assert rep["acked_from_file"] > 0 and rep["queue_items"] == 0
    with AlertStore(ground_db) as gs:
        assert gs.alert_count() == 8 and gs.held_count() == 0
        assert all(gs.alert(a.alert_id).to_feature() == quantise_alert(a).to_feature() for a in alerts)
        assert gs.counters().get("packets_corrupt", 0) == corrupt > 0
    assert len(sent) > 1


@pytest.mark.slow
def test_deployed_flows_close_the_ack_loop(harness: None, tmp_path: Path) -> None:
    """downlink-contact -> deliver-alerts(ack_file) -> next downlink-contact: the queue empties, as
    the prefect.yaml deployments wire it (acks through out/downlink-acks.txt)."""
    from _ground_util import make_alerts

    from pipelines.flows.ground import deliver_alerts

    alerts = make_alerts(6, scene="S-flows")
    queue_db, inbox, store, acks = (tmp_path / "q.sqlite", tmp_path / "downlink", tmp_path / "g.sqlite",
                                    tmp_path / "acks.txt")
    queue_scene(queue_db, "collect.tif", [a.to_feature() for a in alerts], created_s=0.0)
    first = downlink_contact(str(queue_db), str(inbox), duration_s=60.0, ack_file=str(acks), contact_id="c1")
    assert first["files"] and first["queue_items"] > 0  # nothing acked yet: everything still queued
    res = deliver_alerts(str(inbox), str(store), deliver=False, ack_file=str(acks))
    assert res["ingest"]["stored"] == 6
    acked = acks.read_text().split()
    assert sorted(i for i in acked if not i.startswith("scene:")) == sorted(a.alert_id for a in alerts)
    assert len([i for i in acked if i.startswith("scene:")]) == 1  # the scene header is acked too
    with AlertStore(store) as gs:  # the scene header came first: the real scene name, nothing held
        assert {gs.alert(a.alert_id).scene for a in alerts} == {"S-flows"} and gs.held_count() == 0
    second = downlink_contact(str(queue_db), str(inbox), duration_s=60.0, ack_file=str(acks), contact_id="c2")
    assert second["acked_from_file"] >= 6 and second["queue_items"] == 0
