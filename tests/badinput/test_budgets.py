"""Issue 21: no scene can stall a batch.

Through the real ``orbitwatch scan`` CLI (subprocesses, real GeoTIFFs): the 40-gigapixel sparse
header bomb with a consistent sidecar is refused by the pixel budget while the other scenes are
scanned; without a budget it finishes because its never-written blocks are skipped unread; a
sparse scene gives the alerts of its data part; a scene past its time budget fails, keeps none of
its alerts, and is retried on resume only when asked; a second scan on the same output is
refused while the first holds it; a full disk (a real, small tmpfs) stops the batch and leaves the
previous alerts file intact. Behaviour only: no test checks wall time (benchmarks/sparse_scene.py
measures it).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import warnings
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import rasterio
from rasterio.errors import NotGeoreferencedWarning

from badinput.generate import sparse_bomb_tiff, write_good_scenes
from detectors.synth.sar import make_sar_scene
from pipelines.batch import output_lock, parts_dir, run_batch
from pipelines.detect import Deadline, ScanOptions, prefetch_tiles, scan_scene
from pipelines.errors import OutputLockedError, SceneTimeoutError, SceneTooLargeError
from pipelines.scene import iter_tiles, open_scene
from pipelines.scene.write import embed_sar_bundle_sparse, write_sar_bundle

REPO = Path(__file__).resolve().parents[2]
ACQ = datetime(2025, 7, 1, 10, 0, tzinfo=timezone.utc)

#: Runs a command and prints the peak resident memory (KiB) of its process tree's largest member.
_PEAK_WRAPPER = ("import resource, subprocess, sys\n"
                 "r = subprocess.run(sys.argv[1:])\n"
                 "print('PEAK_KB', resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, file=sys.stderr)\n"
                 "sys.exit(r.returncode)\n")


def _scan(*args: str | Path, peak: bool = False, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "pipelines.cli", "scan", *map(str, args), "-q"]
    if peak:
        cmd = [sys.executable, "-c", _PEAK_WRAPPER, *cmd]
    env = {**os.environ, "COLUMNS": "4000"}
    return subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, errors="backslashreplace",
                          timeout=timeout, env=env)


def _peak_mb(res: subprocess.CompletedProcess[str]) -> float:
    line = [ln for ln in res.stderr.splitlines() if ln.startswith("PEAK_KB")][-1]
    return int(line.split()[1]) / 1024


def _report(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text())


def _alert_keys(features: list[dict[str, Any]]) -> list[tuple[str, float, float]]:
    return sorted((f["properties"]["kind"], round(f["geometry"]["coordinates"][0], 5),
                   round(f["geometry"]["coordinates"][1], 5)) for f in features)


@pytest.fixture(scope="module")
def good(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[dict[str, Any]]]:
    """The corpus's two good scenes and their alerts from a clean in-process run (the reference)."""
    root = tmp_path_factory.mktemp("good")
    write_good_scenes(root)
    ref = root.parent / f"{root.name}_ref.geojson"
    assert run_batch(sorted((root / "good").glob("*.tif")), ref, ScanOptions()).ok
    return root / "good", json.loads(ref.read_text())["features"]


# ------------------------------------------------------------------------------- pixel budget
def test_sparse_bomb_is_refused_and_the_batch_goes_on(good: tuple[Path, list], tmp_path: Path) -> None:
    good_dir, ref = good
    folder = tmp_path / "scenes"
    shutil.copytree(good_dir, folder)
    template = json.loads((good_dir / "tiny_sar_extended.json").read_text())
    bomb = sparse_bomb_tiff(folder / "a_bomb.tif", template)  # sorted first: the others come after it
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        with rasterio.open(bomb) as ds:  # GDAL believes it, and its blocks are where they say
            assert ds.shape == (200_000, 200_000)
    assert bomb.stat().st_size < 4 << 20
    out, rep = tmp_path / "alerts.geojson", tmp_path / "report.json"
    res = _scan(folder, "--out", out, "--errors", rep, peak=True)
    assert res.returncode == 1, res.stderr[-3000:]
    assert "Traceback" not in res.stderr
    report = _report(rep)
    [fail] = report["failures"]
    assert fail["path"] == str(bomb) and fail["error"] == "SceneTooLargeError"
    for words in ("a_bomb.tif", "200,000 x 200,000", "40,000 Mpx", "4,000 Mpx", "--max-megapixels",
                  "before reading any pixel"):
        assert words in fail["reason"]
    assert len(report["scenes_ok"]) == 2
    assert _alert_keys(json.loads(out.read_text())["features"]) == _alert_keys(ref)


def test_sparse_bomb_refusal_costs_no_memory(good: tuple[Path, list], tmp_path: Path) -> None:
    """The refusal's peak memory is that of a scan with nothing to do (an empty folder): the same
    imports (torch's CUDA build alone is ~0.7 GB resident), and nothing for the bomb itself."""
    template = json.loads((good[0] / "tiny_sar_extended.json").read_text())
    (tmp_path / "empty").mkdir()
    bomb = sparse_bomb_tiff(tmp_path / "bomb.tif", template)
    base = _scan(tmp_path / "empty", "--out", tmp_path / "a.geojson", peak=True)
    res = _scan(bomb, "--out", tmp_path / "b.geojson", peak=True)
    assert base.returncode == 0 and res.returncode == 1 and "SceneTooLargeError" not in res.stderr
    assert "pixel budget" in res.stderr
    assert _peak_mb(res) - _peak_mb(base) < 64, (_peak_mb(res), _peak_mb(base))


def test_sparse_bomb_without_budget_finishes_unread(tmp_path: Path, good: tuple[Path, list]) -> None:
    """With the budget off, the bomb's 38,000 never-written blocks are not read: one window is."""
    template = json.loads((good[0] / "tiny_sar_extended.json").read_text())
    (tmp_path / "scenes").mkdir()
    bomb = sparse_bomb_tiff(tmp_path / "scenes" / "bomb.tif", template)
    out, rep = tmp_path / "alerts.geojson", tmp_path / "report.json"
    res = _scan(bomb, "--out", out, "--errors", rep, "--max-megapixels", "0")
    assert res.returncode == 0, res.stderr[-3000:]
    [r] = _report(rep)["results"]
    assert r["tiles"] > 1000 and r["tiles_skipped"] == r["tiles"] - 1
    assert any("1 of 38,416 TIFF blocks written" in n for n in r["notes"]), r["notes"]


def test_pixel_budget_is_checked_before_any_read(tmp_path: Path, good: tuple[Path, list]) -> None:
    tif = good[0] / "tiny_sar.tif"
    with pytest.raises(SceneTooLargeError, match=r"512 x 512 pixels \(0.26 Mpx\).*budget of 0.1 Mpx"):
        scan_scene(tif, ScanOptions(max_megapixels=0.1))
    res = _scan(good[0], "--out", tmp_path / "a.geojson", "--max-megapixels", "-1")
    assert res.returncode == 2 and "--max-megapixels must be a positive number" in res.stderr


# ------------------------------------------------------------------------------- empty tiles
@pytest.fixture(scope="module")
def sparse_pair(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A 1024 x 1024 bundle with vessels and lifeboats, and the same bundle inside an 8192 x 8192
    sparse GeoTIFF (98 % of its blocks never written), straddling full-frame tile boundaries."""
    root = tmp_path_factory.mktemp("sparse")
    scene = make_sar_scene(seed=7, rows=1024, cols=1024, spacing_m=1.0, n_vessels=3, n_lifeboats=2,
                           land=False, nodata_border=False)
    dense = write_sar_bundle(root / "dense", "patch", scene, origin_utm=(500000.0, 4000000.0), acquired=ACQ)
    sparse = embed_sar_bundle_sparse(dense, root / "sparse", "patch_in_swath", (8192, 8192), (3072, 2048))
    return dense, sparse


def test_sparse_scene_costs_its_data_and_finds_its_alerts(sparse_pair: tuple[Path, Path], tmp_path: Path) -> None:
    dense, sparse = sparse_pair
    found = {}
    for tif in (dense, sparse):
        out, rep = tmp_path / f"{tif.stem}.geojson", tmp_path / f"{tif.stem}.json"
        res = _scan(tif, "--out", out, "--errors", rep)
        assert res.returncode == 0, res.stderr[-3000:]
        found[tif] = (json.loads(out.read_text())["features"], _report(rep)["results"][0], res.stdout)
    feats_d, sum_d, _ = found[dense]
    feats_s, sum_s, table = found[sparse]
    assert len(feats_d) >= 4 and _alert_keys(feats_s) == _alert_keys(feats_d)
    assert sum_s["tiles"] > 4 and sum_s["tiles_skipped"] == sum_s["tiles"] - 1  # one window: the data box
    assert any("scanned 1 window(s) over the 1,024 x 1,024 px box" in n for n in sum_s["notes"])
    assert "empty" in table and f" {sum_s['tiles_skipped']} " in table  # the scan table says so


def test_unwritten_blocks_and_mask_band_are_no_data(tmp_path: Path) -> None:
    """An optical band without a nodata value reads 0 in a never-written block; that 0 must not
    pass for a measurement. Likewise a pixel the TIFF's own mask band marks as no-data."""
    path = tmp_path / "opt.tif"
    with rasterio.open(path, "w", driver="GTiff", width=512, height=256, count=2, dtype="float32",
                       crs="EPSG:32633", transform=rasterio.Affine(30, 0, 500000, 0, -30, 4000000),
                       tiled=True, blockxsize=256, blockysize=256, sparse_ok=True) as ds:
        ds.write(np.full((2, 256, 256), 0.2, np.float32), window=rasterio.windows.Window(0, 0, 256, 256))
        ds.set_band_description(1, "red")
        ds.set_band_description(2, "nir")
        ds.update_tags(ACQUISITION_DATETIME="2025-08-01T10:30:00Z")
    scene = open_scene(path)
    data, valid = scene.read(0, 0, 256, 512)
    assert valid[:, :256].all() and not valid[:, 256:].any() and (data[:, :, 256:] == 0).all()

    masked = tmp_path / "masked.tif"
    with rasterio.Env(GDAL_TIFF_INTERNAL_MASK=True):
        with rasterio.open(masked, "w", driver="GTiff", width=64, height=64, count=2, dtype="float32",
                           crs="EPSG:32633", transform=rasterio.Affine(30, 0, 500000, 0, -30, 4000000)) as ds:
            ds.write(np.full((2, 64, 64), 0.2, np.float32))
            mask = np.full((64, 64), 255, np.uint8)
            mask[:, :10] = 0
            ds.write_mask(mask)
            ds.set_band_description(1, "red")
            ds.set_band_description(2, "nir")
            ds.update_tags(ACQUISITION_DATETIME="2025-08-01T10:30:00Z")
    _, valid = open_scene(masked).read(0, 0, 64, 64)
    assert not valid[:, :10].any() and valid[:, 10:].all()


# ------------------------------------------------------------------------------- time budget
def test_scene_timeout_fails_the_scene_and_resume_retries_only_when_asked(
        good: tuple[Path, list], tmp_path: Path) -> None:
    good_dir, ref = good
    out, rep = tmp_path / "alerts.geojson", tmp_path / "report.json"
    args = (good_dir, "--out", out, "--errors", rep)
    res = _scan(*args, "--scene-timeout", "1e-6")  # spent before the first tile of either scene
    assert res.returncode == 1
    fails = _report(rep)["failures"]
    assert len(fails) == 2 and {f["error"] for f in fails} == {"SceneTimeoutError"}
    assert all("--scene-timeout" in f["reason"] and "none of its alerts were kept" in f["reason"] for f in fails)
    assert json.loads(out.read_text())["features"] == []
    assert len(list((parts_dir(out) / "failed").glob("*.json"))) == 2

    res = _scan(*args, "--scene-timeout", "1e-6")  # resumed: reported from the record, not redone
    fails = _report(rep)["failures"]
    assert res.returncode == 1 and all(f["earlier"] for f in fails)
    assert all("failed in an earlier run" in f["reason"] and "--retry-failed" in f["reason"] for f in fails)
    assert "failed earlier" in res.stdout

    res = _scan(*args, "--scene-timeout", "1e-6", "--retry-failed")  # asked: tried (and failed) again
    assert res.returncode == 1 and not any(f["earlier"] for f in _report(rep)["failures"])

    res = _scan(*args)  # other budgets (none): the records do not apply; both scanned
    assert res.returncode == 0, res.stderr[-3000:]
    assert _alert_keys(json.loads(out.read_text())["features"]) == _alert_keys(ref)
    assert not list((parts_dir(out) / "failed").glob("*.json"))


def test_timeout_mid_scene_keeps_no_partial_alerts(good: tuple[Path, list], tmp_path: Path) -> None:
    """A scene that overruns between tiles stops there; the next scene of the batch is scanned."""
    scene = make_sar_scene(seed=3, rows=1024, cols=1024, spacing_m=2.0, n_vessels=4, n_lifeboats=0, land=False)
    slow = write_sar_bundle(tmp_path / "slow", "slow", scene, origin_utm=(500000.0, 4000000.0), acquired=ACQ)
    fast = good[0] / "tiny_sar.tif"
    seen: list[tuple[int, int]] = []

    def on_tile(done: int, total: int) -> None:
        seen.append((done, total))
        if len(seen) == 1:
            time.sleep(2.5)  # the operator's progress hook is slow: the budget runs out here

    opts = ScanOptions(detectors=["sar-cfar"], tile_size=256, scene_timeout_s=2.0)
    report = run_batch([slow, fast], tmp_path / "out.geojson", opts, on_tile=on_tile)
    [fail] = report.failures
    assert fail.path == str(slow) and fail.error == "SceneTimeoutError"
    assert "after 1 of" in fail.reason
    assert report.scenes_ok == [str(fast)]
    feats = json.loads((tmp_path / "out.geojson").read_text())["features"]
    assert feats and {f["properties"]["scene"] for f in feats} == {"tiny_sar"}


class _StalledScene:
    """A scene whose reads hang (a stalled network share): the deadline must not wait for them."""

    stem, rows, cols = "stalled", 64, 64

    def __init__(self) -> None:
        self.release = threading.Event()

    def read(self, r: int, c: int, h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
        self.release.wait(30)
        return np.zeros((1, h, w), np.float32), np.ones((h, w), bool)


def test_a_stalled_read_is_not_waited_for_past_the_budget() -> None:
    scene = _StalledScene()
    tiles = list(iter_tiles(64, 64, size=32, overlap=0))
    t0 = time.perf_counter()
    with pytest.raises(SceneTimeoutError, match="time budget of 0.3 s"):
        list(prefetch_tiles(scene, tiles, deadline=Deadline(0.3, "stalled.tif")))  # type: ignore[arg-type]
    scene.release.set()
    assert time.perf_counter() - t0 < 25  # returned on the budget, not when the read ended


# ------------------------------------------------------------------------------- one writer
_HOLDER = ("import sys, time\n"
           "from pathlib import Path\n"
           "from pipelines.batch import output_lock\n"
           "with output_lock(Path(sys.argv[1])):\n"
           "    print('HOLDING', flush=True)\n"
           "    time.sleep(600)\n")


def test_second_writer_is_refused_and_touches_nothing(good: tuple[Path, list], tmp_path: Path) -> None:
    good_dir, _ = good
    out = tmp_path / "alerts.geojson"
    assert _scan(good_dir, "--out", out).returncode == 0
    before = {p: p.read_bytes() for p in [out, *sorted(parts_dir(out).rglob("*.json"))]}
    holder = subprocess.Popen([sys.executable, "-c", _HOLDER, str(out)], cwd=REPO, stdout=subprocess.PIPE,
                              text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "HOLDING"
        for extra in ((), ("--no-resume",)):  # --no-resume would delete the parts: refused first
            res = _scan(good_dir, "--out", out, *extra)
            assert res.returncode == 2, res.stderr[-2000:]
            assert "another orbitwatch scan is writing this output" in res.stderr
            assert f"pid {holder.pid}" in res.stderr and str(out) in res.stderr
        after = {p: p.read_bytes() for p in [out, *sorted(parts_dir(out).rglob("*.json"))]}
        assert after == before
        with pytest.raises(OutputLockedError):  # the library refuses the same way, in process too
            run_batch([], out)
    finally:
        holder.send_signal(signal.SIGKILL)  # a killed writer releases its lock with its process
        holder.wait(30)
    res = _scan(good_dir, "--out", out)
    assert res.returncode == 0, res.stderr[-2000:]


# ------------------------------------------------------------------------------- full disk
@pytest.fixture
def small_disk(tmp_path: Path) -> Any:
    """A real 2 MiB tmpfs (root only); skipped where mounting is not allowed."""
    mnt = tmp_path / "disk"
    mnt.mkdir()
    res = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mnt)], capture_output=True,
                         text=True)
    if res.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {res.stderr.strip()}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def test_full_disk_keeps_the_previous_alerts_and_says_so(good: tuple[Path, list], small_disk: Path,
                                                         tmp_path: Path) -> None:
    good_dir, ref = good
    folder = tmp_path / "scenes"
    folder.mkdir()
    for f in good_dir.glob("tiny_opt*"):
        shutil.copy(f, folder)
    out = small_disk / "alerts.geojson"
    assert _scan(folder, "--out", out).returncode == 0
    previous = out.read_bytes()
    n_prev = len(json.loads(previous)["features"])
    assert n_prev > 0
    for f in good_dir.glob("tiny_sar*"):  # a new scene arrives; meanwhile the disk fills up
        shutil.copy(f, folder)
    st = os.statvfs(small_disk)
    filler = small_disk / "filler"
    filler.write_bytes(b"\0" * max(0, st.f_bavail * st.f_frsize - 1024))
    rep = tmp_path / "report.json"
    res = _scan(folder, "--out", out, "--errors", rep)
    assert res.returncode == 1 and "Traceback" not in res.stderr
    said = " ".join(res.stderr.split())
    assert "stopped:" in said and "No space left on device" in said
    assert f"{out} is unchanged ({n_prev} alert(s)" in said and "run the same command again" in said
    assert out.read_bytes() == previous
    report = _report(rep)
    assert report["ok"] is False and report["scenes_not_run"] == [str(folder / "tiny_sar.tif")]
    filler.unlink()  # space is back: the same command resumes and finishes
    assert _scan(folder, "--out", out).returncode == 0
    assert _alert_keys(json.loads(out.read_text())["features"]) == _alert_keys(ref)
