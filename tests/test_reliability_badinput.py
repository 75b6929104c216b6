"""Issue 9, item 1: bad input never costs an alert.

The real ``orbitwatch scan`` CLI (a subprocess) runs over the whole bad-input corpus of
``tests/badinput/generate.py`` (truncated/corrupt TIFFs, a 200,000 x 200,000 header on a tiny
file, missing/malformed/mismatched/orphaned sidecars, unknown data types, NaN/inf/all-zero
scenes, wrong band names, dangling and looping symlinks, FIFOs, hostile file names) mixed with
good scenes (the tiny SAR bundle and optical tile of test_cli_scan). The good scenes' alerts must
come out exactly as in a clean run; every bad file must be in the JSON error report with a
reason naming it and its problem; scenes that are valid but entirely no-data must be scanned
with no alerts (not failed: there is nothing wrong with the file, and nothing to alert on).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
import rasterio
from rasterio.errors import NotGeoreferencedWarning

from badinput.generate import Case, build_corpus, huge_header_tiff
from pipelines.batch import run_batch
from pipelines.detect import ScanOptions, scan_scene
from pipelines.errors import SceneError
from pipelines.scene import find_scenes, open_scene

REPO = Path(__file__).resolve().parents[1]


def _scan(root: Path, out: Path, report: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "4000"}  # no wrapping: one failure, one line
    return subprocess.run([sys.executable, "-m", "pipelines.cli", "scan", str(root), "--out", str(out),
                           "--errors", str(report), "-q"], cwd=REPO, capture_output=True, text=True,
                          errors="backslashreplace", timeout=300, env=env)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[Case]]:
    root = tmp_path_factory.mktemp("badinput")
    return root, build_corpus(root)


@pytest.fixture(scope="module")
def scanned(corpus: tuple[Path, list[Case]], tmp_path_factory: pytest.TempPathFactory) -> dict:
    """One CLI run over the whole corpus; the good scenes alone, in process, are the reference."""
    root, _ = corpus
    work = tmp_path_factory.mktemp("scan")
    res = _scan(root, work / "alerts.geojson", work / "report.json")
    assert run_batch(find_scenes(root / "good"), work / "clean.geojson", ScanOptions()).ok
    return {
        "res": res,
        "report": json.loads((work / "report.json").read_text()) if (work / "report.json").exists() else None,
        "features": json.loads((work / "alerts.geojson").read_text())["features"],
        "clean": json.loads((work / "clean.geojson").read_text())["features"],
    }


def test_batch_finishes_and_exits_1(scanned: dict) -> None:
    res = scanned["res"]
    assert "Traceback" not in res.stderr, res.stderr[-3000:]
    assert res.returncode == 1, res.stderr[-3000:]
    assert scanned["report"] is not None and scanned["report"]["ok"] is False


def test_every_bad_file_is_reported_with_its_reason(corpus: tuple[Path, list[Case]], scanned: dict) -> None:
    root, cases = corpus
    failures = {f["path"]: f for f in scanned["report"]["failures"]}
    expected = {str(root / c.name): c for c in cases if c.fails}
    assert set(failures) == set(expected), (
        f"unreported: {sorted(map(ascii, set(expected) - set(failures)))}; "
        f"unexpected: {sorted(map(ascii, set(failures) - set(expected)))}")
    for path, case in expected.items():
        f = failures[path]
        reason = f["reason"].lower()
        assert Path(path).name.lower() in reason or Path(path).stem.lower() in reason, (ascii(path), f["reason"])
        for word in case.words:
            assert word in reason, f"{ascii(case.name)}: {word!r} not in {f['reason']!r}"
        if case.error:
            assert f["error"] == case.error, (case.name, f)


def test_every_failure_is_printed_once_per_line(corpus: tuple[Path, list[Case]], scanned: dict) -> None:
    """The summary names each failed file on its own line, hostile names (Rich markup, newline) as text."""
    root, cases = corpus
    err = scanned["res"].stderr
    listing = err[err.index("scene(s) failed"):]
    items = [ln for ln in listing.splitlines() if ln.startswith("  - ")]
    assert len(items) == sum(c.fails for c in cases)
    for c in cases:  # named by the scene's TIFF, or by its sidecar when that is what is wrong
        if c.fails and c.name.isprintable() and c.name.isascii():
            stem = f"  - {(root / c.name).with_suffix('')}"
            assert sum(ln.startswith((f"{stem}.", f"{stem}_extended.json: ")) for ln in items) == 1, c.name
    assert any(ln.startswith(f"  - {root}/odd/[/]markup.tif: cannot open") for ln in items)
    assert any(ln.startswith(f"  - {root}/odd/new\\nline.tif: cannot open") for ln in items)


def test_good_scenes_alerts_survive(corpus: tuple[Path, list[Case]], scanned: dict) -> None:
    """Every alert of the clean run is in the corrupted batch's output, identical (ids are content hashes)."""
    clean = {f["properties"]["alert_id"]: f for f in scanned["clean"]}
    assert {f["properties"]["kind"] for f in clean.values()} >= {"fire", "vessel"}
    got = {f["properties"]["alert_id"]: f for f in scanned["features"]}
    assert set(clean) <= set(got)
    for aid, feat in clean.items():
        assert got[aid] == feat
    # The good optical tile copied under a hostile name is scanned like the original.
    n_opt = sum(f["properties"]["scene"] == "tiny_opt" for f in clean.values())
    n_odd = sum(f["properties"]["scene"] == "-odd name; $(x) ü*?" for f in got.values())
    assert n_odd == n_opt > 0
    # Nothing else produced alerts (NaN / inf / all-zero scenes in particular).
    assert len(got) == len(clean) + n_odd


def test_no_data_scenes_succeed_without_alerts(corpus: tuple[Path, list[Case]], scanned: dict) -> None:
    root, cases = corpus
    results = {r["path"]: r for r in scanned["report"]["results"]}
    for c in cases:
        if not c.fails:
            assert str(root / c.name) in results, ascii(c.name)
            if c.max_alerts is not None:
                assert results[str(root / c.name)]["alerts"] <= c.max_alerts


def test_huge_header_is_refused_before_allocation(tmp_path: Path) -> None:
    """A 1-KB file claiming 200,000 x 200,000 uint16 pixels (80 GB) is refused at open, under a 1.5 GB cap.

    The child process caps its address space, so any attempt to allocate the claimed pixels (or
    one 80-GB block of the deflate variant) would die with MemoryError instead of the SceneError,
    and its peak resident memory stays that of an idle interpreter with rasterio loaded.
    """
    plain = huge_header_tiff(tmp_path / "huge.tif")
    deflate = huge_header_tiff(tmp_path / "huge_deflate.tif", compression=8)
    assert plain.stat().st_size < 1024 and deflate.stat().st_size < 1024
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        with rasterio.open(plain) as ds:  # GDAL believes the header
            assert ds.shape == (200_000, 200_000)
    code = (
        "import resource, sys\n"
        "resource.setrlimit(resource.RLIMIT_AS, (1536 << 20, 1536 << 20))\n"
        "from pipelines.scene import open_scene\n"
        "from pipelines.errors import SceneError\n"
        "for p in sys.argv[1:]:\n"
        "    try:\n"
        "        open_scene(p)\n"
        "    except SceneError as exc:\n"
        "        print('REFUSED', exc)\n"
        "import os\n"
        "st = '/proc/self/status'\n"
        "hwm = [ln for ln in open(st) if ln.startswith('VmHWM')] if os.path.exists(st) else []\n"
        "print('PEAK_KB', hwm[0].split()[1] if hwm else 0)\n"
    )
    t0 = time.perf_counter()
    res = subprocess.run([sys.executable, "-c", code, str(plain), str(deflate)], cwd=REPO, capture_output=True,
                         text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    lines = res.stdout.splitlines()
    refused = [ln for ln in lines if ln.startswith("REFUSED")]
    assert len(refused) == 2, res.stdout
    assert "80,000,000,000 bytes" in refused[0] and "only" in refused[0]
    assert "one block of 200000 x 200000" in refused[1]
    peak_mb = int(lines[-1].split()[1]) / 1024  # VmHWM: this process's peak RSS (ru_maxrss would
    assert peak_mb < 400, peak_mb              # include the pytest parent's, inherited over fork+exec)
    assert time.perf_counter() - t0 < 30


def test_find_scenes_reports_links_and_orphans_and_does_not_loop(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / "a.tif").write_bytes(b"")
    os.symlink("gone.tif", tmp_path / "dangling.tif")
    os.symlink("self.tif", tmp_path / "self.tif")
    os.symlink("..", tmp_path / "sub" / "up")  # directory loop
    (tmp_path / "sub" / "lost_extended.json").write_text("{}")
    (tmp_path / "a_extended.json").write_text("{}")  # has its TIFF: not a scene of its own
    got = find_scenes(tmp_path, broken_links=True)
    assert got == sorted([tmp_path / "a.tif", tmp_path / "dangling.tif", tmp_path / "self.tif",
                          tmp_path / "sub" / "lost_extended.json"])
    assert find_scenes(tmp_path) == sorted([tmp_path / "a.tif", tmp_path / "sub" / "lost_extended.json"])
    with pytest.raises(SceneError, match="broken symlink: -> gone.tif"):
        open_scene(tmp_path / "dangling.tif")
    with pytest.raises(SceneError, match="symlink loop"):
        open_scene(tmp_path / "self.tif")


def test_nan_patch_costs_no_alert(corpus: tuple[Path, list[Case]], tmp_path: Path) -> None:
    """A Float32 copy of the good SAR scene with a NaN/inf block far from every target finds the same targets."""
    root, _ = corpus
    good = root / "good" / "tiny_sar.tif"
    clean = scan_scene(good)
    assert clean.alerts
    with rasterio.open(good) as src:
        amp = src.read(1).astype(np.float32)
        profile = src.profile
    rows = np.array([a.row for a in clean.alerts])
    cols = np.array([a.col for a in clean.alerts])
    # The 48 x 48 block (among a coarse grid) farthest from every alert.
    best = max(((r, c) for r in range(0, 464, 16) for c in range(0, 464, 16)),
               key=lambda rc: np.min(np.hypot(rows - (rc[0] + 24), cols - (rc[1] + 24))))
    r0, c0 = best
    amp[r0:r0 + 48, c0:c0 + 24] = np.nan
    amp[r0:r0 + 48, c0 + 24:c0 + 48] = np.inf
    profile.update(dtype="float32", nodata=None, predictor=1)
    holed = tmp_path / "holed.tif"
    with rasterio.open(holed, "w", **profile) as dst:
        dst.write(amp, 1)
    side = json.loads((root / "good" / "tiny_sar_extended.json").read_text())
    side["collect"]["image"]["data_type"] = "Float32"
    (tmp_path / "holed_extended.json").write_text(json.dumps(side))
    res = scan_scene(holed)
    assert sorted((a.kind, round(a.row), round(a.col)) for a in res.alerts) == \
        sorted((a.kind, round(a.row), round(a.col)) for a in clean.alerts)
    data, valid = open_scene(holed).read(r0, c0, 48, 48)
    assert not valid.any() and np.all(data == 0)
