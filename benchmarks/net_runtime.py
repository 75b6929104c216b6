"""The shipped SAR network alone, per runtime: torch, torch channels_last, onnxruntime float32 and int8.

Why next to ``scan_cpu.py``: that one times whole scans; this one times only the network call the
``runtime`` option of ``sar-learned`` chooses (``detectors.sar.learned.RUNTIMES``), on the same
input, interleaved over ``--repeats`` rounds (medians; the machine is shared), and says how far
each runtime's heads are from torch's (max absolute difference of the heatmap and the regression).

Input: one generated 0.5 m scene (``--seed``), put on the 1 m working grid and normalised as the
detector does, cut to ``--size`` working pixels square (default 1536, a 3072 px input tile).

    .venv/bin/python benchmarks/net_runtime.py                 # ~1 min on 2 cores
    .venv/bin/python benchmarks/net_runtime.py --device cuda   # torch runtimes on the GPU, onnxruntime on its providers

Results: ``benchmarks/results/net_runtime_<device>.{json,png}``; a Markdown table on stdout.
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

# before torch: throughput.py sets the benchmarks' OpenMP wait policy, which torch reads when it loads
from benchmarks.throughput import machine_info  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402

from detectors.onnx_runtime import make_session  # noqa: E402
from detectors.sar import network  # noqa: E402
from detectors.sar.network import SarCenterNetExport, load_checkpoint, normalise, pad_to_multiple, to_working_grid  # noqa: E402
from detectors.synth.sar import make_sar_scene  # noqa: E402

log = logging.getLogger("orbitwatch.bench.net_runtime")
RESULTS = ROOT / "benchmarks" / "results"


def working_input(seed: int, size: int) -> torch.Tensor:
    """(1, 2, size, size) network input from a generated 0.5 m scene, as ``sar-learned`` makes it."""
    sc = make_sar_scene(seed, 2 * size, 2 * size, 0.5)
    x = torch.from_numpy(sc.sigma0_from_dn())[None]
    power, vw = to_working_grid(x, (0.5, 0.5), torch.from_numpy(sc.dn > 0)[None])
    return pad_to_multiple(normalise(power, vw))[..., :size, :size].contiguous()


def runtimes(device: torch.device) -> dict[str, Callable[[torch.Tensor], tuple[np.ndarray, np.ndarray]]]:
    """name -> (input -> heatmap, regression as numpy), every runtime that starts here."""
    net = SarCenterNetExport(load_checkpoint()[0]).to(device).eval()
    net_cl = SarCenterNetExport(load_checkpoint()[0]).to(device).eval().to(memory_format=torch.channels_last)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)

    def torch_run(m: torch.nn.Module, channels_last: bool) -> Callable[[torch.Tensor], tuple[np.ndarray, np.ndarray]]:
        def run(x: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
            with torch.no_grad():
                xi = x.to(device)
                h, r = m(xi.contiguous(memory_format=torch.channels_last) if channels_last else xi)
                sync()
                return h.float().cpu().numpy(), r.float().cpu().numpy()
        return run

    out: dict[str, Callable[[torch.Tensor], tuple[np.ndarray, np.ndarray]]] = {
        "torch": torch_run(net, False), "torch channels_last": torch_run(net_cl, True)}
    for name, path in (("onnxruntime float32", network.ONNX_FILE), ("onnxruntime int8", network.INT8_ONNX_FILE)):
        sess = make_session(network.verify_weights(path), device)

        def ort_run(x: torch.Tensor, sess: Any = sess) -> tuple[np.ndarray, np.ndarray]:
            h, r = sess.run(list(network.ONNX_OUTPUTS), {network.ONNX_INPUT: x.numpy()})
            return h, r
        out[name] = ort_run
    return out


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--size", type=int, default=1536)
    ap.add_argument("--seed", type=int, default=20240709)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    x = working_input(args.seed, args.size)
    runs = runtimes(device)
    ref = runs["torch"](x)
    times: dict[str, list[float]] = {k: [] for k in runs}
    diffs: dict[str, dict[str, float]] = {}
    for name, run in runs.items():  # warm-up, and the distance from torch's heads
        h, r = run(x)
        diffs[name] = {"heat_max_abs_diff": float(np.abs(h - ref[0]).max()),
                       "reg_max_abs_diff": float(np.abs(r - ref[1]).max())}
    for i in range(args.repeats):
        order = list(runs) if i % 2 == 0 else list(reversed(runs))
        for name in order:
            t0 = time.perf_counter()
            runs[name](x)
            times[name].append(time.perf_counter() - t0)
    base = statistics.median(times["torch"])
    rows = {name: {"median_s": statistics.median(ts), "times_s": ts, "speed_vs_torch": base / statistics.median(ts),
                   "working_mpx_s": args.size ** 2 / statistics.median(ts) / 1e6, **diffs[name]}
            for name, ts in times.items()}
    hw = machine_info()
    result = {"generated": datetime.now(timezone.utc).isoformat(timespec="seconds"),
              "command": "python benchmarks/net_runtime.py " + " ".join(sys.argv[1:] if argv is None else argv),
              "device": str(device), "input": f"(1, 2, {args.size}, {args.size}) working grid, seed {args.seed}",
              "machine": hw, "runtimes": rows}
    out = args.out or RESULTS / f"net_runtime_{device.type}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1))
    print(f"\nThe shipped SAR network, one {args.size} x {args.size} working tile, {device} "
          f"({hw['cpu_model']}, {hw['torch_threads']} torch threads), median of {args.repeats}\n")
    print("| runtime | s | x torch | working Mpx/s | max abs diff heat / reg vs torch |\n|---|---|---|---|---|")
    for name, r in rows.items():
        print(f"| {name} | {r['median_s']:.3f} | {r['speed_vs_torch']:.2f} | {r['working_mpx_s']:.1f} | "
              f"{r['heat_max_abs_diff']:.1e} / {r['reg_max_abs_diff']:.1e} |")
    save_chart(rows, out.with_suffix(".png"), f"{hw['cpu_model']}, {device}")
    return 0


def save_chart(rows: dict[str, dict[str, Any]], path: Path, hardware: str) -> None:
    """Bar chart: seconds per tile per runtime, speed against torch on each bar."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(rows)
    secs = [rows[n]["median_s"] for n in names]
    fig, ax = plt.subplots(figsize=(7, 3))
    bars = ax.barh(names, secs, color=["#8a8a9a" if n.startswith("torch") else "#23a97a" for n in names])
    for b, n in zip(bars, names):
        ax.text(b.get_width(), b.get_y() + b.get_height() / 2, f" {rows[n]['speed_vs_torch']:.1f}x",
                va="center", fontsize=9)
    ax.set_xlabel("seconds per working tile (lower is better)")
    ax.set_title(f"SAR network per runtime, {hardware}", fontsize=9)
    ax.set_xlim(0, max(secs) * 1.2)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    raise SystemExit(main())
