"""Where one detector's time goes on one tile: cProfile of repeated ``detect`` calls (after a
warm-up), CUDA-synchronised, printed as the top functions by own time. Needs only torch/numpy
(the generated scene comes from detectors.synth, which imports neither rasterio nor prefect).

    python benchmarks/profile_detector.py --detector sar-learned --device cuda --size 4096
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from detectors import get_detector  # noqa: E402
from detectors.synth.sar import make_sar_scene  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--detector", default="sar-learned")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--size", type=int, default=4096)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--top", type=int, default=20)
    ap.add_argument("--seed", type=int, default=20240709)
    ap.add_argument("--tensor-geometry", choices=("auto", "on", "off"), default="auto",
                    help="sar-learned's peak geometry and ghost test as batched tensor operations (detectors/sar/"
                         "blob_batch.py, ambiguity_batch.py): "
                         "auto = on CUDA only; on/off to compare the two on one device")
    args = ap.parse_args(argv)
    s = make_sar_scene(args.seed, args.size, args.size, 0.5)
    x, v = torch.from_numpy(s.sigma0_from_dn()), torch.from_numpy(s.dn > 0)
    det = get_detector(args.detector, device=args.device)
    if args.tensor_geometry != "auto":
        learned = getattr(det, "learned", det)  # sar-fused wraps a sar-learned
        if not hasattr(learned, "tensor_geometry"):
            ap.error(f"--tensor-geometry: {args.detector} has no learned SAR post-processing")
        learned.tensor_geometry = args.tensor_geometry == "on"
    sync = torch.cuda.synchronize if args.device.startswith("cuda") else (lambda: None)
    det.detect(x, spacing_m=(0.5, 0.5), valid=v)
    sync()
    prof = cProfile.Profile()
    t0 = time.perf_counter()
    prof.enable()
    for _ in range(args.repeats):
        got = det.detect(x, spacing_m=(0.5, 0.5), valid=v)
    sync()
    prof.disable()
    dt = (time.perf_counter() - t0) / args.repeats
    buf = io.StringIO()
    pstats.Stats(prof, stream=buf).sort_stats("tottime").print_stats(args.top)
    print(f"{args.detector} on {args.device}, {args.size} x {args.size} tile at 0.5 m, tensor geometry "
          f"{args.tensor_geometry}: {dt * 1e3:.1f} ms per call ({args.size * args.size / dt / 1e6:.0f} Mpx/s), "
          f"{len(got)} detections")
    print("detections:", [(round(d.row, 1), round(d.col, 1), d.kind, round(d.score, 3)) for d in got])
    print(buf.getvalue())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
