"""Cut a scene into overlapping tiles whose *cores* partition it exactly.

Why overlap: a detector needs context around each pixel (CFAR guard/background rings, fire
background windows), and an object on a tile edge would be cut in half. Why cores: with overlap,
an object is seen by up to four tiles; keeping a detection only in the tile whose core contains
its centre reports it exactly once, with no merge step. Each core boundary sits in the middle of
the overlap, so every owned pixel has at least ``overlap // 2`` pixels of context on every side
where the scene extends that far.

Why :func:`dedupe_by_distance` as well: ownership is decided per *centre*. An extended object
(a ship, a fire front) straddling a core boundary can be seen by two tiles with slightly different
centres (each tile sees a different part of it), and both centres may then fall in their own tile's
core. Collapsing detections closer than the object size removes those rare doubles.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np

from pipelines.errors import TilingError

T = TypeVar("T")


@dataclass(frozen=True)
class Tile:
    """One window of a scene and the part of the scene it is responsible for."""

    row_off: int
    col_off: int
    height: int
    width: int
    #: (r0, c0, r1, c1) scene pixels this tile owns, half-open; all cores partition the scene.
    core: tuple[int, int, int, int]

    def owns(self, row: float, col: float) -> bool:
        """Whether a scene-coordinate point belongs to this tile's core.

        Coordinates are array indices with the centre of pixel [i, j] at (i, j), so pixel i spans
        [i - 0.5, i + 0.5): a sub-pixel centre is owned by the tile owning the pixel it falls in.
        """
        r0, c0, r1, c1 = self.core
        return (r0 - 0.5 <= row < r1 - 0.5) and (c0 - 0.5 <= col < c1 - 0.5)


def _is_int(v: Any) -> bool:
    return isinstance(v, (int, np.integer)) and not isinstance(v, bool)


def _starts(n: int, size: int, stride: int) -> list[int]:
    """Window starts along one axis; the last window is shifted back to stay full-size."""
    if n <= size:
        return [0]
    starts: list[int] = []
    s = 0
    while s + size < n:
        starts.append(s)
        s += stride
    starts.append(n - size)  # > previous start, and overlaps it by >= size - stride
    return starts


def _axis(n: int, size: int, stride: int) -> list[tuple[int, int, int, int]]:
    """(offset, length, core_start, core_stop) for each window along one axis."""
    starts = _starts(n, size, stride)
    lengths = [min(size, n - s) for s in starts]
    bounds = [0]
    for i in range(len(starts) - 1):
        end_i = starts[i] + lengths[i]
        bounds.append((starts[i + 1] + end_i) // 2)  # middle of the overlap
    bounds.append(n)
    return [(starts[i], lengths[i], bounds[i], bounds[i + 1]) for i in range(len(starts))]


def iter_tiles(rows: int, cols: int, size: int = 1024, overlap: int = 128) -> Iterator[Tile]:
    """Tiles of at most ``size`` x ``size`` (row-major order), neighbours overlapping by >= ``overlap``.

    Interior windows step by ``size - overlap``; the last window along each axis is moved back to
    end at the scene edge so every window is full-size when the scene is at least ``size``
    (detectors compiled for a fixed shape keep working). A scene smaller than ``size`` is one window.
    """
    for name, v in (("rows", rows), ("cols", cols), ("size", size), ("overlap", overlap)):
        if not _is_int(v):
            raise TilingError(f"{name} must be an integer, got {v!r}")
    if rows <= 0 or cols <= 0:
        raise TilingError(f"scene must have at least one pixel, got rows={rows} cols={cols}")
    if size <= 0:
        raise TilingError(f"tile size must be > 0, got {size}")
    if overlap < 0:
        raise TilingError(f"tile overlap must be >= 0, got {overlap}")
    if overlap >= size:
        raise TilingError(f"tile overlap ({overlap}) must be smaller than the tile size ({size})")
    stride = size - overlap
    row_axis = _axis(int(rows), int(size), stride)
    col_axis = _axis(int(cols), int(size), stride)
    for r_off, h, r0, r1 in row_axis:
        for c_off, w, c0, c1 in col_axis:
            yield Tile(row_off=r_off, col_off=c_off, height=h, width=w, core=(r0, c0, r1, c1))


def dedupe_by_distance(items: Sequence[T], key_rc: Callable[[T], tuple[float, float]], radius_px: float,
                       score: Callable[[T], float] = lambda it: float(getattr(it, "score"))) -> list[T]:
    """Collapse items closer than ``radius_px`` to each other, keeping the highest score.

    Greedy, highest score first (like non-maximum suppression on points): an item is dropped when a
    kept item lies within ``radius_px`` (Euclidean, pixels). Returned in the input order. Ties in
    score keep the earlier item, so the result does not depend on sort stability.
    """
    if not isinstance(radius_px, (int, float)) or isinstance(radius_px, bool) or not math.isfinite(radius_px) \
            or radius_px < 0:
        raise TilingError(f"radius_px must be a finite number >= 0, got {radius_px!r}")
    n = len(items)
    if n < 2 or radius_px == 0:
        return list(items)
    from scipy.spatial import cKDTree

    pts = np.array([key_rc(it) for it in items], dtype=np.float64).reshape(n, 2)
    if not np.all(np.isfinite(pts)):
        raise TilingError("dedupe_by_distance: an item has a non-finite (row, col)")
    scores = np.array([score(it) for it in items], dtype=np.float64)
    order = sorted(range(n), key=lambda i: (-scores[i], i))
    tree = cKDTree(pts)
    dropped = np.zeros(n, dtype=bool)
    for i in order:
        if dropped[i]:
            continue
        for j in tree.query_ball_point(pts[i], r=radius_px):
            if j != i:
                dropped[j] = True
    return [it for i, it in enumerate(items) if not dropped[i]]
