"""Harbours and coasts (issue 19): ships beside land are found, land raises no alert.

Real bundles written by the project's writers (a generated coastal scene whose ``land_mask`` is
the truth), masks written as real GeoJSON / GeoTIFF files, scans through the real CLI. The CFAR
is used where land alerts are needed: it alerts on the scene's bright urban blocks, the shipped
learned detector mostly does not, and a mask must remove them whichever detector made them.
"""

from __future__ import annotations

import inspect
import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import rasterio
from rasterio.features import shapes
from rasterio.warp import Resampling, calculate_default_transform, reproject, transform_geom
from scipy import ndimage
from typer.testing import CliRunner

from detectors.synth.sar import make_sar_scene
from pipelines.cli import app
from pipelines.errors import LandMaskError
from pipelines.scene.landmask import _GlobeBands, deep_inland
from pipelines.scene.write import write_sar_bundle

ACQ = datetime(2025, 7, 1, 10, 0, tzinfo=timezone.utc)
#: UTM 33N, ~15.0 E 36.1 N: open sea south of Sicily (the packaged coastline keeps everything there).
ORIGIN = (500000.0, 4000000.0)
#: UTM 30N, central Spain near Madrid: deep inland.
INLAND = (440000.0, 4475000.0)


@pytest.fixture(scope="module")
def coast(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A 512 x 512 coastal scene (land to the top, urban blocks on it, ships at sea) and both masks."""
    root = tmp_path_factory.mktemp("coast")
    sar = make_sar_scene(seed=3, rows=512, cols=512, spacing_m=0.5, n_vessels=3, n_lifeboats=1, land=True,
                         coast_side="top", land_fraction=0.35, n_urban_blocks=6, nodata_border=False)
    tif = write_sar_bundle(root / "scenes", "coast", sar, origin_utm=ORIGIN, acquired=ACQ)
    with rasterio.open(tif) as ds:
        crs, tr = ds.crs, ds.transform
    land = sar.land_mask
    # GeoJSON: the land outline, polygonised on the scene grid and written as lon/lat (RFC 7946).
    feats = [{"type": "Feature", "properties": {}, "geometry": transform_geom(crs, "EPSG:4326", g)}
             for g, v in shapes(land.astype(np.uint8), mask=land, transform=tr) if v == 1]
    gj = root / "land.geojson"
    gj.write_text(json.dumps({"type": "FeatureCollection", "features": feats}))
    # Raster: the same land reprojected to geographic lon/lat (another CRS), uint8 with nodata 255
    # over its left tenth (nodata = not land).
    dst_tr, w, h = calculate_default_transform(crs, "EPSG:4326", 512, 512, *ds.bounds)
    geo = np.zeros((h, w), np.uint8)
    reproject(land.astype(np.uint8), geo, src_transform=tr, src_crs=crs, dst_transform=dst_tr, dst_crs="EPSG:4326",
              resampling=Resampling.nearest)
    geo[:, : w // 10] = 255
    rt = root / "land_4326.tif"
    with rasterio.open(rt, "w", driver="GTiff", width=w, height=h, count=1, dtype="uint8", crs="EPSG:4326",
                       transform=dst_tr, nodata=255) as out:
        out.write(geo, 1)
    sea_truth = [(t["row"], t["col"]) for t in sar.truth if t["kind"] in ("vessel", "lifeboat")]
    return {"root": root, "scenes": root / "scenes", "land": land, "geojson": gj, "raster": rt,
            "sea_truth": sea_truth, "raster_nodata_cols": 512 // 10}


def _scan(scenes: Path, out: Path, *args: str) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    report = out.with_suffix(".report.json")
    res = CliRunner().invoke(app, ["scan", str(scenes), "--out", str(out), "-q", "--device", "cpu",
                                   "--errors", str(report), "--no-resume", *args])
    assert res.exit_code == 0, res.output
    return (json.loads(out.read_text())["features"], json.loads(report.read_text())["results"][0])


def _rc(f: dict[str, Any]) -> tuple[int, int]:
    return int(np.floor(f["properties"]["row"] + 0.5)), int(np.floor(f["properties"]["col"] + 0.5))


def _found(feats: list[dict[str, Any]], truth: list[tuple[float, float]], radius: float = 12.0) -> set[int]:
    return {i for i, (r, c) in enumerate(truth)
            if any(np.hypot(f["properties"]["row"] - r, f["properties"]["col"] - c) <= radius for f in feats)}


@pytest.fixture(scope="module")
def baseline(coast: dict[str, Any], tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    """The CFAR without any land handling: it alerts on land (the scene is built to make it)."""
    feats, _ = _scan(coast["scenes"], tmp_path_factory.mktemp("base") / "a.geojson", "-d", "sar-cfar", "--no-coastline")
    on_land = [f for f in feats if coast["land"][_rc(f)]]
    assert len(on_land) >= 2, "the test scene must give land alerts without a mask"
    return feats


@pytest.mark.parametrize("which", ["geojson", "raster"])
def test_mask_removes_land_alerts_and_keeps_sea_ships(coast: dict[str, Any], baseline: list[dict[str, Any]],
                                                       tmp_path: Path, which: str) -> None:
    feats, summary = _scan(coast["scenes"], tmp_path / "a.geojson", "-d", "sar-cfar",
                           "--land-mask", str(coast[which]))
    land = coast["land"].copy()
    if which == "raster":
        land[:, : coast["raster_nodata_cols"] - 2] = False  # the mask's nodata strip is not land
    # No alert centre on land (one pixel of slack for the round trip through another grid).
    core = ndimage.binary_erosion(land, iterations=2)
    assert not [f for f in feats if core[_rc(f)]]
    # Every ship at sea the unmasked scan found is still found.
    assert _found(feats, coast["sea_truth"]) >= _found(baseline, coast["sea_truth"])
    assert _found(feats, coast["sea_truth"])
    lm = summary["land"]
    assert lm["mask"] == coast[which].name and lm["mask_applied"] and not lm["coastline"]
    assert lm["mask_dropped"] >= 0
    assert lm["mask_fraction"] == pytest.approx(land.mean(), abs=0.03)
    assert any(coast[which].name in n and "% of the scene" in n and "centred on land dropped" in n
               for n in summary["notes"]), summary["notes"]


def test_mask_drops_detections_centred_on_land(coast: dict[str, Any], baseline: list[dict[str, Any]]) -> None:
    """(b) on its own: the unmasked scan's alerts centred on land are dropped, those at sea kept."""
    from pipelines.alerts.model import Alert
    from pipelines.scene import open_scene
    from pipelines.scene.landmask import LandPlan

    alerts = [Alert.from_feature(f) for f in baseline]
    with open_scene(coast["scenes"] / "coast.tif") as scene:
        plan = LandPlan.for_scene(scene, coast["geojson"], coastline=True)
    kept = plan.filter(alerts)
    on_land = [a for a in alerts if coast["land"][_rc(a.to_feature())]]
    assert plan.mask_dropped == len(on_land) >= 2
    assert {a.alert_id for a in kept} == {a.alert_id for a in alerts} - {a.alert_id for a in on_land}


def test_world_sized_polygon_with_a_hole_is_clipped_to_the_scene(coast: dict[str, Any], tmp_path: Path) -> None:
    """A continent-sized polygon is clipped near the scene before projection (far vertices would not
    project into the scene's UTM zone); a hole over the scene's sea half stays a hole."""
    from pipelines.scene import open_scene
    from pipelines.scene.landmask import LandPlan

    with open_scene(coast["scenes"] / "coast.tif") as scene:
        lon, lat = scene.pixel_to_lonlat(np.array([0.0, 511.0]), np.array([0.0, 511.0]))
        hole = [[-1.0, float(lat.mean())], [30.0, float(lat.mean())], [30.0, 0.0], [-1.0, 0.0], [-1.0, float(lat.mean())]]
        world = tmp_path / "world.geojson"
        world.write_text(json.dumps({"type": "Feature", "properties": {}, "geometry": {
            "type": "Polygon", "coordinates": [[[-180, -85], [180, -85], [180, 85], [-180, 85], [-180, -85]], hole]}}))
        plan = LandPlan.for_scene(scene, world, coastline=True)
        assert plan.scene_land is not None
        assert plan.mask_fraction == pytest.approx(0.5, abs=0.01)
        land = plan.scene_land.window(0, 0, 512, 512)
    assert land[:250].all() and not land[262:].any()  # north half land, the hole (south half) not


@pytest.mark.parametrize("name,content,problem", [
    ("missing.geojson", None, "No such file"),
    ("bad.geojson", '{"type": "FeatureCollection", "features": [', "not valid JSON"),
    ("point.geojson", json.dumps({"type": "Point", "coordinates": [15.0, 36.1]}), "is a Point"),
    ("empty.geojson", json.dumps({"type": "FeatureCollection", "features": []}), "empty FeatureCollection"),
    ("text.tif", "this is not a raster\n", "neither GeoJSON nor a readable raster"),
])
def test_bad_mask_files_exit_2_naming_the_file(coast: dict[str, Any], tmp_path: Path, name: str,
                                               content: str | None, problem: str) -> None:
    mask = tmp_path / name
    if content is not None:
        mask.write_text(content)
    out = tmp_path / "a.geojson"
    res = CliRunner().invoke(app, ["scan", str(coast["scenes"]), "--out", str(out), "-q", "--land-mask", str(mask)])
    assert res.exit_code == 2, res.output
    text = " ".join(res.output.split())
    assert name in text and problem in text, text
    assert not out.exists()  # refused before any scene was scanned


def test_mask_that_does_not_overlap_is_a_note(coast: dict[str, Any], tmp_path: Path) -> None:
    far = tmp_path / "madrid.geojson"
    far.write_text(json.dumps({"type": "Polygon", "coordinates": [[[-4, 40], [-3, 40], [-3, 41], [-4, 41], [-4, 40]]]}))
    feats, summary = _scan(coast["scenes"], tmp_path / "a.geojson", "-d", "sar-cfar", "--land-mask", str(far))
    assert any("does not overlap this scene" in n for n in summary["notes"]), summary["notes"]
    assert summary["land"]["mask_applied"] is False and feats


# ------------------------------------------------------------------------- the packaged coastline
def test_coastline_drops_only_detections_deep_inland() -> None:
    lon_lat = {
        "central Spain (Toledo plain)": (-3.70, 40.00),
        "Madrid": (-3.7038, 40.4168),
        "Valletta, Grand Harbour": (14.518, 35.892),
        "Rotterdam, Europoort": (4.13, 51.95),
        "Calais harbour": (1.86, 50.965),
        "open sea south of Sicily": (15.0, 36.14),
    }
    lons, lats = zip(*lon_lat.values())
    assert dict(zip(lon_lat, deep_inland(lons, lats).tolist())) == {
        "central Spain (Toledo plain)": True, "Madrid": True, "Valletta, Grand Harbour": False,
        "Rotterdam, Europoort": False, "Calais harbour": False, "open sea south of Sicily": False}


def test_coastline_bands_equal_the_packages_is_land() -> None:
    """The band reader is the package's is_land on the package's data (same indices, same bits)."""
    from global_land_mask import globe

    rng = np.random.default_rng(0)
    lat = np.concatenate([rng.uniform(35.0, 36.5, 3000), [35.892, 36.14, 35.0]])
    lon = np.concatenate([rng.uniform(-180.0, 180.0, 3000), [14.518, 15.0, -180.0]])
    bands = _GlobeBands()
    np.testing.assert_array_equal(bands.is_land(lat, lon), globe.is_land(lat, lon))
    assert [b[2].nbytes < 20e6 for b in bands._bands] == [True]  # one band, not the 0.93 GB mask
    # The axis ends, clipped as the package clips them.
    lat, lon = np.array([90.0, 89.999, 89.5]), np.array([180.0, -180.0, 0.0])
    np.testing.assert_array_equal(_GlobeBands().is_land(lat, lon), globe.is_land(lat, lon))


def test_coastline_opt_in_drops_deep_inland_and_default_keeps_them(tmp_path: Path) -> None:
    """A sea scene placed near Madrid: its ships are "deep inland" per the coastline. Off by
    default (a copied sidecar's georeference may lie anywhere); ``--coastline`` turns it on."""
    sar = make_sar_scene(seed=5, rows=256, cols=256, spacing_m=1.0, n_vessels=2, n_lifeboats=0, land=False,
                         nodata_border=False)
    write_sar_bundle(tmp_path / "scenes", "inland", sar, origin_utm=INLAND, epsg=32630, acquired=ACQ)
    kept, s_off = _scan(tmp_path / "scenes", tmp_path / "off.geojson", "-d", "sar-cfar")
    assert kept and "land" not in s_off
    dropped, s_on = _scan(tmp_path / "scenes", tmp_path / "on.geojson", "-d", "sar-cfar", "--coastline")
    assert dropped == []
    assert s_on["land"]["coastline"] and s_on["land"]["coastline_dropped"] == len(kept)
    assert any("km inland dropped" in n and "without --coastline" in n for n in s_on["notes"]), s_on["notes"]


def test_coastline_keeps_everything_at_sea(coast: dict[str, Any], baseline: list[dict[str, Any]],
                                           tmp_path: Path) -> None:
    feats, summary = _scan(coast["scenes"], tmp_path / "a.geojson", "-d", "sar-cfar", "--coastline")
    assert len(feats) == len(baseline)
    assert summary["land"] == {"mask": None, "mask_applied": False, "mask_fraction": None, "mask_dropped": 0,
                               "coastline": True, "coastline_dropped": 0}


# ------------------------------------------------------------------------- flows and fingerprints
def test_flows_take_land_mask_and_coastline(coast: dict[str, Any], tmp_path: Path) -> None:
    from pipelines.batch import scene_fingerprint
    from pipelines.flows.onboard import onboard_pass
    from pipelines.flows.scan import scan_folder, scan_options, scan_scene

    for fl in (scan_folder, scan_scene, onboard_pass):
        params = inspect.signature(fl.fn).parameters
        assert params["land_mask"].default is None and params["coastline"].default is False, fl.name
    opts = scan_options(land_mask=str(coast["geojson"]), coastline=True)
    assert opts.land_mask == str(coast["geojson"]) and opts.coastline is True
    bad = tmp_path / "bad.geojson"
    bad.write_text("{")
    with pytest.raises(LandMaskError, match="bad.geojson.*not valid JSON"):
        scan_options(land_mask=str(bad))
    res = CliRunner().invoke(app, ["flow", "scan-folder", str(coast["scenes"]), "--out", str(tmp_path / "flows"),
                                   "--land-mask", str(bad)])
    assert res.exit_code == 2 and "bad.geojson" in res.output, res.output
    assert not (tmp_path / "flows").exists()  # refused before any flow run
    tif = coast["scenes"] / "coast.tif"
    fps = {scene_fingerprint(tif, scan_options()), scene_fingerprint(tif, scan_options(coastline=True)),
           scene_fingerprint(tif, opts), scene_fingerprint(tif, scan_options(land_mask=str(coast["raster"])))}
    assert len(fps) == 4
