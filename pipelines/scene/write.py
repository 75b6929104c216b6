"""Write synthetic scenes as real bundles: Cloud-Optimised GeoTIFF + sidecar JSON + truth GeoJSON.

The output is what a real downlinked product looks like to the rest of orbitwatch, so the
reader, tiler and detectors are exercised on genuine GeoTIFFs (rasterio/GDAL), not arrays.

* ``<stem>.tif``: GDAL "COG" driver (tiled 512x512, DEFLATE, internal overviews), north-up
  UTM geotransform, pixel size = spacing, nodata 0 for SAR DN.
* ``<stem>_extended.json``: Capella ``_extended.json`` layout for SAR (same keys/nesting as
  real GEO products), the orbitwatch optical sidecar for optical tiles.
* ``<stem>_truth.geojson``: FeatureCollection of WGS84 Points; ``row``/``col`` are array
  indices (centre of pixel [i, j] is row=i, col=j).
"""

from __future__ import annotations

import json
import logging
import math
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
from rasterio.crs import CRS
from rasterio.io import MemoryFile
from rasterio.shutil import copy as rio_copy
from rasterio.transform import Affine
from rasterio.warp import transform as warp_transform

from pipelines.errors import SceneWriteError
from detectors.synth.optical import SynthOpticalTile
from detectors.synth.sar import SynthSarScene

log = logging.getLogger(__name__)

#: Sentinel-2 L1C style DN: rho = DN * 1e-4 - 0.1 (processing baseline >= 04.00 adds 1000).
S2_SCALE, S2_OFFSET = 1.0e-4, -0.1
#: Landsat Collection 2 L1 reflectance: rho = DN * 2e-5 - 0.1 (REFLECTANCE_MULT/ADD_BAND_x).
L8_SCALE, L8_OFFSET = 2.0e-5, -0.1
KELVIN_SCALE = 0.01


def _iso(dt: datetime) -> str:
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    return dt.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _check_origin(origin_utm: tuple[float, float], epsg: int) -> CRS:
    e, n = origin_utm
    if not (math.isfinite(e) and math.isfinite(n)) or not (100_000 <= e <= 900_000) or not (0 <= n <= 10_000_000):
        raise SceneWriteError(f"origin_utm {origin_utm} is not a plausible UTM easting/northing")
    if not (32601 <= epsg <= 32660 or 32701 <= epsg <= 32760):
        raise SceneWriteError(f"epsg {epsg} is not a WGS84 UTM zone (326xx/327xx)")
    return CRS.from_epsg(epsg)


def _write_cog(path: Path, data: np.ndarray, transform: Affine, crs: CRS, nodata: float | None,
               descriptions: list[str], predictor: int, tags: dict[str, str] | None = None) -> None:
    """Write (bands, rows, cols) as a COG: build in memory, then GDAL CreateCopy with "COG"."""
    count, rows, cols = data.shape
    profile = dict(driver="GTiff", width=cols, height=rows, count=count, dtype=data.dtype.name,
                   crs=crs, transform=transform, nodata=nodata)
    with MemoryFile() as mem:
        with mem.open(**profile) as ds:
            ds.write(data)
            for i, d in enumerate(descriptions, start=1):
                ds.set_band_description(i, d)
            if tags:
                ds.update_tags(**tags)
        with mem.open() as src:
            try:
                rio_copy(src, str(path), driver="COG", compress="DEFLATE", predictor=predictor,
                         blocksize=512, overview_resampling="average", level=9)
            except Exception as exc:  # GDAL without COG: tiled GTiff with overviews
                log.warning("COG driver failed (%s); writing tiled GTiff with overviews", exc)
                rio_copy(src, str(path), driver="GTiff", compress="DEFLATE", predictor=predictor,
                         tiled=True, blockxsize=512, blockysize=512, copy_src_overviews=False)
                with rasterio.open(path, "r+") as dst:
                    dst.build_overviews([2, 4, 8], rasterio.enums.Resampling.average)


def _truth_features(truth: list[dict[str, Any]], transform: Affine, crs: CRS) -> dict[str, Any]:
    """GeoJSON FeatureCollection of WGS84 points at each entry's pixel-centre position."""
    if not truth:
        return {"type": "FeatureCollection", "features": []}
    xs, ys = [], []
    for t in truth:
        x, y = transform @ (float(t["col"]) + 0.5, float(t["row"]) + 0.5)
        xs.append(x)
        ys.append(y)
    lons, lats = warp_transform(crs, CRS.from_epsg(4326), xs, ys)
    feats = []
    for t, lon, lat in zip(truth, lons, lats):
        props = dict(t)
        props["row"], props["col"] = float(t["row"]), float(t["col"])
        feats.append({"type": "Feature", "geometry": {"type": "Point", "coordinates": [round(lon, 8), round(lat, 8)]},
                      "properties": props})
    return {"type": "FeatureCollection", "features": feats}


def write_sar_bundle(out_dir: str | Path, stem: str, scene: SynthSarScene,
                     origin_utm: tuple[float, float], epsg: int = 32633,
                     acquired: datetime | None = None) -> Path:
    """Write a Capella-style GEO bundle; returns the path of ``<stem>.tif``.

    ``origin_utm`` is the upper-left corner of the upper-left pixel. The sidecar's
    geotransform, WKT and timestamps are filled in here so it agrees with the TIFF.
    """
    if scene.dn.dtype != np.uint16 or scene.dn.ndim != 2:
        raise SceneWriteError(f"SAR DN must be a 2-D uint16 array, got {scene.dn.dtype} {scene.dn.shape}")
    crs = _check_origin(origin_utm, epsg)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rows, cols = scene.dn.shape
    s = scene.spacing_m
    transform = Affine(s, 0.0, float(origin_utm[0]), 0.0, -s, float(origin_utm[1]))
    side = json.loads(json.dumps(scene.sidecar))  # deep copy, JSON-clean
    img = side["collect"]["image"]
    if (img["rows"], img["columns"]) != (rows, cols):
        raise SceneWriteError(f"sidecar says {img['rows']}x{img['columns']}, DN is {rows}x{cols}")
    img["image_geometry"]["geotransform"] = list(transform.to_gdal())
    img["image_geometry"]["coordinate_system"]["wkt"] = crs.to_wkt(version="WKT1_GDAL")
    if acquired is not None:
        start = acquired if acquired.tzinfo else acquired.replace(tzinfo=timezone.utc)
        dur = 10.0 if side["collect"]["mode"] == "spotlight" else 5.0
        side["collect"]["start_timestamp"] = _iso(start)
        side["collect"]["stop_timestamp"] = _iso(start + timedelta(seconds=dur))
        img["center_pixel"]["center_time"] = _iso(start + timedelta(seconds=dur / 2))
        side["collect"]["radar"]["prf"][0]["start_timestamps"] = [_iso(start)]
    tif = out / f"{stem}.tif"
    pol = side["collect"]["radar"]["transmit_polarization"] + side["collect"]["radar"]["receive_polarization"]
    _write_cog(tif, scene.dn[None], transform, crs, 0, [pol], predictor=2,
               tags={"SCALE_FACTOR": repr(scene.scale_factor), "RADIOMETRY": "sigma_nought: (DN*scale)^2"})
    (out / f"{stem}_extended.json").write_text(json.dumps(side, indent=2))
    fc = _truth_features(scene.truth, transform, crs)
    fc["properties"] = {"scene": stem, "product": "GEO", "generator": side.get("orbitwatch_synth", {})}
    (out / f"{stem}_truth.geojson").write_text(json.dumps(fc, indent=1))
    log.info("wrote SAR bundle %s (%dx%d)", tif, rows, cols)
    return tif


def write_optical_tile(out_dir: str | Path, stem: str, tile: SynthOpticalTile,
                       origin_utm: tuple[float, float], epsg: int = 32610, dn: bool = False,
                       acquired: datetime | None = None) -> Path:
    """Write a multi-band optical GeoTIFF (band descriptions = STAC common names).

    ``dn=False``: float32 TOA reflectance (lwir11 in kelvin), scale 1 / offset 0.
    ``dn=True``: uint16 with the platform's published scaling - Sentinel-2 L1C
    (1e-4, -0.1) or Landsat C2 L1 (2e-5, -0.1) - and lwir11 at 0.01 K; DN 0 is nodata.
    """
    crs = _check_origin(origin_utm, epsg)
    names = list(tile.bands)
    if not names:
        raise SceneWriteError("optical tile has no bands")
    shape = tile.bands[names[0]].shape
    if any(tile.bands[n].shape != shape for n in names):
        raise SceneWriteError("optical bands differ in shape")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    px = float(tile.sidecar["pixel_size_m"])
    transform = Affine(px, 0.0, float(origin_utm[0]), 0.0, -px, float(origin_utm[1]))
    side = json.loads(json.dumps(tile.sidecar))
    if acquired is not None:
        side["acquired"] = _iso(acquired).replace(".000000Z", "Z")
    if dn:
        s2 = side["platform"].startswith("sentinel-2")
        arr = np.empty((len(names),) + shape, np.uint16)
        for i, n in enumerate(names):
            if n == "lwir11":
                sc, off, unit = KELVIN_SCALE, 0.0, "kelvin"
            else:
                sc, off = (S2_SCALE, S2_OFFSET) if s2 else (L8_SCALE, L8_OFFSET)
                unit = "reflectance"
            v = np.rint((tile.bands[n].astype(np.float64) - off) / sc)
            arr[i] = np.clip(v, 1, 65535).astype(np.uint16)
            side["bands"][n].update({"scale": sc, "offset": off, "unit": unit})
        nodata: float | None = 0
        predictor = 2
    else:
        arr = np.stack([tile.bands[n].astype(np.float32) for n in names])
        nodata = None
        predictor = 3
    tif = out / f"{stem}.tif"
    _write_cog(tif, arr, transform, crs, nodata, names, predictor=predictor)
    (out / f"{stem}_extended.json").write_text(json.dumps(side, indent=2))
    fc = _truth_features(tile.truth, transform, crs)
    fc["properties"] = {"scene": stem, "generator": side.get("orbitwatch_synth", {})}
    (out / f"{stem}_truth.geojson").write_text(json.dumps(fc))
    log.info("wrote optical tile %s (%d bands, %dx%d)", tif, len(names), *shape)
    return tif


def embed_sar_bundle_sparse(src_tif: str | Path, out_dir: str | Path, stem: str, canvas: tuple[int, int],
                            offset: tuple[int, int], block: int = 512) -> Path:
    """Place an existing SAR bundle at ``offset`` (rows, cols) inside a larger, mostly unwritten
    GeoTIFF of ``canvas`` pixels; returns the new ``<stem>.tif`` (sidecar and truth beside it).

    Why: a swath-edge product, or a header claiming a huge image over a few written blocks, is
    a tiled TIFF whose other blocks were never written (GDAL ``SPARSE_OK``). Built from a real
    bundle so the written part is pixel for pixel that bundle (the sparse-scan tests and
    ``benchmarks/sparse_scene.py`` compare the two). ``offset`` must be a multiple of ``block``
    so that the data's blocks hold nothing else.
    """
    src_tif = Path(src_tif)
    rows, cols = canvas
    r0, c0 = offset
    if r0 % block or c0 % block or r0 < 0 or c0 < 0:
        raise SceneWriteError(f"offset {offset} must be non-negative multiples of the block size {block}")
    with rasterio.open(src_tif) as src:
        data = src.read(1)
        crs, tr = src.crs, src.transform
        tags = src.tags()
        desc = src.descriptions[0]
    h, w = data.shape
    if r0 + h > rows or c0 + w > cols:
        raise SceneWriteError(f"a {h} x {w} bundle at {offset} does not fit a {rows} x {cols} canvas")
    transform = tr @ Affine.translation(-c0, -r0)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tif = out / f"{stem}.tif"
    with rasterio.open(tif, "w", driver="GTiff", width=cols, height=rows, count=1, dtype=data.dtype.name,
                       crs=crs, transform=transform, nodata=0, tiled=True, blockxsize=block, blockysize=block,
                       compress="DEFLATE", predictor=2, sparse_ok=True, bigtiff="IF_SAFER") as dst:
        dst.write(data, 1, window=rasterio.windows.Window(c0, r0, w, h))
        dst.set_band_description(1, desc or "")
        dst.update_tags(**tags)
    side = json.loads(src_tif.with_name(src_tif.stem + "_extended.json").read_text())
    img = side["collect"]["image"]
    img["rows"], img["columns"] = rows, cols
    img["image_geometry"]["geotransform"] = list(transform.to_gdal())
    (out / f"{stem}_extended.json").write_text(json.dumps(side, indent=2))
    truth_src = src_tif.with_name(src_tif.stem + "_truth.geojson")
    if truth_src.exists():
        truth = [dict(f["properties"], row=f["properties"]["row"] + r0, col=f["properties"]["col"] + c0)
                 for f in json.loads(truth_src.read_text())["features"]]
        fc = _truth_features(truth, transform, crs)
        fc["properties"] = {"scene": stem, "product": "GEO", "embedded_from": src_tif.name, "offset": [r0, c0]}
        (out / f"{stem}_truth.geojson").write_text(json.dumps(fc, indent=1))
    return tif
