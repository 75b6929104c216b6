"""Tiling: cores partition the scene exactly, overlap and context hold, bad options fail; dedupe."""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np
import pytest

from pipelines.errors import TilingError
from pipelines.scene import Tile, dedupe_by_distance, iter_tiles


def _check(rows: int, cols: int, size: int, overlap: int) -> list[Tile]:
    tiles = list(iter_tiles(rows, cols, size=size, overlap=overlap))
    owners = np.zeros((rows, cols), dtype=np.int32)
    for t in tiles:
        r0, c0, r1, c1 = t.core
        # window inside the scene, at most size, full-size when the scene allows
        assert 0 <= t.row_off and t.row_off + t.height <= rows
        assert 0 <= t.col_off and t.col_off + t.width <= cols
        assert t.height == min(size, rows) and t.width == min(size, cols)
        # core inside the window and non-empty
        assert t.row_off <= r0 < r1 <= t.row_off + t.height
        assert t.col_off <= c0 < c1 <= t.col_off + t.width
        owners[r0:r1, c0:c1] += 1
        # every owned pixel has >= overlap//2 context where the scene extends that far
        need = overlap // 2
        assert r0 - t.row_off >= min(need, r0)
        assert c0 - t.col_off >= min(need, c0)
        assert t.row_off + t.height - r1 >= min(need, rows - r1)
        assert t.col_off + t.width - c1 >= min(need, cols - c1)
    assert owners.min() == 1 and owners.max() == 1, "cores must partition the scene exactly"
    # neighbouring windows overlap by at least `overlap` (when there is more than one)
    row_offs = sorted({t.row_off for t in tiles})
    for a, b in itertools.pairwise(row_offs):
        assert a + min(size, rows) - b >= overlap
    col_offs = sorted({t.col_off for t in tiles})
    for a, b in itertools.pairwise(col_offs):
        assert a + min(size, cols) - b >= overlap
    return tiles


@pytest.mark.parametrize("size", [1, 2, 3, 7, 16, 33])
def test_cores_partition_exactly_many_shapes(size: int) -> None:
    rng = np.random.default_rng(size)
    for _ in range(25):
        rows, cols = (int(v) for v in rng.integers(1, min(120, 8 * size + 10), 2))  # few tiles per case: fast
        overlap = int(rng.integers(0, size))  # 0 .. size-1
        _check(rows, cols, size, overlap)


def test_exhaustive_small() -> None:
    for rows, size in itertools.product(range(1, 30), range(1, 12)):
        for overlap in range(size):
            _check(rows, 5, size, overlap)


def test_typical_scene_and_order() -> None:
    tiles = _check(2500, 3000, 1024, 128)
    assert [(t.row_off, t.col_off) for t in tiles[:4]] == [(0, 0), (0, 896), (0, 1792), (0, 1976)]
    assert tiles[-1].row_off == 2500 - 1024 and tiles[-1].col_off == 3000 - 1024
    assert tiles[0].core == (0, 0, 960, 960)  # boundary in the middle of the 128-pixel overlap
    assert len(tiles) == 3 * 4


def test_small_scene_is_one_tile() -> None:
    (t,) = iter_tiles(300, 200, size=1024, overlap=128)
    assert (t.row_off, t.col_off, t.height, t.width, t.core) == (0, 0, 300, 200, (0, 0, 300, 200))


def test_exact_multiple_and_edge_tiles() -> None:
    tiles = _check(100, 100, 50, 0)
    assert [t.core for t in tiles] == [(0, 0, 50, 50), (0, 50, 50, 100), (50, 0, 100, 50), (50, 50, 100, 100)]
    tiles = _check(101, 10, 50, 10)  # last row tile moved back to stay full-size
    assert [t.row_off for t in tiles] == [0, 40, 51]


def test_owns_points_exactly_once() -> None:
    rows, cols = 37, 23
    tiles = list(iter_tiles(rows, cols, size=10, overlap=4))
    for r in np.arange(-0.5, rows - 0.5, 0.25):
        for c in np.arange(-0.5, cols - 0.5, 0.25):
            assert sum(t.owns(float(r), float(c)) for t in tiles) == 1
    t0 = tiles[0]
    r1 = t0.core[2]
    assert t0.owns(r1 - 1, 0) and t0.owns(r1 - 0.51, 0) and not t0.owns(r1 - 0.5, 0)


@pytest.mark.parametrize(("kwargs", "msg"), [
    (dict(rows=10, cols=10, size=0, overlap=0), "size must be > 0"),
    (dict(rows=10, cols=10, size=-5, overlap=0), "size must be > 0"),
    (dict(rows=10, cols=10, size=8, overlap=-1), "overlap must be >= 0"),
    (dict(rows=10, cols=10, size=8, overlap=8), "smaller than the tile size"),
    (dict(rows=10, cols=10, size=8, overlap=9), "smaller than the tile size"),
    (dict(rows=0, cols=10, size=8, overlap=0), "at least one pixel"),
    (dict(rows=10, cols=-1, size=8, overlap=0), "at least one pixel"),
    (dict(rows=10, cols=10, size=8.0, overlap=0), "size must be an integer"),
    (dict(rows=10, cols=10, size=8, overlap=True), "overlap must be an integer"),
    (dict(rows="10", cols=10, size=8, overlap=0), "rows must be an integer"),
])
def test_bad_options(kwargs: dict, msg: str) -> None:
    with pytest.raises(TilingError, match=msg):
        list(iter_tiles(**kwargs))


def test_numpy_ints_accepted() -> None:
    assert len(list(iter_tiles(np.int64(20), np.int32(20), size=np.int64(10), overlap=np.int16(2)))) == 9


@dataclass
class _Det:
    row: float
    col: float
    score: float
    name: str


def test_dedupe_keeps_best_and_order() -> None:
    items = [_Det(10, 10, 0.5, "a"), _Det(500, 500, 0.1, "far"), _Det(11, 12, 0.9, "b"), _Det(10.5, 10, 0.2, "c")]
    out = dedupe_by_distance(items, key_rc=lambda d: (d.row, d.col), radius_px=3.0)
    assert [d.name for d in out] == ["far", "b"]
    # custom score: lowest "score" wins when score is negated
    out = dedupe_by_distance(items, key_rc=lambda d: (d.row, d.col), radius_px=3.0, score=lambda d: -d.score)
    assert [d.name for d in out] == ["far", "c"]


def test_dedupe_greedy_not_transitive() -> None:
    # a chain 0 - 2 - 4 with radius 2.5: the best (middle) removes both neighbours
    items = [_Det(0, 0, 0.5, "x"), _Det(0, 2, 0.9, "y"), _Det(0, 4, 0.5, "z")]
    assert [d.name for d in dedupe_by_distance(items, lambda d: (d.row, d.col), 2.5)] == ["y"]
    # the best at an end keeps the far end (4 px away > radius)
    items = [_Det(0, 0, 0.9, "x"), _Det(0, 2, 0.5, "y"), _Det(0, 4, 0.4, "z")]
    assert [d.name for d in dedupe_by_distance(items, lambda d: (d.row, d.col), 2.5)] == ["x", "z"]


def test_dedupe_ties_and_edge_cases() -> None:
    items = [_Det(0, 0, 0.5, "first"), _Det(0, 1, 0.5, "second")]
    assert [d.name for d in dedupe_by_distance(items, lambda d: (d.row, d.col), 2)] == ["first"]
    assert dedupe_by_distance([], lambda d: (d.row, d.col), 2) == []
    assert dedupe_by_distance(items, lambda d: (d.row, d.col), 0) == items
    with pytest.raises(TilingError, match="radius_px"):
        dedupe_by_distance(items, lambda d: (d.row, d.col), -1)
    with pytest.raises(TilingError, match="radius_px"):
        dedupe_by_distance(items, lambda d: (d.row, d.col), float("nan"))
    with pytest.raises(TilingError, match="non-finite"):
        dedupe_by_distance([_Det(np.nan, 0, 1, "n"), _Det(0, 0, 1, "m")], lambda d: (d.row, d.col), 2)


def test_tiles_plus_ownership_report_straddler_once() -> None:
    """An object seen by two overlapping tiles is kept by exactly one (the owner of its centre)."""
    tiles = list(iter_tiles(1, 100, size=60, overlap=20))
    obj = (0.0, 45.2)  # inside both windows' overlap (40..60)
    seen = [t for t in tiles if t.col_off <= obj[1] < t.col_off + t.width]
    assert len(seen) == 2
    assert sum(t.owns(*obj) for t in seen) == 1
