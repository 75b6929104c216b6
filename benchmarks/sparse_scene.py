"""What empty pixels and header bombs cost a scan, measured in ONE run (issue 21).

Two measurements, both through :func:`pipelines.detect.scan_scene` / the real CLI on real
GeoTIFFs written here:

1. **Sparse scene vs its data part.** A generated Capella-like GEO (vessels and lifeboats, default
   2048 x 2048 at 0.5 m) is written as its own bundle, and again placed inside a canvas whose
   other blocks were never written (GDAL ``SPARSE_OK``), default 95 % of the blocks empty. Both are
   scanned with the shipped defaults on the same device, alternating, after a warm-up; the
   target is ``sparse / data-only <= 1.5`` (median of the repeats). The alerts must be the same.
2. **The 40-gigapixel sparse header bomb** of ``tests/badinput/`` (200,000 x 200,000 uint16, one
   written block, a sidecar that agrees): the time from ``scan_scene`` to its refusal by the
   pixel budget, and, through the real ``orbitwatch scan`` CLI in a fresh process, a batch of the
   bomb + the corpus's two good scenes: wall time, peak RSS of the process (torch included), and
   whether every other scene was scanned. Targets: refused within 10 s and 1 GB. Also the bomb with
   the budget off (``--max-megapixels 0``): it finishes, its never-written blocks unread.

Results: ``benchmarks/results/sparse_scene.json`` and ``sparse_scene.png``; a table on stdout.

    .venv/bin/python benchmarks/sparse_scene.py                  # ~2-4 min on 2 cores
    .venv/bin/python benchmarks/sparse_scene.py --quick          # smaller scene, 1 repeat
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
for p in (ROOT, ROOT / "tests"):
    if str(p) not in sys.path:
        sys.path.insert(0, str(p))

from badinput.generate import sparse_bomb_tiff, write_good_scenes  # noqa: E402  (the bad-input corpus)
from detectors.synth.sar import make_sar_scene  # noqa: E402
from pipelines.detect import ScanOptions, scan_scene  # noqa: E402
from pipelines.errors import SceneTooLargeError  # noqa: E402
from pipelines.scene import open_scene  # noqa: E402
from pipelines.scene.write import embed_sar_bundle_sparse, write_sar_bundle  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"
_PEAK = ("import resource, subprocess, sys, time\n"
         "t0 = time.perf_counter()\n"
         "r = subprocess.run(sys.argv[1:], capture_output=True, text=True)\n"
         "dt = time.perf_counter() - t0\n"
         "print(dt, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, r.returncode)\n")


def _keys(alerts: list[Any]) -> list[tuple[str, float, float]]:
    return sorted((a.kind, round(a.lon, 5), round(a.lat, 5)) for a in alerts)


def sparse_vs_data(work: Path, size: int, spacing: float, empty: float, repeats: int, device: str) -> dict[str, Any]:
    """Scan the data-only bundle and its sparse embedding alternately; median seconds of each."""
    block = 512
    scene = make_sar_scene(seed=1234, rows=size, cols=size, spacing_m=spacing, n_vessels=6, n_lifeboats=6,
                           land=False, nodata_border=False)
    dense = write_sar_bundle(work / "dense", "data_only", scene, origin_utm=(500000.0, 4000000.0),
                             acquired=datetime(2025, 7, 1, tzinfo=timezone.utc))
    side = int(math.ceil(size / math.sqrt(1 - empty) / block)) * block
    off = ((side - size) // 2 // block * block, (side - size) // 3 // block * block)
    sparse = embed_sar_bundle_sparse(dense, work / "sparse", "in_empty_swath", (side, side), off, block=block)
    cov = open_scene(sparse).block_coverage()
    assert cov is not None
    opts = ScanOptions(device=device)
    scan_scene(dense, opts)  # warm-up: detector load, first-call costs
    times: dict[str, list[float]] = {"data_only": [], "sparse": []}
    results: dict[str, Any] = {}
    for _ in range(repeats):
        for name, tif in (("data_only", dense), ("sparse", sparse)):
            t0 = time.perf_counter()
            res = scan_scene(tif, opts)
            times[name].append(time.perf_counter() - t0)
            results[name] = res
    med = {k: statistics.median(v) for k, v in times.items()}
    return {
        "data_only": {"pixels": [size, size], "megapixels": size * size / 1e6, "seconds": times["data_only"],
                      "median_s": med["data_only"], "alerts": len(results["data_only"].alerts),
                      "tiles": results["data_only"].n_tiles},
        "sparse": {"pixels": [side, side], "megapixels": side * side / 1e6, "block": block, "offset": list(off),
                   "blocks_empty_fraction": round(1 - cov.fraction_present, 4), "seconds": times["sparse"],
                   "median_s": med["sparse"], "alerts": len(results["sparse"].alerts),
                   "tiles": results["sparse"].n_tiles, "tiles_skipped": results["sparse"].tiles_skipped,
                   "notes": results["sparse"].notes},
        "ratio_sparse_over_data": med["sparse"] / med["data_only"],
        "target_ratio": 1.5,
        "same_alerts": _keys(results["sparse"].alerts) == _keys(results["data_only"].alerts),
        "spacing_m": spacing, "device": device, "detectors": results["sparse"].detectors,
    }


def bomb(work: Path) -> dict[str, Any]:
    """The 40-Gpx sparse bomb: in-process refusal time, then real-CLI batches with and without a budget."""
    folder = work / "batch"
    write_good_scenes(folder)
    template = json.loads((folder / "good" / "tiny_sar_extended.json").read_text())
    tif = sparse_bomb_tiff(folder / "a_bomb.tif", template)
    t0 = time.perf_counter()
    try:
        scan_scene(tif, ScanOptions())
        refused, reason = False, ""
    except SceneTooLargeError as exc:
        refused, reason = True, str(exc)
    refuse_s = time.perf_counter() - t0
    out: dict[str, Any] = {"file_bytes": tif.stat().st_size, "claims": [200_000, 200_000],
                           "refused_in_process": refused, "refusal_seconds_in_process": refuse_s, "reason": reason}
    (work / "empty").mkdir()
    runs = (("cli_empty_folder_baseline", [], work / "empty"), ("cli_bomb_alone", [], tif),
            ("cli_batch_with_budget", [], folder), ("cli_bomb_without_budget", ["--max-megapixels", "0"], tif))
    for label, extra, scenes in runs:
        rep = work / f"{label}.json"
        cmd = [sys.executable, "-m", "pipelines.cli", "scan", str(scenes), "--out", str(work / f"{label}.geojson"),
               "--errors", str(rep), "-q", *extra]
        line = subprocess.run([sys.executable, "-c", _PEAK, *cmd], cwd=ROOT, capture_output=True, text=True,
                              check=True).stdout.split()
        if not rep.exists():  # nothing scanned (the empty folder): no report to read
            out[label] = {"wall_s": float(line[0]), "peak_rss_mb": int(line[1]) / 1024, "exit": int(line[2])}
            continue
        report = json.loads(rep.read_text())
        bomb_rows = [r for r in report["results"] if r["path"] == str(tif)]
        out[label] = {"wall_s": float(line[0]), "peak_rss_mb": int(line[1]) / 1024, "exit": int(line[2]),
                      "scenes_ok": len(report["scenes_ok"]), "failures": [f["error"] for f in report["failures"]],
                      "bomb_scan_s": bomb_rows[0]["seconds"] if bomb_rows else None,
                      "bomb_tiles": bomb_rows[0]["tiles"] if bomb_rows else None,
                      "bomb_tiles_skipped": bomb_rows[0]["tiles_skipped"] if bomb_rows else None}
    out["bomb_alone_rss_over_baseline_mb"] = (out["cli_bomb_alone"]["peak_rss_mb"]
                                              - out["cli_empty_folder_baseline"]["peak_rss_mb"])
    return out


def plot(res: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sv = res["sparse_vs_data"]
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 4))
    names = [f"data only\n{sv['data_only']['megapixels']:.1f} Mpx",
             f"{100 * sv['sparse']['blocks_empty_fraction']:.0f} % sparse\n{sv['sparse']['megapixels']:.1f} Mpx"]
    a.bar(names, [sv["data_only"]["median_s"], sv["sparse"]["median_s"]], color=["#4c72b0", "#dd8452"])
    a.axhline(sv["data_only"]["median_s"] * sv["target_ratio"], ls="--", color="k", lw=1, label="target: 1.5x")
    a.set_ylabel("scan seconds (median)")
    a.set_title(f"sparse / data = {sv['ratio_sparse_over_data']:.2f}")
    a.legend()
    bm = res["bomb"]
    labels = ["refusal\n(in process)", "CLI\nempty folder", "CLI\nbomb alone", "CLI batch\nbomb + 2 scenes",
              "CLI bomb\nno budget"]
    vals = [bm["refusal_seconds_in_process"], bm["cli_empty_folder_baseline"]["wall_s"], bm["cli_bomb_alone"]["wall_s"],
            bm["cli_batch_with_budget"]["wall_s"], bm["cli_bomb_without_budget"]["wall_s"]]
    b.bar(labels, vals, color=["#55a868", "#999999", "#55a868", "#8172b2", "#c44e52"])
    b.tick_params(axis="x", labelsize=7)
    b.axhline(10, ls="--", color="k", lw=1, label="10 s")
    b.set_ylabel("seconds")
    b.set_title(f"40-Gpx sparse bomb: refused at {bm['cli_bomb_alone']['peak_rss_mb']:.0f} MB peak RSS "
                f"({bm['bomb_alone_rss_over_baseline_mb']:+.0f} MB)", fontsize=9)
    b.legend()
    fig.suptitle(res["hardware"]["cpu"][:70], fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--size", type=int, default=2048, help="data part edge in pixels")
    ap.add_argument("--spacing", type=float, default=0.5)
    ap.add_argument("--empty", type=float, default=0.95, help="fraction of the canvas blocks never written")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--quick", action="store_true", help="1024 px data part, 1 repeat")
    ap.add_argument("--out", type=Path, default=RESULTS / "sparse_scene.json")
    args = ap.parse_args(argv)
    if args.quick:
        args.size, args.repeats = 1024, 1
    work = Path(tempfile.mkdtemp(prefix="ow_sparse_"))
    try:
        res: dict[str, Any] = {
            "command": " ".join([Path(sys.argv[0]).as_posix(), *(argv if argv is not None else sys.argv[1:])]),
            "when": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "hardware": {"cpu": _cpu(), "cores": os.cpu_count(), "python": platform.python_version()},
            "sparse_vs_data": sparse_vs_data(work, args.size, args.spacing, args.empty, args.repeats, args.device),
            "bomb": bomb(work),
        }
    finally:
        shutil.rmtree(work, ignore_errors=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(res, indent=1) + "\n")
    plot(res, args.out.with_suffix(".png"))
    sv, bm = res["sparse_vs_data"], res["bomb"]
    print("| measurement | value | target |\n|---|---|---|")
    print(f"| data-only scene ({sv['data_only']['megapixels']:.1f} Mpx) | {sv['data_only']['median_s']:.2f} s | |")
    print(f"| {100 * sv['sparse']['blocks_empty_fraction']:.1f} % sparse scene ({sv['sparse']['megapixels']:.1f} Mpx) "
          f"| {sv['sparse']['median_s']:.2f} s (ratio {sv['ratio_sparse_over_data']:.2f}, same alerts: "
          f"{sv['same_alerts']}) | <= 1.5x |")
    print(f"| bomb refused (in process) | {bm['refusal_seconds_in_process']:.3f} s | <= 10 s |")
    ba, base = bm["cli_bomb_alone"], bm["cli_empty_folder_baseline"]
    print(f"| CLI, bomb alone: refused | {ba['wall_s']:.1f} s wall (process start incl.), peak RSS "
          f"{ba['peak_rss_mb']:.0f} MB; an empty folder: {base['wall_s']:.1f} s, {base['peak_rss_mb']:.0f} MB "
          f"(bomb adds {bm['bomb_alone_rss_over_baseline_mb']:+.0f} MB) | <= 10 s, <= 1 GB |")
    cb = bm["cli_batch_with_budget"]
    print(f"| CLI batch: bomb + 2 good scenes | {cb['wall_s']:.1f} s, peak RSS {cb['peak_rss_mb']:.0f} MB, "
          f"{cb['scenes_ok']} scanned, failures {cb['failures']} | others scanned |")
    nb = bm["cli_bomb_without_budget"]
    print(f"| CLI bomb, --max-megapixels 0 | {nb['wall_s']:.1f} s, peak RSS {nb['peak_rss_mb']:.0f} MB, "
          f"{nb['bomb_tiles_skipped']} of {nb['bomb_tiles']} tiles skipped | |")
    print(f"wrote {args.out} and {args.out.with_suffix('.png')}")
    return 0


def _cpu() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


if __name__ == "__main__":
    sys.exit(main())
