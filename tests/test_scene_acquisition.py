"""Acquisition time: product identifiers, ``--acquired``, and where each alert's time came from."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pytest
from affine import Affine
from typer.testing import CliRunner

from pipelines.cli import app
from pipelines.detect import ScanOptions, detections_to_alerts
from pipelines.errors import ScanOptionError, SceneError
from pipelines.scene import open_scene
from pipelines.scene.acquisition import (
    landsat_overpass_utc,
    parse_user_time,
    resolve_acquired,
    time_from_identifier,
    wrs2_path_lon,
)

UTC = timezone.utc


@pytest.mark.parametrize(("name", "when", "source", "mission"), [
    ("CAPELLA_C14_SP_GEO_HH_20240709040329_20240709040358.tif", datetime(2024, 7, 9, 4, 3, 29, tzinfo=UTC),
     "product-id", "capella"),
    ("CAPELLA_C13_SP_SLC_HH_20250826023518_20250826023527_extended.json",
     datetime(2025, 8, 26, 2, 35, 18, tzinfo=UTC), "product-id", "capella"),
    ("S1A_IW_GRDH_1SDV_20230514T053012_20230514T053037_048517_05D5F2_1A2B.SAFE",
     datetime(2023, 5, 14, 5, 30, 12, tzinfo=UTC), "product-id", "sentinel-1"),
    ("s1a-iw-grd-vv-20230514t053012-20230514t053037-048517-05d5f2-001.tiff",
     datetime(2023, 5, 14, 5, 30, 12, tzinfo=UTC), "product-id", "sentinel-1"),
    ("S2B_MSIL1C_20230514T190919_N0509_R056_T10UFB_20230514T222215.SAFE",
     datetime(2023, 5, 14, 19, 9, 19, tzinfo=UTC), "product-id", "sentinel-2"),
    ("T10UFB_20230514T190919_B12.jp2", datetime(2023, 5, 14, 19, 9, 19, tzinfo=UTC), "product-id", "sentinel-2"),
])
def test_time_from_identifiers_to_the_second(name: str, when: datetime, source: str, mission: str) -> None:
    pt = time_from_identifier(name)
    assert pt is not None and (pt.when, pt.source, pt.mission) == (when, source, mission)


def test_landsat_identifier_gives_the_date_and_the_overpass_time() -> None:
    # The issue's patch: path 099 crosses the equator near 144 E, so 10:00 local is ~00:24 UTC.
    pt = time_from_identifier("LC08_L1TP_099069_20200827_20200905_01_RT_p00819.tif")
    assert pt is not None and pt.source == "product-id-date" and pt.mission == "landsat"
    assert pt.when.date().isoformat() == "2020-08-27"
    assert 143.0 < wrs2_path_lon(99) < 145.0
    assert abs((pt.when - datetime(2020, 8, 27, 0, 24, tzinfo=UTC)).total_seconds()) < 15 * 60
    # with the scene's longitude: California at -121.6 -> 10:00 local = 18:06 UTC
    ca = time_from_identifier("LC09_L2SP_044033_20240616_20240617_02_T1", lon_deg=-121.6)
    assert ca is not None and ca.when == landsat_overpass_utc(datetime(2024, 6, 16), -121.6, "9")
    assert ca.when.hour == 18 and 0 <= ca.when.minute <= 10
    assert time_from_identifier("scene_0042.tif") is None
    assert time_from_identifier("LC08_L1TP_099069_2020082_bad") is None


def test_resolve_acquired_rules(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    own = datetime(2025, 1, 1, 10, tzinfo=UTC)
    user = datetime(2025, 6, 1, 12, tzinfo=UTC)
    where = tmp_path / "x.tif"
    assert resolve_acquired((own, "mtl"), None, where, "no time") == (own, "mtl")
    # the user never overrides a recorded time (warned)...
    with caplog.at_level("WARNING"):
        assert resolve_acquired((own, "sidecar"), user, where, "no time") == (own, "sidecar")
    assert "ignoring --acquired" in caplog.text
    # ...but replaces the approximate ones and fills a missing one
    assert resolve_acquired((own, "product-id-date"), user, where, "no time") == (user, "--acquired")
    assert resolve_acquired((own, "tiff-tag:TIFFTAG_DATETIME"), user, where, "no time") == (user, "--acquired")
    assert resolve_acquired(None, user, where, "no time") == (user, "--acquired")
    with pytest.raises(SceneError, match="no time; or give the time with --acquired") as ei:
        resolve_acquired(None, None, where, "no time")
    assert ei.value.path == str(where)
    # naive user time is UTC
    naive = resolve_acquired(None, datetime(2025, 6, 1, 12), where, "no time")[0]
    assert naive.tzinfo is not None and naive == user


def test_parse_user_time() -> None:
    assert parse_user_time("2025-08-01T18:40:00Z") == datetime(2025, 8, 1, 18, 40, tzinfo=UTC)
    assert parse_user_time("2025-08-01 20:40+02:00") == datetime(2025, 8, 1, 18, 40, tzinfo=UTC)
    assert parse_user_time(None) is None
    with pytest.raises(SceneError, match="--acquired 'yesterday' is not an ISO 8601 time"):
        parse_user_time("yesterday")


# ---------------------------------------------------------------- optical tiles without a time tag


def _patch(directory: Path, name: str, tags: dict[str, str] | None = None) -> Path:
    """A Landsat-like 3-band float patch written with plain rasterio: no sidecar, no time tag."""
    import rasterio

    path = directory / name
    tr = Affine(30.0, 0.0, 500000.0, 0.0, -30.0, 4400000.0)
    with rasterio.open(path, "w", driver="GTiff", width=8, height=8, count=3, dtype="float32", crs="EPSG:32610",
                       transform=tr) as ds:
        ds.write(np.full((3, 8, 8), 0.2, np.float32))
        for i, d in enumerate(("B5", "B6", "B7"), start=1):
            ds.set_band_description(i, d)
        if tags:
            ds.update_tags(**tags)
    return path


def test_landsat_patch_named_by_product_id_opens(tmp_path: Path) -> None:
    """The issue: a real Landsat-8 patch was refused with 'no acquisition time'."""
    tif = _patch(tmp_path, "LC08_L1TP_044033_20200827_20200905_01_RT_p00819.tif")
    s = open_scene(tif)
    assert s.acquired_source == "product-id-date"
    assert s.acquired.date().isoformat() == "2020-08-27"
    assert 17 <= s.acquired.hour <= 19  # ~10:00 local at -123 E
    assert s.bands == ("nir08", "swir16", "swir22")


def test_product_id_in_folder_name(tmp_path: Path) -> None:
    d = tmp_path / "S2A_MSIL2A_20230514T190919_N0509_R056_T10UFB_20230515T003004"
    d.mkdir()
    tif = _patch(d, "patch_17.tif")
    s = open_scene(tif)
    assert (s.acquired, s.acquired_source) == (datetime(2023, 5, 14, 19, 9, 19, tzinfo=UTC), "product-id")


def test_no_time_at_all_is_still_a_clear_error_and_acquired_fills_it(tmp_path: Path) -> None:
    tif = _patch(tmp_path, "mystery.tif")
    with pytest.raises(SceneError, match="no acquisition time: .*product id.*--acquired") as ei:
        open_scene(tif)
    assert ei.value.path == str(tif)
    s = open_scene(tif, acquired="2025-08-01T18:40:00Z")
    assert (s.acquired, s.acquired_source) == (datetime(2025, 8, 1, 18, 40, tzinfo=UTC), "--acquired")


def test_acquired_never_overrides_a_tag_but_beats_file_creation_time(tmp_path: Path) -> None:
    tagged = _patch(tmp_path, "tagged.tif", {"ACQUISITION_DATETIME": "2025-07-01T10:00:00Z"})
    s = open_scene(tagged, acquired="2020-01-01T00:00:00Z")
    assert (s.acquired.year, s.acquired_source) == (2025, "tiff-tag:ACQUISITION_DATETIME")
    created = _patch(tmp_path, "created.tif", {"TIFFTAG_DATETIME": "2025:08:02 11:00:00"})
    assert open_scene(created).acquired_source == "tiff-tag:TIFFTAG_DATETIME"
    s = open_scene(created, acquired="2025-08-01T09:00:00Z")
    assert (s.acquired.day, s.acquired_source) == (1, "--acquired")


def test_sar_time_comes_from_the_metadata(tmp_path: Path, write_tiny_sar) -> None:
    tif = write_tiny_sar(tmp_path, np.ones((4, 4)))
    s = open_scene(tif, acquired="2020-01-01T00:00:00Z")
    assert s.acquired_source == "sidecar" and s.acquired.year == 2024


def test_each_alert_says_where_its_time_came_from(tmp_path: Path) -> None:
    from detectors import Detection

    tif = _patch(tmp_path, "LC08_L1TP_044033_20200827_20200905_01_RT_p00001.tif")
    s = open_scene(tif)
    det = Detection(kind="fire", row=2.0, col=3.0, score=0.9, detector="fire-rules", pixels=[(2, 3)], area_m2=900.0)
    (alert,) = detections_to_alerts(s, [det])
    assert alert.attrs["acquired_source"] == "product-id-date"
    props = alert.to_feature()["properties"]
    assert props["acquired_source"] == "product-id-date" and props["acquired"].startswith("2020-08-27T")


def test_scan_options_acquired_must_be_aware() -> None:
    with pytest.raises(ScanOptionError, match="timezone-aware"):
        ScanOptions(acquired=datetime(2025, 1, 1)).validate()  # type: ignore[arg-type]
    ScanOptions(acquired=datetime(2025, 1, 1, tzinfo=UTC)).validate()


def test_fingerprint_includes_acquired(tmp_path: Path) -> None:
    from pipelines.batch import scene_fingerprint

    tif = _patch(tmp_path, "p.tif")
    a = scene_fingerprint(tif, ScanOptions())
    b = scene_fingerprint(tif, ScanOptions(acquired=datetime(2025, 1, 1, tzinfo=UTC)))
    c = scene_fingerprint(tif, ScanOptions(acquired=datetime(2025, 1, 2, tzinfo=UTC)))
    assert len({a, b, c}) == 3


def test_cli_acquired(tmp_path: Path) -> None:
    tif = _patch(tmp_path, "mystery.tif")
    out = tmp_path / "alerts.geojson"
    res = CliRunner().invoke(app, ["scan", str(tif), "--out", str(out), "-q", "--acquired", "not-a-time"])
    assert res.exit_code == 2 and "not an ISO 8601 time" in res.output
    res = CliRunner().invoke(app, ["scan", str(tif), "--out", str(out), "-q", "--device", "cpu",
                                   "--detectors", "fire-rules"])
    assert res.exit_code == 1 and "--acquired" in res.output
    res = CliRunner().invoke(app, ["scan", str(tif), "--out", str(out), "-q", "--device", "cpu",
                                   "--detectors", "fire-rules", "--acquired", "2025-08-01T18:40:00Z",
                                   "--no-resume"])
    assert res.exit_code == 0, res.output
    assert json.loads(out.read_text())["type"] == "FeatureCollection"


def test_flow_parameter_acquired() -> None:
    from pipelines.flows.scan import scan_options

    o = scan_options(acquired="2025-08-01T18:40:00Z")
    assert o.acquired == datetime(2025, 8, 1, 18, 40, tzinfo=UTC)
    with pytest.raises(SceneError, match="not an ISO 8601 time"):
        scan_options(acquired="soon")
    assert scan_options().acquired is None
    assert timedelta(0) == o.acquired.utcoffset()
