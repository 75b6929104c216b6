"""A scene whose bands live in separate files: Landsat per-band TIFFs, Sentinel-2 JP2s, STAC assets.

Why a Scene subclass and not a stacked copy: a Sentinel-2 tile is 13 files of up to 10980 x 10980
pixels; stacking them first would write gigabytes before the first tile is scanned. Here each
window read pulls the window from every band file, calibrates each band with its own formula,
and hands the detectors exactly what a tile gives them (reflectance 0..1, kelvin for thermal
bands, ``valid``): the detectors cannot tell the forms apart.

Bands are brought to one target grid (the product module chooses it: the 30 m reflective grid of
Landsat, 20 m for Sentinel-2, the grid of the first data asset of a STAC item):

* same grid, or a grid that differs only by a whole-pixel offset: a plain window read;
* same CRS, no rotation, resolutions in an integer ratio (Sentinel-2's 10/20/60 m bands share
  one origin): done here with numpy. A finer band (10 m onto 20 m) is the box mean of the k x k
  source pixels, valid only when all of them are; a coarser band (60 m onto 20 m) gives each
  target pixel the source pixel under its centre (nearest, no invented values). Why not
  rasterio's ``out_shape`` resampling: GDAL then serves a decimated read from overviews or, for
  JPEG 2000, from the codestream's wavelet resolution levels, which are not box means and differ
  between drivers and GDAL versions; reading full resolution and averaging here is exact and the
  same everywhere (the sample scenes re-packaged as a SAFE give bit-identical reflectances);
* anything else (another CRS, rotation, a non-integer ratio): a ``WarpedVRT`` onto the target
  grid (GDAL's warper, average when the source is finer, nearest otherwise).

Calibration is per band (``DN -> value``): linear scale/offset, Sentinel-2's
``(DN + offset) / quantification``, Landsat TOA reflectance ``(M Q + A) / sin(sun elevation)`` and
brightness temperature ``K2 / ln(K1 / L + 1)``. Quality layers (Landsat ``QA_PIXEL``, Sentinel-2
``SCL``) mark fill as no-data and give flags (cloud, water...) that are reported on each alert,
never used to hide a pixel: fire pixels and smoke are flagged as cloud, and dark burn scars as
water, by those very classifiers.
"""

from __future__ import annotations

import logging
import math
import warnings
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import rasterio
from affine import Affine
from rasterio.crs import CRS
from rasterio.enums import Resampling
from rasterio.errors import NotGeoreferencedWarning
from rasterio.windows import Window

from pipelines.errors import ProductError, SceneError
from pipelines.scene.bands import THERMAL_BANDS
from pipelines.scene.geo import metre_spacing
from pipelines.scene.reader import (
    Scene,
    _check_header_size,
    _error_detail,
    _Header,
    _read_header,
    check_float_reflectance,
    check_scene_path,
)

log = logging.getLogger(__name__)

#: Relative tolerance when comparing resolutions and offsets (metres or degrees).
_GRID_TOL = 1e-6

#: Data types a band file may hold.
BAND_DTYPES = ("uint8", "uint16", "int16", "uint32", "int32", "float32", "float64")


# --------------------------------------------------------------------------- calibration


class Calibration(Protocol):
    """DN -> physical value for one band (``unit``: "reflectance" or "kelvin")."""

    unit: str

    def apply(self, dn: np.ndarray) -> np.ndarray:  # float64 in, float64 out
        ...


@dataclass(frozen=True)
class Linear:
    """``value = DN * scale + offset`` (Landsat Level-2, STAC ``raster:bands``, orbitwatch sidecars)."""

    scale: float
    offset: float = 0.0
    unit: str = "reflectance"

    def apply(self, dn: np.ndarray) -> np.ndarray:
        return dn * self.scale + self.offset


@dataclass(frozen=True)
class Quantified:
    """Sentinel-2: ``reflectance = (DN + offset) / quantification`` (offset -1000 from baseline 04.00)."""

    offset: float
    quantification: float
    unit: str = "reflectance"

    def apply(self, dn: np.ndarray) -> np.ndarray:
        return (dn + self.offset) / self.quantification


@dataclass(frozen=True)
class SunCorrected:
    """Landsat Level-1 TOA reflectance: ``(M * Q + A) / sin(sun elevation)`` (USGS C2 handbook)."""

    mult: float
    add: float
    sun_elevation_deg: float
    unit: str = "reflectance"

    def apply(self, dn: np.ndarray) -> np.ndarray:
        return (dn * self.mult + self.add) / math.sin(math.radians(self.sun_elevation_deg))


@dataclass(frozen=True)
class BrightnessTemperature:
    """Landsat TIRS: radiance ``L = ML * Q + AL``, then ``BT = K2 / ln(K1 / L + 1)`` in kelvin.

    A radiance <= 0 has no temperature: it comes back NaN and the pixel is no-data.
    """

    mult: float
    add: float
    k1: float
    k2: float
    unit: str = "kelvin"

    def apply(self, dn: np.ndarray) -> np.ndarray:
        radiance = dn * self.mult + self.add
        with np.errstate(divide="ignore", invalid="ignore"):
            bt = self.k2 / np.log(self.k1 / radiance + 1.0)
        bt[~(radiance > 0)] = np.nan
        return bt


# --------------------------------------------------------------------------- sources


@dataclass(frozen=True)
class BandSource:
    """One band of the scene: band ``band`` (1-based) of ``path``, its calibration and no-data DNs.

    ``calibration`` None: the file already holds the physical value (float reflectance/kelvin).
    ``label`` names where the band came from in messages (``FILE_NAME_BAND_4``, asset ``B04``).
    """

    name: str
    path: Path
    band: int = 1
    calibration: Calibration | None = None
    nodata: tuple[float, ...] = ()
    label: str = ""


#: Landsat Collection 2 QA_PIXEL bits (USGS LSDS-1619/1328): flag name -> bit.
LANDSAT_QA_FLAGS = {"dilated_cloud": 1, "cirrus": 2, "cloud": 3, "cloud_shadow": 4, "snow": 5, "water": 7}
#: Sentinel-2 L2A scene classification (SCL) values -> flag name (0 no data is no-data, not a flag).
S2_SCL_FLAGS = {3: "cloud_shadow", 6: "water", 8: "cloud", 9: "cloud", 10: "cirrus", 11: "snow"}


@dataclass(frozen=True)
class QualitySource:
    """A quality layer: ``kind`` "landsat-qa-pixel" (bit flags) or "s2-scl" (classes).

    Fill (QA bit 0 / SCL 0) is no-data; the other flags are reported per alert.
    """

    kind: str
    path: Path
    band: int = 1
    label: str = ""

    def nodata(self, qa: np.ndarray) -> np.ndarray:
        if self.kind == "landsat-qa-pixel":
            return (qa.astype(np.int64) & 1) != 0
        return qa == 0

    def flags(self, value: int) -> list[str]:
        if self.kind == "landsat-qa-pixel":
            return [n for n, bit in LANDSAT_QA_FLAGS.items() if (int(value) >> bit) & 1]
        f = S2_SCL_FLAGS.get(int(value))
        return [f] if f else []


@dataclass(frozen=True)
class Grid:
    """A raster grid: CRS, affine transform and size."""

    crs: CRS | None
    transform: Affine
    height: int
    width: int

    @classmethod
    def of(cls, header: _Header) -> "Grid":
        return cls(header.crs, header.transform, header.height, header.width)


@dataclass(frozen=True)
class _Mapping:
    """How a source grid maps onto the target grid (see the module docstring)."""

    mode: str  # "index" (same res / coarser: nearest by pixel centre) | "mean" (finer, k x k) | "warp"
    k: int = 1  # "mean": source pixels per target pixel along each axis
    row0: float = 0.0  # source row coordinate (fractional) of the target's top edge
    col0: float = 0.0
    row_step: float = 1.0  # source rows per target row
    col_step: float = 1.0


def _close(a: float, b: float) -> bool:
    return abs(a - b) <= _GRID_TOL * max(1.0, abs(a), abs(b))


def grid_mapping(src: Grid, dst: Grid) -> _Mapping:
    """Decide how ``src`` is read onto ``dst`` (index/mean with numpy, else warp)."""
    s, d = src.transform, dst.transform
    same_crs = (src.crs is None and dst.crs is None) or (src.crs is not None and dst.crs is not None
                                                         and src.crs == dst.crs)
    if not same_crs or s.b or s.d or d.b or d.d or s.a * d.a <= 0 or s.e * d.e <= 0:
        return _Mapping("warp")
    row_step, col_step = d.e / s.e, d.a / s.a
    row0, col0 = (d.f - s.f) / s.e, (d.c - s.c) / s.a
    if _close(row_step, col_step) and row_step > 1.0 + _GRID_TOL:
        k = int(round(row_step))
        if _close(row_step, k) and _close(row0, round(row0)) and _close(col0, round(col0)):
            return _Mapping("mean", k, float(round(row0)), float(round(col0)), float(k), float(k))
        return _Mapping("warp")
    inv = 1.0 / row_step
    if _close(row_step, col_step) and (_close(row_step, 1.0) or _close(inv, round(inv))):
        return _Mapping("index", 1, row0, col0, row_step, col_step)
    return _Mapping("warp")


# --------------------------------------------------------------------------- the scene


class MultiFileScene(Scene):
    """An optical scene read band by band from several files onto one grid (module docstring).

    Same interface as :class:`~pipelines.scene.reader.Scene`; ``path`` is the product (MTL file,
    SAFE folder, STAC item), ``sources`` its band files. Handles open lazily, per file, and are
    dropped when pickled.
    """

    def __init__(self, *, path: Path, stem: str, grid: Grid, sources: list[BandSource],
                 quality: list[QualitySource], acquired: datetime, acquired_source: str,
                 spacing_m: tuple[float, float], metadata: dict, product: str,
                 reflectance_scale: float | None = None, dtypes: tuple[str, ...] = ()) -> None:
        header = _Header(driver="multi-file", count=len(sources), dtypes=dtypes or ("float32",) * len(sources),
                         height=grid.height, width=grid.width, descriptions=tuple(s.name for s in sources),
                         tags={}, nodata=(None,) * len(sources), crs=grid.crs, transform=grid.transform,
                         gcps=(), gcp_crs=None)
        super().__init__(path=path, kind="optical", header=header, acquired=acquired, spacing_m=spacing_m,
                         bands=tuple(s.name for s in sources), metadata=metadata, sidecar_path=None,
                         reflectance_scale=reflectance_scale, acquired_source=acquired_source, stem=stem,
                         product=product)
        self.grid = grid
        self.sources = list(sources)
        self.quality = list(quality)
        self._grids: dict[Path, Grid] = {}
        self._maps: dict[Path, _Mapping] = {}
        self._handles: dict[Path, Any] = {}
        self._vrts: dict[Path, Any] = {}

    def register(self, path: Path, grid: Grid) -> None:
        """Record a source file's grid (the builder calls this once per file)."""
        self._grids[path] = grid
        self._maps[path] = grid_mapping(grid, self.grid)

    @property
    def files(self) -> list[Path]:
        """Every file the pixels come from (band files, then quality layers), each once."""
        seen: dict[Path, None] = {}
        for s in [*self.sources, *self.quality]:
            seen.setdefault(s.path, None)
        return list(seen)

    # ------------------------------------------------------------ lifecycle
    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["_handles"] = {}
        state["_vrts"] = {}
        state["_ds"] = None
        return state

    def close(self) -> None:
        """Release every GDAL handle (safe to call twice; a later read reopens them)."""
        vrts, handles = self._vrts, self._handles
        self._vrts, self._handles = {}, {}
        for h in [*vrts.values(), *handles.values()]:
            try:
                h.close()
            except Exception:  # closing must never mask the error that ended the scan
                pass

    def _dataset(self) -> Any:  # the base class's single-file handle does not exist here
        raise SceneError("a multi-file scene has no single dataset", self.path)

    def _handle(self, path: Path) -> Any:
        ds = self._handles.get(path)
        if ds is None:
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", NotGeoreferencedWarning)
                    ds = rasterio.open(path)
            except Exception as exc:
                raise SceneError(f"cannot reopen band file {path.name}: {_error_detail(exc)}", self.path) from exc
            self._handles[path] = ds
        return ds

    def _vrt(self, path: Path, finer: bool, nodata: float | None) -> Any:
        vrt = self._vrts.get(path)
        if vrt is None:
            from rasterio.vrt import WarpedVRT

            g = self.grid
            kw: dict[str, Any] = dict(crs=g.crs, transform=g.transform, width=g.width, height=g.height,
                                      resampling=Resampling.average if finer else Resampling.nearest)
            if nodata is not None:
                kw.update(src_nodata=nodata, nodata=nodata)
            try:
                vrt = WarpedVRT(self._handle(path), **kw)
            except Exception as exc:
                raise SceneError(f"cannot warp band file {path.name} onto the scene grid: {_error_detail(exc)}",
                                 self.path) from exc
            self._vrts[path] = vrt
        return vrt

    def block_coverage(self) -> None:
        """Unknown for a multi-file scene: every block is taken as present."""
        return None

    # ------------------------------------------------------------ pixels
    def _read_raw(self, path: Path, band: int, r0: int, c0: int, h: int, w: int,
                  nodata: tuple[float, ...], nearest_only: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """(values float64 (h, w) on the target grid, ok bool (h, w)) for one band of one file."""
        m = self._maps[path]
        g = self._grids[path]
        where = f"band file {path.name} (band {band}), scene window rows {r0}..{r0 + h} cols {c0}..{c0 + w}"
        try:
            if m.mode == "warp":
                vrt = self._vrt(path, finer=False if nearest_only else self._finer(g),
                                nodata=nodata[0] if nodata else None)
                win = Window(c0, r0, w, h)
                raw = vrt.read(band, window=win).astype(np.float64)
                ok = vrt.read_masks(band, window=win) != 0
                return raw, ok & self._ok(raw, nodata)
            if m.mode == "mean" and not nearest_only:
                k = m.k
                sr, sc = int(m.row0) + r0 * k, int(m.col0) + c0 * k
                raw, ok = self._read_box(path, band, g, sr, sc, h * k, w * k, nodata)
                raw = raw.reshape(h, k, w, k)
                ok4 = ok.reshape(h, k, w, k).all(axis=(1, 3))
                mean = raw.mean(axis=(1, 3))
                return mean, ok4
            # index: the source pixel under each target pixel centre
            rows = np.floor(m.row0 + (np.arange(r0, r0 + h) + 0.5) * m.row_step).astype(np.int64)
            cols = np.floor(m.col0 + (np.arange(c0, c0 + w) + 0.5) * m.col_step).astype(np.int64)
            if m.mode == "mean":  # nearest_only on a finer source: the centre pixel of each box
                rows = np.floor(m.row0 + (np.arange(r0, r0 + h) + 0.5) * m.k).astype(np.int64)
                cols = np.floor(m.col0 + (np.arange(c0, c0 + w) + 0.5) * m.k).astype(np.int64)
            rlo, rhi, clo, chi = int(rows.min()), int(rows.max()) + 1, int(cols.min()), int(cols.max()) + 1
            block, okb = self._read_box(path, band, g, rlo, clo, rhi - rlo, chi - clo, nodata)
            sel = np.ix_(rows - rlo, cols - clo)
            return block[sel], okb[sel]
        except SceneError:
            raise
        except Exception as exc:
            raise SceneError(f"cannot read {where} (corrupt or truncated file?): {_error_detail(exc)}",
                             self.path) from exc

    def _finer(self, g: Grid) -> bool:
        return abs(g.transform.a) < abs(self.grid.transform.a) * (1 - _GRID_TOL)

    @staticmethod
    def _ok(raw: np.ndarray, nodata: tuple[float, ...]) -> np.ndarray:
        ok = np.isfinite(raw)
        for nd in nodata:
            if nd is not None and not math.isnan(nd):
                ok &= raw != nd
        return ok

    def _read_box(self, path: Path, band: int, g: Grid, r0: int, c0: int, h: int, w: int,
                  nodata: tuple[float, ...]) -> tuple[np.ndarray, np.ndarray]:
        """A source-pixel window that may reach beyond the file: outside is no-data (0, not ok)."""
        out = np.zeros((h, w), np.float64)
        ok = np.zeros((h, w), bool)
        ir0, ic0 = max(r0, 0), max(c0, 0)
        ir1, ic1 = min(r0 + h, g.height), min(c0 + w, g.width)
        if ir1 <= ir0 or ic1 <= ic0:
            return out, ok
        raw = self._handle(path).read(band, window=Window(ic0, ir0, ic1 - ic0, ir1 - ir0)).astype(np.float64)
        out[ir0 - r0:ir1 - r0, ic0 - c0:ic1 - c0] = raw
        ok[ir0 - r0:ir1 - r0, ic0 - c0:ic1 - c0] = self._ok(raw, nodata)
        return out, ok

    def _quality(self, q: QualitySource, r0: int, c0: int, h: int, w: int) -> np.ndarray:
        raw, ok = self._read_raw(q.path, q.band, r0, c0, h, w, (), nearest_only=True)
        return np.where(ok, raw, 1 if q.kind == "landsat-qa-pixel" else 0).astype(np.int64)

    def read(self, row_off: int, col_off: int, height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
        """Calibrated window -> (data float32 (nbands, h, w), valid bool (h, w)), as for a tile."""
        self._check_window(row_off, col_off, height, width)
        r0, c0, h, w = int(row_off), int(col_off), int(height), int(width)
        data = np.empty((len(self.sources), h, w), np.float64)
        valid = np.ones((h, w), bool)
        for i, s in enumerate(self.sources):
            data[i], ok = self._read_raw(s.path, s.band, r0, c0, h, w, s.nodata)
            valid &= ok
        for q in self.quality:
            valid &= ~q.nodata(self._quality(q, r0, c0, h, w))
        data[:, ~valid] = 0.0
        for i, s in enumerate(self.sources):
            if s.calibration is not None:
                data[i] = s.calibration.apply(data[i])
            elif s.name not in THERMAL_BANDS:
                self._check_float_reflectance(data, valid, i, s, (r0, c0, h, w))
        valid &= np.all(np.isfinite(data), axis=0)
        data[:, ~valid] = 0.0
        return data.astype(np.float32), valid

    def _check_float_reflectance(self, data: np.ndarray, valid: np.ndarray, i: int, s: BandSource,
                                 win: tuple[int, int, int, int]) -> None:
        """As for a tile: uncalibrated float reflectance x 10,000 is refused, never guessed."""
        if self._reflectance_scale is not None:
            data[i] *= self._reflectance_scale
            return
        check_float_reflectance(data[i], valid, f"'{s.name}' ({s.label or s.path.name})", win, self.path,
                                "give its scale (STAC raster:bands scale) or open with reflectance_scale=1e-4")

    def flags_at(self, rows: np.ndarray, cols: np.ndarray) -> list[list[str]]:
        """Quality flags (cloud, water, ...) at each pixel (array indices), from the quality layers."""
        out: list[list[str]] = [[] for _ in range(len(rows))]
        for q in self.quality:
            for k, (r, c) in enumerate(zip(rows, cols)):
                ri = min(max(int(round(float(r))), 0), self.rows - 1)
                ci = min(max(int(round(float(c))), 0), self.cols - 1)
                v = int(self._quality(q, ri, ci, 1, 1)[0, 0])
                out[k].extend(f for f in q.flags(v) if f not in out[k])
        return out

    def read_preview(self, max_side: int) -> tuple[np.ndarray, np.ndarray, tuple[float, float]]:
        """The whole scene decimated to at most ``max_side`` a side (nearest, uncalibrated), for display."""
        f = max(1.0, max(self.rows, self.cols) / float(max_side))
        h, w = max(1, int(round(self.rows / f))), max(1, int(round(self.cols / f)))
        data = np.zeros((len(self.sources), h, w), np.float32)
        valid = np.ones((h, w), bool)
        for i, s in enumerate(self.sources):
            m = self._maps[s.path]
            try:
                if m.mode == "warp":
                    raw = self._vrt(s.path, finer=self._finer(self._grids[s.path]),
                                    nodata=s.nodata[0] if s.nodata else None).read(
                        s.band, out_shape=(h, w), resampling=Resampling.nearest)
                else:  # the scene's extent in source pixels, read decimated
                    step_r = float(m.k) if m.mode == "mean" else m.row_step
                    step_c = float(m.k) if m.mode == "mean" else m.col_step
                    win = Window(m.col0, m.row0, self.cols * step_c, self.rows * step_r)
                    raw = self._handle(s.path).read(s.band, window=win, out_shape=(h, w), boundless=True,
                                                    fill_value=s.nodata[0] if s.nodata else 0,
                                                    resampling=Resampling.nearest)
            except Exception as exc:
                raise SceneError(f"cannot read a {h} x {w} preview of {s.path.name}: {_error_detail(exc)}",
                                 self.path) from exc
            raw = raw.astype(np.float64)
            valid &= self._ok(raw, s.nodata)
            data[i] = raw
        data[:, ~valid] = 0.0
        return data, valid, (self.rows / h, self.cols / w)


# --------------------------------------------------------------------------- building


@dataclass
class BandFile:
    """What a product module knows about one file before it is opened (for checks and messages)."""

    path: Path
    header: _Header = field(repr=False)


def open_band_file(path: Path, product: Path, what: str) -> _Header:
    """Check and read the header of one band file; errors name the product, the file and ``what``.

    ``what`` says where the file was listed (``PRODUCT_CONTENTS.FILE_NAME_BAND_4``, asset ``B04``).
    """
    if not path.exists() and not path.is_symlink():
        raise ProductError(f"missing band file {path.name} ({what}; looked in {path.parent})", product)
    check_scene_path(path)
    header = _read_header(path)
    if header.height <= 0 or header.width <= 0 or header.count <= 0:
        raise ProductError(f"band file {path.name} ({what}) is an empty raster", product)
    _check_header_size(path, header)
    return header


def build_scene(*, path: Path, stem: str, grid: Grid, sources: list[BandSource], quality: list[QualitySource],
                headers: dict[Path, _Header], acquired: datetime, acquired_source: str,
                spacing_m: tuple[float, float], metadata: dict, product: str,
                reflectance_scale: float | None = None) -> MultiFileScene:
    """Check band indexes and data types against the headers and build the scene."""
    if not sources:
        raise ProductError("no band to read", path)
    dtypes: list[str] = []
    for s in [*sources, *quality]:
        h = headers[s.path]
        if not 1 <= s.band <= h.count:
            raise ProductError(f"{s.label or s.path.name}: band {s.band} asked of {s.path.name}, which has "
                               f"{h.count} band(s)", path)
        dt = h.dtypes[s.band - 1]
        if dt not in BAND_DTYPES:
            raise ProductError(f"{s.label or s.path.name}: unsupported data type {dt} in {s.path.name} "
                               f"(supported: {', '.join(BAND_DTYPES)})", path)
        if isinstance(s, BandSource):
            if s.calibration is None and np.dtype(dt).kind in "iu":
                raise ProductError(f"integer band '{s.name}' ({dt}, {s.label or s.path.name}) has no scale/offset "
                                   "to calibrate it", path)
            if s.calibration is not None:
                want = "kelvin" if s.name in THERMAL_BANDS else "reflectance"
                if s.calibration.unit != want:
                    raise ProductError(f"band '{s.name}' must be calibrated to {want}, got {s.calibration.unit}",
                                       path)
            dtypes.append(dt)
    names = [s.name for s in sources]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise ProductError(f"duplicate band name(s) {', '.join(dup)}", path)
    scene = MultiFileScene(path=path, stem=stem, grid=grid, sources=sources, quality=quality, acquired=acquired,
                           acquired_source=acquired_source, spacing_m=spacing_m, metadata=metadata,
                           product=product, reflectance_scale=reflectance_scale, dtypes=tuple(dtypes))
    for p in scene.files:
        scene.register(p, Grid.of(headers[p]))
    return scene


def spacing_of(grid: Grid, where: Path) -> tuple[float, float]:
    """(row, column) pixel size in metres of a projected grid; SceneError otherwise."""
    spacing = metre_spacing(grid.crs, grid.transform)
    if spacing is not None:
        return spacing
    raise SceneError("cannot tell the pixel size in metres: the band files' CRS is not projected in linear units",
                     where)
