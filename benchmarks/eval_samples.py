"""Score an alerts GeoJSON (``orbitwatch scan`` output) against the sample scenes' ground truth.

Why: ``make demo`` should not only print alerts but say how many of the planted vessels,
lifeboats and fires they found and how many are false alarms, so a reader sees what the shipped
detectors really do on the committed scenes (which the detectors never trained on).

Matching (one-to-one, Hungarian): vessels and lifeboats by centre distance within
``max(--tol-m, half the true length)`` metres, using each scene's pixel spacing from its sidecar;
fires by pixel overlap of an alert's ``pixels`` with a truth cluster's ``pixels`` (any shared pixel,
or a centre within 2 px): a fire is found when some alert covers it, an alert is a false alarm
when it covers no fire, and a fragment when it covers a fire another alert already reports. A detected vessel reported as a lifeboat (or the reverse) counts as found
for recall and is listed as a kind confusion.

Run: ``python benchmarks/eval_samples.py out/alerts.geojson [--scenes sample_scenes]``.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import Any

import numpy as np
from scipy.optimize import linear_sum_assignment

ROOT = Path(__file__).resolve().parent.parent


def _spacing_m(truth_path: Path) -> float:
    """Mean pixel spacing of the scene (SAR sidecar or optical sidecar), metres."""
    side = truth_path.with_name(truth_path.name.replace("_truth.geojson", "_extended.json"))
    try:
        meta = json.loads(side.read_text())
    except (OSError, ValueError):
        return 1.0
    img = (meta.get("collect") or {}).get("image") or {}
    if "pixel_spacing_row" in img:
        return 0.5 * (float(img["pixel_spacing_row"]) + float(img["pixel_spacing_column"]))
    return float(meta.get("pixel_size_m", 1.0))


def _match(cost: np.ndarray) -> list[tuple[int, int]]:
    """Minimum-cost one-to-one matching; entries >= 1e9 mean 'may not match'."""
    if cost.size == 0:
        return []
    r, c = linear_sum_assignment(cost)
    return [(int(i), int(j)) for i, j in zip(r, c) if cost[i, j] < 1e9]


def score_scene(truth: list[dict[str, Any]], alerts: list[dict[str, Any]], spacing_m: float,
                tol_m: float) -> dict[str, Any]:
    """Per-scene counts: truth and found per kind, false alarms, kind confusions."""
    out: dict[str, Any] = {"truth": {}, "found": {}, "false_alarms": 0, "kind_confusions": 0, "alerts": len(alerts),
                           "fire_fragments": 0}
    ships_t = [t for t in truth if t["kind"] in ("vessel", "lifeboat")]
    ships_a = [a for a in alerts if a["kind"] in ("vessel", "lifeboat")]
    cost = np.full((len(ships_t), len(ships_a)), 1e9)
    for i, t in enumerate(ships_t):
        tol_px = max(tol_m, 0.5 * float(t.get("length_m") or 0.0)) / spacing_m
        for j, a in enumerate(ships_a):
            d = math.hypot(t["row"] - a["row"], t["col"] - a["col"])
            if d <= tol_px:
                cost[i, j] = d
    pairs = _match(cost)
    for t in ships_t:
        out["truth"][t["kind"]] = out["truth"].get(t["kind"], 0) + 1
    for i, j in pairs:
        k = ships_t[i]["kind"]
        out["found"][k] = out["found"].get(k, 0) + 1
        out["kind_confusions"] += ships_a[j]["kind"] != k
    out["false_alarms"] += len(ships_a) - len(pairs)

    fires_t = [t for t in truth if t["kind"] == "fire"]
    fires_a = [a for a in alerts if a["kind"] == "fire"]
    cost = np.full((len(fires_t), len(fires_a)), 1e9)
    for i, t in enumerate(fires_t):
        tp = {tuple(p) for p in t.get("pixels", [])}
        for j, a in enumerate(fires_a):
            ap = {tuple(int(round(v)) for v in p) for p in a.get("pixels", [])}
            shared = len(tp & ap)
            if shared or math.hypot(t["row"] - a["row"], t["col"] - a["col"]) <= 2.0:
                cost[i, j] = -shared
    pairs = _match(cost)
    if fires_t:
        # A fire is found when any alert covers any of its pixels (the cluster recall of
        # benchmarks/eval_fire.py): two fires a pixel apart may be reported as one alert.
        out["truth"]["fire"] = len(fires_t)
        out["found"]["fire"] = int((cost < 1e9).any(axis=1).sum()) if cost.size else 0
    touching = (cost < 1e9).any(axis=0) if cost.size else np.zeros(len(fires_a), bool)
    matched = {j for _, j in pairs}
    # An unmatched alert on a fire that another alert already matched is a fragment of that fire
    # (the fire was split into clusters), not a false alarm.
    out["fire_fragments"] = int(sum(1 for j in range(len(fires_a)) if j not in matched and touching[j]))
    out["false_alarms"] += int(sum(1 for j in range(len(fires_a)) if not touching[j]))
    return out


def evaluate(alerts_path: Path, scenes_dir: Path, tol_m: float = 25.0) -> dict[str, Any]:
    """Score every ``*_truth.geojson`` under ``scenes_dir`` against the alerts of its scene."""
    alerts = [f["properties"] for f in json.loads(alerts_path.read_text())["features"]]
    by_scene: dict[str, list[dict[str, Any]]] = {}
    for a in alerts:
        by_scene.setdefault(a["scene"], []).append(a)
    scenes = {}
    for tp in sorted(scenes_dir.rglob("*_truth.geojson")):
        name = tp.name[: -len("_truth.geojson")]
        truth = [f["properties"] for f in json.loads(tp.read_text())["features"]]
        scenes[name] = score_scene(truth, by_scene.get(name, []), _spacing_m(tp), tol_m)
    total: dict[str, Any] = {"truth": {}, "found": {}, "false_alarms": 0, "kind_confusions": 0, "alerts": 0,
                             "fire_fragments": 0}
    for s in scenes.values():
        for key in ("truth", "found"):
            for k, v in s[key].items():
                total[key][k] = total[key].get(k, 0) + v
        for key in ("false_alarms", "kind_confusions", "alerts", "fire_fragments"):
            total[key] += s[key]
    return {"scenes": scenes, "total": total, "tolerance_m": tol_m}


def table(res: dict[str, Any]) -> str:
    kinds = ("vessel", "lifeboat", "fire")
    lines = [f"{'scene':28s} " + " ".join(f"{k + ' found':>15s}" for k in kinds) + "  false alarms  kind mix-ups  fire fragments"]
    for name, s in list(res["scenes"].items()) + [("TOTAL", res["total"])]:
        cells = []
        for k in kinds:
            t = s["truth"].get(k, 0)
            cells.append(f"{s['found'].get(k, 0):>7d} of {t:<4d}" if t else f"{'-':>15s}")
        lines.append(f"{name:28s} " + " ".join(cells) + f"  {s['false_alarms']:>12d}  {s['kind_confusions']:>12d}  {s['fire_fragments']:>14d}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("alerts", type=Path, help="alerts GeoJSON written by orbitwatch scan")
    ap.add_argument("--scenes", type=Path, default=ROOT / "sample_scenes", help="folder with *_truth.geojson")
    ap.add_argument("--tol-m", type=float, default=25.0, help="vessel/lifeboat match radius floor (m)")
    ap.add_argument("--json", type=Path, help="also write the scores here")
    a = ap.parse_args(argv)
    if not a.alerts.is_file():
        print(f"error: {a.alerts}: no such alerts file", file=sys.stderr)
        return 2
    res = evaluate(a.alerts, a.scenes, a.tol_m)
    print(table(res))
    if a.json:
        a.json.write_text(json.dumps(res, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
