"""The dense-group expert (detectors/sar/group_expert.py): windows around the main detections, the
gate, and the detector with a second checkpoint asked only there."""

from __future__ import annotations

import shutil

import pytest
import torch

from detectors.errors import WeightsError
from detectors.integrity import sha256_file
from detectors.registry import get_detector
from detectors.sar.group_expert import GROUP_MIN, gate, group_windows, in_window
from detectors.sar.learned import LearnedSarDetector, LearnedSarOnnxDetector
from detectors.sar.network import ONNX_FILE, PT_FILE
from detectors.synth.sar import make_sar_scene
from detectors.types import Detection


def _det(row: float, col: float, score: float = 0.9) -> Detection:
    return Detection(row=row, col=col, score=score, kind="lifeboat", detector="t")


def test_windows_cover_a_detection_and_two_blocks_around_it() -> None:
    """One point in block (3, 3) of 32 px: blocks 1-5 each way; clipped at the tile's edge; far
    points give separate windows; no point, no window."""
    assert group_windows([], (512, 512)) == []
    (win,) = group_windows([(100.0, 100.0)], (512, 512))
    assert win == (32, 192, 32, 192)
    (edge,) = group_windows([(5.0, 500.0)], (512, 512))
    assert edge == (0, 96, 416, 512)
    two = group_windows([(40.0, 40.0), (40.0, 460.0)], (512, 512))
    assert len(two) == 2 and all(in_window(p, w) for p, w in zip([(40.0, 40.0), (40.0, 460.0)], two))


def test_gate_takes_the_expert_only_where_it_sees_a_group() -> None:
    """A window is the expert's when it finds >= GROUP_MIN objects there and more than the main
    weights; otherwise the main detections stand; expert detections outside windows are dropped."""
    assert GROUP_MIN == 3
    wins = [(0, 100, 0, 100), (200, 300, 200, 300)]
    main = [_det(50, 50), _det(250, 250)]
    at_main = [(50.0, 50.0), (250.0, 250.0)]
    # window 1: three expert objects against one -> replaced; window 2: two against one -> kept
    exp = [_det(40, 40, 0.6), _det(50, 55, 0.6), _det(60, 45, 0.6), _det(245, 250, 0.6), _det(255, 250, 0.6),
           _det(400, 400, 0.6)]
    at_exp = [(d.row, d.col) for d in exp]
    out, taken = gate(main, at_main, exp, at_exp, wins)
    assert taken == 1
    assert sorted((d.row, d.col) for d in out) == [(40, 40), (50, 55), (60, 45), (250, 250)]
    # as many as the main weights found: the main ones stay
    main3 = [_det(40, 40), _det(50, 55), _det(61, 45)]
    out, taken = gate(main3, [(d.row, d.col) for d in main3], exp[:3], at_exp[:3], wins)
    assert taken == 0 and out == main3
    # the union form: the main detections all stay; expert ones farther than 6 px from them are added
    out, taken = gate(main, at_main, exp, at_exp, wins, union_px=6.0)
    assert taken == 1
    assert sorted((d.row, d.col) for d in out) == [(40, 40), (50, 50), (60, 45), (250, 250)]
    # no window at all: the main detections, untouched
    assert gate(main, at_main, exp, at_exp, []) == (main, 0)


@pytest.fixture(scope="module")
def group_scene() -> tuple[torch.Tensor, torch.Tensor]:
    """A 0.5 m scene with two planted dense groups (liferafts, an anchorage or a convoy)."""
    sc = make_sar_scene(931, 768, 768, 0.5, n_groups=2, land=False)
    assert any("group" in t for t in sc.truth)
    return torch.from_numpy(sc.sigma0_from_dn()), torch.from_numpy(sc.dn > 0)


def test_an_expert_equal_to_the_main_weights_changes_nothing(group_scene) -> None:
    """The shipped weights as their own expert find what they found (never more), so the gate
    keeps every window: the detections are those without the expert; the version names it."""
    x, v = group_scene
    one = LearnedSarDetector(group_weights="none")
    two = LearnedSarDetector(group_weights=PT_FILE)
    assert one.group_meta is None and two.uses_group((0.5, 0.5)) and two.uses_group((1.0, 1.0))
    assert not two.uses_group((3.0, 3.0))
    assert "+group" in two.version and two.version != one.version
    a = one.detect(x, spacing_m=(0.5, 0.5), valid=v)
    b = two.detect(x, spacing_m=(0.5, 0.5), valid=v)
    assert a and [(d.row, d.col, d.score) for d in a] == [(d.row, d.col, d.score) for d in b]
    assert two.last_group_windows == 0


def test_the_expert_takes_windows_where_it_finds_more(group_scene) -> None:
    """Main weights made stricter (threshold 0.85) than their expert twin (its validated 0.375):
    the expert finds more around the groups and takes those windows; every detection kept from
    the main pass lies outside the windows taken, and nothing appears away from a main detection."""
    x, v = group_scene
    strict = LearnedSarDetector(group_weights="none")
    strict.score_threshold = 0.85
    main = strict.detect(x, spacing_m=(0.5, 0.5), valid=v)
    gated = LearnedSarDetector(group_weights=PT_FILE)
    gated.score_threshold = 0.85
    out = gated.detect(x, spacing_m=(0.5, 0.5), valid=v)
    assert gated.last_group_windows >= 1 and len(out) > len(main)
    def work(d: Detection) -> tuple[float, float]:  # 0.5 m input px -> 1 m working px
        return (d.row + 0.5) / 2 - 0.5, (d.col + 0.5) / 2 - 0.5

    wins = group_windows([work(d) for d in main], (384, 384))
    assert all(any(in_window(work(d), w) for w in wins) for d in out)
    assert any(d.score < 0.85 for d in out)  # the expert's own threshold in the windows it took


def test_coarse_grids_never_run_the_expert() -> None:
    """At 3 m the working grid is the input's: the expert is not asked, even where (main weights
    made strict, as above) it would take windows on the 1 m grid."""
    sc = make_sar_scene(5, 384, 384, 3.0, n_vessels=4, n_lifeboats=0, land=False)
    x, v = torch.from_numpy(sc.sigma0_from_dn()), torch.from_numpy(sc.dn > 0)
    one = LearnedSarDetector(group_weights="none")
    two = LearnedSarDetector(group_weights=PT_FILE)
    one.score_threshold = two.score_threshold = 0.85
    a = one.detect(x, spacing_m=(3.0, 3.0), valid=v)
    b = two.detect(x, spacing_m=(3.0, 3.0), valid=v)
    assert [(d.row, d.col) for d in a] == [(d.row, d.col) for d in b] and two.last_group_windows == 0


def test_fused_passes_the_expert_on_and_onnx_backend_loads_it(tmp_path) -> None:
    """``sar-fused`` takes it as ``learned.group_weights``; ``sar-learned-onnx`` takes an .onnx."""
    fused = get_detector("sar-fused", learned={"group_weights": str(PT_FILE)})
    assert fused.learned.group_meta is not None and "+group" in fused.version
    onnx = LearnedSarOnnxDetector(group_weights=ONNX_FILE)
    assert onnx.group_sessions is not None and "+group" in onnx.version
    int8 = LearnedSarDetector(group_weights=PT_FILE, runtime="onnxruntime-int8")  # the expert stays float32
    assert int8.group_sessions is not None and int8.group_sessions.path.name == ONNX_FILE.name


def test_bad_group_weights_are_refused_by_name(tmp_path) -> None:
    """A missing file, a file without its checksum, and (asked for onnxruntime by name) a .pt
    without its .onnx twin: each a WeightsError naming the file."""
    with pytest.raises(WeightsError, match="not found: .*nowhere.pt"):
        LearnedSarDetector(group_weights=tmp_path / "nowhere.pt")
    bare = tmp_path / "group.pt"
    shutil.copy(PT_FILE, bare)
    with pytest.raises(WeightsError, match="no recorded sha256 for .*group.pt"):
        LearnedSarDetector(group_weights=bare)
    bare.with_name("group.pt.sha256").write_text(f"{sha256_file(bare)}  group.pt\n")
    with pytest.raises(WeightsError, match="group.onnx beside the group weights"):
        LearnedSarDetector(group_weights=bare, runtime="onnxruntime")
    auto = LearnedSarDetector(group_weights=bare)  # auto: the expert runs on torch, with a warning
    assert auto.group_net is not None and auto.group_sessions is None


def test_the_shipped_expert_is_on_by_default_and_its_onnx_twin_agrees() -> None:
    """The shipped ``sar_centernet_group.pt`` loads with the shipped weights (the version names it)
    at the threshold its round chose; its ``.onnx`` twin has named dynamic axes, the same metadata
    and heads within 5e-6 of torch's on two shapes."""
    import numpy as np
    import onnx

    from detectors.onnx_runtime import onnx_metadata
    from detectors.sar.network import GROUP_ONNX_FILE, GROUP_PT_FILE, ONNX_INPUT, load_checkpoint

    det = LearnedSarDetector()
    assert det.group_meta is not None and "+group" in det.version and det.group_threshold == pytest.approx(0.55)
    assert "+group" in get_detector("sar-fused").version
    net, meta = load_checkpoint(GROUP_PT_FILE)
    md = onnx_metadata(GROUP_ONNX_FILE)
    for key in ("name", "version", "date", "score_threshold", "role"):
        assert str(md[key]) == str(meta[key]), key
    dims = [d.dim_param for d in onnx.load(str(GROUP_ONNX_FILE)).graph.input[0].type.tensor_type.shape.dim]
    assert dims[0] == "batch" and dims[2] == "height" and dims[3] == "width"
    onnx_det = LearnedSarOnnxDetector()
    assert onnx_det.group_sessions is not None
    for b, h, w in ((1, 64, 96), (2, 128, 80)):
        x = np.random.default_rng(b).normal(0, 0.3, (b, 2, h, w)).astype(np.float32)
        heat, reg = onnx_det.group_sessions.session.run(None, {ONNX_INPUT: x})
        with torch.no_grad():
            th, tr = det.group_net(torch.from_numpy(x))
        assert np.abs(heat - th.numpy()).max() < 5e-6 and np.abs(reg - tr.numpy()).max() < 5e-6
