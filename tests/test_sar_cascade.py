"""The cascade (detectors/sar/cascade.py): prescreened windows, the network only there, same decoding."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from detectors import get_detector
from detectors.errors import DetectorInputError
from detectors.sar.cascade import BLOCK, heads_in_windows, plan_windows, prescreen_blocks, window_fraction

SP = (0.5, 0.5)


def _sea(shape: tuple[int, int], seed: int, boats: list[tuple[int, int, int, int]]) -> np.ndarray:
    """Gamma(4) speckle at -20 dB with bright rectangles (r0, c0, h, w) at ~+25 dB."""
    rng = np.random.default_rng(seed)
    x = rng.standard_gamma(4.0, shape).astype(np.float32) / 4.0 * 0.01
    for r0, c0, h, w in boats:
        x[r0:r0 + h, c0:c0 + w] += 3.0 * rng.standard_gamma(1.0, (h, w)).astype(np.float32)
    return x


def _feats(x: np.ndarray) -> torch.Tensor:
    det = get_detector("sar-learned", device="cpu")
    return det.prepare(torch.from_numpy(x)[None], SP, None)[0][0]


def test_windows_cover_the_bright_objects_and_little_sea() -> None:
    x = _sea((1024, 1024), 1, [(200, 300, 24, 8), (800, 700, 10, 6)])
    feats = _feats(x)  # working grid 512 x 512 (1 m)
    wins = plan_windows(feats)
    assert 0.0 < window_fraction(wins, tuple(feats.shape[-2:])) < 0.25
    for r, c in ((106, 152), (402, 351)):  # each boat's centre on the 1 m grid lies in a window
        assert any(r0 <= r < r1 and c0 <= c < c1 for r0, r1, c0, c1 in wins), (r, c, wins)
    cells = set()  # windows never overlap
    for r0, r1, c0, c1 in wins:
        here = {(r, c) for r in range(r0 // BLOCK, -(-r1 // BLOCK)) for c in range(c0 // BLOCK, -(-c1 // BLOCK))}
        assert not cells & here
        cells |= here


def test_candidate_points_mark_their_blocks_even_on_empty_sea() -> None:
    feats = _feats(_sea((512, 512), 2, []))
    assert not prescreen_blocks(feats).any()
    marked = prescreen_blocks(feats, points=[(100.0, 40.0)])
    assert marked[100 // BLOCK, 40 // BLOCK] and marked.sum() == 9  # the block and its 8 neighbours
    assert plan_windows(feats) == []


def test_one_window_over_the_whole_input_gives_the_full_heads() -> None:
    det = get_detector("sar-learned", device="cpu")
    feats = _feats(_sea((512, 384), 3, [(100, 100, 20, 6)]))[None]
    full = det.heads(feats)
    h, w = feats.shape[-2:]
    part = heads_in_windows(det.heads, feats, [(0, h, 0, w)])
    for a, b in zip(full, part):
        torch.testing.assert_close(a, b)
    heat, _ = heads_in_windows(det.heads, feats, [(0, 64, 0, 64)])
    assert float(heat[..., 32:, :].abs().max()) == 0.0 and float(heat[..., :32, 32:].abs().max()) == 0.0


def test_fused_cascade_finds_what_the_full_pass_finds_on_a_sparse_sea() -> None:
    x = torch.from_numpy(_sea((1024, 1024), 4, [(200, 300, 60, 10), (700, 600, 8, 4), (500, 900, 12, 5)]))
    full = get_detector("sar-fused", device="cpu")  # the default: the full pass
    cas = get_detector("sar-fused", device="cpu", cascade=True)
    a = full.detect(x, spacing_m=SP)
    b = cas.detect(x, spacing_m=SP)
    assert len(a) >= 3
    assert [(d.row, d.col, d.kind, d.length_m) for d in a] == [(d.row, d.col, d.kind, d.length_m) for d in b]
    assert cas.learned.last_window_fraction < 0.3
    assert "+cascade" in cas.version and "+cascade" not in full.version


def test_cascade_options_are_checked() -> None:
    with pytest.raises(DetectorInputError, match="cascade"):
        get_detector("sar-fused", device="cpu", cascade="sometimes")
    with pytest.raises(DetectorInputError, match="cascade"):
        get_detector("sar-learned", device="cpu", cascade=None)
    with pytest.raises(DetectorInputError, match="prescreen"):
        get_detector("sar-learned", device="cpu", prescreen="high")
