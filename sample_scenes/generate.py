"""Regenerate the committed sample scenes: ``python sample_scenes/generate.py [--out sample_scenes]``.

Every scene is a pure function of its seed and parameters below, so re-running reproduces
the committed truth exactly (and the rasters bit-for-bit on the same numpy/scipy/GDAL).
Locations are real places: SAR scenes off ports where small-boat search and rescue happens,
optical tiles over fire-prone regions; the content (coast, ships, fires) is synthetic.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from rasterio.crs import CRS
from rasterio.warp import transform as warp_transform

from detectors.synth.optical import make_optical_tile, make_trap_only_tile
from detectors.synth.sar import make_sar_scene
from pipelines.scene.write import write_optical_tile, write_sar_bundle

log = logging.getLogger("sample_scenes")

SAR_SCENES: list[dict[str, Any]] = [
    # Lampedusa (IT): harbour on the island's south coast, land to the north.
    dict(stem="lampedusa_geo_050cm", lonlat=(12.606, 35.492), epsg=32633,
         acquired=datetime(2025, 7, 14, 4, 48, 12, tzinfo=timezone.utc),
         kw=dict(seed=101, rows=2048, cols=2048, spacing_m=0.5, enl=4.0, n_vessels=4, n_lifeboats=6,
                 land=True, coast_side="top", land_fraction=0.25, azimuth_window="rectangular",
                 wind_speed_ms=6.0, nodata_border=False)),
    # Calais (FR), Dover Strait: busy shipping, land (and the port) to the south.
    dict(stem="calais_geo_050cm", lonlat=(1.865, 50.985), epsg=32631,
         acquired=datetime(2025, 9, 2, 17, 55, 40, tzinfo=timezone.utc),
         kw=dict(seed=202, rows=1536, cols=1536, spacing_m=0.5, enl=9.0, n_vessels=5, n_lifeboats=4,
                 land=True, coast_side="bottom", land_fraction=0.2, azimuth_window="taylor",
                 wind_speed_ms=10.0, nodata_border=True)),
    # Skala Sykamineas, north Lesbos (GR): stripmap-like 1 m, land to the south.
    dict(stem="lesbos_geo_100cm", lonlat=(26.315, 39.385), epsg=32635,
         acquired=datetime(2025, 10, 3, 8, 12, 5, tzinfo=timezone.utc),
         kw=dict(seed=303, rows=1024, cols=1024, spacing_m=1.0, enl=2.0, n_vessels=3, n_lifeboats=5,
                 land=True, coast_side="bottom", land_fraction=0.3, azimuth_window="rectangular",
                 wind_speed_ms=4.0, nodata_border=True)),
]

OPTICAL_TILES: list[dict[str, Any]] = [
    # Paradise / Butte County, California (Camp Fire area), Landsat-8-like with TIRS.
    dict(stem="butte_ca_landsat8", lonlat=(-121.60, 39.76), epsg=32610, dn=False,
         acquired=datetime(2025, 8, 1, 18, 40, 0, tzinfo=timezone.utc),
         make=make_optical_tile,
         kw=dict(seed=404, rows=384, cols=384, pixel_size_m=30.0, sensor="landsat8", n_fires=4,
                 traps=True, thermal=True, sun_zenith_deg=32.0, n_traps=6)),
    # Dadia forest, Evros (GR), Sentinel-2-like L1C DN at 20 m.
    dict(stem="evros_gr_sentinel2", lonlat=(26.10, 41.10), epsg=32635, dn=True,
         acquired=datetime(2025, 8, 22, 9, 10, 0, tzinfo=timezone.utc),
         make=make_optical_tile,
         kw=dict(seed=505, rows=384, cols=384, pixel_size_m=20.0, sensor="sentinel2", n_fires=5,
                 traps=True, thermal=False, sun_zenith_deg=36.0, n_traps=6)),
    # Seville outskirts (ES): roofs, hot bare soil, reservoirs - fire look-alikes only.
    dict(stem="seville_es_traps_landsat8", lonlat=(-5.95, 37.42), epsg=32630, dn=True,
         acquired=datetime(2025, 7, 20, 10, 55, 0, tzinfo=timezone.utc),
         make=make_trap_only_tile,
         kw=dict(seed=606, rows=256, cols=256, pixel_size_m=30.0, sensor="landsat8", thermal=True,
                 sun_zenith_deg=25.0, n_traps=10)),
]


def _origin(lonlat: tuple[float, float], epsg: int, rows: int, cols: int, px: float) -> tuple[float, float]:
    """UTM upper-left corner so that the scene is centred on lon/lat, snapped to the pixel grid."""
    xs, ys = warp_transform(CRS.from_epsg(4326), CRS.from_epsg(epsg), [lonlat[0]], [lonlat[1]])
    e = round((xs[0] - cols * px / 2) / px) * px
    n = round((ys[0] + rows * px / 2) / px) * px
    return float(e), float(n)


def generate(out: Path) -> list[Path]:
    """Write every sample scene under ``out`` (``sar/`` and ``optical/``); returns the TIFFs."""
    written: list[Path] = []
    for spec in SAR_SCENES:
        kw = spec["kw"]
        scene = make_sar_scene(**kw, return_sigma0=False)
        origin = _origin(spec["lonlat"], spec["epsg"], kw["rows"], kw["cols"], kw["spacing_m"])
        written.append(write_sar_bundle(out / "sar", spec["stem"], scene, origin, spec["epsg"], spec["acquired"]))
    for spec in OPTICAL_TILES:
        kw = spec["kw"]
        tile = spec["make"](**kw)
        origin = _origin(spec["lonlat"], spec["epsg"], kw["rows"], kw["cols"], kw["pixel_size_m"])
        written.append(write_optical_tile(out / "optical", spec["stem"], tile, origin, spec["epsg"],
                                          dn=spec["dn"], acquired=spec["acquired"]))
    return written


def main(argv: list[str] | None = None) -> int:
    """CLI entry point: regenerate and print a one-line summary per scene."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path(__file__).resolve().parent)
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    for tif in generate(args.out):
        truth = json.loads(tif.with_name(tif.stem + "_truth.geojson").read_text())["features"]
        kinds: dict[str, int] = {}
        for f in truth:
            k = f["properties"]["kind"]
            k = f"trap:{f['properties']['trap']}" if k == "trap" else k
            kinds[k] = kinds.get(k, 0) + 1
        log.info("%s  %.2f MB  %s", tif.relative_to(args.out), tif.stat().st_size / 1e6, kinds)
    return 0


if __name__ == "__main__":
    sys.exit(main())
