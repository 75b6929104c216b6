"""benchmarks/eval_learned.py: the lifeboat diagnostics it reports next to the plain recall."""

from __future__ import annotations

import json
import sys
from pathlib import Path

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
    assert eval_learned.main(["--seeds", "1000-1000", "--size", "512", "--threads", "1", "--out", str(out)]) == 0
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
                              "--out", str(out)]) == 0
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
