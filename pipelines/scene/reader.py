"""Open a scene bundle (GeoTIFF + optional ``<stem>_extended.json``) and read calibrated windows.

Why windows only: a spotlight SLC is ~120k x 15k complex pixels (7 GB); the on-board computer
tiles it and never holds it whole. :func:`open_scene` reads only the TIFF header and the sidecar
(plus, for float SAR data only, a bounded sample of pixels to check their radiometric encoding),
and checks everything it can there, so a bad bundle fails before any GPU time is spent, with an
error that names the file and the problem.

Kind (SAR / optical) is decided from content, never the file name:

* a Capella sidecar (has ``collect``) -> SAR; an orbitwatch optical sidecar -> optical;
* no sidecar: Capella metadata in the TIFF's ImageDescription tag (how Capella ships every GeoTIFF)
  -> SAR; band descriptions that name optical bands -> optical; otherwise a single-band or
  complex TIFF is SAR and its missing sidecar is the error (SAR cannot be calibrated without it).

Provider products (a Landsat Collection 2 MTL or folder, a Sentinel-2 SAFE, a STAC item) are read
by :mod:`pipelines.scene.products`; :func:`open_scene` and :func:`find_scenes` stay the single entry.
Every scene records where its acquisition time came from (``acquired_source``, see
:mod:`pipelines.scene.acquisition`).

Values returned by :meth:`Scene.read`:

* SAR: ``sigma0`` linear power = ``(amplitude * scale_factor) ** 2`` with amplitude the uint16 DN,
  the float32 amplitude, or ``|I + jQ|`` for CInt16 SLC (single complex band or two int16 bands).
  For SLCs Capella's radiometry is ``beta_nought``; the band is still called ``sigma0`` (the
  detectors' input name) and ``metadata.radiometry`` says what it really is. Pixels stored in
  another radiometric encoding (float intensity, dB, an 8-bit display stretch) are converted
  according to :attr:`Scene.radiometry`, decided at open from the metadata, the data type and, for
  float data only, a bounded sample of values, or given by ``open_scene(radiometry=...)``
  (``--radiometry``); see :mod:`pipelines.scene.radiometry`.
* optical: reflectance (0..1) for reflective bands, kelvin for thermal bands (``lwir*``), as
  ``DN * scale + offset`` with per-band scale/offset from the sidecar. Float tiles without a
  sidecar entry are taken as already calibrated, except that a reflective band whose valid median
  in a window exceeds 2 is refused (it is reflectance x 10,000, e.g. a Sentinel-2 export): pass
  ``reflectance_scale=1e-4`` to :func:`open_scene` or give the scale in the sidecar. We refuse
  rather than guess so that a wrong factor never silently reaches the fire thresholds.
* ``valid`` is False where any band is no-data (TIFF nodata value, SAR DN/amplitude 0, NaN, inf);
  ``data`` is 0 there, so NaN never reaches a detector. A scene that is entirely no-data is not an
  error: it is scanned and yields no alerts (a swath edge or a dropped downlink frame looks exactly
  like that, and there is nothing to alert on), while the valid pixels of a partly-NaN scene are
  still searched.

Hostile files (see ``tests/badinput/``) fail at open, before any pixel is allocated: dangling
symlinks and symlink loops, names GDAL cannot open (not UTF-8), headers that claim more
pixel bytes than the file holds (blocks beyond the end: a truncated file, or a 40-Gpx header on
a 1-KB file), and layouts whose single block would need more than :data:`MAX_BLOCK_BYTES` to decode.
"""

from __future__ import annotations

import errno
import logging
import math
import os
import stat
import warnings
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
from affine import Affine
from rasterio.crs import CRS
from rasterio.enums import MaskFlags
from rasterio.errors import NotGeoreferencedWarning
from rasterio.windows import Window

from pipelines.errors import SceneError, SidecarError, TilingError
from pipelines.scene.acquisition import resolve_acquired, time_from_path
from pipelines.scene.bands import THERMAL_BANDS, resolve_band_names
from pipelines.scene.coverage import BlockCoverage, block_coverage
from pipelines.scene.geo import metre_spacing, sidecar_lonlat
from pipelines.scene.radiometry import (
    ENCODING_TAGS,
    Hint,
    Radiometry,
    ValueStats,
    check_choice,
    check_values,
    decide,
    hint_from_text,
    to_amplitude,
    to_sigma0,
)
from pipelines.scene.sidecar import (
    BandCalibration,
    CapellaMetadata,
    is_optical_sidecar,
    load_json,
    parse_optical_sidecar,
    parse_sidecar,
    parse_timestamp,
)

log = logging.getLogger(__name__)

SIDECAR_SUFFIX = "_extended.json"
TIFF_SUFFIXES = (".tif", ".tiff")

#: Median above which a float "reflectance" band is clearly reflectance x 10,000.
MAX_PLAUSIBLE_REFLECTANCE_MEDIAN = 2.0

#: TIFF metadata tags holding an acquisition time, most specific first. TIFFTAG_DATETIME is, by the
#: TIFF spec, the file's creation time: used only when nothing better exists (and logged).
ACQUISITION_TAGS = ("ACQUISITION_DATETIME", "ACQUISITIONDATETIME", "ACQUISITION_TIME", "DATETIME_ACQUIRED",
                    "SENSING_TIME", "DATATAKE_SENSING_START", "DATE_ACQUIRED")
PLATFORM_TAGS = ("PLATFORM", "SPACECRAFT_ID", "SPACECRAFT_NAME", "SATELLITE", "MISSION")

#: Largest TIFF block (strip or tile) we agree to decode: any window read decodes whole blocks, so a
#: compressed 200k x 200k single-strip file would otherwise need 80 GB for its first window.
MAX_BLOCK_BYTES = 1 << 30

_OPTICAL_DTYPES = ("uint8", "uint16", "int16", "uint32", "int32", "float32", "float64")


def check_float_reflectance(band: np.ndarray, valid: np.ndarray, what: str, win: tuple[int, int, int, int],
                            path: Path, fix: str) -> None:
    """Refuse an uncalibrated float reflective band whose valid median says reflectance x 10,000.

    We refuse rather than guess so that a wrong factor never silently reaches the fire thresholds.
    ``what`` names the band in the message, ``fix`` says what the user can do for this input.
    """
    if not valid.any():
        return
    med = float(np.median(band[valid]))
    if med > MAX_PLAUSIBLE_REFLECTANCE_MEDIAN:
        r, c, h, w = win
        raise SceneError(f"band {what} has median {med:.4g} in window rows {r}..{r + h} cols {c}..{c + w}: "
                         "float optical bands must be reflectance 0..1 and this looks like reflectance "
                         f"x 10,000; {fix}", path)


def _sidecar_for(tif: Path) -> Path:
    return tif.with_name(tif.stem + SIDECAR_SUFFIX)


def _tif_for(sidecar: Path) -> Path:
    stem = sidecar.name[: -len(SIDECAR_SUFFIX)]
    for suf in TIFF_SUFFIXES:
        cand = sidecar.with_name(stem + suf)
        if cand.exists():
            return cand
    raise SceneError(f"no GeoTIFF for sidecar {sidecar.name} (looked for {stem}.tif / {stem}.tiff)", sidecar)


@dataclass(frozen=True)
class _Header:
    """What open_scene learns from the TIFF without reading pixels."""

    driver: str
    count: int
    dtypes: tuple[str, ...]
    height: int
    width: int
    descriptions: tuple[str | None, ...]
    tags: dict[str, str]
    nodata: tuple[float | None, ...]
    crs: CRS | None
    transform: Affine
    gcps: tuple[Any, ...]
    gcp_crs: CRS | None
    block_shape: tuple[int, int] = (0, 0)
    pixel_interleaved: bool = False
    data_end: int = 0  # largest offset + byte count among the sampled TIFF blocks (0: unknown)
    has_mask: bool = False  # a per-dataset mask band (GDAL internal or .msk mask): 0 = no-data
    units: tuple[str | None, ...] = ()  # GDAL band unit types ("dB", ...); empty when none is set
    band_tags: dict[str, str] = field(default_factory=dict)  # band 1's own metadata


def _itemsize(dtype: str) -> int:
    """Bytes per sample of a rasterio dtype name (complex_int16 is not a numpy dtype)."""
    if dtype == "complex_int16":
        return 4
    try:
        return int(np.dtype(dtype).itemsize)
    except TypeError:
        return 1


def check_scene_path(path: Path, allow_dir: bool = False) -> None:
    """Raise SceneError saying exactly why ``path`` cannot be a scene file (link, loop, name...).

    Why not just ``exists()``: pathlib answers False for a dangling link, a symlink loop and a
    missing file alike, and an operator needs to know which one to fix. ``allow_dir``: a folder
    passes too (a product folder such as a Sentinel-2 SAFE is a scene).
    """
    try:
        os.fsencode(str(path)).decode("utf-8")
    except UnicodeDecodeError:
        raise SceneError("file name is not valid UTF-8, so GDAL cannot open it; rename the file", path) from None
    if path.is_symlink():
        try:
            target = os.readlink(path)
        except OSError:
            target = "?"
        try:
            os.stat(path)
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise SceneError(f"symlink loop: -> {target} never reaches a file", path) from None
            if exc.errno == errno.ENOENT:
                raise SceneError(f"broken symlink: -> {target}, which does not exist", path) from None
            raise SceneError(f"cannot follow symlink -> {target}: {exc.strerror or exc}", path) from None
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise SceneError("scene file does not exist", path) from None
    except OSError as exc:
        raise SceneError(f"cannot stat scene file: {exc.strerror or exc}", path) from None
    if not stat.S_ISREG(st.st_mode) and not (allow_dir and stat.S_ISDIR(st.st_mode)):
        raise SceneError("scene path is not a regular file", path)


def _block_data_end(ds: Any) -> int:
    """Largest ``offset + byte count`` of the first, middle and last block of the first and last band.

    Read from the TIFF's own strip/tile tables (GDAL's ``TIFF`` metadata domain), not from pixels.
    Blocks with offset 0 are absent on purpose (GDAL SPARSE_OK files) and are skipped.
    """
    try:
        bh, bw = ds.block_shapes[0]
        nx, ny = -(-ds.width // bw), -(-ds.height // bh)
    except Exception:
        return 0
    end = 0
    for bidx in sorted({1, ds.count}):
        for bx, by in {(0, 0), (nx // 2, ny // 2), (nx - 1, ny - 1)}:
            try:
                off = int(ds.get_tag_item(f"BLOCK_OFFSET_{bx}_{by}", "TIFF", bidx=bidx) or 0)
                size = int(ds.get_tag_item(f"BLOCK_SIZE_{bx}_{by}", "TIFF", bidx=bidx) or 0)
            except Exception:  # not a TIFF GDAL can describe: the read itself will say what is wrong
                continue
            if off > 0:
                end = max(end, off + size)
    return end


def _check_header_size(tif: Path, h: "_Header") -> None:
    """Refuse headers that lie about the pixel bytes before anything is allocated (see module doc).

    The blocks the header points to must lie inside the file (a truncated file, or a 40-Gpx
    header on a 1-KB file, fails here rather than at some tile read after GPU work), and one
    block must be decodable in bounded memory.
    """
    item = max(_itemsize(d) for d in h.dtypes)
    claim = f"{h.height} rows x {h.width} columns x {h.count} band(s) of {h.dtypes[0]}"
    have = tif.stat().st_size
    if h.data_end > have:
        need = h.height * h.width * h.count * item
        raise SceneError(f"TIFF is truncated or its header is corrupt: it claims {claim} ({need:,} bytes of "
                         f"pixels uncompressed) stored up to byte {h.data_end:,}, but the file is only "
                         f"{have:,} bytes", tif)
    bh, bw = h.block_shape
    block = bh * bw * item * (h.count if h.pixel_interleaved else 1)
    if block > MAX_BLOCK_BYTES:
        raise SceneError(f"TIFF header claims {claim} with one block of {bh} x {bw} pixels ({block:,} bytes): "
                         f"reading any window would decode that whole block (limit {MAX_BLOCK_BYTES:,} bytes); "
                         "the file is corrupt or must be re-tiled (gdal_translate -co TILED=YES)", tif)


def _error_detail(exc: BaseException) -> str:
    """The useful part of a rasterio error: its GDAL cause, not 'See previous exception'."""
    parts = [str(exc)]
    cause = exc.__cause__ or exc.__context__
    if cause is not None and str(cause) and str(cause) not in parts[0]:
        parts.append(str(cause))
    return ": ".join(p for p in parts if "See previous exception" not in p) or parts[0]


def _read_header(tif: Path) -> _Header:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", NotGeoreferencedWarning)
            with rasterio.open(tif) as ds:
                gcps, gcp_crs = ds.gcps
                return _Header(
                    driver=ds.driver, count=ds.count, dtypes=tuple(ds.dtypes), height=ds.height, width=ds.width,
                    descriptions=tuple(ds.descriptions), tags=dict(ds.tags()), nodata=tuple(ds.nodatavals),
                    crs=ds.crs, transform=ds.transform, gcps=tuple(gcps or ()), gcp_crs=gcp_crs,
                    block_shape=tuple(ds.block_shapes[0]) if ds.block_shapes else (0, 0),  # type: ignore[arg-type]
                    pixel_interleaved=str(getattr(ds.interleaving, "value", ds.interleaving)).upper() == "PIXEL",
                    data_end=_block_data_end(ds),
                    has_mask=any(MaskFlags.per_dataset in flags for flags in ds.mask_flag_enums),
                    units=tuple(ds.units), band_tags=dict(ds.tags(1)),
                )
    except Exception as exc:  # any GDAL/rasterio failure on a bad file becomes one clear error
        raise SceneError(f"cannot open GeoTIFF (corrupt, truncated or not a raster): {exc}", tif) from exc


def _tag(tags: dict[str, str], names: Iterable[str]) -> tuple[str, str] | None:
    upper = {k.upper(): (k, v) for k, v in tags.items()}
    for n in names:
        if n in upper and str(upper[n][1]).strip():
            return upper[n]
    return None


class Scene:
    """An open scene bundle: header facts as attributes, pixels on demand via :meth:`read`.

    The rasterio handle is opened on the first read (and dropped when pickled), so a Scene can be
    built in one process and read in another (Prefect/Dask workers).
    """

    path: Path
    stem: str
    kind: str
    rows: int
    cols: int
    acquired: datetime
    spacing_m: tuple[float, float]
    bands: tuple[str, ...]
    metadata: CapellaMetadata | dict | None
    #: Where ``acquired`` came from (see :mod:`pipelines.scene.acquisition`); every alert carries it.
    acquired_source: str
    #: What the scene was read as: "geotiff" (a tile/bundle), "capella-geotiff" (metadata in the
    #: TIFF's ImageDescription), "landsat-c2-l1", "sentinel-2-l2a", "stac-item"...
    product: str
    #: SAR only: how the pixels encode backscatter and how they become sigma0 (its ``note`` goes to
    #: the scan's notes); None for optical scenes. See :mod:`pipelines.scene.radiometry`.
    radiometry: Radiometry | None

    def __init__(self, *, path: Path, kind: str, header: _Header, acquired: datetime,
                 spacing_m: tuple[float, float], bands: tuple[str, ...], metadata: CapellaMetadata | dict | None,
                 sidecar_path: Path | None, calibration: tuple[BandCalibration | None, ...] = (),
                 reflectance_scale: float | None = None, extra_nodata: float | None = None,
                 acquired_source: str = "sidecar", data_path: Path | None = None, stem: str | None = None,
                 product: str = "geotiff") -> None:
        self.path = path
        self.stem = stem or path.stem
        self.kind = kind
        self.rows = header.height
        self.cols = header.width
        self.acquired = acquired
        self.acquired_source = acquired_source
        self.product = product
        self.spacing_m = spacing_m
        self.bands = bands
        self.metadata = metadata
        self.sidecar_path = sidecar_path
        #: The GeoTIFF holding the pixels: ``path`` itself, or the data asset of a STAC item.
        self.data_path = data_path or path
        self._header = header
        self._calibration = calibration
        self._reflectance_scale = reflectance_scale
        self._extra_nodata = extra_nodata
        self._ds: Any = None
        self._coverage: BlockCoverage | None = None
        self._coverage_known = False
        self._luts: dict[tuple[str, str, float], np.ndarray] = {}  # see _sigma0_lut
        self.radiometry = None

    # ---------------------------------------------------------------- lifecycle
    def __repr__(self) -> str:
        return (f"Scene({self.stem!r}, kind={self.kind!r}, {self.rows}x{self.cols}, bands={self.bands}, "
                f"acquired={self.acquired.isoformat()} ({self.acquired_source}), product={self.product!r})")

    def __enter__(self) -> "Scene":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["_ds"] = None  # a GDAL handle cannot cross processes; reopened lazily
        return state

    def close(self) -> None:
        """Release the GDAL handle (safe to call twice; a later read reopens it)."""
        if self._ds is not None:
            try:
                self._ds.close()
            finally:
                self._ds = None

    def _dataset(self) -> Any:
        if self._ds is None:
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", NotGeoreferencedWarning)
                    self._ds = rasterio.open(self.data_path)
            except Exception as exc:
                raise SceneError(f"cannot reopen GeoTIFF: {exc}", self.data_path) from exc
        return self._ds

    # ---------------------------------------------------------------- pixels
    @property
    def megapixels(self) -> float:
        """Pixels of the full-resolution image, in millions (what the pixel budget counts)."""
        return self.rows * self.cols / 1e6

    def block_coverage(self) -> BlockCoverage | None:
        """Which blocks of the TIFF hold data (see :mod:`pipelines.scene.coverage`); read once, on
        first use, from the block tables only. None: unknown, every block is taken as present."""
        if not self._coverage_known:
            self._coverage = block_coverage(self.data_path, self.rows, self.cols)
            self._coverage_known = True
        return self._coverage

    def read_preview(self, max_side: int) -> tuple[np.ndarray, np.ndarray, tuple[float, float]]:
        """The whole scene decimated to at most ``max_side`` pixels a side, for display only.

        Returns (values float32 (nbands, h, w), valid (h, w), (row step, col step) in scene pixels).
        Values are uncalibrated (SAR: amplitude, |I + jQ| for SLCs; optical: the stored numbers):
        a display stretch does not need calibration. Nearest-neighbour, so GDAL can serve it from
        the TIFF's overviews and never averages no-data into the picture.
        """
        from rasterio.enums import Resampling

        f = max(1.0, max(self.rows, self.cols) / float(max_side))
        h, w = max(1, int(round(self.rows / f))), max(1, int(round(self.cols / f)))
        try:
            raw = self._dataset().read(out_shape=(self._header.count, h, w), resampling=Resampling.nearest)
        except Exception as exc:
            raise SceneError(f"cannot read a {h} x {w} preview: {_error_detail(exc)}", self.path) from exc
        if np.iscomplexobj(raw):
            data = np.abs(raw[:1].astype(np.complex64)).astype(np.float32)
        elif self.kind == "sar" and raw.shape[0] == 2:
            data = np.hypot(raw[0].astype(np.float32), raw[1].astype(np.float32))[None]
        elif self.kind == "sar" and self.radiometry is not None:
            band = raw[0].astype(np.float64)
            ok = np.isfinite(band) & (band != 0)
            amp = np.zeros(band.shape, dtype=np.float32)
            amp[ok] = to_amplitude(band[ok], self.radiometry.encoding)  # dB is negative, and still data
            data = amp[None]
        else:
            data = raw.astype(np.float32)
        valid = np.all(np.isfinite(data), axis=0)
        for b in range(min(data.shape[0], len(self._header.nodata))):
            nd = self._header.nodata[b]
            if nd is not None and not math.isnan(nd):
                valid &= raw[b] != nd
        if self.kind == "sar":
            valid &= data[0] != 0
        data[:, ~valid] = 0.0
        return data, valid, (self.rows / h, self.cols / w)

    def _check_window(self, row_off: int, col_off: int, height: int, width: int) -> None:
        """TilingError unless the window is integer and lies inside the scene (no silent clipping)."""
        for name, v in (("row_off", row_off), ("col_off", col_off), ("height", height), ("width", width)):
            if not isinstance(v, (int, np.integer)) or isinstance(v, bool):
                raise TilingError(f"window {name} must be an integer, got {v!r}", self.path)
        if height <= 0 or width <= 0 or row_off < 0 or col_off < 0 \
                or row_off + height > self.rows or col_off + width > self.cols:
            raise TilingError(
                f"window rows {row_off}..{row_off + height} x cols {col_off}..{col_off + width} is empty or "
                f"outside the scene ({self.rows} x {self.cols})", self.path)

    def read(self, row_off: int, col_off: int, height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
        """Calibrated window -> (data float32 (nbands, h, w), valid bool (h, w)); see the module docstring.

        The window must lie inside the scene: clipping is the caller's job (iter_tiles does it), and
        a silent clip here would shift every detection in the window.
        """
        self._check_window(row_off, col_off, height, width)
        window = Window(int(col_off), int(row_off), int(width), int(height))
        try:
            raw = self._dataset().read(window=window)
        except SceneError:
            raise
        except Exception as exc:
            raise SceneError(f"cannot read window rows {row_off}..{row_off + height} cols {col_off}.."
                             f"{col_off + width} (corrupt or truncated TIFF?): {_error_detail(exc)}",
                             self.path) from exc
        # Never-written (sparse) blocks and the TIFF's own mask band are no-data whatever value GDAL
        # fills them with: for an optical band without a nodata value that fill (0) would otherwise
        # pass for a measurement.
        cov = self.block_coverage()
        absent = cov.absent_mask(row_off, col_off, height, width) if cov is not None else None
        if self._header.has_mask:
            try:
                mask = self._dataset().read_masks(1, window=window) == 0
            except Exception as exc:
                raise SceneError(f"cannot read the mask of window rows {row_off}..{row_off + height} cols "
                                 f"{col_off}..{col_off + width}: {_error_detail(exc)}", self.path) from exc
            absent = mask if absent is None else (absent | mask)
        if self.kind == "sar":
            data, valid = self._sar(raw, (row_off, col_off, height, width))
        else:
            data, valid = self._optical(raw, (row_off, col_off, height, width), absent)
        if absent is not None:
            valid &= ~absent
            data[:, ~valid] = 0.0
        return data, valid

    def _sar(self, raw: np.ndarray, win: tuple[int, int, int, int]) -> tuple[np.ndarray, np.ndarray]:
        meta = self.metadata
        if not isinstance(meta, CapellaMetadata):
            raise SceneError("SAR scene without Capella metadata: cannot calibrate", self.path)
        rad = self.radiometry or Radiometry("amplitude", meta.scale_factor, "data type", "")
        nodata = self._header.nodata[0]
        if np.iscomplexobj(raw):
            amp = np.abs(raw[0].astype(np.complex128))
            valid = amp > 0
            sigma0 = (amp * rad.gain) ** 2
        elif raw.shape[0] == 2:  # CInt16 as I and Q bands
            amp = np.hypot(raw[0].astype(np.float64), raw[1].astype(np.float64))
            valid = amp > 0
            sigma0 = (amp * rad.gain) ** 2
        elif raw[0].dtype in (np.uint8, np.uint16) and _cannot_be_wrong(raw[0].dtype, rad.encoding):
            # 8/16-bit counts (every Capella GEO): one lookup per pixel in a table of all 2^16 values,
            # made by the general float64 path below, so the result is bit-identical to it at a
            # fraction of its cost (that path's float64 temporaries made calibration ~3/4 of a read).
            band = raw[0]
            lut = self._sigma0_lut(band.dtype, rad)
            sigma0 = lut[band]
            valid = band != 0
            if nodata is not None and not math.isnan(nodata) and float(nodata).is_integer():
                valid &= band != int(nodata)
            sigma0[~valid] = 0.0
            return sigma0[None], valid
        else:
            band = raw[0]
            finite = np.isfinite(band) if band.dtype.kind == "f" else np.ones(band.shape, dtype=bool)
            values = np.where(finite, band, 0).astype(np.float64)
            valid = finite & (values != 0)
            if nodata is not None and not math.isnan(nodata):
                valid &= band != nodata
            if not _cannot_be_wrong(band.dtype, rad.encoding):
                r, c, h, w = win
                check_values(values, valid, rad.encoding, self.data_path,
                             f"in window rows {r}..{r + h} cols {c}..{c + w}", rad.source == "override")
            sigma0 = to_sigma0(values, rad.encoding, rad.gain)
        sigma0[~valid] = 0.0
        return sigma0.astype(np.float32)[None], valid

    def _sigma0_lut(self, dtype: np.dtype, rad: Radiometry) -> np.ndarray:
        """float32 sigma0 of every value of an 8/16-bit band under ``rad`` (cached per scene)."""
        key = (np.dtype(dtype).str, rad.encoding, rad.gain)
        if key not in self._luts:
            values = np.arange(np.iinfo(dtype).max + 1, dtype=np.float64)
            self._luts[key] = to_sigma0(values, rad.encoding, rad.gain).astype(np.float32)
        return self._luts[key]

    def _optical(self, raw: np.ndarray, win: tuple[int, int, int, int],
                 absent: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        data = raw.astype(np.float64)
        valid = np.all(np.isfinite(data), axis=0)
        if absent is not None:
            valid &= ~absent  # before the reflectance check, so fill values never count in the median
        for b in range(data.shape[0]):
            nd = self._header.nodata[b]
            if nd is not None and not math.isnan(nd):
                valid &= raw[b] != nd
            if self._extra_nodata is not None:
                valid &= raw[b] != self._extra_nodata
        data[:, ~valid] = 0.0
        for b, name in enumerate(self.bands):
            cal = self._calibration[b] if b < len(self._calibration) else None
            if cal is not None:
                data[b] = data[b] * cal.scale + cal.offset
            elif name not in THERMAL_BANDS:
                if self._reflectance_scale is not None:
                    data[b] *= self._reflectance_scale
                else:
                    check_float_reflectance(data[b], valid, f"'{name}'", win, self.path,
                                            f"open with reflectance_scale=1e-4 or give bands.{name}.scale in "
                                            f"{self.stem}{SIDECAR_SUFFIX}")
        data[:, ~valid] = 0.0
        return data.astype(np.float32), valid

    # ---------------------------------------------------------------- geolocation
    def pixel_to_lonlat(self, rows: np.ndarray, cols: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Array-index coordinates (pixel [i, j] centre = (i, j)) -> WGS84 (lon, lat) degrees.

        Order of sources: the TIFF's CRS + transform; its GCPs; the Capella sidecar's geotransform;
        the sidecar's slant-plane geometry (approximate, see :mod:`pipelines.scene.geo`).
        """
        r = np.asarray(rows, dtype=np.float64)
        c = np.asarray(cols, dtype=np.float64)
        try:
            r, c = np.broadcast_arrays(r, c)
        except ValueError:
            raise SceneError(f"rows and cols must have the same shape, got {r.shape} and {c.shape}", self.path) from None
        if not (np.all(np.isfinite(r)) and np.all(np.isfinite(c))):
            raise SceneError("pixel_to_lonlat: rows/cols contain NaN or inf", self.path)
        h = self._header
        if h.crs is not None and not h.transform.is_identity:
            return self._affine_lonlat(h.transform, h.crs, r, c)
        if h.gcps:
            return self._gcp_lonlat(r, c)
        meta = self.metadata
        if isinstance(meta, CapellaMetadata):
            geom = meta.image_geometry
            if geom.get("type") == "geotransform":
                return self._affine_lonlat(*self._sidecar_geotransform(meta), r, c)
            return sidecar_lonlat(meta, r, c, self.sidecar_path or self.path)
        raise SceneError("cannot geolocate: the TIFF has no CRS/transform or GCPs and there is no Capella sidecar",
                         self.path)

    def _warp(self, crs: CRS, xs: np.ndarray, ys: np.ndarray, shape: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
        from rasterio.warp import transform as warp_transform

        if crs.to_epsg() == 4326:
            return xs.reshape(shape), ys.reshape(shape)
        try:
            lon, lat = warp_transform(crs, "EPSG:4326", xs.ravel().tolist(), ys.ravel().tolist())
        except Exception as exc:
            raise SceneError(f"cannot transform from the scene CRS to WGS84: {exc}", self.path) from exc
        return np.asarray(lon, dtype=np.float64).reshape(shape), np.asarray(lat, dtype=np.float64).reshape(shape)

    def _affine_lonlat(self, tr: Affine, crs: CRS, r: np.ndarray, c: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        x = tr.a * (c + 0.5) + tr.b * (r + 0.5) + tr.c
        y = tr.d * (c + 0.5) + tr.e * (r + 0.5) + tr.f
        return self._warp(crs, x, y, r.shape)

    def _gcp_lonlat(self, r: np.ndarray, c: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        from rasterio.transform import GCPTransformer

        h = self._header
        if h.gcp_crs is None:
            raise SceneError("cannot geolocate: the TIFF has GCPs but no GCP CRS", self.path)
        try:
            with GCPTransformer(list(h.gcps)) as t:
                xs, ys = t.xy(r.ravel().tolist(), c.ravel().tolist(), offset="center")
        except Exception as exc:
            raise SceneError(f"cannot geolocate with the TIFF's GCPs: {exc}", self.path) from exc
        return self._warp(h.gcp_crs, np.asarray(xs, dtype=np.float64), np.asarray(ys, dtype=np.float64), r.shape)

    def _sidecar_geotransform(self, meta: CapellaMetadata) -> tuple[Affine, CRS]:
        where = self.sidecar_path or self.path
        g = meta.image_geometry
        gt = g.get("geotransform")
        cs = g.get("coordinate_system") or {}
        if not (isinstance(gt, list) and len(gt) == 6 and all(isinstance(v, (int, float)) for v in gt)):
            raise SidecarError(f"key 'collect.image.image_geometry.geotransform' must be 6 numbers, got {gt!r}", where)
        wkt = cs.get("wkt") if isinstance(cs, dict) else None
        if not isinstance(wkt, str):
            raise SidecarError("key 'collect.image.image_geometry.coordinate_system.wkt' is missing", where)
        try:
            crs = CRS.from_wkt(wkt)
        except Exception as exc:
            raise SidecarError(f"key 'collect.image.image_geometry.coordinate_system.wkt' is not a valid CRS: {exc}",
                               where) from exc
        return Affine.from_gdal(*gt), crs


# --------------------------------------------------------------------------- opening


#: The TIFF samples each Capella data_type is stored as (see :func:`_storage`).
_NATIVE_STORAGE = {"UInt16": "uint16", "Float32": "float", "CInt16": "complex"}

#: Value sample for the encoding checks of float SAR data: the whole image up to this many pixels,
#: else a grid of SAMPLE_GRID x SAMPLE_GRID windows of SAMPLE_SIDE pixels (a few blocks each).
SAMPLE_WHOLE_PX = 1 << 22
SAMPLE_GRID = 4
SAMPLE_SIDE = 256


def _cannot_be_wrong(dtype: np.dtype, encoding: str) -> bool:
    """Unsigned amplitude / intensity and 8-bit display values cannot be wrong: nothing to check."""
    dt = np.dtype(dtype)
    return dt.kind == "u" and (encoding in ("amplitude", "intensity") or (encoding == "display" and dt.itemsize == 1))


def _storage(header: _Header) -> str | None:
    """What a SAR TIFF's samples are: "complex" (CInt16, or I/Q int16 bands), "uint8", "uint16",
    "float" (one band), or None for a layout no encoding can be read from."""
    dt = header.dtypes
    if (header.count == 1 and dt[0] in ("complex_int16", "complex64")) or (header.count == 2 and dt == ("int16", "int16")):
        return "complex"
    if header.count != 1:
        return None
    return {"uint8": "uint8", "uint16": "uint16", "float32": "float", "float64": "float"}.get(dt[0])


def _radiometry_hints(header: _Header, meta: CapellaMetadata, where: str | Path) -> list[Hint | None]:
    """What the metadata says about the encoding, most specific first (see pipelines.scene.radiometry).

    The sidecar's ``collect.image.radiometry`` counts only when it names an encoding outright:
    ``sigma_nought`` says which coefficient, not how it is stored.
    """
    hints: list[Hint | None] = []
    if meta.encoding is not None:
        hints.append(Hint(meta.encoding, True, f"key 'orbitwatch_radiometry' of {Path(str(where)).name}"))
    unit = header.units[0] if header.units else None
    hints.append(hint_from_text(unit, f"band unit {unit!r}"))
    desc = header.descriptions[0] if header.descriptions else None
    hints.append(hint_from_text(desc, f"band description {desc!r}"))
    for what, tags in (("band tag", header.band_tags), ("TIFF tag", header.tags)):
        for key, value in tags.items():
            if key.upper() in ENCODING_TAGS:
                hints.append(hint_from_text(str(value), f"{what} {key}={str(value)[:60]!r}"))
    side = hint_from_text(meta.radiometry, f"sidecar's collect.image.radiometry {meta.radiometry!r}")
    hints.append(side if side is not None and side.strong else None)
    return hints


def _value_sample(tif: Path, header: _Header) -> np.ndarray:
    """Valid values (float64) of a bounded sample of band 1: no-data, absent blocks, 0 and NaN left out.

    Why a sample and not the scene: the encoding is one per scene and is decided before the first
    tile; a few blocks say whether float data hold negative (dB) values as well as the whole would.
    """
    rows, cols = header.height, header.width
    if rows * cols <= SAMPLE_WHOLE_PX:
        windows = [(0, 0, rows, cols)]
    else:
        h, w = min(SAMPLE_SIDE, rows), min(SAMPLE_SIDE, cols)
        windows = [(int((rows - h) * (i + 0.5) / SAMPLE_GRID), int((cols - w) * (j + 0.5) / SAMPLE_GRID), h, w)
                   for i in range(SAMPLE_GRID) for j in range(SAMPLE_GRID)]
    cov = block_coverage(tif, rows, cols)
    nodata = header.nodata[0] if header.nodata else None
    out: list[np.ndarray] = []
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", NotGeoreferencedWarning)
            with rasterio.open(tif) as ds:
                for r, c, h, w in windows:
                    absent = cov.absent_mask(r, c, h, w) if cov is not None else None
                    if absent is not None and absent.all():
                        continue
                    win = Window(c, r, w, h)
                    band = ds.read(1, window=win).astype(np.float64)
                    ok = np.isfinite(band) & (band != 0)
                    if nodata is not None and not math.isnan(nodata):
                        ok &= band != nodata
                    if absent is not None:
                        ok &= ~absent
                    if header.has_mask:
                        ok &= ds.read_masks(1, window=win) != 0
                    out.append(band[ok])
    except Exception as exc:
        raise SceneError(f"cannot read a sample of pixels to check the radiometric encoding: {_error_detail(exc)}",
                         tif) from exc
    return np.concatenate(out) if out else np.zeros(0)


def _sar_radiometry(tif: Path, header: _Header, meta: CapellaMetadata, where: str | Path,
                    override: str) -> Radiometry:
    """Decide and check the encoding of a SAR TIFF (see :mod:`pipelines.scene.radiometry`).

    Refuses, as before, a TIFF whose samples are not the sidecar's data type, unless the scene
    says (or ``override`` says) what the converted pixels are, or they are 8-bit (display), or
    float values that can only be dB.
    """
    storage = _storage(header)
    native = storage == _NATIVE_STORAGE[meta.data_type] and not (storage == "float" and header.dtypes[0] != "float32")
    label = "sidecar" if isinstance(where, Path) else "metadata"
    mismatch = (f"unsupported data type: {label} data_type '{meta.data_type}' but the TIFF has {header.count} band(s) "
                f"of {', '.join(header.dtypes)} (expected UInt16: 1 uint16 band; Float32: 1 float32 band; "
                "CInt16: 1 complex_int16 band or 2 int16 bands I/Q)")
    if storage is None or (storage == "complex" and meta.data_type != "CInt16"):
        raise SidecarError(mismatch, tif)
    sample: list[np.ndarray] = []

    def values() -> np.ndarray:
        if not sample:
            sample.append(_value_sample(tif, header))
        return sample[0]

    def stats() -> ValueStats:
        return ValueStats.of(values())

    rad = decide(storage=storage, native=native, scale_factor=meta.scale_factor, data_type=meta.data_type,
                 override=override, hints=_radiometry_hints(header, meta, where), stats=stats, path=tif)
    if rad is None:
        seen = f"; its values ({stats().describe()}) do not look like dB" if storage == "float" else ""
        raise SidecarError(f"{mismatch}{seen}. A converted product must say what its pixels are: pass --radiometry "
                           "amplitude|intensity|db|display, set the band unit or description (e.g. 'dB', "
                           "'amplitude', 'intensity'), or add \"orbitwatch_radiometry\" to the sidecar", tif)
    if storage == "float":
        v = values()
        check_values(v, np.ones(v.shape, dtype=bool), rad.encoding, tif, "in a sample of the scene",
                     rad.source == "override")
    log.info("%s: %s", tif.name, rad.note)
    return rad


def _open_sar(tif: Path, header: _Header, doc: dict, sidecar: Path | None, acquired: datetime | None = None,
              source: str = "sidecar", radiometry: str = "auto") -> Scene:
    """A Capella SAR scene; ``doc`` is the extended metadata, from ``sidecar`` or (``sidecar`` None)
    from the TIFF's ImageDescription tag (``source`` says which). ``radiometry``: the encoding of
    the pixels, or "auto" (see :mod:`pipelines.scene.radiometry`)."""
    where: str | Path = sidecar if sidecar is not None else f"{tif} [TIFFTAG_IMAGEDESCRIPTION]"
    meta = parse_sidecar(doc, where)
    what = "sidecar" if sidecar is not None else "the Capella metadata in the TIFF's ImageDescription"
    if (meta.rows, meta.columns) != (header.height, header.width):
        raise SidecarError(
            f"{what} says rows={meta.rows} columns={meta.columns} but the TIFF {tif.name} is "
            f"{header.height} rows x {header.width} columns", where)
    rad = _sar_radiometry(tif, header, meta, where, check_choice(radiometry, tif))
    when, src = resolve_acquired((meta.start, source), acquired, tif, "no acquisition time")
    scene = Scene(path=tif, kind="sar", header=header, acquired=when, acquired_source=src,
                  spacing_m=(meta.pixel_spacing_row, meta.pixel_spacing_column), bands=("sigma0",),
                  metadata=meta, sidecar_path=sidecar,
                  product="capella-bundle" if sidecar is not None else "capella-geotiff")
    scene.radiometry = rad
    return scene


def header_centre_lon(header: _Header) -> float | None:
    """Longitude of the image centre from the CRS + transform (None when not georeferenced)."""
    if header.crs is None or header.transform.is_identity:
        return None
    from rasterio.warp import transform as warp_transform

    x, y = header.transform @ (header.width / 2.0, header.height / 2.0)
    try:
        lon, _ = warp_transform(header.crs, "EPSG:4326", [x], [y])
    except Exception:
        return None
    return float(lon[0]) if lon and math.isfinite(lon[0]) else None


def _optical_acquired(tif: Path, header: _Header, doc: dict | None,
                      acquired: datetime | None = None) -> tuple[datetime, str]:
    """(time, source): sidecar, acquisition tag, product id, ``--acquired``, TIFFTAG_DATETIME."""
    own: tuple[datetime, str] | None = None
    if doc is not None and doc.get("acquired") is not None:
        own = (parse_timestamp(doc["acquired"]), "sidecar")  # validated by parse_optical_sidecar
    if own is None:
        hit = _tag(header.tags, ACQUISITION_TAGS)
        if hit is not None:
            key, value = hit
            try:
                own = (parse_timestamp(str(value)), f"tiff-tag:{key.upper()}")
            except ValueError:
                raise SceneError(f"TIFF tag {key}={value!r} is not a valid timestamp", tif) from None
    if own is None:
        pt = time_from_path(tif)
        if pt is not None and pt.source == "product-id-date":  # the time of day needs the longitude
            pt = time_from_path(tif, lon_deg=header_centre_lon(header))
        if pt is not None:
            log.info("%s: acquisition time %s from the %s product id %s%s", tif.name, pt.when.isoformat(),
                     pt.mission, pt.identifier,
                     " (date only: time of day from the overpass, +/- 30 min)" if pt.source == "product-id-date" else "")
            own = (pt.when, pt.source)
    if own is None:
        hit = _tag(header.tags, ("TIFFTAG_DATETIME",))
        if hit is not None:
            key, value = hit
            try:
                own = (parse_timestamp(str(value)), "tiff-tag:TIFFTAG_DATETIME")
            except ValueError:
                raise SceneError(f"TIFF tag {key}={value!r} is not a valid timestamp", tif) from None
            if acquired is None:
                log.warning("%s: no acquisition time in a sidecar, tag or product id; using TIFFTAG_DATETIME "
                            "(file creation time)", tif.name)
    return resolve_acquired(
        own, acquired, tif,
        f"no acquisition time: add \"acquired\" to {tif.stem}{SIDECAR_SUFFIX} or a TIFF tag "
        f"({', '.join(ACQUISITION_TAGS)} or TIFFTAG_DATETIME), or keep the provider's product id in the file "
        "name (Capella, Landsat, Sentinel-1/2)")


def _optical_spacing(tif: Path, header: _Header, doc: dict | None) -> tuple[float, float]:
    if doc is not None and doc.get("pixel_size_m") is not None:
        s = float(doc["pixel_size_m"])  # validated by parse_optical_sidecar
        return (s, s)
    spacing = metre_spacing(header.crs, header.transform)
    if spacing is not None:
        return spacing
    raise SceneError("cannot tell the pixel size in metres: the CRS is not projected in linear units and "
                     f"{tif.stem}{SIDECAR_SUFFIX} gives no \"pixel_size_m\"", tif)


def _open_optical(tif: Path, header: _Header, doc: dict | None, sidecar: Path | None,
                  names: tuple[str | None, ...], reflectance_scale: float | None,
                  acquired: datetime | None = None) -> Scene:
    calib_by_name = parse_optical_sidecar(doc, sidecar) if doc is not None else {}
    descs = header.descriptions
    if not any(names):
        found = ", ".join(repr(d) for d in descs)
        raise SceneError(f"optical TIFF with no recognisable band names; band descriptions found: [{found}] "
                         "(expected STAC common names like red/nir/swir16/lwir11, or Landsat/Sentinel-2 B-numbers)",
                         tif)
    unknown = [f"band {i + 1} {descs[i]!r}" for i, n in enumerate(names) if n is None]
    if unknown:
        raise SceneError(f"unrecognised optical band description(s): {', '.join(unknown)}", tif)
    seen: dict[str, int] = {}
    for i, n in enumerate(names):
        if n in seen:
            raise SceneError(f"duplicate band name '{n}': band {seen[n] + 1} ({descs[seen[n]]!r}) and band {i + 1} "
                             f"({descs[i]!r})", tif)
        seen[n] = i  # type: ignore[index]
    dtype = header.dtypes[0]
    if dtype not in _OPTICAL_DTYPES:
        raise SceneError(f"unsupported data type {dtype} for an optical tile (supported: {', '.join(_OPTICAL_DTYPES)})",
                         tif)
    calibration: list[BandCalibration | None] = []
    for i, n in enumerate(names):
        cal = calib_by_name.get(n) or (calib_by_name.get(descs[i]) if descs[i] else None)  # type: ignore[arg-type]
        if cal is not None:
            want = "kelvin" if n in THERMAL_BANDS else "reflectance"
            if cal.unit != want:
                raise SidecarError(f"band '{n}' must be calibrated to {want}, sidecar says unit '{cal.unit}'", sidecar)
        elif np.dtype(dtype).kind in "iu":
            raise SceneError(f"integer DN band '{n}' ({dtype}) needs a scale/offset: add bands.{n}.scale/offset to "
                             f"{tif.stem}{SIDECAR_SUFFIX}", tif)
        calibration.append(cal)
    extra_nodata = None
    if doc is not None and doc.get("nodata") is not None:
        extra_nodata = float(doc["nodata"])
    when, source = _optical_acquired(tif, header, doc, acquired)
    return Scene(path=tif, kind="optical", header=header, acquired=when, acquired_source=source,
                 spacing_m=_optical_spacing(tif, header, doc), bands=tuple(names),  # type: ignore[arg-type]
                 metadata=doc, sidecar_path=sidecar, calibration=tuple(calibration),
                 reflectance_scale=reflectance_scale, extra_nodata=extra_nodata)


def open_scene(path: str | Path, reflectance_scale: float | None = None,
               acquired: datetime | str | None = None, radiometry: str = "auto") -> Scene:
    """Open a scene from its ``.tif`` (or its ``_extended.json``), or a product; reads no pixel data
    (except a bounded sample of a float SAR image, see :func:`_value_sample`).

    Products (:mod:`pipelines.scene.products`): a Landsat Collection 2 ``*_MTL.json`` /
    ``*_MTL.txt`` (or its folder), a Sentinel-2 ``*.SAFE`` folder (or its ``MTD_MSIL*.xml``), a
    STAC Item JSON; a Capella GeoTIFF without sidecar is read with the metadata in its
    ImageDescription tag.

    ``reflectance_scale`` multiplies float optical reflective bands that have no sidecar scale
    (1e-4 for Sentinel-2 reflectance x 10,000 exports); it is ignored for SAR and thermal bands.
    ``acquired`` (``--acquired``) is the acquisition time for a scene that records none (see
    :mod:`pipelines.scene.acquisition`: it never overrides a time the scene records).
    ``radiometry`` (``--radiometry``): how SAR pixels encode backscatter, "auto" (decided from the
    metadata, the data type and the values) or one of intensity / amplitude / db / display; see
    :mod:`pipelines.scene.radiometry`. Ignored for optical scenes. RadiometryError when it is not
    one of those, or the pixels cannot be in that encoding.
    """
    from pipelines.scene.acquisition import parse_user_time

    p = Path(path)
    radiometry = check_choice(radiometry, p)
    if reflectance_scale is not None and (isinstance(reflectance_scale, bool)
                                          or not isinstance(reflectance_scale, (int, float))
                                          or not math.isfinite(reflectance_scale) or reflectance_scale <= 0):
        raise SceneError(f"reflectance_scale must be a positive number, got {reflectance_scale!r}", p)
    user_time = parse_user_time(acquired)
    if p.name.endswith(SIDECAR_SUFFIX):
        p = _tif_for(p)
    elif p.suffix.lower() not in TIFF_SUFFIXES:
        from pipelines.scene.products import open_product, product_kind

        if p.is_dir() or p.is_file():
            kind = product_kind(p)
            if kind is not None:
                return open_product(p, kind, reflectance_scale, user_time, radiometry)
            if p.is_dir():
                raise SceneError("a folder is one scene only when it is a Landsat Collection 2 product folder "
                                 "(*_MTL.json / *_MTL.txt) or a Sentinel-2 SAFE (MTD_MSIL1C.xml / "
                                 "MTD_MSIL2A.xml); scan it to find the scenes inside", p)
            if p.suffix.lower() == ".json":
                raise SceneError("not a scene: a .json scene is a STAC Item (\"type\": \"Feature\" with "
                                 "\"stac_version\"), a Landsat *_MTL.json or a *_extended.json sidecar", p)
    else:
        mtl = _landsat_mtl_for_band(p)
        if mtl is not None:
            from pipelines.scene.products.landsat import open_landsat

            log.info("%s is a band of the Landsat product %s: opening the product", p.name, mtl.name)
            return open_landsat(mtl, reflectance_scale, user_time)
    check_scene_path(p)
    header = _read_header(p)
    if header.driver not in ("GTiff", "COG"):
        raise SceneError(f"not a GeoTIFF (GDAL driver {header.driver})", p)
    if header.height <= 0 or header.width <= 0 or header.count <= 0:
        raise SceneError(f"empty raster ({header.count} bands, {header.height} x {header.width})", p)
    _check_header_size(p, header)
    sidecar = _sidecar_for(p)
    doc = load_json(sidecar) if sidecar.exists() else None
    if doc is not None:
        if "collect" in doc:
            return _open_sar(p, header, doc, sidecar, user_time, radiometry=radiometry)
        if is_optical_sidecar(doc):
            hint = doc.get("platform") if isinstance(doc.get("platform"), str) else None
            names = resolve_band_names(header.descriptions, hint or _platform_tag(header))
            return _open_optical(p, header, doc, sidecar, names, reflectance_scale, user_time)
        raise SidecarError("sidecar is neither Capella extended metadata (no 'collect') nor an orbitwatch optical "
                           "sidecar (no 'orbitwatch_optical')", sidecar)
    from pipelines.scene.products.capella import TAG_SOURCE, embedded_metadata

    embedded = embedded_metadata(header.tags)
    if embedded is not None:
        return _open_sar(p, header, embedded, None, user_time, TAG_SOURCE, radiometry)
    names = resolve_band_names(header.descriptions, _platform_tag(header))
    if any(names):
        return _open_optical(p, header, None, None, names, reflectance_scale, user_time)
    if header.count == 1 or header.dtypes[0].startswith("complex") or header.dtypes == ("int16", "int16"):
        raise SidecarError(f"missing sidecar {sidecar.name} (a single-band, complex or two-int16-band (I/Q) TIFF "
                           "without optical band names is SAR, which needs its Capella metadata for calibration; "
                           "there is none in the TIFF's ImageDescription tag either)", p)
    return _open_optical(p, header, None, None, names, reflectance_scale, user_time)


def _landsat_mtl_for_band(tif: Path) -> Path | None:
    """The MTL beside ``tif`` when ``tif`` is one file of a Landsat Collection 2 product."""
    from pipelines.scene.products.landsat import product_id_of

    pid = product_id_of(tif.name)
    if pid is None:
        return None
    for suffix in ("_MTL.json", "_MTL.txt"):
        cand = tif.with_name(pid + suffix)
        if cand.is_file():
            return cand
    return None


def _platform_tag(header: _Header) -> str | None:
    hit = _tag(header.tags, PLATFORM_TAGS)
    return str(hit[1]) if hit else None


def find_scenes(root: str | Path, broken_links: bool = False) -> list[Path]:
    """Every scene candidate under ``root`` (recursive, sorted); a file given directly is returned alone.

    Candidates are .tif/.tiff files, ``*_extended.json`` sidecars with no TIFF beside them (an
    orphaned sidecar means a lost image; :func:`open_scene` says so), and products, each ONE
    candidate whatever its number of files (:mod:`pipelines.scene.products`): a Landsat product's
    ``*_MTL.json`` (else ``*_MTL.txt``), a Sentinel-2 ``*.SAFE`` folder, a STAC Item JSON; a STAC
    Catalog / Collection adds the items it links to. Files that belong to a product (its band
    TIFFs, a STAC item's assets) are not listed on their own. ``root`` may itself be a product
    folder, an item or a catalog. ``broken_links=True`` also
    returns .tif/.tiff symlinks that lead nowhere (dangling, or a loop) so that a batch reports
    them instead of silently scanning fewer scenes than were delivered; off by default because
    such a path cannot be ``stat()``-ed, and callers that sort or fingerprint by ``stat()`` must
    be ready for that (``pipelines.batch.run_batch`` is). Directory symlinks are never followed,
    so a link loop cannot make the walk endless.
    """
    from pipelines.scene.products import claimed_files, product_kind
    from pipelines.scene.products.landsat import is_mtl, mtl_in
    from pipelines.scene.products.sentinel2 import is_safe
    from pipelines.scene.products.stac import catalog_items

    p = Path(root)
    if not p.exists():
        raise SceneError("scene folder or file does not exist", p)
    if not p.is_dir():
        if p.suffix.lower() == ".json" and _regular(p) and product_kind(p) == "stac-catalog":
            return sorted(catalog_items(p))
        return [p]
    if is_safe(p):
        return [p]
    found: dict[Path, None] = {}
    claimed: set[Path] = set()
    product_claims: set[Path] = set()  # files of Landsat products: a STAC item of only those is a duplicate
    items: list[Path] = []
    catalogs: list[Path] = []
    loose: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(p, followlinks=False):
        d = Path(dirpath)
        safes = [n for n in dirnames if is_safe(d / n) and not (d / n).is_symlink()]
        for n in safes:
            found.setdefault(d / n, None)
        dirnames[:] = sorted(n for n in dirnames if n not in safes)
        if any(is_mtl(d / n) for n in filenames):
            for mtl in mtl_in(d):
                found.setdefault(mtl, None)
                product_claims.update(_abs(f) for f in claimed_files(mtl, "landsat"))
        # os.walk lists dangling links and link loops with the files (it cannot tell they are dirs).
        tif_stems = {Path(n).stem for n in filenames if Path(n).suffix.lower() in TIFF_SUFFIXES}
        for n in filenames:
            f = d / n
            if f.suffix.lower() in TIFF_SUFFIXES:
                if broken_links or f.is_file():
                    loose.append(f)
            elif n.endswith(SIDECAR_SUFFIX):
                if n[: -len(SIDECAR_SUFFIX)] not in tif_stems:
                    loose.append(f)
            elif n.lower().endswith(".json") and not is_mtl(f) and _regular(f):
                kind = product_kind(f)
                if kind == "stac-item":
                    items.append(f)
                elif kind == "stac-item-collection":
                    found.setdefault(f, None)
                elif kind == "stac-catalog":
                    catalogs.append(f)
    for cat in catalogs:
        try:
            linked = catalog_items(cat)
        except SceneError as exc:  # a broken catalog is reported when its file is opened
            log.warning("%s", exc)
            found.setdefault(cat, None)
            continue
        known = {_abs(i) for i in items}
        items.extend(i for i in linked if _abs(i) not in known)
    for item in items:
        assets = [_abs(a) for a in claimed_files(item, "stac-item")] if item.is_file() else []
        images = [a for a in assets if a.suffix.lower() in (*TIFF_SUFFIXES, ".jp2")]
        if images and all(a in product_claims for a in images):
            # USGS ships <id>_SR_stac.json / _ST_stac.json inside the product folder: the MTL
            # already is this scene, and listing both would report every alert twice.
            log.info("%s: its assets are a Landsat product already listed by its MTL; not a scene of its own",
                     item.name)
            continue
        found.setdefault(item, None)
        claimed.update(assets)
    claimed |= product_claims
    for f in loose:
        if _abs(f) not in claimed:
            found.setdefault(f, None)
    return sorted(found)


def _abs(path: Path) -> Path:
    """An absolute, normalised path (symlinks not resolved: a link stays its own candidate)."""
    return Path(os.path.abspath(path))


def _regular(path: Path) -> bool:
    """True for a regular file (following links); a FIFO named *.json must never be opened."""
    try:
        return stat.S_ISREG(os.stat(path).st_mode)
    except OSError:
        return False
