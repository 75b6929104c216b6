"""The fine pass's int8 screen (``sar-learned`` option ``fine_int8``): fewer float32 windows, the same detections.

The screen scores every fine-pass window with the shipped int8 network and lets the float32
network score again only the windows within ``FINE_INT8_MARGIN`` of the fine threshold. It must
change no detection (its validation over 200 generated scenes and the SSDD validation chips:
``benchmarks/results/fine_int8_check.json``), and a screen that cannot start must cost nothing
but its saving.
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import pytest
import torch

from detectors.errors import DetectorInputError
from detectors.integrity import SessionGuard
from detectors.sar import network as N
from detectors.sar.fine_pass import FINE_INT8_MARGIN, fine_grid, fine_window_scores, screened_scores
from detectors.sar.learned import LearnedSarDetector
from detectors.synth.sar import make_sar_scene


def _scene(seed: int, spacing: float = 0.5) -> tuple[torch.Tensor, torch.Tensor]:
    # Spiky K-distributed sea (texture_nu 0.8) at 9 m/s: many small sub-threshold candidates, the
    # case the screen is for; the drawn lifeboats give the pass something to confirm.
    s = make_sar_scene(seed, 768, 768, spacing, texture_nu=0.8, wind_speed_ms=9.0, land=False)
    return torch.from_numpy(s.sigma0_from_dn()), torch.from_numpy(s.dn > 0)


def test_the_screen_scores_fewer_float32_windows_and_finds_the_same() -> None:
    screened, plain = LearnedSarDetector(group_weights="none"), LearnedSarDetector(group_weights="none", fine_int8=False)
    assert isinstance(screened.fine_screen, SessionGuard) and plain.fine_screen is None
    for seed, sp in ((7102, 0.5), (905, 0.35), (911, 0.5)):
        x, v = _scene(seed, sp)
        assert screened.detect(x, spacing_m=(sp, sp), valid=v) == plain.detect(x, spacing_m=(sp, sp), valid=v)
    n = plain.fine_windows["float32"]
    assert n >= 10, "the scenes gave the fine pass too little to look at"
    assert screened.fine_windows["int8"] == n  # every candidate screened ...
    assert screened.fine_windows["float32"] < n / 2  # ... and most not scored again in float32


def test_scores_again_for_a_subset_equal_those_of_the_whole_batch() -> None:
    """What the screen relies on: a window's float32 score does not depend on which other
    windows share its batch, so re-scoring only the screened-in centres gives their exact scores."""
    det = LearnedSarDetector(group_weights="none", fine_int8=False)
    x, v = _scene(7102)
    tile = fine_grid(x[None], (0.5, 0.5), v[None])[0]
    centres = [(40.0 + 37.0 * k, 30.0 + 29.0 * k) for k in range(9)]
    whole = fine_window_scores(det.heads, tile, centres)
    rough = [0.9 if k % 3 == 0 else 0.0 for k in range(9)]  # a stand-in screen: 3 of 9 pass
    got, again = screened_scores(lambda c: [rough[centres.index(p)] for p in c],
                                 lambda c: fine_window_scores(det.heads, tile, c), centres, 0.25)
    assert again == 3
    assert [got[k] for k in (0, 3, 6)] == [whole[k] for k in (0, 3, 6)]
    assert [got[k] for k in range(9) if k % 3] == [0.0] * 6


def test_a_broken_int8_file_turns_the_screen_off_and_changes_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                     caplog: pytest.LogCaptureFixture) -> None:
    bad = tmp_path / N.INT8_ONNX_FILE.name
    shutil.copy(N.INT8_ONNX_FILE, bad)
    shutil.copy(N.INT8_ONNX_FILE.with_name(N.INT8_ONNX_FILE.name + ".sha256"), tmp_path)
    data = bytearray(bad.read_bytes())
    data[len(data) // 2] ^= 0x10  # one flipped bit: fails its recorded sha256
    bad.write_bytes(bytes(data))
    monkeypatch.setattr(N, "INT8_ONNX_FILE", bad)
    with caplog.at_level(logging.WARNING):
        det = LearnedSarDetector(group_weights="none")
    assert det.fine_screen is None and det.runtime == "onnxruntime"
    assert any("without its int8 screen" in r.getMessage() and "sha256" in r.getMessage() for r in caplog.records)
    x, v = _scene(911)
    assert det.detect(x, spacing_m=(0.5, 0.5), valid=v) == LearnedSarDetector(group_weights="none", fine_int8=False).detect(
        x, spacing_m=(0.5, 0.5), valid=v)
    assert det.fine_windows.get("int8", 0) == 0


def test_where_the_screen_does_not_run() -> None:
    assert LearnedSarDetector(group_weights="none", runtime="torch").fine_screen is None  # float32 in torch: nothing to pair it with
    assert LearnedSarDetector(group_weights="none", runtime="onnxruntime-int8").fine_screen is None  # all int8 already
    assert LearnedSarDetector(group_weights="none", fine_threshold=None).fine_screen is None  # no fine pass
    low = LearnedSarDetector(group_weights="none", fine_threshold=FINE_INT8_MARGIN)  # no room below the threshold: all float32
    x, v = _scene(911)
    low.detect(x, spacing_m=(0.5, 0.5), valid=v)
    assert low.fine_windows.get("int8", 0) == 0 and low.fine_windows["float32"] > 0
    with pytest.raises(DetectorInputError, match="fine_int8"):
        LearnedSarDetector(group_weights="none", fine_int8="yes")  # type: ignore[arg-type]


def test_the_screen_session_is_rebuilt_on_schedule() -> None:
    """The int8 session is guarded like the float32 one (bit flips in onnxruntime's copy)."""
    det = LearnedSarDetector(group_weights="none")
    guard = det.fine_screen
    assert guard is not None
    first = guard.session
    x, v = _scene(7102)
    tile = fine_grid(x[None], (0.5, 0.5), v[None])[0]
    for _ in range(guard.every_calls + 1):
        det._fine_scores(tile, [(100.0, 100.0)])
    assert guard.session is not first
    assert det.fine_windows["int8"] == guard.every_calls + 1


def test_a_pass_finished_again_at_a_lower_fine_threshold_does_not_reuse_screened_scores() -> None:
    """finish() may run again on one network pass (threshold sweeps); scores the screen left at
    their int8 value (below its floor) must not decide at a fine threshold that is lower."""
    screened, plain = LearnedSarDetector(group_weights="none"), LearnedSarDetector(group_weights="none", fine_int8=False)
    x, v = _scene(7102)
    npass = screened.network_pass(x[None], spacing_m=(0.5, 0.5), valid=v[None])
    screened.finish(npass)
    n, f32 = screened.fine_windows["int8"], screened.fine_windows["float32"]
    assert n > f32  # some candidates left at their int8 scores
    screened.fine_threshold = plain.fine_threshold = 0.2  # floor below 0: every window in float32
    again = screened.finish(npass)
    assert screened.fine_windows["float32"] == f32 + n  # all of them scored again, none reused
    assert again == plain.finish(plain.network_pass(x[None], spacing_m=(0.5, 0.5), valid=v[None]))
