"""The learned SAR detector's batched post-processing against its host loops, scene by scene.

Issue 20 asks the device-side decoding to give "the same detections as today on the evaluation
seeds". This runs ``sar-learned``'s network once per image (``network_pass``) and its
post-processing twice (``finish``): with the per-peak NumPy/SciPy loops (the CPU default) and
with the batched tensor steps (``tensor_geometry=True``: ``detectors/sar/blob_batch.py``,
``detectors/sar/ambiguity_batch.py``, the CUDA default). Then it compares the two lists: count,
kind and score of each detection, position, length, width and heading. On a GPU box the same
command compares them on CUDA.

It reads generated scenes (the evaluation seeds, with dense groups), and optionally real SSDD
chips declared at several spacings (the 8-bit chip squared, as ``eval_learned.py`` reads them).
It is an equivalence check, not a score, so it may read any split; what is scored nowhere here
cannot leak into a choice.

    python benchmarks/postprocess_equivalence.py                       # seeds 1000-1019 at 0.5, 1, 3, 10 m
    python benchmarks/postprocess_equivalence.py --ssdd ../shared/datasets/ssdd_train --ssdd-limit 60
    python3 benchmarks/postprocess_equivalence.py --device cuda        # on a GPU box
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

log = logging.getLogger("orbitwatch.bench.postprocess_equivalence")

#: Differences allowed for "the same detection": positions are reported to 1e-3 px and lengths
#: to 0.01 m, headings to 0.1 deg, so one rounding step either way.
POS_TOL_PX, SIZE_TOL_M, HEADING_TOL_DEG, DB_TOL = 2e-3, 0.011, 0.11, 0.011


def compare(a: list[Any], b: list[Any]) -> dict[str, Any]:
    """How two detection lists of one image differ (``same``: by the tolerances above)."""
    out: dict[str, Any] = {"n": [len(a), len(b)], "same": len(a) == len(b), "max_pos_px": 0.0, "max_size_m": 0.0,
                           "max_heading_deg": 0.0, "max_db": 0.0}
    if not out["same"]:
        return out
    for x, y in zip(a, b):
        pos = max(abs(x.row - y.row), abs(x.col - y.col))
        size = max(abs(x.length_m - y.length_m), abs(x.width_m - y.width_m))
        head = abs((x.heading_deg - y.heading_deg + 90.0) % 180.0 - 90.0)
        out["max_pos_px"] = max(out["max_pos_px"], pos)
        out["max_size_m"] = max(out["max_size_m"], size)
        out["max_heading_deg"] = max(out["max_heading_deg"], head)
        # the peak and contrast dB in attrs (gathered on the device path; one rounding step apart at most)
        db = max((abs(float(x.attrs.get(k, 0.0)) - float(y.attrs.get(k, 0.0))) for k in ("peak_db", "contrast_db")),
                 default=0.0)
        out["max_db"] = max(out["max_db"], db)
        boxes = all(x.attrs.get(k) == y.attrs.get(k) for k in ("box_rows_px", "box_cols_px", "model_version"))
        if (x.kind != y.kind or x.score != y.score or pos > POS_TOL_PX or size > SIZE_TOL_M
                or head > HEADING_TOL_DEG or db > DB_TOL or not boxes):
            out["same"] = False
    return out


def run_both(det: Any, x: torch.Tensor, spacing: float, valid: torch.Tensor | None, times: dict[str, float]
             ) -> dict[str, Any]:
    """One image: the network once, the post-processing both ways (timed), compared."""
    sync = torch.cuda.synchronize if det.device.type == "cuda" else (lambda: None)
    npass = det.network_pass(x[None].to(det.device), spacing_m=(spacing, spacing),
                             valid=None if valid is None else valid[None].to(det.device))
    got = {}
    for name, flag in (("loops", False), ("batched", True)):
        det.tensor_geometry = flag
        sync()
        t0 = time.perf_counter()
        got[name] = det.finish(npass)[0]
        sync()
        times[name] = times.get(name, 0.0) + time.perf_counter() - t0
    det.tensor_geometry = None
    return compare(got["loops"], got["batched"])


def main(argv: list[str] | None = None) -> int:
    from benchmarks.eval_learned import _make_scene, _read_chip, ssdd_sweep_chips
    from benchmarks.eval_vessels import load_coco
    from detectors import get_detector

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--seeds", default="1000-1019", help="first-last generated seeds")
    ap.add_argument("--size", type=int, default=1024)
    ap.add_argument("--spacings", default="0.5,1,3,10")
    ap.add_argument("--groups", type=int, default=2, help="dense groups planted per generated scene")
    ap.add_argument("--ssdd", type=Path, default=None, help="SSDD folder (instances_train.json, images/)")
    ap.add_argument("--ssdd-split", default="val")
    ap.add_argument("--ssdd-spacings", default="1,3")
    ap.add_argument("--ssdd-limit", type=int, default=None, help="at most this many inshore and offshore chips")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "postprocess_equivalence.json")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    a, b = (int(v) for v in args.seeds.split("-"))
    seeds = list(range(a, b + 1))
    det = get_detector("sar-learned", device=args.device)
    rows: list[dict[str, Any]] = []
    times: dict[str, float] = {}
    t_all = time.perf_counter()
    for sp in (float(v) for v in args.spacings.split(",")):
        for seed in seeds:
            sc, _ = _make_scene(seed, args.size, sp, args.groups)
            x = torch.from_numpy(np.ascontiguousarray(sc.sigma0_from_dn(), dtype=np.float32))
            r = run_both(det, x, sp, torch.from_numpy(sc.dn > 0), times)
            rows.append({"image": f"seed {seed}", "spacing_m": sp, **r})
            if not r["same"]:
                log.warning("seed %d at %g m: detections differ %s", seed, sp, r)
        log.info("generated at %g m: %d scenes, %d the same", sp, len(seeds),
                 sum(x["same"] for x in rows if x["spacing_m"] == sp and x["image"].startswith("seed")))
    if args.ssdd is not None:
        imgs, _ = load_coco(args.ssdd / "instances_train.json")
        by_id = {im["id"]: im for im in imgs}
        ids, _ = ssdd_sweep_chips(args.ssdd, args.ssdd_split, args.ssdd_limit)
        for sp in (float(v) for v in args.ssdd_spacings.split(",")):
            for i in ids:
                chip = _read_chip(args.ssdd, by_id[i])
                r = run_both(det, torch.from_numpy((chip + 0.5) ** 2), sp, None, times)
                rows.append({"image": f"ssdd {i}", "spacing_m": sp, **r})
                if not r["same"]:
                    log.warning("SSDD %s at %g m: detections differ %s", i, sp, r)
            log.info("SSDD %s at %g m: %d chips", args.ssdd_split, sp, len(ids))
    n_same = sum(r["same"] for r in rows)
    summary = {"images": len(rows), "same": n_same, "detections": sum(r["n"][0] for r in rows),
               "max_pos_px": max((r["max_pos_px"] for r in rows), default=0.0),
               "max_size_m": max((r["max_size_m"] for r in rows), default=0.0),
               "max_heading_deg": max((r["max_heading_deg"] for r in rows), default=0.0),
               "max_db": max((r["max_db"] for r in rows), default=0.0),
               "finish_seconds": {k: round(v, 2) for k, v in times.items()}}
    out = {"generated": datetime.now(timezone.utc).isoformat(timespec="seconds"),
           "command": " ".join(["python", "benchmarks/postprocess_equivalence.py", *(argv or sys.argv[1:])]),
           "device": str(det.device), "torch": torch.__version__, "weights_version": det.version,
           "tolerances": {"pos_px": POS_TOL_PX, "size_m": SIZE_TOL_M, "heading_deg": HEADING_TOL_DEG, "db": DB_TOL},
           "summary": summary, "wall_seconds": round(time.perf_counter() - t_all, 1),
           "differing": [r for r in rows if not r["same"]], "rows": rows}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=1))
    print(f"{n_same} of {len(rows)} images give the same detections both ways "
          f"({summary['detections']} detections; max position difference {summary['max_pos_px']:.2g} px, "
          f"size {summary['max_size_m']:.2g} m, heading {summary['max_heading_deg']:.2g} deg, "
          f"peak/contrast {summary['max_db']:.2g} dB); "
          f"post-processing {summary['finish_seconds']} s on {det.device}; {args.out}")
    return 0 if n_same == len(rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
