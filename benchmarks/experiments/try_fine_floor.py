"""Can the fine confirmation pass look at fewer candidates without confirming fewer boats?

The pass (``detectors.sar.fine_pass``) scores a fine-grid window for every sub-threshold small
candidate whose 1 m heatmap score is at least ``FINE_CANDIDATE_FLOOR``. On cluttered scenes most
windows confirm nothing (the CPU benchmark's two 0.5 m scenes: 703 windows, none confirmed), so
the floor sets much of the pass's cost. This script records, for every window of the validation
scenes, the candidate's 1 m score and its fine-grid score (float32, no int8 screen), applies the
rule written before it ran (``benchmarks/results/fine_floor/CHOICE_RULE.txt``), and checks the
chosen floor scene by scene: the same detections as with the shipped floor.

    .venv/bin/python benchmarks/experiments/try_fine_floor.py --ssdd ../shared/datasets/ssdd_train \\
        --out benchmarks/results/fine_floor/validation.json
    # the test, once, after the choice (seeds never used for it):
    .venv/bin/python benchmarks/experiments/try_fine_floor.py --seeds 1000-1019 --floor F \\
        --out benchmarks/results/fine_floor/test.json
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

#: The floors the rule may choose from, and the margin it asks for (CHOICE_RULE.txt).
FLOORS = (0.12, 0.15, 0.2, 0.25, 0.3)
MARGIN = 0.02


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", default="900-999")
    ap.add_argument("--spacings", default="0.35,0.5")
    ap.add_argument("--size", type=int, default=1024)
    ap.add_argument("--ssdd", type=Path, default=None, help="SSDD root (its validation chips at 0.5 m)")
    ap.add_argument("--floor", type=float, default=None,
                    help="compare this floor with the shipped one instead of choosing one (the test)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    from benchmarks.throughput import machine_info
    from detectors.sar import fine_pass, learned
    from detectors.sar.learned import LearnedSarDetector
    from detectors.synth.sar import make_sar_scene

    det = LearnedSarDetector(fine_int8=False)
    shipped = fine_pass.FINE_CANDIDATE_FLOOR
    windows: list[tuple[float, float]] = []  # (1 m score, fine score) of every window at the shipped floor
    confirm = fine_pass.confirm_small_candidates

    def recording(evidence: list[Any], fine: Any, threshold: float, name: str) -> Any:
        if fine_pass.FINE_CANDIDATE_FLOOR == shipped:
            cand = [p for p in evidence if p[0] >= shipped
                    and max(p[3], p[4]) * fine_pass.WORKING_SPACING_M <= fine_pass.FINE_MAX_BOX_M]
            windows.extend(zip((float(p[0]) for p in cand), fine([(p[1], p[2]) for p in cand]) if cand else []))
        return confirm(evidence, fine, threshold, name)

    learned.confirm_small_candidates = recording  # type: ignore[assignment]
    scenes: list[tuple[str, torch.Tensor, float, torch.Tensor | None]] = []
    spacings = [float(s) for s in args.spacings.split(",") if s]
    for seed in _seeds(args.seeds):
        for sp in spacings:
            s = make_sar_scene(seed, args.size, args.size, sp)
            scenes.append((f"seed {seed} at {sp:g} m", torch.from_numpy(s.sigma0_from_dn()), sp,
                           torch.from_numpy(s.dn > 0)))
    if args.ssdd is not None:
        from eval_learned import _read_chip, load_coco, ssdd_sweep_chips

        imgs, _ = load_coco(args.ssdd / "instances_train.json")
        by_id = {im["id"]: im for im in imgs}
        ids, _ = ssdd_sweep_chips(args.ssdd, "val")
        for i in ids:
            a = _read_chip(args.ssdd, by_id[i])
            scenes.append((f"ssdd {i} at 0.5 m", torch.from_numpy((a + 0.5) ** 2), 0.5, None))

    def run_all(floor: float) -> tuple[list[list[Any]], float, int]:
        fine_pass.FINE_CANDIDATE_FLOOR = floor
        det.fine_windows = {"int8": 0, "float32": 0}
        t0 = time.perf_counter()
        try:
            got = [det.detect(x, spacing_m=(sp, sp), valid=v) for _, x, sp, v in scenes]
        finally:
            fine_pass.FINE_CANDIDATE_FLOOR = shipped
        return got, time.perf_counter() - t0, det.fine_windows["float32"]

    base, base_s, base_n = run_all(shipped)
    w = np.array(windows, dtype=np.float64).reshape(-1, 2)
    thr = float(det.fine_threshold or 0.5)
    reach = w[:, 1] >= thr
    lowest = float(w[reach, 0].min()) if reach.any() else None
    if args.floor is not None:
        chosen = float(args.floor)
    else:  # the rule: the largest floor every confirming window clears with the margin
        ok = [f for f in FLOORS if lowest is None or lowest >= f + MARGIN]
        chosen = max(ok) if ok else shipped
    differ: list[str] = []
    new_s, new_n = base_s, base_n
    if chosen != shipped:
        new, new_s, new_n = run_all(chosen)
        differ = [label for (label, *_), a, b in zip(scenes, base, new) if a != b]
    result = {
        "generated": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "command": "python benchmarks/experiments/try_fine_floor.py " + " ".join(argv or sys.argv[1:]),
        "machine": machine_info(),
        "rule": "benchmarks/results/fine_floor/CHOICE_RULE.txt",
        "scenes": len(scenes), "generated_seeds": args.seeds, "spacings_m": spacings,
        "ssdd_val_chips_at_0.5m": sum(label.startswith("ssdd") for label, *_ in scenes),
        "shipped_floor": shipped, "fine_threshold": thr,
        "windows": len(w), "windows_reaching_threshold": int(reach.sum()),
        "lowest_1m_score_of_those": lowest,
        "one_m_scores_of_those": sorted(round(float(v), 4) for v in w[reach, 0]),
        "windows_at_or_above": {f"{f:g}": int((w[:, 0] >= f).sum()) for f in (shipped,) + FLOORS},
        "chosen_floor": chosen,
        "scenes_with_different_detections": differ,
        "fine_windows": {"shipped_floor": base_n, "chosen_floor": new_n},
        "detector_seconds": {"shipped_floor": base_s, "chosen_floor": new_s},
    }
    print(json.dumps({k: v for k, v in result.items() if k != "machine"}, indent=1))
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=1))
    return 0 if not differ else 1


if __name__ == "__main__":
    sys.exit(main())
