"""benchmarks/eval_learned.py: the lifeboat diagnostics it reports next to the plain recall, and the
resolution sweep (inshore rule, dense groups, the "not required" rule, targets, plot, --weights)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks" / "experiments"))  # try_*.py
import eval_learned  # noqa: E402


def _t(kind: str, row: float, col: float) -> dict:
    return {"kind": kind, "row": row, "col": col, "length_m": 6.0 if kind == "lifeboat" else 40.0}


def test_clustered_means_another_lifeboat_within_40_m() -> None:
    # 0.5 m pixels: 60 px = 30 m, 100 px = 50 m; a vessel beside a lifeboat is not company.
    truth = [_t("lifeboat", 0, 0), _t("lifeboat", 0, 60), _t("lifeboat", 500, 0), _t("vessel", 500, 30),
             _t("lifeboat", 900, 0), _t("lifeboat", 900, 100)]
    assert eval_learned.clustered(truth, 0.5) == [True, True, False, None, False, False]
    assert eval_learned.clustered(truth, 1.0) == [False, False, False, None, False, False]


@pytest.mark.slow
def test_a_small_run_reports_recall_by_company(tmp_path: Path) -> None:
    out = tmp_path / "e.json"
    assert eval_learned.main(["--seeds", "1000-1000", "--size", "512", "--threads", "1", "--gen-spacings", "",
                              "--out", str(out)]) == 0
    r = json.loads(out.read_text())["generated_pipeline_valid"]["fused"]
    by = r["lifeboat_recall_clustered"]
    assert set(by) == {"within_40m_of_another", "alone"}
    assert by["within_40m_of_another"]["n"] + by["alone"]["n"] == r["recall_by_class"]["lifeboat"]["n"]


def test_group_companion_rule_keeps_only_faint_lifeboats_beside_a_reported_one() -> None:
    import try_group_companions as tg

    from detectors.types import Detection

    def d(row: float, col: float, score: float, kind: str = "lifeboat") -> Detection:
        return Detection(row=row, col=col, score=score, kind=kind, detector="t")  # type: ignore[arg-type]

    boat, near, far, faint_near, vessel_near = d(0, 0, 0.8), d(0, 60, 0.25), d(0, 200, 0.25), d(60, 0, 0.1), \
        d(30, 30, 0.3, "vessel")
    kept = tg.with_companions([boat, near, far, faint_near, vessel_near], 0.375, 0.2, 80.0)
    assert kept == [boat, near]
    # No reported lifeboat, no companions: a reported vessel is no anchor.
    assert tg.with_companions([d(0, 0, 0.9, "vessel"), near], 0.375, 0.2, 80.0) == [d(0, 0, 0.9, "vessel")]
    assert tg.score([([boat, near], [{"kind": "lifeboat", "row": 0, "col": 0, "length_m": 6.0}], 0.5)])[
        "lifeboat_recall"] == 1.0


@pytest.mark.slow
def test_fine_threshold_option_reaches_the_detector_and_the_record(tmp_path: Path) -> None:
    out = tmp_path / "e.json"
    assert eval_learned.main(["--seeds", "1000-1000", "--size", "256", "--threads", "1", "--fine-threshold", "none",
                              "--gen-spacings", "", "--out", str(out)]) == 0
    r = json.loads(out.read_text())
    assert r["learned_fine_threshold"] is None and r["learned_version"].endswith("+nofine")


def test_try_fine_pass_sweep_counts_consistently(tmp_path: Path) -> None:
    import try_fine_pass

    out = tmp_path / "f.json"
    assert try_fine_pass.main(["--seeds", "1000-1000", "--size", "256", "--thresholds", "none,0.5", "--threads", "1",
                               "--out", str(out)]) == 0
    res = json.loads(out.read_text())["results"]
    assert set(res) == {"none", "0.5"}
    for a in res.values():
        assert 0 <= a["lifeboats_hit"] <= a["lifeboats"] and a["hit"] <= min(a["truth"], a["reported"])
        assert abs(a["f1"] - 2 * a["hit"] / max(1, a["reported"] + a["truth"])) < 1e-12
    assert res["0.5"]["truth"] == res["none"]["truth"] > 0  # the same scenes for every threshold


# --- the resolution sweep (issue 19 item 5) -------------------------------------------------


def _sea(rows: int, cols: int, seed: int = 0) -> "np.ndarray":
    import numpy as np

    rng = np.random.default_rng(seed)
    return np.clip(30.0 * np.sqrt(rng.gamma(2.0, 0.5, (rows, cols))), 0, 255).astype(np.float32)


def _box(x: float, y: float, w: float, h: float) -> dict:
    return {"bbox": [x, y, w, h], "row": y + h / 2, "col": x + w / 2}


def test_inshore_rule_land_at_the_border_not_ships_nor_interior_blobs() -> None:
    a = _sea(160, 200)
    assert not eval_learned.is_inshore(a, [])
    land = a.copy()
    land[:, :40] *= 4.0  # +12 dB along the left edge: 6400 px of land
    assert eval_learned.is_inshore(land, [])
    assert 0.15 < eval_learned.land_fraction(land, []) <= 0.2 + 1e-9
    inner = a.copy()
    inner[50:110, 70:130] *= 4.0  # as bright, as large, but inside the chip (a ghost, a clump)
    assert not eval_learned.is_inshore(inner, [])
    ship = a.copy()
    ship[60:100, 0:40] = 255.0  # a bright ship on the edge: its box (+5 px) is set aside
    assert eval_learned.is_inshore(ship, []) and not eval_learned.is_inshore(ship, [_box(0, 60, 40, 40)])


def test_dense_groups_required_lifeboats_and_the_not_required_score() -> None:
    from detectors.types import Detection

    # A centre and four points 30 apart from it (42 from their neighbours, 60 across), one 100 away.
    pts = [(0.0, 0.0), (30.0, 0.0), (0.0, 30.0), (-30.0, 0.0), (0.0, -30.0), (0.0, 100.0)]
    assert eval_learned.dense_flags(pts, 60.0) == [True] * 5 + [False]
    assert eval_learned.dense_flags(pts, 40.0) == [True] + [False] * 5
    assert eval_learned.dense_flags([], 60.0) == []
    truth = [_t("vessel", 100, 100), {"kind": "lifeboat", "row": 300, "col": 300, "length_m": 5.0},
             {"kind": "lifeboat", "row": 500, "col": 500, "length_m": 8.0}]
    assert eval_learned.required_flags(truth, 1.0) == [True, True, True]
    assert eval_learned.required_flags(truth, 3.0) == [True, False, True]  # 5 m = 1.7 px, 8 m = 2.7 px
    assert eval_learned.required_flags(truth, 10.0) == [True, False, False]

    def d(row: float, col: float) -> Detection:
        return Detection(row=row, col=col, score=0.9, kind="vessel", detector="t")  # type: ignore[arg-type]

    req = eval_learned.required_flags(truth, 3.0)
    # The vessel found, the not-required lifeboat found (ignored), a false alarm, the 8 m boat missed.
    assert eval_learned.score_required([d(100, 101), d(300, 301), d(900, 900)], truth, req, 3.0) == (1, 1, 1, 1)
    # A missed not-required lifeboat is no FN.
    assert eval_learned.score_required([d(100, 101), d(500, 501)], truth, req, 3.0) == (2, 0, 0, 0)


def _fake_ssdd(root: Path) -> list[int]:
    """Two holdout chips in a COCO folder: one with land along its left edge, one open sea."""
    from eval_vessels import ssdd_holdout
    from PIL import Image

    ids = sorted(ssdd_holdout(range(1, 200)))[:2]
    (root / "images").mkdir(parents=True)
    a = _sea(96, 128, 1)
    a[20:28, 60:80] = 250.0  # a ship on each chip
    land = a.copy()
    land[:, :30] = np.minimum(land[:, :30] * 4.0, 255.0)
    images, anns = [], []
    for k, (i, img) in enumerate(zip(ids, (land, a))):
        name = f"{i:06d}.jpg"
        Image.fromarray(img.astype(np.uint8)).save(root / "images" / name)
        images.append({"id": i, "file_name": name, "width": 128, "height": 96})
        anns.append({"id": k + 1, "image_id": i, "bbox": [59, 19, 22, 10], "category_id": 1})
    (root / "instances_train.json").write_text(json.dumps({"images": images, "annotations": anns,
                                                           "categories": [{"id": 1, "name": "ship"}]}))
    return ids


def test_sweep_run_writes_every_spacing_targets_and_a_plot(tmp_path: Path) -> None:
    import shutil

    from detectors.sar import network

    ssdd = tmp_path / "ssdd"
    ids = _fake_ssdd(ssdd)
    cand = tmp_path / "cand.pt"  # a "candidate" checkpoint: the shipped one, with its .sha256 beside it
    shutil.copy(network.PT_FILE, cand)
    cand.with_name("cand.pt.sha256").write_text(f"{network.sha256_file(cand)}  cand.pt\n")
    out = tmp_path / "e.json"
    assert eval_learned.main(["--seeds", "1000", "--size", "64", "--gen-spacings", "3,10", "--ssdd", str(ssdd),
                              "--ssdd-spacings", "1,10", "--threads", "1", "--weights", str(cand),
                              "--out", str(out)]) == 0
    r = json.loads(out.read_text())
    assert r["learned_weights"] == str(cand) and r["learned_weights_sha256"] == network.sha256_file(cand)
    assert {"generated_pipeline_valid", "ssdd_holdout", "ssdd_sweep", "generated_sweep", "targets"} <= set(r)
    ss = r["ssdd_sweep"]
    assert (ss["n_images"], ss["n_inshore"], ss["n_offshore"]) == (2, 1, 1) and ss["inshore_image_ids"] == ids[:1]
    assert ss["counts_by_split"] == {"holdout": {"inshore": 1, "offshore": 1}}
    assert set(ss["by_spacing"]) == {"1", "10"}
    for by in ss["by_spacing"].values():
        assert set(by) == set(eval_learned.SWEEP_METHODS)
        f = by["sar-fused"]
        assert f["all"]["tp"] + f["all"]["fn"] == 2 and f["inshore"]["tp"] + f["inshore"]["fn"] == 1
        assert f["cpu_s_per_mpx"] >= by["sar-learned"]["cpu_s_per_mpx"] >= 0
    gs = r["generated_sweep"]
    assert set(gs["by_spacing"]) == {"3", "10"} and "not required" in gs["not_required_rule"]
    for k, by in gs["by_spacing"].items():
        f = by["sar-fused"]
        v = f["vessel_score"]
        assert v["tp"] + v["fn"] == by["truth"] - by["not_required"]
        assert f["tp"] + f["fn"] == by["truth"] and f["cpu_s_per_mpx"] is not None
    t = r["targets"]
    assert t["method"] == "sar-fused" and t["generated_f1_at_0.5m"]["met"] is None  # 0.5 m not run
    assert t["ssdd_f1_every_declared_spacing"]["met"] is None  # 2, 3, 5 m not run
    assert t["cpu_s_per_mpx_10m_le_1m/sar-learned"]["met"] is None  # no 1 m generated
    assert Path(r["plot"]).is_file() and Path(r["plot"]).stat().st_size > 1000
