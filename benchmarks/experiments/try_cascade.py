"""Validation of the CPU cascade (``detectors/sar/cascade.py``): ``sar-fused`` with and without it.

The rule, written before the run: the cascade may be the CPU default only if, on validation data
(generated seeds 944-969 at 0.5 and 1 m with dense groups, never used for training; the SSDD val
chips at declared 1 m), its F1 and lifeboat recall are each no lower than the full pass's. The
share of working pixels the network saw and the detector time are reported next to it.

    .venv/bin/python benchmarks/experiments/try_cascade.py --ssdd ../shared/datasets/ssdd_train
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from benchmarks.eval_learned import _read_chip, ssdd_chosen  # noqa: E402
from benchmarks.eval_vessels import load_coco, match, metrics  # noqa: E402
from detectors import get_detector  # noqa: E402
from detectors.synth.sar import make_sar_scene  # noqa: E402


def run(det: Any, items: list[tuple[torch.Tensor, torch.Tensor | None, float, list[dict[str, Any]]]],
        coco: bool) -> dict[str, Any]:
    rows, t, frac = [], 0.0, []
    for x, v, sp, truth in items:
        t0 = time.process_time()
        got = det.detect(x, spacing_m=(sp, sp), valid=v)
        t += time.process_time() - t0
        frac.append(det.learned.last_window_fraction if det.learned.cascade_on else 1.0)
        rows.append((got, truth, match(got, truth, None if coco else sp)))
    m = metrics(rows)
    return {"f1": m["f1"], "precision": m["precision"], "recall": m["recall"],
            "lifeboat_recall": m["recall_by_class"].get("lifeboat", {}).get("recall"),
            "cpu_s": round(t, 2), "window_fraction_mean": round(float(np.mean(frac)), 4)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", default="944-969")
    ap.add_argument("--size", type=int, default=1536)
    ap.add_argument("--ssdd", type=Path, default=None)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--prescreen", type=float, default=None, help="prescreen threshold (default: PRESCREEN_CH0)")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "cascade_validation.json")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    lo, hi = (int(v) for v in args.seeds.split("-"))
    full = get_detector("sar-fused", "cpu", cascade=False)
    cas = get_detector("sar-fused", "cpu", cascade=True,
                       learned=None if args.prescreen is None else {"prescreen": args.prescreen})
    out: dict[str, Any] = {"rule": __doc__.split("\n\n")[1].replace("\n", " "), "seeds": args.seeds,
                           "size": args.size, "prescreen": cas.learned.prescreen, "versions": {"full": full.version, "cascade": cas.version}}
    for sp in (0.5, 1.0):
        items = []
        for seed in range(lo, hi + 1):
            sc = make_sar_scene(seed, rows=args.size, cols=args.size, spacing_m=sp, n_groups=1)
            x = torch.from_numpy(sc.sigma0_from_dn())
            items.append((x, torch.from_numpy(sc.dn > 0), sp,
                          [t for t in sc.truth if t["kind"] in ("vessel", "lifeboat")]))
        out[f"generated_{sp:g}m"] = {"full": run(full, items, False), "cascade": run(cas, items, False)}
        print(sp, json.dumps(out[f"generated_{sp:g}m"]), flush=True)
    if args.ssdd is not None:
        imgs, anns = load_coco(args.ssdd / "instances_train.json")
        chosen = ssdd_chosen(imgs, "val")
        items = []
        for im in imgs:
            if im["id"] in chosen:
                a = _read_chip(args.ssdd, im)
                items.append((torch.from_numpy((a + 0.5) ** 2), None, 1.0, anns.get(im["id"], [])))
        out["ssdd_val_1m"] = {"full": run(full, items, True), "cascade": run(cas, items, True)}
        print("ssdd", json.dumps(out["ssdd_val_1m"]), flush=True)
    def lifeboats(r: dict[str, Any]) -> float:  # None: the set has no lifeboats (not 0.0 recall)
        return 1.0 if r["lifeboat_recall"] is None else r["lifeboat_recall"]

    ok = all(r["cascade"]["f1"] >= r["full"]["f1"] and lifeboats(r["cascade"]) >= lifeboats(r["full"])
             for k, r in out.items() if isinstance(r, dict) and "full" in r)
    out["cascade_passes_rule"] = ok
    args.out.write_text(json.dumps(out, indent=1))
    print("cascade passes the rule:", ok)
    return 0


if __name__ == "__main__":
    sys.exit(main())
