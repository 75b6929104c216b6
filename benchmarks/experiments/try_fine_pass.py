"""How the fine confirmation pass of ``sar-learned`` trades false alarms for small boats.

Runs the shipped SAR weights on generated 0.5 m scenes with the fine pass off and at several
thresholds and prints object P / R / F1 and lifeboat recall for each (matching as in
``eval_vessels.py``). This is how ``detectors.sar.fine_pass.FINE_THRESHOLD`` (0.5) was chosen, on
validation seeds 900-919 and 980-999 only; the choice was then judged by the pre-written rules in
``benchmarks/results/sar_postprocess_4/CHOICE_RULE.txt`` on other seeds.

    .venv/bin/python benchmarks/experiments/try_fine_pass.py --seeds 900-919,980-999 \\
        --out benchmarks/results/sar_postprocess_4/explore_900-919_980-999.json
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repository root
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/ (eval_vessels)

import torch  # noqa: E402

from eval_vessels import _seeds, match  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", default="900-919,980-999")
    ap.add_argument("--thresholds", default="none,0.45,0.5,0.55,0.6", help="fine thresholds; none = pass off")
    ap.add_argument("--size", type=int, default=1024)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    from detectors.sar.learned import LearnedSarDetector
    from detectors.synth.sar import make_sar_scene

    labels = [t.strip() for t in args.thresholds.split(",")]
    dets = {t: LearnedSarDetector(fine_threshold=None if t == "none" else float(t)) for t in labels}
    acc = {t: {"truth": 0, "reported": 0, "hit": 0, "lifeboats": 0, "lifeboats_hit": 0, "seconds": 0.0}
           for t in labels}
    for seed in _seeds(args.seeds):
        s = make_sar_scene(seed, args.size, args.size, 0.5)
        x, v = torch.from_numpy(s.sigma0_from_dn()), torch.from_numpy(s.dn > 0)
        truth = [t for t in s.truth if t["kind"] in ("vessel", "lifeboat")]
        for t, det in dets.items():
            t0 = time.perf_counter()
            got = det.detect(x, spacing_m=(0.5, 0.5), valid=v)
            a = acc[t]
            a["seconds"] += time.perf_counter() - t0
            hit = {j for _, j in match(got, truth, 0.5)}
            a["truth"] += len(truth)
            a["reported"] += len(got)
            a["hit"] += len(hit)
            a["lifeboats"] += sum(q["kind"] == "lifeboat" for q in truth)
            a["lifeboats_hit"] += sum(truth[j]["kind"] == "lifeboat" for j in hit)
    print(f"{'fine':>6} {'P':>6} {'R':>6} {'F1':>7} {'lifeboat recall':>20} {'s/scene':>8}")
    n = len(_seeds(args.seeds))
    for t, a in acc.items():
        a["precision"] = a["hit"] / max(1, a["reported"])
        a["recall"] = a["hit"] / max(1, a["truth"])
        a["f1"] = 2 * a["hit"] / max(1, a["reported"] + a["truth"])
        a["lifeboat_recall"] = a["lifeboats_hit"] / max(1, a["lifeboats"])
        print(f"{t:>6} {a['precision']:6.3f} {a['recall']:6.3f} {a['f1']:7.4f} "
              f"{a['lifeboats_hit']:>7}/{a['lifeboats']:<4} = {a['lifeboat_recall']:.3f} {a['seconds'] / n:8.3f}")
    if args.out:
        args.out.write_text(json.dumps({"seeds": args.seeds, "size": args.size, "results": acc,
                                        "command": "python " + " ".join(sys.argv)}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
