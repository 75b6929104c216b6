"""benchmarks/eval_learned.py: the lifeboat diagnostics it reports next to the plain recall."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
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
