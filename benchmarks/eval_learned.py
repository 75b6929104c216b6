"""Evaluate the learned SAR detector on data it never saw, with the shared vessel matching.

Uses ``benchmarks/eval_vessels.py`` for matching (Hungarian; generated scenes: centre within
max(10 m, L/2); SSDD: centre inside the truth box grown by 2 px), metrics and the project-wide
SSDD hold-out, and adds what matters for the learned model:

* generated scenes: fresh seeds (default 1000-1019, the model trained on 0-199 and chose its
  threshold on 900-919), 0.5 m, 2048 x 2048 (1 km); run as the pipeline runs it (``valid`` =
  no-data only, land *not* masked) and again with the true land mask given; false alarms are
  attributed to the nearest generator trap (sidelobe / ambiguity / urban, within 15 m) or land;
* SSDD: the hold-out chips only (never trained on, never used for the threshold), read as
  amplitude (intensity = (DN + 0.5)^2) with the working spacing (1 m) the model was trained
  with - SSDD has no spacing, so the chips' pixels are taken as the working grid's;
* optional ``--compare-onnx``: the same scenes through ``sar-learned-onnx``, detections compared.

    .venv/bin/python benchmarks/eval_learned.py --seeds 1000-1019 \\
        --ssdd ../shared/datasets/ssdd_train --out benchmarks/results/eval_learned.json
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import torch  # noqa: E402

from eval_vessels import _seeds, load_coco, match, metrics, ssdd_holdout  # noqa: E402

log = logging.getLogger("eval_learned")
RESULTS = Path(__file__).parent / "results"


def _fp_causes(dets: list[Any], pairs: list[tuple[int, int]], traps: list[dict[str, Any]], land: np.ndarray,
               spacing: float) -> dict[str, int]:
    matched = {i for i, _ in pairs}
    out: dict[str, int] = {}
    for i, d in enumerate(dets):
        if i in matched:
            continue
        cause = "sea"
        r, c = int(min(max(round(d.row), 0), land.shape[0] - 1)), int(min(max(round(d.col), 0), land.shape[1] - 1))
        near = [t for t in traps if math.hypot(t["row"] - d.row, t["col"] - d.col) * spacing <= 15.0]
        if near:
            cause = str(near[0].get("trap", "trap"))
        elif land[r, c]:
            cause = "land"
        out[cause] = out.get(cause, 0) + 1
    return out


def eval_generated(det: Any, seeds: list[int], size: int, spacing: float, land_mask: bool,
                   other: Any | None = None) -> dict[str, Any]:
    from pipelines.synth.sar import make_sar_scene

    rows, causes, per_seed = [], {}, []
    agree = {"scenes": 0, "same_count": 0, "max_pos_diff_px": 0.0, "max_score_diff": 0.0}
    t_det = 0.0
    for seed in seeds:
        s = make_sar_scene(seed, size, size, spacing)
        valid = s.dn > 0
        if land_mask:
            valid &= ~s.land_mask
        x, v = torch.from_numpy(s.sigma0_from_dn()), torch.from_numpy(valid)
        t0 = time.perf_counter()
        dets = det.detect(x, spacing_m=(spacing, spacing), valid=v)
        t_det += time.perf_counter() - t0
        truth = [t for t in s.truth if t["kind"] in ("vessel", "lifeboat")]
        traps = [t for t in s.truth if t["kind"] == "trap"]
        pairs = match(dets, truth, spacing)
        rows.append((dets, truth, pairs))
        for k, n in _fp_causes(dets, pairs, traps, s.land_mask, spacing).items():
            causes[k] = causes.get(k, 0) + n
        missed = [(t["kind"], t["length_m"]) for j, t in enumerate(truth) if j not in {b for _, b in pairs}]
        per_seed.append({"seed": seed, "det": len(dets), "truth": len(truth), "tp": len(pairs), "missed": missed})
        log.info("seed %d: %d det, %d truth, %d matched, missed %s", seed, len(dets), len(truth), len(pairs), missed)
        if other is not None:
            od = other.detect(x, spacing_m=(spacing, spacing), valid=v)
            agree["scenes"] += 1
            if len(od) == len(dets):
                agree["same_count"] += 1
                for a, b in zip(dets, od):
                    agree["max_pos_diff_px"] = max(agree["max_pos_diff_px"], math.hypot(a.row - b.row, a.col - b.col))
                    agree["max_score_diff"] = max(agree["max_score_diff"], abs(a.score - b.score))
    m = metrics(rows)
    m["false_alarm_causes"] = causes
    m["seconds_per_scene_detect"] = round(t_det / max(1, len(seeds)), 3)
    m["per_seed"] = per_seed
    if other is not None:
        m["onnx_agreement"] = agree
    return m


def eval_ssdd(det: Any, root: Path, spacing: float) -> dict[str, Any]:
    from PIL import Image

    imgs, anns = load_coco(root / "instances_train.json")
    held = ssdd_holdout([im["id"] for im in imgs])
    rows = []
    for im in imgs:
        if im["id"] not in held:
            continue
        a = np.asarray(Image.open(root / "images" / im["file_name"]).convert("L"), np.float32)
        dets = det.detect(torch.from_numpy((a + 0.5) ** 2), spacing_m=(spacing, spacing))
        truth = anns.get(im["id"], [])
        rows.append((dets, truth, match(dets, truth, None)))
    m = metrics(rows)
    m["n_images"] = len(rows)
    m["n_ships"] = sum(len(r[1]) for r in rows)
    m["assumed_spacing_m"] = spacing
    return m


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--detector", default="sar-learned")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--seeds", default="1000-1019")
    ap.add_argument("--size", type=int, default=2048)
    ap.add_argument("--spacing", type=float, default=0.5)
    ap.add_argument("--ssdd", type=Path, default=None, help="SSDD folder (instances_train.json + images/)")
    ap.add_argument("--ssdd-spacing", type=float, default=1.0)
    ap.add_argument("--compare-onnx", action="store_true")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    torch.set_num_threads(args.threads)
    from detectors.registry import get_detector

    det = get_detector(args.detector, device=args.device)
    other = get_detector("sar-learned-onnx", device=args.device) if args.compare_onnx else None
    seeds = _seeds(args.seeds)
    out: dict[str, Any] = {"detector": args.detector, "version": getattr(det, "version", None),
                           "score_threshold": getattr(det, "score_threshold", None),
                           "seeds": args.seeds, "size": args.size, "spacing_m": args.spacing}
    t0 = time.time()
    out["generated_pipeline_valid"] = eval_generated(det, seeds, args.size, args.spacing, False, other)
    out["generated_land_mask_given"] = eval_generated(det, seeds, args.size, args.spacing, True)
    if args.ssdd is not None:
        out["ssdd_holdout"] = eval_ssdd(det, args.ssdd, args.ssdd_spacing)
    out["seconds"] = round(time.time() - t0, 1)
    out["command"] = "python benchmarks/eval_learned.py " + " ".join(argv if argv is not None else sys.argv[1:])
    for key in ("generated_pipeline_valid", "generated_land_mask_given", "ssdd_holdout"):
        if key in out:
            m = out[key]
            lb = m.get("recall_by_class", {}).get("lifeboat", {}).get("recall")
            log.info("%s: P %.4f R %.4f F1 %.4f lifeboat recall %s", key, m["precision"], m["recall"], m["f1"], lb)
    text = json.dumps(out, indent=1)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text)
    else:
        print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
