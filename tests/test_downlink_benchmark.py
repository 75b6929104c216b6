"""The issue's required numbers, on a small day (10 collects): guarded so a regression fails CI."""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))

import downlink as bench  # noqa: E402

from pipelines.node import NodeConfig  # noqa: E402


def test_small_day_meets_the_issue_numbers() -> None:
    out = bench.run(bench.Params(collects=10, thumbnails=False, seed=3), NodeConfig())
    out.pop("_series")
    ps, sc = out["per_scene"], out["scenarios"]
    assert ps["raw_to_alert_ratio_min"] >= 100_000
    assert sc["onboard_relay"]["alert_latency_s"]["median"] < 300
    # Without relay: bounded by the next contact, never by the raw backlog queued behind.
    assert sc["onboard_xband"]["alerts_in_first_contact_after_ready"] == 1.0
    assert sc["onboard_xband+raw"]["alerts_in_first_contact_after_ready"] == 1.0
    assert sc["onboard_xband"]["bytes_downlinked"]["raw"] == 0 and sc["raw_xband"]["bytes_downlinked"]["alerts"] == 0
    assert out["power"]["min_soc_fraction"] >= out["power"]["floor_fraction"]
