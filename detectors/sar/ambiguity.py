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
   offset (metres along azimuth). Summed along azimuth column by column, defocus leaves a
   ghost's energy unchanged: the parent's column-energy profile must hold
   :data:`MIN_ENERGY_RATIO_DB` more energy than the candidate's (the AASR), else the candidate
   is brighter than a ghost of that parent can be.
2. An offset is *confirmed* when at least two different candidates have a possible parent at
   that offset (within :data:`OFFSET_TOL_M`) spanning the same columns: the two ghosts either
   side of one ship, or the ghosts of two ships. A candidate with more than
   :data:`MAX_VOTING_PARENTS` possible parents does not vote: in a bright streak a parent lies at
   almost any distance (on validation scenes such votes confirmed offsets that then dropped real
   lifeboats). Only the best-supported offset of a tile is
   kept (one collect, one displacement). A real boat that happens to share its range columns
   with a bright ship is kept, because the distance between them is arbitrary and does not
   repeat. The detector passes its sub-threshold heatmap peaks as candidates too: a faint ghost
   it will not report still confirms the offset of a brighter one.
3. Candidates with a possible parent at a confirmed offset are ghosts - and so is a lone
   ship-sized candidate (box >= :data:`SINGLE_MIN_LENGTH_M`) whose column-energy profile
   copies its parent's (correlation >= :data:`SINGLE_MIN_CORR`) and which is at least as
   extended along azimuth (:data:`SINGLE_MIN_SPREAD`; a smaller boat in line with a ship is
   shorter than it, a defocused ghost is not). A small candidate alone is never rejected: a
   lifeboat in a ship's columns looks like a ghost of one of its bright points.

All work is on the detector's 1 m working grid (rows = azimuth, as in every Capella GEO/SLC
product; a product with azimuth along columns must be transposed by its reader).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from detectors.errors import DetectorInputError

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
#: A ghost carries the parent's energy times the AASR (<= -18 dB for a spaceborne SAR). Summed
#: along azimuth, column by column, defocus does not change it: the parent's column-energy
#: profile must hold at least this much more energy than the candidate's. This keeps a real
#: boat that sits where a bright point's ghost would fall but is brighter than that ghost can be.
MIN_ENERGY_RATIO_DB = 15.0
#: A single candidate (no second one at the same offset) is a ghost only when it copies a large
#: parent: its box is at least this long (a ship's ghost; a lifeboat is never rejected alone) ...
SINGLE_MIN_LENGTH_M = 20.0
#: ... its column-energy profile correlates with the parent's at least this well (a ghost is
#: its parent smeared along azimuth only, so summed over azimuth the two profiles are the same
#: up to the AASR) ...
SINGLE_MIN_CORR = 0.8
#: ... and it is at least this fraction as extended along azimuth as the parent (defocus only
#: lengthens a ghost; a smaller boat in line with a big ship is shorter than it).
SINGLE_MIN_SPREAD = 0.8
#: Half-size of the profile windows (working pixels): at least this, or the candidate's box.
PROFILE_HALF_PX = 8
#: A candidate with more possible parents than this votes for no offset (step 2): it sits in a
#: bright streak (a coastline or urban block in its columns, a long sidelobe), where runs of bright
#: rows lie at almost every distance, so "a parent at the offset" is no evidence. One object gives
#: one parent; a ship's ghost near another bright target, two or three. It is still flagged when
#: others confirm an offset it matches.
MAX_VOTING_PARENTS = 3


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


def _span_iou(a: tuple[int, int], b: tuple[int, int]) -> float:
    """Overlap of two column spans over their union (0 when disjoint)."""
    inter = min(a[1], b[1]) - max(a[0], b[0]) + 1
    union = max(a[1], b[1]) - min(a[0], b[0]) + 1
    return max(0.0, inter / union)


def _column_energy(power: np.ndarray, r: int, half_rows: int, cols: tuple[int, int], sea: float) -> np.ndarray:
    """Power above the sea level summed over rows r +- half_rows, per column of ``cols`` (inclusive);
    rows outside the tile count as sea."""
    h = power.shape[0]
    win = power[max(0, r - half_rows): min(h, r + half_rows + 1), cols[0]: cols[1] + 1]
    return (win - sea).sum(axis=0) if win.size else np.zeros(cols[1] - cols[0] + 1)


def _row_spread(power: np.ndarray, r: int, half_rows: int, sea: float) -> float:
    """Energy-weighted standard deviation (rows) of the power above the sea around row r."""
    h = power.shape[0]
    a = max(0, r - half_rows)
    e = np.clip((power[a: min(h, r + half_rows + 1)] - sea).sum(axis=1), 0.0, None)
    if e.sum() <= 0:
        return 0.0
    y = np.arange(a, a + e.size, dtype=np.float64)
    mu = float((e * y).sum() / e.sum())
    return float(np.sqrt((e * (y - mu) ** 2).sum() / e.sum()))


#: :func:`sea_level` looks at a regular subsample of about this many pixels (every
#: ``size // SEA_SAMPLE``-th).
SEA_SAMPLE = 262_144


def _sea_sample(a: np.ndarray | torch.Tensor, step: int) -> np.ndarray:
    """Every ``step``-th value of ``a`` (row-major) as a host array: of a tensor on a GPU only
    the subsample is copied."""
    sub = a.reshape(-1)[::step]
    return sub.cpu().numpy() if isinstance(sub, torch.Tensor) else sub


def sea_level(db: np.ndarray | torch.Tensor, median_db: float, linear: np.ndarray | torch.Tensor | None = None
              ) -> float:
    """Mean linear power of the sea: the mean of valid pixels no brighter than the median + 10 dB
    (bright targets left out; for speckled sea the mean, not the median, is what sums add up).
    A regular subsample of large tiles is as good and much cheaper. ``db`` / ``linear`` may be
    tensors on the tile's device (the learned detector's device path): the same values come out."""
    step = max(1, int(db.numel() if isinstance(db, torch.Tensor) else db.size) // SEA_SAMPLE)
    d = _sea_sample(db, step)
    sel = (d > median_db - 60.0) & (d <= median_db + 10.0)
    if not sel.any():
        return float(10.0 ** (median_db / 10.0))
    lin = (10.0 ** (d[sel].astype(np.float64) / 10.0)) if linear is None else _sea_sample(linear, step)[sel]
    return float(np.mean(lin, dtype=np.float64))


@dataclass(frozen=True)
class Parent:
    """A possible parent of a candidate (see :func:`parents`)."""

    offset_m: float  #: signed offset along rows, candidate peak -> parent peak
    span_iou: float  #: IoU of the two peak column spans (:func:`_col_span`)
    length_m: float  #: the candidate's box length (2 x half_px x spacing)
    energy_ratio_db: float  #: parent / candidate column energy (inf when the candidate has none)
    corr: float  #: correlation of the two column-energy profiles
    spread_ratio: float  #: candidate / parent azimuth spread (energy-weighted row std)


def parents(db: np.ndarray, rc: tuple[float, float], median_db: float, spacing_m: float = 1.0,
            half_px: int = PROFILE_HALF_PX, sea: float | None = None, linear: np.ndarray | None = None
            ) -> tuple[list[Parent], float]:
    """The possible parents of one candidate with what the tests of :func:`ghost_flags` need, and
    the candidate's peak dB. ``half_px``: half-size of the profile windows (the candidate's box);
    ``sea``: :func:`sea_level` of the tile and ``linear``: the tile as linear power (both
    computed from ``db`` when not given; a caller with many candidates passes them once)."""
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
    sea = sea_level(db, median_db) if sea is None else sea
    mine = _col_span(db, pr, pc, SPAN_DROP_DB)
    half = max(PROFILE_HALF_PX, int(half_px))
    cols = (max(0, pc - half), min(w - 1, pc + half))
    band_db = db[:, cols[0]: cols[1] + 1]
    power = (10.0 ** (band_db.astype(np.float64) / 10.0) if linear is None
             else linear[:, cols[0]: cols[1] + 1].astype(np.float64))
    prof_c = _column_energy(power, pr, half, (0, cols[1] - cols[0]), sea)
    e_c = float(prof_c.sum())
    spread_c = _row_spread(power, pr, half + 8, sea)
    out: list[Parent] = []
    edges = np.flatnonzero(np.diff(np.concatenate([[0], ok.astype(np.int8), [0]])))
    for a, b in zip(edges[0::2], edges[1::2]):  # runs [a, b) of bright rows: one parent each
        j = a + int(np.argmax(band[a:b]))
        jc = b0 + int(np.argmax(sub[j]))
        iou = _span_iou(mine, _col_span(db, j, jc, SPAN_DROP_DB))
        prof_p = _column_energy(power, j, half, (0, cols[1] - cols[0]), sea)
        e_p = float(prof_p.sum())
        ratio = np.inf if e_c <= 0 else (10.0 * np.log10(e_p / e_c) if e_p > 0 else -np.inf)
        corr = float(np.corrcoef(prof_c, prof_p)[0, 1]) if prof_c.std() > 0 and prof_p.std() > 0 else 0.0
        spread_p = _row_spread(power, j, half + 8, sea)
        out.append(Parent(offset_m=float((j - pr) * spacing_m), span_iou=float(iou),
                          length_m=float(2 * half_px * spacing_m), energy_ratio_db=float(ratio), corr=corr,
                          spread_ratio=float(spread_c / spread_p) if spread_p > 0 else 0.0))
    return out, peak


#: How :func:`ghost_flags` finds the possible parents of candidates: (candidates, their half
#: sizes, the sea level) -> one :func:`parents` list per candidate.
FindParents = Callable[[Sequence[tuple[float, float]], Sequence[int], float], list[list[Parent]]]


def parent_offsets(db: np.ndarray, rc: tuple[float, float], median_db: float, spacing_m: float = 1.0
                   ) -> tuple[list[float], float]:
    """Offsets (metres, signed, along rows) of the possible parents of one candidate, and its peak dB.

    A possible parent is a run of rows in the candidate's column band that is bright enough
    (:data:`MIN_RATIO_DB`, :data:`PARENT_MIN_CONTRAST_DB`), far enough (:data:`MIN_SEPARATION_M`),
    spans the same range columns as the candidate (a ghost is a copy of its parent, smeared
    along azimuth only) and holds :data:`MIN_ENERGY_RATIO_DB` more energy; the offset is from
    the candidate's brightest pixel to the run's.
    """
    found, peak = parents(db, rc, median_db, spacing_m)
    return [p.offset_m for p in found if _offset_evidence(p)], peak


def _offset_evidence(p: Parent) -> bool:
    """A parent that can confirm an offset shared with another candidate (step 2)."""
    return p.span_iou >= SPAN_IOU and p.energy_ratio_db >= MIN_ENERGY_RATIO_DB  # same columns, AASR-faint


def _single_copy(p: Parent) -> bool:
    """A lone candidate that copies a large parent (module doc, step 3)."""
    return (p.energy_ratio_db >= MIN_ENERGY_RATIO_DB and p.length_m >= SINGLE_MIN_LENGTH_M
            and p.corr >= SINGLE_MIN_CORR and p.spread_ratio >= SINGLE_MIN_SPREAD)


def ghost_flags(db: np.ndarray | None, candidates: Sequence[tuple[float, float]], median_db: float,
                spacing_m: float = 1.0, half_sizes: Sequence[float] | None = None,
                linear: np.ndarray | None = None, n_report: int | None = None,
                find: FindParents | None = None, sea: float | None = None) -> tuple[list[bool], list[float]]:
    """Which candidates are azimuth ghosts, and the confirmed offsets (metres; see the module doc).

    ``db``: the tile in dB (invalid pixels very low), rows along azimuth; ``candidates``:
    (row, col) in ``db`` pixels of ``spacing_m`` metres; ``half_sizes``: half the longer side of
    each candidate's box in those pixels (sets its profile window; default
    :data:`PROFILE_HALF_PX`); ``linear``: the same tile as linear power, if the caller has it;
    ``n_report``: only the first ``n_report`` candidates will be reported, the rest are evidence
    (step 2) - when none of the first has a possible parent, the rest cannot change their flags
    and are not examined (flagged False); ``find``: (candidates, half sizes, sea level) -> each
    one's :func:`parents` (default: :func:`parents` one by one; the learned detector passes the
    batched :func:`~detectors.sar.ambiguity_batch.parents_batch` on a GPU); ``sea``: the tile's
    :func:`sea_level` when the caller has it. With both ``find`` and ``sea`` given, ``db`` is not
    read and may be None (the tile then need not leave the GPU).
    """
    if db is None and (find is None or sea is None):
        raise DetectorInputError("ghost_flags needs the dB tile unless both find and sea are given")
    if not candidates:
        return [], []
    sea = sea_level(db, median_db, linear) if sea is None else float(sea)
    halves = [PROFILE_HALF_PX] * len(candidates) if half_sizes is None else [int(math.ceil(x)) for x in half_sizes]
    n = len(candidates) if n_report is None else max(0, min(int(n_report), len(candidates)))
    if find is None:
        def find(cands: Sequence[tuple[float, float]], hps: Sequence[int], sea: float) -> list[list[Parent]]:
            return [parents(db, rc, median_db, spacing_m, hp, sea, linear)[0] for rc, hp in zip(cands, hps)]
    found = find(candidates[:n], halves[:n], sea)
    if any(_offset_evidence(p) for lst in found for p in lst):
        found += find(candidates[n:], halves[n:], sea) if n < len(candidates) else []
    else:
        found += [[] for _ in candidates[n:]]
    offs = [[p.offset_m for p in lst if _offset_evidence(p)] for lst in found]
    # Offsets are measured in whole pixels: on a coarse grid (10 m) the tolerance is one pixel.
    tol = max(OFFSET_TOL_M, float(spacing_m))
    votes = [o if len(o) <= MAX_VOTING_PARENTS else [] for o in offs]  # streaks vote for nothing
    # One collect has one ambiguity displacement (the first order; higher orders are far
    # fainter): keep the best-supported offset only, so two coincidences cannot add a second.
    best: tuple[int, float] | None = None
    for m in sorted({round(abs(o), 1) for lst in votes for o in lst}):
        support = sum(any(abs(abs(o) - m) <= tol for o in lst) for lst in votes)
        if support >= MIN_SUPPORT and (best is None or support > best[0]):
            near = [abs(o) for lst in votes for o in lst if abs(abs(o) - m) <= tol]
            best = (support, float(np.median(near)))
    confirmed = [] if best is None else [best[1]]
    flags = [any(abs(abs(o) - c) <= tol for o in lst for c in confirmed) or any(map(_single_copy, ps))
             for lst, ps in zip(offs, found)]
    if confirmed:
        log.debug("azimuth ambiguity offsets %s m: %d ghost(s)", [round(c, 1) for c in confirmed], sum(flags))
    return flags, confirmed
