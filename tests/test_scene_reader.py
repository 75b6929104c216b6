"""Scene reader: calibration, masks, band mapping, geolocation and every open/read failure, on real GeoTIFFs."""

from __future__ import annotations

import json
import pickle
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
import rasterio
from affine import Affine
from conftest import (
    CAPELLA_GEO_SIDECAR,
    CAPELLA_PFA_SIDECAR,
    CAPELLA_STRIPMAP_SIDECAR,
    capella_doc,
)
from rasterio.control import GroundControlPoint
from rasterio.warp import transform as warp_transform
from rasterio.windows import Window

from pipelines.errors import SceneError, SidecarError, TilingError
from pipelines.scene import common_band_name, find_scenes, open_scene, read_sidecar, resolve_band_names
from pipelines.scene.geo import ecef_to_lonlat, lonlat_to_ecef

# Sparse test rasters are written without georeferencing on purpose (slant-plane SLCs have none).
pytestmark = pytest.mark.filterwarnings("ignore::rasterio.errors.NotGeoreferencedWarning")

OPT_META = {"orbitwatch_optical": 1, "acquired": "2025-08-01T10:30:00Z"}


def _dist_m(lon1: np.ndarray, lat1: np.ndarray, lon2: np.ndarray, lat2: np.ndarray) -> np.ndarray:
    """ECEF chord distance: independent of the code under test's own offsets."""
    a = np.array(lonlat_to_ecef(lon1, lat1))
    b = np.array(lonlat_to_ecef(lon2, lat2))
    return np.linalg.norm(a - b, axis=0)


# ---------------------------------------------------------------- SAR


def test_sar_uint16_sigma0_calibration(tmp_path: Path, write_tiny_sar) -> None:
    dn = np.array([[0, 1, 100], [1000, 65534, 65535], [7, 8, 9]], dtype=np.uint16)
    tif = write_tiny_sar(tmp_path, dn, data_type="UInt16", scale_factor=9.657046131856903e-05, nodata=65535)
    with open_scene(tif) as s:
        assert (s.kind, s.rows, s.cols, s.bands, s.stem) == ("sar", 3, 3, ("sigma0",), "CAPELLA_TEST")
        assert s.spacing_m == pytest.approx((0.39527849717356395, 0.3952784971619971))
        assert s.acquired.isoformat() == "2024-07-09T04:03:29.010153+00:00"
        data, valid = s.read(0, 0, 3, 3)
    assert data.dtype == np.float32 and data.shape == (1, 3, 3) and valid.dtype == bool
    expected = (dn.astype(np.float64) * 9.657046131856903e-05) ** 2
    want_valid = (dn != 0) & (dn != 65535)
    np.testing.assert_array_equal(valid, want_valid)
    np.testing.assert_allclose(data[0][want_valid], expected[want_valid], rtol=1e-6)
    assert data[0, 0, 0] == 0 and data[0, 1, 2] == 0
    assert data[0, 1, 1] == pytest.approx((65534 * 9.657046131856903e-05) ** 2, rel=1e-6)


def test_sar_float32_amplitude_nan_inf(tmp_path: Path, write_tiny_sar) -> None:
    amp = np.array([[np.nan, 2.0], [np.inf, 0.0], [-np.inf, 3.0]], dtype=np.float32)
    tif = write_tiny_sar(tmp_path, amp, data_type="Float32", scale_factor=0.5)
    s = open_scene(tif)
    data, valid = s.read(0, 0, 3, 2)
    np.testing.assert_array_equal(valid, [[False, True], [False, False], [False, True]])
    np.testing.assert_allclose(data[0], [[0, 1.0], [0, 0], [0, 2.25]])
    assert np.all(np.isfinite(data))


def test_sar_cint16_complex_magnitude(tmp_path: Path, write_tiny_sar) -> None:
    z = np.array([[3 + 4j, 0j, -6 - 8j], [1 + 0j, 0 + 1j, 300 - 400j]])
    tif = write_tiny_sar(tmp_path, z, data_type="CInt16", scale_factor=0.01, source=CAPELLA_PFA_SIDECAR,
                         crs=None, transform=None)
    s = open_scene(tif)
    assert s.kind == "sar" and s.metadata.radiometry == "beta_nought"
    data, valid = s.read(0, 0, 2, 3)
    np.testing.assert_allclose(data[0], (np.abs(z) * 0.01) ** 2, rtol=1e-6)
    np.testing.assert_array_equal(valid, np.abs(z) > 0)
    # a window inside the image reads only that window
    d2, _ = s.read(1, 2, 1, 1)
    assert d2.shape == (1, 1, 1) and d2[0, 0, 0] == pytest.approx(25.0, rel=1e-6)


def test_sar_cint16_as_iq_bands(tmp_path: Path, write_tiny_sar) -> None:
    z = np.array([[3 + 4j, 0j], [5 + 12j, -8 + 6j]])
    tif = write_tiny_sar(tmp_path, z, data_type="CInt16", scale_factor=0.1, iq_bands=True)
    data, valid = open_scene(tif).read(0, 0, 2, 2)
    np.testing.assert_allclose(data[0], [[0.25, 0], [1.69, 1.0]], rtol=1e-6)
    np.testing.assert_array_equal(valid, [[True, False], [True, True]])


def test_sar_missing_sidecar(tmp_path: Path, write_tiny_sar) -> None:
    tif = write_tiny_sar(tmp_path, np.ones((4, 4)), sidecar=False)
    with pytest.raises(SidecarError, match="missing sidecar CAPELLA_TEST_extended.json") as ei:
        open_scene(tif)
    assert ei.value.path == str(tif)


def test_sar_iq_bands_missing_sidecar(tmp_path: Path, write_tiny_sar) -> None:
    tif = write_tiny_sar(tmp_path, np.ones((4, 4)) + 2j, data_type="CInt16", iq_bands=True, sidecar=False)
    with pytest.raises(SidecarError, match="missing sidecar CAPELLA_TEST_extended.json"):
        open_scene(tif)


def test_sar_size_mismatch_names_both(tmp_path: Path, write_tiny_sar) -> None:
    doc = capella_doc(rows=5, columns=7, data_type="UInt16")
    tif = write_tiny_sar(tmp_path, np.ones((4, 6)), sidecar=doc)
    with pytest.raises(SidecarError, match=r"rows=5 columns=7 .* 4 rows x 6 columns"):
        open_scene(tif)


def test_sar_dtype_disagrees_with_sidecar(tmp_path: Path, write_tiny_sar) -> None:
    doc = capella_doc(rows=4, columns=4, data_type="UInt16")
    tif = write_tiny_sar(tmp_path, np.ones((4, 4)), data_type="Float32", sidecar=doc)
    with pytest.raises(SidecarError, match="unsupported data type: sidecar data_type 'UInt16' .* float32"):
        open_scene(tif)


def test_sar_unsupported_sidecar_type(tmp_path: Path, write_tiny_sar) -> None:
    doc = capella_doc(rows=4, columns=4, data_type="CFloat32")
    tif = write_tiny_sar(tmp_path, np.ones((4, 4)), sidecar=doc)
    with pytest.raises(SidecarError, match="unsupported data type 'CFloat32'"):
        open_scene(tif)


def test_sidecar_of_unknown_kind(tmp_path: Path, write_tiny_sar) -> None:
    tif = write_tiny_sar(tmp_path, np.ones((4, 4)), sidecar={"hello": 1})
    with pytest.raises(SidecarError, match="neither Capella"):
        open_scene(tif)


def test_open_via_sidecar_path(tmp_path: Path, write_tiny_sar) -> None:
    tif = write_tiny_sar(tmp_path, np.ones((4, 4)))
    assert open_scene(tmp_path / "CAPELLA_TEST_extended.json").path == tif
    (tmp_path / "orphan_extended.json").write_text("{}")
    with pytest.raises(SceneError, match="no GeoTIFF for sidecar orphan_extended.json"):
        open_scene(tmp_path / "orphan_extended.json")


# ---------------------------------------------------------------- broken files


def test_missing_and_not_a_tiff(tmp_path: Path) -> None:
    with pytest.raises(SceneError, match="does not exist"):
        open_scene(tmp_path / "nope.tif")
    junk = tmp_path / "junk.tif"
    junk.write_bytes(b"II*\x00" + bytes(range(256)) * 4)
    with pytest.raises(SceneError, match="cannot open GeoTIFF") as ei:
        open_scene(junk)
    assert ei.value.path == str(junk)
    png = tmp_path / "image.tif"
    with rasterio.open(png, "w", driver="PNG", width=4, height=4, count=1, dtype="uint8") as ds:
        ds.write(np.ones((1, 4, 4), np.uint8))
    with pytest.raises(SceneError, match="not a GeoTIFF"):
        open_scene(png)


def test_truncated_tiff_is_wrapped(tmp_path: Path, write_tiny_sar) -> None:
    rng = np.random.default_rng(0)
    tif = write_tiny_sar(tmp_path, rng.integers(1, 60000, (64, 64)))
    raw = tif.read_bytes()
    tif.write_bytes(raw[: len(raw) // 2])  # pixel data cut in half, header intact
    with pytest.raises(SceneError) as ei:
        s = open_scene(tif)
        s.read(0, 0, 64, 64)
    assert not isinstance(ei.value, TilingError)
    assert str(tif) in str(ei.value)


def test_enormous_header_allocates_nothing(tmp_path: Path) -> None:
    """A 200,000 x 150,000 uint16 header (60 GB of pixels) in a sparse file: open reads no data."""
    h, w = 200_000, 150_000
    tif = tmp_path / "HUGE.tif"
    with rasterio.open(tif, "w", driver="GTiff", width=w, height=h, count=1, dtype="uint16", tiled=True,
                       blockxsize=1024, blockysize=1024, sparse_ok=True, crs="EPSG:32633",
                       transform=Affine(0.5, 0, 500000, 0, -0.5, 4000000)) as ds:
        ds.write(np.full((2, 2), 500, np.uint16), 1, window=Window(149_998, 199_998, 2, 2))
    (tmp_path / "HUGE_extended.json").write_text(json.dumps(capella_doc(rows=h, columns=w, data_type="UInt16")))
    tracemalloc.start()
    try:
        s = open_scene(tif)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 5_000_000
    assert (s.rows, s.cols) == (h, w)
    data, valid = s.read(h - 4, w - 4, 4, 4)
    assert valid.sum() == 4 and valid[2:, 2:].all()
    assert data[0, 3, 3] == pytest.approx((500 * 9.657046131856903e-05) ** 2, rel=1e-6)


# ---------------------------------------------------------------- windows


@pytest.mark.parametrize("window", [(0, 0, 0, 2), (0, 0, 2, -1), (-1, 0, 2, 2), (0, 3, 2, 2), (3, 0, 2, 2),
                                    (0, 0, 5, 4), (0.5, 0, 1, 1)])
def test_out_of_bounds_window(tmp_path: Path, write_tiny_sar, window: tuple) -> None:
    s = open_scene(write_tiny_sar(tmp_path, np.ones((4, 4))))
    with pytest.raises(TilingError):
        s.read(*window)


def test_pickle_and_close(tmp_path: Path, write_tiny_sar) -> None:
    s = open_scene(write_tiny_sar(tmp_path, np.full((4, 4), 10)))
    s.read(0, 0, 2, 2)
    assert s._ds is not None
    s2 = pickle.loads(pickle.dumps(s))
    np.testing.assert_array_equal(s2.read(0, 0, 4, 4)[0], s.read(0, 0, 4, 4)[0])
    s.close()
    assert s._ds is None
    s.close()  # twice is fine
    assert s.read(1, 1, 1, 1)[1].all()  # reopens lazily


# ---------------------------------------------------------------- optical


def test_optical_stac_float_reflectance(tmp_path: Path, write_tiny_optical) -> None:
    rng = np.random.default_rng(1)
    data = rng.uniform(0, 1, (3, 5, 6)).astype(np.float32)
    data[2] = 300.0  # kelvin
    data[0, 1, 1] = np.nan
    data[1, 2, 3] = np.inf
    tif = write_tiny_optical(tmp_path, data, ["red", "swir22", "lwir11"])
    s = open_scene(tif)
    assert (s.kind, s.bands, s.rows, s.cols) == ("optical", ("red", "swir22", "lwir11"), 5, 6)
    assert s.spacing_m == (10.0, 10.0)
    assert s.acquired.isoformat() == "2025-08-01T10:30:00+00:00"
    out, valid = s.read(0, 0, 5, 6)
    want = np.ones((5, 6), bool)
    want[1, 1] = want[2, 3] = False
    np.testing.assert_array_equal(valid, want)
    np.testing.assert_allclose(out[:, want], data[:, want])
    assert np.all(out[:, ~want] == 0)


def test_optical_integer_dn_scale_offset_landsat(tmp_path: Path, write_tiny_optical) -> None:
    dn = np.array([[[0, 10000], [20000, 30000]],
                   [[1, 2], [3, 4]],
                   [[0, 29000], [30000, 31000]]], dtype=np.uint16)
    side = {**OPT_META, "platform": "LANDSAT_8", "pixel_size_m": 30.0, "nodata": 0,
            "bands": {"red": {"scale": 2.0e-5, "offset": -0.1, "unit": "reflectance"},
                      "B5": {"scale": 0.5, "offset": 0.0},
                      "lwir11": {"scale": 0.01, "offset": 0.0, "unit": "kelvin"}}}
    tif = write_tiny_optical(tmp_path, dn, ["B4", "B5", "B10"], dtype="uint16", sidecar=side)
    s = open_scene(tif)
    assert s.bands == ("red", "nir08", "lwir11")
    assert s.spacing_m == (30.0, 30.0)
    assert s.metadata["platform"] == "LANDSAT_8"
    out, valid = s.read(0, 0, 2, 2)
    np.testing.assert_array_equal(valid, [[False, True], [True, True]])  # sidecar nodata 0 in any band
    np.testing.assert_allclose(out[0], [[0, 0.1], [0.3, 0.5]], atol=1e-7)
    np.testing.assert_allclose(out[1], [[0, 1.0], [1.5, 2.0]])
    np.testing.assert_allclose(out[2], [[0, 290.0], [300.0, 310.0]], rtol=1e-6)


def test_optical_sentinel2_names_and_scale(tmp_path: Path, write_tiny_optical) -> None:
    refl = np.full((3, 2, 2), 2500.0, np.float32)
    side = {**OPT_META, "bands": {n: {"scale": 1e-4, "offset": 0.0} for n in ("red", "nir08", "swir22")}}
    tif = write_tiny_optical(tmp_path, refl, ["B04", "B8A", "B12"], sidecar=side)
    s = open_scene(tif)
    assert s.bands == ("red", "nir08", "swir22")
    np.testing.assert_allclose(s.read(0, 0, 2, 2)[0], 0.25, rtol=1e-6)


def test_optical_unpadded_sentinel2_with_platform_hint(tmp_path: Path, write_tiny_optical) -> None:
    side = {**OPT_META, "platform": "Sentinel-2A"}
    tif = write_tiny_optical(tmp_path, np.full((3, 2, 2), 0.2), ["B4", "B8", "B11"], sidecar=side)
    assert open_scene(tif).bands == ("red", "nir", "swir16")
    tif2 = write_tiny_optical(tmp_path, np.full((3, 2, 2), 0.2), ["B4", "B8", "B11"], name="ls")
    assert open_scene(tif2).bands == ("red", "pan", "lwir12")  # no hint: Landsat-8 numbering


def test_optical_x10000_float_refused_then_scaled(tmp_path: Path, write_tiny_optical) -> None:
    data = np.full((2, 3, 3), 3000.0, np.float32)
    data[:, 0, 0] = np.nan
    tif = write_tiny_optical(tmp_path, data, ["20230514 20m: B11 1610nm", "20230514 20m: B12 2190nm"])
    s = open_scene(tif)
    assert s.bands == ("swir16", "swir22")  # B12 -> Sentinel-2 numbering for the whole file
    with pytest.raises(SceneError, match="median 3000 .* reflectance_scale=1e-4"):
        s.read(0, 0, 3, 3)
    out, valid = open_scene(tif, reflectance_scale=1e-4).read(0, 0, 3, 3)
    np.testing.assert_allclose(out[:, valid], 0.3, rtol=1e-6)
    assert not valid[0, 0]
    with pytest.raises(SceneError, match="reflectance_scale must be a positive number"):
        open_scene(tif, reflectance_scale=0)


def test_optical_nodata_tag(tmp_path: Path, write_tiny_optical) -> None:
    data = np.full((2, 2, 3), 0.4, np.float32)
    data[1, 0, 2] = -9999
    tif = write_tiny_optical(tmp_path, data, ["nir", "red"], nodata=-9999)
    out, valid = open_scene(tif).read(0, 0, 2, 3)
    assert valid.sum() == 5 and not valid[0, 2]
    assert out[0, 0, 2] == 0 and out[1, 0, 2] == 0


def test_optical_no_band_names(tmp_path: Path, write_tiny_optical) -> None:
    tif = write_tiny_optical(tmp_path, np.zeros((3, 2, 2)), ["alpha", "beta", ""])
    with pytest.raises(SceneError, match=r"no recognisable band names; band descriptions found: \['alpha', 'beta', None\]"):
        open_scene(tif)


def test_optical_partially_unknown_and_duplicate(tmp_path: Path, write_tiny_optical) -> None:
    tif = write_tiny_optical(tmp_path, np.zeros((2, 2, 2)), ["red", "mask"], name="a")
    with pytest.raises(SceneError, match="unrecognised optical band description.*band 2 'mask'"):
        open_scene(tif)
    tif = write_tiny_optical(tmp_path, np.zeros((2, 2, 2)), ["red", "B4"], name="b")
    with pytest.raises(SceneError, match="duplicate band name 'red': band 1 .* band 2"):
        open_scene(tif)


def test_optical_integer_without_calibration(tmp_path: Path, write_tiny_optical) -> None:
    tif = write_tiny_optical(tmp_path, np.ones((2, 2, 2)), ["red", "nir"], dtype="uint16")
    with pytest.raises(SceneError, match="integer DN band 'red' .* needs a scale/offset"):
        open_scene(tif)


def test_optical_thermal_unit_mismatch(tmp_path: Path, write_tiny_optical) -> None:
    side = {**OPT_META, "bands": {"lwir11": {"scale": 0.01, "offset": 0, "unit": "reflectance"}}}
    tif = write_tiny_optical(tmp_path, np.ones((1, 2, 2)), ["lwir11"], sidecar=side)
    with pytest.raises(SidecarError, match="'lwir11' must be calibrated to kelvin"):
        open_scene(tif)


def test_optical_acquired_sources(tmp_path: Path, write_tiny_optical) -> None:
    d = np.full((1, 2, 2), 0.1)
    t1 = write_tiny_optical(tmp_path, d, ["red"], name="t1", tags={"TIFFTAG_DATETIME": "2025:08:02 11:00:00"})
    assert open_scene(t1).acquired.isoformat() == "2025-08-02T11:00:00+00:00"
    t2 = write_tiny_optical(tmp_path, d, ["red"], name="t2", tags={"SOMETHING": "x"})
    with pytest.raises(SceneError, match="no acquisition time"):
        open_scene(t2)
    t3 = write_tiny_optical(tmp_path, d, ["red"], name="t3", tags={"ACQUISITION_DATETIME": "soon"})
    with pytest.raises(SceneError, match="ACQUISITION_DATETIME='soon' is not a valid timestamp"):
        open_scene(t3)


def test_optical_pixel_size_needs_metres(tmp_path: Path, write_tiny_optical) -> None:
    d = np.full((1, 2, 2), 0.1)
    geo = write_tiny_optical(tmp_path, d, ["red"], crs="EPSG:4326", transform=Affine(0.001, 0, 10, 0, -0.001, 50))
    with pytest.raises(SceneError, match="pixel size in metres"):
        open_scene(geo)
    side = {**OPT_META, "pixel_size_m": 100.0}
    geo2 = write_tiny_optical(tmp_path, d, ["red"], name="g2", sidecar=side, crs="EPSG:4326",
                              transform=Affine(0.001, 0, 10, 0, -0.001, 50))
    assert open_scene(geo2).spacing_m == (100.0, 100.0)


# ---------------------------------------------------------------- bands table


@pytest.mark.parametrize(("desc", "hint", "name"), [
    ("red", None, "red"), ("SWIR16", None, "swir16"), ("Band: lwir11", None, "lwir11"),
    ("B1", None, "coastal"), ("B5", "landsat-8", "nir08"), ("B10", None, "lwir11"), ("B11", None, "lwir12"),
    ("B01", None, "coastal"), ("B8A", None, "nir08"), ("B12", None, "swir22"), ("B05", None, "rededge071"),
    ("B8", "S2B", "nir"), ("B10", "sentinel-2", "cirrus"), ("B09", "LC08", "cirrus"),
    ("60m: B9 945nm", None, "cirrus"), ("something 2.19um", None, "swir22"), ("thermal 10800 nm", None, "lwir11"),
    ("infrared", None, None), ("", None, None), (None, None, None), ("B13", None, None),
])
def test_common_band_name(desc: str | None, hint: str | None, name: str | None) -> None:
    assert common_band_name(desc, hint) == name


def test_resolve_band_names_real_s2_descriptions() -> None:
    descs = ("20230514 60m: B9 945nm", "20230514 20m: B11 1610nm", "20230514 20m: B12 2190nm")
    assert resolve_band_names(descs) == ("nir09", "swir16", "swir22")
    assert resolve_band_names(("B2", "B3", "B4"), "Landsat 8") == ("blue", "green", "red")


# ---------------------------------------------------------------- geolocation


def test_pixel_to_lonlat_utm_known_point(tmp_path: Path, write_tiny_optical) -> None:
    # pixel (2, 3) centre is exactly E 500000 (UTM 33N central meridian, lon 15), N 0 (equator)
    tr = Affine(10.0, 0.0, 500000.0 - 35.0, 0.0, -10.0, 25.0)
    tif = write_tiny_optical(tmp_path, np.full((1, 8, 8), 0.1), ["red"], transform=tr)
    s = open_scene(tif)
    lon, lat = s.pixel_to_lonlat(np.array([2.0]), np.array([3.0]))
    assert abs(lon[0] - 15.0) < 1e-9 and abs(lat[0]) < 1e-9
    rows = np.array([[0.0, 7.0], [4.25, 6.5]])
    cols = np.array([[0.0, 7.0], [1.5, 0.0]])
    lon, lat = s.pixel_to_lonlat(rows, cols)
    assert lon.shape == rows.shape
    xs = tr.c + (cols + 0.5) * 10.0
    ys = tr.f - (rows + 0.5) * 10.0
    elon, elat = warp_transform("EPSG:32633", "EPSG:4326", xs.ravel().tolist(), ys.ravel().tolist())
    np.testing.assert_allclose(lon.ravel(), elon, atol=1e-6)
    np.testing.assert_allclose(lat.ravel(), elat, atol=1e-6)
    # one column east is ~10 m
    assert _dist_m(lon[0, 0], lat[0, 0], *s.pixel_to_lonlat(np.array(0.0), np.array(1.0))) == pytest.approx(10, rel=1e-3)


def test_pixel_to_lonlat_gcps(tmp_path: Path, write_tiny_optical) -> None:
    # GCPs at pixel corners describing 0.01 deg pixels from (10E, 50N)
    gcps = [GroundControlPoint(row=r, col=c, x=10 + 0.01 * c, y=50 - 0.01 * r) for r in (0, 10) for c in (0, 10)]
    tif = write_tiny_optical(tmp_path, np.full((1, 10, 10), 0.1), ["red"], crs=None, transform=None,
                             gcps=(gcps, rasterio.crs.CRS.from_epsg(4326)),
                             sidecar={**OPT_META, "pixel_size_m": 700.0})
    lon, lat = open_scene(tif).pixel_to_lonlat(np.array([0.0, 4.0]), np.array([0.0, 9.0]))
    np.testing.assert_allclose(lon, [10.005, 10.095], atol=1e-9)
    np.testing.assert_allclose(lat, [49.995, 49.955], atol=1e-9)


def test_pixel_to_lonlat_sidecar_geotransform(tmp_path: Path) -> None:
    """A GEO TIFF that lost its georeferencing uses the sidecar's geotransform + WKT: same answer."""
    doc = json.loads(CAPELLA_GEO_SIDECAR.read_text())
    gt = doc["collect"]["image"]["image_geometry"]["geotransform"]
    h, w = doc["collect"]["image"]["rows"], doc["collect"]["image"]["columns"]
    tifs = {}
    for name, georef in (("with", True), ("without", False)):
        tif = tmp_path / f"{name}.tif"
        kw = dict(crs="EPSG:32633", transform=Affine.from_gdal(*gt)) if georef else {}
        with rasterio.open(tif, "w", driver="GTiff", width=w, height=h, count=1, dtype="uint16", tiled=True,
                           sparse_ok=True, **kw):
            pass
        (tmp_path / f"{name}_extended.json").write_text(json.dumps(doc))
        tifs[name] = open_scene(tif)
    r, c = np.array([0.0, h / 2, h - 1.0]), np.array([0.0, w / 2, 17.0])
    a = tifs["with"].pixel_to_lonlat(r, c)
    b = tifs["without"].pixel_to_lonlat(r, c)
    np.testing.assert_allclose(a, b, atol=1e-9)
    assert 14.9 < a[0][1] < 15.1 and 37.6 < a[1][1] < 37.9  # UTM 33N, southern Italy


def test_pixel_to_lonlat_pfa_fallback(tmp_path: Path) -> None:
    """Slant-plane spotlight SLC without georeferencing: SRP lands on its ECEF position, spacing is right."""
    meta = read_sidecar(CAPELLA_PFA_SIDECAR)
    tif = tmp_path / "SLC.tif"
    with rasterio.open(tif, "w", driver="GTiff", width=meta.columns, height=meta.rows, count=1,
                       dtype="complex_int16", tiled=True, sparse_ok=True):
        pass
    (tmp_path / "SLC_extended.json").write_text(CAPELLA_PFA_SIDECAR.read_text())
    s = open_scene(tif)
    g = meta.image_geometry
    ref_col, ref_row = g["scene_reference_point_row_col"]  # PFA row = image column
    srp_lon, srp_lat, _ = ecef_to_lonlat(*g["scene_reference_point_ecef"])
    lon, lat = s.pixel_to_lonlat(np.array([ref_row, ref_row + 1000.0, ref_row]), np.array([ref_col, ref_col, ref_col + 1000.0]))
    assert _dist_m(lon[0], lat[0], srp_lon, srp_lat) < 0.01
    # 1000 rows = 1000 azimuth samples; 1000 columns = 1000 slant-range samples projected to ground
    assert _dist_m(lon[0], lat[0], lon[1], lat[1]) == pytest.approx(1000 * meta.pixel_spacing_row, rel=0.01)
    assert _dist_m(lon[0], lat[0], lon[2], lat[2]) == pytest.approx(1000 * meta.pixel_spacing_column, rel=0.01)
    # the centre pixel from the sidecar is the same place as the SRP (within a few metres)
    tp = ecef_to_lonlat(*meta.raw["collect"]["image"]["center_pixel"]["target_position"])
    assert _dist_m(lon[0], lat[0], tp[0], tp[1]) < 30


def test_pixel_to_lonlat_stripmap_fallback(tmp_path: Path) -> None:
    meta = read_sidecar(CAPELLA_STRIPMAP_SIDECAR)
    tif = tmp_path / "SM.tif"
    with rasterio.open(tif, "w", driver="GTiff", width=meta.columns, height=meta.rows, count=1,
                       dtype="complex_int16", tiled=True, sparse_ok=True):
        pass
    (tmp_path / "SM_extended.json").write_text(CAPELLA_STRIPMAP_SIDECAR.read_text())
    s = open_scene(tif)
    r0, c0 = meta.rows / 2, meta.columns / 2
    lon, lat = s.pixel_to_lonlat(np.array([r0, r0 + 500, r0]), np.array([c0, c0, c0 + 500]))
    tp = ecef_to_lonlat(*meta.raw["collect"]["image"]["center_pixel"]["target_position"])
    assert _dist_m(lon[0], lat[0], tp[0], tp[1]) < 500  # the collect's centre target is near the image centre
    assert _dist_m(lon[0], lat[0], lon[1], lat[1]) == pytest.approx(500 * meta.pixel_spacing_row, rel=1e-3)
    assert _dist_m(lon[0], lat[0], lon[2], lat[2]) == pytest.approx(500 * meta.pixel_spacing_column, rel=1e-3)
    # azimuth and range axes are perpendicular on the ground
    a = np.array(lonlat_to_ecef(lon, lat))
    assert abs(np.dot(a[:, 1] - a[:, 0], a[:, 2] - a[:, 0])) / (500**2 * 1.2) < 1e-3


def test_pixel_to_lonlat_without_any_georef(tmp_path: Path, write_tiny_sar, write_tiny_optical) -> None:
    doc = capella_doc(CAPELLA_STRIPMAP_SIDECAR, rows=4, columns=4, data_type="CInt16")
    del doc["collect"]["state"]["state_vectors"]
    tif = write_tiny_sar(tmp_path, np.ones((4, 4)) + 1j, data_type="CInt16", sidecar=doc, crs=None, transform=None)
    with pytest.raises(SceneError, match="state_vectors"):
        open_scene(tif).pixel_to_lonlat(np.array([0.0]), np.array([0.0]))
    doc = capella_doc(CAPELLA_PFA_SIDECAR, rows=4, columns=4, data_type="CInt16")
    doc["collect"]["image"]["image_geometry"] = {"type": "polar_magic"}
    tif = write_tiny_sar(tmp_path, np.ones((4, 4)) + 1j, name="B", data_type="CInt16", sidecar=doc, crs=None,
                         transform=None)
    with pytest.raises(SceneError, match="'polar_magic' has no fallback"):
        open_scene(tif).pixel_to_lonlat(np.array([0.0]), np.array([0.0]))
    opt = write_tiny_optical(tmp_path, np.full((1, 2, 2), 0.1), ["red"], crs=None, transform=None,
                             sidecar={**OPT_META, "pixel_size_m": 10.0})
    with pytest.raises(SceneError, match="cannot geolocate"):
        open_scene(opt).pixel_to_lonlat(np.array([0.0]), np.array([0.0]))


def test_ecef_round_trip() -> None:
    lon = np.array([-179.5, -76.25, 0.0, 15.0, 120.3])
    lat = np.array([-89.0, 17.99, 0.0, 37.7, 60.0])
    h = np.array([0.0, 2800.0, -30.0, 100.0, 9000.0])
    lo, la, hh = ecef_to_lonlat(*lonlat_to_ecef(lon, lat, h))
    np.testing.assert_allclose(lo, lon, atol=1e-10)
    np.testing.assert_allclose(la, lat, atol=1e-10)
    np.testing.assert_allclose(hh, h, atol=1e-3)


# ---------------------------------------------------------------- find_scenes


def test_find_scenes(tmp_path: Path) -> None:
    (tmp_path / "b" / "c").mkdir(parents=True)
    for rel in ("z.tif", "b/a.TIF", "b/c/x.tiff", "b/notes.txt", "b/c/x_extended.json"):
        (tmp_path / rel).write_bytes(b"")
    got = find_scenes(tmp_path)
    assert got == sorted([tmp_path / "z.tif", tmp_path / "b" / "a.TIF", tmp_path / "b" / "c" / "x.tiff"])
    assert find_scenes(tmp_path / "z.tif") == [tmp_path / "z.tif"]
    assert find_scenes(tmp_path / "b" / "c" / "x_extended.json") == [tmp_path / "b" / "c" / "x_extended.json"]
    with pytest.raises(SceneError, match="does not exist"):
        find_scenes(tmp_path / "missing")


def test_optical_platform_from_tiff_tag(tmp_path: Path, write_tiny_optical) -> None:
    tags = {"SPACECRAFT_ID": "SENTINEL-2B", "ACQUISITION_DATETIME": "2025-08-01T10:30:00Z"}
    tif = write_tiny_optical(tmp_path, np.full((2, 2, 2), 0.3), ["B4", "B8"], tags=tags)
    assert open_scene(tif).bands == ("red", "nir")


def test_optical_unsupported_dtype(tmp_path: Path, write_tiny_optical) -> None:
    tif = write_tiny_optical(tmp_path, np.ones((2, 2, 2)), ["red", "nir"], dtype="complex64")
    with pytest.raises(SceneError, match="unsupported data type complex64 for an optical tile"):
        open_scene(tif)
