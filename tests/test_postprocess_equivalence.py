"""benchmarks/postprocess_equivalence.py: the batched post-processing against the host loops, per
image; a small run end to end, and the comparison telling different lists apart."""

from __future__ import annotations

import json
import sys
from dataclasses import replace
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks import postprocess_equivalence as PE  # noqa: E402
from detectors.sar.network import PT_FILE  # noqa: E402
from detectors.types import Detection  # noqa: E402


def _d(**kw: object) -> Detection:
    base = dict(row=10.0, col=20.0, score=0.8, kind="vessel", detector="sar-learned", length_m=30.0, width_m=6.0,
                heading_deg=179.95)
    return Detection(**{**base, **kw})  # type: ignore[arg-type]


def test_compare_tells_the_same_from_different() -> None:
    a = [_d(), _d(row=50.0, kind="lifeboat", length_m=5.0)]
    assert PE.compare(a, list(a))["same"]
    near = [replace(a[0], row=10.0015, heading_deg=0.02), a[1]]  # within a rounding step; heading modulo 180
    r = PE.compare(a, near)
    assert r["same"] and r["max_pos_px"] == pytest.approx(0.0015) and r["max_heading_deg"] == pytest.approx(0.07)
    for other in ([a[0]], [replace(a[0], row=10.01), a[1]], [replace(a[0], kind="lifeboat"), a[1]],
                  [replace(a[0], score=0.81), a[1]], [replace(a[0], length_m=30.02), a[1]],
                  [replace(a[0], heading_deg=10.0), a[1]], [replace(a[0], attrs={"peak_db": 3.0}), a[1]],
                  [replace(a[0], attrs={"box_rows_px": 4.0}), a[1]]):
        assert not PE.compare(a, other)["same"]


@pytest.mark.skipif(not PT_FILE.is_file(), reason="shipped SAR weights missing")
def test_a_small_run_writes_its_json(tmp_path: Path) -> None:
    out = tmp_path / "eq.json"
    assert PE.main(["--seeds", "1000-1000", "--size", "384", "--spacings", "0.5,3", "--out", str(out)]) == 0
    got = json.loads(out.read_text())
    assert got["summary"]["images"] == 2 and got["summary"]["same"] == 2 and got["differing"] == []
    assert got["summary"]["detections"] > 0 and set(got["summary"]["finish_seconds"]) == {"loops", "batched"}
