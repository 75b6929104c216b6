"""Re-package a scene bundle as the products users download: a Capella GeoTIFF with its metadata in
the ImageDescription tag (no sidecar), a STAC item (Capella-style for SAR), a Landsat Collection 2
Level-1 / Level-2 folder, a Sentinel-2 L1C / L2A SAFE.

Why: the readers of :mod:`pipelines.scene.products` must give the detectors the same numbers from
every form, and the only way to test that without gigabytes of real downloads is to write each
form from one scene with the providers' own structure: file names, metadata keys and groups,
DN scaling (``REFLECTANCE_MULT/ADD``, ``K1/K2``, ``QUANTIFICATION_VALUE`` + ``RADIO_ADD_OFFSET`` /
``BOA_ADD_OFFSET``, ``raster:bands``). Used by the tests (from the committed sample scenes) and
usable to make demo products. Values are encoded from the bundle's calibrated values (read
through :func:`pipelines.scene.open_scene`), so a reader that decodes a form correctly gets them
back, up to the DN quantisation of that form (none for the Sentinel-2 sample: its DNs are L1C's).

Not everything of a real product is written: angle files, MTL.xml, QI_DATA, the preview and
DATASTRIP folders are left out (no reader here uses them); what is written has the real names.
"""

from __future__ import annotations

import json
import logging
import math
import re
import shutil
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

import numpy as np
import rasterio

from pipelines.errors import SceneWriteError
from pipelines.scene.acquisition import WRS2_PATH1_LON, WRS2_PATH_STEP
from pipelines.scene.bands import LANDSAT8, SENTINEL2
from pipelines.scene.reader import Scene, open_scene

log = logging.getLogger(__name__)

#: Landsat 8 OLI/TIRS Collection 2 constants (a real LC08 L1TP MTL, 2020).
L1_REFL_MULT, L1_REFL_ADD = 2.0e-05, -0.100000
L1_THERMAL = {10: dict(mult=3.3420e-04, add=0.10000, k1=774.8853, k2=1321.0789),
              11: dict(mult=3.3420e-04, add=0.10000, k1=480.8883, k2=1201.1442)}
L1_RADIANCE = {1: (1.2288e-02, -61.44146), 2: (1.2583e-02, -62.91417), 3: (1.1595e-02, -57.97433),
               4: (9.7775e-03, -48.88763), 5: (5.9833e-03, -29.91660), 6: (1.4880e-03, -7.44003),
               7: (5.0153e-04, -2.50767), 8: (1.1066e-02, -55.32897), 9: (2.3385e-03, -11.69261)}
L2_SR_MULT, L2_SR_ADD = 2.75e-05, -0.2
L2_ST_MULT, L2_ST_ADD = 0.00341802, 149.0
#: QA_PIXEL values: clear with low cloud/shadow/snow/cirrus confidence; fill.
QA_CLEAR, QA_FILL = 21824, 1

S2_QUANT, S2_OFFSET = 10000, -1000


def _iso(dt: datetime, frac: int = 6) -> str:
    s = dt.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")
    return (s[: 20 + frac] if frac else s[:19]) + "Z"


def _read_all(scene: Scene) -> tuple[np.ndarray, np.ndarray]:
    return scene.read(0, 0, scene.rows, scene.cols)


def _centre_lonlat(scene: Scene) -> tuple[float, float]:
    lon, lat = scene.pixel_to_lonlat(np.array([scene.rows / 2.0]), np.array([scene.cols / 2.0]))
    return float(lon[0]), float(lat[0])


def _write_tif(path: Path, arr: np.ndarray, crs: Any, transform: Any, *, nodata: float | None = None,
               descriptions: list[str] | None = None, tags: dict[str, str] | None = None, cog: bool = True) -> Path:
    """A tiled DEFLATE GeoTIFF (COG when ``cog``, as USGS and Capella ship them)."""
    from pipelines.scene.write import _write_cog

    arr = arr if arr.ndim == 3 else arr[None]
    path.parent.mkdir(parents=True, exist_ok=True)
    if cog:
        _write_cog(path, arr, transform, crs, nodata, descriptions or [""] * arr.shape[0],
                   predictor=2 if arr.dtype.kind in "iu" else 3, tags=tags)
        return path
    with rasterio.open(path, "w", driver="GTiff", width=arr.shape[2], height=arr.shape[1], count=arr.shape[0],
                       dtype=arr.dtype.name, crs=crs, transform=transform, nodata=nodata, tiled=True,
                       blockxsize=256, blockysize=256, compress="deflate") as ds:
        ds.write(arr)
        if tags:
            ds.update_tags(**tags)
    return path


# --------------------------------------------------------------------------- Capella


def capella_product_name(doc: dict) -> str:
    """``CAPELLA_C<nn>_<mode>_<type>_<pol>_<start>_<stop>`` from Capella extended metadata."""
    c = doc["collect"]
    digits = re.findall(r"\d+", str(c.get("platform", "")))
    sat = f"C{int(digits[0]):02d}" if digits else "C00"
    mode = {"spotlight": "SP", "stripmap": "SM", "sliding_spotlight": "SS"}.get(str(c.get("mode")), "SP")
    pol = c["radar"]["transmit_polarization"] + c["radar"]["receive_polarization"]
    t0 = re.sub(r"\D", "", c["start_timestamp"])[:14]
    t1 = re.sub(r"\D", "", c["stop_timestamp"])[:14]
    return f"CAPELLA_{sat}_{mode}_{doc.get('product_type', 'GEO')}_{pol}_{t0}_{t1}"


def write_capella_geotiff(bundle_tif: str | Path, out_dir: str | Path, name: str | None = None) -> Path:
    """The SAR bundle as Capella ships it: one COG named by its product id, the extended metadata
    in the TIFF ImageDescription tag, no sidecar. Pixels are copied bit for bit."""
    src = Path(bundle_tif)
    doc = json.loads(src.with_name(src.stem + "_extended.json").read_text())
    name = name or capella_product_name(doc)
    out = Path(out_dir) / f"{name}.tif"
    with rasterio.open(src) as ds:
        arr, crs, tr, nodata, desc = ds.read(), ds.crs, ds.transform, ds.nodata, list(ds.descriptions)
    _write_tif(out, arr, crs, tr, nodata=nodata, descriptions=[d or "" for d in desc],
               tags={"TIFFTAG_IMAGEDESCRIPTION": json.dumps(doc), "TIFFTAG_SOFTWARE": "orbitwatch write_products"})
    return out


# --------------------------------------------------------------------------- STAC


def _stac_item(item_id: str, when: datetime, bbox: list[float], props: dict[str, Any], assets: dict[str, Any],
               extensions: list[str]) -> dict[str, Any]:
    w, s, e, n = bbox
    return {
        "type": "Feature", "stac_version": "1.0.0", "stac_extensions": extensions, "id": item_id,
        "geometry": {"type": "Polygon", "coordinates": [[[w, s], [e, s], [e, n], [w, n], [w, s]]]},
        "bbox": bbox, "properties": {"datetime": _iso(when), **props}, "assets": assets,
        "links": [{"rel": "self", "href": f"./{item_id}.json", "type": "application/json"}],
    }


def _bbox(scene: Scene) -> list[float]:
    r = np.array([0, 0, scene.rows, scene.rows], float)
    c = np.array([0, scene.cols, 0, scene.cols], float)
    lon, lat = scene.pixel_to_lonlat(r, c)
    return [round(float(lon.min()), 7), round(float(lat.min()), 7), round(float(lon.max()), 7), round(float(lat.max()), 7)]


EXT = {k: f"https://stac-extensions.github.io/{k}/v1.{v}.0/schema.json"
       for k, v in (("sar", 0), ("sat", 0), ("view", 0), ("projection", 1), ("eo", 1), ("raster", 1), ("file", 0))}
CAPELLA_BUCKET = "https://capella-open-data.s3.us-west-2.amazonaws.com/data"


def write_capella_stac_item(bundle_tif: str | Path, out_dir: str | Path, *, remote_hrefs: bool = True,
                            metadata_asset: bool = True) -> Path:
    """A Capella open-data style STAC item for a SAR bundle, with its assets beside it.

    As Capella publishes them: asset ``<pol>`` (the COG, role data; metadata also in its
    ImageDescription), ``metadata`` (``_extended.json``), ``thumbnail``; ``remote_hrefs`` keeps the
    hrefs pointing at Capella's bucket (the files are beside the item, as after a download), else
    they are relative. ``metadata_asset=False`` leaves the ``_extended.json`` out.
    """
    src = Path(bundle_tif)
    doc = json.loads(src.with_name(src.stem + "_extended.json").read_text())
    name = capella_product_name(doc)
    out = Path(out_dir)
    tif = write_capella_geotiff(src, out, name)
    side = out / f"{name}_extended.json"
    if metadata_asset:
        side.write_text(json.dumps(doc, indent=2))
    c, img = doc["collect"], doc["collect"]["image"]
    pol = c["radar"]["transmit_polarization"] + c["radar"]["receive_polarization"]
    start = datetime.fromisoformat(c["start_timestamp"].replace("Z", "+00:00"))
    stop = datetime.fromisoformat(c["stop_timestamp"].replace("Z", "+00:00"))
    day = start.strftime("%Y/%-m/%-d")

    def href(fname: str) -> str:
        return f"{CAPELLA_BUCKET}/{day}/{name}/{fname}" if remote_hrefs else f"./{fname}"

    with open_scene(src) as scene:
        bbox = _bbox(scene)
        epsg = scene._header.crs.to_epsg() if scene._header.crs else None
        tr = list(scene._header.transform)[:6]
    assets: dict[str, Any] = {
        pol: {"href": href(tif.name), "type": "image/tiff; application=geotiff; profile=cloud-optimized",
              "title": "Data file", "roles": ["data"]},
        "thumbnail": {"href": href(f"{name}_thumb.png"), "type": "image/png", "title": "Thumbnail image",
                      "roles": ["thumbnail"]},
    }
    if metadata_asset:
        assets["metadata"] = {"href": href(side.name), "type": "application/json", "title": "Extended Metadata",
                              "roles": ["metadata"]}
    cp = img.get("center_pixel", {})
    props = {
        "start_datetime": _iso(start), "end_datetime": _iso(stop), "platform": c["platform"],
        "constellation": "capella", "instruments": [f"{c['platform']}-radar"],
        "sar:instrument_mode": c["mode"], "sar:frequency_band": "X",
        "sar:center_frequency": round(c["radar"]["center_frequency"] / 1e9, 4), "sar:polarizations": [pol],
        "sar:product_type": doc["product_type"], "sar:observation_direction": "right",
        "sar:resolution_range": img.get("ground_range_resolution"),
        "sar:resolution_azimuth": img.get("ground_azimuth_resolution"),
        "sar:pixel_spacing_range": img["pixel_spacing_column"], "sar:pixel_spacing_azimuth": img["pixel_spacing_row"],
        "sar:looks_range": img.get("range_looks"), "sar:looks_azimuth": img.get("azimuth_looks"),
        "sar:looks_equivalent_number": img.get("enl"), "sat:orbit_state": "descending",
        "view:incidence_angle": cp.get("incidence_angle"), "view:look_angle": cp.get("look_angle"),
        "capella:collect_id": c["collect_id"], "proj:epsg": epsg, "proj:shape": [img["rows"], img["columns"]],
        "proj:transform": tr,
    }
    item = _stac_item(name, start, bbox, props, assets,
                      [EXT["sar"], EXT["sat"], EXT["view"], EXT["projection"]])
    path = out / f"{name}.json"
    path.write_text(json.dumps(item, indent=2))
    return path


def write_optical_stac_item(bundle_tif: str | Path, out_dir: str | Path, item_id: str | None = None) -> Path:
    """A STAC item for an optical tile: one COG asset (copied beside the item) whose ``eo:bands``
    give the common names and ``raster:bands`` the sidecar's scale / offset and the nodata."""
    src = Path(bundle_tif)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    side = json.loads(src.with_name(src.stem + "_extended.json").read_text())
    item_id = item_id or f"{src.stem}-item"
    data = out / f"{item_id}.tif"
    shutil.copyfile(src, data)
    with rasterio.open(src) as ds:
        descs, dtype, nodata = list(ds.descriptions), ds.dtypes[0], ds.nodata
    with open_scene(src) as scene:
        bbox, when = _bbox(scene), scene.acquired
        epsg = scene._header.crs.to_epsg()
        tr, shape = list(scene._header.transform)[:6], [scene.rows, scene.cols]
    eo_bands, raster_bands = [], []
    for d in descs:
        b = side.get("bands", {}).get(d, {})
        eo_bands.append({"name": d, "common_name": d, **({"center_wavelength": b["wavelength_um"]}
                                                         if "wavelength_um" in b else {})})
        rb: dict[str, Any] = {"data_type": dtype}
        if "scale" in b:
            rb.update(scale=b["scale"], offset=b.get("offset", 0.0))
        if nodata is not None:
            rb["nodata"] = nodata
        raster_bands.append(rb)
    platform = "landsat-8" if "landsat" in side.get("platform", "") else "sentinel-2a"
    assets = {"data": {"href": f"./{data.name}", "type": "image/tiff; application=geotiff; profile=cloud-optimized",
                       "roles": ["data"], "eo:bands": eo_bands, "raster:bands": raster_bands}}
    props = {"platform": platform, "gsd": side.get("pixel_size_m"), "proj:epsg": epsg, "proj:shape": shape,
             "proj:transform": tr, "view:sun_elevation": 90.0 - side.get("sun_zenith_deg", 0.0)}
    item = _stac_item(item_id, when, bbox, props, assets, [EXT["eo"], EXT["raster"], EXT["projection"], EXT["view"]])
    path = out / f"{item_id}.json"
    path.write_text(json.dumps(item, indent=2))
    return path


def write_landsat_stac_item(mtl: str | Path, out_dir: str | Path | None = None, with_mtl: bool = False) -> Path:
    """A USGS-style item for a Landsat Collection 2 Level-2 folder: one asset per band file
    (``eo:bands`` + ``raster:bands`` scale/offset from the MTL) and ``qa_pixel``; ``with_mtl``
    adds the ``mtl.json`` asset (how USGS's own items carry it)."""
    from pipelines.scene.products.landsat import open_landsat

    mtl = Path(mtl)
    scene = open_landsat(mtl)
    out = Path(out_dir) if out_dir is not None else mtl.parent
    out.mkdir(parents=True, exist_ok=True)
    assets: dict[str, Any] = {}
    for s in scene.sources:
        cal = s.calibration
        rb = {"data_type": "uint16", "nodata": 0, "scale": getattr(cal, "scale", None),
              "offset": getattr(cal, "offset", None)}
        key = s.path.name.split("_")[-1].split(".")[0].lower()
        key = {"b10": "lwir11"}.get(key, s.name) if s.name.startswith("lwir") else s.name
        assets[key] = {"href": _rel(s.path, out), "type": "image/tiff; application=geotiff; profile=cloud-optimized",
                       "roles": ["data"], "eo:bands": [{"name": s.path.stem.split("_")[-1], "common_name": s.name}],
                       "raster:bands": [rb]}
    for q in scene.quality:
        assets["qa_pixel"] = {"href": _rel(q.path, out), "type": "image/tiff; application=geotiff",
                              "roles": ["cloud", "cloud-shadow", "snow-ice", "water-mask"]}
    if with_mtl:
        assets["mtl.json"] = {"href": _rel(mtl, out), "type": "application/json", "roles": ["metadata"]}
    props = {"platform": "landsat-8", "instruments": ["oli", "tirs"], "proj:epsg": scene.grid.crs.to_epsg(),
             "landsat:scene_id": scene.stem, "view:sun_elevation": (scene.metadata or {}).get("sun_elevation_deg")}
    item = _stac_item(scene.stem, scene.acquired, _bbox(scene), props, assets,
                      [EXT["eo"], EXT["raster"], EXT["projection"], EXT["view"]])
    scene.close()
    path = out / f"{scene.stem}_stac.json"
    path.write_text(json.dumps(item, indent=2))
    return path


def _rel(path: Path, start: Path) -> str:
    import os

    return "./" + os.path.relpath(path, start).replace(os.sep, "/")


def write_stac_catalog(out_dir: str | Path, items: list[Path], catalog_id: str = "orbitwatch-products") -> Path:
    """A self-contained local catalog (``catalog.json``) linking ``items`` (relative hrefs)."""
    out = Path(out_dir)
    links = [{"rel": "root", "href": "./catalog.json", "type": "application/json"}]
    links += [{"rel": "item", "href": _rel(Path(i), out), "type": "application/geo+json"} for i in items]
    cat = {"type": "Catalog", "stac_version": "1.0.0", "id": catalog_id, "description": "orbitwatch test catalog",
           "links": links}
    path = out / "catalog.json"
    path.write_text(json.dumps(cat, indent=2))
    return path


# --------------------------------------------------------------------------- Landsat


def _wrs(lon: float, lat: float) -> tuple[int, int]:
    """A plausible WRS-2 path/row for a scene centre (names only: not an exact WRS lookup)."""
    path = int(round((WRS2_PATH1_LON - lon) / WRS2_PATH_STEP)) % 233 + 1
    row = int(min(max(round(60 - lat / 1.44), 1), 248))
    return path, row


def _odl(body: dict[str, Any]) -> str:
    """MTL.txt text for an MTL.json body (strings quoted, numbers and dates bare, as USGS writes)."""
    lines = ["GROUP = LANDSAT_METADATA_FILE"]
    for group, fields in body.items():
        lines.append(f"  GROUP = {group}")
        for k, v in fields.items():
            bare = re.fullmatch(r"-?\d+(\.\d+)?(E[-+]\d+)?|\d{4}-\d{2}-\d{2}", str(v)) is not None
            lines.append(f"    {k} = {v}" if bare else f'    {k} = "{v}"')
        lines.append(f"  END_GROUP = {group}")
    lines += ["END_GROUP = LANDSAT_METADATA_FILE", "END", ""]
    return "\n".join(lines)


def write_landsat_c2(bundle_tif: str | Path, out_dir: str | Path, *, level: str = "L1", mtl_format: str = "json",
                     qa: np.ndarray | None = None) -> Path:
    """A Landsat 8 Collection 2 Level-1 (L1TP) or Level-2 (L2SP) product folder from an optical
    Landsat-like bundle; returns the MTL path (``_MTL.json`` or ``_MTL.txt``, ``mtl_format``).

    Reflective bands are encoded to DN with the real constants (L1: ``REFLECTANCE_MULT`` 2e-5,
    ``ADD`` -0.1, corrected by the sun elevation 90 - ``sun_zenith_deg``; L2: 2.75e-5 / -0.2),
    ``lwir11`` to B10 (L1: radiance then K1/K2; L2: ST_B10), and B9 / B11 / B8 are made up
    (cirrus 0.002, lwir11 - 1.5 K, red at 15 m). ``qa``: QA_PIXEL values to write (default clear,
    fill where the bundle has no data).
    """
    if level not in ("L1", "L2"):
        raise SceneWriteError(f"level must be L1 or L2, got {level!r}")
    src = Path(bundle_tif)
    side = json.loads(src.with_name(src.stem + "_extended.json").read_text())
    scene = open_scene(src)
    data, valid = _read_all(scene)
    names = list(scene.bands)
    need = {"coastal", "blue", "green", "red", "nir08", "swir16", "swir22"}
    if not need <= set(names):
        raise SceneWriteError(f"{src.name} lacks Landsat OLI bands {sorted(need - set(names))}")
    crs, tr = scene._header.crs, scene._header.transform
    lon, lat = _centre_lonlat(scene)
    wrs_path, wrs_row = _wrs(lon, lat)
    when = scene.acquired
    proc = when + timedelta(days=9)
    pid = (f"LC08_{'L1TP' if level == 'L1' else 'L2SP'}_{wrs_path:03d}{wrs_row:03d}_{when:%Y%m%d}_{proc:%Y%m%d}"
           f"_02_T1")
    folder = Path(out_dir) / pid
    folder.mkdir(parents=True, exist_ok=True)
    sun_elev = 90.0 - float(side.get("sun_zenith_deg", 30.0))
    sin_e = math.sin(math.radians(sun_elev))
    rows, cols = scene.rows, scene.cols
    refl = {n: data[names.index(n)].astype(np.float64) for n in names}
    refl["cirrus"] = np.full((rows, cols), 0.002)
    bt = data[names.index("lwir11")].astype(np.float64) if "lwir11" in names else np.full((rows, cols), 295.0)
    bts = {10: bt, 11: bt - 1.5}

    def dn(v: np.ndarray) -> np.ndarray:
        q = np.clip(np.rint(v), 1, 65535).astype(np.uint16)
        q[~valid] = 0
        return q

    files: dict[str, str] = {}
    sr = "SR_" if level == "L2" else ""
    bands = (1, 2, 3, 4, 5, 6, 7) + ((8, 9) if level == "L1" else ())
    for n in bands:
        name = LANDSAT8[f"B{n}"]
        fname = f"{pid}_{sr}B{n}.TIF"
        if n == 8:  # panchromatic, 15 m: the red band twice as fine (not read by orbitwatch)
            q = dn((refl["red"] * sin_e - L1_REFL_ADD) / L1_REFL_MULT)
            from affine import Affine

            _write_tif(folder / fname, np.repeat(np.repeat(q, 2, 0), 2, 1), crs,
                       tr @ Affine.scale(0.5), cog=False)
        else:
            v = refl[name]
            q = dn((v * sin_e - L1_REFL_ADD) / L1_REFL_MULT) if level == "L1" else dn((v - L2_SR_ADD) / L2_SR_MULT)
            _write_tif(folder / fname, q, crs, tr, nodata=0 if level == "L2" else None, cog=False)
        files[f"FILE_NAME_BAND_{n}"] = fname
    if level == "L1":
        for n in (10, 11):
            c = L1_THERMAL[n]
            radiance = c["k1"] / (np.exp(c["k2"] / bts[n]) - 1.0)
            fname = f"{pid}_B{n}.TIF"
            _write_tif(folder / fname, dn((radiance - c["add"]) / c["mult"]), crs, tr, cog=False)
            files[f"FILE_NAME_BAND_{n}"] = fname
    else:
        fname = f"{pid}_ST_B10.TIF"
        _write_tif(folder / fname, dn((bts[10] - L2_ST_ADD) / L2_ST_MULT), crs, tr, nodata=0, cog=False)
        files["FILE_NAME_BAND_ST_B10"] = fname
    qa_arr = np.where(valid, QA_CLEAR, QA_FILL).astype(np.uint16) if qa is None else qa.astype(np.uint16)
    _write_tif(folder / f"{pid}_QA_PIXEL.TIF", qa_arr, crs, tr, nodata=1, cog=False)
    _write_tif(folder / f"{pid}_QA_RADSAT.TIF", np.zeros((rows, cols), np.uint16), crs, tr, cog=False)
    files["FILE_NAME_QUALITY_L1_PIXEL"] = f"{pid}_QA_PIXEL.TIF"
    files["FILE_NAME_QUALITY_L1_RADIOMETRIC_SATURATION"] = f"{pid}_QA_RADSAT.TIF"
    files["FILE_NAME_ANGLE_COEFFICIENT"] = f"{pid}_ANG.txt"
    files["FILE_NAME_METADATA_ODL"] = f"{pid}_MTL.txt"
    files["FILE_NAME_METADATA_XML"] = f"{pid}_MTL.xml"
    utm_zone = crs.to_epsg() % 100
    ul_x, ul_y = tr.c, tr.f
    contents = {"ORIGIN": "Image courtesy of the U.S. Geological Survey",
                "DIGITAL_OBJECT_IDENTIFIER": "https://doi.org/10.5066/P975CC9B" if level == "L1"
                else "https://doi.org/10.5066/P9OGBGM6",
                "LANDSAT_PRODUCT_ID": pid, "PROCESSING_LEVEL": "L1TP" if level == "L1" else "L2SP",
                "COLLECTION_NUMBER": "02", "COLLECTION_CATEGORY": "T1", "OUTPUT_FORMAT": "GEOTIFF", **files}
    for k in list(files):
        if k.startswith("FILE_NAME_BAND_"):
            contents[k.replace("FILE_NAME_", "DATA_TYPE_")] = "UINT16"
    image_attrs = {"SPACECRAFT_ID": "LANDSAT_8", "SENSOR_ID": "OLI_TIRS", "WRS_TYPE": "2",
                   "WRS_PATH": f"{wrs_path}", "WRS_ROW": f"{wrs_row}", "NADIR_OFFNADIR": "NADIR",
                   "TARGET_WRS_PATH": f"{wrs_path}", "TARGET_WRS_ROW": f"{wrs_row}",
                   "DATE_ACQUIRED": f"{when:%Y-%m-%d}", "SCENE_CENTER_TIME": f"{when:%H:%M:%S}.{when.microsecond:06d}0Z",
                   "STATION_ID": "LGN", "CLOUD_COVER": "0.00", "CLOUD_COVER_LAND": "0.00",
                   "IMAGE_QUALITY_OLI": "9", "IMAGE_QUALITY_TIRS": "9", "ROLL_ANGLE": "-0.001",
                   "SUN_AZIMUTH": "135.00000000", "SUN_ELEVATION": f"{sun_elev:.8f}", "EARTH_SUN_DISTANCE": "1.0131000"}
    proj = {"MAP_PROJECTION": "UTM", "DATUM": "WGS84", "ELLIPSOID": "WGS84", "UTM_ZONE": f"{utm_zone}",
            "GRID_CELL_SIZE_PANCHROMATIC": "15.00", "GRID_CELL_SIZE_REFLECTIVE": "30.00", "GRID_CELL_SIZE_THERMAL": "30.00",
            "PANCHROMATIC_LINES": f"{rows * 2}", "PANCHROMATIC_SAMPLES": f"{cols * 2}",
            "REFLECTIVE_LINES": f"{rows}", "REFLECTIVE_SAMPLES": f"{cols}", "THERMAL_LINES": f"{rows}",
            "THERMAL_SAMPLES": f"{cols}", "ORIENTATION": "NORTH_UP",
            "CORNER_UL_PROJECTION_X_PRODUCT": f"{ul_x:.3f}", "CORNER_UL_PROJECTION_Y_PRODUCT": f"{ul_y:.3f}",
            "CORNER_LR_PROJECTION_X_PRODUCT": f"{ul_x + cols * tr.a:.3f}",
            "CORNER_LR_PROJECTION_Y_PRODUCT": f"{ul_y + rows * tr.e:.3f}"}
    rescaling: dict[str, str] = {}
    for n in range(1, 12):
        if n <= 9:
            rescaling[f"RADIANCE_MULT_BAND_{n}"] = f"{L1_RADIANCE[n][0]:.4E}"
        else:
            rescaling[f"RADIANCE_MULT_BAND_{n}"] = f"{L1_THERMAL[n]['mult']:.4E}"
    for n in range(1, 12):
        rescaling[f"RADIANCE_ADD_BAND_{n}"] = (f"{L1_RADIANCE[n][1]:.5f}" if n <= 9 else f"{L1_THERMAL[n]['add']:.5f}")
    for n in range(1, 10):
        rescaling[f"REFLECTANCE_MULT_BAND_{n}"] = f"{L1_REFL_MULT:.4E}"
    for n in range(1, 10):
        rescaling[f"REFLECTANCE_ADD_BAND_{n}"] = f"{L1_REFL_ADD:.6f}"
    thermal = {f"{k}_CONSTANT_BAND_{n}": f"{L1_THERMAL[n][k.lower()]:.4f}" for n in (10, 11) for k in ("K1", "K2")}
    body: dict[str, Any] = {"PRODUCT_CONTENTS": contents, "IMAGE_ATTRIBUTES": image_attrs,
                            "PROJECTION_ATTRIBUTES": proj}
    if level == "L2":
        body["LEVEL2_PROCESSING_RECORD"] = {"ORIGIN": contents["ORIGIN"], "LANDSAT_PRODUCT_ID": pid,
                                            "PROCESSING_LEVEL": "L2SP",
                                            "DATE_PRODUCT_GENERATED": f"{proc:%Y-%m-%dT%H:%M:%SZ}",
                                            "ALGORITHM_SOURCE_SURFACE_REFLECTANCE": "LaSRC_1.6.0",
                                            "ALGORITHM_SOURCE_SURFACE_TEMPERATURE": "st_1.5.0"}
        srp: dict[str, str] = {}
        for n in range(1, 8):
            srp[f"REFLECTANCE_MAXIMUM_BAND_{n}"] = "1.602213"
            srp[f"REFLECTANCE_MINIMUM_BAND_{n}"] = "-0.199972"
        for n in range(1, 8):
            srp[f"REFLECTANCE_MULT_BAND_{n}"] = f"{L2_SR_MULT:.2e}"
        for n in range(1, 8):
            srp[f"REFLECTANCE_ADD_BAND_{n}"] = f"{L2_SR_ADD}"
        body["LEVEL2_SURFACE_REFLECTANCE_PARAMETERS"] = srp
        body["LEVEL2_SURFACE_TEMPERATURE_PARAMETERS"] = {
            "TEMPERATURE_MAXIMUM_BAND_ST_B10": "372.999941", "TEMPERATURE_MINIMUM_BAND_ST_B10": "149.003418",
            "TEMPERATURE_MULT_BAND_ST_B10": f"{L2_ST_MULT}", "TEMPERATURE_ADD_BAND_ST_B10": f"{L2_ST_ADD}"}
    body["LEVEL1_PROCESSING_RECORD"] = {"ORIGIN": contents["ORIGIN"], "LANDSAT_PRODUCT_ID": pid.replace("L2SP", "L1TP"),
                                        "PROCESSING_LEVEL": "L1TP", "PROCESSING_SOFTWARE_VERSION": "LPGS_15.3.1c"}
    body["LEVEL1_RADIOMETRIC_RESCALING"] = rescaling
    body["LEVEL1_THERMAL_CONSTANTS"] = thermal
    body["LEVEL1_PROJECTION_PARAMETERS"] = {"MAP_PROJECTION": "UTM", "DATUM": "WGS84", "ELLIPSOID": "WGS84",
                                            "UTM_ZONE": f"{utm_zone}", "ORIENTATION": "NORTH_UP",
                                            "RESAMPLING_OPTION": "CUBIC_CONVOLUTION"}
    (folder / f"{pid}_MTL.txt").write_text(_odl(body))
    if mtl_format == "json":
        (folder / f"{pid}_MTL.json").write_text(json.dumps({"LANDSAT_METADATA_FILE": body}, indent=2))
        mtl = folder / f"{pid}_MTL.json"
    else:
        mtl = folder / f"{pid}_MTL.txt"
    scene.close()
    log.info("wrote Landsat C2 %s folder %s", level, folder)
    return mtl


# --------------------------------------------------------------------------- Sentinel-2


def _mgrs_tile(lon: float, lat: float, epsg: int) -> str:
    """A plausible MGRS tile id (zone + latitude band + two letters; names only)."""
    bands = "CDEFGHJKLMNPQRSTUVWXX"
    band = bands[int(min(max((lat + 80) // 8, 0), 20))]
    return f"{epsg % 100:02d}{band}LF"


_S2_XML_NS = {"L1C": "https://psd-14.sentinel2.eo.esa.int/PSD/User_Product_Level-1C.xsd",
              "L2A": "https://psd-14.sentinel2.eo.esa.int/PSD/User_Product_Level-2A.xsd"}
_S2_TL_NS = {"L1C": "https://psd-14.sentinel2.eo.esa.int/PSD/S2_PDI_Level-1C_Tile_Metadata.xsd",
             "L2A": "https://psd-14.sentinel2.eo.esa.int/PSD/S2_PDI_Level-2A_Tile_Metadata.xsd"}
_S2_WAVE = {"B01": 442.7, "B02": 492.4, "B03": 559.8, "B04": 664.6, "B05": 704.1, "B06": 740.5, "B07": 782.8,
            "B08": 832.8, "B8A": 864.7, "B09": 945.1, "B10": 1373.5, "B11": 1613.7, "B12": 2202.4}
_S2_NATIVE_M = {"B01": 60, "B02": 10, "B03": 10, "B04": 10, "B05": 20, "B06": 20, "B07": 20, "B08": 10, "B8A": 20,
                "B09": 60, "B10": 60, "B11": 20, "B12": 20}
_S2_ESUN = {"B01": 1884.69, "B02": 1959.66, "B03": 1823.24, "B04": 1512.06, "B05": 1424.64, "B06": 1287.61,
            "B07": 1162.08, "B08": 1041.63, "B8A": 955.32, "B09": 812.92, "B10": 367.15, "B11": 245.59, "B12": 85.25}


def write_sentinel2_safe(bundle_tif: str | Path, out_dir: str | Path, *, level: str = "L1C", baseline: str = "05.09",
                         fmt: str = "jp2", offsets: bool | None = None, scl: np.ndarray | None = None) -> Path:
    """A Sentinel-2 L1C / L2A SAFE folder from a Sentinel-2-like 20 m bundle; returns the SAFE path.

    Reflectance is encoded as ``DN = rho * 10000 - offset`` (offset -1000 from baseline 04.00;
    ``offsets`` forces the offset list in or out whatever the baseline). 10 m bands are the 20 m
    values repeated 2 x 2 (so their 2 x 2 mean is exact), 60 m bands the 3 x 3 mean; B10 (cirrus,
    L1C only) is made up (0.002). ``fmt`` "jp2" (JP2OpenJPEG, lossless) or "tif". ``scl``: the
    L2A scene classification at 20 m (default 4, vegetation; 0 where no data).
    """
    if level not in ("L1C", "L2A"):
        raise SceneWriteError(f"level must be L1C or L2A, got {level!r}")
    src = Path(bundle_tif)
    side = json.loads(src.with_name(src.stem + "_extended.json").read_text())
    scene = open_scene(src)
    if abs(scene.spacing_m[0] - 20.0) > 1e-6:
        raise SceneWriteError(f"{src.name} is at {scene.spacing_m[0]} m; a SAFE is written from a 20 m bundle")
    data, valid = _read_all(scene)
    names = list(scene.bands)
    crs, tr = scene._header.crs, scene._header.transform
    rows, cols = scene.rows, scene.cols
    if rows % 3 or cols % 3:
        raise SceneWriteError(f"{rows} x {cols} is not a multiple of 3 (the 60 m grid)")
    lon, lat = _centre_lonlat(scene)
    tile = _mgrs_tile(lon, lat, crs.to_epsg())
    when = scene.acquired  # the tile's SENSING_TIME; the datatake started a little earlier
    start = when - timedelta(seconds=3.217)
    sensing = f"{start:%Y%m%dT%H%M%S}"
    gen = when + timedelta(hours=3, minutes=12, seconds=47)
    with_offsets = float(baseline) >= 4.0 if offsets is None else offsets
    add = S2_OFFSET if with_offsets else 0
    orbit = (when.day * 7) % 143 + 1
    safe_name = (f"S2B_MSI{level}_{sensing}_N{baseline.replace('.', '')}_R{orbit:03d}_T{tile}_"
                 f"{gen:%Y%m%dT%H%M%S}.SAFE")
    safe = Path(out_dir) / safe_name
    granule = f"{level}_T{tile}_A0{when:%j}{when.year % 100:02d}_{when:%Y%m%dT%H%M%S}"
    img = safe / "GRANULE" / granule / "IMG_DATA"
    img.mkdir(parents=True, exist_ok=True)
    for d in ("AUX_DATA", "DATASTRIP", "HTML", "rep_info"):
        (safe / d).mkdir(exist_ok=True)
    (safe / "GRANULE" / granule / "QI_DATA").mkdir(exist_ok=True)
    (safe / "GRANULE" / granule / "AUX_DATA").mkdir(exist_ok=True)
    refl: dict[str, np.ndarray] = {}
    for code, cname in SENTINEL2.items():
        if cname in names:
            refl[code] = data[names.index(cname)].astype(np.float64)
    refl.setdefault("B10", np.full((rows, cols), 0.002))
    missing = [b for b in ("B11", "B12") if b not in refl]
    if missing:
        raise SceneWriteError(f"{src.name} lacks Sentinel-2 bands {missing}")
    from affine import Affine

    def at(res: int, v: np.ndarray) -> np.ndarray:
        if res == 10:
            return np.repeat(np.repeat(v, 2, 0), 2, 1)
        if res == 60:
            return v.reshape(rows // 3, 3, cols // 3, 3).mean(axis=(1, 3))
        return v

    def valid_at(res: int) -> np.ndarray:
        if res == 10:
            return np.repeat(np.repeat(valid, 2, 0), 2, 1)
        if res == 60:
            return valid.reshape(rows // 3, 3, cols // 3, 3).all(axis=(1, 3))
        return valid

    def write_band(rel: str, res: int, arr: np.ndarray, ok: np.ndarray) -> str:
        q = np.clip(np.rint(arr * S2_QUANT - add), 1, 65535).astype(np.uint16)
        q[~ok] = 0
        path = safe / (rel + (".jp2" if fmt == "jp2" else ".tif"))
        path.parent.mkdir(parents=True, exist_ok=True)
        t = tr @ Affine.scale(res / 20.0)
        if fmt == "jp2":
            with rasterio.open(path, "w", driver="JP2OpenJPEG", width=q.shape[1], height=q.shape[0], count=1,
                               dtype="uint16", crs=crs, transform=t, QUALITY=100, REVERSIBLE="YES",
                               RESOLUTIONS=1) as ds:
                ds.write(q[None])
        else:
            _write_tif(path, q, crs, t, cog=False)
        return rel

    native = _S2_NATIVE_M
    image_files: list[str] = []
    base = f"GRANULE/{granule}/IMG_DATA"
    codes = [c for c in native if c in refl and not (level == "L2A" and c == "B10")]
    if level == "L1C":
        for c in codes:
            image_files.append(write_band(f"{base}/T{tile}_{sensing}_{c}", native[c], at(native[c], refl[c]),
                                          valid_at(native[c])))
    else:
        # ESA's R20m and R60m hold every band but B08 (and B10), resampled; R10m the 10 m bands.
        def at20(c: str) -> tuple[np.ndarray, np.ndarray]:
            if native[c] != 60:
                return refl[c], valid
            return (np.repeat(np.repeat(at(60, refl[c]), 3, 0), 3, 1),
                    np.repeat(np.repeat(valid_at(60), 3, 0), 3, 1))

        for c in [c for c in codes if native[c] == 10]:
            image_files.append(write_band(f"{base}/R10m/T{tile}_{sensing}_{c}_10m", 10, at(10, refl[c]),
                                          valid_at(10)))
        for c in [c for c in codes if c != "B08"]:
            v, ok = at20(c)
            image_files.append(write_band(f"{base}/R20m/T{tile}_{sensing}_{c}_20m", 20, v, ok))
            image_files.append(write_band(f"{base}/R60m/T{tile}_{sensing}_{c}_60m", 60, at(60, refl[c]),
                                          valid_at(60)))
        scl_arr = np.where(valid, 4, 0).astype(np.uint8) if scl is None else scl.astype(np.uint8)
        for res in (20, 60):
            arr = scl_arr if res == 20 else scl_arr[1::3, 1::3]
            path = safe / f"{base}/R{res}m/T{tile}_{sensing}_SCL_{res}m" \
                f"{'.jp2' if fmt == 'jp2' else '.tif'}"
            t = tr @ Affine.scale(res / 20.0)
            if fmt == "jp2":
                with rasterio.open(path, "w", driver="JP2OpenJPEG", width=arr.shape[1], height=arr.shape[0], count=1,
                                   dtype="uint8", crs=crs, transform=t, QUALITY=100, REVERSIBLE="YES",
                                   RESOLUTIONS=1) as ds:
                    ds.write(arr[None])
            else:
                _write_tif(path, arr, crs, t, cog=False)
            image_files.append(f"{base}/R{res}m/T{tile}_{sensing}_SCL_{res}m")
    _write_s2_mtd(safe, level, baseline, with_offsets, start, gen, safe_name, image_files, granule)
    _write_s2_tl(safe / "GRANULE" / granule / "MTD_TL.xml", level, tile, when, crs, tr, rows, cols,
                 float(side.get("sun_zenith_deg", 35.0)), granule)
    (safe / "manifest.safe").write_text(
        '<?xml version="1.0" encoding="UTF-8"?>\n<xfdu:XFDU xmlns:xfdu="urn:ccsds:schema:xfdu:1" '
        f'version="esa/safe/sentinel/1.1/sentinel-2/msi/archive_{level.lower()}_user_product">\n'
        '  <informationPackageMap><xfdu:contentUnit unitType="Product_Level-1C" textInfo="SENTINEL-2 MSI"/>'
        '</informationPackageMap>\n</xfdu:XFDU>\n')
    scene.close()
    log.info("wrote Sentinel-2 %s SAFE %s", level, safe)
    return safe


def _write_s2_mtd(safe: Path, level: str, baseline: str, with_offsets: bool, when: datetime, gen: datetime,
                  safe_name: str, image_files: list[str], granule: str) -> None:
    ns = _S2_XML_NS[level]
    root = "Level-1C_User_Product" if level == "L1C" else "Level-2A_User_Product"
    ptype = "S2MSI1C" if level == "L1C" else "S2MSI2A"
    datastrip = f"S2B_OPER_MSI_{level}_DS_2BPS_{gen:%Y%m%dT%H%M%S}_S{when:%Y%m%dT%H%M%S}_N{baseline}"
    files = "\n".join(f"              <IMAGE_FILE>{escape(f)}</IMAGE_FILE>" for f in image_files)
    bids = list(_S2_WAVE)
    if level == "L1C":
        quant = '        <QUANTIFICATION_VALUE unit="none">10000</QUANTIFICATION_VALUE>'
        offs = ("        <Radiometric_Offset_List>\n" + "\n".join(
            f'          <RADIO_ADD_OFFSET band_id="{i}">{S2_OFFSET}</RADIO_ADD_OFFSET>' for i in range(13))
                + "\n        </Radiometric_Offset_List>") if with_offsets else ""
    else:
        quant = ("        <QUANTIFICATION_VALUES_LIST>\n"
                 '          <BOA_QUANTIFICATION_VALUE unit="none">10000</BOA_QUANTIFICATION_VALUE>\n'
                 '          <AOT_QUANTIFICATION_VALUE unit="none">1000.0</AOT_QUANTIFICATION_VALUE>\n'
                 '          <WVP_QUANTIFICATION_VALUE unit="cm">1000.0</WVP_QUANTIFICATION_VALUE>\n'
                 "        </QUANTIFICATION_VALUES_LIST>")
        offs = ("        <BOA_ADD_OFFSET_VALUES_LIST>\n" + "\n".join(
            f'          <BOA_ADD_OFFSET band_id="{i}">{S2_OFFSET}</BOA_ADD_OFFSET>' for i in range(13))
                + "\n        </BOA_ADD_OFFSET_VALUES_LIST>") if with_offsets else ""
    spectral = "\n".join(
        f'          <Spectral_Information bandId="{i}" physicalBand="{b.replace("B0", "B")}">\n'
        f'            <RESOLUTION>{_S2_NATIVE_M[b]}</RESOLUTION>\n'
        f'            <Wavelength><CENTRAL unit="nm">{_S2_WAVE[b]}</CENTRAL></Wavelength>\n'
        "          </Spectral_Information>" for i, b in enumerate(bids))
    irr = "\n".join(f'            <SOLAR_IRRADIANCE bandId="{i}" unit="W/m²/µm">{_S2_ESUN[b]}</SOLAR_IRRADIANCE>'
                    for i, b in enumerate(bids))
    text = f"""<?xml version="1.0" encoding="UTF-8"?>
<n1:{root} xmlns:n1="{ns}" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">
  <n1:General_Info>
    <Product_Info>
      <PRODUCT_START_TIME>{_iso(when, 3)}</PRODUCT_START_TIME>
      <PRODUCT_STOP_TIME>{_iso(when, 3)}</PRODUCT_STOP_TIME>
      <PRODUCT_URI>{safe_name}</PRODUCT_URI>
      <PROCESSING_LEVEL>Level-{level[1:]}</PROCESSING_LEVEL>
      <PRODUCT_TYPE>{ptype}</PRODUCT_TYPE>
      <PROCESSING_BASELINE>{baseline}</PROCESSING_BASELINE>
      <PRODUCT_DOI>https://doi.org/10.5270/S2_-742ikth</PRODUCT_DOI>
      <GENERATION_TIME>{_iso(gen, 6)}</GENERATION_TIME>
      <PREVIEW_IMAGE_URL>Not applicable</PREVIEW_IMAGE_URL>
      <Datatake datatakeIdentifier="GS2B_{when:%Y%m%dT%H%M%S}_000000_N{baseline}">
        <SPACECRAFT_NAME>Sentinel-2B</SPACECRAFT_NAME>
        <DATATAKE_TYPE>INS-NOBS</DATATAKE_TYPE>
        <DATATAKE_SENSING_START>{_iso(when, 3)}</DATATAKE_SENSING_START>
        <SENSING_ORBIT_NUMBER>{(when.day * 7) % 143 + 1}</SENSING_ORBIT_NUMBER>
        <SENSING_ORBIT_DIRECTION>DESCENDING</SENSING_ORBIT_DIRECTION>
      </Datatake>
      <Query_Options completeSingleTile="true">
        <PRODUCT_FORMAT>SAFE_COMPACT</PRODUCT_FORMAT>
      </Query_Options>
      <Product_Organisation>
        <Granule_List>
          <Granule datastripIdentifier="{datastrip}" granuleIdentifier="{granule}" imageFormat="JPEG2000">
{files}
          </Granule>
        </Granule_List>
      </Product_Organisation>
    </Product_Info>
    <Product_Image_Characteristics>
      <Special_Values>
        <SPECIAL_VALUE_TEXT>NODATA</SPECIAL_VALUE_TEXT>
        <SPECIAL_VALUE_INDEX>0</SPECIAL_VALUE_INDEX>
      </Special_Values>
      <Special_Values>
        <SPECIAL_VALUE_TEXT>SATURATED</SPECIAL_VALUE_TEXT>
        <SPECIAL_VALUE_INDEX>65535</SPECIAL_VALUE_INDEX>
      </Special_Values>
{quant}
{offs}
      <Reflectance_Conversion>
        <U>1.01295981567224</U>
        <Solar_Irradiance_List>
{irr}
        </Solar_Irradiance_List>
      </Reflectance_Conversion>
      <Spectral_Information_List>
{spectral}
      </Spectral_Information_List>
      <REFERENCE_BAND>1</REFERENCE_BAND>
    </Product_Image_Characteristics>
  </n1:General_Info>
  <n1:Geometric_Info/>
  <n1:Auxiliary_Data_Info/>
  <n1:Quality_Indicators_Info/>
</n1:{root}>
"""
    (safe / ("MTD_MSIL1C.xml" if level == "L1C" else "MTD_MSIL2A.xml")).write_text(text, encoding="utf-8")


def _write_s2_tl(path: Path, level: str, tile: str, when: datetime, crs: Any, tr: Any, rows: int, cols: int,
                 sun_zenith: float, granule: str) -> None:
    ns = _S2_TL_NS[level]
    root = "Level-1C_Tile_ID" if level == "L1C" else "Level-2A_Tile_ID"
    epsg = crs.to_epsg()
    sizes = "\n".join(
        f'      <Size resolution="{r}">\n        <NROWS>{rows * 20 // r}</NROWS>\n        <NCOLS>{cols * 20 // r}</NCOLS>\n'
        "      </Size>" for r in (10, 20, 60))
    geo = "\n".join(
        f'      <Geoposition resolution="{r}">\n        <ULX>{tr.c:.0f}</ULX>\n        <ULY>{tr.f:.0f}</ULY>\n'
        f"        <XDIM>{r}</XDIM>\n        <YDIM>-{r}</YDIM>\n      </Geoposition>" for r in (10, 20, 60))
    text = f"""<?xml version="1.0" encoding="UTF-8"?>
<n1:{root} xmlns:n1="{ns}" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">
  <n1:General_Info>
    <TILE_ID metadataLevel="Brief">S2B_OPER_MSI_{level}_TL_2BPS_{when:%Y%m%dT%H%M%S}_A000000_T{tile}_N05.09</TILE_ID>
    <DATASTRIP_ID metadataLevel="Standard">S2B_OPER_MSI_{level}_DS_2BPS_{when:%Y%m%dT%H%M%S}</DATASTRIP_ID>
    <DOWNLINK_PRIORITY metadataLevel="Standard">NOMINAL</DOWNLINK_PRIORITY>
    <SENSING_TIME metadataLevel="Standard">{_iso(when, 6)}</SENSING_TIME>
    <Archiving_Info metadataLevel="Expertise">
      <ARCHIVING_CENTRE>2BPS</ARCHIVING_CENTRE>
    </Archiving_Info>
  </n1:General_Info>
  <n1:Geometric_Info>
    <Tile_Geocoding metadataLevel="Brief">
      <HORIZONTAL_CS_NAME>WGS84 / UTM zone {epsg % 100}{'N' if epsg < 32700 else 'S'}</HORIZONTAL_CS_NAME>
      <HORIZONTAL_CS_CODE>EPSG:{epsg}</HORIZONTAL_CS_CODE>
{sizes}
{geo}
    </Tile_Geocoding>
    <Tile_Angles metadataLevel="Standard">
      <Mean_Sun_Angle>
        <ZENITH_ANGLE unit="deg">{sun_zenith:.10f}</ZENITH_ANGLE>
        <AZIMUTH_ANGLE unit="deg">151.432150930478</AZIMUTH_ANGLE>
      </Mean_Sun_Angle>
    </Tile_Angles>
  </n1:Geometric_Info>
  <n1:Quality_Indicators_Info metadataLevel="Standard"/>
</n1:{root}>
"""
    path.write_text(text, encoding="utf-8")
