"""Windows over marked blocks, for the cascades that run a network only where a prescreen says.

Shared by the SAR cascade (:mod:`detectors.sar.cascade`) and ``fire-learned``: both mark blocks of
a tile, cut them into disjoint rectangles here, run their network on each rectangle grown by a
margin of context, and paste the rectangle's part back into a full-tile map.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

#: Marked blocks are cut into windows band by band, this many blocks tall (see :func:`windows_from_blocks`).
BAND = 4

Window = tuple[int, int, int, int]  #: (row0, row1, col0, col1) in pixels, end-exclusive


def _runs(flags: np.ndarray) -> list[tuple[int, int]]:
    """Start/end (exclusive) of each run of True in a 1-D bool array."""
    d = np.diff(np.concatenate([[0], flags.astype(np.int8), [0]]))
    return list(zip(np.nonzero(d == 1)[0].tolist(), np.nonzero(d == -1)[0].tolist()))


def windows_from_blocks(marked: np.ndarray, block: int, shape: tuple[int, int]) -> list[Window]:
    """bool (nb_rows, nb_cols) marked blocks of ``block`` px -> disjoint windows covering them (pixels,
    clipped to ``shape``).

    Why bands and not connected groups: a coastline or a fire front joins everything near it into
    one group whose bounding box is the whole tile. Instead each band of :data:`BAND` block rows is
    cut into its runs of marked columns (each run's rows trimmed to the marked ones), and runs of
    consecutive bands with the same columns are joined: the windows cover the marked blocks and
    little else, and none overlap."""
    h, w = shape
    boxes: list[list[int]] = []
    for b0 in range(0, marked.shape[0], BAND):
        band = marked[b0:b0 + BAND]
        for c0, c1 in _runs(band.any(axis=0)):
            rows = np.nonzero(band[:, c0:c1].any(axis=1))[0]
            r0, r1 = b0 + int(rows[0]), b0 + int(rows[-1]) + 1
            prev = next((bx for bx in boxes if bx[1] == r0 and bx[2] == c0 and bx[3] == c1), None)
            if prev is not None:
                prev[1] = r1
            else:
                boxes.append([r0, r1, c0, c1])
    return sorted((r0 * block, min(r1 * block, h), c0 * block, min(c1 * block, w)) for r0, r1, c0, c1 in boxes)


def paste_windows(out: Any, windows: list[Window], margin: int, compute: Callable[[int, int, int, int], Any]) -> Any:
    """Fill ``out`` (its last two axes the tile) window by window: each window grown by ``margin``
    (clipped to the tile) is ``compute(row0, row1, col0, col1)``-d, and the window's own part of
    that result is written into ``out``. Returns ``out``."""
    h, w = out.shape[-2:]
    for r0, r1, c0, c1 in windows:
        a0, a1, b0, b1 = max(0, r0 - margin), min(h, r1 + margin), max(0, c0 - margin), min(w, c1 + margin)
        out[..., r0:r1, c0:c1] = compute(a0, a1, b0, b1)[..., r0 - a0:r1 - a0, c0 - b0:c1 - b0]
    return out


def window_fraction(windows: list[Window], shape: tuple[int, int]) -> float:
    """Share of the tile's pixels inside the windows (for logs and benchmarks)."""
    area = sum((r1 - r0) * (c1 - c0) for r0, r1, c0, c1 in windows)
    return area / max(1, shape[0] * shape[1])
