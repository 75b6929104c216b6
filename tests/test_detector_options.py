"""Detector options from the CLI and the flows (``--option DETECTOR.KEY=VALUE``).

Why they exist: a user trades CPU time against recall (the SAR fine pass costs ~50 % more time
per scene on a CPU), or picks an operating point, without writing Python. What must hold: the
option reaches the detector (fewer alerts at a stricter setting), a malformed or unknown option
stops the run before any scene is read with a message naming it, and options are part of the
resume fingerprint and of the flows' cache key, so a scene scanned one way is never reused for
another. Real GeoTIFFs, real detectors, Prefect's real test harness.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path

import pytest
from typer.testing import CliRunner

from detectors.errors import DetectorInputError
from detectors.registry import detector_options, get_detector
from pipelines.batch import scene_fingerprint
from pipelines.cli import app
from pipelines.detect import ScanOptions, load_detector, parse_detector_options
from pipelines.errors import OrbitwatchError, ScanOptionError

ACQ = datetime(2025, 7, 1, 10, 0, tzinfo=timezone.utc)


@pytest.fixture(scope="module")
def scenes(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One small SAR bundle with vessels (the CFAR finds them) and one optical tile with fires."""
    from detectors.synth.optical import make_optical_tile
    from detectors.synth.sar import make_sar_scene
    from pipelines.scene.write import write_optical_tile, write_sar_bundle

    root = tmp_path_factory.mktemp("opt_scenes")
    sar = make_sar_scene(seed=7, rows=512, cols=512, spacing_m=0.5, n_vessels=2, n_lifeboats=1,
                         land=False, nodata_border=False)
    write_sar_bundle(root / "sar", "tiny_sar", sar, origin_utm=(500000.0, 4000000.0), epsg=32633, acquired=ACQ)
    opt = make_optical_tile(seed=11, rows=128, cols=128, n_fires=2, traps=False)
    write_optical_tile(root / "optical", "tiny_opt", opt, origin_utm=(500000.0, 4200000.0), acquired=ACQ)
    return root


# ----------------------------------------------------------------------------- parsing
def test_dotted_options_nest_and_values_parse_as_json() -> None:
    got = parse_detector_options(["sar-fused.learned.fine_threshold=none", "sar-fused.learned.pyramid=[2]",
                                  "sar-fused.cfar.pfa=1e-7", "sar-fused.learned.refine_centres=False",
                                  "fire-learned.weights=my/fire.pt", "fire-learned.threshold=0.6"])
    assert got == {"sar-fused": {"learned": {"fine_threshold": None, "pyramid": [2], "refine_centres": False},
                                 "cfar": {"pfa": 1e-7}},
                   "fire-learned": {"weights": "my/fire.pt", "threshold": 0.6}}
    assert parse_detector_options(None) is None and parse_detector_options([]) is None


@pytest.mark.parametrize("items, words", [
    (["sar-fused"], "DETECTOR.KEY=VALUE"),
    (["sar-fused=1"], "DETECTOR.KEY=VALUE"),
    (["sar-fused..pfa=1"], "DETECTOR.KEY=VALUE"),
    (["sar-fused.learned.device=cuda"], "--device"),
    (["sar-fused.learned=1", "sar-fused.learned.pfa=2"], "already given a value"),
    (["sar-fused.learned.pfa=2", "sar-fused.learned=1"], "holds options of its own"),
])
def test_malformed_options_name_the_item(items: list[str], words: str) -> None:
    with pytest.raises(ScanOptionError) as err:
        parse_detector_options(items)
    assert words in str(err.value) and items[-1].split("=")[0].split(".")[0] in str(err.value)
    assert isinstance(err.value, (OrbitwatchError, ValueError))


# ------------------------------------------------------------------------- the registry
def test_registry_lists_options_and_rejects_unknown_ones_by_name() -> None:
    assert {"fine_threshold", "score_threshold", "weights"} <= set(detector_options("sar-learned"))
    assert {"pfa", "guard_m"} <= set(detector_options("sar-cfar"))  # **params, listed by the CFAR
    assert set(detector_options("sar-fused")) == {"cascade", "cfar", "learned", "unconfirmed_min_score"}
    for name, bad in (("fire-learned", {"bogus": 1}), ("sar-cfar", {"bogus": 1}), ("sar-fused", {"bogus": 1}),
                      ("sar-fused", {"learned": {"bogus": 1}}), ("sar-learned", {"bogus": 1})):
        with pytest.raises(DetectorInputError, match="bogus"):
            get_detector(name, "cpu", **bad)
    with pytest.raises(DetectorInputError, match="learned takes the inner detector's options as a mapping"):
        get_detector("sar-fused", "cpu", learned=0.5)


def test_options_reach_the_detector_and_key_the_cache() -> None:
    plain = load_detector("sar-learned", "cpu")
    off = load_detector("sar-learned", "cpu", {"fine_threshold": None})
    assert off is not plain and off.fine_threshold is None and plain.fine_threshold is not None
    assert off.version.endswith("+nofine") and off is load_detector("sar-learned", "cpu", {"fine_threshold": None})
    fused = load_detector("sar-fused", "cpu", {"learned": {"fine_threshold": None}})
    assert fused.learned.fine_threshold is None


def test_the_group_expert_is_an_option_from_the_command_line() -> None:
    """``-O sar-fused.learned.group_weights=PATH`` loads a dense-group expert (detectors/sar/group_expert.py);
    ``=false`` turns it off (``none`` reads as "the default", the shipped expert); the version
    (what caches key on) names it."""
    from detectors.sar.network import PT_FILE

    got = parse_detector_options([f"sar-fused.learned.group_weights={PT_FILE}"])
    fused = load_detector("sar-fused", "cpu", got["sar-fused"])
    assert fused.learned.group_meta is not None and "+group" in fused.version
    off = load_detector("sar-fused", "cpu", parse_detector_options(["sar-fused.learned.group_weights=false"])["sar-fused"])
    assert off.learned.group_meta is None and "+group" not in off.version


# ------------------------------------------------------------------------------ validate
def test_validate_refuses_options_for_a_detector_the_scan_does_not_run() -> None:
    opts = ScanOptions(device="cpu", detector_options={"sar-learned": {"fine_threshold": None}})
    with pytest.raises(ScanOptionError, match="sar-learned, which this scan does not run"):
        opts.validate()  # the default SAR detector is sar-fused: the option would do nothing
    ScanOptions(detectors=["sar-learned"], device="cpu",
                detector_options={"sar-learned": {"fine_threshold": None}}).validate()


def test_validate_names_the_detector_and_the_bad_value() -> None:
    opts = ScanOptions(device="cpu", detector_options={"sar-fused": {"learned": {"fine_threshold": 2}}})
    with pytest.raises(ScanOptionError, match=r"sar-fused with options .*fine_threshold must be in \(0, 1\)"):
        opts.validate()


# ------------------------------------------------------------------------- fingerprints
def test_options_enter_the_resume_fingerprint(scenes: Path, tmp_path: Path) -> None:
    tif = scenes / "sar" / "tiny_sar.tif"
    base = scene_fingerprint(tif, ScanOptions())
    off = ScanOptions(detector_options={"sar-fused": {"learned": {"fine_threshold": None}}})
    assert scene_fingerprint(tif, off) != base
    assert scene_fingerprint(tif, off) == scene_fingerprint(
        tif, ScanOptions(detector_options={"sar-fused": {"learned": {"fine_threshold": None}}}))
    # A weights file given as an option: replacing the file changes the fingerprint.
    w = tmp_path / "other.pt"
    w.write_bytes(b"one")
    with_w = ScanOptions(detectors=["fire-learned"], detector_options={"fire-learned": {"weights": str(w)}})
    before = scene_fingerprint(tif, with_w)
    w.write_bytes(b"other weights")
    assert scene_fingerprint(tif, with_w) != before


# ------------------------------------------------------------------------------- the CLI
def _sar_alerts(out: Path) -> int:
    return sum(f["properties"]["kind"] in ("vessel", "lifeboat") for f in json.loads(out.read_text())["features"])


def test_cli_option_changes_what_the_detector_reports(scenes: Path, tmp_path: Path) -> None:
    sar = scenes / "sar"
    a, b = tmp_path / "a.geojson", tmp_path / "b.geojson"
    res = CliRunner().invoke(app, ["scan", str(sar), "-o", str(a), "-d", "sar-cfar", "-q", "--device", "cpu"])
    assert res.exit_code == 0, res.output
    assert _sar_alerts(a) >= 1
    # Asking the CFAR for 60 dB of contrast leaves nothing a generated vessel can reach.
    res = CliRunner().invoke(app, ["scan", str(sar), "-o", str(b), "-d", "sar-cfar", "-q", "--device", "cpu",
                                   "--option", "sar-cfar.min_contrast_db=60"])
    assert res.exit_code == 0, res.output
    assert _sar_alerts(b) == 0


@pytest.mark.parametrize("option, words", [
    ("sar-cfar.no_such_knob=1", "no_such_knob"),
    ("sar-cfar", "DETECTOR.KEY=VALUE"),
    ("sar-learned.fine_threshold=none", "does not run"),
    ("sar-cfar.pfa=2", "pfa"),
])
def test_cli_bad_option_is_a_usage_error_before_any_scene(scenes: Path, tmp_path: Path, option: str,
                                                          words: str) -> None:
    out = tmp_path / "x.geojson"
    res = CliRunner().invoke(app, ["scan", str(scenes), "-o", str(out), "-d", "sar-cfar", "-q", "--device", "cpu",
                                   "--option", option])
    assert res.exit_code == 2, res.output
    assert words in res.output
    assert not out.exists()  # nothing was scanned


# ----------------------------------------------------------------------------- the flows
def test_flow_options_take_effect_and_are_not_served_from_the_default_cache(harness: None, scenes: Path,
                                                                           tmp_path: Path) -> None:
    from pipelines.flows.scan import scan_scene

    tif = str(scenes / "optical" / "tiny_opt.tif")
    default = scan_scene(tif, str(tmp_path / "d"), device="cpu", return_state=True)
    assert default.is_completed() and default.result()["alerts"] >= 1
    strict = scan_scene(tif, str(tmp_path / "s"), device="cpu", return_state=True,
                        detector_options={"fire-learned": {"threshold": 0.999999}})
    assert strict.is_completed()
    # Different fire alerts at a far stricter probability cut (fewer pixels per fire, so clusters
    # shrink or split): the option reached the detector, and the detect task did not return the
    # default run's cached result.
    d_feats = json.loads(Path(default.result()["geojson"]).read_text())["features"]
    s_feats = json.loads(Path(strict.result()["geojson"]).read_text())["features"]
    area = lambda feats: sum(f["properties"].get("area_m2") or 0.0 for f in feats)  # noqa: E731
    assert [f["properties"]["alert_id"] for f in s_feats] != [f["properties"]["alert_id"] for f in d_feats]
    assert area(s_feats) < area(d_feats)


def test_flow_with_a_bad_option_fails_once_naming_it(harness: None, scenes: Path, tmp_path: Path) -> None:
    from pipelines.flows.scan import scan_folder

    state = scan_folder(str(scenes), str(tmp_path / "f"), device="cpu", return_state=True,
                        detector_options={"sar-fused": {"learned": {"no_such_knob": 1}}})
    assert state.is_failed()
    assert "no_such_knob" in str(state.result(raise_on_failure=False))
    assert not (tmp_path / "f" / "alerts.geojson").exists()


def test_flow_cli_malformed_option_is_a_usage_error(tmp_path: Path) -> None:
    from pipelines.flows.cli import flows_app

    for cmd in (["scan-folder", str(tmp_path)], ["scan-scene", str(tmp_path / "x.tif")], ["onboard-pass", str(tmp_path)]):
        res = CliRunner().invoke(flows_app, cmd + ["--option", "sar-fused.learned"])
        assert res.exit_code == 2, res.output
        assert "DETECTOR.KEY=VALUE" in res.output
