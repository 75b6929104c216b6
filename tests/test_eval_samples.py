"""benchmarks/eval_samples.py: the demo's score against sample-scene truth must count honestly."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
_spec = importlib.util.spec_from_file_location("eval_samples", ROOT / "benchmarks" / "eval_samples.py")
assert _spec and _spec.loader
es = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(es)


def _fc(props: list[dict]) -> dict:
    return {"type": "FeatureCollection", "features": [
        {"type": "Feature", "geometry": {"type": "Point", "coordinates": [0, 0]}, "properties": p} for p in props]}


def test_vessels_lifeboats_fires_false_alarms_and_fragments(tmp_path: Path) -> None:
    truth = [{"kind": "vessel", "row": 100.0, "col": 100.0, "length_m": 60.0},
             {"kind": "lifeboat", "row": 300.0, "col": 300.0, "length_m": 6.0},
             {"kind": "lifeboat", "row": 500.0, "col": 500.0, "length_m": 6.0},
             {"kind": "fire", "row": 10.0, "col": 10.0, "pixels": [[10, 10], [10, 11], [10, 12]]}]
    (tmp_path / "s_truth.geojson").write_text(json.dumps(_fc(truth)))
    (tmp_path / "s_extended.json").write_text(json.dumps({"collect": {"image": {
        "pixel_spacing_row": 0.5, "pixel_spacing_column": 0.5}}}))
    alerts = [{"scene": "s", "kind": "vessel", "row": 130.0, "col": 100.0},      # 15 m off: within 30 m (half length)
              {"scene": "s", "kind": "vessel", "row": 300.0, "col": 310.0},      # lifeboat found, reported as vessel
              {"scene": "s", "kind": "lifeboat", "row": 900.0, "col": 900.0},    # false alarm
              {"scene": "s", "kind": "fire", "row": 10.0, "col": 10.5, "pixels": [[10, 10], [10, 11]]},
              {"scene": "s", "kind": "fire", "row": 10.0, "col": 12.0, "pixels": [[10, 12]]},  # fragment
              {"scene": "s", "kind": "fire", "row": 90.0, "col": 90.0, "pixels": [[90, 90]]},  # false alarm
              {"scene": "other", "kind": "vessel", "row": 100.0, "col": 100.0}]  # other scene: ignored
    (tmp_path / "a.geojson").write_text(json.dumps(_fc(alerts)))
    res = es.evaluate(tmp_path / "a.geojson", tmp_path, tol_m=25.0)
    s = res["scenes"]["s"]
    assert s["truth"] == {"vessel": 1, "lifeboat": 2, "fire": 1}
    assert s["found"] == {"vessel": 1, "lifeboat": 1, "fire": 1}
    assert s["kind_confusions"] == 1
    assert s["false_alarms"] == 2
    assert s["fire_fragments"] == 1
    assert "1 of 2" in es.table(res)


def test_missing_alerts_file_is_a_usage_error(tmp_path: Path) -> None:
    assert es.main([str(tmp_path / "nope.geojson"), "--scenes", str(tmp_path)]) == 2


def test_one_alert_over_two_adjacent_fires_finds_both(tmp_path: Path) -> None:
    truth = [{"kind": "fire", "row": 5.0, "col": 5.0, "pixels": [[5, 5]]},
             {"kind": "fire", "row": 5.0, "col": 8.0, "pixels": [[5, 8]]},
             {"kind": "fire", "row": 50.0, "col": 50.0, "pixels": [[50, 50]]}]
    (tmp_path / "f_truth.geojson").write_text(json.dumps(_fc(truth)))
    alerts = [{"scene": "f", "kind": "fire", "row": 5.0, "col": 6.5, "pixels": [[5, 5], [5, 6], [5, 7], [5, 8]]}]
    (tmp_path / "a.geojson").write_text(json.dumps(_fc(alerts)))
    s = es.evaluate(tmp_path / "a.geojson", tmp_path)["scenes"]["f"]
    assert s["found"]["fire"] == 2 and s["truth"]["fire"] == 3
    assert s["false_alarms"] == 0 and s["fire_fragments"] == 0
