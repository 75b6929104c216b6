"""Issue 22, item 4: quicklooks. ``orbitwatch scan --quicklook DIR`` (the real CLI) writes a PNG
per scene with each detection drawn in its kind's colour and labelled; the flows write the same
PNG and an image artifact (Prefect's test harness). Real GeoTIFFs throughout."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from detectors.synth.optical import make_optical_tile
from detectors.synth.sar import make_sar_scene
from pipelines.alerts.model import Alert
from pipelines.scene import open_scene
from pipelines.scene.quicklook import KIND_COLOURS, render_quicklook
from pipelines.scene.write import write_optical_tile, write_sar_bundle

REPO = Path(__file__).resolve().parents[1]
ACQ = datetime(2025, 7, 1, 10, 0, tzinfo=timezone.utc)


@pytest.fixture(scope="module")
def scenes(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("ql_scenes")
    sar = make_sar_scene(seed=7, rows=512, cols=512, spacing_m=0.5, n_vessels=2, n_lifeboats=1, land=False,
                         nodata_border=False)
    write_sar_bundle(root, "sea", sar, origin_utm=(500000.0, 4000000.0), acquired=ACQ)
    opt = make_optical_tile(seed=11, rows=160, cols=160, pixel_size_m=30.0, sensor="landsat8", n_fires=2, traps=False)
    write_optical_tile(root, "fire", opt, origin_utm=(600000.0, 4400000.0), epsg=32610, acquired=ACQ)
    return root


def _scan(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "pipelines.cli", "scan", *map(str, args), "-q"], cwd=REPO,
                          capture_output=True, text=True, timeout=300, env={"COLUMNS": "4000", **_env()})


def _env() -> dict[str, str]:
    import os

    return dict(os.environ)


def _has_colour_near(img: np.ndarray, y: float, x: float, colour: tuple[int, int, int], radius: int) -> bool:
    h, w, _ = img.shape
    y0, y1 = max(0, int(y) - radius), min(h, int(y) + radius + 1)
    x0, x1 = max(0, int(x) - radius), min(w, int(x) + radius + 1)
    win = img[y0:y1, x0:x1].astype(int)
    return bool((np.abs(win - np.array(colour)).sum(axis=2) < 30).any())


def test_cli_quicklook_draws_every_alert(scenes: Path, tmp_path: Path) -> None:
    out, ql, rep = tmp_path / "alerts.geojson", tmp_path / "ql", tmp_path / "report.json"
    res = _scan(scenes, "--out", out, "--quicklook", ql, "--errors", rep)
    assert res.returncode == 0, res.stderr[-3000:]
    feats = json.loads(out.read_text())["features"]
    assert {f["properties"]["kind"] for f in feats} >= {"vessel", "fire"}
    by_scene = {r["scene"]: r for r in json.loads(rep.read_text())["results"]}
    for stem in ("sea", "fire"):
        png = ql / f"{stem}.png"
        assert by_scene[stem]["quicklook"] == str(png)
        img = np.asarray(Image.open(png).convert("RGB"))
        scene = open_scene(scenes / f"{stem}.tif")
        assert img.shape[:2] == (scene.rows, scene.cols)  # small scenes: not decimated
        mine = [f for f in feats if f["properties"]["scene"] == stem]
        assert mine
        spacing = min(scene.spacing_m)
        for f in mine:  # a ring of the kind's colour around each alert's pixel, its radius half the length
            p = f["properties"]
            radius = int(max(12, (p.get("length_m") or 0) / spacing / 2 + 8))
            assert _has_colour_near(img, p["row"], p["col"], KIND_COLOURS[p["kind"]], radius=radius), p


def test_quicklook_is_decimated_and_keeps_positions(scenes: Path, tmp_path: Path) -> None:
    scene = open_scene(scenes / "sea.tif")
    alert = Alert(alert_id="a1", scene="sea", kind="lifeboat", score=0.9, lon=15.0, lat=36.0, row=400.0, col=100.0,
                  acquired=ACQ, detector="t", length_m=6.0)
    png = render_quicklook(scene, [alert], tmp_path / "q.png", max_side=128)
    img = np.asarray(Image.open(png).convert("RGB"))
    assert img.shape[:2] == (128, 128)
    assert _has_colour_near(img, 400 / 4, 100 / 4, KIND_COLOURS["lifeboat"], radius=8)
    assert not _has_colour_near(img, 100 / 4, 400 / 4, KIND_COLOURS["lifeboat"], radius=8)


def test_quicklook_failures_are_clear_and_never_fail_the_scene(scenes: Path, tmp_path: Path) -> None:
    blocker = tmp_path / "not_a_dir"
    blocker.write_text("x")
    res = _scan(scenes, "--out", tmp_path / "a.geojson", "--quicklook", blocker)
    assert res.returncode == 2 and "cannot create the quicklook folder" in res.stderr and str(blocker) in res.stderr

    ql = tmp_path / "ql"
    (ql / "sea.png").mkdir(parents=True)  # the PNG's place is taken: that quicklook cannot be written
    rep = tmp_path / "report.json"
    res = _scan(scenes, "--out", tmp_path / "b.geojson", "--quicklook", ql, "--errors", rep)
    assert res.returncode == 0, res.stderr[-3000:]
    by_scene = {r["scene"]: r for r in json.loads(rep.read_text())["results"]}
    assert by_scene["sea"]["quicklook"] is None and by_scene["sea"]["alerts"] > 0
    assert any("no quicklook" in n and "sea.png" in n for n in by_scene["sea"]["notes"])
    assert by_scene["fire"]["quicklook"] == str(ql / "fire.png")


def test_flow_writes_quicklook_and_artifact(harness: None, scenes: Path, tmp_path: Path) -> None:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    from pipelines.flows.scan import scan_scene

    summary = scan_scene(str(scenes / "sea.tif"), str(tmp_path / "out"))
    png = tmp_path / "out" / "quicklooks" / "sea.png"
    assert summary["quicklook"] == str(png) and png.is_file()
    with get_client(sync_client=True) as client:
        arts = client.read_artifacts(artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=["quicklook-sea"])))
    assert arts and arts[0].type == "image"
    assert str(arts[0].data).startswith("data:image/jpeg;base64,")
    off = scan_scene(str(scenes / "fire.tif"), str(tmp_path / "out2"), quicklook=False)
    assert "quicklook" not in off and not (tmp_path / "out2" / "quicklooks").exists()
