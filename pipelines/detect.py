"""Stage 2-3 of the data path: scene bundle -> tiles -> detections -> alerts.

This is the one place that knows both worlds: it reads windows with rasterio (through
:mod:`pipelines.scene`), hands tensors to the pure-compute detectors, and turns their
tile-local detections into scene-level :class:`~pipelines.alerts.Alert` objects. Tiles overlap
by at least what each detector says it needs, and a detection is kept only by the tile whose
*core* contains it, so objects in overlaps are reported exactly once.

Streaming (why the scene size never matters): tiles are read on a background thread
(:func:`prefetch_tiles`) into a bounded queue while the detector computes on the previous ones;
GDAL's block cache is capped while reading (:data:`GDAL_CACHE_MB`), because uncapped it keeps up
to 5 % of physical RAM of decoded blocks and host memory would then grow with the scene; tiles of
the same shape are stacked into one batch for detectors that have ``detect_batch`` (one kernel
launch series per batch, not per tile); on CUDA the batch goes host->device from pinned memory
with a non-blocking copy. Peak host memory is therefore a few tiles (queue depth + the batch being
computed), whatever the scene size. :class:`StageTimer` attributes wall time to read, transfer,
compute and post-processing when a benchmark asks for it and costs nothing otherwise.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import queue
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import torch

from detectors import Detection, detector_modality, get_detector, list_detectors
from detectors.fire.clusters import cluster_fire_pixels, firemap_to_pixels
from pipelines.alerts.model import Alert, make_alert_id
from pipelines.errors import OrbitwatchError, SceneError, SceneTimeoutError, SceneTooLargeError, ScanOptionError
from pipelines.memory import keep_large_blocks
from pipelines.scene import Scene, Tile, iter_tiles, open_scene
from pipelines.scene.landmask import LandPlan
from pipelines.scene.tiling import dedupe_by_distance

log = logging.getLogger(__name__)

#: What runs when the user names no detector: the shipped detector for each modality. The
#: learned models win on data they never saw (benchmarks/results/eval_learned.json: SAR object F1
#: 0.81 vs 0.69 for the CFAR on fresh generated scenes, 0.77 vs 0.26 on the real SSDD holdout,
#: lifeboat recall 0.98 vs 0.64; SAR runs as ``sar-fused``: learned positions with the CFAR's
#: measured length/kind, see detectors/sar/fused.py; eval_fire_learned.json: fire pixel F1 0.94-0.95 vs ~0.6 and
#: cluster recall 0.99 vs 0.90-0.94 for the rules, no trap alerts for either).
DEFAULT_DETECTORS: dict[str, tuple[str, ...]] = {"sar": ("sar-fused",), "optical": ("fire-learned",)}

#: When a default learned detector cannot be loaded (its weights fail their checksum and no good
#: copy is left, say), the scan goes on with the classical detector of the same modality instead
#: of losing the scene, and the scene's notes say so. Only for defaults: a detector the user named
#: explicitly fails loudly.
CLASSICAL_FALLBACK: dict[str, str] = {"sar-fused": "sar-cfar", "sar-learned": "sar-cfar", "sar-learned-onnx": "sar-cfar",
                                      "fire-learned": "fire-rules", "fire-learned-onnx": "fire-rules"}

#: GDAL block-cache cap (MB) while a scan reads. Uncapped, GDAL may keep up to 5 % of physical
#: RAM of decoded blocks, i.e. host memory can grow with the scene up to that (measured with plain
#: rasterio window reads of a 134 MB tiled GeoTIFF: +136 MB RSS uncapped, +2 MB with this cap;
#: through scan_scene on a 302 MB scene we measured +16 MB capped and +20 MB with a 4 GB cap, so
#: here it is a guarantee rather than the main saving). Tiles are read once in row-major order;
#: the cache only has to hold the overlap strip shared with the previous tile row (cols x overlap
#: x 2 B, about 10 MB for a 24k-column spotlight scene), so 64 MB costs no re-reads.
GDAL_CACHE_MB = 64
#: Threads GDAL may use to decode the blocks of one window read (deflate/LZW/ZSTD GeoTIFFs,
#: GDAL >= 3.6): the issue measured a 594 Mpx deflate GEO taking 14.5 s of its 14.7 s in a
#: one-thread decoder on a 16-core GPU box. ``ALL_CPUS`` there; the environment's own
#: GDAL_NUM_THREADS wins, so an operator can keep cores for the detectors.
GDAL_DECODE_THREADS = "ALL_CPUS"

#: Default pixel budget (``--max-megapixels``), like Pillow's decompression-bomb guard: a scene
#: with more pixels is refused before any pixel is read. Sized from the largest real products we
#: know: a Capella spotlight SLC is about 1.8 Gpx, so about twice that. A header that claims more
#: (the 40-Gpx sparse bomb of tests/badinput/) is refused in the time it takes to read the header.
DEFAULT_MAX_MEGAPIXELS = 4000.0

#: Tiles per batch when ScanOptions.batch_size is None: batching amortises kernel launches and
#: host->device latency on a GPU; on a CPU it only adds memory, so it stays off there.
AUTO_BATCH_CUDA = 4


@dataclass(slots=True)
class ScanOptions:
    """How to scan: which detectors, on which device, with which tiles."""

    detectors: Sequence[str] | None = None  # None: DEFAULT_DETECTORS per scene kind
    device: str | None = "auto"
    tile_size: int = 2048
    overlap: int | None = None  # None: the largest overlap any chosen detector asks for
    #: Same-shape tiles stacked per ``detect_batch`` call; None: AUTO_BATCH_CUDA on CUDA, 1 on CPU.
    #: Results do not depend on it (tests/test_streaming.py checks batched == unbatched).
    batch_size: int | None = None
    #: Keyword options per detector name, passed to its constructor (``get_detector``): e.g.
    #: ``{"sar-fused": {"learned": {"fine_threshold": None}}}`` turns the learned detector's fine
    #: pass off. Parsed from ``--option NAME.KEY=VALUE`` by :func:`parse_detector_options`.
    detector_options: dict[str, dict[str, Any]] | None = None
    #: Pixel budget in megapixels (None: no budget); see :data:`DEFAULT_MAX_MEGAPIXELS`.
    max_megapixels: float | None = DEFAULT_MAX_MEGAPIXELS
    #: Time budget per scene in seconds (None: none). Checked between tile batches and while
    #: waiting on a read, so a scene stops within one batch's compute of its budget.
    scene_timeout_s: float | None = None
    #: How SAR pixels encode backscatter (``--radiometry``): "auto" (decided per scene from its
    #: metadata, data type and values) or intensity / amplitude / db / display; see
    #: :mod:`pipelines.scene.radiometry`. Each SAR scene's notes say what was used.
    radiometry: str = "auto"
    #: Acquisition time for scenes that record none (``--acquired``; see
    #: :mod:`pipelines.scene.acquisition`): it never overrides a time a scene records.
    acquired: datetime | None = None
    #: The user's land mask (``--land-mask``): a GeoJSON or raster file, read once per process
    #: (:func:`pipelines.scene.landmask.load_land_mask`); SAR land pixels are not scanned and
    #: detections centred on land are dropped. A path, so options stay small between tasks.
    land_mask: str | None = None
    #: Without a land mask: drop SAR detections deep inland per the packaged coastline
    #: (``--coastline``; off by default: GLOBE counts rivers and lakes as land); see
    #: :mod:`pipelines.scene.landmask`.
    coastline: bool = False

    def detectors_for(self, kind: str) -> list[str]:
        if not self.detectors:
            return [d for d in DEFAULT_DETECTORS[kind] if d in list_detectors(kind)]
        return [d for d in self.detectors if detector_modality(d) == kind]

    def options_for(self, name: str) -> dict[str, Any]:
        """The keyword options given for detector ``name`` (empty when none)."""
        return dict((self.detector_options or {}).get(name) or {})

    def validate(self) -> None:
        """Check names and options before any scene is read: unknown detectors, options for a
        detector this scan does not run (they would silently do nothing) and options its
        constructor rejects (by building it once; :func:`load_detector` keeps it for the scan).

        Raises UnknownDetectorError, or ScanOptionError naming the detector, its options and what
        its constructor said.
        """
        from pipelines.scene.radiometry import CHOICES as RADIOMETRY_CHOICES

        if not isinstance(self.radiometry, str) or self.radiometry.strip().lower() not in RADIOMETRY_CHOICES:
            raise ScanOptionError(f"--radiometry must be one of {', '.join(RADIOMETRY_CHOICES)}, got {self.radiometry!r}")
        for flag, unit, v in (("--max-megapixels", "megapixels", self.max_megapixels),
                              ("--scene-timeout", "seconds", self.scene_timeout_s)):
            if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 < v < float("inf")):
                raise ScanOptionError(f"{flag} must be a positive number of {unit}, got {v!r}")
        if self.acquired is not None and (not isinstance(self.acquired, datetime) or self.acquired.tzinfo is None):
            raise ScanOptionError(f"--acquired must be a timezone-aware datetime, got {self.acquired!r}")
        if not isinstance(self.coastline, bool):
            raise ScanOptionError(f"coastline must be true or false, got {self.coastline!r}")
        if self.land_mask is not None:
            from pipelines.scene.landmask import load_land_mask

            load_land_mask(self.land_mask)  # LandMaskError naming the file, before any scene is read
        running = set()
        for kind in ("sar", "optical"):
            running.update(self.detectors_for(kind))
        for name, opts in (self.detector_options or {}).items():
            detector_modality(name)  # unknown name -> UnknownDetectorError
            if name not in running:
                raise ScanOptionError(f"options given for {name}, which this scan does not run "
                                      f"(it runs {', '.join(sorted(running))})")
            if not isinstance(opts, dict):
                raise ScanOptionError(f"options for {name} must be a mapping of keyword -> value, got {opts!r}")
            from detectors.errors import DetectorError

            try:
                load_detector(name, self.device, opts)
            except DetectorError as exc:
                raise ScanOptionError(f"{name} with options {json.dumps(opts, default=str)}: {exc}") from exc


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
    #: Of the ``n_tiles`` full-frame tiles, how many a detector was spared: those over never-written
    #: TIFF blocks (not even read) and those whose every pixel read was no-data.
    tiles_skipped: int = 0
    #: What the land mask / packaged coastline did (see LandPlan.summary); None: nothing ran.
    land: dict[str, Any] | None = None

    def summary(self) -> dict[str, Any]:
        """The scene's line in a batch report (CLI manifest parts and the flows alike)."""
        return {"path": self.path, "scene": self.scene, "kind": self.kind, "alerts": len(self.alerts),
                "detectors": self.detectors, "tiles": self.n_tiles, "tiles_skipped": self.tiles_skipped,
                "megapixels": round(self.megapixels, 3), "seconds": round(self.seconds, 3),
                "notes": list(self.notes), **({"land": dict(self.land)} if self.land is not None else {})}


class Deadline:
    """A scene's time budget (``--scene-timeout``): raises SceneTimeoutError once it is spent.

    Why cooperative (checked between tile batches and while waiting on the reader) rather than a
    signal or a killed thread: a detector call cannot be interrupted safely half-way (CUDA work,
    ONNX Runtime sessions), and a kill would leave the batch and its outputs in an unknown state.
    A tile batch is bounded (a few seconds on a 2-core CPU), so the budget is kept to within one.
    A read that hangs (a stalled disk or network share) is not waited for past the budget.
    """

    def __init__(self, seconds: float | None, path: str | Path, start: float | None = None) -> None:
        self.seconds = seconds
        self.path = path
        self.start = time.perf_counter() if start is None else start

    def remaining(self) -> float | None:
        """Seconds left (may be negative); None without a budget."""
        if self.seconds is None:
            return None
        return self.seconds - (time.perf_counter() - self.start)

    def check(self, done: int = 0, total: int = 0) -> None:
        """Raise SceneTimeoutError when the budget is spent."""
        left = self.remaining()
        if left is not None and left <= 0:
            where = f" after {done} of {total} tile(s)" if total else ""
            raise SceneTimeoutError(
                f"scene ran past its time budget of {self.seconds:g} s (--scene-timeout){where}; stopped, "
                "and none of its alerts were kept (raise --scene-timeout, or rerun with --retry-failed)",
                self.path)


_NO_DEADLINE = Deadline(None, "")


class StageTimer:
    """Wall-clock seconds per pipeline stage, summed over a scan (benchmarks only).

    Why a separate object instead of always-on timing: honest per-stage numbers on CUDA need a
    ``torch.cuda.synchronize()`` at every stage boundary, which would serialise the very transfer
    and compute overlap the pipeline is built for. So timing is opt-in: pass a StageTimer to
    :func:`scan_scene` and it synchronises and reads clocks; pass nothing and each stage costs one
    no-op context manager (no clock read, no sync).

    Stages recorded by scan_scene: ``open`` (header + detector load), ``read`` (reader thread,
    overlapped with compute), ``read_wait`` (consumer blocked on the queue: read time *not*
    hidden), ``h2d`` (host->device), ``compute`` (detector calls), ``post`` (ownership, dedupe,
    clustering, alerts) and ``total``. ``read`` runs on another thread, so shares are reported
    against ``total`` and need not sum to 1.
    """

    def __init__(self, sync_cuda: bool = True) -> None:
        self.sync_cuda = sync_cuda
        self.seconds: dict[str, float] = {}
        self.calls: dict[str, int] = {}
        self._lock = threading.Lock()  # the reader thread adds "read" concurrently

    def add(self, name: str, seconds: float) -> None:
        """Account ``seconds`` to stage ``name`` (thread-safe)."""
        with self._lock:
            self.seconds[name] = self.seconds.get(name, 0.0) + seconds
            self.calls[name] = self.calls.get(name, 0) + 1

    def _sync(self, device: torch.device | None) -> None:
        if self.sync_cuda and device is not None and device.type == "cuda":
            torch.cuda.synchronize(device)

    @contextlib.contextmanager
    def stage(self, name: str, device: torch.device | None = None) -> Iterator[None]:
        """Time the block; on CUDA wait for queued work before and after so it is attributed here."""
        self._sync(device)
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self._sync(device)
            self.add(name, time.perf_counter() - t0)

    def shares(self) -> dict[str, float]:
        """Each stage's seconds as a fraction of ``total`` (empty until a scan finished)."""
        total = self.seconds.get("total", 0.0)
        if total <= 0:
            return {}
        return {k: v / total for k, v in self.seconds.items() if k != "total"}

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready summary: seconds, call counts and shares of the total."""
        return {"seconds": dict(self.seconds), "calls": dict(self.calls), "shares": self.shares()}


class _NoTimer:
    """What scan_scene uses without a StageTimer: every stage is the same reusable no-op."""

    __slots__ = ()
    _NULL = contextlib.nullcontext()

    def stage(self, name: str, device: torch.device | None = None) -> contextlib.AbstractContextManager[Any]:
        return self._NULL

    def add(self, name: str, seconds: float) -> None:
        return None


_NO_TIMER = _NoTimer()

_DETECTOR_CACHE: dict[tuple[str, str, str], Any] = {}


def load_detector(name: str, device: str | None, options: dict[str, Any] | None = None) -> Any:
    """Build each (detector, device, options) once per process: weights load and CUDA warm-up
    are not free."""
    key = (name, str(device), json.dumps(options or {}, sort_keys=True, default=str))
    if key not in _DETECTOR_CACHE:
        _DETECTOR_CACHE[key] = get_detector(name, device=device, **(options or {}))
    return _DETECTOR_CACHE[key]


#: Option keys that are not the detector's to take: the device comes from ScanOptions.device.
_RESERVED_OPTIONS = ("device",)


def _option_value(text: str) -> Any:
    """``0.5`` -> 0.5, ``true`` -> True, ``none``/``null`` -> None, ``[2, 4]`` -> [2, 4]; anything
    else stays a string (a path, a name)."""
    low = text.strip().lower()
    if low in ("none", "null"):
        return None
    if low in ("true", "false"):
        return low == "true"
    try:
        return json.loads(text)
    except ValueError:
        return text


def parse_detector_options(items: Sequence[str] | None) -> dict[str, dict[str, Any]] | None:
    """``["sar-learned.fine_threshold=none", "sar-fused.learned.score_threshold=0.5"]`` ->
    ``{"sar-learned": {"fine_threshold": None}, "sar-fused": {"learned": {"score_threshold": 0.5}}}``.

    Why dotted keys: ``sar-fused`` takes its inner detectors' options as mappings (``learned``,
    ``cfar``), so one syntax reaches every level. Values are JSON where they parse as JSON.
    Raises ScanOptionError naming the malformed item.
    """
    if not items:
        return None
    out: dict[str, dict[str, Any]] = {}
    for item in items:
        key, sep, value = item.partition("=")
        parts = [p.strip() for p in key.split(".")]
        if not sep or len(parts) < 2 or not all(parts):
            raise ScanOptionError(f"option {item!r} is not DETECTOR.KEY=VALUE "
                                  "(e.g. sar-fused.learned.fine_threshold=none)")
        if any(p in _RESERVED_OPTIONS for p in parts[1:]):
            raise ScanOptionError(f"option {item!r}: the device is set for the whole scan (--device), not per detector")
        node: dict[str, Any] = out.setdefault(parts[0], {})
        for p in parts[1:-1]:
            nxt = node.setdefault(p, {})
            if not isinstance(nxt, dict):
                raise ScanOptionError(f"option {item!r}: {p} was already given a value")
            node = nxt
        if isinstance(node.get(parts[-1]), dict):
            raise ScanOptionError(f"option {item!r}: {parts[-1]} already holds options of its own")
        node[parts[-1]] = _option_value(value)
    return out


def _load_detectors(names: list[str], options: ScanOptions, notes: list[str]) -> tuple[list[str], list[Any]]:
    """Load the chosen detectors; a default learned one that cannot load falls back to its
    classical counterpart (see :data:`CLASSICAL_FALLBACK`), with a note and a warning."""
    from detectors.errors import WeightsError

    used: list[str] = []
    dets: list[Any] = []
    for name in names:
        try:
            det = load_detector(name, options.device, options.options_for(name))
        except WeightsError as exc:
            fallback = CLASSICAL_FALLBACK.get(name)
            if options.detectors or fallback is None:
                raise
            log.warning("%s unavailable (%s); scanning with %s instead", name, exc, fallback)
            notes.append(f"{name} unavailable ({exc}); used {fallback}")
            name, det = fallback, load_detector(fallback, options.device, options.options_for(fallback))
        used.append(name)
        dets.append(det)
    return used, dets


def _overlap_for(detectors: list[Any], scene: Scene, requested: int | None) -> int:
    need = 0
    for det in detectors:
        fn = getattr(det, "required_overlap_px", None)
        if fn is not None:
            arg = scene.spacing_m if scene.kind == "sar" else float(min(scene.spacing_m))
            need = max(need, int(fn(arg)))
    return max(need, requested or 0)


def _tile_size_for(overlap: int, requested: int, scene: Scene) -> int:
    # A tile must be clearly larger than its overlap or most of each read is context. At 0.5 m the
    # CFAR asks for ~1000 px (half the largest vessel plus its background ring, on each side), so a
    # requested 2048 px tile grows to ~4000 px: every pixel is then read and computed ~1.75x
    # instead of ~3.7x (a Capella spotlight GEO: 64 tiles of one shape instead of 529).
    size = max(requested, 4 * overlap, 256)
    return int(min(size, max(scene.rows, scene.cols)))


def scan_scene(
    path: str | Path,
    options: ScanOptions | None = None,
    on_tile: Callable[[int, int], None] | None = None,
    timer: StageTimer | None = None,
) -> SceneResult:
    """Run the chosen detectors over one scene bundle and return its alerts.

    Raises SceneError (naming the file) when the bundle cannot be read; detector errors are
    re-raised as SceneError too, so a batch can record them per scene and go on. ``timer``
    (benchmarks) collects per-stage wall time; see :class:`StageTimer`.
    """
    options = options or ScanOptions()
    keep_large_blocks()  # per-tile buffers reused, not mapped and faulted in again (pipelines.memory)
    tm: StageTimer | _NoTimer = timer if timer is not None else _NO_TIMER
    t0 = time.perf_counter()
    t_open = t0
    deadline = Deadline(options.scene_timeout_s, path, start=t0)
    scene = open_scene(path, acquired=options.acquired, radiometry=getattr(options, "radiometry", "auto"))
    try:
        check_pixel_budget(scene, options.max_megapixels)
        names = options.detectors_for(scene.kind)
        if not names:
            raise SceneError(f"no selected detector handles {scene.kind} scenes "
                             f"(selected: {', '.join(options.detectors or [])})", path)
        notes: list[str] = [scene.radiometry.note] if scene.radiometry is not None else []
        land = LandPlan.for_scene(scene, getattr(options, "land_mask", None), getattr(options, "coastline", False))
        names, dets = _load_detectors(names, options, notes)
        overlap = _overlap_for(dets, scene, options.overlap)
        size = _tile_size_for(overlap, options.tile_size, scene)
        overlap = min(overlap, size - 1)
        tiles = list(iter_tiles(scene.rows, scene.cols, size=size, overlap=overlap))
        work, plan_note = plan_tiles(scene, tiles, size, overlap)
        if plan_note:
            notes.append(plan_note)
        for det in dets:  # a spacing the model was not trained for is processed, and said
            note = getattr(det, "spacing_note", None)
            said = note(scene.spacing_m) if callable(note) and scene.spacing_m else None
            if said:
                notes.append(said)
        tm.add("open", time.perf_counter() - t_open)
        deadline.check()
        progress = _Progress(on_tile, len(work))
        if scene.kind == "sar":
            batch = _batch_size_for(options.batch_size, dets)
            detections = _scan_sar(land.reading(scene), dets, work, progress, batch_size=batch, timer=tm,
                                   deadline=deadline)
        else:
            detections = _scan_optical(scene, dets, work, progress, notes, timer=tm, deadline=deadline)
        deadline.check(len(tiles), len(tiles))
        with tm.stage("post"):
            alerts = land.filter(detections_to_alerts(scene, detections))
            notes.extend(land.notes)
    except OrbitwatchError:
        raise
    except Exception as exc:  # a detector failing on this scene must not end the batch
        from detectors.errors import DetectorError

        if isinstance(exc, DetectorError):
            raise SceneError(f"detector failed: {exc}", path) from exc
        raise
    finally:
        scene.close()
    seconds = time.perf_counter() - t0
    tm.add("total", seconds)
    skipped = len(tiles) - (len(work) - progress.empty)
    if progress.empty:
        what = "no-data (nodata value, mask or NaN) or land" if land.scene_land is not None else \
            "no-data (nodata value, mask or NaN)"
        notes.append(f"{progress.empty} tile(s) read held only {what}: not handed to the detectors")
    return SceneResult(
        path=str(path), scene=scene.stem, kind=scene.kind, alerts=alerts, detectors=names,
        n_tiles=len(tiles), megapixels=scene.rows * scene.cols / 1e6,
        seconds=seconds, notes=notes, tiles_skipped=max(0, skipped), land=land.summary(),
    )


def check_pixel_budget(scene: Scene, max_megapixels: float | None) -> None:
    """Raise SceneTooLargeError when ``scene`` has more pixels than the budget (None: no budget).

    Called right after the header is read, before any pixel: a 40-gigapixel header over a few
    written blocks must cost the header, not a scan.
    """
    def fmt(v: float) -> str:
        return f"{v:,.0f}" if v >= 10 else f"{v:.2g}"

    mpx = scene.rows * scene.cols / 1e6
    if max_megapixels is not None and mpx > max_megapixels:
        raise SceneTooLargeError(
            f"scene is {scene.rows:,} x {scene.cols:,} pixels ({fmt(mpx)} Mpx), more than the pixel "
            f"budget of {fmt(max_megapixels)} Mpx; refused before reading any pixel (raise --max-megapixels "
            "if the scene is genuine)", scene.path)


def plan_tiles(scene: Scene, tiles: list[Tile], size: int, overlap: int) -> tuple[list[Tile], str | None]:
    """The windows worth reading, and a note for the scene's report when some were left out.

    Where the TIFF's block tables say blocks were never written (see
    :mod:`pipelines.scene.coverage`), only the bounding box of the written blocks is tiled (with
    the same tile size and overlap, cores partitioning that box: nothing outside it can hold a
    detection); each window is then cut to the written blocks it touches, and a window touching
    none is dropped unread. Why re-tile the box rather than cut the full-frame grid: a small
    written patch straddling a full-frame tile boundary would otherwise be computed once per tile
    that sees it (up to four times), so a mostly empty scene would cost several times its data.
    ``tiles`` (the full-frame grid) is returned unchanged when every block is written.
    """
    coverage = getattr(scene, "block_coverage", None)  # duck-typed scenes (tests, GPU boxes) have none
    cov = coverage() if coverage is not None else None
    if cov is None or cov.present.all():
        return tiles, None
    blocks = f"{int(cov.present.sum()):,} of {cov.present.size:,} TIFF blocks written"
    box = cov.data_bbox(0, 0, scene.rows, scene.cols)
    if box is None:
        return [], f"{blocks}: nothing to scan, all {len(tiles)} tile(s) skipped unread"
    r0, c0, r1, c1 = box
    h, w = r1 - r0, c1 - c0
    sub_size = int(min(size, max(h, w)))
    sub = iter_tiles(h, w, size=sub_size, overlap=min(overlap, sub_size - 1))
    out: list[Tile] = []
    for t in sub:
        t = Tile(row_off=t.row_off + r0, col_off=t.col_off + c0, height=t.height, width=t.width,
                 core=(t.core[0] + r0, t.core[1] + c0, t.core[2] + r0, t.core[3] + c0))
        cut = cov.data_bbox(t.row_off, t.col_off, t.height, t.width)
        if cut is None:
            continue
        a, b, c, d = cut
        out.append(t if (a, b, c - a, d - b) == (t.row_off, t.col_off, t.height, t.width)
                   else Tile(row_off=a, col_off=b, height=c - a, width=d - b, core=t.core))
    return out, (f"{blocks} ({100 * cov.fraction_present:.1f} %): scanned {len(out)} window(s) over the "
                 f"{h:,} x {w:,} px box that holds them instead of {len(tiles)} full-frame tile(s)")


class _Progress:
    """Tile progress for ``on_tile`` and the count of windows read that held only no-data."""

    def __init__(self, on_tile: Callable[[int, int], None] | None, total: int) -> None:
        self.on_tile, self.total, self.done, self.empty = on_tile, total, 0, 0

    def advance(self, n: int = 1, empty: int = 0) -> None:
        """``n`` windows finished, ``empty`` of them because every pixel read was no-data."""
        self.done += n
        self.empty += empty
        if self.on_tile:
            self.on_tile(self.done, self.total)


def _batch_size_for(requested: int | None, dets: list[Any]) -> int:
    """Tiles per batch: as asked, else AUTO_BATCH_CUDA when some detector can batch on CUDA."""
    if requested is not None:
        if int(requested) < 1:
            raise SceneError(f"batch_size must be >= 1, got {requested}")
        return int(requested)
    batched_cuda = any(hasattr(d, "detect_batch") and _device_of(d).type == "cuda" for d in dets)
    return AUTO_BATCH_CUDA if batched_cuda else 1


def _to_device(arr: np.ndarray, device: torch.device) -> torch.Tensor:
    """Host array -> tensor on ``device``; on CUDA a pinned, non-blocking copy.

    Why this is safe although the pinned tensor is a temporary that dies when we return:
    ``pin_memory()`` allocates from PyTorch's caching host allocator, and a non-blocking copy
    from such a block records a CUDA event on the copy's stream; the block is not handed out
    again until that event has completed, so a later tile cannot overwrite bytes still being
    copied (tests/test_streaming.py::test_pinned_nonblocking_copies_survive_buffer_reuse checks
    it on a GPU). The detector then runs on the same (current) stream, so it sees the finished
    copy without an explicit synchronize. On CPU the tensor shares the array's memory (no copy).
    """
    t = torch.from_numpy(np.ascontiguousarray(arr))
    if device.type == "cuda":
        t = t.pin_memory().to(device, non_blocking=True)
    return t


def _device_of(det: Any) -> torch.device:
    dev = getattr(det, "device", None)
    return torch.device(dev) if dev is not None else torch.device("cpu")


def _gdal_read_env() -> contextlib.AbstractContextManager[Any]:
    """rasterio environment for the reader thread: GDAL block cache capped at GDAL_CACHE_MB, block
    decoding on :data:`GDAL_DECODE_THREADS` threads (unless GDAL_NUM_THREADS is set)."""
    try:
        import rasterio
    except ImportError:  # a duck-typed Scene without rasterio (tests, GPU boxes): nothing to cap
        return contextlib.nullcontext()
    return rasterio.Env(GDAL_CACHEMAX=GDAL_CACHE_MB,
                        GDAL_NUM_THREADS=os.environ.get("GDAL_NUM_THREADS", GDAL_DECODE_THREADS))


def _prefetch(items: Sequence[Any], read: Callable[[Any], Any], depth: int, name: str,
              timer: StageTimer | _NoTimer, deadline: Deadline = _NO_DEADLINE) -> Iterator[Any]:
    """Yield ``read(item)`` for each item, computed on a background thread ``depth`` items ahead.

    Why a thread: rasterio/GDAL release the GIL while reading and decoding, so reads overlap
    with detector compute. The bounded queue caps how far the reader runs ahead, so host memory
    holds at most ``depth`` queued results + the one being read + the one the caller holds.
    An exception in the reader is re-raised in the caller at the item where it happened (the
    items before it are yielded first). When the caller stops early (break, exception,
    generator closed), the reader sees ``stop`` within 0.1 s and exits; we join it. With a
    ``deadline``, waiting for a read ends with SceneTimeoutError when the budget runs out.
    """
    q: queue.Queue[Any] = queue.Queue(maxsize=max(1, depth))
    stop = threading.Event()
    done = object()

    def put(item: Any) -> bool:
        while not stop.is_set():
            try:
                q.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def reader() -> None:
        try:
            with _gdal_read_env():
                for item in items:
                    if stop.is_set():
                        return
                    t0 = time.perf_counter()
                    out = read(item)
                    timer.add("read", time.perf_counter() - t0)
                    if not put(out):
                        return
        except BaseException as exc:  # handed to the consumer, never swallowed
            put(exc)
            return
        put(done)

    th = threading.Thread(target=reader, name=name, daemon=True)
    th.start()
    try:
        while True:
            t0 = time.perf_counter()
            while True:
                left = deadline.remaining()
                try:
                    item = q.get(timeout=None if left is None else max(0.05, min(left, 1.0)))
                    break
                except queue.Empty:
                    deadline.check()
            timer.add("read_wait", time.perf_counter() - t0)
            if item is done:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        th.join(timeout=5)
        if th.is_alive():  # a read stuck in GDAL: it is a daemon and will not block exit
            log.warning("%s: reader thread still busy after the scan stopped", name)


def prefetch_tiles(scene: Scene, tiles: list[Tile], depth: int = 2,
                   timer: StageTimer | None = None, deadline: Deadline = _NO_DEADLINE
                   ) -> Iterator[tuple[Tile, np.ndarray, np.ndarray]]:
    """Read tiles on a background thread while the caller computes on the previous one.

    Yields ``(tile, data, valid)`` for every tile exactly once, in order. The bounded queue
    keeps at most ``depth`` tiles waiting in host memory whatever the scene size. An exception in
    the reader is re-raised in the caller, at the tile where it happened.
    """
    def read(tile: Tile) -> tuple[Tile, np.ndarray, np.ndarray]:
        data, valid = scene.read(tile.row_off, tile.col_off, tile.height, tile.width)
        return tile, data, valid

    yield from _prefetch(tiles, read, depth, f"prefetch-{scene.stem}",
                         timer if timer is not None else _NO_TIMER, deadline)


def _group_tiles(tiles: list[Tile], batch_size: int) -> list[list[Tile]]:
    """Consecutive tiles of the same shape, at most ``batch_size`` per group (order kept)."""
    groups: list[list[Tile]] = []
    for t in tiles:
        g = groups[-1] if groups else None
        if g is not None and len(g) < batch_size and (g[0].height, g[0].width) == (t.height, t.width):
            g.append(t)
        else:
            groups.append([t])
    return groups


def prefetch_batches(scene: Scene, tiles: list[Tile], batch_size: int, depth: int = 1,
                     timer: StageTimer | None = None, deadline: Deadline = _NO_DEADLINE
                     ) -> Iterator[tuple[list[Tile], np.ndarray, np.ndarray]]:
    """Like :func:`prefetch_tiles` but yields same-shape groups stacked: data (B, nb, h, w), valid (B, h, w).

    The reader thread does the stacking, so the caller gets one contiguous array per batch (one
    host->device copy). ``depth`` counts batches; memory is (depth + 2) batches at most.
    """
    def read(group: list[Tile]) -> tuple[list[Tile], np.ndarray, np.ndarray]:
        data: np.ndarray | None = None
        valid: np.ndarray | None = None
        for i, t in enumerate(group):
            d, v = scene.read(t.row_off, t.col_off, t.height, t.width)
            if data is None or valid is None:
                data = np.empty((len(group),) + d.shape, dtype=d.dtype)
                valid = np.empty((len(group),) + v.shape, dtype=v.dtype)
            data[i] = d
            valid[i] = v
        assert data is not None and valid is not None
        return group, data, valid

    yield from _prefetch(_group_tiles(tiles, batch_size), read, depth, f"prefetch-{scene.stem}",
                         timer if timer is not None else _NO_TIMER, deadline)


def _owned(found: list[Detection], tile: Tile, kept: list[Detection]) -> None:
    for d in found:
        d = d.shifted(tile.row_off, tile.col_off)
        if tile.owns(d.row, d.col):
            kept.append(d)


def _scan_sar(scene: Scene, dets: list[Any], tiles: list[Tile],
              progress: _Progress, batch_size: int = 1,
              timer: StageTimer | _NoTimer = _NO_TIMER, deadline: Deadline = _NO_DEADLINE) -> list[Detection]:
    """Every SAR detector on every tile, tiles read once, batched where a detector can batch."""
    kept: list[Detection] = []
    batches = prefetch_batches(scene, tiles, batch_size, depth=1 if batch_size > 1 else 2,
                               timer=timer if isinstance(timer, StageTimer) else None, deadline=deadline)
    for group, data, valid in batches:
        deadline.check(progress.done, progress.total)
        live = [i for i in range(len(group)) if valid[i].any()]  # all no-data: nothing to find
        if live:
            sub_data = data[live, 0] if len(live) < len(group) else data[:, 0]
            sub_valid = valid[live] if len(live) < len(group) else valid
            on_dev: dict[torch.device, tuple[torch.Tensor, torch.Tensor]] = {}
            for det in dets:
                dev = _device_of(det)
                if dev not in on_dev:  # one transfer per device, shared by its detectors
                    with timer.stage("h2d", dev):
                        on_dev[dev] = (_to_device(sub_data, dev), _to_device(sub_valid, dev))
                x, v = on_dev[dev]
                with timer.stage("compute", dev):
                    if len(live) > 1 and hasattr(det, "detect_batch"):
                        per_tile = det.detect_batch(x, spacing_m=scene.spacing_m, valid=v)
                    else:
                        per_tile = [det.detect(x[k], spacing_m=scene.spacing_m, valid=v[k])
                                    for k in range(len(live))]
                with timer.stage("post"):
                    for k, i in enumerate(live):
                        _owned(per_tile[k], group[i], kept)
            del on_dev
        progress.advance(len(group), empty=len(group) - len(live))
    with timer.stage("post"):
        # Objects cut by a core boundary can be seen (in part) by two tiles: collapse them.
        radius = max(2.0, 10.0 / max(min(scene.spacing_m), 1e-6))
        return dedupe_by_distance(kept, key_rc=lambda d: (d.row, d.col), radius_px=radius,
                                  score=lambda d: d.score)


def _scan_optical(scene: Scene, dets: list[Any], tiles: list[Tile],
                  progress: _Progress, notes: list[str],
                  timer: StageTimer | _NoTimer = _NO_TIMER, deadline: Deadline = _NO_DEADLINE) -> list[Detection]:
    """Every optical detector on every tile; each tile is read once for all detectors."""
    out: list[Detection] = []
    pixel_area = float(scene.spacing_m[0] * scene.spacing_m[1])
    acc: dict[int, dict[str, list[np.ndarray]]] = {
        j: {"rows": [], "cols": [], "conf": [], "inten": []} for j in range(len(dets))}
    tests_run: dict[int, tuple[str, ...]] = {j: () for j in range(len(dets))}
    tm_arg = timer if isinstance(timer, StageTimer) else None
    for tile, data, valid in prefetch_tiles(scene, tiles, timer=tm_arg, deadline=deadline):
        deadline.check(progress.done, progress.total)
        live = bool(valid.any())
        if live:
            on_dev: dict[torch.device, tuple[dict[str, torch.Tensor], torch.Tensor]] = {}
            for j, det in enumerate(dets):
                dev = _device_of(det)
                if dev not in on_dev:
                    with timer.stage("h2d", dev):
                        on_dev[dev] = ({name: _to_device(data[b], dev) for b, name in enumerate(scene.bands)},
                                       _to_device(valid, dev))
                bands, v = on_dev[dev]
                with timer.stage("compute", dev):
                    fmap = det.detect(bands, pixel_size_m=float(min(scene.spacing_m)), valid=v)
                with timer.stage("post"):
                    tests_run[j] = fmap.tests_run or tests_run[j]
                    # Only the fire pixels of the tile's core come back to the host.
                    r, c, cf, it = firemap_to_pixels(fmap, tile.row_off, tile.col_off, tile.core)
                    a = acc[j]
                    a["rows"].append(r)
                    a["cols"].append(c)
                    a["conf"].append(cf)
                    a["inten"].append(it)
        progress.advance(1, empty=0 if live else 1)
    with timer.stage("post"):
        for j, det in enumerate(dets):
            if tests_run[j]:
                notes.append(f"{det.name}: tests run: {', '.join(tests_run[j])}")
            a = acc[j]
            if a["rows"]:
                out.extend(cluster_fire_pixels(
                    np.concatenate(a["rows"]), np.concatenate(a["cols"]), np.concatenate(a["conf"]),
                    np.concatenate(a["inten"]), pixel_area_m2=pixel_area, detector=det.name,
                ))
    return out


def detections_to_alerts(scene: Scene, detections: list[Detection]) -> list[Alert]:
    """Georeference scene-level detections and give each a stable id."""
    if not detections:
        return []
    rows = np.array([d.row for d in detections], dtype=np.float64)
    cols = np.array([d.col for d in detections], dtype=np.float64)
    lons, lats = scene.pixel_to_lonlat(rows, cols)
    # Where the time came from, and the product's quality flags at each alert (cloud, water...),
    # for the operator to judge; both are GeoJSON properties, not carried by packets.
    source = getattr(scene, "acquired_source", None)
    flags_at = getattr(scene, "flags_at", None)
    flags = flags_at(rows, cols) if flags_at is not None and getattr(scene, "quality", None) else None
    alerts = []
    for k, (d, lon, lat) in enumerate(zip(detections, lons, lats)):
        attrs = dict(d.attrs)
        if source is not None:
            attrs.setdefault("acquired_source", source)
        if flags is not None:
            attrs.setdefault("quality_flags", flags[k])
        alerts.append(Alert(
            alert_id=make_alert_id(scene.stem, d.kind, d.row, d.col, d.detector),
            scene=scene.stem, kind=d.kind, score=float(min(max(d.score, 0.0), 1.0)),
            lon=float(lon), lat=float(lat), row=float(d.row), col=float(d.col),
            acquired=scene.acquired, detector=d.detector, length_m=d.length_m,
            width_m=d.width_m, heading_deg=d.heading_deg, pixels=d.pixels, area_m2=d.area_m2,
            attrs=attrs,
        ))
    alerts.sort(key=lambda a: (a.kind, -a.score, a.row, a.col))
    return alerts
