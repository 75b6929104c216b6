"""Does the int8 screen of the fine pass (``sar-learned`` option ``fine_int8``) change any detection?

The screen (``detectors.sar.fine_pass.FINE_INT8_MARGIN``) scores every fine-pass window with the
shipped int8 network and runs the float32 network only on windows within the margin of the fine
threshold. It is meant to give *the same* detections as the pass without it, so this script
checks exactly that, and measures the quantity the margin rests on:

* ``sar-learned`` with and without the screen on generated scenes (default seeds 900-999, 1024 px,
  at 0.35 and 0.5 m: the fine pass runs only at <= 0.625 m) and, with ``--ssdd``, on the SSDD
  validation chips declared at 0.5 m: the detections must be equal, scene by scene;
* for every fine-pass window of those scenes, the int8 and float32 scores: the largest
  difference, and the smallest int8 score of a window whose float32 score reaches the threshold
  (the screen is safe while that stays above ``fine_threshold - FINE_INT8_MARGIN``);
* how many windows the float32 network still scored.

    .venv/bin/python benchmarks/experiments/try_fine_int8.py --ssdd ../shared/datasets/ssdd_train \\
        --out benchmarks/results/fine_int8_check.json
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from eval_vessels import _seeds  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", default="900-999")
    ap.add_argument("--spacings", default="0.35,0.5")
    ap.add_argument("--size", type=int, default=1024)
    ap.add_argument("--ssdd", type=Path, default=None, help="SSDD root (its validation chips at 0.5 m)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    from benchmarks.throughput import machine_info
    from detectors.sar import fine_pass, learned
    from detectors.sar.learned import LearnedSarDetector
    from detectors.synth.sar import make_sar_scene

    screened, plain = LearnedSarDetector(), LearnedSarDetector(fine_int8=False)
    if screened.fine_screen is None:
        print("the int8 screen did not start (see the warning above)")
        return 2
    pairs: list[tuple[float, float]] = []  # (float32, int8) per fine window, from the plain detector
    run = fine_pass.fine_window_scores

    def recording(heads: Any, tile: Any, centres: list[tuple[float, float]]) -> list[float]:
        exact = run(heads, tile, centres)
        if heads == plain.heads:  # the unscreened detector's calls: also score them in int8
            guard = screened.fine_screen
            rough = run(lambda x: learned._run_session(guard.session, x, plain.device), tile, centres)
            pairs.extend(zip(exact, rough))
        return exact

    learned.fine_window_scores = recording  # type: ignore[assignment]
    differ: list[str] = []
    n_scenes = 0
    seconds = {"screened": 0.0, "plain": 0.0}

    def compare(label: str, x: torch.Tensor, spacing: float, valid: torch.Tensor | None) -> None:
        nonlocal n_scenes
        got = {}
        for name, det in (("screened", screened), ("plain", plain)):
            t0 = time.perf_counter()
            got[name] = det.detect(x, spacing_m=(spacing, spacing), valid=valid)
            seconds[name] += time.perf_counter() - t0
        n_scenes += 1
        if got["screened"] != got["plain"]:
            differ.append(label)

    spacings = [float(s) for s in args.spacings.split(",") if s]
    for seed in _seeds(args.seeds):
        for sp in spacings:
            s = make_sar_scene(seed, args.size, args.size, sp)
            compare(f"seed {seed} at {sp:g} m", torch.from_numpy(s.sigma0_from_dn()), sp, torch.from_numpy(s.dn > 0))
    n_ssdd = 0
    if args.ssdd is not None:
        from eval_learned import _read_chip, load_coco, ssdd_sweep_chips

        imgs, _ = load_coco(args.ssdd / "instances_train.json")
        by_id = {im["id"]: im for im in imgs}
        ids, _ = ssdd_sweep_chips(args.ssdd, "val")
        for i in ids:
            a = _read_chip(args.ssdd, by_id[i])
            compare(f"ssdd {i} at 0.5 m", torch.from_numpy((a + 0.5) ** 2), 0.5, None)
            n_ssdd += 1
    p = np.array(pairs, dtype=np.float64).reshape(-1, 2)
    thr = float(plain.fine_threshold or 0.5)
    reach = p[:, 0] >= thr
    result = {
        "generated": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "command": "python benchmarks/experiments/try_fine_int8.py " + " ".join(argv or sys.argv[1:]),
        "machine": machine_info(),
        "scenes": n_scenes, "generated_seeds": args.seeds, "spacings_m": spacings, "ssdd_val_chips_at_0.5m": n_ssdd,
        "scenes_with_different_detections": differ,
        "fine_windows": len(p),
        "max_abs_int8_minus_float32": float(np.abs(p[:, 0] - p[:, 1]).max()) if len(p) else None,
        "windows_reaching_threshold": int(reach.sum()),
        "min_int8_score_of_those": float(p[reach, 1].min()) if reach.any() else None,
        "screen_floor": thr - fine_pass.FINE_INT8_MARGIN,
        "float32_windows_with_screen": screened.fine_windows.get("float32", 0),
        "int8_windows_with_screen": screened.fine_windows.get("int8", 0),
        "float32_windows_without": plain.fine_windows.get("float32", 0),
        "detector_seconds": seconds,
    }
    print(json.dumps({k: v for k, v in result.items() if k != "machine"}, indent=1))
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=1))
    return 0 if not differ else 1


if __name__ == "__main__":
    sys.exit(main())
