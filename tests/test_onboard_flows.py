"""The onboard flows' plain functions (issue 6): power budget, FIFO collect planning, contact budget, acks.

No Prefect needed: the flows in :mod:`pipelines.flows.onboard` only sequence these functions (the
flows themselves run end to end in tests/test_end_to_end_link.py and, deployed on a process
worker, in tests/test_flows_deploy.py). Real GeoTIFF bundles, real SQLite queue files.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from pipelines.downlink.sqlite_store import SqliteQueueStore
from pipelines.errors import DownlinkError
from pipelines.flows.onboard import (
    _node,
    contact_budget_bytes,
    energy_budget_wh,
    plan_collects,
    queue_scene,
    read_ack_file,
    run_contact,
)
from _ground_util import make_alerts


def _inbox(root: Path) -> tuple[Path, Path, Path]:
    """Oldest first: a 256x256 SAR collect, a 128x128 optical collect, a file that is no GeoTIFF."""
    from detectors.synth.optical import make_optical_tile
    from detectors.synth.sar import make_sar_scene
    from pipelines.scene.write import write_optical_tile, write_sar_bundle

    root.mkdir(parents=True)
    big = write_sar_bundle(root, "big_sar", make_sar_scene(seed=5, rows=256, cols=256, spacing_m=1.0, n_vessels=1,
                                                           n_lifeboats=0, land=False), origin_utm=(500000.0, 4000000.0))
    small = write_optical_tile(root, "small_opt", make_optical_tile(seed=3, rows=128, cols=128, n_fires=1, traps=False),
                               origin_utm=(500000.0, 4200000.0))
    broken = root / "zz_broken.tif"
    broken.write_bytes(b"not a GeoTIFF")
    for i, p in enumerate([big, small, broken]):
        os.utime(p, ns=(1_700_000_000_000_000_000 + i * 10**9,) * 2)
    return big, small, broken


def test_energy_budget_is_charge_above_the_depth_of_discharge_floor(tmp_path: Path) -> None:
    node = _node(None)  # defaults: 800 Wh battery, 90 % charged, 30 % depth of discharge
    assert energy_budget_wh(node) == pytest.approx((0.90 - 0.70) * 800.0)
    assert energy_budget_wh(node, 0.5) == 0.0  # below the floor: nothing to spend, never negative
    with pytest.raises(DownlinkError, match="state_of_charge"):
        energy_budget_wh(node, 1.5)
    cfg = tmp_path / "node.json"
    cfg.write_text(json.dumps({"power": {"battery_wh": 100.0, "initial_soc": 1.0}}))
    assert energy_budget_wh(_node(str(cfg))) == pytest.approx(30.0)


def test_plan_is_fifo_without_skipping_and_unreadable_collects_fail_once(tmp_path: Path) -> None:
    big, small, broken = _inbox(tmp_path / "inbox")
    db = tmp_path / "q.sqlite"
    node = _node(None)
    cost = {p: node.config.compute.power_w * node.processing_s(n) / 3600.0
            for p, n in ((big, 256 * 256), (small, 128 * 128))}
    # Enough energy for the small collect but not for the older big one: the big one blocks the pass.
    plan = plan_collects(tmp_path / "inbox", db, energy_wh=(cost[big] + cost[small]) / 2)
    assert cost[small] < plan["budget_wh"] < cost[big]
    assert plan["todo"] == [] and [d["path"] for d in plan["deferred"]] == [str(big), str(small)]
    assert [f["path"] for f in plan["failures"]] == [str(broken)] and plan["failures"][0]["error"] == "SceneError"
    with SqliteQueueStore(db) as st:
        assert [(c["path"], c["state"]) for c in st.collects()] == [(str(broken.resolve()), "failed")]
    # A full budget takes both, oldest first, with their pixel counts and energy; the broken file is not retried.
    plan = plan_collects(tmp_path / "inbox", db, energy_wh=1.0)
    assert [(t["path"], t["pixels"]) for t in plan["todo"]] == [(str(big), 256 * 256), (str(small), 128 * 128)]
    assert [t["energy_wh"] for t in plan["todo"]] == pytest.approx([cost[big], cost[small]])
    assert plan["failures"] == [] and plan["deferred"] == []
    # A collect marked done (its alerts queued) is never planned again.
    queue_scene(db, str(big), [a.to_feature() for a in make_alerts(2, scene="big_sar")], created_s=0.0)
    assert [t["path"] for t in plan_collects(tmp_path / "inbox", db, energy_wh=1.0)["todo"]] == [str(small)]
    assert plan_collects(tmp_path / "missing", db)["todo"] == []  # no inbox yet: nothing to do
    with pytest.raises(DownlinkError, match="energy_wh"):
        plan_collects(tmp_path / "inbox", db, energy_wh=-1.0)


def test_queue_scene_is_atomic_and_idempotent(tmp_path: Path) -> None:
    db = tmp_path / "q.sqlite"
    feats = [a.to_feature() for a in make_alerts(4, scene="S-q")]
    first = queue_scene(db, "c.tif", feats, created_s=0.0)
    assert (first["alerts"], first["queued"], first["queue_items"], first["scene"]) == (4, 4, 5, "S-q")
    again = queue_scene(db, "c.tif", feats, created_s=1.0)  # a task retried after its commit
    assert (again["queued"], again["queue_items"]) == (0, 5)
    with SqliteQueueStore(db) as st:
        assert [(c["state"], c["alerts"]) for c in st.collects()] == [("done", 4)]


def test_contact_budget_and_argument_errors(tmp_path: Path) -> None:
    node = _node(None)
    lk = node.config.link
    assert contact_budget_bytes(node, 300.0) == lk.payload_bytes(lk.xband_rate_bps, 300.0 - lk.contact_setup_s)
    assert contact_budget_bytes(node, 60.0, "relay") == lk.payload_bytes(lk.relay_rate_bps, 60.0 - lk.relay_latency_s)
    assert contact_budget_bytes(node, 10.0) == 0  # shorter than the acquisition: nothing to send
    for kw, what in (({"link": "ka"}, "link"), ({"rate_bps": 0.0}, "rate_bps")):
        with pytest.raises(DownlinkError, match=what):
            contact_budget_bytes(node, 300.0, **kw)  # type: ignore[arg-type]
    with pytest.raises(DownlinkError, match="duration_s"):
        contact_budget_bytes(node, -1.0)
    with pytest.raises(DownlinkError, match="max_rounds"):
        run_contact(tmp_path / "q.sqlite", tmp_path / "in", 100, max_rounds=0)


def test_ack_file_torn_last_line_ignored_and_contact_sends_within_budget(tmp_path: Path) -> None:
    acks = tmp_path / "acks.txt"
    assert read_ack_file(acks) == []  # the ground has not written it yet
    acks.write_text("aaaa\n\n bbbb \ncc")  # "cc" is still being written
    assert read_ack_file(acks) == ["aaaa", "bbbb"]
    db = tmp_path / "q.sqlite"
    queue_scene(db, "c.tif", [a.to_feature() for a in make_alerts(6, scene="S-c")], created_s=0.0)
    rep = run_contact(db, tmp_path / "down", budget_bytes=120, contact_id="c1")
    assert 0 < rep["sent_bytes"] <= 120 and rep["rounds"] == 1 and rep["queue_items"] == 7  # nothing acked
    assert [Path(f).name for f in rep["files"]] == ["c1-r01.bin"]
    assert Path(rep["files"][0]).stat().st_size == rep["sent_bytes"]
    assert not list((tmp_path / "down").glob("*.part"))  # written then renamed
