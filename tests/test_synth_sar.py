"""Tests of the synthetic SAR generator and the Capella-style bundle writer."""

from __future__ import annotations

import json
import math
from datetime import datetime, timezone

import numpy as np
import pytest
import rasterio

from detectors.errors import SynthError
from detectors.synth.sar import irf_1d, make_sar_scene
from pipelines.scene.write import write_sar_bundle


def _calm(seed: int, **kw):
    base = dict(rows=512, cols=512, land=False, n_vessels=0, n_lifeboats=0, texture_nu=float("inf"),
                nesz_db=None, swell=False, sea_sigma0_db_override=-24.0, enl=4.0, nodata_border=False)
    base.update(kw)
    return make_sar_scene(seed, **base)


def test_deterministic_per_seed_and_seeds_differ():
    a = make_sar_scene(7, rows=256, cols=256)
    b = make_sar_scene(7, rows=256, cols=256)
    c = make_sar_scene(8, rows=256, cols=256)
    assert np.array_equal(a.dn, b.dn)
    assert a.truth == b.truth
    assert a.sidecar == b.sidecar
    assert not np.array_equal(a.dn, c.dn)


def test_mean_sigma0_and_speckle_enl_match_request():
    s = _calm(11)
    sig = s.sigma0_from_dn()
    assert abs(10 * math.log10(sig.mean()) - (-24.0)) < 0.6
    enls = []
    for r in range(0, 512, 64):
        for c in range(0, 512, 64):
            p = sig[r:r + 64, c:c + 64].astype(np.float64)
            enls.append(p.mean() ** 2 / p.var())
    assert abs(np.median(enls) / s.sidecar["collect"]["image"]["enl"] - 1.0) < 0.15


def test_k_texture_makes_clutter_spikier_than_speckle():
    smooth = _calm(12).sigma0_from_dn().astype(np.float64)
    spiky = _calm(12, texture_nu=1.0).sigma0_from_dn().astype(np.float64)
    enl = lambda x: x.mean() ** 2 / x.var()  # noqa: E731
    assert enl(spiky) < 0.6 * enl(smooth)


def test_rectangular_sidelobe_is_minus_13_db_and_taylor_lower():
    for name, params, lo, hi in (("rectangular", {}, -14.0, -12.5), ("taylor", {"nbar": 3, "sidelobelevel": -30.0}, -40, -27)):
        h = irf_1d(name, params, 0.05, 200) ** 2  # 20x oversampled IRF
        h = h / h.max()
        c = 200
        d = np.diff(h[c:])
        first_min = int(np.argmax(d > 0))
        sl = 10 * math.log10(h[c + first_min:].max())
        assert lo < sl < hi, (name, sl)


def test_targets_bright_at_truth_and_sizes_in_range():
    for seed in (21, 22):
        s = make_sar_scene(seed, rows=768, cols=768, land=False, n_vessels=3, n_lifeboats=4, nodata_border=False)
        sig = s.sigma0_from_dn()
        sea = float(np.median(sig))
        real = [t for t in s.truth if t["kind"] in ("vessel", "lifeboat")]
        assert sum(t["kind"] == "lifeboat" for t in real) == 4
        for t in real:
            r, c = int(round(t["row"])), int(round(t["col"]))
            win = sig[max(0, r - 3):r + 4, max(0, c - 3):c + 4]
            assert win.max() > 10 * sea, t
            if t["kind"] == "lifeboat":
                assert 4.0 <= t["length_m"] <= 9.0
            else:
                assert 15.0 <= t["length_m"] <= 300.0
                assert 5.0 <= t["length_m"] / t["width_m"] <= 8.0
            assert 0.0 <= t["heading_deg"] < 360.0
        vessels = [t for t in real if t["kind"] == "vessel"]
        boats = [t for t in real if t["kind"] == "lifeboat"]
        assert np.median([t["rcs_m2"] for t in boats]) < np.median([t["rcs_m2"] for t in vessels])


def test_land_urban_ambiguity_and_nodata():
    s = make_sar_scene(31, rows=1024, cols=1024, land=True, coast_side="top", land_fraction=0.3,
                       n_vessels=3, n_lifeboats=2, nodata_border=True, azimuth_window="rectangular")
    assert 0.2 < s.land_mask.mean() < 0.4
    sig = s.sigma0_from_dn()
    valid = s.dn > 0
    assert np.all(s.dn[s.nodata_mask] == 0) and s.nodata_mask.any()
    land_db = 10 * np.log10(np.median(sig[s.land_mask & valid]))
    sea_db = 10 * np.log10(np.median(sig[~s.land_mask & valid]))
    assert land_db > sea_db + 6
    traps = {t["trap"] for t in s.truth if t["kind"] == "trap"}
    assert {"urban", "ambiguity"} <= traps
    for t in s.truth:
        if t["kind"] == "trap" and t["trap"] == "ambiguity":
            r, c = int(t["row"]), int(t["col"])
            assert sig[max(0, r - 2):r + 3, max(0, c - 2):c + 3].max() > 3 * np.median(sig[~s.land_mask & valid])
    with pytest.raises(SynthError):
        make_sar_scene(1, rows=8, cols=8)


CAPELLA_IMAGE_KEYS = {"data_type", "rows", "columns", "pixel_spacing_row", "pixel_spacing_column", "scale_factor",
                      "radiometry", "enl", "image_geometry", "center_pixel", "azimuth_window", "range_window"}


def test_written_bundle_reads_back(tmp_path):
    s = make_sar_scene(41, rows=384, cols=384, land=False, n_vessels=1, n_lifeboats=1, nodata_border=True)
    acq = datetime(2025, 7, 14, 4, 48, 12, tzinfo=timezone.utc)
    tif = write_sar_bundle(tmp_path, "t41", s, origin_utm=(282_000.0, 3_930_000.0), epsg=32633, acquired=acq)
    with rasterio.open(tif) as ds:
        assert ds.count == 1 and ds.dtypes[0] == "uint16" and ds.nodata == 0
        assert ds.crs.to_epsg() == 32633
        assert ds.descriptions[0] in ("HH", "VV")
        assert ds.transform.a == pytest.approx(s.spacing_m) and ds.transform.e == pytest.approx(-s.spacing_m)
        assert np.array_equal(ds.read(1), s.dn)
        gt = ds.transform.to_gdal()
    side = json.loads((tmp_path / "t41_extended.json").read_text())
    assert side["product_type"] == "GEO" and "product_version" in side
    col = side["collect"]
    for k in ("platform", "mode", "collect_id", "start_timestamp", "stop_timestamp", "image", "radar", "state"):
        assert k in col
    img = col["image"]
    assert CAPELLA_IMAGE_KEYS <= set(img)
    assert img["data_type"] == "UInt16" and img["radiometry"] == "sigma_nought"
    assert img["image_geometry"]["type"] == "geotransform"
    assert img["image_geometry"]["geotransform"] == pytest.approx(list(gt))
    assert img["image_geometry"]["coordinate_system"]["type"] == "wkt"
    assert "UTM zone 33N" in img["image_geometry"]["coordinate_system"]["wkt"]
    assert {"look_angle", "incidence_angle"} <= set(img["center_pixel"])
    assert img["center_pixel"]["look_angle"] < img["center_pixel"]["incidence_angle"]
    rad = col["radar"]
    assert {"center_frequency", "transmit_polarization", "receive_polarization", "prf", "pointing"} <= set(rad)
    assert rad["prf"][0]["prf"] > 1000
    assert col["state"]["direction"] in ("ascending", "descending")
    assert col["start_timestamp"].startswith("2025-07-14T04:48:12")
    fc = json.loads((tmp_path / "t41_truth.geojson").read_text())
    kinds = [f["properties"]["kind"] for f in fc["features"]]
    assert kinds.count("vessel") == 1 and kinds.count("lifeboat") == 1
    for f in fc["features"]:
        lon, lat = f["geometry"]["coordinates"]
        assert 12.4 < lon < 12.7 and 35.4 < lat < 35.6  # off Lampedusa
