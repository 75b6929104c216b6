"""Throughput of every detector/backend, against the classical NumPy/SciPy CFAR, in ONE run.

Why ratios in one run: the machines we benchmark on are shared and noisy, so absolute numbers
drift from run to run; a ratio against the NumPy/SciPy CFAR (``benchmarks/reference_cfar.py``)
measured on the same tiles, in the same process, minutes apart, is what the targets are about.

Two parts:

1. **Detector throughput** (needs only torch/numpy/scipy/onnxruntime, no rasterio, no prefect, so
   it runs on a bare GPU box): Mpx/s of each registered detector on each backend (torch CPU,
   torch CUDA, onnxruntime with the providers its session picked) over tile sizes and batch
   sizes, compute only (input already on the device), warm-up first, ``torch.cuda.synchronize()``
   around every timed call on CUDA, median of several repeats. The NumPy/SciPy CFAR runs on the
   same tiles and its detections are compared with sar-cfar's (count + positions).
2. **Scene level** (imports rasterio and pipelines.detect lazily): a Capella spotlight-sized GEO
   (24,638 x 24,103 uint16 = 1.19 GB with ``--scene-size full``) generated on the fly *window by
   window* into a tiled GeoTIFF (never whole in memory), then disk -> alerts through
   :func:`pipelines.detect.scan_scene` in a fresh subprocess, reporting total time, peak host RSS
   (psutil sampled in a thread + ``ru_maxrss``), peak GPU memory and the per-stage shares of
   :class:`pipelines.detect.StageTimer`.

Results: ``benchmarks/results/throughput.json`` and ``throughput.png``; a Markdown table on stdout.

    .venv/bin/python benchmarks/throughput.py --quick                # CI size, ~1-2 min on 2 cores
    .venv/bin/python benchmarks/throughput.py                        # default, a few minutes
    .venv/bin/python benchmarks/throughput.py --scene-size full      # + the 1.19 GB spotlight scene
    python benchmarks/throughput.py --device cuda --tile-sizes 512,1024,2048,4096 \\
        --batch-sizes 1,4,8 --scene-size full                        # GPU box
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import json
import logging
import math
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

#: OpenMP threads that wait at the end of a parallel region *sleep* instead of spinning (must be set
#: before torch starts its thread pool). Why: on a shared machine (our 2-vCPU runners host several
#: jobs) a spinning torch thread burns the core its partner needs, and every one of the CFAR's few
#: hundred ops waits a scheduler tick for the descheduled thread: measured 4-8 s instead of 0.6 s per
#: 2048 px tile under load. NumPy/SciPy (the reference) use no OpenMP, so this does not touch them.
#: An explicit OMP_WAIT_POLICY in the environment wins; the value is recorded in the results.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np  # noqa: E402
import torch  # noqa: E402

log = logging.getLogger("orbitwatch.bench.throughput")

RESULTS = ROOT / "benchmarks" / "results"

#: Capella spotlight GEO, the size the issue asks us to stream (rows x cols, uint16).
SPOTLIGHT_ROWS, SPOTLIGHT_COLS = 24_638, 24_103
SPOTLIGHT_SPACING_M = 0.5

#: Every detector the issue names, in table order; the ones not registered are listed as such.
DETECTORS: tuple[str, ...] = ("sar-cfar", "sar-learned", "sar-learned-onnx", "sar-fused",
                              "fire-rules", "fire-learned", "fire-learned-onnx")
#: Modules whose import registers detectors that may not be wired into the package yet.
OPTIONAL_MODULES: tuple[str, ...] = ("detectors.sar.cfar", "detectors.sar.learned", "detectors.sar.fused",
                                     "detectors.fire.learned")
MODULE_OF: dict[str, str] = {"sar-cfar": "detectors.sar.cfar", "sar-learned": "detectors.sar.learned",
                             "sar-learned-onnx": "detectors.sar.learned", "sar-fused": "detectors.sar.fused",
                             "fire-learned": "detectors.fire.learned",
                             "fire-learned-onnx": "detectors.fire.learned", "fire-rules": "detectors.fire.rules"}

#: Issue targets (ratios and rates), checked where they can be measured.
TARGET_CPU_CFAR_RATIO = 3.0
TARGET_GPU_SAR_SCENE_S = 1.0
TARGET_GPU_SAR_GPXS = 1.0
TARGET_GPU_FIRE_GPXS = 2.0

#: Same detection = same count and every position within this many pixels of its partner.
POSITION_TOL_PX = 1.0

PENDING_GPU = "pending: no GPU lent in this session"


# ============================================================================ machine description
def cpu_model() -> str:
    """CPU model string from /proc/cpuinfo (platform.processor() is empty on most Linux)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_info() -> dict[str, Any]:
    """What the numbers were measured on: they mean nothing without it."""
    info: dict[str, Any] = {
        "cpu_model": cpu_model(), "cpu_count": os.cpu_count(),
        "cpu_affinity": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "torch": torch.__version__, "torch_threads": torch.get_num_threads(),
        "cuda_available": torch.cuda.is_available(), "python": platform.python_version(),
        "numpy": np.__version__, "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"),
        "load_average_at_start": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
    }
    try:
        import psutil

        info["ram_gb"] = round(psutil.virtual_memory().total / 2**30, 1)
    except ImportError:
        pass
    if torch.cuda.is_available():
        p = torch.cuda.get_device_properties(0)
        info["gpu"] = p.name
        info["gpu_memory_gb"] = round(p.total_memory / 2**30, 1)
    try:
        import onnxruntime as ort

        info["onnxruntime"] = ort.__version__
        info["onnxruntime_providers"] = list(ort.get_available_providers())
    except ImportError:
        info["onnxruntime"] = None
    return info


# ============================================================================ timing
def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@dataclass
class Timing:
    """Median and spread of repeated calls; ``n`` is how many timed calls the median is over."""

    median_s: float
    min_s: float
    max_s: float
    n: int


def time_calls(fn: Callable[[], Any], device: torch.device, repeats: int, warmup: int = 1,
               budget_s: float = 20.0) -> Timing:
    """Median wall time of ``fn`` after ``warmup`` untimed calls.

    On CUDA every timed call is bracketed by ``torch.cuda.synchronize()`` so queued kernels are
    counted where they run. ``budget_s`` lowers the repeat count (never below 3) when one call is
    slow, so a slow CPU backend cannot turn a default run into an hour.
    """
    t_warm = 0.0
    for _ in range(max(1, warmup)):
        _sync(device)
        t0 = time.perf_counter()
        fn()
        _sync(device)
        t_warm = time.perf_counter() - t0
    n = repeats
    if t_warm > 0 and t_warm * repeats > budget_s:
        n = max(3, int(budget_s / t_warm))
    times = []
    for _ in range(n):
        _sync(device)
        t0 = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - t0)
    return Timing(median_s=statistics.median(times), min_s=min(times), max_s=max(times), n=n)


def time_interleaved(fns: Sequence[Callable[[], Any]], device: torch.device, repeats: int,
                     budget_s: float = 20.0) -> list[Timing]:
    """Median wall time of each of ``fns``, called in turn (a, b, a, b, ...) after one warm-up each.

    For ratios on a shared machine: load that comes and goes hits both sides alike, where timing
    all of ``a`` and then all of ``b`` would charge it to whichever ran at the time.
    """
    warm = []
    for fn in fns:
        _sync(device)
        t0 = time.perf_counter()
        fn()
        _sync(device)
        warm.append(time.perf_counter() - t0)
    n = repeats
    if sum(warm) * repeats > budget_s:
        n = max(3, int(budget_s / max(sum(warm), 1e-9)))
    times: list[list[float]] = [[] for _ in fns]
    for _ in range(n):
        for k, fn in enumerate(fns):
            _sync(device)
            t0 = time.perf_counter()
            fn()
            _sync(device)
            times[k].append(time.perf_counter() - t0)
    return [Timing(median_s=statistics.median(t), min_s=min(t), max_s=max(t), n=n) for t in times]


# ============================================================================ test tiles
@dataclass
class SarTiles:
    """sigma0 (as Scene.read returns it: (DN * scale)^2, float32) and valid, per tile size."""

    sigma0: np.ndarray  # (N, N) float32, N = the largest tile size
    valid: np.ndarray  # (N, N) bool
    spacing_m: tuple[float, float]

    def batch(self, size: int, b: int) -> tuple[np.ndarray, np.ndarray]:
        """``b`` different ``size`` x ``size`` tiles (rolled copies of the scene, top-left crop)."""
        xs, vs = [], []
        for k in range(b):
            shift = (k * size // 3, k * size // 5)
            xs.append(np.roll(self.sigma0, shift, axis=(0, 1))[:size, :size])
            vs.append(np.roll(self.valid, shift, axis=(0, 1))[:size, :size])
        return np.ascontiguousarray(np.stack(xs)), np.ascontiguousarray(np.stack(vs))


def make_sar_tiles(size: int, seed: int) -> SarTiles:
    """A seeded synthetic Capella GEO frame (clutter, land, vessels, lifeboats, traps)."""
    from detectors.synth.sar import make_sar_scene  # numpy/scipy only

    gen = min(size, 4096)
    s = make_sar_scene(seed, rows=gen, cols=gen, spacing_m=SPOTLIGHT_SPACING_M, n_vessels=6,
                       n_lifeboats=6, return_sigma0=False)
    sigma0 = s.sigma0_from_dn()
    valid = s.dn > 0
    sigma0[~valid] = 0.0
    if gen < size:  # bigger tiles: repeat the frame (same clutter statistics and target density)
        reps = math.ceil(size / gen)
        sigma0 = np.tile(sigma0, (reps, reps))[:size, :size]
        valid = np.tile(valid, (reps, reps))[:size, :size]
    return SarTiles(np.ascontiguousarray(sigma0, dtype=np.float32), np.ascontiguousarray(valid),
                    (s.spacing_m, s.spacing_m))


@dataclass
class OpticalTiles:
    """Landsat-8-like reflectance bands (+ valid) with fires and traps, per tile size."""

    bands: dict[str, np.ndarray]
    valid: np.ndarray
    pixel_size_m: float

    def tile(self, size: int, k: int = 0) -> tuple[dict[str, np.ndarray], np.ndarray]:
        shift = (k * size // 3, k * size // 5)
        b = {n: np.ascontiguousarray(np.roll(a, shift, axis=(0, 1))[:size, :size]) for n, a in self.bands.items()}
        return b, np.ascontiguousarray(np.roll(self.valid, shift, axis=(0, 1))[:size, :size])


def make_optical_tiles(size: int, seed: int) -> OpticalTiles:
    """Seeded synthetic Landsat-8 tile; generated at <= 2048 px and repeated beyond (the generator
    is slow and fire density, not extent, is what the rules' cost depends on)."""
    from detectors.synth.optical import make_optical_tile  # numpy/scipy only

    gen = min(size, 2048)
    t = make_optical_tile(seed=seed, rows=gen, cols=gen, pixel_size_m=30.0, sensor="landsat8",
                          n_fires=max(4, gen // 256))
    reps = math.ceil(size / gen)
    bands = {n: np.ascontiguousarray(np.tile(np.asarray(a, dtype=np.float32), (reps, reps))[:size, :size])
             for n, a in t.bands.items()}
    valid = np.ones((size, size), dtype=bool)
    for a in bands.values():
        valid &= np.isfinite(a)
    return OpticalTiles(bands, valid, 30.0)


# ============================================================================ detectors
def load_optional_detectors() -> dict[str, str]:
    """Import modules that register detectors not yet wired into ``detectors``; name -> why not."""
    problems: dict[str, str] = {}
    for mod in OPTIONAL_MODULES:
        try:
            importlib.import_module(mod)
        except ModuleNotFoundError as exc:
            if exc.name == mod:
                problems[mod] = "module not present in this checkout"
            else:
                problems[mod] = f"import failed: {exc}"
        except Exception as exc:  # weights missing, a bug in progress: list it, keep benchmarking
            problems[mod] = f"import failed: {type(exc).__name__}: {exc}"
    return problems


def backend_label(det: Any, name: str, device: torch.device) -> str:
    """torch-cpu / torch-cuda / onnxruntime-<provider actually used by the session>."""
    inner = getattr(det, "learned", det)  # sar-fused: its learned detector runs the network
    guard = getattr(inner, "sessions", None)  # sar-learned's runtime=onnxruntime (SessionGuard)
    sess = (getattr(guard, "session", None) or getattr(inner, "session", None)
            or getattr(det, "session", None) or getattr(det, "_session", None))
    if sess is not None and hasattr(sess, "get_providers"):
        prov = sess.get_providers()[0].replace("ExecutionProvider", "").lower()
        return f"onnxruntime-{prov}"
    if name.endswith("-onnx"):
        return f"onnxruntime-{device.type}"
    return f"torch-{device.type}"


def _det_count(out: Any) -> int:
    if isinstance(out, list):
        return sum(_det_count(o) for o in out) if out and isinstance(out[0], list) else len(out)
    mask = getattr(out, "mask", None)
    return int(mask.sum()) if mask is not None else -1


# ============================================================================ reference CFAR
def load_reference() -> tuple[Any | None, str | None]:
    """benchmarks/reference_cfar.py, imported by path (``benchmarks`` is not a package)."""
    path = ROOT / "benchmarks" / "reference_cfar.py"
    if not path.exists():
        return None, "benchmarks/reference_cfar.py not present in this checkout"
    try:
        spec = importlib.util.spec_from_file_location("orbitwatch_reference_cfar", path)
        assert spec is not None and spec.loader is not None
        mod = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = mod
        spec.loader.exec_module(mod)
        return mod, None
    except Exception as exc:
        return None, f"import failed: {type(exc).__name__}: {exc}"


def reference_detect(ref: Any, sigma0: np.ndarray, valid: np.ndarray, spacing_m: tuple[float, float]) -> list[Any]:
    """Run the NumPy/SciPy CFAR on one tile; returns its detections (objects with row/col)."""
    return ref.reference_detect(sigma0, spacing_m, valid=valid)


def positions(dets: Sequence[Any]) -> np.ndarray:
    """(n, 2) row/col of detections (objects with .row/.col, or mappings with row/col keys)."""
    rc = []
    for d in dets:
        if isinstance(d, dict):
            rc.append((float(d["row"]), float(d["col"])))
        else:
            rc.append((float(d.row), float(d.col)))
    return np.asarray(rc, dtype=np.float64).reshape(-1, 2)


def compare_detections(a: Sequence[Any], b: Sequence[Any], tol_px: float = POSITION_TOL_PX) -> dict[str, Any]:
    """Same count and a one-to-one pairing with every pair within ``tol_px`` (Hungarian matching)."""
    pa, pb = positions(a), positions(b)
    out: dict[str, Any] = {"n_torch": len(pa), "n_reference": len(pb), "tol_px": tol_px}
    if len(pa) == 0 or len(pb) == 0:
        out.update(max_offset_px=0.0, unmatched=abs(len(pa) - len(pb)), same=len(pa) == len(pb))
        return out
    from scipy.optimize import linear_sum_assignment
    from scipy.spatial.distance import cdist

    d = cdist(pa, pb)
    r, c = linear_sum_assignment(d)
    offs = d[r, c]
    matched = int((offs <= tol_px).sum())
    out.update(max_offset_px=float(offs.max()), unmatched=len(pa) + len(pb) - 2 * matched,
               same=len(pa) == len(pb) and matched == len(pa))
    return out


# ============================================================================ part 1: detectors
@dataclass
class Row:
    """One line of the performance table."""

    detector: str
    backend: str
    device: str
    tile: int
    batch: int
    mpx_s: float | None
    median_s: float | None
    repeats: int
    detections: int | None = None
    ratio_vs_numpy_cfar: float | None = None
    status: str = "measured"
    note: str = ""
    timing: dict[str, float] = field(default_factory=dict)


def bench_detectors(args: argparse.Namespace, devices: list[torch.device]) -> dict[str, Any]:
    """Part 1: every (detector, backend, tile, batch) plus the NumPy/SciPy CFAR on the same tiles."""
    from detectors import get_detector, list_detectors

    problems = load_optional_detectors()
    registered = set(list_detectors())
    ref, ref_problem = load_reference()
    tmax = max(args.tile_sizes)
    wanted = [d for d in DETECTORS if args.detectors is None or d in args.detectors]
    need_sar = any(d.startswith("sar") for d in wanted) or ref is not None
    need_opt = any(d.startswith("fire") for d in wanted)
    t0 = time.perf_counter()
    sar = make_sar_tiles(tmax, args.seed) if need_sar else None
    opt = make_optical_tiles(tmax, args.seed + 1) if need_opt else None
    log.info("test tiles generated in %.1f s", time.perf_counter() - t0)

    rows: list[Row] = []
    checks: list[dict[str, Any]] = []
    ref_rate: dict[int, float] = {}
    ref_dets: dict[int, list[Any]] = {}
    paired: dict[int, Timing] = {}  # sar-cfar torch-cpu batch 1, timed interleaved with the reference
    cpu_cfar = None
    if "sar-cfar" in wanted and "sar-cfar" in registered and any(d.type == "cpu" for d in devices):
        try:
            cpu_cfar = get_detector("sar-cfar", device="cpu")
        except Exception:  # reported by the detector loop below
            cpu_cfar = None

    # ---- the classical partner first, so every torch row can carry its ratio; the sar-cfar CPU
    # ---- row of the same tile is timed interleaved with it (the target is that ratio)
    if ref is not None and sar is not None:
        for size in args.tile_sizes:
            x, v = sar.batch(size, 1)
            holder: dict[str, Any] = {}

            def run_ref(x: np.ndarray = x[0], v: np.ndarray = v[0]) -> None:
                holder["d"] = reference_detect(ref, x, v, sar.spacing_m)

            if cpu_cfar is not None:
                xt, vt = torch.from_numpy(x[0]), torch.from_numpy(v[0])

                def run_cfar(xt: torch.Tensor = xt, vt: torch.Tensor = vt) -> None:
                    cpu_cfar.detect(xt, spacing_m=sar.spacing_m, valid=vt)

                tm, paired[size] = time_interleaved([run_ref, run_cfar], torch.device("cpu"), args.repeats,
                                                    budget_s=2 * args.budget_s)
            else:
                tm = time_calls(run_ref, torch.device("cpu"), args.repeats, budget_s=args.budget_s)
            ref_rate[size] = size * size / 1e6 / tm.median_s
            ref_dets[size] = holder["d"]
            rows.append(Row("numpy-scipy-cfar (reference)", "numpy/scipy", "cpu", size, 1,
                            ref_rate[size], tm.median_s, tm.n, len(holder["d"]), 1.0,
                            timing=asdict(tm)))
            log.info("reference CFAR %d: %.2f Mpx/s", size, ref_rate[size])
    else:
        rows.append(Row("numpy-scipy-cfar (reference)", "numpy/scipy", "cpu", 0, 1, None, None, 0,
                        status="not available", note=ref_problem or "no SAR tiles"))

    for name in wanted:
        if name not in registered:
            why = problems.get(MODULE_OF.get(name, ""))
            rows.append(Row(name, "-", "-", 0, 0, None, None, 0, status="not available",
                            note=f"not registered ({why or 'not wired into detectors/'})"))
            continue
        for dev in devices:
            try:
                det = get_detector(name, device=str(dev))
            except Exception as exc:
                rows.append(Row(name, f"?-{dev.type}", dev.type, 0, 0, None, None, 0, status="not available",
                                note=f"{type(exc).__name__}: {exc}"))
                continue
            backend = backend_label(det, name, dev)
            for size in args.tile_sizes:
                for b in args.batch_sizes:
                    if b > 1 and not hasattr(det, "detect_batch"):
                        continue  # nothing to batch: the per-tile row says it all
                    try:
                        pre = paired.get(size) if (name == "sar-cfar" and dev.type == "cpu" and b == 1) else None
                        row, check = _bench_one(det, name, backend, dev, size, b, sar, opt, args,
                                                ref_dets.get(size) if b == 1 else None, pre_timed=pre)
                    except torch.cuda.OutOfMemoryError as exc:
                        torch.cuda.empty_cache()
                        row, check = Row(name, backend, dev.type, size, b, None, None, 0, status="failed",
                                         note=f"CUDA out of memory: {exc}"), None
                    except Exception as exc:
                        log.exception("%s %s %d x%d failed", name, backend, size, b)
                        row, check = Row(name, backend, dev.type, size, b, None, None, 0, status="failed",
                                         note=f"{type(exc).__name__}: {exc}"), None
                    if row.mpx_s is not None and name.startswith("sar") and size in ref_rate:
                        row.ratio_vs_numpy_cfar = row.mpx_s / ref_rate[size]
                    rows.append(row)
                    if check is not None:
                        checks.append(check)
                    log.info("%-18s %-22s %5d x%d: %s Mpx/s", name, backend, size, b,
                             f"{row.mpx_s:.2f}" if row.mpx_s else row.status)
            del det
            if dev.type == "cuda":
                torch.cuda.empty_cache()
    return {"rows": [asdict(r) for r in rows], "detection_checks": checks,
            "problems": {**problems, **({"reference": ref_problem} if ref_problem else {})}}


def _bench_one(det: Any, name: str, backend: str, dev: torch.device, size: int, b: int,
               sar: SarTiles | None, opt: OpticalTiles | None, args: argparse.Namespace,
               ref_found: list[Any] | None, pre_timed: Timing | None = None) -> tuple[Row, dict[str, Any] | None]:
    """Time one (detector, backend, tile, batch); check detections against the reference.

    ``pre_timed``: the timing already measured interleaved with the reference (sar-cfar on the
    CPU, batch 1); the call is then made once, for the detection check only."""
    out: dict[str, Any] = {}
    check: dict[str, Any] | None = None
    if name.startswith("sar"):
        assert sar is not None
        xn, vn = sar.batch(size, b)
        x = torch.from_numpy(xn).to(dev)
        v = torch.from_numpy(vn).to(dev)
        if b == 1:
            x0, v0 = x[0], v[0]

            def fn() -> None:
                out["r"] = det.detect(x0, spacing_m=sar.spacing_m, valid=v0)
        else:
            def fn() -> None:
                out["r"] = det.detect_batch(x, spacing_m=sar.spacing_m, valid=v)
    else:
        assert opt is not None
        tiles = [opt.tile(size, k) for k in range(b)]
        if b == 1:
            bands = {n: torch.from_numpy(a).to(dev) for n, a in tiles[0][0].items()}
            v0 = torch.from_numpy(tiles[0][1]).to(dev)

            def fn() -> None:
                out["r"] = det.detect(bands, pixel_size_m=opt.pixel_size_m, valid=v0)
        else:
            bb = {n: torch.from_numpy(np.stack([t[0][n] for t in tiles])).to(dev) for n in tiles[0][0]}
            vb = torch.from_numpy(np.stack([t[1] for t in tiles])).to(dev)

            def fn() -> None:
                out["r"] = det.detect_batch(bb, pixel_size_m=opt.pixel_size_m, valid=vb)
    if pre_timed is not None:
        fn()
        tm = pre_timed
    else:
        tm = time_calls(fn, dev, args.repeats, budget_s=args.budget_s)
    mpx = b * size * size / 1e6
    row = Row(name, backend, dev.type, size, b, mpx / tm.median_s, tm.median_s, tm.n,
              _det_count(out["r"]), timing=asdict(tm))
    if name == "sar-cfar" and b == 1 and ref_found is not None:
        check = {"tile": size, "device": dev.type, **compare_detections(out["r"], ref_found)}
        row.note = ("timed interleaved with the reference; " if pre_timed is not None else "") + (
            "same detections as reference") if check["same"] else (
            f"DIFFERENT detections: {check['n_torch']} vs {check['n_reference']}, "
            f"max offset {check['max_offset_px']:.2f} px")
    if name == "sar-cfar" and b > 1 and sar is not None:  # batched == one by one, on these tiles
        xn, vn = sar.batch(size, b)
        singles = [det.detect(torch.from_numpy(xn[k]).to(dev), spacing_m=sar.spacing_m,
                              valid=torch.from_numpy(vn[k]).to(dev)) for k in range(b)]
        same = all(compare_detections(s, bt, tol_px=1e-3)["same"] for s, bt in zip(singles, out["r"]))
        row.note = "detect_batch == detect per tile" if same else "detect_batch DIFFERS from detect"
    return row, check


# ============================================================================ part 2: scene level
def free_disk_bytes(path: Path) -> int:
    return shutil.disk_usage(path).free


def spotlight_sidecar(rows: int, cols: int, seed: int, scale_factor: float, transform: Any, crs: Any) -> dict:
    """A Capella ``_extended.json`` for the generated GEO: the synthetic generator's sidecar (same
    keys as real products) resized, with the TIFF's geotransform and WKT filled in."""
    from detectors.synth.sar import make_sar_scene

    tiny = make_sar_scene(seed, rows=256, cols=256, spacing_m=SPOTLIGHT_SPACING_M, land=False,
                          nodata_border=False, n_vessels=1, n_lifeboats=0, return_sigma0=False)
    side = json.loads(json.dumps(tiny.sidecar))
    img = side["collect"]["image"]
    img.update(rows=rows, columns=cols, scale_factor=scale_factor, data_type="UInt16",
               length=rows * SPOTLIGHT_SPACING_M, width=cols * SPOTLIGHT_SPACING_M)
    img["image_geometry"]["geotransform"] = list(transform.to_gdal())
    img["image_geometry"]["coordinate_system"]["wkt"] = crs.to_wkt(version="WKT1_GDAL")
    return side


def plan_targets(rows: int, cols: int, seed: int, n: int) -> list[dict[str, Any]]:
    """Seeded vessels: position, length/width (px) and sigma0, well inside the frame."""
    rng = np.random.default_rng([seed, 7])
    out = []
    for _ in range(n):
        ln = int(rng.integers(16, 60))
        wd = max(3, ln // 6)
        along_rows = bool(rng.random() < 0.5)
        h, w = (ln, wd) if along_rows else (wd, ln)
        r0 = int(rng.integers(200, rows - 200 - h))
        c0 = int(rng.integers(200, cols - 200 - w))
        out.append({"kind": "vessel", "r0": r0, "c0": c0, "h": h, "w": w,
                    "row": r0 + (h - 1) / 2, "col": c0 + (w - 1) / 2,
                    "sigma0": float(10 ** rng.uniform(0.5, 1.5))})
    return out


def write_spotlight_scene(out_dir: Path, rows: int = SPOTLIGHT_ROWS, cols: int = SPOTLIGHT_COLS, seed: int = 0,
                          block: int = 1024, n_targets: int = 12, sea_db: float = -20.0, enl: float = 4.0
                          ) -> tuple[Path, list[dict[str, Any]]]:
    """Write a Capella-style uint16 GEO bundle of rows x cols, one ``block`` x ``block`` window at a time.

    Why windowed: the full spotlight scene is 1.19 GB on disk; building it in memory first would
    measure the generator's memory, not the pipeline's. Each window is seeded by (seed, window),
    so the file is reproducible. Clutter is K-distributed (Gamma texture on a 64 px grid, shape 10,
    times Gamma(ENL) speckle) around ``sea_db``; vessels are bright rectangles. Uncompressed tiled
    GeoTIFF (``block`` blocks), so the disk holds rows*cols*2 bytes like the product.
    Returns (tif path, planted targets).
    """
    import rasterio
    from rasterio.crs import CRS
    from rasterio.transform import Affine
    from rasterio.windows import Window

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    need = rows * cols * 2 + (256 << 20)
    if free_disk_bytes(out_dir) < need:
        raise OSError(f"need {need / 1e9:.2f} GB free in {out_dir} for a {rows} x {cols} scene, "
                      f"have {free_disk_bytes(out_dir) / 1e9:.2f} GB")
    stem = f"OW_SPOTLIGHT_GEO_{rows}x{cols}_s{seed}"
    tif = out_dir / f"{stem}.tif"
    targets = plan_targets(rows, cols, seed, n_targets)
    scale = math.sqrt(10 ** (40.0 / 10)) / 65535.0  # 40 dB at DN 65535, as the synth generator
    transform = Affine(SPOTLIGHT_SPACING_M, 0.0, 500000.0, 0.0, -SPOTLIGHT_SPACING_M, 4000000.0)
    crs = CRS.from_epsg(32633)
    cell = 64
    trng = np.random.default_rng([seed, 1])
    nu = 10.0
    texture = (trng.standard_gamma(nu, (rows // cell + 2, cols // cell + 2)) / nu).astype(np.float32)
    mean = np.float32(10 ** (sea_db / 10))
    profile = dict(driver="GTiff", width=cols, height=rows, count=1, dtype="uint16", crs=crs,
                   transform=transform, nodata=0, tiled=True, blockxsize=block, blockysize=block,
                   compress="none", BIGTIFF="IF_SAFER")
    tmp = tif.with_suffix(".tif.partial")
    t0 = time.perf_counter()
    with rasterio.open(tmp, "w", **profile) as ds:
        ds.set_band_description(1, "HH")
        for r0 in range(0, rows, block):
            h = min(block, rows - r0)
            for c0 in range(0, cols, block):
                w = min(block, cols - c0)
                rng = np.random.default_rng([seed, 2, r0, c0])
                tex = texture[r0 // cell: (r0 + h - 1) // cell + 1, c0 // cell: (c0 + w - 1) // cell + 1]
                tex = np.repeat(np.repeat(tex, cell, axis=0), cell, axis=1)
                ro, co = r0 % cell, c0 % cell
                sig = tex[ro:ro + h, co:co + w] * mean
                sig *= rng.standard_gamma(enl, (h, w), dtype=np.float32) / np.float32(enl)
                for t in targets:
                    a0, a1 = max(t["r0"], r0), min(t["r0"] + t["h"], r0 + h)
                    b0, b1 = max(t["c0"], c0), min(t["c0"] + t["w"], c0 + w)
                    if a0 < a1 and b0 < b1:
                        sig[a0 - r0:a1 - r0, b0 - c0:b1 - c0] += np.float32(t["sigma0"])
                dn = np.clip(np.rint(np.sqrt(sig) / np.float32(scale)), 1, 65535).astype(np.uint16)
                ds.write(dn[None], window=Window(c0, r0, w, h))
    side = spotlight_sidecar(rows, cols, seed, scale, transform, crs)
    (out_dir / f"{stem}_extended.json").write_text(json.dumps(side))
    os.replace(tmp, tif)
    log.info("wrote %s (%.2f GB) in %.1f s", tif, tif.stat().st_size / 1e9, time.perf_counter() - t0)
    return tif, targets


def ensure_spotlight_scene(out_dir: Path, rows: int, cols: int, seed: int) -> tuple[Path, list[dict[str, Any]], float]:
    """Reuse a complete earlier file of the same size/seed (writing 1.2 GB on a shared disk is not
    free); otherwise write it. Returns (tif, targets, seconds spent generating)."""
    stem = f"OW_SPOTLIGHT_GEO_{rows}x{cols}_s{seed}"
    tif = Path(out_dir) / f"{stem}.tif"
    if tif.exists() and (Path(out_dir) / f"{stem}_extended.json").exists():
        return tif, plan_targets(rows, cols, seed, 12), 0.0
    t0 = time.perf_counter()
    tif, targets = write_spotlight_scene(Path(out_dir), rows, cols, seed)
    return tif, targets, time.perf_counter() - t0


class RssSampler:
    """Peak resident set size of this process, sampled every ``interval`` s on a daemon thread.

    Why sampling and not only ``ru_maxrss``: ru_maxrss is the lifetime peak and includes whatever
    ran before the scan (imports, detector load); the sampler gives the peak *during* the scan and
    its growth over the baseline taken just before.
    """

    def __init__(self, interval: float = 0.02) -> None:
        import psutil

        self._proc = psutil.Process()
        self.interval = interval
        self.baseline = self._proc.memory_info().rss
        self.peak = self.baseline
        self._stop = threading.Event()
        self._th = threading.Thread(target=self._run, name="rss-sampler", daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self._proc.memory_info().rss)
            self._stop.wait(self.interval)

    def __enter__(self) -> "RssSampler":
        self._th.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._th.join()
        self.peak = max(self.peak, self._proc.memory_info().rss)


def scene_worker(spec: dict[str, Any]) -> dict[str, Any]:
    """Runs in a fresh subprocess: one scan_scene of the generated file, timed and measured."""
    from pipelines.detect import ScanOptions, StageTimer, scan_scene

    device = torch.device(spec["device"])
    opts = ScanOptions(detectors=spec["detectors"], device=spec["device"], tile_size=spec["tile_size"],
                       batch_size=spec.get("batch_size"))
    # Warm-up on a small window-sized scene is not possible without a second file; instead the
    # detector is built (weights, CUDA context) before the clock starts by load_detector's cache.
    from pipelines.detect import load_detector

    for n in spec["detectors"]:
        load_detector(n, spec["device"])
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    timer = StageTimer(sync_cuda=spec.get("stage_sync", True))
    with RssSampler() as rss:
        res = scan_scene(spec["path"], opts, timer=timer)
    out: dict[str, Any] = {
        "device": device.type, "detectors": spec["detectors"], "tile_size": spec["tile_size"],
        "batch_size": spec.get("batch_size"), "rows": spec["rows"], "cols": spec["cols"],
        "megapixels": res.megapixels, "n_tiles": res.n_tiles, "seconds_total": res.seconds,
        "mpx_s_end_to_end": res.megapixels / res.seconds, "alerts": len(res.alerts),
        "stages": timer.as_dict(),
        "rss_baseline_mb": rss.baseline / 2**20, "rss_peak_mb": rss.peak / 2**20,
        "rss_growth_mb": (rss.peak - rss.baseline) / 2**20,
        "ru_maxrss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "gpu_peak_allocated_mb": (torch.cuda.max_memory_allocated() / 2**20) if device.type == "cuda" else None,
    }
    compute = timer.seconds.get("compute", 0.0)
    out["compute_seconds"] = compute
    out["compute_gpx_s"] = res.megapixels / 1e3 / compute if compute > 0 else None
    found = 0
    for t in spec.get("targets", []):
        if any(abs(a.row - t["row"]) <= t["h"] / 2 + 3 and abs(a.col - t["col"]) <= t["w"] / 2 + 3
               for a in res.alerts):
            found += 1
    out["planted_targets"] = len(spec.get("targets", []))
    out["planted_targets_found"] = found
    return out


def bench_scene(args: argparse.Namespace, devices: list[torch.device]) -> dict[str, Any]:
    """Part 2: generate (or reuse) the scene, then one subprocess per device runs scan_scene."""
    try:
        import rasterio  # noqa: F401
    except ImportError:
        return {"status": "not available", "note": "rasterio is not installed on this machine (scene-level "
                "run needs it); the detector rows above do not"}
    from detectors import list_detectors

    load_optional_detectors()
    rows, cols = args.scene_rows, args.scene_cols
    sar_dets = [d for d in ("sar-cfar", "sar-learned") if d in list_detectors("sar")]  # sar-fused = both
    if args.scene_detectors:
        sar_dets = [d for d in args.scene_detectors if d in list_detectors("sar")]
    if not sar_dets:
        return {"status": "not available", "note": "no SAR detector registered in this checkout"}
    out_dir = Path(args.scene_dir)
    t_gen = 0.0
    try:
        tif, targets, t_gen = ensure_spotlight_scene(out_dir, rows, cols, args.seed)
    except OSError as exc:
        return {"status": "not available", "note": str(exc)}
    runs = []
    for dev in devices:
        spec = {"path": str(tif), "device": dev.type, "detectors": sar_dets, "tile_size": args.scene_tile,
                "batch_size": None, "rows": rows, "cols": cols, "targets": targets}
        with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as fh:
            json.dump(spec, fh)
            spec_path = fh.name
        try:
            proc = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--scene-worker", spec_path],
                                  capture_output=True, text=True, timeout=args.scene_timeout)
        except subprocess.TimeoutExpired:
            runs.append({"device": dev.type, "status": "timed out", "timeout_s": args.scene_timeout})
            continue
        finally:
            os.unlink(spec_path)
        if proc.returncode != 0:
            runs.append({"device": dev.type, "status": "failed", "stderr": proc.stderr[-4000:]})
            continue
        res = json.loads(proc.stdout.strip().splitlines()[-1])
        res["status"] = "measured"
        runs.append(res)
        log.info("scene %s on %s: %.1f s, RSS +%.0f MB", tif.name, dev.type, res["seconds_total"],
                 res["rss_growth_mb"])
    result = {"status": "measured", "path": str(tif), "rows": rows, "cols": cols,
              "file_gb": tif.stat().st_size / 1e9, "generate_seconds": t_gen, "runs": runs}
    if not args.keep_scene and t_gen > 0:
        tif.unlink(missing_ok=True)
        tif.with_name(tif.stem + "_extended.json").unlink(missing_ok=True)
        result["deleted_after_run"] = True
    return result


# ============================================================================ targets, table, chart
def evaluate_targets(det_part: dict[str, Any], scene_part: dict[str, Any], cuda: bool) -> dict[str, Any]:
    """Each issue target: met / not met / pending, from the measured numbers only."""
    rows = det_part["rows"]
    out: dict[str, Any] = {}
    cfar_cpu = [r for r in rows if r["detector"] == "sar-cfar" and r["device"] == "cpu" and r["mpx_s"]]
    checks = [c for c in det_part["detection_checks"] if c["device"] == "cpu"]
    if cfar_cpu and any(r["ratio_vs_numpy_cfar"] for r in cfar_cpu):
        by_tile = {}
        for r in cfar_cpu:
            if r["ratio_vs_numpy_cfar"] is not None:
                by_tile.setdefault(r["tile"], []).append(r["ratio_vs_numpy_cfar"])
        worst = min(max(v) for v in by_tile.values())
        same = bool(checks) and all(c["same"] for c in checks)
        out["cpu_cfar_3x"] = {
            "target": f"sar-cfar torch CPU >= {TARGET_CPU_CFAR_RATIO}x NumPy/SciPy CFAR Mpx/s, same detections",
            "best_ratio_per_tile": {k: max(v) for k, v in by_tile.items()},
            "worst_tile_best_ratio": worst, "same_detections": same,
            "met": bool(worst >= TARGET_CPU_CFAR_RATIO and same),
        }
    else:
        out["cpu_cfar_3x"] = {"target": "sar-cfar CPU >= 3x NumPy/SciPy", "met": None,
                              "status": "not measurable: sar-cfar or the reference is missing"}
    spot_mpx = SPOTLIGHT_ROWS * SPOTLIGHT_COLS / 1e6
    for key, prefix, target in (("gpu_sar", "sar-", TARGET_GPU_SAR_GPXS), ("gpu_fire", "fire-", TARGET_GPU_FIRE_GPXS)):
        gpu_rows = [r for r in rows if r["device"] == "cuda" and r["detector"].startswith(prefix) and r["mpx_s"]]
        if not cuda:
            out[key] = {"target": f"{prefix}* on GPU >= {target} Gpx/s", "met": None, "status": PENDING_GPU}
            continue
        best: dict[str, float] = {}
        for r in gpu_rows:
            best[r["detector"]] = max(best.get(r["detector"], 0.0), r["mpx_s"] / 1e3)
        out[key] = {"target": f"{prefix}* on GPU >= {target} Gpx/s", "best_gpx_s": best,
                    "met": bool(best) and all(v >= target for v in best.values())}
        if prefix == "sar-" and best:
            # Derived (not measured): compute seconds for a spotlight scene at the best tile rate.
            out[key]["derived_spotlight_compute_s"] = {k: spot_mpx / (v * 1e3) for k, v in best.items()}
            out[key]["derived_spotlight_compute_s_sum"] = sum(spot_mpx / (v * 1e3) for v in best.values())
    scene_cuda = [r for r in scene_part.get("runs", []) if r.get("device") == "cuda" and r.get("status") == "measured"]
    if scene_cuda:
        r = scene_cuda[0]
        out["gpu_scene_1s"] = {"target": f"full spotlight GEO through both SAR detectors < {TARGET_GPU_SAR_SCENE_S} s "
                                         "of compute", "compute_seconds": r["compute_seconds"],
                               "detectors": r["detectors"], "scene_rows": r["rows"], "scene_cols": r["cols"],
                               "met": bool(r["compute_seconds"] < TARGET_GPU_SAR_SCENE_S
                                           and (r["rows"], r["cols"]) == (SPOTLIGHT_ROWS, SPOTLIGHT_COLS))}
    else:
        out["gpu_scene_1s"] = {"target": "full spotlight GEO through both SAR detectors < 1 s of compute",
                               "met": None, "status": PENDING_GPU if not cuda else "scene run not done"}
    return out


def markdown_table(det_part: dict[str, Any], hardware: str) -> str:
    lines = ["| detector | backend | tile | batch | Mpx/s | x NumPy/SciPy CFAR | detections | hardware | note |",
             "|---|---|---:|---:|---:|---:|---:|---|---|"]
    for r in det_part["rows"]:
        if r["status"] != "measured":
            lines.append(f"| {r['detector']} | {r['backend']} | - | - | {r['status']} | - | - | {hardware} | "
                         f"{r['note']} |")
            continue
        ratio = f"{r['ratio_vs_numpy_cfar']:.2f}" if r["ratio_vs_numpy_cfar"] is not None else "-"
        lines.append(f"| {r['detector']} | {r['backend']} | {r['tile']} | {r['batch']} | {r['mpx_s']:.2f} | "
                     f"{ratio} | {r['detections']} | {hardware} | {r['note']} |")
    return "\n".join(lines)


def save_chart(det_part: dict[str, Any], path: Path, hardware: str) -> None:
    """Grouped bars: Mpx/s per (detector, backend, batch) for each tile size, log scale."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for r in det_part["rows"] if r["status"] == "measured" and r["mpx_s"]]
    if not rows:
        return
    tiles = sorted({r["tile"] for r in rows})
    series = sorted({(r["detector"], r["backend"], r["batch"]) for r in rows})
    fig, ax = plt.subplots(figsize=(max(8, 1.2 * len(tiles) * len(series) * 0.35 + 4), 5.5))
    width = 0.8 / max(1, len(series))
    for i, s in enumerate(series):
        vals = []
        for t in tiles:
            hit = [r["mpx_s"] for r in rows if (r["detector"], r["backend"], r["batch"]) == s and r["tile"] == t]
            vals.append(hit[0] if hit else 0.0)
        xs = np.arange(len(tiles)) + (i - (len(series) - 1) / 2) * width
        bars = ax.bar(xs, vals, width, label=f"{s[0]} [{s[1]}] b{s[2]}")
        for bx, v in zip(xs, vals):
            if v > 0:
                ax.text(bx, v, f"{v:.1f}", ha="center", va="bottom", fontsize=6, rotation=90)
        del bars
    ax.set_xticks(np.arange(len(tiles)), [f"{t} px" for t in tiles])
    ax.set_yscale("log")
    ax.set_ylabel("Mpx/s (median, compute only; log scale)")
    ax.set_title(f"orbitwatch detector throughput - {hardware}", fontsize=9)
    ax.legend(fontsize=7, ncol=2, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    ax.grid(axis="y", which="both", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


# ============================================================================ CLI
def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="CI size: tiles 512,1024, batch 1,4, 3 repeats, "
                    "2048 x 2048 scene")
    ap.add_argument("--device", choices=("cpu", "cuda", "auto"), default="auto",
                    help="auto: CPU, plus CUDA when available (both rows in one run)")
    ap.add_argument("--tile-sizes", type=lambda s: [int(v) for v in s.split(",")], default=None)
    ap.add_argument("--batch-sizes", type=lambda s: [int(v) for v in s.split(",")], default=None)
    ap.add_argument("--repeats", type=int, default=None, help="timed calls per case (median reported)")
    ap.add_argument("--budget-s", type=float, default=20.0, help="max seconds of timed calls per case "
                    "(repeats are lowered, never below 3)")
    ap.add_argument("--detectors", type=lambda s: s.split(","), default=None)
    ap.add_argument("--scene-size", default=None, help="'full' (24,638 x 24,103), N (N x N), RxC, or 'none'; "
                    "default 4096 (2048 with --quick)")
    ap.add_argument("--scene-tile", type=int, default=2048, help="tile size of the scene-level scan")
    ap.add_argument("--scene-detectors", type=lambda s: s.split(","), default=None,
                    help="SAR detectors of the scene run (default: sar-cfar and sar-learned where registered)")
    ap.add_argument("--scene-dir", default=tempfile.gettempdir())
    ap.add_argument("--scene-timeout", type=float, default=1800.0)
    ap.add_argument("--keep-scene", action="store_true", help="keep a freshly generated scene file for reuse")
    ap.add_argument("--seed", type=int, default=20240709)
    ap.add_argument("--out", default=str(RESULTS / "throughput.json"))
    ap.add_argument("--chart", default=None, help="PNG path (default: next to --out)")
    ap.add_argument("--scene-worker", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    args.tile_sizes = args.tile_sizes or ([512, 1024] if args.quick else [512, 1024, 2048])
    args.batch_sizes = args.batch_sizes or [1, 4]
    args.repeats = args.repeats or (3 if args.quick else 5)
    size = args.scene_size or ("2048" if args.quick else "4096")
    if size == "none":
        args.scene_rows = args.scene_cols = 0
    elif size == "full":
        args.scene_rows, args.scene_cols = SPOTLIGHT_ROWS, SPOTLIGHT_COLS
    elif "x" in size:
        args.scene_rows, args.scene_cols = (int(v) for v in size.split("x"))
    else:
        args.scene_rows = args.scene_cols = int(size)
    return args


def resolve_devices(choice: str) -> list[torch.device]:
    cuda = torch.cuda.is_available()
    if choice == "cuda":
        if not cuda:
            raise SystemExit("--device cuda: CUDA is not available on this machine")
        return [torch.device("cuda")]
    if choice == "cpu":
        return [torch.device("cpu")]
    return [torch.device("cpu")] + ([torch.device("cuda")] if cuda else [])


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    args = parse_args(argv)
    if args.scene_worker:
        logging.getLogger().setLevel(logging.WARNING)
        spec = json.loads(Path(args.scene_worker).read_text())
        print(json.dumps(scene_worker(spec)))
        return 0
    devices = resolve_devices(args.device)
    info = machine_info()
    hardware = (f"{info['cpu_model']}, {info['cpu_affinity'] or info['cpu_count']} vCPU"
                + (f", {info['gpu']}" if info.get("gpu") else ", no GPU"))
    t0 = time.perf_counter()
    det_part = bench_detectors(args, devices)
    scene_part: dict[str, Any] = {"status": "skipped", "note": "--scene-size none"}
    if args.scene_rows:
        scene_part = bench_scene(args, devices)
    cuda_measured = any(d.type == "cuda" for d in devices)
    doc = {
        "generated": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "machine": info, "hardware": hardware,
        "settings": {"tile_sizes": args.tile_sizes, "batch_sizes": args.batch_sizes, "repeats": args.repeats,
                     "budget_s": args.budget_s, "seed": args.seed, "devices": [d.type for d in devices],
                     "scene": [args.scene_rows, args.scene_cols], "scene_tile": args.scene_tile},
        "detectors": det_part, "scene": scene_part,
        "targets": evaluate_targets(det_part, scene_part, cuda_measured),
        "gpu": None if cuda_measured else PENDING_GPU,
        "wall_seconds": time.perf_counter() - t0,
    }
    if hasattr(os, "getloadavg"):
        info["load_average_at_end"] = list(os.getloadavg())
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(doc, indent=2, default=str))
    chart = Path(args.chart) if args.chart else out.with_suffix(".png")
    save_chart(det_part, chart, hardware)
    print(markdown_table(det_part, hardware))
    print(json.dumps({"targets": doc["targets"], "scene": scene_part}, indent=2, default=str))
    print(f"wrote {out} and {chart} in {doc['wall_seconds']:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
