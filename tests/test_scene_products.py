"""Provider products as scenes: Landsat Collection 2 folders, Sentinel-2 SAFE, STAC items and
catalogs, Capella GeoTIFFs with their metadata in the ImageDescription tag.

Fixtures are written in tmp_path from the committed sample scenes by
:mod:`pipelines.scene.write_products` (real file names, metadata keys and DN scaling); each
reader is checked against the formula applied by hand to the DNs on disk, and every failure
path against its message (which file, which key).
"""

from __future__ import annotations

import json
import math
import os
import pickle
import shutil
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pytest
import rasterio
from affine import Affine
from conftest import CAPELLA_DATA, CAPELLA_GEO_SIDECAR

from pipelines.errors import ProductError, SceneError, SidecarError, StacError
from pipelines.scene import find_scenes, open_scene
from pipelines.scene import write_products as wp
from pipelines.scene.products import scene_identity
from pipelines.scene.products.multiband import (
    BandSource,
    Grid,
    Linear,
    build_scene,
    grid_mapping,
    open_band_file,
)

SAMPLES = Path(__file__).resolve().parent.parent / "sample_scenes"
BUTTE = SAMPLES / "optical" / "butte_ca_landsat8.tif"
SEVILLE = SAMPLES / "optical" / "seville_es_traps_landsat8.tif"
EVROS = SAMPLES / "optical" / "evros_gr_sentinel2.tif"
LESBOS = SAMPLES / "sar" / "lesbos_geo_100cm.tif"
CAPELLA_GEC_SIDECAR = CAPELLA_DATA / "CAPELLA_C14_SP_GEC_HH_20240709040329_20240709040358_extended.json"
UTC = timezone.utc


@pytest.fixture(scope="module")
def products(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Every form once (read-only for the tests: tests that break a product copy it first)."""
    root = tmp_path_factory.mktemp("products")
    out = {
        "l1": wp.write_landsat_c2(BUTTE, root / "landsat", level="L1", mtl_format="json"),
        "l2": wp.write_landsat_c2(SEVILLE, root / "landsat", level="L2", mtl_format="txt"),
        "l1c": wp.write_sentinel2_safe(EVROS, root / "s2", level="L1C"),
        "l2a": wp.write_sentinel2_safe(EVROS, root / "s2", level="L2A"),
        "capella": wp.write_capella_geotiff(LESBOS, root / "capella"),
        "sar_item": wp.write_capella_stac_item(LESBOS, root / "stac_sar"),
        "opt_item": wp.write_optical_stac_item(EVROS, root / "stac_opt"),
    }
    out["ls_item"] = wp.write_landsat_stac_item(out["l2"], root / "stac_landsat")
    return out


def _copy_product(src: Path, dst_root: Path) -> Path:
    """Copy the folder holding ``src`` (or ``src`` itself when it is a folder); returns the same file in the copy."""
    folder = src if src.is_dir() else src.parent
    dst = dst_root / folder.name
    shutil.copytree(folder, dst)
    return dst if src.is_dir() else dst / src.name


def _all(scene) -> tuple[np.ndarray, np.ndarray]:
    return scene.read(0, 0, scene.rows, scene.cols)


def _mtl_body(mtl: Path) -> dict:
    return json.loads(mtl.read_text())["LANDSAT_METADATA_FILE"]


# ---------------------------------------------------------------- Landsat


def test_landsat_l1_toa_reflectance_and_brightness_temperature(products: dict[str, Path]) -> None:
    mtl = products["l1"]
    s = open_scene(mtl)
    body = _mtl_body(mtl)
    pid = body["PRODUCT_CONTENTS"]["LANDSAT_PRODUCT_ID"]
    assert (s.stem, s.kind, s.product, s.acquired_source) == (pid, "optical", "landsat-c2-l1", "mtl")
    assert s.bands == ("coastal", "blue", "green", "red", "nir08", "swir16", "swir22", "cirrus", "lwir11", "lwir12")
    assert s.acquired == datetime(2025, 8, 1, 18, 40, tzinfo=UTC)
    assert s.spacing_m == (30.0, 30.0) and (s.rows, s.cols) == (384, 384)
    data, valid = _all(s)
    resc, th = body["LEVEL1_RADIOMETRIC_RESCALING"], body["LEVEL1_THERMAL_CONSTANTS"]
    sun = math.radians(float(body["IMAGE_ATTRIBUTES"]["SUN_ELEVATION"]))
    with rasterio.open(mtl.parent / body["PRODUCT_CONTENTS"]["FILE_NAME_BAND_7"]) as ds:
        q7 = ds.read(1).astype(np.float64)
    want = (q7 * float(resc["REFLECTANCE_MULT_BAND_7"]) + float(resc["REFLECTANCE_ADD_BAND_7"])) / math.sin(sun)
    np.testing.assert_allclose(data[s.bands.index("swir22")][valid], want[valid], rtol=1e-6)
    with rasterio.open(mtl.parent / body["PRODUCT_CONTENTS"]["FILE_NAME_BAND_10"]) as ds:
        q10 = ds.read(1).astype(np.float64)
    radiance = q10 * float(resc["RADIANCE_MULT_BAND_10"]) + float(resc["RADIANCE_ADD_BAND_10"])
    bt = float(th["K2_CONSTANT_BAND_10"]) / np.log(float(th["K1_CONSTANT_BAND_10"]) / radiance + 1)
    np.testing.assert_allclose(data[s.bands.index("lwir11")][valid], bt[valid], rtol=1e-6)
    # the tile's own values come back (up to the DN step, and saturation at the top of the range)
    tile, tvalid = _all(open_scene(BUTTE))
    np.testing.assert_array_equal(valid, tvalid)
    red = s.bands.index("red")
    assert np.abs(data[red] - tile[3]).max() < 2e-5
    assert np.abs(data[s.bands.index("lwir11")] - tile[7]).max() < 0.01
    assert s.metadata["sun_elevation_deg"] == pytest.approx(58.0)


def test_landsat_l2_surface_reflectance_and_temperature_from_mtl_txt(products: dict[str, Path]) -> None:
    mtl = products["l2"]
    assert mtl.name.endswith("_MTL.txt") and not mtl.with_name(mtl.name.replace(".txt", ".json")).exists()
    s = open_scene(mtl)
    assert s.product == "landsat-c2-l2" and s.bands == ("coastal", "blue", "green", "red", "nir08", "swir16",
                                                        "swir22", "lwir11")
    data, valid = _all(s)
    pid = s.stem
    with rasterio.open(mtl.parent / f"{pid}_SR_B6.TIF") as ds:
        q6 = ds.read(1).astype(np.float64)
    np.testing.assert_allclose(data[5][valid], (q6 * 2.75e-05 - 0.2)[valid], rtol=1e-6)
    with rasterio.open(mtl.parent / f"{pid}_ST_B10.TIF") as ds:
        st = ds.read(1).astype(np.float64)
    np.testing.assert_allclose(data[7][valid], (st * 0.00341802 + 149.0)[valid], rtol=1e-6)
    tile, _ = _all(open_scene(SEVILLE))
    assert np.abs(data[:7] - tile[:7]).max() < 2e-5 and np.abs(data[7] - tile[7]).max() < 0.002


def test_landsat_mtl_json_and_txt_give_the_same_scene(products: dict[str, Path]) -> None:
    json_mtl = products["l1"]
    txt = json_mtl.with_name(json_mtl.name.replace("_MTL.json", "_MTL.txt"))
    a, b = open_scene(json_mtl), open_scene(txt)
    assert (a.stem, a.bands, a.acquired) == (b.stem, b.bands, b.acquired)
    np.testing.assert_array_equal(a.read(10, 20, 50, 60)[0], b.read(10, 20, 50, 60)[0])


def test_landsat_folder_and_band_file_open_the_product(products: dict[str, Path]) -> None:
    mtl = products["l1"]
    assert open_scene(mtl.parent).path == mtl
    b4 = mtl.parent / f"{open_scene(mtl).stem}_B4.TIF"
    s = open_scene(b4)
    assert s.path == mtl and s.product == "landsat-c2-l1"


def test_landsat_find_scenes_lists_one_scene_per_product(products: dict[str, Path], tmp_path: Path) -> None:
    got = find_scenes(products["l1"].parent.parent)
    assert got == sorted([products["l1"], products["l2"]])  # not the band TIFFs, not the MTL.txt of l1
    assert find_scenes(products["l1"].parent) == [products["l1"]]
    # USGS's own <id>_stac.json inside the product folder is the same scene: not listed twice
    copy = _copy_product(products["l2"], tmp_path)
    wp.write_landsat_stac_item(copy)
    assert find_scenes(tmp_path) == [copy]


def test_landsat_qa_fill_is_nodata_and_flags_are_reported(products: dict[str, Path], tmp_path: Path) -> None:
    from detectors import Detection

    from pipelines.detect import detections_to_alerts

    qa = np.full((256, 256), wp.QA_CLEAR, np.uint16)
    qa[0:4, 0:4] = wp.QA_FILL
    qa[10, 10] = 22280  # cloud, high confidence (bits 3, 8, 9): USGS's value for high-confidence cloud
    qa[12, 12] = 21826  # clear + dilated cloud (bit 1)
    qa[20, 30] = 21952  # clear + water (bit 7)
    mtl = wp.write_landsat_c2(SEVILLE, tmp_path, level="L2", qa=qa)
    s = open_scene(mtl)
    _, valid = s.read(0, 0, 32, 32)
    assert not valid[0:4, 0:4].any() and valid[4:, 4:].all() and valid[10, 10] and valid[20, 30]
    assert s.flags_at(np.array([10.0, 12.0, 20.0, 5.0]), np.array([10.0, 12.0, 30.0, 5.0])) == [
        ["cloud"], ["dilated_cloud"], ["water"], []]
    det = Detection(kind="fire", row=10.0, col=10.0, score=0.8, detector="fire-rules", pixels=[(10, 10)],
                    area_m2=900.0)
    (alert,) = detections_to_alerts(s, [det])
    assert alert.attrs["quality_flags"] == ["cloud"] and alert.attrs["acquired_source"] == "mtl"
    assert alert.to_feature()["properties"]["quality_flags"] == ["cloud"]


def test_landsat_missing_band_file(products: dict[str, Path], tmp_path: Path) -> None:
    mtl = _copy_product(products["l1"], tmp_path)
    b5 = next(mtl.parent.glob("*_B5.TIF"))
    b5.unlink()
    with pytest.raises(ProductError, match=rf"missing band file {b5.name} \(PRODUCT_CONTENTS.FILE_NAME_BAND_5") as ei:
        open_scene(mtl)
    assert ei.value.path == str(mtl)


@pytest.mark.parametrize(("group", "key", "match"), [
    ("LEVEL1_RADIOMETRIC_RESCALING", "REFLECTANCE_MULT_BAND_4",
     "missing key 'LEVEL1_RADIOMETRIC_RESCALING.REFLECTANCE_MULT_BAND_4'"),
    ("LEVEL1_THERMAL_CONSTANTS", "K2_CONSTANT_BAND_10", "missing key 'LEVEL1_THERMAL_CONSTANTS.K2_CONSTANT_BAND_10'"),
    ("IMAGE_ATTRIBUTES", "SUN_ELEVATION", "missing key 'IMAGE_ATTRIBUTES.SUN_ELEVATION'"),
    ("IMAGE_ATTRIBUTES", "SCENE_CENTER_TIME", "missing key 'IMAGE_ATTRIBUTES.SCENE_CENTER_TIME'"),
    ("PRODUCT_CONTENTS", "FILE_NAME_BAND_3", "missing key 'PRODUCT_CONTENTS.FILE_NAME_BAND_3'"),
])
def test_landsat_mtl_without_a_key(products: dict[str, Path], tmp_path: Path, group: str, key: str,
                                   match: str) -> None:
    mtl = _copy_product(products["l1"], tmp_path)
    doc = json.loads(mtl.read_text())
    del doc["LANDSAT_METADATA_FILE"][group][key]
    mtl.write_text(json.dumps(doc))
    with pytest.raises(ProductError, match=match) as ei:
        open_scene(mtl)
    assert ei.value.path == str(mtl)


def test_landsat_bad_mtls(products: dict[str, Path], tmp_path: Path) -> None:
    mtl = _copy_product(products["l1"], tmp_path)
    doc = json.loads(mtl.read_text())
    doc["LANDSAT_METADATA_FILE"]["LEVEL1_RADIOMETRIC_RESCALING"]["REFLECTANCE_ADD_BAND_2"] = "minus a bit"
    mtl.write_text(json.dumps(doc))
    with pytest.raises(ProductError, match="'LEVEL1_RADIOMETRIC_RESCALING.REFLECTANCE_ADD_BAND_2' must be a number"):
        open_scene(mtl)
    doc["LANDSAT_METADATA_FILE"]["IMAGE_ATTRIBUTES"]["SPACECRAFT_ID"] = "LANDSAT_7"
    mtl.write_text(json.dumps(doc))
    with pytest.raises(ProductError, match="LANDSAT_7 OLI_TIRS products are not supported"):
        open_scene(mtl)
    mtl.write_text(json.dumps({"L1_METADATA_FILE": {}}))
    with pytest.raises(ProductError, match="Collection 1"):
        open_scene(mtl)
    mtl.write_text("{not json")
    with pytest.raises(ProductError, match="not valid JSON"):
        open_scene(mtl)
    txt = mtl.with_name(mtl.name.replace(".json", ".txt"))
    mtl.unlink()
    text = txt.read_text()
    txt.write_text(text.replace("END_GROUP = PRODUCT_CONTENTS", "END_GROUP = IMAGE_ATTRIBUTES", 1))
    with pytest.raises(ProductError, match=r"line \d+ of .*_MTL.txt: END_GROUP = IMAGE_ATTRIBUTES does not close"):
        open_scene(txt)
    txt.write_text(text.split("END_GROUP = LEVEL1_PROCESSING_RECORD")[0])
    with pytest.raises(ProductError, match="ends inside GROUP"):
        open_scene(txt)


def test_landsat_folder_with_two_products(products: dict[str, Path], tmp_path: Path) -> None:
    a = _copy_product(products["l1"], tmp_path)
    for f in products["l2"].parent.iterdir():
        shutil.copy(f, a.parent / f.name)
    with pytest.raises(ProductError, match="holds 2 Landsat products"):
        open_scene(a.parent)
    assert len(find_scenes(a.parent)) == 2


# ---------------------------------------------------------------- Sentinel-2


def _s2_band(safe: Path, code: str, res: int | None = None) -> Path:
    pat = f"*_{code}.jp2" if res is None else f"*_{code}_{res}m.jp2"
    hits = sorted(safe.rglob(pat))
    assert hits, pat
    return hits[0]


def test_sentinel2_l1c_safe(products: dict[str, Path]) -> None:
    safe = products["l1c"]
    s = open_scene(safe)
    assert (s.stem, s.product, s.acquired_source) == (safe.name[:-5], "sentinel-2-l1c", "mtd")
    assert s.acquired == datetime(2025, 8, 22, 9, 10, tzinfo=UTC)  # MTD_TL SENSING_TIME, not the datatake start
    assert s.bands == ("coastal", "blue", "green", "red", "rededge071", "rededge075", "rededge078", "nir", "nir08",
                       "nir09", "cirrus", "swir16", "swir22")
    assert (s.rows, s.cols, s.spacing_m) == (384, 384, (20.0, 20.0))
    assert s.metadata["processing_baseline"] == "05.09" and s.metadata["sun_zenith_deg"] == pytest.approx(36.0)
    data, valid = _all(s)
    with rasterio.open(_s2_band(safe, "B12")) as ds:  # 20 m: read as it is
        b12 = ds.read(1).astype(np.float64)
    np.testing.assert_allclose(data[s.bands.index("swir22")][valid], ((b12 - 1000) / 10000)[valid], rtol=1e-6)
    with rasterio.open(_s2_band(safe, "B04")) as ds:  # 10 m: 2 x 2 mean
        b04 = ds.read(1).astype(np.float64)
    mean = b04.reshape(384, 2, 384, 2).mean(axis=(1, 3))
    np.testing.assert_allclose(data[s.bands.index("red")][valid], ((mean - 1000) / 10000)[valid], rtol=1e-6)
    with rasterio.open(_s2_band(safe, "B01")) as ds:  # 60 m: the pixel under each 20 m centre
        b01 = ds.read(1).astype(np.float64)
    rep = np.repeat(np.repeat(b01, 3, 0), 3, 1)
    np.testing.assert_allclose(data[0][valid], ((rep - 1000) / 10000)[valid], rtol=1e-6)
    # the tile's values, bit for bit, for every band S2 keeps at 10 or 20 m
    tile, tvalid = _all(open_scene(EVROS))
    np.testing.assert_array_equal(valid, tvalid)
    for i, n in enumerate(open_scene(EVROS).bands):
        if n not in ("coastal", "nir09"):
            np.testing.assert_array_equal(data[s.bands.index(n)], tile[i], err_msg=n)


def test_sentinel2_l2a_safe_scl_flags(products: dict[str, Path], tmp_path: Path) -> None:
    s = open_scene(products["l2a"])
    assert s.product == "sentinel-2-l2a" and "cirrus" not in s.bands and s.quality
    tile, _ = _all(open_scene(EVROS))
    data, _ = _all(s)
    np.testing.assert_array_equal(data[s.bands.index("swir16")], tile[10])
    scl = np.full((384, 384), 4, np.uint8)
    scl[0:3, 0:3] = 0
    scl[50, 60] = 9
    scl[70, 80] = 6
    safe = wp.write_sentinel2_safe(EVROS, tmp_path, level="L2A", scl=scl, fmt="tif")
    s2 = open_scene(safe)
    _, valid = s2.read(0, 0, 100, 100)
    assert not valid[0:3, 0:3].any() and valid[50, 60] and valid[70, 80]
    assert s2.flags_at(np.array([50.0, 70.0, 90.0]), np.array([60.0, 80.0, 90.0])) == [["cloud"], ["water"], []]
    assert next(safe.rglob("*_B12_20m.tif")).is_file()


def test_sentinel2_geotiff_band_files_and_mtd_path(products: dict[str, Path], tmp_path: Path) -> None:
    safe = wp.write_sentinel2_safe(EVROS, tmp_path, level="L1C", fmt="tif")
    a, b = open_scene(safe), open_scene(products["l1c"])
    np.testing.assert_array_equal(a.read(100, 100, 40, 40)[0], b.read(100, 100, 40, 40)[0])
    assert open_scene(safe / "MTD_MSIL1C.xml").path == safe
    assert find_scenes(tmp_path) == [safe] and find_scenes(safe) == [safe]


def test_sentinel2_baselines_and_offsets(tmp_path: Path) -> None:
    old = wp.write_sentinel2_safe(EVROS, tmp_path / "old", level="L1C", baseline="03.01")
    s = open_scene(old)
    assert s.metadata["offsets"] == {}
    tile, _ = _all(open_scene(EVROS))
    # DN / 10000, no offset; reflectance <= 0 cannot be stored without the offset (why ESA added it)
    dark = tile[11] <= 1e-4
    np.testing.assert_allclose(_all(s)[0][s.bands.index("swir22")][~dark], tile[11][~dark], atol=1e-6)
    new = wp.write_sentinel2_safe(EVROS, tmp_path / "new", level="L2A", baseline="05.10", offsets=False)
    with pytest.raises(ProductError, match=r"baseline 05.10 \(>= 04.00\) but no BOA_ADD_OFFSET_VALUES_LIST.*refusing"):
        open_scene(new)
    new1c = wp.write_sentinel2_safe(EVROS, tmp_path / "new1c", level="L1C", baseline="04.00", offsets=False)
    with pytest.raises(ProductError, match="no Radiometric_Offset_List/RADIO_ADD_OFFSET"):
        open_scene(new1c)


def test_sentinel2_failures(products: dict[str, Path], tmp_path: Path) -> None:
    safe = _copy_product(products["l1c"], tmp_path / "a")
    band = _s2_band(safe, "B11")
    band.unlink()
    with pytest.raises(ProductError, match=rf"missing band file {band.name} \(IMAGE_FILE GRANULE/") as ei:
        open_scene(safe)
    assert ei.value.path == str(safe)
    safe = _copy_product(products["l1c"], tmp_path / "b")
    mtd = safe / "MTD_MSIL1C.xml"
    mtd.write_text(mtd.read_text().replace("QUANTIFICATION_VALUE", "QUANTIFICATION_VALEU"))
    with pytest.raises(ProductError,
                       match="MTD_MSIL1C.xml has no element Product_Image_Characteristics/QUANTIFICATION_VALUE"):
        open_scene(safe)
    mtd.write_text("<broken")
    with pytest.raises(ProductError, match="MTD_MSIL1C.xml is not valid XML"):
        open_scene(safe)
    mtd.unlink()
    with pytest.raises(ProductError, match=r"SAFE folder without its product metadata \(MTD_MSIL1C.xml or MTD_MSIL2A.xml\)"):
        open_scene(safe)
    assert find_scenes(safe.parent) == [safe]  # still listed, so the batch reports it


def test_sentinel2_without_tile_metadata_uses_the_datatake_start(products: dict[str, Path], tmp_path: Path,
                                                                 caplog: pytest.LogCaptureFixture) -> None:
    safe = _copy_product(products["l1c"], tmp_path)
    next(safe.rglob("MTD_TL.xml")).unlink()
    with caplog.at_level("WARNING"):
        s = open_scene(safe)
    assert "no MTD_TL.xml" in caplog.text
    assert s.acquired == datetime(2025, 8, 22, 9, 9, 56, 783000, tzinfo=UTC) and s.acquired_source == "mtd"


# ---------------------------------------------------------------- grids and resampling


def test_grid_mapping_modes() -> None:
    crs = rasterio.crs.CRS.from_epsg(32635)
    g20 = Grid(crs, Affine(20, 0, 400000, 0, -20, 4600000), 10, 10)
    assert grid_mapping(g20, g20).mode == "index"
    g10 = Grid(crs, Affine(10, 0, 400000, 0, -10, 4600000), 20, 20)
    m = grid_mapping(g10, g20)
    assert (m.mode, m.k) == ("mean", 2)
    g60 = Grid(crs, Affine(60, 0, 400000, 0, -60, 4600000), 4, 4)
    m = grid_mapping(g60, g20)
    assert m.mode == "index" and m.row_step == pytest.approx(1 / 3)
    shifted = Grid(crs, Affine(20, 0, 399960, 0, -20, 4600040), 12, 12)  # 2 px offset
    m = grid_mapping(shifted, g20)
    assert (m.mode, m.row0, m.col0) == ("index", 2.0, 2.0)
    assert grid_mapping(Grid(crs, Affine(25, 0, 400000, 0, -25, 4600000), 8, 8), g20).mode == "warp"
    other = Grid(rasterio.crs.CRS.from_epsg(32634), g20.transform, 10, 10)
    assert grid_mapping(other, g20).mode == "warp"
    half = Grid(crs, Affine(10, 0, 400005, 0, -10, 4600000), 20, 20)  # finer but off by half a pixel
    assert grid_mapping(half, g20).mode == "warp"


def _band_tif(path: Path, arr: np.ndarray, tr: Affine, crs: str = "EPSG:32635") -> Path:
    with rasterio.open(path, "w", driver="GTiff", width=arr.shape[1], height=arr.shape[0], count=1,
                       dtype=arr.dtype.name, crs=crs, transform=tr) as ds:
        ds.write(arr[None])
    return path


def test_multifile_scene_reads_every_mapping(tmp_path: Path) -> None:
    """20 m target; a 10 m band (mean), a 60 m band (nearest), a warped band, windows at the edges."""
    rng = np.random.default_rng(3)
    t20 = Affine(20, 0, 400000, 0, -20, 4600000)
    b20 = _band_tif(tmp_path / "b20.tif", rng.integers(1, 1000, (12, 12)).astype(np.uint16), t20)
    a10 = rng.integers(1, 1000, (24, 24)).astype(np.uint16)
    b10 = _band_tif(tmp_path / "b10.tif", a10, Affine(10, 0, 400000, 0, -10, 4600000))
    a60 = rng.integers(1, 1000, (4, 4)).astype(np.uint16)
    b60 = _band_tif(tmp_path / "b60.tif", a60, Affine(60, 0, 400000, 0, -60, 4600000))
    bw = _band_tif(tmp_path / "bw.tif", np.full((10, 10), 500, np.uint16), Affine(25, 0, 399990, 0, -25, 4600010))
    srcs = [BandSource("swir22", b20, calibration=Linear(1e-3), nodata=(0,)),
            BandSource("red", b10, calibration=Linear(1e-3), nodata=(0,)),
            BandSource("coastal", b60, calibration=Linear(1e-3), nodata=(0,)),
            BandSource("green", bw, calibration=Linear(1e-3), nodata=(0,))]
    headers = {s.path: open_band_file(s.path, tmp_path, s.name) for s in srcs}
    s = build_scene(path=tmp_path, stem="x", grid=Grid.of(headers[b20]), sources=srcs, quality=[], headers=headers,
                    acquired=datetime(2025, 1, 1, tzinfo=UTC), acquired_source="stac", spacing_m=(20.0, 20.0),
                    metadata={}, product="test")
    data, valid = s.read(0, 0, 12, 12)
    np.testing.assert_allclose(data[1], a10.reshape(12, 2, 12, 2).mean(axis=(1, 3)) * 1e-3, rtol=1e-6)
    np.testing.assert_allclose(data[2], np.repeat(np.repeat(a60, 3, 0), 3, 1) * 1e-3, rtol=1e-6)
    np.testing.assert_allclose(data[3][valid], 0.5, rtol=1e-6)  # warped (25 m, shifted): a constant stays
    part, pvalid = s.read(7, 5, 5, 7)  # a window that is not aligned to the 60 m grid
    np.testing.assert_array_equal(part, data[:, 7:12, 5:12])
    np.testing.assert_array_equal(pvalid, valid[7:12, 5:12])
    # pickling drops the handles; the copy reads the same
    s2 = pickle.loads(pickle.dumps(s))
    np.testing.assert_array_equal(s2.read(0, 0, 12, 12)[0], data)
    s.close()
    s.close()
    preview, pv, step = s.read_preview(6)
    assert preview.shape == (4, 6, 6) and step == (2.0, 2.0) and pv.any()


def test_uncalibrated_float_reflectance_x10000_is_refused(tmp_path: Path) -> None:
    tr = Affine(20, 0, 400000, 0, -20, 4600000)
    f = _band_tif(tmp_path / "f.tif", np.full((4, 4), 3000.0, np.float32), tr)
    srcs = [BandSource("swir16", f, label="asset 'B11' band 1")]
    headers = {f: open_band_file(f, tmp_path, "x")}
    kw = dict(path=tmp_path, stem="x", grid=Grid.of(headers[f]), sources=srcs, quality=[], headers=headers,
              acquired=datetime(2025, 1, 1, tzinfo=UTC), acquired_source="stac", spacing_m=(20.0, 20.0), metadata={},
              product="test")
    with pytest.raises(SceneError, match=r"band 'swir16' \(asset 'B11' band 1\) has median 3000"):
        build_scene(**kw).read(0, 0, 4, 4)
    np.testing.assert_allclose(build_scene(**kw, reflectance_scale=1e-4).read(0, 0, 4, 4)[0], 0.3, rtol=1e-6)
    srcs_int = [BandSource("red", _band_tif(tmp_path / "i.tif", np.ones((4, 4), np.uint16), tr), label="asset 'B04'")]
    headers[srcs_int[0].path] = open_band_file(srcs_int[0].path, tmp_path, "x")
    with pytest.raises(ProductError, match="integer band 'red' .*has no scale/offset"):
        build_scene(**{**kw, "sources": srcs_int})


# ---------------------------------------------------------------- Capella GeoTIFF, metadata in the tag


def test_capella_geotiff_without_sidecar(products: dict[str, Path]) -> None:
    tif = products["capella"]
    assert tif.name.startswith("CAPELLA_C00_SM_GEO_VV_20251003081205_")
    assert not list(tif.parent.glob("*_extended.json"))
    s = open_scene(tif)
    assert (s.kind, s.product, s.acquired_source) == ("sar", "capella-geotiff", "tiff-tag:TIFFTAG_IMAGEDESCRIPTION")
    assert s.sidecar_path is None and s.metadata.scale_factor == open_scene(LESBOS).metadata.scale_factor
    np.testing.assert_array_equal(s.read(100, 200, 64, 64)[0], open_scene(LESBOS).read(100, 200, 64, 64)[0])


def test_capella_sidecar_wins_over_the_tag(products: dict[str, Path], tmp_path: Path) -> None:
    tif = tmp_path / products["capella"].name
    shutil.copy(products["capella"], tif)
    doc = json.loads(LESBOS.with_name("lesbos_geo_100cm_extended.json").read_text())
    doc["collect"]["image"]["scale_factor"] *= 2
    (tmp_path / f"{tif.stem}_extended.json").write_text(json.dumps(doc))
    s = open_scene(tif)
    assert s.acquired_source == "sidecar" and s.product == "capella-bundle"
    assert s.metadata.scale_factor == pytest.approx(2 * open_scene(LESBOS).metadata.scale_factor)


def test_capella_tag_problems(tmp_path: Path, write_tiny_sar) -> None:
    plain = write_tiny_sar(tmp_path, np.ones((4, 4)), sidecar=False, name="free_text")
    with rasterio.open(plain, "r+") as ds:
        ds.update_tags(TIFFTAG_IMAGEDESCRIPTION="a picture of the sea")
    with pytest.raises(SidecarError, match="missing sidecar free_text_extended.json .*ImageDescription"):
        open_scene(plain)
    tagged = write_tiny_sar(tmp_path, np.ones((4, 4)), sidecar=False, name="wrong_size")
    doc = json.loads(CAPELLA_GEO_SIDECAR.read_text())  # rows/columns of the real product, not 4 x 4
    with rasterio.open(tagged, "r+") as ds:
        ds.update_tags(TIFFTAG_IMAGEDESCRIPTION=json.dumps(doc))
    with pytest.raises(SidecarError, match=r"the Capella metadata in the TIFF's ImageDescription says rows=\d+") as ei:
        open_scene(tagged)
    assert "[TIFFTAG_IMAGEDESCRIPTION]" in str(ei.value)
    del doc["collect"]["image"]["scale_factor"]
    doc["collect"]["image"].update(rows=4, columns=4)
    with rasterio.open(tagged, "r+") as ds:
        ds.update_tags(TIFFTAG_IMAGEDESCRIPTION=json.dumps(doc))
    with pytest.raises(SidecarError, match="missing key 'collect.image.scale_factor'"):
        open_scene(tagged)


# ---------------------------------------------------------------- STAC


def test_stac_optical_item(products: dict[str, Path]) -> None:
    item = products["opt_item"]
    s = open_scene(item)
    assert (s.stem, s.product, s.acquired_source) == ("evros_gr_sentinel2-item", "stac-item", "stac")
    assert s.bands == open_scene(EVROS).bands
    np.testing.assert_array_equal(_all(s)[0], _all(open_scene(EVROS))[0])


def test_stac_per_band_assets_with_relative_hrefs(products: dict[str, Path]) -> None:
    item = products["ls_item"]
    doc = json.loads(item.read_text())
    assert doc["assets"]["red"]["href"].startswith("./../landsat/")
    s, ref = open_scene(item), open_scene(products["l2"])
    assert s.bands == ref.bands and s.quality and s.acquired_source == "stac"
    np.testing.assert_array_equal(_all(s)[0], _all(ref)[0])


def test_stac_landsat_item_with_its_mtl_is_calibrated_from_the_mtl(products: dict[str, Path], tmp_path: Path) -> None:
    mtl = _copy_product(products["l1"], tmp_path)
    item = wp.write_landsat_stac_item(mtl, tmp_path / "items", with_mtl=True)
    s = open_scene(item)
    assert s.product == "stac-item+landsat-c2-l1" and s.path == item
    np.testing.assert_array_equal(s.read(0, 0, 30, 30)[0], open_scene(mtl).read(0, 0, 30, 30)[0])


def test_capella_stac_item_as_it_comes(products: dict[str, Path]) -> None:
    """Capella's open-data items: hrefs into their bucket, the files downloaded beside the item."""
    item = products["sar_item"]
    doc = json.loads(item.read_text())
    assert doc["assets"]["VV"]["href"].startswith("https://capella-open-data.s3")
    s = open_scene(item)
    ref = open_scene(LESBOS)
    assert (s.kind, s.stem, s.product, s.acquired_source) == ("sar", item.stem, "stac-item", "stac")
    assert s.data_path.name == f"{item.stem}.tif" and s.sidecar_path.name == f"{item.stem}_extended.json"
    assert s.acquired == ref.acquired and s.spacing_m == ref.spacing_m
    np.testing.assert_array_equal(s.read(0, 0, 128, 128)[0], ref.read(0, 0, 128, 128)[0])
    np.testing.assert_allclose(s.pixel_to_lonlat(np.array([5.0]), np.array([7.0])),
                               ref.pixel_to_lonlat(np.array([5.0]), np.array([7.0])))
    assert find_scenes(item.parent) == [item]  # its GeoTIFF is not a scene of its own


def test_capella_gec_item_without_metadata_asset(tmp_path: Path) -> None:
    """A GEC item (real GEC metadata) whose calibration comes from the GeoTIFF's ImageDescription."""
    doc = json.loads(CAPELLA_GEC_SIDECAR.read_text())
    img = doc["collect"]["image"]
    name = CAPELLA_GEC_SIDECAR.name[: -len("_extended.json")]
    tif = tmp_path / f"{name}.tif"
    gt = img["image_geometry"]["geotransform"]
    crs = rasterio.crs.CRS.from_wkt(img["image_geometry"]["coordinate_system"]["wkt"])
    with rasterio.open(tif, "w", driver="GTiff", width=img["columns"], height=img["rows"], count=1, dtype="uint16",
                       tiled=True, sparse_ok=True, crs=crs, transform=Affine.from_gdal(*gt)) as ds:
        ds.write(np.full((512, 512), 900, np.uint16), 1, window=rasterio.windows.Window(0, 0, 512, 512))
        ds.update_tags(TIFFTAG_IMAGEDESCRIPTION=json.dumps(doc))
    pol = doc["collect"]["radar"]["transmit_polarization"] + doc["collect"]["radar"]["receive_polarization"]
    item = {"type": "Feature", "stac_version": "1.0.0", "id": name,
            "stac_extensions": ["https://stac-extensions.github.io/sar/v1.0.0/schema.json"],
            "geometry": None, "properties": {"datetime": doc["collect"]["start_timestamp"],
                                             "sar:product_type": "GEC", "sar:polarizations": [pol],
                                             "sar:pixel_spacing_range": img["pixel_spacing_column"],
                                             "sar:pixel_spacing_azimuth": img["pixel_spacing_row"]},
            "assets": {pol: {"href": f"https://capella-open-data.s3.us-west-2.amazonaws.com/data/x/{tif.name}",
                             "type": "image/tiff; application=geotiff; profile=cloud-optimized", "roles": ["data"]}},
            "links": []}
    ip = tmp_path / f"{name}.json"
    ip.write_text(json.dumps(item))
    s = open_scene(ip)
    assert s.kind == "sar" and s.metadata.product_type == "GEC" and s.sidecar_path is None
    assert s.acquired == datetime(2024, 7, 9, 4, 3, 29, 10153, tzinfo=UTC)
    data, valid = s.read(0, 0, 4, 4)
    assert valid.all() and data[0, 0, 0] == pytest.approx((900 * s.metadata.scale_factor) ** 2, rel=1e-6)
    item["properties"]["sar:polarizations"] = ["VH"]
    ip.write_text(json.dumps(item))
    with pytest.raises(StacError, match=r"sar:polarizations \['VH'\] do not include the metadata's HH"):
        open_scene(ip)
    item["properties"]["sar:polarizations"] = [pol]
    item["properties"]["proj:epsg"] = 4326
    item["stac_extensions"].append("https://stac-extensions.github.io/projection/v1.1.0/schema.json")
    ip.write_text(json.dumps(item))
    with pytest.raises(StacError, match="the item says EPSG:4326 .* but .*tif is in"):
        open_scene(ip)


def test_capella_stac_item_failures(products: dict[str, Path], tmp_path: Path) -> None:
    src = products["sar_item"]
    folder = _copy_product(src, tmp_path / "a").parent
    item = folder / src.name
    doc = json.loads(item.read_text())
    tif = folder / f"{src.stem}.tif"
    # no metadata asset and a GeoTIFF without Capella metadata: nothing to calibrate with
    with rasterio.open(tif, "r+", IGNORE_COG_LAYOUT_BREAK="YES") as ds:
        ds.update_tags(TIFFTAG_IMAGEDESCRIPTION="")
    nometa = dict(doc, assets={k: v for k, v in doc["assets"].items() if k != "metadata"})
    item.write_text(json.dumps(nometa))
    with pytest.raises(StacError, match="SAR item without calibration: no 'metadata' asset"):
        open_scene(item)
    # the metadata asset is some other JSON
    (folder / f"{src.stem}_extended.json").write_text(json.dumps({"hello": 1}))
    item.write_text(json.dumps(doc))
    with pytest.raises(StacError, match=r"asset 'metadata' \(.*_extended.json\) is not Capella extended metadata"):
        open_scene(item)
    # no GeoTIFF data asset at all
    item.write_text(json.dumps(dict(doc, assets={"thumbnail": doc["assets"]["thumbnail"]})))
    with pytest.raises(StacError, match="SAR item without a GeoTIFF data asset"):
        open_scene(item)
    # the data file was not downloaded beside the item
    tif.unlink()
    item.write_text(json.dumps(doc))
    with pytest.raises(StacError, match=rf"asset 'VV' href https://capella-open-data.* no local copy {tif.name}"):
        open_scene(item)


def test_stac_catalog_is_a_folder_of_scenes(products: dict[str, Path], tmp_path: Path) -> None:
    root = tmp_path / "cat"
    a = wp.write_optical_stac_item(EVROS, root / "items" / "a", item_id="a")
    b = wp.write_optical_stac_item(EVROS, root / "items" / "b", item_id="b")
    cat = wp.write_stac_catalog(root, [a, b])
    assert find_scenes(cat) == sorted([a, b])
    assert find_scenes(root) == sorted([a, b])  # each item once, the catalog itself is no scene
    with pytest.raises(StacError, match="a STAC Catalog is a folder of scenes"):
        open_scene(cat)
    doc = json.loads(cat.read_text())
    doc["links"].append({"rel": "item", "href": "./items/gone/gone.json"})
    cat.write_text(json.dumps(doc))
    assert root / "items" / "gone" / "gone.json" in find_scenes(cat)  # listed, so the batch reports it
    with pytest.raises(SceneError, match="scene file does not exist"):
        open_scene(root / "items" / "gone" / "gone.json")


def test_stac_failures(products: dict[str, Path], tmp_path: Path) -> None:
    src = json.loads(products["opt_item"].read_text())
    data_file = products["opt_item"].with_suffix(".tif")

    def item(**change) -> Path:
        doc = json.loads(json.dumps(src))
        for k, v in change.items():
            doc[k] = v
        p = tmp_path / "item.json"
        p.write_text(json.dumps(doc))
        return p

    asset = dict(src["assets"]["data"])
    with pytest.raises(StacError, match=r"asset 'data' href './nowhere.tif' leads to .*nowhere.tif, which does not exist"):
        open_scene(item(assets={"data": {**asset, "href": "./nowhere.tif"}}))
    with pytest.raises(StacError, match=r"asset 'data' href https://example.com/x/far.tif is remote and no local copy "
                                        r"far.tif lies beside the item"):
        open_scene(item(assets={"data": {**asset, "href": "https://example.com/x/far.tif"}}))
    shutil.copy(data_file, tmp_path / "far.tif")
    assert open_scene(item(assets={"data": {**asset, "href": "https://example.com/x/far.tif"}})).rows == 384
    with pytest.raises(StacError, match="no data asset with eo:bands"):
        open_scene(item(assets={"data": {"href": str(data_file), "roles": ["data"]}}))
    bad = dict(asset, **{"eo:bands": [{"name": "X", "common_name": "ultraviolet"}] * 12})
    with pytest.raises(StacError, match="band 1 .*'X'.*is not a band orbitwatch knows"):
        open_scene(item(assets={"data": {**bad, "href": str(data_file)}}))
    with pytest.raises(StacError, match="the item has no assets"):
        open_scene(item(assets={}))
    p = tmp_path / "junk.json"
    p.write_text('{"type": "Feature", "stac_version": "1.0.0", ')
    with pytest.raises(SceneError, match="not a scene: a .json scene is a STAC Item"):
        open_scene(p)  # not even parseable: not recognised as STAC at all
    fc = tmp_path / "search.json"
    fc.write_text(json.dumps({"type": "FeatureCollection", "features": [src]}))
    with pytest.raises(StacError, match="ItemCollection"):
        open_scene(fc)


def test_stac_assets_not_downloaded_but_given_by_others(products: dict[str, Path], tmp_path: Path) -> None:
    """Earth Search lists each band twice (COG and JP2) and USGS items carry remote MTLs: assets that
    are not here are skipped when other assets give their bands (or, for the MTL, raster:bands)."""
    item = products["ls_item"]
    doc = json.loads(item.read_text())
    red = doc["assets"]["red"]
    doc["assets"]["red-jp2"] = {**red, "href": "s3://sentinel-s2-l2a/tiles/x/B04.jp2"}
    doc["assets"]["mtl.json"] = {"href": "https://landsatlook.usgs.gov/data/x_MTL.json", "roles": ["metadata"]}
    p = item.parent / "with_extras.json"
    p.write_text(json.dumps(doc))
    s = open_scene(p)
    assert s.product == "stac-item" and s.bands == open_scene(item).bands
    doc["assets"]["coastal-jp2"] = {**doc["assets"]["coastal"], "href": "s3://b/x/B01.jp2",
                                    "eo:bands": [{"name": "B99", "common_name": "cirrus"}]}
    p.write_text(json.dumps(doc))
    with pytest.raises(StacError, match="asset 'coastal-jp2' href s3://b/x/B01.jp2 is remote and no local copy"):
        open_scene(p)


def test_stac_1_1_bands(products: dict[str, Path], tmp_path: Path) -> None:
    src = json.loads(products["opt_item"].read_text())
    a = src["assets"]["data"]
    bands = [{"name": e["name"], "eo:common_name": e["common_name"], "raster:scale": r.get("scale"),
              "raster:offset": r.get("offset"), "nodata": r.get("nodata")}
             for e, r in zip(a.pop("eo:bands"), a.pop("raster:bands"))]
    a["bands"] = bands
    a["href"] = str(products["opt_item"].with_suffix(".tif"))
    src["stac_version"] = "1.1.0"
    p = tmp_path / "item11.json"
    p.write_text(json.dumps(src))
    np.testing.assert_array_equal(_all(open_scene(p))[0], _all(open_scene(EVROS))[0])


# ---------------------------------------------------------------- identity for resume


def test_scene_identity_of_products(products: dict[str, Path], tmp_path: Path) -> None:
    from pipelines.batch import scene_fingerprint
    from pipelines.detect import ScanOptions

    st = BUTTE.stat()
    assert scene_identity(BUTTE) == [str(BUTTE.resolve()), st.st_size, st.st_mtime_ns]  # as before products
    safe = _copy_product(products["l1c"], tmp_path / "s2")
    mtl = _copy_product(products["l1"], tmp_path / "ls")
    o = ScanOptions()
    before = {p: scene_fingerprint(p, o) for p in (safe, mtl)}
    band = _s2_band(safe, "B12")
    os.utime(band, ns=(band.stat().st_atime_ns, band.stat().st_mtime_ns + 10**9))
    b7 = next(mtl.parent.glob("*_B7.TIF"))
    os.utime(b7, ns=(b7.stat().st_atime_ns, b7.stat().st_mtime_ns + 10**9))
    after = {p: scene_fingerprint(p, o) for p in (safe, mtl)}
    assert all(before[p] != after[p] for p in before)
    assert scene_fingerprint(safe, o) == after[safe]  # stable


def test_batch_over_products_resumes(products: dict[str, Path], tmp_path: Path) -> None:
    from pipelines.batch import run_batch
    from pipelines.detect import ScanOptions

    root = tmp_path / "in"
    safe = _copy_product(products["l1c"], root)
    mtl = _copy_product(products["l2"], root)
    scenes = find_scenes(root)
    assert scenes == sorted([safe, mtl])
    o = ScanOptions(device="cpu", detectors=["fire-rules"])
    r1 = run_batch(scenes, tmp_path / "out.geojson", o)
    assert r1.ok and sorted(r1.scenes_ok) == sorted(map(str, scenes))
    r2 = run_batch(scenes, tmp_path / "out.geojson", o)
    assert sorted(r2.scenes_skipped) == sorted(map(str, scenes)) and not r2.scenes_ok
    feats = json.loads((tmp_path / "out.geojson").read_text())["features"]
    assert {f["properties"]["acquired_source"] for f in feats} <= {"mtd", "mtl"} and feats
