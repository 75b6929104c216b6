"""Validation of ``fire-learned``'s cascade (:meth:`detectors.fire.learned._LearnedFireBase.fire_probability`).

The rule, written before the run: the prescreen threshold is the highest of the candidates
(0.08, 0.06, 0.04, 0.03, 0.02) whose fire masks equal the full pass's, pixel for pixel, on every
validation tile (generated seeds 5000-5019 and 5100-5119, Landsat-8 and Sentinel-2 alternating,
traps on; never trained on) and on the real Sentinel-2 scene, when it is given. The share of
pixels the network saw and the CPU time are reported next to it.

    .venv/bin/python benchmarks/experiments/try_fire_cascade.py --s2 ../shared/datasets/s2_bc_wildfire/G90292_20230514.tif
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import torch

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import detectors.fire.learned as FL  # noqa: E402
from detectors import get_detector  # noqa: E402
from detectors.synth.optical import make_optical_tile  # noqa: E402

CANDIDATES = (0.08, 0.06, 0.04, 0.03, 0.02)


def tiles(size: int, s2: Path | None) -> list[tuple[str, dict[str, torch.Tensor], float]]:
    out = []
    for seed in list(range(5000, 5020)) + list(range(5100, 5120)):
        sensor = "landsat8" if seed % 2 else "sentinel2"
        px = 30.0 if sensor == "landsat8" else 20.0
        t = make_optical_tile(seed, rows=size, cols=size, pixel_size_m=px, sensor=sensor, traps=True)
        out.append((f"seed {seed} {sensor}", {k: torch.from_numpy(v.astype("float32")) for k, v in t.bands.items()}, px))
    if s2 is not None:
        from eval_fire import read_s2

        bands, res_m, _, _ = read_s2(s2)
        out.append((f"real {s2.name}", {k: torch.from_numpy(v) for k, v in bands.items() if k in FL.BANDS}, res_m))
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=768)
    ap.add_argument("--s2", type=Path, default=None)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "fire_cascade_validation.json")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    data = tiles(args.size, args.s2)
    full = get_detector("fire-learned", "cpu", cascade=False)
    cas = get_detector("fire-learned", "cpu", cascade=True)
    ref, t_full = [], 0.0
    for _, bands, px in data:
        t0 = time.process_time()
        ref.append(full.detect(bands, pixel_size_m=px).mask)
        t_full += time.process_time() - t0
    res: dict[str, Any] = {"rule": __doc__.split("\n\n")[1].replace("\n", " "), "size": args.size,
                           "tiles": [n for n, _, _ in data], "full_cpu_s": round(t_full, 2),
                           "fire_pixels_full": int(sum(int(m.sum()) for m in ref)), "candidates": {}}
    keep = FL.PRESCREEN_EXCESS
    try:
        for thr in CANDIDATES:
            FL.PRESCREEN_EXCESS = thr
            diff, frac, t = [], [], 0.0
            for (name, bands, px), m in zip(data, ref):
                t0 = time.process_time()
                got = cas.detect(bands, pixel_size_m=px).mask
                t += time.process_time() - t0
                frac.append(cas.last_window_fraction)
                d = int((got != m).sum())
                if d:
                    diff.append({"tile": name, "pixels_differing": d})
            res["candidates"][str(thr)] = {"tiles_differing": diff, "cpu_s": round(t, 2),
                                           "window_fraction_mean": round(sum(frac) / len(frac), 4),
                                           "window_fraction_max": round(max(frac), 4)}
            print(thr, json.dumps(res["candidates"][str(thr)]), flush=True)
    finally:
        FL.PRESCREEN_EXCESS = keep
    ok = [float(k) for k, v in res["candidates"].items() if not v["tiles_differing"]]
    res["chosen"] = max(ok) if ok else None
    args.out.write_text(json.dumps(res, indent=1))
    print("chosen:", res["chosen"], "(full pass cpu", res["full_cpu_s"], "s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
