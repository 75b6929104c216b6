"""Tests of the synthetic optical/thermal fire generator and the optical tile writer."""

from __future__ import annotations

import json

import numpy as np
import pytest
import rasterio

from detectors.errors import SynthError
from detectors.synth.optical import (
    SENTINEL2_BANDS,
    brightness_temperature,
    make_optical_tile,
    make_trap_only_tile,
    planck_radiance,
    radiance_to_reflectance,
)
from pipelines.scene.write import write_optical_tile

L8 = ["coastal", "blue", "green", "red", "nir08", "swir16", "swir22"]


def test_planck_and_inverse():
    # 300 K at 10.9 um is ~9.6 W m-2 sr-1 um-1; a 1000 K fire at 2.2 um ~3.3e3.
    assert planck_radiance(10.9, 300.0) == pytest.approx(9.6, rel=0.03)
    assert planck_radiance(2.2, 1000.0) == pytest.approx(3.35e3, rel=0.05)
    t = np.array([250.0, 300.0, 900.0])
    assert np.allclose(brightness_temperature(10.9, planck_radiance(10.9, t)), t, atol=1e-6)
    # A full 1000 K pixel is ~150x brighter than a white surface in swir22 (so f ~ 1 % is visible).
    assert radiance_to_reflectance(planck_radiance(2.2, 1000.0), 85.25, 35.0) > 100


def test_deterministic_and_seeds_differ():
    a = make_optical_tile(3, rows=128, cols=128)
    b = make_optical_tile(3, rows=128, cols=128)
    c = make_optical_tile(4, rows=128, cols=128)
    assert all(np.array_equal(a.bands[k], b.bands[k]) for k in a.bands)
    assert a.truth == b.truth
    assert not np.array_equal(a.bands["red"], c.bands["red"])


def test_band_sets_follow_stac_common_names():
    assert list(make_optical_tile(1, rows=64, cols=64, thermal=True).bands) == L8 + ["lwir11"]
    s2 = make_optical_tile(1, rows=64, cols=64, sensor="sentinel2", pixel_size_m=20.0)
    assert list(s2.bands) == list(SENTINEL2_BANDS)
    with pytest.raises(SynthError):
        make_optical_tile(1, sensor="sentinel2", thermal=True)
    with pytest.raises(SynthError):
        make_optical_tile(1, sensor="modis")


def test_fires_raise_swir22_far_more_than_nir_and_truth_matches_mask():
    t = make_optical_tile(5, rows=256, cols=256, n_fires=4, thermal=True)
    m = t.fire_mask
    assert m.any()
    px = {tuple(p) for f in t.truth if f["kind"] == "fire" for p in f["pixels"]}
    assert px == set(zip(*np.nonzero(m)))
    # Planck: at 800-1200 K the emitted signal in swir22 dwarfs that in nir08.
    ex = t.fire_excess
    assert ex["swir22"][m].mean() > 0.1
    assert ex["swir22"][m].mean() > 50 * ex["nir08"][m].mean()
    assert ex["swir16"][m].mean() > 5 * ex["nir08"][m].mean()
    assert np.median(t.bands["swir22"][m] / t.bands["nir08"][m]) > 1.0
    assert np.median(t.bands["swir22"][~m] / t.bands["nir08"][~m]) < 0.6
    assert t.bands["lwir11"][m].mean() > np.median(t.bands["lwir11"]) + 5.0
    for f in t.truth:
        if f["kind"] == "fire":
            assert 600.0 <= f["temperature_k"] <= 1200.0 and 0 < f["fraction"] < 0.06
            assert f["area_m2"] == pytest.approx(len(f["pixels"]) * 900.0)


def test_trap_only_tile_has_traps_but_no_fires():
    t = make_trap_only_tile(9, rows=256, cols=256, thermal=True)
    assert not t.fire_mask.any()
    assert not [f for f in t.truth if f["kind"] == "fire"]
    traps = [f for f in t.truth if f["kind"] == "trap"]
    assert len(traps) >= 4
    assert {f["trap"] for f in traps} <= {"roof", "hot_soil", "glint", "cloud_edge"}
    # Look-alikes are bright in swir22 yet not hot: no pixel reaches fire-level BT.
    assert t.bands["lwir11"].max() < 345.0


def test_written_tiles_read_back(tmp_path):
    t = make_optical_tile(6, rows=96, cols=96, sensor="sentinel2", pixel_size_m=20.0, n_fires=2)
    tif = write_optical_tile(tmp_path, "s2", t, origin_utm=(440_000.0, 4_550_000.0), epsg=32635, dn=True)
    side = json.loads((tmp_path / "s2_extended.json").read_text())
    assert side["orbitwatch_optical"] == 1 and side["platform"] == "sentinel-2-like"
    with rasterio.open(tif) as ds:
        assert ds.descriptions == tuple(SENTINEL2_BANDS)
        assert ds.dtypes[0] == "uint16" and ds.nodata == 0 and ds.crs.to_epsg() == 32635
        red = ds.read(ds.descriptions.index("red") + 1).astype(np.float64)
    cal = side["bands"]["red"]
    assert np.allclose(red * cal["scale"] + cal["offset"], t.bands["red"], atol=cal["scale"])
    l8 = make_optical_tile(6, rows=64, cols=64, thermal=True)
    tif2 = write_optical_tile(tmp_path, "l8", l8, origin_utm=(600_000.0, 4_400_000.0), epsg=32610)
    with rasterio.open(tif2) as ds:
        assert ds.descriptions == tuple(L8 + ["lwir11"]) and ds.dtypes[0] == "float32"
        assert np.array_equal(ds.read(8), l8.bands["lwir11"])
    fc = json.loads((tmp_path / "l8_truth.geojson").read_text())
    assert all(-123 < f["geometry"]["coordinates"][0] < -120 for f in fc["features"])
