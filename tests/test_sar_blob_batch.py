"""detectors/sar/blob_batch.py: every peak's blob at once, as tensor operations, against the per-peak
SciPy/NumPy reference (decode.peak_geometry); and the learned detector with its batched steps
(this one and ambiguity_batch.py) against its host loops.

The batched path is the default on CUDA only; here it runs on the CPU, where the same torch
operations give the same blobs. On a CUDA machine the last test runs it on the device too."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from detectors.sar import blob_batch as BB
from detectors.sar.decode import peak_geometry
from detectors.sar.network import PT_FILE
from detectors.synth.sar import make_sar_scene


def _tile(seed: int = 1, size: int = 320) -> tuple[np.ndarray, list[tuple[float, float, float, float]]]:
    """A speckled dB tile with hulls of many sizes and headings (some across the border, one large,
    some touching each other), and boxes on them: second peaks on a hull, small boxes on a hull,
    faint boxes on sea, an invalid (-100 dB) corner."""
    rng = np.random.default_rng(seed)
    db = (10 * np.log10(rng.exponential(1.0, (size, size)))).astype(np.float32)
    yy, xx = np.mgrid[0:size, 0:size]
    boxes = []
    hulls = [(rng.uniform(2, 40), rng.uniform(-5, size + 5), rng.uniform(-5, size + 5)) for _ in range(40)]
    hulls += [(150.0, size / 2, size / 2), (12.0, 60.0, 60.0), (12.0, 60.0, 74.0)]  # large; two touching
    for k, (length, r, c) in enumerate(hulls):
        width, th = rng.uniform(1, max(1.5, length / 4)), rng.uniform(0, math.pi)
        u = (yy - r) * math.cos(th) + (xx - c) * math.sin(th)
        v = -(yy - r) * math.sin(th) + (xx - c) * math.cos(th)
        m = (np.abs(u) <= length / 2) & (np.abs(v) <= width / 2)
        db[m] = np.maximum(db[m], rng.uniform(10, 30) + rng.normal(0, 2, int(m.sum()))).astype(np.float32)
        bh, bw = abs(length * math.cos(th)) + width, abs(length * math.sin(th)) + width
        boxes.append((r + rng.normal(0, 1), c + rng.normal(0, 1), bh, bw))
        if k % 4 == 0:  # a second peak on the same hull
            boxes.append((r + length / 4 * math.cos(th), c + length / 4 * math.sin(th), 0.8 * bh, 0.8 * bw))
        if k % 6 == 0:  # a much smaller box on it (a lifeboat against a hull keeps its own detection)
            boxes.append((r, c, 0.2 * bh, 0.2 * bw))
    db[:20, :30] = -100.0
    boxes += [(rng.uniform(0, size), rng.uniform(0, size), rng.uniform(1, 10), rng.uniform(1, 10)) for _ in range(30)]
    return db, boxes


@pytest.mark.parametrize("refine", [True, False])
def test_batched_geometry_is_the_per_peak_loop(refine: bool) -> None:
    db, boxes = _tile()
    med = float(np.median(db))
    taken: list = []
    ref = [peak_geometry(db, med, *b, taken, refine) for b in boxes]
    got = BB.peak_geometries(torch.from_numpy(db), med, boxes, refine)
    assert len(got) == len(ref)
    assert [g is None for g in got] == [g is None for g in ref]
    if refine:  # the fixture exercises every branch: merged second peaks, refined centres, faint boxes
        assert sum(g is None for g in ref) >= 3
        assert sum(g is not None and (g[0], g[1]) != b[:2] for g, b in zip(ref, boxes)) >= 20
        assert sum(g is not None and (g[0], g[1]) == b[:2] for g, b in zip(ref, boxes)) >= 10
    for a, b in zip(ref, got):
        if a is None:
            continue
        assert np.allclose(a[:4], b[:4], rtol=0, atol=1e-4), (a, b)
        assert abs((a[4] - b[4] + 90.0) % 180.0 - 90.0) < 1e-3, (a, b)  # heading, modulo 180


def test_no_peaks_and_degenerate_blobs() -> None:
    db = np.full((40, 40), -10.0, np.float32)
    assert BB.peak_geometries(torch.from_numpy(db), -10.0, [], True) == []
    db[20, 20] = 10.0  # one bright pixel: an isotropic blob (heading from eigh's tie, as the reference)
    db[5, 5:9] = 10.0  # a 4 px line along the columns, at the window's edge for a box at the corner
    boxes = [(20.0, 20.0, 3.0, 3.0), (5.0, 6.0, 2.0, 5.0), (30.0, 30.0, 4.0, 4.0), (0.0, 39.0, 1.0, 1.0)]
    taken: list = []
    ref = [peak_geometry(db, -10.0, *b, taken, True) for b in boxes]
    got = BB.peak_geometries(torch.from_numpy(db), -10.0, boxes, True)
    assert got[2] == ref[2] == (30.0, 30.0, 4.0, 4.0, 0.0)  # no blob: the predicted box
    for a, b in zip(ref, got):
        assert np.allclose(a, b, atol=1e-6), (a, b)


def test_buckets_are_powers_of_two_from_the_smallest() -> None:
    assert [BB._bucket(s) for s in (1, 15, 16, 17, 100, 1024, 1025)] == [16, 16, 16, 32, 128, 1024, 2048]


def _det_equal(a: list, b: list) -> None:
    assert len(a) == len(b)
    for x, y in zip(a, b):
        assert (x.kind, round(x.score, 6)) == (y.kind, round(y.score, 6))
        assert abs(x.row - y.row) <= 2e-3 and abs(x.col - y.col) <= 2e-3
        assert abs(x.length_m - y.length_m) <= 0.011 and abs(x.width_m - y.width_m) <= 0.011
        assert abs((x.heading_deg - y.heading_deg + 90.0) % 180.0 - 90.0) <= 0.11
        assert x.attrs == y.attrs  # boxes, peak and contrast dB (gathered on the device path)


@pytest.mark.skipif(not PT_FILE.is_file(), reason="shipped SAR weights missing")
@pytest.mark.parametrize("seed,spacing,groups", [(930, 0.5, 2), (931, 1.0, 2), (932, 3.0, 0)])
def test_the_detector_gives_the_same_detections_either_way(seed: int, spacing: float, groups: int,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """Both batched steps (peak geometry, and the ghost test's parents) against the host loops."""
    from detectors.sar import learned as L
    from detectors.sar.learned import LearnedSarDetector

    calls = []
    batched = L.parents_batch

    def counted(*a: object, **k: object) -> list:
        calls.append(1)
        return batched(*a, **k)

    monkeypatch.setattr(L, "parents_batch", counted)

    s = make_sar_scene(seed, rows=768, cols=768, spacing_m=spacing, n_groups=groups, return_sigma0=False)
    x = torch.from_numpy(np.ascontiguousarray(s.sigma0_from_dn(), dtype=np.float32))
    v = torch.from_numpy(s.dn > 0)
    det = LearnedSarDetector(device="cpu", runtime="torch")
    assert det.tensor_geometry is None  # auto: the per-peak loop on a CPU
    ref = det.detect(x, spacing_m=(spacing, spacing), valid=v)
    det.tensor_geometry = True
    assert not calls
    got = det.detect(x, spacing_m=(spacing, spacing), valid=v)
    assert ref, "the scene should hold detections"
    assert calls, "the ghost test should have run on the batched path"
    _det_equal(ref, got)


class _Copies(torch.overrides.TorchFunctionMode):
    """Records the size of every tensor copied out (``.cpu()``, ``.numpy()``, ``.tolist()``):
    on a GPU each is a device->host transfer."""

    def __init__(self) -> None:
        super().__init__()
        self.sizes: list[int] = []

    def __torch_function__(self, func, types, args=(), kwargs=None):  # type: ignore[no-untyped-def]
        if getattr(func, "__name__", "") in ("cpu", "numpy", "tolist") and isinstance(args[0], torch.Tensor):
            self.sizes.append(int(args[0].numel()))
        return func(*args, **(kwargs or {}))


@pytest.mark.skipif(not PT_FILE.is_file(), reason="shipped SAR weights missing")
@pytest.mark.parametrize("spacing", [0.5, 1.0])
def test_the_device_path_copies_no_whole_tile_to_the_host(spacing: float) -> None:
    """Issue 20: on the device path decoding, shapes, peak dB and the ghost test's sea level read
    the tile where it is; only small arrays leave it (here a CPU stands in for the GPU: the same
    calls would be device->host copies). The host path, for contrast, copies whole tiles."""
    from detectors.sar.learned import LearnedSarDetector

    from detectors.sar.ambiguity import SEA_SAMPLE

    s = make_sar_scene(933, rows=2048, cols=2048, spacing_m=spacing, n_groups=2, return_sigma0=False)
    x = torch.from_numpy(np.ascontiguousarray(s.sigma0_from_dn(), dtype=np.float32))[None]
    # Without the group expert: its network runs inside finish, and its weight guard re-hashes the
    # weights on the host on schedule (integrity.py), as the main network's does in network_pass.
    det = LearnedSarDetector(device="cpu", runtime="torch", group_weights="none")
    npass = det.network_pass(x, spacing_m=(spacing, spacing))
    grid = int(npass.power[0].numel())  # working-grid pixels of the tile
    assert grid >= 4 * SEA_SAMPLE
    seen = {}
    for on in (False, True):
        det.tensor_geometry = on
        with _Copies() as copies:
            seen[on] = (det.finish(npass)[0], copies.sizes)
    assert seen[True][0], "the scene should hold detections"
    _det_equal(seen[False][0], seen[True][0])
    assert max(seen[False][1]) >= grid  # the host path: the valid mask and the power, whole
    assert max(seen[True][1]) <= SEA_SAMPLE, sorted(seen[True][1])[-5:]  # at most sea_level's subsample


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_on_cuda_the_batched_path_is_the_default_and_agrees() -> None:
    db, boxes = _tile(seed=2)
    med = float(np.median(db))
    taken: list = []
    ref = [peak_geometry(db, med, *b, taken, True) for b in boxes]
    got = BB.peak_geometries(torch.from_numpy(db).cuda(), med, boxes, True)
    assert [g is None for g in got] == [g is None for g in ref]
    for a, b in zip(ref, got):
        if a is not None:
            assert np.allclose(a[:4], b[:4], atol=1e-4), (a, b)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.skipif(not PT_FILE.is_file(), reason="shipped SAR weights missing")
def test_on_cuda_no_whole_tile_is_copied_to_the_host() -> None:
    """The device path by default on CUDA: the post-processing's device->host copies stay within
    sea_level's subsample, and the detections are those of the host path on the same heads."""
    from detectors.sar.ambiguity import SEA_SAMPLE
    from detectors.sar.learned import LearnedSarDetector

    s = make_sar_scene(933, rows=2048, cols=2048, spacing_m=0.5, n_groups=2, return_sigma0=False)
    x = torch.from_numpy(np.ascontiguousarray(s.sigma0_from_dn(), dtype=np.float32))[None].cuda()
    det = LearnedSarDetector(device="cuda", runtime="torch")
    assert det.tensor_geometry is None
    npass = det.network_pass(x, spacing_m=(0.5, 0.5))
    with _Copies() as copies:
        got = det.finish(npass)[0]
    assert got and max(copies.sizes) <= SEA_SAMPLE, sorted(copies.sizes)[-5:]
    det.tensor_geometry = False
    _det_equal(det.finish(npass)[0], got)
