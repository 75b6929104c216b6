"""Stage 2-3 of the data path: scene bundle -> tiles -> detections -> alerts.

This is the one place that knows both worlds: it reads windows with rasterio (through
:mod:`pipelines.scene`), hands tensors to the pure-compute detectors, and turns their
tile-local detections into scene-level :class:`~pipelines.alerts.Alert` objects. Tiles overlap
by at least what each detector says it needs, and a detection is kept only by the tile whose
*core* contains it, so objects in overlaps are reported exactly once.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from detectors import Detection, detector_modality, get_detector, list_detectors
from detectors.fire.clusters import cluster_fire_pixels, firemap_to_pixels
from pipelines.alerts.model import Alert, make_alert_id
from pipelines.errors import OrbitwatchError, SceneError
from pipelines.scene import Scene, Tile, iter_tiles, open_scene
from pipelines.scene.tiling import dedupe_by_distance

log = logging.getLogger(__name__)

#: What runs when the user names no detector: the shipped detector for each modality.
DEFAULT_DETECTORS: dict[str, tuple[str, ...]] = {"sar": ("sar-cfar",), "optical": ("fire-rules",)}


@dataclass(slots=True)
class ScanOptions:
    """How to scan: which detectors, on which device, with which tiles."""

    detectors: Sequence[str] | None = None  # None: DEFAULT_DETECTORS per scene kind
    device: str | None = "auto"
    tile_size: int = 2048
    overlap: int | None = None  # None: the largest overlap any chosen detector asks for

    def detectors_for(self, kind: str) -> list[str]:
        if not self.detectors:
            return [d for d in DEFAULT_DETECTORS[kind] if d in list_detectors(kind)]
        return [d for d in self.detectors if detector_modality(d) == kind]


@dataclass(slots=True)
class SceneResult:
    """What one scene produced; small enough to pass between Prefect tasks."""

    path: str
    scene: str
    kind: str
    alerts: list[Alert]
    detectors: list[str]
    n_tiles: int
    megapixels: float
    seconds: float
    notes: list[str] = field(default_factory=list)


_DETECTOR_CACHE: dict[tuple[str, str], Any] = {}


def load_detector(name: str, device: str | None) -> Any:
    """Build each (detector, device) once per process: weights load and CUDA warm-up are not free."""
    key = (name, str(device))
    if key not in _DETECTOR_CACHE:
        _DETECTOR_CACHE[key] = get_detector(name, device=device)
    return _DETECTOR_CACHE[key]


def _overlap_for(detectors: list[Any], scene: Scene, requested: int | None) -> int:
    need = 0
    for det in detectors:
        fn = getattr(det, "required_overlap_px", None)
        if fn is not None:
            arg = scene.spacing_m if scene.kind == "sar" else float(min(scene.spacing_m))
            need = max(need, int(fn(arg)))
    return max(need, requested or 0)


def _tile_size_for(overlap: int, requested: int, scene: Scene) -> int:
    # A tile must be clearly larger than its overlap or most of each read is context.
    size = max(requested, 4 * overlap, 256)
    return int(min(size, max(scene.rows, scene.cols)))


def scan_scene(
    path: str | Path,
    options: ScanOptions | None = None,
    on_tile: Callable[[int, int], None] | None = None,
) -> SceneResult:
    """Run the chosen detectors over one scene bundle and return its alerts.

    Raises SceneError (naming the file) when the bundle cannot be read; detector errors are
    re-raised as SceneError too, so a batch can record them per scene and go on.
    """
    options = options or ScanOptions()
    t0 = time.perf_counter()
    scene = open_scene(path)
    try:
        names = options.detectors_for(scene.kind)
        if not names:
            raise SceneError(f"no selected detector handles {scene.kind} scenes "
                             f"(selected: {', '.join(options.detectors or [])})", path)
        dets = [load_detector(n, options.device) for n in names]
        overlap = _overlap_for(dets, scene, options.overlap)
        size = _tile_size_for(overlap, options.tile_size, scene)
        overlap = min(overlap, size - 1)
        tiles = list(iter_tiles(scene.rows, scene.cols, size=size, overlap=overlap))
        notes: list[str] = []
        if scene.kind == "sar":
            detections = _scan_sar(scene, dets, tiles, on_tile)
        else:
            detections = _scan_optical(scene, dets, tiles, on_tile, notes)
        alerts = detections_to_alerts(scene, detections)
    except OrbitwatchError:
        raise
    except Exception as exc:  # a detector failing on this scene must not end the batch
        from detectors.errors import DetectorError

        if isinstance(exc, DetectorError):
            raise SceneError(f"detector failed: {exc}", path) from exc
        raise
    finally:
        scene.close()
    return SceneResult(
        path=str(path), scene=scene.stem, kind=scene.kind, alerts=alerts, detectors=names,
        n_tiles=len(tiles), megapixels=scene.rows * scene.cols / 1e6,
        seconds=time.perf_counter() - t0, notes=notes,
    )


def _to_device(arr: np.ndarray, device: torch.device) -> torch.Tensor:
    t = torch.from_numpy(np.ascontiguousarray(arr))
    if device.type == "cuda":
        t = t.pin_memory().to(device, non_blocking=True)
    return t


def _device_of(det: Any) -> torch.device:
    dev = getattr(det, "device", None)
    return torch.device(dev) if dev is not None else torch.device("cpu")


def prefetch_tiles(scene: Scene, tiles: list[Tile], depth: int = 2
                   ) -> Iterator[tuple[Tile, np.ndarray, np.ndarray]]:
    """Read tiles on a background thread while the caller computes on the previous one.

    rasterio/GDAL release the GIL while decoding, so reads overlap with detector compute.
    The bounded queue keeps at most ``depth`` tiles in host memory whatever the scene size.
    An exception in the reader is re-raised in the caller, at the tile where it happened.
    """
    q: queue.Queue[Any] = queue.Queue(maxsize=max(1, depth))
    stop = threading.Event()
    done = object()

    def reader() -> None:
        try:
            for tile in tiles:
                if stop.is_set():
                    return
                data, valid = scene.read(tile.row_off, tile.col_off, tile.height, tile.width)
                while not stop.is_set():
                    try:
                        q.put((tile, data, valid), timeout=0.1)
                        break
                    except queue.Full:
                        continue
        except BaseException as exc:  # handed to the consumer, never swallowed
            q.put(exc)
            return
        q.put(done)

    th = threading.Thread(target=reader, name=f"prefetch-{scene.stem}", daemon=True)
    th.start()
    try:
        while True:
            item = q.get()
            if item is done:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        th.join(timeout=5)


def _scan_sar(scene: Scene, dets: list[Any], tiles: list[Tile],
              on_tile: Callable[[int, int], None] | None) -> list[Detection]:
    kept: list[Detection] = []
    for i, (tile, data, valid) in enumerate(prefetch_tiles(scene, tiles)):
        if valid.any():
            for det in dets:
                dev = _device_of(det)
                found = det.detect(_to_device(data[0], dev), spacing_m=scene.spacing_m,
                                   valid=_to_device(valid, dev))
                for d in found:
                    d = d.shifted(tile.row_off, tile.col_off)
                    if tile.owns(d.row, d.col):
                        kept.append(d)
        if on_tile:
            on_tile(i + 1, len(tiles))
    # Objects cut by a core boundary can be seen (in part) by two tiles: collapse them.
    radius = max(2.0, 10.0 / max(min(scene.spacing_m), 1e-6))
    return dedupe_by_distance(kept, key_rc=lambda d: (d.row, d.col), radius_px=radius,
                              score=lambda d: d.score)


def _scan_optical(scene: Scene, dets: list[Any], tiles: list[Tile],
                  on_tile: Callable[[int, int], None] | None, notes: list[str]) -> list[Detection]:
    out: list[Detection] = []
    pixel_area = float(scene.spacing_m[0] * scene.spacing_m[1])
    for det in dets:
        rows: list[np.ndarray] = []
        cols: list[np.ndarray] = []
        conf: list[np.ndarray] = []
        inten: list[np.ndarray] = []
        tests_run: tuple[str, ...] = ()
        dev = _device_of(det)
        for i, (tile, data, valid) in enumerate(prefetch_tiles(scene, tiles)):
            if valid.any():
                bands = {name: _to_device(data[b], dev) for b, name in enumerate(scene.bands)}
                fmap = det.detect(bands, pixel_size_m=float(min(scene.spacing_m)),
                                  valid=_to_device(valid, dev))
                tests_run = fmap.tests_run or tests_run
                r, c, cf, it = firemap_to_pixels(fmap, tile.row_off, tile.col_off, tile.core)
                rows.append(r)
                cols.append(c)
                conf.append(cf)
                inten.append(it)
            if on_tile:
                on_tile(i + 1, len(tiles))
        if tests_run:
            notes.append(f"{det.name}: tests run: {', '.join(tests_run)}")
        if rows:
            out.extend(cluster_fire_pixels(
                np.concatenate(rows), np.concatenate(cols), np.concatenate(conf),
                np.concatenate(inten), pixel_area_m2=pixel_area, detector=det.name,
            ))
    return out


def detections_to_alerts(scene: Scene, detections: list[Detection]) -> list[Alert]:
    """Georeference scene-level detections and give each a stable id."""
    if not detections:
        return []
    rows = np.array([d.row for d in detections], dtype=np.float64)
    cols = np.array([d.col for d in detections], dtype=np.float64)
    lons, lats = scene.pixel_to_lonlat(rows, cols)
    alerts = []
    for d, lon, lat in zip(detections, lons, lats):
        alerts.append(Alert(
            alert_id=make_alert_id(scene.stem, d.kind, d.row, d.col, d.detector),
            scene=scene.stem, kind=d.kind, score=float(min(max(d.score, 0.0), 1.0)),
            lon=float(lon), lat=float(lat), row=float(d.row), col=float(d.col),
            acquired=scene.acquired, detector=d.detector, length_m=d.length_m,
            width_m=d.width_m, heading_deg=d.heading_deg, pixels=d.pixels, area_m2=d.area_m2,
            attrs=dict(d.attrs),
        ))
    alerts.sort(key=lambda a: (a.kind, -a.score, a.row, a.col))
    return alerts
