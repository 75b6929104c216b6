"""Azimuth-ambiguity ("ghost") rejection with the offset measured from the tile itself.

Why: a SAR processor folds energy from outside the main Doppler band back into the image as
fainter, defocused copies of bright targets, displaced along azimuth (image rows) by
``dx = lambda R PRF / (2 V)`` on both sides of the target (Curlander & McDonough 1991,
sec. 6.5). A ghost of a ship *looks like a ship* in any window a detector sees - the learned
detector's false alarms on validation scenes were mostly these - but it has two giveaways no
local window shows: a target at least ~15 dB brighter (the AASR of a spaceborne SAR is
-18..-25 dB; defocus lowers the ghost's peak further) in *the same range columns*, and a
displacement that is *the same for every ghost in the collect*.

The test uses only that physics, not the offset from metadata (the sidecar's PRF gives
``dx``, but in small frames the first ambiguity often falls outside the image while folded or
higher-order copies do not, and a test that trusts one number fails silently when it is off):

1. For each candidate (a detection), take its brightest pixel and the brightest pixel of each
   row in a 3-pixel column band through it. Rows at least :data:`MIN_SEPARATION_M` away that
   are local maxima, :data:`MIN_RATIO_DB` brighter than the candidate and
   :data:`PARENT_MIN_CONTRAST_DB` over the tile median are possible parents; each gives an
   offset (metres along azimuth).
2. An offset is *confirmed* when at least two different candidates have a possible parent at
   that offset (within :data:`OFFSET_TOL_M`): the two ghosts either side of one ship, or the
   ghosts of two ships. Only the best-supported offset of a tile is kept (one collect, one
   displacement). A real boat that happens to share its range columns with a bright ship is
   kept, because the distance between them is arbitrary and does not repeat.
3. Candidates with a possible parent at a confirmed offset are ghosts.

All work is on the detector's 1 m working grid (rows = azimuth, as in every Capella GEO/SLC
product; a product with azimuth along columns must be transposed by its reader).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np

log = logging.getLogger(__name__)

#: A parent must be at least this much brighter than its ghost (dB, peak to peak).
MIN_RATIO_DB = 15.0
#: ... and at least this much over the tile's median (a bright ship or corner reflector).
PARENT_MIN_CONTRAST_DB = 25.0
#: Ghost and parent are never closer than this (metres along azimuth): nearer bright things are
#: the target's own sidelobes or its neighbours (a lifeboat beside its ship).
MIN_SEPARATION_M = 40.0
#: Two ghosts confirm one offset when their parent offsets agree within this (metres).
OFFSET_TOL_M = 3.0
#: Half-width of the column band searched for a parent (working pixels, i.e. metres).
BAND_HALF_PX = 1
#: Candidates needed to confirm an offset.
MIN_SUPPORT = 2
#: Column extent of an object: columns within this many dB of its peak (rows peak +- 2).
SPAN_DROP_DB = 6.0
#: Ghost and parent column spans must overlap by at least this fraction of their union.
SPAN_IOU = 0.5


def _col_span(db: np.ndarray, r: int, c: int, drop_db: float, max_half: int = 200) -> tuple[int, int]:
    """Columns around (r, c) within ``drop_db`` of the peak on rows r-2..r+2 (a hull seen in range)."""
    h, w = db.shape
    prof = db[max(0, r - 2): min(h, r + 3), max(0, c - max_half): min(w, c + max_half + 1)].max(axis=0)
    off = max(0, c - max_half)
    k = c - off
    floor = float(prof[k]) - drop_db
    lo = k
    while lo > 0 and prof[lo - 1] >= floor:
        lo -= 1
    hi = k
    while hi < prof.size - 1 and prof[hi + 1] >= floor:
        hi += 1
    return lo + off, hi + off


def _same_columns(a: tuple[int, int], b: tuple[int, int]) -> bool:
    """A ghost covers the same range columns as its parent: spans overlap by half their union."""
    inter = min(a[1], b[1]) - max(a[0], b[0]) + 1
    union = max(a[1], b[1]) - min(a[0], b[0]) + 1
    return inter > 0 and inter >= SPAN_IOU * union


def parent_offsets(db: np.ndarray, rc: tuple[float, float], median_db: float, spacing_m: float = 1.0
                   ) -> tuple[list[float], float]:
    """Offsets (metres, signed, along rows) of the possible parents of one candidate, and its peak dB.

    A possible parent is a run of rows in the candidate's column band that is bright enough
    (:data:`MIN_RATIO_DB`, :data:`PARENT_MIN_CONTRAST_DB`), far enough (:data:`MIN_SEPARATION_M`)
    and spans the same range columns as the candidate (a ghost is a copy of its parent, smeared
    along azimuth only); the offset is from the candidate's brightest pixel to the run's.
    """
    h, w = db.shape
    r, c = int(min(max(round(rc[0]), 0), h - 1)), int(min(max(round(rc[1]), 0), w - 1))
    r0, r1, c0, c1 = max(0, r - 2), min(h, r + 3), max(0, c - 2), min(w, c + 3)
    win = db[r0:r1, c0:c1]
    k = int(np.argmax(win))
    pr, pc = r0 + k // win.shape[1], c0 + k % win.shape[1]
    peak = float(db[pr, pc])
    b0 = max(0, pc - BAND_HALF_PX)
    sub = db[:, b0: pc + BAND_HALF_PX + 1]
    band = sub.max(axis=1)
    need = max(peak + MIN_RATIO_DB, median_db + PARENT_MIN_CONTRAST_DB)
    rows = np.arange(h)
    ok = (np.abs(rows - pr) * spacing_m >= MIN_SEPARATION_M) & (band >= need)
    if not ok.any():
        return [], peak
    mine = _col_span(db, pr, pc, SPAN_DROP_DB)
    out: list[float] = []
    edges = np.flatnonzero(np.diff(np.concatenate([[0], ok.astype(np.int8), [0]])))
    for a, b in zip(edges[0::2], edges[1::2]):  # runs [a, b) of bright rows: one parent each
        j = a + int(np.argmax(band[a:b]))
        jc = b0 + int(np.argmax(sub[j]))
        if _same_columns(mine, _col_span(db, j, jc, SPAN_DROP_DB)):
            out.append(float((j - pr) * spacing_m))
    return out, peak


def ghost_flags(db: np.ndarray, candidates: Sequence[tuple[float, float]], median_db: float,
                spacing_m: float = 1.0) -> tuple[list[bool], list[float]]:
    """Which candidates are azimuth ghosts, and the confirmed offsets (metres; see the module doc).

    ``db``: the tile in dB (invalid pixels very low), rows along azimuth; ``candidates``:
    (row, col) in ``db`` pixels of ``spacing_m`` metres.
    """
    offs = [parent_offsets(db, rc, median_db, spacing_m)[0] for rc in candidates]
    # One collect has one ambiguity displacement (the first order; higher orders are far
    # fainter): keep the best-supported offset only, so two coincidences cannot add a second.
    best: tuple[int, float] | None = None
    for m in sorted({round(abs(o), 1) for lst in offs for o in lst}):
        support = sum(any(abs(abs(o) - m) <= OFFSET_TOL_M for o in lst) for lst in offs)
        if support >= MIN_SUPPORT and (best is None or support > best[0]):
            near = [abs(o) for lst in offs for o in lst if abs(abs(o) - m) <= OFFSET_TOL_M]
            best = (support, float(np.median(near)))
    confirmed = [] if best is None else [best[1]]
    flags = [any(abs(abs(o) - c) <= OFFSET_TOL_M for o in lst for c in confirmed) for lst in offs]
    if confirmed:
        log.debug("azimuth ambiguity offsets %s m: %d ghost(s)", [round(c, 1) for c in confirmed], sum(flags))
    return flags, confirmed
