"""The Prefect flows with no server: Prefect's real test harness (temporary local API + SQLite).

No mocks: real flows, real tasks, real GeoTIFF bundles written with rasterio, the real detectors
(plus, for the GPU-slot test, a tiny detector registered through the public registry that only
records when it runs).
"""

from __future__ import annotations

import json
import os
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest

from detectors import register
from pipelines.flows.ground import deliver_alerts
from pipelines.flows.scan import scan_folder, scan_scene


def _optical_scene(folder: Path, stem: str, seed: int) -> Path:
    from detectors.synth.optical import make_optical_tile
    from pipelines.scene.write import write_optical_tile

    folder.mkdir(parents=True, exist_ok=True)
    tile = make_optical_tile(seed=seed, rows=128, cols=128, n_fires=2, traps=False)
    return write_optical_tile(folder, stem, tile, origin_utm=(500000.0, 4200000.0))


def _sar_scene(folder: Path, stem: str, seed: int) -> Path:
    from detectors.synth.sar import make_sar_scene
    from pipelines.scene.write import write_sar_bundle

    folder.mkdir(parents=True, exist_ok=True)
    scene = make_sar_scene(seed=seed, rows=256, cols=256, spacing_m=1.0, n_vessels=2, n_lifeboats=0,
                           land=False)
    return write_sar_bundle(folder, stem, scene, origin_utm=(500000.0, 4000000.0))


def _features(path: Path) -> list[dict]:
    return json.loads(path.read_text())["features"]


def test_scan_folder_embedded_alerts_resume_and_failures(harness: None, tmp_path: Path) -> None:
    scenes = tmp_path / "scenes"
    fire = _optical_scene(scenes / "optical", "fire_a", seed=3)
    sar = _sar_scene(scenes / "sar", "sea_a", seed=5)
    (scenes / "broken.tif").write_bytes(b"this is not a GeoTIFF")
    out = tmp_path / "out"

    report = scan_folder(str(scenes), str(out), threads=2)

    # A corrupt bundle is one recorded failure; the flow still Completes with the good alerts.
    assert report["ok"] is False and report["scenes"] == 3
    failed = {f["path"]: f for f in report["failures"]}
    assert failed[str(scenes / "broken.tif")]["error"] == "SceneError"
    fire_file = out / "scenes" / "optical" / "fire_a.geojson"
    assert report["scene_files"][str(fire)] == str(fire_file)
    fire_alerts = _features(fire_file)
    assert fire_alerts and {f["properties"]["kind"] for f in fire_alerts} == {"fire"}
    assert str(sar) in report["scenes_ok"]
    assert any(f["properties"]["kind"] == "vessel" for f in _features(out / "scenes" / "sar" / "sea_a.geojson"))
    merged = _features(out / "alerts.geojson")
    assert len(merged) == report["alerts"] == len({f["id"] for f in merged})
    assert json.loads((out / "report.json").read_text())["failures"] == report["failures"]

    # Resume: finished scenes are not recomputed; the failed one is reported again from its record.
    before = fire_file.stat().st_mtime_ns
    again = scan_folder(str(scenes), str(out), threads=2)
    assert str(fire) in again["scenes_skipped"] and str(fire) not in again["scenes_ok"]
    assert fire_file.stat().st_mtime_ns == before
    assert again["alerts"] == report["alerts"]
    assert [f["path"] for f in again["failures"]] == [str(scenes / "broken.tif")]

    # Strict mode turns the same batch into a Failed run, report attached.
    state = scan_folder(str(scenes), str(out), strict=True, return_state=True)
    assert state.is_failed()
    assert state.result(raise_on_failure=False)["failures"]


def test_cache_reuses_alerts_for_a_new_output_folder(harness: None, tmp_path: Path) -> None:
    """Same scene + same detector versions -> the cached detect result, even into another folder."""
    scene = _optical_scene(tmp_path / "scenes", "fire_b", seed=4)
    first = scan_scene(str(scene), str(tmp_path / "one"), return_state=True)
    assert first.is_completed()
    second = scan_scene(str(scene), str(tmp_path / "two"), return_state=True)
    assert second.is_completed()
    a, b = first.result(), second.result()
    assert Path(b["geojson"]).is_file() and _features(Path(a["geojson"])) == _features(Path(b["geojson"]))
    # The cached run did not redo the work: its summary is the first run's, timing included.
    assert a["seconds"] == b["seconds"]


def test_scan_folder_fails_when_no_scene_can_be_scanned(harness: None, tmp_path: Path) -> None:
    (tmp_path / "scenes").mkdir()
    (tmp_path / "scenes" / "junk.tif").write_bytes(b"junk")
    state = scan_folder(str(tmp_path / "scenes"), str(tmp_path / "out"), return_state=True)
    assert state.is_failed()


# ------------------------------------------------------------------------- one GPU, one job
TRACE_DETECTOR = "trace-sar-flows-test"


class _TraceDetector:
    """Writes one file per detect() call with its enter/exit times, sleeping in between."""

    version = "test"

    def __init__(self, device: object = None, trace_dir: Path | None = None) -> None:
        self.device = None

    def detect(self, data: object, spacing_m: object = None, valid: object = None) -> list:
        trace = Path(os.environ["ORBITWATCH_TEST_TRACE_DIR"])
        t0 = time.time()
        time.sleep(0.8)
        t1 = time.time()
        (trace / f"{uuid.uuid4().hex}.json").write_text(json.dumps({"enter": t0, "exit": t1}))
        return []


@pytest.fixture
def trace_detector(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    from detectors import registry

    trace = tmp_path / "trace"
    trace.mkdir()
    monkeypatch.setenv("ORBITWATCH_TEST_TRACE_DIR", str(trace))
    register(TRACE_DETECTOR, "sar")(_TraceDetector)
    try:
        yield trace
    finally:  # leave the registry as other tests expect it
        registry._FACTORIES.pop(TRACE_DETECTOR, None)
        registry._MODALITY.pop(TRACE_DETECTOR, None)


def _intervals(trace: Path) -> list[tuple[float, float]]:
    out = [json.loads(p.read_text()) for p in trace.glob("*.json")]
    return sorted((d["enter"], d["exit"]) for d in out)


def _overlaps(iv: list[tuple[float, float]]) -> bool:
    return any(b[0] < a[1] for a, b in zip(iv, iv[1:]))


def test_gpu_slot_serialises_detectors_across_concurrent_scene_tasks(
        harness: None, tmp_path: Path, trace_detector: Path, write_tiny_sar: Callable[..., Path]) -> None:
    data = np.full((64, 64), 500, dtype=np.uint16)
    for run in ("exclusive", "free"):
        folder = tmp_path / run
        folder.mkdir()
        for i in range(2):
            write_tiny_sar(folder, data, name=f"CAPELLA_{run}_{i}")

    # Control: without the slot, two threads really do run the detector at the same time...
    free = scan_folder(str(tmp_path / "free"), str(tmp_path / "out-free"), detectors=[TRACE_DETECTOR],
                       threads=2, gpu_exclusive=False)
    assert free["ok"], free["failures"]
    iv = _intervals(trace_detector)
    assert len(iv) == 2 and _overlaps(iv)

    # ...and with it (limit `gpu`, 1 slot, created by the flow) they never overlap.
    for p in trace_detector.glob("*.json"):
        p.unlink()
    held = scan_folder(str(tmp_path / "exclusive"), str(tmp_path / "out-held"), detectors=[TRACE_DETECTOR],
                       threads=2, gpu_exclusive=True)
    assert held["ok"], held["failures"]
    iv = _intervals(trace_detector)
    assert len(iv) == 2 and not _overlaps(iv), iv


# ------------------------------------------------------------------------- Dask scale-out
@pytest.mark.slow
def test_scan_folder_on_a_local_dask_cluster(harness: None, tmp_path: Path) -> None:
    from distributed import Client, LocalCluster

    scenes = tmp_path / "scenes"
    for i in range(2):
        _optical_scene(scenes, f"fire_dask_{i}", seed=10 + i)
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        report = scan_folder(str(scenes), str(tmp_path / "out"), dask_address=cluster.scheduler_address)
        with Client(cluster) as client:
            # The detectors ran in the worker processes, not here.
            loaded = client.run(lambda: bool(sys.modules.get("pipelines.detect")
                                            and sys.modules["pipelines.detect"]._DETECTOR_CACHE))
    assert report["ok"], report["failures"]
    assert len(report["scenes_ok"]) == 2 and report["by_kind"].get("fire", 0) > 0
    assert any(loaded.values())
    assert _features(tmp_path / "out" / "alerts.geojson")


# ------------------------------------------------------------------------- ground
def test_deliver_alerts_ingests_a_downlinked_geojson(harness: None, tmp_path: Path) -> None:
    scene = _optical_scene(tmp_path / "scenes", "fire_g", seed=6)
    summary = scan_scene(str(scene), str(tmp_path / "out"))
    inbox = tmp_path / "downlink"
    inbox.mkdir()
    (inbox / "pass1.geojson").write_text(Path(summary["geojson"]).read_text())
    store = tmp_path / "ground.sqlite"

    res = deliver_alerts(str(inbox), str(store), mode="once", max_seconds=5)
    assert res["ingest"]["stored"] == summary["alerts"] > 0
    again = deliver_alerts(str(inbox), str(store), mode="once", max_seconds=5)
    assert again["ingest"]["files"] == 0  # already ingested: idempotent


# ------------------------------------------------------------------------- CLI
def test_flow_cli_scan_folder_prints_the_report_and_exits_by_state(harness: None, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from pipelines.flows.cli import flows_app

    _optical_scene(tmp_path / "scenes", "fire_cli", seed=7)
    runner = CliRunner()
    res = runner.invoke(flows_app, ["scan-folder", str(tmp_path / "scenes"), "--out", str(tmp_path / "out")])
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout[res.stdout.index("{"):])["by_kind"]["fire"] > 0
    (tmp_path / "scenes" / "junk.tif").write_bytes(b"junk")
    res = runner.invoke(flows_app, ["scan-folder", str(tmp_path / "scenes"), "--out", str(tmp_path / "out"), "--strict"])
    assert res.exit_code == 1
