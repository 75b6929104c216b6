"""onnxruntime's memory pattern on a CPU, over the calls a SAR scan makes: why it is off there.

``detectors.onnx_runtime.CPU_MEM_PATTERN``: onnxruntime traces the allocations of each input shape
and lays out one block for it (``SessionOptions.enable_mem_pattern``, on by default). That pays off
when every call has one shape; a SAR scan on a CPU does not: each tile's fine confirmation pass
sends the int8 network a different number of 192 px windows. This benchmark replays that sequence
and times it with the pattern on and off, in the same run:

* per tile, the shipped float32 network on the working grid and its two coarse grids (2016, 1008
  and 512 px square, the shapes of a 4024 px tile at 0.5 m) and the int8 network on that tile's
  fine-pass windows (``--windows``: by default the counts of the CPU benchmark's eight tiles,
  ``benchmarks/scan_cpu.py``: 12, 4, 4, 1, 159, 177, 171, 175);
* each configuration in its own fresh process (a process's allocator state is part of what is
  measured), alternating over ``--repeats`` rounds; medians;
* the outputs of both configurations are compared: they must be the same bits.

    .venv/bin/python benchmarks/ort_mem_pattern.py            # ~2 min on 2 cores

Results: ``benchmarks/results/ort_mem_pattern_cpu.{json,png}``; a Markdown table on stdout.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

RESULTS = ROOT / "benchmarks" / "results"
DEFAULT_WINDOWS = "12,4,4,1,159,177,171,175"
GRIDS = (2016, 1008, 512)


def worker(pattern: bool, windows: list[int], seed: int) -> dict[str, Any]:
    """One configuration in this process: seconds of the grid and fine calls, and an output digest."""
    import hashlib

    import numpy as np

    from detectors import onnx_runtime
    from detectors.onnx_runtime import make_session
    from detectors.sar import network
    from pipelines.memory import keep_large_blocks

    keep_large_blocks()  # as scan_scene does
    onnx_runtime.CPU_MEM_PATTERN = pattern
    fp = make_session(network.verify_weights(network.ONNX_FILE), "cpu")
    i8 = make_session(network.verify_weights(network.INT8_ONNX_FILE), "cpu")
    rng = np.random.default_rng(seed)
    grids = {s: (rng.standard_normal((1, 2, s, s)) * 0.5).astype(np.float32) for s in GRIDS}
    wins = (rng.standard_normal((max(windows), 2, 192, 192)) * 0.5).astype(np.float32)
    digest = hashlib.sha256()
    secs = {"grid": 0.0, "fine": 0.0}
    for n in windows:
        for s in GRIDS:
            t0 = time.perf_counter()
            out = fp.run(None, {network.ONNX_INPUT: grids[s]})
            secs["grid"] += time.perf_counter() - t0
            digest.update(out[0].tobytes())
        t0 = time.perf_counter()
        out = i8.run(None, {network.ONNX_INPUT: wins[:n]})
        secs["fine"] += time.perf_counter() - t0
        digest.update(out[0].tobytes())
        _ = np.ones((4024, 4024), np.float32) * 2  # the tile's own buffers between calls, as in a scan
    return {"pattern": pattern, **secs, "digest": digest.hexdigest()}


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--windows", default=DEFAULT_WINDOWS, help="fine-pass windows per tile, comma-separated")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--seed", type=int, default=20261202)
    ap.add_argument("--worker", choices=("on", "off"), default=None, help=argparse.SUPPRESS)
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args(argv)
    windows = [int(w) for w in args.windows.split(",") if w]
    if args.worker is not None:
        print(json.dumps(worker(args.worker == "on", windows, args.seed)))
        return 0
    from benchmarks.throughput import machine_info

    runs: dict[str, list[dict[str, Any]]] = {"on": [], "off": []}
    for i in range(args.repeats):
        for name in (("on", "off") if i % 2 == 0 else ("off", "on")):
            proc = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--worker", name,
                                   "--windows", args.windows, "--seed", str(args.seed)],
                                  cwd=ROOT, capture_output=True, text=True, check=True)
            runs[name].append(json.loads(proc.stdout.strip().splitlines()[-1]))
    rows = {name: {stage: statistics.median(r[stage] for r in rs) for stage in ("grid", "fine")}
            for name, rs in runs.items()}
    digests = {r["digest"] for rs in runs.values() for r in rs}
    hw = machine_info()
    result = {"generated": datetime.now(timezone.utc).isoformat(timespec="seconds"),
              "command": "python benchmarks/ort_mem_pattern.py " + " ".join(sys.argv[1:] if argv is None else argv),
              "machine": hw, "windows_per_tile": windows, "grids_px": list(GRIDS), "repeats": args.repeats,
              "median_s": rows, "runs": runs, "same_outputs": len(digests) == 1,
              "fine_ratio_off_vs_on": rows["on"]["fine"] / rows["off"]["fine"],
              "grid_ratio_off_vs_on": rows["on"]["grid"] / rows["off"]["grid"]}
    out = args.out or RESULTS / "ort_mem_pattern_cpu.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1))
    print(f"\nonnxruntime memory pattern over a scan's calls ({len(windows)} tiles), {hw['cpu_model']}, "
          f"{hw['cpu_count']} CPUs, median of {args.repeats} fresh processes each\n")
    print("| memory pattern | working + coarse grids s | fine-pass windows s |\n|---|---|---|")
    for name in ("on", "off"):
        print(f"| {name} | {rows[name]['grid']:.2f} | {rows[name]['fine']:.2f} |")
    print(f"\nfine pass {result['fine_ratio_off_vs_on']:.2f}x faster off, grids {result['grid_ratio_off_vs_on']:.2f}x; "
          f"same outputs: {result['same_outputs']}")
    save_chart(rows, out.with_suffix(".png"), hw["cpu_model"])
    return 0 if result["same_outputs"] else 1


def save_chart(rows: dict[str, dict[str, float]], path: Path, hardware: str) -> None:
    """Stacked bars: grid and fine-pass seconds with the pattern on and off."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = ["on", "off"]
    fig, ax = plt.subplots(figsize=(6, 2.4))
    grid = [rows[n]["grid"] for n in names]
    fine = [rows[n]["fine"] for n in names]
    ax.barh(names, grid, color="#8a8a9a", label="working + coarse grids")
    ax.barh(names, fine, left=grid, color="#23a97a", label="fine-pass windows (int8)")
    ax.set_xlabel("seconds over the replayed scan (lower is better)")
    ax.set_ylabel("memory pattern")
    ax.set_title(f"onnxruntime memory pattern, {hardware}", fontsize=9)
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    raise SystemExit(main())
