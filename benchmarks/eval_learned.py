"""Evaluate the learned SAR detector, CFAR and their combinations on data the model never saw.

Uses ``benchmarks/eval_vessels.py`` for matching (Hungarian; generated scenes: centre within
max(10 m, L/2) of the truth centre; SSDD: centre inside the truth box grown by 2 px), metrics
and the project-wide SSDD hold-out (:func:`eval_vessels.ssdd_holdout`, the same split
``detectors/training/splits.py`` keeps out of training - a test checks that they agree).

Methods, each at its own stored operating point (nothing here is tuned on the data evaluated):

* ``sar-learned`` - the CenterNet at the score threshold stored with its weights (chosen by the
  training script on the *validation* split: generated seeds 900-999, SSDD ``val`` chips);
* ``sar-cfar`` - the CFAR detector with its default configuration;
* ``union`` - every learned detection plus every CFAR detection with no learned detection within
  max(10 m, L/2) (L: the learned detection's length);
* ``both`` - learned detections confirmed by a CFAR detection within the same radius.
* ``fused`` - what the pipeline ships as ``sar-fused`` (:mod:`detectors.sar.fused`): every learned
  detection, with the CFAR's measured length/width/heading/kind where a CFAR object confirms it.
  Same detections as ``sar-learned``; the difference is in kind accuracy and length error.
* ``fused-precise`` - ``sar-fused-precise``: unconfirmed learned detections need a score >= 0.48
  (chosen on validation seeds 900-911).

Data:

* generated scenes: fresh seeds (default 1000-1009; training used seeds 0-899 at most and the
  threshold seeds 900-999), 0.5 m, 1024 x 1024, run as the pipeline runs them (``valid`` =
  no-data only, land *not* masked); false alarms are attributed to the nearest generator trap
  (sidelobe / ambiguity / urban, within 15 m) or to land;
  lifeboats are also scored by visibility (:func:`lifeboat_snr`: a 5 m box sum against open sea;
  ``lifeboat_recall_visible`` counts those >= :data:`SNR_VISIBLE` sigmas, and how many are fainter)
  - a diagnostic of what is left to gain, not a replacement for the plain lifeboat recall;
  and by company (``lifeboat_recall_clustered``: lifeboats with another lifeboat within
  :data:`CLUSTER_M`, as a sinking ship's boats are, against lone ones);
* SSDD: the hold-out chips (``--ssdd-split holdout``, default) - or the ``val`` chips, for
  choices made on validation data - read as amplitude (intensity = (DN + 0.5)^2). The chips
  carry no spacing: the learned model sees them at its 1 m working spacing (as in training),
  CFAR at 3 m (``eval_vessels.py``'s documented default for SSDD); matching is in pixels.

    .venv/bin/python benchmarks/eval_learned.py --seeds 1000-1009 --size 1024 \\
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

from detectors.training.train_sar import GROUP_M  # noqa: E402
from eval_vessels import _seeds, load_coco, match, metrics, ssdd_holdout  # noqa: E402

log = logging.getLogger("eval_learned")
RESULTS = Path(__file__).parent / "results"
METHODS = ("sar-learned", "sar-cfar", "union", "both", "fused", "fused-precise")


def _radius_px(d: Any, spacing: float) -> float:
    length = d.length_m if d.length_m is not None else 0.0
    return max(10.0, 0.5 * float(length)) / spacing


def combine(learned: list[Any], cfar: list[Any], spacing: float) -> dict[str, list[Any]]:
    """``union`` and ``both`` (see the module docstring) from one image's detections."""
    near = [[math.hypot(a.row - b.row, a.col - b.col) <= _radius_px(a, spacing) for b in cfar] for a in learned]
    confirmed = [d for d, row in zip(learned, near) if any(row)]
    cfar_covered = {j for row in near for j, hit in enumerate(row) if hit}
    union = list(learned) + [b for j, b in enumerate(cfar) if j not in cfar_covered]
    from detectors.sar.fused import PRECISE_UNCONFIRMED, fuse

    return {"union": union, "both": confirmed, "fused": fuse(learned, cfar, (spacing, spacing)),
            "fused-precise": fuse(learned, cfar, (spacing, spacing), unconfirmed_min_score=PRECISE_UNCONFIRMED)}


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


#: Lifeboat visibility: a 5 m x 5 m box sum of power around the truth centre against the same box
#: sums over open sea (median, 1.4826 MAD). Below this many sigmas a boat is at the limit of any
#: detector at a useful false-alarm rate (~10^4 independent boxes per 1 km^2 scene).
SNR_VISIBLE = 4.0
#: A lifeboat is "clustered" when another lifeboat lies within this many metres of it: the same
#: grouping ``train_sar --group-focus`` trains on.
CLUSTER_M = GROUP_M


def clustered(truth: list[dict[str, Any]], spacing: float) -> list[bool | None]:
    """For each lifeboat in ``truth``: is another lifeboat within :data:`CLUSTER_M`? (None for vessels)."""
    boats = [t for t in truth if t["kind"] == "lifeboat"]
    return [None if t["kind"] != "lifeboat" else
            any(o is not t and math.hypot(o["row"] - t["row"], o["col"] - t["col"]) * spacing <= CLUSTER_M
                for o in boats) for t in truth]


def lifeboat_snr(sigma0: np.ndarray, valid: np.ndarray, land: np.ndarray, truth: list[dict[str, Any]],
                 spacing: float) -> list[float | None]:
    """Box-sum SNR of each lifeboat in ``truth`` (None for other kinds); see :data:`SNR_VISIBLE`."""
    from scipy import ndimage

    k = max(1, int(round(5.0 / spacing)))
    box = ndimage.uniform_filter(sigma0.astype(np.float64), k) * k * k
    sea = box[valid & ~land]
    if sea.size == 0:
        return [None for _ in truth]
    med = float(np.median(sea))
    mad = 1.4826 * float(np.median(np.abs(sea - med))) or 1e-12
    out: list[float | None] = []
    for t in truth:
        if t["kind"] != "lifeboat":
            out.append(None)
            continue
        r, c = int(round(t["row"])), int(round(t["col"]))
        win = box[max(0, r - k // 2): r + k // 2 + 1, max(0, c - k // 2): c + k // 2 + 1]
        out.append(round((float(win.max()) - med) / mad, 2) if win.size else None)
    return out


def eval_generated(dets_by: dict[str, Any], seeds: list[int], size: int, spacing: float, land_mask: bool,
                   onnx: Any | None = None) -> dict[str, Any]:
    from detectors.synth.sar import make_sar_scene

    rows: dict[str, list] = {m: [] for m in METHODS}
    causes: dict[str, dict[str, int]] = {m: {} for m in METHODS}
    missed: dict[str, list] = {m: [] for m in METHODS}
    t_det = {m: 0.0 for m in dets_by}
    agree = {"scenes": 0, "same_count": 0, "max_pos_diff_px": 0.0, "max_score_diff": 0.0}
    visible = {m: [0, 0] for m in METHODS}  # lifeboats with SNR >= SNR_VISIBLE: [found, total]
    n_faint = 0
    company = {m: {True: [0, 0], False: [0, 0]} for m in METHODS}  # [found, total] by clustered
    for seed in seeds:
        s = make_sar_scene(seed, size, size, spacing)
        valid = s.dn > 0
        if land_mask:
            valid &= ~s.land_mask
        x, v = torch.from_numpy(s.sigma0_from_dn()), torch.from_numpy(valid)
        got: dict[str, list] = {}
        for name, det in dets_by.items():
            t0 = time.perf_counter()
            got[name] = det.detect(x, spacing_m=(spacing, spacing), valid=v)
            t_det[name] += time.perf_counter() - t0
        got.update(combine(got["sar-learned"], got["sar-cfar"], spacing))
        truth = [t for t in s.truth if t["kind"] in ("vessel", "lifeboat")]
        traps = [t for t in s.truth if t["kind"] == "trap"]
        snr = lifeboat_snr(x.numpy(), s.dn > 0, s.land_mask, truth, spacing)
        n_faint += sum(1 for q in snr if q is not None and q < SNR_VISIBLE)
        near = clustered(truth, spacing)
        for m in METHODS:
            pairs = match(got[m], truth, spacing)
            found = {b for _, b in pairs}
            for j, q in enumerate(snr):
                if q is not None and q >= SNR_VISIBLE:
                    visible[m][0] += j in found
                    visible[m][1] += 1
            for j, c in enumerate(near):
                if c is not None:
                    company[m][c][0] += j in found
                    company[m][c][1] += 1
            rows[m].append((got[m], truth, pairs))
            for k, n in _fp_causes(got[m], pairs, traps, s.land_mask, spacing).items():
                causes[m][k] = causes[m].get(k, 0) + n
            hit = {b for _, b in pairs}
            missed[m].extend([seed, t["kind"], round(float(t["length_m"]), 1)] for j, t in enumerate(truth)
                             if j not in hit)
        log.info("seed %d: %d truth; %s", seed, len(truth),
                 ", ".join(f"{m} {len(rows[m][-1][2])}/{len(got[m])}" for m in METHODS))
        if onnx is not None:
            od = onnx.detect(x, spacing_m=(spacing, spacing), valid=v)
            ld = got["sar-learned"]
            agree["scenes"] += 1
            if len(od) == len(ld):
                agree["same_count"] += 1
                for a, b in zip(ld, od):
                    agree["max_pos_diff_px"] = max(agree["max_pos_diff_px"], math.hypot(a.row - b.row, a.col - b.col))
                    agree["max_score_diff"] = max(agree["max_score_diff"], abs(a.score - b.score))
    out: dict[str, Any] = {}
    for m in METHODS:
        r = metrics(rows[m])
        r["false_alarm_causes"] = causes[m]
        r["lifeboat_recall_visible"] = {"recall": round(visible[m][0] / max(1, visible[m][1]), 4), "n": visible[m][1],
                                        "snr_min": SNR_VISIBLE, "n_fainter": n_faint}
        r["lifeboat_recall_clustered"] = {
            key: {"recall": round(company[m][c][0] / max(1, company[m][c][1]), 4), "n": company[m][c][1]}
            for key, c in (("within_%gm_of_another" % CLUSTER_M, True), ("alone", False))}
        r["missed"] = missed[m]
        if m in t_det:
            r["seconds_per_scene_detect"] = round(t_det[m] / max(1, len(seeds)), 3)
        out[m] = r
    if onnx is not None:
        out["onnx_agreement"] = agree
    return out


def eval_ssdd(dets_by: dict[str, Any], root: Path, split: str, spacing: dict[str, float]) -> dict[str, Any]:
    from PIL import Image

    imgs, anns = load_coco(root / "instances_train.json")
    if split == "holdout":
        chosen = ssdd_holdout([im["id"] for im in imgs])
    else:
        from detectors.training.splits import ssdd_split

        chosen = {im["id"] for im in imgs if ssdd_split(im["id"]) == split}
    rows: dict[str, list] = {m: [] for m in METHODS}
    for im in imgs:
        if im["id"] not in chosen:
            continue
        a = np.asarray(Image.open(root / "images" / im["file_name"]).convert("L"), np.float32)
        x = torch.from_numpy((a + 0.5) ** 2)
        got = {name: det.detect(x, spacing_m=(spacing[name], spacing[name])) for name, det in dets_by.items()}
        got.update(combine(got["sar-learned"], got["sar-cfar"], spacing["sar-learned"]))
        truth = anns.get(im["id"], [])
        for m in METHODS:
            rows[m].append((got[m], truth, match(got[m], truth, None)))
    out: dict[str, Any] = {m: metrics(rows[m]) for m in METHODS}
    out["split"] = split
    out["n_images"] = len(rows["sar-learned"])
    out["n_ships"] = sum(len(r[1]) for r in rows["sar-learned"])
    out["assumed_spacing_m"] = spacing
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--weights", type=Path, default=None, help="learned .pt (default: the shipped weights)")
    ap.add_argument("--no-refine", action="store_true", help="learned: keep heatmap-peak centres (no blob refinement)")
    ap.add_argument("--no-ambiguity", action="store_true",
                    help="learned: keep azimuth ghosts (no detectors.sar.ambiguity rejection)")
    ap.add_argument("--tta", type=int, choices=(1, 2, 4), default=None,
                    help="learned: test-time augmentation passes (default: as validated with the weights)")
    ap.add_argument("--pyramid", default=None,
                    help="learned: coarse-grid factors for large ships, e.g. 2,4 or none (default: the detector's)")
    ap.add_argument("--fine-threshold", default=None,
                    help="learned: fine confirmation pass threshold, or none (default: the detector's)")
    ap.add_argument("--seeds", default="1000-1009")
    ap.add_argument("--size", type=int, default=1024)
    ap.add_argument("--spacing", type=float, default=0.5)
    ap.add_argument("--land-mask", action="store_true", help="also run with the true land mask given")
    ap.add_argument("--ssdd", type=Path, default=None, help="SSDD folder (instances_train.json + images/)")
    ap.add_argument("--ssdd-split", choices=("holdout", "val"), default="holdout")
    ap.add_argument("--ssdd-spacing-learned", type=float, default=1.0)
    ap.add_argument("--ssdd-spacing-cfar", type=float, default=3.0)
    ap.add_argument("--compare-onnx", action="store_true")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    torch.set_num_threads(args.threads)
    from detectors.registry import get_detector

    opts: dict[str, Any] = {"refine_centres": not args.no_refine, "reject_ambiguities": not args.no_ambiguity}
    if args.weights:
        opts["weights"] = args.weights
    if args.pyramid is not None:
        opts["pyramid"] = () if args.pyramid == "none" else tuple(int(v) for v in args.pyramid.split(","))
    if args.fine_threshold is not None:
        opts["fine_threshold"] = None if args.fine_threshold == "none" else float(args.fine_threshold)
    learned = get_detector("sar-learned", device=args.device, **opts)
    if args.tta is not None:
        learned.tta = args.tta
    dets_by = {"sar-learned": learned, "sar-cfar": get_detector("sar-cfar", device=args.device)}
    onnx = get_detector("sar-learned-onnx", device=args.device) if args.compare_onnx else None
    if onnx is not None and args.tta is not None:
        onnx.tta = args.tta
    if onnx is not None:
        onnx.pyramid, onnx.fine_threshold = learned.pyramid, learned.fine_threshold
    seeds = _seeds(args.seeds) if args.seeds else []
    from detectors.training.splits import SYNTH_TEST_SEED0

    if any(s < SYNTH_TEST_SEED0 for s in seeds):
        log.warning("seeds below %d were used for training or threshold choice", SYNTH_TEST_SEED0)
    out: dict[str, Any] = {"learned_version": learned.version, "learned_score_threshold": learned.score_threshold,
                           "learned_training_command": learned.metadata.get("training_command"),
                           "learned_refine_centres": learned.refine_centres,
                           "learned_reject_ambiguities": learned.reject_ambiguities,
                           "learned_tta_passes": learned.tta, "learned_pyramid": list(learned.pyramid),
                           "learned_fine_threshold": learned.fine_threshold,
                           "methods": list(METHODS), "seeds": args.seeds, "size": args.size,
                           "spacing_m": args.spacing}
    t0 = time.time()
    if seeds:
        out["generated_pipeline_valid"] = eval_generated(dets_by, seeds, args.size, args.spacing, False, onnx)
        if args.land_mask:
            out["generated_land_mask_given"] = eval_generated(dets_by, seeds, args.size, args.spacing, True)
    if args.ssdd is not None:
        out[f"ssdd_{args.ssdd_split}"] = eval_ssdd(dets_by, args.ssdd, args.ssdd_split,
                                                   {"sar-learned": args.ssdd_spacing_learned,
                                                    "sar-cfar": args.ssdd_spacing_cfar})
    out["seconds"] = round(time.time() - t0, 1)
    out["command"] = "python benchmarks/eval_learned.py " + " ".join(argv if argv is not None else sys.argv[1:])
    summary = {}
    for key, res in out.items():
        if isinstance(res, dict) and "sar-learned" in res:
            for m in METHODS:
                r = res[m]
                lb = r.get("recall_by_class", {}).get("lifeboat", {}).get("recall")
                vis = r.get("lifeboat_recall_visible", {}).get("recall")
                clu = {k: v["recall"] for k, v in r.get("lifeboat_recall_clustered", {}).items()}
                summary[f"{key}/{m}"] = {"P": r["precision"], "R": r["recall"], "F1": r["f1"], "lifeboat_R": lb,
                                         "lifeboat_R_snr_ge_4": vis, "lifeboat_R_by_company": clu,
                                         "kind_acc": r.get("kind_accuracy"), "length_err_m": r.get("length_abs_err_median_m")}
                log.info("%s %-11s P %.4f R %.4f F1 %.4f lifeboat recall %s (SNR >= %.0f: %s; %s)", key, m,
                         r["precision"], r["recall"], r["f1"], lb, SNR_VISIBLE, vis, clu)
    out["summary"] = summary
    text = json.dumps(out, indent=1)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text)
    else:
        print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
