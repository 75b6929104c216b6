"""`orbitwatch scan` end to end on tiny generated bundles (real GeoTIFFs, real detectors).

Covers the output contract, failure isolation (missing sidecar, corrupt TIFF), the JSON error
report, resume after an interrupted batch, and option validation.
"""

from __future__ import annotations

import json
import shutil
from datetime import datetime, timezone
from pathlib import Path

import pytest
from typer.testing import CliRunner

from detectors.synth.optical import make_optical_tile
from detectors.synth.sar import make_sar_scene
from pipelines.batch import parts_dir, run_batch
from pipelines.cli import app
from pipelines.detect import ScanOptions
from pipelines.scene.write import write_optical_tile, write_sar_bundle

ACQ = datetime(2025, 7, 1, 10, 0, tzinfo=timezone.utc)


@pytest.fixture(scope="module")
def scene_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny SAR bundle (open sea, two vessels, one lifeboat) and an optical tile with fires."""
    root = tmp_path_factory.mktemp("scenes")
    sar = make_sar_scene(seed=7, rows=512, cols=512, spacing_m=0.5, n_vessels=2, n_lifeboats=1,
                         land=False, nodata_border=False)
    write_sar_bundle(root / "sar", "tiny_sar", sar, origin_utm=(500000.0, 4000000.0), epsg=32633,
                     acquired=ACQ)
    opt = make_optical_tile(seed=11, rows=160, cols=160, pixel_size_m=30.0, sensor="landsat8",
                            n_fires=2, traps=True)
    write_optical_tile(root / "optical", "tiny_opt", opt, origin_utm=(600000.0, 4400000.0), epsg=32610,
                       acquired=ACQ)
    return root


def _broken_copy(scene_dir: Path, tmp_path: Path) -> Path:
    root = tmp_path / "batch"
    shutil.copytree(scene_dir, root)
    # A SAR TIFF whose sidecar is missing, and a TIFF that is not a TIFF at all.
    shutil.copy(root / "sar" / "tiny_sar.tif", root / "sar" / "orphan.tif")
    (root / "corrupt.tif").write_bytes(b"II*\x00" + b"\x00garbage" * 50)
    return root


def test_scan_writes_contract(scene_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "a.geojson"
    res = CliRunner().invoke(app, ["scan", str(scene_dir), "--out", str(out), "-q"])
    assert res.exit_code == 0, res.output
    doc = json.loads(out.read_text())
    assert doc["type"] == "FeatureCollection"
    feats = doc["features"]
    kinds = {f["properties"]["kind"] for f in feats}
    assert "fire" in kinds and ({"vessel", "lifeboat"} & kinds), kinds
    ids = [f["properties"]["alert_id"] for f in feats]
    assert len(ids) == len(set(ids))
    for f in feats:
        p = f["properties"]
        assert f["geometry"]["type"] == "Point"
        lon, lat = f["geometry"]["coordinates"]
        assert -180 <= lon <= 180 and -90 <= lat <= 90
        assert 0.0 <= p["score"] <= 1.0
        assert isinstance(p["row"], float) and isinstance(p["col"], float)
        assert p["acquired"] == "2025-07-01T10:00:00Z"
        assert p["scene"] in ("tiny_sar", "tiny_opt")
        assert p["detector"]
        if p["kind"] == "fire":
            assert p["pixels"] and p["area_m2"] > 0
            assert p["area_m2"] == pytest.approx(len(p["pixels"]) * 900.0)
        else:
            assert p["length_m"] > 0
    # SAR alerts sit inside the SAR scene: UTM 33N around (500000, 4000000) -> lon ~15 E, lat ~36.1 N.
    sar = [f for f in feats if f["properties"]["scene"] == "tiny_sar"]
    for f in sar:
        lon, lat = f["geometry"]["coordinates"]
        assert 14.99 < lon < 15.01 and 36.13 < lat < 36.15


def test_ids_are_stable_between_runs(scene_dir: Path, tmp_path: Path) -> None:
    outs = []
    for i in range(2):
        out = tmp_path / f"run{i}.geojson"
        res = CliRunner().invoke(app, ["scan", str(scene_dir), "--out", str(out), "-q", "--no-resume"])
        assert res.exit_code == 0, res.output
        outs.append(sorted(f["properties"]["alert_id"] for f in json.loads(out.read_text())["features"]))
    assert outs[0] == outs[1] and outs[0]


def test_bad_scenes_fail_alone_and_are_reported(scene_dir: Path, tmp_path: Path) -> None:
    root = _broken_copy(scene_dir, tmp_path)
    out = tmp_path / "alerts.geojson"
    report = tmp_path / "report.json"
    res = CliRunner().invoke(app, ["scan", str(root), "--out", str(out), "--errors", str(report), "-q"])
    assert res.exit_code == 1
    assert "orphan_extended.json" in res.output  # missing sidecar named
    assert "corrupt.tif" in res.output
    rep = json.loads(report.read_text())
    failed = {Path(f["path"]).name: f for f in rep["failures"]}
    assert set(failed) == {"orphan.tif", "corrupt.tif"}
    assert all(f["reason"] for f in failed.values())
    assert failed["orphan.tif"]["error"] == "SidecarError"
    # The good scenes were still scanned and their alerts written.
    scenes = {f["properties"]["scene"] for f in json.loads(out.read_text())["features"]}
    assert scenes == {"tiny_sar", "tiny_opt"}


def test_resume_skips_finished_scenes_and_keeps_alerts_once(scene_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "r.geojson"
    scenes = sorted(scene_dir.rglob("*.tif"))
    first = run_batch(scenes[:1], out, ScanOptions())  # "interrupted" after one scene
    assert first.ok and len(first.scenes_ok) == 1
    second = run_batch(scenes, out, ScanOptions())
    assert second.scenes_skipped == [str(scenes[0])]
    assert len(second.scenes_ok) == len(scenes) - 1
    feats = json.loads(out.read_text())["features"]
    ids = [f["properties"]["alert_id"] for f in feats]
    assert len(ids) == len(set(ids)) == second.alerts
    assert run_batch(scenes, tmp_path / "fresh.geojson", ScanOptions()).ok
    assert sorted(ids) == sorted(f["properties"]["alert_id"]
                                 for f in json.loads((tmp_path / "fresh.geojson").read_text())["features"])


def test_torn_part_file_is_redone(scene_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "t.geojson"
    scenes = sorted(scene_dir.rglob("*.tif"))
    run_batch(scenes, out, ScanOptions())
    part = next(parts_dir(out).glob("*.json"))
    part.write_text('{"manifest_version": 1, "path": ')  # as if killed mid-write without atomic rename
    again = run_batch(scenes, out, ScanOptions())
    assert len(again.scenes_ok) == 1 and len(again.scenes_skipped) == len(scenes) - 1


def test_unknown_detector_is_a_usage_error(scene_dir: Path, tmp_path: Path) -> None:
    res = CliRunner().invoke(app, ["scan", str(scene_dir), "--out", str(tmp_path / "x.geojson"),
                                   "--detectors", "no-such-detector"])
    assert res.exit_code == 2
    assert "no-such-detector" in res.output


def test_missing_folder_is_a_usage_error(tmp_path: Path) -> None:
    res = CliRunner().invoke(app, ["scan", str(tmp_path / "nope"), "--out", str(tmp_path / "x.geojson")])
    assert res.exit_code == 2
    assert "nope" in res.output


def test_cuda_request_without_cuda_is_refused(scene_dir: Path, tmp_path: Path) -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("machine has CUDA")
    res = CliRunner().invoke(app, ["scan", str(scene_dir), "--out", str(tmp_path / "x.geojson"),
                                   "--device", "cuda"])
    assert res.exit_code == 2
    assert "CUDA" in res.output


def test_detectors_command_lists_registered(tmp_path: Path) -> None:
    res = CliRunner().invoke(app, ["detectors"])
    assert res.exit_code == 0
    assert "sar-cfar" in res.output and "fire-rules" in res.output
