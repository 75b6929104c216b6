"""Validation of the int8 SAR network (``detectors/training/quantize_sar.py``): ``sar-fused`` int8 vs float32.

The rule, written before the run: ``benchmarks/results/sar_int8/CHOICE_RULE.txt`` (int8 becomes the
CPU default only if, on each of generated seeds 944-969 at 0.5 m and at 1 m with a dense group, and
the SSDD val chips at declared 1 m and 3 m, its F1 and lifeboat recall are each no lower than
float32's). CPU seconds of each detector are reported next to it.

    .venv/bin/python benchmarks/experiments/try_int8.py --ssdd ../shared/datasets/ssdd_train
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
from pathlib import Path
from typing import Any

import torch

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks" / "experiments"))

from benchmarks.eval_learned import _read_chip, ssdd_chosen  # noqa: E402
from benchmarks.eval_vessels import load_coco  # noqa: E402
from detectors import get_detector  # noqa: E402
from detectors.synth.sar import make_sar_scene  # noqa: E402
from try_cascade import run  # noqa: E402  (the same scoring: eval_vessels matching and metrics)

RULE = ROOT / "benchmarks" / "results" / "sar_int8" / "CHOICE_RULE.txt"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", default="944-969")
    ap.add_argument("--size", type=int, default=1024)
    ap.add_argument("--ssdd", type=Path, default=None)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "sar_int8" / "validation.json")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    lo, hi = (int(v) for v in args.seeds.split("-"))
    dets = {"float32": get_detector("sar-fused", "cpu", learned={"runtime": "onnxruntime"}),
            "int8": get_detector("sar-fused", "cpu", learned={"runtime": "onnxruntime-int8"})}
    out: dict[str, Any] = {"rule": str(RULE.relative_to(ROOT)), "seeds": args.seeds, "size": args.size,
                           "versions": {k: d.version for k, d in dets.items()},
                           "command": "python benchmarks/experiments/try_int8.py " + " ".join(argv or sys.argv[1:]),
                           "hardware": f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads, CPU only"}
    for sp in (0.5, 1.0):
        items = []
        for seed in range(lo, hi + 1):
            sc = make_sar_scene(seed, rows=args.size, cols=args.size, spacing_m=sp, n_groups=1)
            items.append((torch.from_numpy(sc.sigma0_from_dn()), torch.from_numpy(sc.dn > 0), sp,
                          [t for t in sc.truth if t["kind"] in ("vessel", "lifeboat")]))
        out[f"generated_{sp:g}m"] = {k: run(d, items, False) for k, d in dets.items()}
        print(sp, json.dumps(out[f"generated_{sp:g}m"]), flush=True)
    if args.ssdd is not None:
        imgs, anns = load_coco(args.ssdd / "instances_train.json")
        chosen = ssdd_chosen(imgs, "val")
        for sp in (1.0, 3.0):
            items = []
            for im in imgs:
                if im["id"] in chosen:
                    a = _read_chip(args.ssdd, im)
                    items.append((torch.from_numpy((a + 0.5) ** 2), None, sp, anns.get(im["id"], [])))
            out[f"ssdd_val_{sp:g}m"] = {k: run(d, items, True) for k, d in dets.items()}
            print("ssdd", sp, json.dumps(out[f"ssdd_val_{sp:g}m"]), flush=True)
    sets = {k: r for k, r in out.items() if isinstance(r, dict) and "int8" in r and "float32" in r}
    ok = len(sets) == 4 and all(
        r["int8"]["f1"] >= r["float32"]["f1"]
        and (r["int8"]["lifeboat_recall"] or 1.0) >= (r["float32"]["lifeboat_recall"] or 1.0) for r in sets.values())
    out["int8_passes_rule"] = ok
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=1))
    print("int8 passes the rule:", ok)
    return 0


if __name__ == "__main__":
    sys.exit(main())
