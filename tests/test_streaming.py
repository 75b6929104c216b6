"""Streaming behaviour of pipelines.detect: prefetch, batching, errors, memory, CPU == CUDA.

Behaviour only, never wall time: overlap is shown with events (the reader starts tile k+1 while
the consumer still holds tile k), memory with a generous RSS bound that an implementation holding
the scene (or an uncapped GDAL cache) would break. A tiny deterministic SAR detector
(``test-peaks``, registered per test with monkeypatch) keeps these tests independent of the real
detectors' tuning; the real sar-cfar is used too where it is registered.
"""

from __future__ import annotations

import gc
import importlib.util
import shutil
import sys
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import pipelines.detect as detect_mod
from detectors import Detection, list_detectors, registry
from pipelines.batch import run_batch
from pipelines.detect import (
    ScanOptions,
    StageTimer,
    _group_tiles,
    prefetch_batches,
    prefetch_tiles,
    scan_scene,
)
from pipelines.errors import SceneError
from pipelines.scene import Tile, iter_tiles

ROOT = Path(__file__).resolve().parents[1]


# ---------------------------------------------------------------------------- helpers
class FakeScene:
    """Duck-typed Scene: read() returns the window offsets as data, optionally fails or blocks."""

    def __init__(self, stem: str = "fake", fail_at: int | None = None,
                 on_read: Any = None) -> None:
        self.stem = stem
        self.fail_at = fail_at
        self.on_read = on_read
        self.reads = 0
        self.lock = threading.Lock()

    def read(self, row_off: int, col_off: int, h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
        with self.lock:
            idx = self.reads
            self.reads += 1
        if self.on_read is not None:
            self.on_read(idx)
        if self.fail_at is not None and idx == self.fail_at:
            raise SceneError(f"cannot read window rows {row_off}..{row_off + h} (truncated TIFF?)", "fake.tif")
        data = np.full((1, h, w), row_off * 100_000 + col_off, dtype=np.float32)
        return data, np.ones((h, w), dtype=bool)


def _tiles(n_rows: int = 700, n_cols: int = 600, size: int = 128, overlap: int = 16) -> list[Tile]:
    return list(iter_tiles(n_rows, n_cols, size=size, overlap=overlap))


def _prefetch_threads(stem: str) -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == f"prefetch-{stem}" and t.is_alive()]


class PeakDetector:
    """Local maxima (5 x 5) above 1.0 sigma0 in valid pixels; batched with one max_pool call."""

    modality = "sar"
    name = "test-peaks"
    version = "0"

    def __init__(self, device: torch.device | str | None = None) -> None:
        self.device = torch.device(device) if device is not None else torch.device("cpu")
        self.batch_calls = 0

    def required_overlap_px(self, spacing_m: Any = None) -> int:
        return 16

    def _peaks(self, x: torch.Tensor, v: torch.Tensor) -> list[list[Detection]]:
        x = x.to(self.device) * v.to(self.device)
        mx = F.max_pool2d(x[:, None], 5, stride=1, padding=2)[:, 0]
        hit = (x >= mx) & (x > 1.0)
        b, r, c = hit.nonzero(as_tuple=True)  # only coordinates come back to the host
        vals = x[b, r, c].cpu().tolist()
        out: list[list[Detection]] = [[] for _ in range(x.shape[0])]
        for bi, ri, ci, s in zip(b.cpu().tolist(), r.cpu().tolist(), c.cpu().tolist(), vals):
            out[bi].append(Detection(row=float(ri), col=float(ci), score=min(1.0, s / 100.0),
                                     kind="vessel", detector=self.name))
        return out

    def detect(self, sigma0: torch.Tensor, *, spacing_m: Any, valid: torch.Tensor | None = None) -> list[Detection]:
        v = valid if valid is not None else torch.ones_like(sigma0, dtype=torch.bool)
        return self._peaks(sigma0[None], v[None])[0]

    def detect_batch(self, sigma0: torch.Tensor, *, spacing_m: Any,
                     valid: torch.Tensor | None = None) -> list[list[Detection]]:
        self.batch_calls += 1
        v = valid if valid is not None else torch.ones_like(sigma0, dtype=torch.bool)
        return self._peaks(sigma0, v)


@pytest.fixture
def peaks_detector(monkeypatch: pytest.MonkeyPatch) -> str:
    """Register ``test-peaks`` for one test (registry and detector cache restored afterwards)."""
    registry._load_builtins()
    monkeypatch.setitem(registry._FACTORIES, "test-peaks", PeakDetector)
    monkeypatch.setitem(registry._MODALITY, "test-peaks", "sar")
    monkeypatch.setattr(detect_mod, "_DETECTOR_CACHE", {})
    return "test-peaks"


def _peaks_scene(directory: Path, write_tiny_sar: Any, rows: int = 700, cols: int = 650, seed: int = 3,
                 name: str = "PEAKS") -> tuple[Path, list[tuple[int, int]]]:
    """Low clutter (sigma0 ~ 0.01) with isolated bright points (sigma0 100), some on tile seams."""
    rng = np.random.default_rng(seed)
    dn = rng.integers(5, 15, (rows, cols)).astype(np.uint16)
    pts = [(int(r), int(c)) for r, c in zip(rng.integers(3, rows - 3, 25), rng.integers(3, cols - 3, 25))]
    pts += [(112, 300), (300, 112), (224, 224)]  # near the cores' boundaries of 128-px tiles
    pts = [p for i, p in enumerate(pts) if all(abs(p[0] - q[0]) + abs(p[1] - q[1]) > 12 for q in pts[:i])]
    for r, c in pts:
        dn[r, c] = 1000
    return write_tiny_sar(directory, dn, name=name, scale_factor=1e-2), pts


def _alert_key(res: Any) -> list[tuple[Any, ...]]:
    return [(a.alert_id, a.kind, round(a.row, 6), round(a.col, 6), round(a.score, 6)) for a in res.alerts]


# ---------------------------------------------------------------------------- prefetch
def test_prefetch_yields_every_tile_exactly_once_in_order() -> None:
    tiles = _tiles()
    scene = FakeScene("order")
    got = list(prefetch_tiles(scene, tiles))
    assert [t for t, _, _ in got] == tiles
    assert scene.reads == len(tiles)
    for tile, data, valid in got:  # each payload belongs to its own tile
        assert data.shape == (1, tile.height, tile.width) and valid.shape == (tile.height, tile.width)
        assert data[0, 0, 0] == tile.row_off * 100_000 + tile.col_off
    assert not _prefetch_threads("order")


def test_prefetch_reader_error_surfaces_at_that_tile() -> None:
    tiles = _tiles()
    scene = FakeScene("boom", fail_at=5)
    seen = []
    with pytest.raises(SceneError, match="truncated TIFF"):
        for tile, _, _ in prefetch_tiles(scene, tiles):
            seen.append(tile)
    assert seen == tiles[:5]  # every tile before the bad one, none after
    assert not _prefetch_threads("boom")


def test_prefetch_stops_reader_when_consumer_stops_early() -> None:
    tiles = _tiles(2000, 2000, 128, 16)
    scene = FakeScene("early")
    gen = prefetch_tiles(scene, tiles, depth=2)
    for i, _ in enumerate(gen):
        if i == 1:
            break
    gen.close()
    assert not _prefetch_threads("early")
    assert scene.reads <= 2 + 2 + 1  # consumed + queue depth + the one in flight: not the whole scene
    assert len(tiles) > 100


def test_prefetch_stays_bounded_ahead_of_a_slow_consumer() -> None:
    """The reader never runs more than depth + 1 tiles ahead: host memory is a few tiles."""
    tiles = _tiles(1200, 1200, 128, 16)
    consumed = [0]
    worst = [0]

    def on_read(idx: int) -> None:
        worst[0] = max(worst[0], idx - consumed[0])

    scene = FakeScene("bounded", on_read=on_read)
    release = threading.Event()
    for i, _ in enumerate(prefetch_tiles(scene, tiles, depth=2)):
        if i == 0:
            release.wait(0.3)  # give the reader every chance to run ahead
        consumed[0] = i + 1
    assert worst[0] <= 2 + 1
    assert scene.reads == len(tiles)


def test_prefetch_reads_next_tile_while_consumer_holds_current() -> None:
    """Overlap, shown without timing: tile 1 is read while the consumer still holds tile 0."""
    started = {1: threading.Event()}

    def on_read(idx: int) -> None:
        if idx in started:
            started[idx].set()

    scene = FakeScene("overlap", on_read=on_read)
    gen = prefetch_tiles(scene, _tiles(), depth=2)
    next(gen)
    assert started[1].wait(10.0), "prefetch did not read ahead while the consumer computed"
    gen.close()


def test_group_tiles_batches_same_shape_consecutive_tiles() -> None:
    t = [Tile(0, 0, 64, 64, (0, 0, 1, 1)), Tile(0, 64, 64, 64, (0, 0, 1, 1)), Tile(0, 128, 64, 32, (0, 0, 1, 1)),
         Tile(64, 0, 64, 64, (0, 0, 1, 1)), Tile(64, 64, 64, 64, (0, 0, 1, 1)), Tile(64, 128, 64, 64, (0, 0, 1, 1))]
    groups = _group_tiles(t, 2)
    assert groups == [[t[0], t[1]], [t[2]], [t[3], t[4]], [t[5]]]
    assert [x for g in groups for x in g] == t


def test_prefetch_batches_stack_the_same_reads() -> None:
    tiles = _tiles()
    batched = list(prefetch_batches(FakeScene("b1"), tiles, batch_size=4))
    singles = list(prefetch_tiles(FakeScene("b2"), tiles))
    flat = [(g[i], d[i], v[i]) for g, d, v in batched for i in range(len(g))]
    assert [t for t, _, _ in flat] == tiles
    for (ta, da, va), (tb, db, vb) in zip(flat, singles):
        assert ta == tb and np.array_equal(da, db) and np.array_equal(va, vb)
    assert max(len(g) for g, _, _ in batched) == 4


# ---------------------------------------------------------------------------- scan_scene
def test_batched_and_unbatched_scans_give_identical_alerts(tmp_path: Path, write_tiny_sar: Any,
                                                           peaks_detector: str) -> None:
    tif, pts = _peaks_scene(tmp_path, write_tiny_sar)
    base = ScanOptions(detectors=[peaks_detector], device="cpu", tile_size=128)
    one = scan_scene(tif, ScanOptions(detectors=[peaks_detector], device="cpu", tile_size=128, batch_size=1))
    four = scan_scene(tif, ScanOptions(detectors=[peaks_detector], device="cpu", tile_size=128, batch_size=4))
    auto = scan_scene(tif, base)
    assert one.n_tiles > 8
    assert _alert_key(one) == _alert_key(four) == _alert_key(auto)
    assert sorted((int(a.row), int(a.col)) for a in one.alerts) == sorted(pts)  # each point once
    assert detect_mod.load_detector(peaks_detector, "cpu").batch_calls > 0  # the instance the scans used


@pytest.mark.skipif("sar-cfar" not in list_detectors("sar"), reason="sar-cfar is not registered in this checkout")
def test_batched_and_unbatched_cfar_scans_give_identical_alerts(tmp_path: Path) -> None:
    from detectors.synth.sar import make_sar_scene
    from pipelines.scene.write import write_sar_bundle

    # At 0.5 m the CFAR asks for ~1000 px of overlap (half the largest vessel plus its background
    # ring on each side), so scan_scene grows the 512 px request to 4 x overlap (~4000 px; see
    # test_cfar_tiles_hold_their_overlap). A scene wider than that is needed for two tiles, which
    # then share one shape and go through detect_batch together.
    sar = make_sar_scene(seed=5, rows=1024, cols=4608, n_vessels=4, n_lifeboats=4)
    tif = write_sar_bundle(tmp_path, "cfar_batch", sar, origin_utm=(500000.0, 4000000.0))
    one = scan_scene(tif, ScanOptions(detectors=["sar-cfar"], device="cpu", tile_size=512, batch_size=1))
    four = scan_scene(tif, ScanOptions(detectors=["sar-cfar"], device="cpu", tile_size=512, batch_size=4))
    assert one.n_tiles == four.n_tiles == 2
    assert one.alerts, "the scene's vessels should be found"
    assert _alert_key(one) == _alert_key(four)


@pytest.mark.skipif("sar-cfar" not in list_detectors("sar"), reason="sar-cfar is not registered in this checkout")
@pytest.mark.parametrize("rows, cols, spacing, requested", [
    (24_638, 24_103, (0.5, 0.5), 2048),  # Capella spotlight GEO at the default tile size
    (1024, 1024, (0.5, 0.5), 512),       # smaller than one grown tile: one window, no tiling
    (12_000, 30_000, (0.35, 0.8), 2048),  # anisotropic pixels
])
def test_cfar_tiles_hold_their_overlap(rows: int, cols: int, spacing: tuple[float, float], requested: int) -> None:
    """Tiles are grown to hold the CFAR's overlap, so tiling stays efficient at Capella sizes."""
    det = detect_mod.load_detector("sar-cfar", "cpu")

    class _Scene:
        kind = "sar"

    scene = _Scene()
    scene.rows, scene.cols, scene.spacing_m = rows, cols, spacing  # type: ignore[attr-defined]
    overlap = detect_mod._overlap_for([det], scene, None)  # type: ignore[arg-type]
    size = detect_mod._tile_size_for(overlap, requested, scene)  # type: ignore[arg-type]
    tiles = list(iter_tiles(rows, cols, size=size, overlap=min(overlap, size - 1)))
    read = sum(t.height * t.width for t in tiles) / (rows * cols)
    if max(rows, cols) <= 4 * overlap:
        assert len(tiles) == 1 and read == 1.0
        return
    assert size >= 4 * overlap > requested  # grown: a 2048 px tile would be half context
    assert read < 2.0  # each pixel read (and computed) < 2x; ~3.7x with 2048 px tiles at 0.5 m
    assert len({(t.height, t.width) for t in tiles}) == 1  # one shape: every batch is full
    cores = sum((t.core[2] - t.core[0]) * (t.core[3] - t.core[1]) for t in tiles)
    assert cores == rows * cols  # cores partition the scene: each object is owned by one tile


def test_stage_timer_records_every_stage(tmp_path: Path, write_tiny_sar: Any, peaks_detector: str) -> None:
    tif, _ = _peaks_scene(tmp_path, write_tiny_sar)
    timer = StageTimer()
    res = scan_scene(tif, ScanOptions(detectors=[peaks_detector], device="cpu", tile_size=128), timer=timer)
    for stage in ("open", "read", "read_wait", "h2d", "compute", "post", "total"):
        assert stage in timer.seconds, stage
    assert timer.calls["read"] == res.n_tiles
    assert timer.seconds["total"] == pytest.approx(res.seconds)
    assert all(0.0 <= v for v in timer.shares().values())
    untimed = scan_scene(tif, ScanOptions(detectors=[peaks_detector], device="cpu", tile_size=128))
    assert _alert_key(untimed) == _alert_key(res)


def test_truncated_tiff_surfaces_scene_error_and_batch_continues(tmp_path: Path, write_tiny_sar: Any,
                                                                 peaks_detector: str) -> None:
    good, _ = _peaks_scene(tmp_path, write_tiny_sar, rows=1024, cols=1024, name="GOOD")
    bad = tmp_path / "TRUNC.tif"
    shutil.copy(good, bad)
    shutil.copy(tmp_path / "GOOD_extended.json", tmp_path / "TRUNC_extended.json")
    with open(bad, "r+b") as fh:  # header and first rows intact, the rest gone
        fh.truncate(int(bad.stat().st_size * 0.6))
    opts = ScanOptions(detectors=[peaks_detector], device="cpu", tile_size=128)
    progress: list[int] = []
    with pytest.raises(SceneError, match="truncated") as err:
        scan_scene(bad, opts, on_tile=lambda i, n: progress.append(i))
    assert "TRUNC.tif" in str(err.value)
    # The reader checks at open that every block the header points to lies inside the file
    # (pipelines/scene/reader.py), so a truncated file now fails before its first tile; a read
    # failing in the middle of a scan is covered with FakeScene(fail_at=...) above.
    assert progress == []
    assert not _prefetch_threads("TRUNC")
    report = run_batch([bad, good], tmp_path / "alerts.geojson", opts, resume=False)
    assert [Path(f.path).name for f in report.failures] == ["TRUNC.tif"]
    assert [Path(p).name for p in report.scenes_ok] == ["GOOD.tif"]
    assert report.alerts > 0


def _load_throughput() -> Any:
    spec = importlib.util.spec_from_file_location("orbitwatch_bench_throughput", ROOT / "benchmarks" / "throughput.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod
    spec.loader.exec_module(mod)
    return mod


@pytest.mark.slow
def test_scan_memory_is_bounded_by_tiles_not_scene(tmp_path: Path, write_tiny_sar: Any, peaks_detector: str) -> None:
    """A 12288 x 12288 scene (302 MB uint16, 604 MB as float32) scanned in 512-px tiles.

    Holding the scene, or letting GDAL's block cache grow with it (it may keep 5 % of RAM),
    would exceed the bound; streaming needs a few tiles plus the capped GDAL cache.
    """
    psutil = pytest.importorskip("psutil")
    tp = _load_throughput()
    n = 12288
    tif, targets = tp.write_spotlight_scene(tmp_path, rows=n, cols=n, seed=1, block=512)
    small, _ = _peaks_scene(tmp_path, write_tiny_sar)
    opts = ScanOptions(detectors=[peaks_detector], device="cpu", tile_size=512)
    scan_scene(small, opts)  # warm-up: imports, allocator pools, GDAL driver
    gc.collect()
    with tp.RssSampler(interval=0.01) as rss:
        res = scan_scene(tif, opts)
    tile_bytes = 512 * 512 * (4 + 1)  # float32 sigma0 + bool valid
    scene_bytes = n * n * 4
    growth = rss.peak - rss.baseline
    bound = 32 * tile_bytes + detect_mod.GDAL_CACHE_MB * 2**20 + 48 * 2**20
    assert res.n_tiles > 500
    assert growth < bound < scene_bytes / 3, (growth / 2**20, bound / 2**20)
    assert psutil.Process().memory_info().rss - rss.baseline < bound


# ---------------------------------------------------------------------------- CUDA
@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_pinned_nonblocking_copies_survive_buffer_reuse() -> None:
    """_to_device drops its pinned staging tensor at once; later tiles must not corrupt earlier copies."""
    dev = torch.device("cuda")
    arrays = [np.full((2048, 2048), k, dtype=np.float32) for k in range(8)]
    on_gpu = [detect_mod._to_device(a, dev) for a in arrays]  # all queued before any sync
    torch.cuda.synchronize()
    for k, t in enumerate(on_gpu):
        assert t.is_cuda and float(t.min()) == k and float(t.max()) == k


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_scan_scene_on_cuda_equals_cpu(tmp_path: Path, write_tiny_sar: Any, peaks_detector: str) -> None:
    tif, _ = _peaks_scene(tmp_path, write_tiny_sar)
    names = [peaks_detector] + (["sar-cfar"] if "sar-cfar" in list_detectors("sar") else [])
    for name in names:
        cpu = scan_scene(tif, ScanOptions(detectors=[name], device="cpu", tile_size=128))
        gpu = scan_scene(tif, ScanOptions(detectors=[name], device="cuda", tile_size=128))  # batched (auto)
        assert [a.alert_id for a in cpu.alerts] == [a.alert_id for a in gpu.alerts], name
        for a, b in zip(cpu.alerts, gpu.alerts):
            assert a.row == pytest.approx(b.row, abs=1e-3) and a.col == pytest.approx(b.col, abs=1e-3)
            assert a.score == pytest.approx(b.score, abs=1e-4)
