"""Evaluate the learned fire detector against the rules, and their combinations, on unseen data.

Why this comparison: the fire services want every new fire (cluster recall), well outlined
(pixel precision/recall/F1/IoU), and no alerts from roofs, hot soil, glint or cloud edges
(alerts on trap-only tiles). The learned model was trained on seeds >= 1,000,000 with its
threshold picked on seeds 5000-5599, so the default evaluation seeds (10000.. fire tiles,
10500.. trap-only tiles) are tiles it never saw. Metrics are the ones of
``benchmarks/eval_fire.py`` (imported, not copied), computed in the same run for:

* ``model``: fire-learned (torch);  ``model-onnx``: fire-learned-onnx (onnxruntime);
* ``rules``: fire-rules ``auto`` (Schroeder 2016 + Murphy 2016);
* ``model|rules``: pixel union;
* ``model&rules-cluster``: the model's clusters that contain at least one rules pixel (alert-level
  AND: the rules confirm, the model outlines).

    .venv/bin/python benchmarks/eval_fire_learned.py --s2 ../shared/datasets/s2_bc_wildfire/G90292_20230514.tif

Writes ``benchmarks/results/eval_fire_learned.json`` and, with ``--s2``,
``benchmarks/results/fire_learned_s2_<stem>.png``.

``--error-analysis N`` adds where the model's errors lie on N *validation* tiles (seeds 5000..)
and the pixel F1 the generator's truth rule allows at all (see :func:`error_analysis`);
``--weights X.pt`` evaluates a candidate checkpoint (and ``X.onnx``) instead of the shipped one -
for choosing between candidates use validation seeds (``--seed0 5100 --n-tiles 12
--n-trap-tiles 10``), never the evaluation seeds.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from eval_fire import _run, _scores, read_s2  # noqa: E402  (the fire-rules engineer's metrics)

from detectors import get_detector  # noqa: E402
from detectors.fire.clusters import cluster_fire_pixels  # noqa: E402

log = logging.getLogger("eval_fire_learned")
RESULTS = Path(__file__).resolve().parent / "results"
COMBOS = ("model", "model-onnx", "rules", "model|rules", "model&rules-cluster")


def _clusters(mask: np.ndarray, px: float) -> list[np.ndarray]:
    """Connected fire clusters (8-connected, the pipeline's clustering) as (n, 2) pixel arrays."""
    rr, cc = np.nonzero(mask)
    if rr.size == 0:
        return []
    ones = np.ones(rr.size, np.float32)
    dets = cluster_fire_pixels(rr, cc, ones, ones, pixel_area_m2=px * px, detector="eval")
    return [np.asarray(d.pixels, dtype=np.int64) for d in dets]


def _confirmed(model: np.ndarray, rules: np.ndarray, px: float) -> np.ndarray:
    """Model clusters that contain at least one rules pixel."""
    out = np.zeros_like(model)
    for pix in _clusters(model, px):
        if rules[pix[:, 0], pix[:, 1]].any():
            out[pix[:, 0], pix[:, 1]] = True
    return out


def _masks(dets: dict[str, Any], bands: dict[str, np.ndarray], px: float, device: str,
           secs: dict[str, float]) -> dict[str, np.ndarray]:
    out = {}
    for key, det in dets.items():
        t0 = time.perf_counter()
        out[key] = _run(det, bands, px, device).mask.cpu().numpy()
        secs[key] = secs.get(key, 0.0) + time.perf_counter() - t0
    out["model|rules"] = out["model"] | out["rules"]
    out["model&rules-cluster"] = _confirmed(out["model"], out["rules"], px)
    return out


def eval_generated(sensors: list[str], seeds: list[int], trap_seeds: list[int], size: int, device: str,
                   dets: dict[str, Any]) -> dict[str, Any]:
    """Per sensor and combination: pixel scores, cluster recall, false alerts, trap-only alerts."""
    from detectors.synth.optical import make_optical_tile, make_trap_only_tile

    out: dict[str, Any] = {}
    for sensor in sensors:
        px = 30.0 if sensor == "landsat8" else 20.0
        acc = {k: {"tp": 0, "fp": 0, "fn": 0, "n_cl": 0, "found": 0, "alerts": 0, "false_alerts": 0,
                   "trap_alerts": 0, "trap_px": 0, "trap_kinds": {}, "fp_on_traps": {},
                   "false_alert_px_from_truth": []} for k in COMBOS}
        secs: dict[str, float] = {}
        prob_diff = 0.0
        mask_mismatch = 0
        for s in seeds:
            tile = make_optical_tile(s, rows=size, cols=size, pixel_size_m=px, sensor=sensor)
            ms = _masks(dets, tile.bands, px, device, secs)
            mask_mismatch += int((ms["model"] != ms["model-onnx"]).sum())
            x = torch.from_numpy(np.stack([tile.bands[b] for b in dets["model"].bands]))[None]
            prob_diff = max(prob_diff, float((dets["model"].predict_proba(x)
                                              - dets["model-onnx"].predict_proba(x)).abs().max()))
            gt = tile.fire_mask
            for k in COMBOS:
                m, a = ms[k], acc[k]
                a["tp"] += int((m & gt).sum())
                a["fp"] += int((m & ~gt).sum())
                a["fn"] += int((~m & gt).sum())
                for tr in tile.truth:
                    pr, pc = np.asarray(tr["pixels"]).T
                    if tr["kind"] == "fire":
                        a["n_cl"] += 1
                        a["found"] += bool(m[pr, pc].any())
                    else:
                        n = int((m[pr, pc] & ~gt[pr, pc]).sum())
                        if n:
                            a["fp_on_traps"][tr["trap"]] = a["fp_on_traps"].get(tr["trap"], 0) + n
                cl = _clusters(m, px)
                a["alerts"] += len(cl)
                false_cl = [p for p in cl if not gt[p[:, 0], p[:, 1]].any()]
                a["false_alerts"] += len(false_cl)
                if false_cl:  # how far each false alert lies from the nearest truth fire pixel (px)
                    gpx = np.argwhere(gt)
                    for p in false_cl:
                        d = float(np.sqrt(((p[:, None, :] - gpx[None]) ** 2).sum(-1)).min()) if gpx.size else float("inf")
                        a["false_alert_px_from_truth"].append(round(d, 1))
        for s in trap_seeds:
            tile = make_trap_only_tile(s, rows=size, cols=size, pixel_size_m=px, sensor=sensor)
            ms = _masks(dets, tile.bands, px, device, secs)
            for k in COMBOS:
                m, a = ms[k], acc[k]
                a["trap_px"] += int(m.sum())
                a["trap_alerts"] += len(_clusters(m, px))
                for tr in tile.truth:
                    pr, pc = np.asarray(tr["pixels"]).T
                    if m[pr, pc].any():
                        a["trap_kinds"][tr["trap"]] = a["trap_kinds"].get(tr["trap"], 0) + 1
        n_runs = len(seeds) + len(trap_seeds)
        for k in COMBOS:
            a = acc[k]
            res = _scores(a["tp"], a["fp"], a["fn"])
            res.update({"tp": a["tp"], "fp": a["fp"], "fn": a["fn"], "truth_clusters": a["n_cl"],
                        "found_clusters": a["found"], "cluster_recall": a["found"] / a["n_cl"] if a["n_cl"] else 1.0,
                        "alerts": a["alerts"], "false_alerts_on_fire_tiles": a["false_alerts"],
                        "false_alert_px_from_truth": sorted(a["false_alert_px_from_truth"]),
                        "fp_pixels_on_traps": a["fp_on_traps"], "trap_tiles": len(trap_seeds),
                        "trap_tile_alerts": a["trap_alerts"], "trap_tile_fire_pixels": a["trap_px"],
                        "trap_kinds_alerting": a["trap_kinds"]})
            if k in secs:
                res["seconds_per_tile"] = secs[k] / n_runs
            out[f"{sensor}/{k}"] = res
        out[f"{sensor}/torch_vs_onnx"] = {"max_abs_prob_diff": prob_diff, "mask_pixels_differing": mask_mismatch}
    return out


def eval_s2(path: Path, device: str, dets: dict[str, Any], out_png: Path) -> dict[str, Any]:
    """The real BC Sentinel-2 scene (B9/B11/B12 only): what each detector reports, and a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    bands, res_m, transform, descs = read_s2(path)
    masks = _masks(dets, bands, res_m, device, {})
    out: dict[str, Any] = {"file": str(path), "descriptions": descs, "pixel_size_m": res_m}
    rules_px = np.argwhere(masks["rules"])
    for k in COMBOS:
        cl = _clusters(masks[k], res_m)
        dist = []
        for p in cl:  # how far each cluster lies from the nearest rules pixel (px)
            if rules_px.size:
                d = np.sqrt(((p[:, None, :] - rules_px[None]) ** 2).sum(-1)).min()
                dist.append(round(float(d), 1))
        out[k] = {"fire_pixels": int(masks[k].sum()), "clusters": len(cl),
                  "cluster_px_from_nearest_rules_pixel": sorted(dist),
                  "clusters_detail": [{"row": round(float(p[:, 0].mean()), 1), "col": round(float(p[:, 1].mean()), 1),
                                       "n_pixels": int(len(p)),
                                       "easting": round(transform.c + (float(p[:, 1].mean()) + 0.5) * transform.a, 1),
                                       "northing": round(transform.f + (float(p[:, 0].mean()) + 0.5) * transform.e, 1)}
                                      for p in cl]}
    x = torch.from_numpy(np.stack([bands[b] for b in dets["model"].bands]))[None]
    out["torch_vs_onnx_max_abs_prob_diff"] = float((dets["model"].predict_proba(x)
                                                    - dets["model-onnx"].predict_proba(x)).abs().max())
    rgb = np.stack([bands["swir22"], bands["swir16"], bands["nir09"]], -1)
    lo, hi = np.percentile(rgb, 1, axis=(0, 1)), np.percentile(rgb, 99.5, axis=(0, 1))
    rgb = np.clip((rgb - lo) / (hi - lo), 0, 1)
    fig, axes = plt.subplots(1, 3, figsize=(20, 7))
    axes[0].imshow(rgb)
    axes[0].set_title("Sentinel-2 B12/B11/B9 false colour")
    for ax, key, col in ((axes[1], "model", "cyan"), (axes[2], "rules", "magenta")):
        ax.imshow(rgb)
        rr, cc = np.nonzero(masks[key])
        ax.scatter(cc, rr, s=7, facecolors="none", edgecolors=col, linewidths=0.6)
        ax.set_title(f"{dets[key].name}: {int(masks[key].sum())} px, {out[key]['clusters']} clusters ({col})")
    for ax in axes:
        ax.set_axis_off()
    fig.tight_layout()
    out_png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out_png, dpi=100)
    plt.close(fig)
    out["png"] = str(out_png)
    # Zoom on the fire area: the model (cyan rings) over the rules (magenta dots), to judge by eye
    # whether the visible fronts are reported and nothing lies away from them.
    union = masks["model"] | masks["rules"]
    if union.any():
        rr, cc = np.nonzero(union)
        r0, r1 = max(0, rr.min() - 20), min(union.shape[0], rr.max() + 21)
        c0, c1 = max(0, cc.min() - 20), min(union.shape[1], cc.max() + 21)
        fig, axes = plt.subplots(1, 2, figsize=(16, 8))
        for ax in axes:
            ax.imshow(rgb[r0:r1, c0:c1], extent=(c0 - 0.5, c1 - 0.5, r1 - 0.5, r0 - 0.5))
            ax.set_axis_off()
        rr, cc = np.nonzero(masks["model"])
        axes[1].scatter(cc, rr, s=22, facecolors="none", edgecolors="cyan", linewidths=0.8)
        rr, cc = np.nonzero(masks["rules"])
        axes[1].scatter(cc, rr, s=4, c="magenta")
        axes[0].set_title(f"false colour, rows {r0}-{r1}, cols {c0}-{c1}")
        axes[1].set_title("fire-learned (cyan rings) and fire-rules (magenta dots)")
        fig.tight_layout()
        zoom = out_png.with_name(out_png.stem + "_zoom.png")
        fig.savefig(zoom, dpi=100)
        plt.close(fig)
        out["png_zoom"] = str(zoom)
    return out


def error_analysis(det: Any, n_tiles: int, size: int, seed0: int = 5000) -> dict[str, Any]:
    """Where the model's pixel errors are, on *validation* seeds (5000.., the threshold-choice set;
    never the evaluation seeds), and what pixel F1 the generator's truth rule allows at all.

    Each pixel gets r = (its noiseless swir22 fire excess) / max(0.04, 0.2 x background swir22),
    the generator's truth rule (fire iff r >= 1). Errors are binned by r, by distance to the truth
    and by whole missed clusters. The bound: a detector that knows each pixel's exact pre-fire
    background and the exact rule, and sees only the excess plus Gaussian error sigma (0.004 =
    the generator's swir22 sensor noise; larger = an estimated background), thresholded at 1.
    """
    from scipy import ndimage

    from detectors.synth.optical import make_optical_tile
    from detectors.training.train_fire import tile_params

    rng = np.random.default_rng(0)
    tp = fp = fn = 0
    r_fn: list[float] = []
    r_fp: list[float] = []
    fp_adjacent = fp_far = fp_clusters_no_truth = n_cl = 0
    missed: list[dict[str, Any]] = []
    exc_all: list[np.ndarray] = []
    thr_all: list[np.ndarray] = []
    rule_mismatch = 0
    for i in range(n_tiles):
        s = seed0 + i
        sensor, px = tile_params(s)
        t = make_optical_tile(s, rows=size, cols=size, pixel_size_m=px, sensor=sensor)
        clean = make_optical_tile(s, rows=size, cols=size, pixel_size_m=px, sensor=sensor, noise=False)
        exc = clean.fire_excess["swir22"]
        bg = (clean.bands["swir22"] - exc) / np.maximum(1.0 - clean.fire_fraction, 1e-6)
        r = exc / np.maximum(0.04, 0.2 * bg)
        gt = t.fire_mask
        x = torch.from_numpy(np.stack([t.bands[b] for b in det.bands]))[None]
        p = det.predict_proba(x)[0].numpy()
        m = p >= det.threshold
        tp += int((m & gt).sum())
        fp += int((m & ~gt).sum())
        fn += int((~m & gt).sum())
        r_fn += r[~m & gt].tolist()
        r_fp += r[m & ~gt].tolist()
        near = ndimage.binary_dilation(gt, np.ones((3, 3), bool))
        fp_adjacent += int((m & ~gt & near).sum())
        fp_far += int((m & ~near).sum())
        lab, n = ndimage.label(m, np.ones((3, 3)))
        fp_clusters_no_truth += sum(1 for k in range(1, n + 1) if not gt[lab == k].any())
        for tr in t.truth:
            if tr["kind"] != "fire":
                continue
            n_cl += 1
            pr, pc = np.asarray(tr["pixels"]).T
            if not m[pr, pc].any():
                missed.append({"seed": s, "sensor": sensor, "pixel_m": px, "n_pixels": int(pr.size),
                               "max_swir22_excess": tr["max_swir22_excess"],
                               "background_swir22": round(float(bg[pr, pc].mean()), 3),
                               "max_r": round(float(r[pr, pc].max()), 2), "max_prob": round(float(p[pr, pc].max()), 3),
                               "temperature_k": tr["temperature_k"]})
        sel = exc > 1e-3  # every other pixel has r < 0.025: far from the rule
        exc_all.append(exc[sel])
        thr_all.append(np.maximum(0.04, 0.2 * bg[sel]))
        rule_mismatch += int(((r >= 1.0) != gt).sum())
    e, th = np.concatenate(exc_all), np.concatenate(thr_all)
    rr = e / th
    g = rr >= 1.0

    def q(a: list[float]) -> list[float]:
        return [round(float(v), 2) for v in np.percentile(a, [5, 25, 50, 75, 95])] if a else []

    bound = {}
    for sig in (0.004, 0.0066, 0.01):
        d = e + rng.normal(0.0, sig, e.size) >= th
        a, b_, c = int((d & g).sum()), int((d & ~g).sum()), int((~d & g).sum())
        bound[str(sig)] = {"precision": round(a / (a + b_), 4), "recall": round(a / (a + c), 4),
                           "f1": round(2 * a / (2 * a + b_ + c), 4)}
    n_truth = int(g.sum())
    return {
        "seeds": f"{seed0}..{seed0 + n_tiles - 1} (validation), {size} px, sensor/pixel size from train_fire.tile_params",
        "threshold": det.threshold, "tp": tp, "fp": fp, "fn": fn,
        "precision": tp / max(tp + fp, 1), "recall": tp / max(tp + fn, 1), "f1": 2 * tp / max(2 * tp + fp + fn, 1),
        "truth_clusters": n_cl, "missed_clusters": missed,
        "fn_pixels_in_missed_clusters": int(sum(mm["n_pixels"] for mm in missed)),
        "fp_within_1px_of_truth": fp_adjacent, "fp_farther": fp_far, "fp_clusters_without_truth": fp_clusters_no_truth,
        "r_percentiles_5_25_50_75_95": {"fn": q(r_fn), "fp": q(r_fp)},
        "fn_with_r_below_1.25": int(sum(v < 1.25 for v in r_fn)), "fp_with_r_above_0.8": int(sum(v > 0.8 for v in r_fp)),
        "truth_rule_reproduced_mismatches": rule_mismatch, "truth_pixels": n_truth, "truth_min_swir22_excess": round(float(e[g].min()), 4),
        "truth_min_excess_over_sensor_noise": round(float(e[g].min()) / 0.004, 1),
        "truth_px_r_1_to_1.1": int(((rr >= 1) & (rr < 1.1)).sum()), "truth_px_r_1_to_1.25": int(((rr >= 1) & (rr < 1.25)).sum()),
        "nontruth_px_r_0.9_to_1": int(((rr >= 0.9) & (rr < 1)).sum()), "nontruth_px_r_0.8_to_1": int(((rr >= 0.8) & (rr < 1)).sum()),
        "oracle_bound_by_excess_error_sigma": bound,
    }


def _table(gen: dict[str, Any]) -> str:
    hdr = (f"{'sensor/detector':32s} {'P':>6s} {'R':>6s} {'F1':>6s} {'IoU':>6s} {'clR':>6s} {'clusters':>9s} "
           f"{'alerts':>6s} {'falseA':>6s} {'trapA':>6s} {'trapPx':>6s} {'s/tile':>7s}")
    lines = [hdr, "-" * len(hdr)]
    for k, v in gen.items():
        if "precision" not in v:
            continue
        lines.append(f"{k:32s} {v['precision']:6.3f} {v['recall']:6.3f} {v['f1']:6.3f} {v['iou']:6.3f} "
                     f"{v['cluster_recall']:6.3f} {v['found_clusters']:4d}/{v['truth_clusters']:<4d} {v['alerts']:6d} "
                     f"{v['false_alerts_on_fire_tiles']:6d} {v['trap_tile_alerts']:6d} {v['trap_tile_fire_pixels']:6d} "
                     f"{v.get('seconds_per_tile', float('nan')):7.3f}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sensors", default="landsat8,sentinel2")
    ap.add_argument("--seed0", type=int, default=10000, help="first fire-tile seed (>= 10000: never trained on)")
    ap.add_argument("--n-tiles", type=int, default=20)
    ap.add_argument("--n-trap-tiles", type=int, default=10)
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--s2", type=Path, default=None)
    ap.add_argument("--no-generated", action="store_true")
    ap.add_argument("--out", type=Path, default=RESULTS / "eval_fire_learned.json")
    ap.add_argument("--error-analysis", type=int, default=0, metavar="N",
                    help="also analyse the model's errors on N validation tiles (seeds 5000..; 256 px)")
    ap.add_argument("--weights", type=Path, default=None,
                    help="candidate .pt checkpoint (its .onnx beside it); default: the shipped weights")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    torch.set_num_threads(args.threads)
    if args.seed0 < 10000:
        log.warning("seed0 %d < 10000: validation/training seed ranges are not guaranteed unseen", args.seed0)
    wkw: dict[str, Any] = {}
    okw: dict[str, Any] = {}
    if args.weights is not None:
        wkw["weights"] = args.weights
        okw["weights"] = args.weights.with_suffix(".onnx")
    dets = {"model": get_detector("fire-learned", device=args.device, **wkw),
            "model-onnx": get_detector("fire-learned-onnx", device=args.device, **okw),
            "rules": get_detector("fire-rules", device=args.device, algorithm="auto")}
    report: dict[str, Any] = {"command": "benchmarks/eval_fire_learned.py " + " ".join(argv if argv is not None else sys.argv[1:]),
                              "device": args.device, "torch": torch.__version__,
                              "model_threshold": dets["model"].threshold, "model_meta": dets["model"].meta}
    if not args.no_generated:
        seeds = list(range(args.seed0, args.seed0 + args.n_tiles))
        trap_seeds = list(range(args.seed0 + 500, args.seed0 + 500 + args.n_trap_tiles))
        gen = eval_generated(args.sensors.split(","), seeds, trap_seeds, args.size, args.device, dets)
        report["generated"] = {"seeds": seeds, "trap_seeds": trap_seeds, "size": args.size, "results": gen}
        print(_table(gen))
        for k, v in gen.items():
            if "torch_vs_onnx" in k:
                print(f"{k}: {v}")
            elif k.endswith(("/model", "/rules")):
                print(f"{k}: fp px on traps {v['fp_pixels_on_traps']}, trap kinds alerting {v['trap_kinds_alerting']}")
    if args.error_analysis:
        ea = error_analysis(dets["model"], args.error_analysis, 256)
        report["error_analysis_validation"] = ea
        print("error analysis (validation):", json.dumps({k: v for k, v in ea.items() if k != "missed_clusters"}))
        for mm in ea["missed_clusters"]:
            print("  missed cluster", mm)
    if args.s2 is not None:
        png = args.out.parent / f"fire_learned_s2_{args.s2.stem}.png"
        s2 = eval_s2(args.s2, args.device, dets, png)
        report["s2"] = s2
        for k in COMBOS:
            print(f"S2 {args.s2.name} {k}: {s2[k]['fire_pixels']} fire px, {s2[k]['clusters']} clusters; "
                  f"cluster distance to nearest rules px {s2[k]['cluster_px_from_nearest_rules_pixel']}")
        print(f"S2 torch vs onnx max |dp| {s2['torch_vs_onnx_max_abs_prob_diff']:.2e}; PNG: {png}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1, default=str))
    print(f"JSON: {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
