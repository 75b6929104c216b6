"""The learned SAR detector's fine confirmation pass: small sub-threshold candidates looked at again.

**Fine confirmation pass** (``fine_threshold``, default :data:`FINE_THRESHOLD` = 0.5, for
inputs at <= :data:`FINE_MAX_INPUT_SPACING_M`): on the 1 m grid a 4-7 m lifeboat is a few
pixels and the network scores many just under its threshold. Each sub-threshold peak
(>= 0.1) with a box <= :data:`FINE_MAX_BOX_M` is looked at again by the same network on the
0.5 m grid (told it is 1 m, so the boat looks twice its size) in a 192 px window on the
network's 16-px lattice, and reported with that score when it reaches the threshold. Windows
only, batched: a few per tile, not a second full-resolution pass.

Why it works: the misses seen on validation scenes score heat 0.04-0.36 on the 1 m grid, beside
sub-threshold speckle and clutter peaks no simple feature tells apart; on the native grid the
same boat looks twice as long - the size at which the network is surest - while clutter peaks
do not grow into boats. :mod:`detectors.sar.learned` decides when the pass runs and reports what
it confirms; this module holds its grid, its windows and its candidate rule.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable

import torch
import torch.nn.functional as F

from detectors.sar.decode import GHOST_EVIDENCE_FLOOR, Peak
from detectors.sar.network import (PAD_MULTIPLE, STRIDE, WORKING_SPACING_M, normal_channels, normal_stats, pad_to_multiple,
                                   to_db, to_working_grid)

log = logging.getLogger(__name__)

#: Fine confirmation pass (see :func:`fine_window_scores`): the grid (metres per pixel)
#: a sub-threshold small candidate is looked at again on, told it is the 1 m working grid - a 4-7 m
#: boat, 4-7 working pixels, becomes an 8-14 px boat, the size the network is surest of.
FINE_SPACING_M = 0.5
#: The pass runs only when the input holds that detail: both pixel spacings <= this (metres);
#: coarser inputs would only be interpolated (Capella spot/sliding spotlight 0.35-0.5 m: on;
#: stripmap ~1 m and SSDD chips: off).
FINE_MAX_INPUT_SPACING_M = 0.625
#: Candidates: sub-threshold peaks >= FINE_CANDIDATE_FLOOR whose predicted box is at most this long
#: (metres) - the pass is for boats too small for the 1 m grid, not for ships.
#: (0.05 tried on validation seeds 900-919, 980-999, 1300-1399: one more lifeboat, one more false
#: alarm, 2.5x the windows.)
FINE_CANDIDATE_FLOOR = GHOST_EVIDENCE_FLOOR
FINE_MAX_BOX_M = 12.0
#: A candidate is reported when the fine-grid heatmap reaches this within FINE_RADIUS_M of it.
#: Chosen on validation seeds 900-919 and 980-999 (benchmarks/experiments/try_fine_pass.py); adopted by the
#: pre-written rules in benchmarks/results/sar_postprocess_4/CHOICE_RULE.txt (seeds 920-979:
#: lifeboat recall 0.943 -> 0.952, F1 0.9708 -> 0.9727; seeds 1400-1499: lifeboat 0.945 -> 0.953,
#: F1 0.9728 -> 0.9729).
FINE_THRESHOLD = 0.5
FINE_RADIUS_M = 3.0
#: Side of the fine-grid window around each candidate (fine pixels; a multiple of PAD_MULTIPLE).
FINE_WINDOW_PX = 192
#: The int8 screen of the fine pass (``sar-learned`` option ``fine_int8``, on a CPU with the
#: shipped weights): every window is first scored by the int8 network, and only those scoring at
#: least ``fine_threshold - FINE_INT8_MARGIN`` are scored again by the float32 network, whose score
#: decides (and is reported). Over the 932 fine windows of generated validation seeds 900-999 (1024 px,
#: 0.35 and 0.5 m) and the 77 SSDD validation chips declared at 0.5 m, the largest int8 - float32
#: difference of a window's score was 0.093, and the 48 windows reaching the threshold in float32
#: scored >= 0.477 in int8 (``benchmarks/experiments/try_fine_int8.py``,
#: ``benchmarks/results/fine_int8_check.json``): the margin is 2.7x the largest difference seen, and
#: every one of those 277 scenes gave the same detections with the screen and without it, 109 of
#: the 932 windows scored again in float32, the detector's time there 29 % less (24.3 vs 34.4 s).
FINE_INT8_MARGIN = 0.25

#: What the pass is given: candidate centres (working-grid row, col) -> their fine-grid scores.
FineScores = Callable[[list[tuple[float, float]]], list[float]]


class FineTile:
    """One tile on the fine grid, normalised as a whole but made only where a window is asked for.

    Why not the whole normalised tile: at 0.5 m input the fine grid is the input itself, four
    times the working grid, and a tile has a few to a few hundred candidates - normalising 16 Mpx
    (two float channels) for them cost more than the pass's windows. The tile's median and MAD come
    from its own subsample (:func:`~detectors.sar.network.normal_stats`), so every window holds
    exactly the values of the whole normalised, padded tile (``tests/test_sar_normalise.py``)."""

    def __init__(self, power: torch.Tensor, valid: torch.Tensor) -> None:
        self.power, self.valid = power, valid
        self.stats = normal_stats(power, valid)
        h, w = power.shape
        #: (channels, rows, cols) of the tile as :func:`pad_to_multiple` pads it for the network.
        self.padded_shape = (2, h + (-h) % PAD_MULTIPLE, w + (-w) % PAD_MULTIPLE)

    def window(self, r0: int, c0: int, h: int, w: int) -> torch.Tensor:
        """(2, h, w) of the padded, normalised tile from (r0, c0); zero (median sea) beyond the tile."""
        out = torch.zeros((2, h, w), dtype=torch.float32, device=self.power.device)
        r1, c1 = min(r0 + h, self.power.shape[0]), min(c0 + w, self.power.shape[1])
        if r1 > r0 and c1 > c0:
            normal_channels(to_db(self.power[r0:r1, c0:c1]), self.valid[r0:r1, c0:c1], self.stats,
                            out=out[:, : r1 - r0, : c1 - c0])
        return out

    def windows(self, origins: list[tuple[int, int]], h: int, w: int) -> torch.Tensor:
        """(N, 2, h, w): :meth:`window` at each origin, those inside the tile normalised together
        (one pass of each step over all of them instead of ~10 small ones per window: the same
        elementwise operations on the same values, ``tests/test_sar_normalise.py``)."""
        H, W = self.power.shape
        inside = [i for i, (r0, c0) in enumerate(origins) if r0 + h <= H and c0 + w <= W]
        normed = None
        if inside:
            cut = [origins[i] for i in inside]
            normed = normal_channels(to_db(torch.stack([self.power[r0:r0 + h, c0:c0 + w] for r0, c0 in cut])),
                                     torch.stack([self.valid[r0:r0 + h, c0:c0 + w] for r0, c0 in cut]), self.stats)
            if len(inside) == len(origins):
                return normed
        out = torch.empty((len(origins), 2, h, w), dtype=torch.float32, device=self.power.device)
        if normed is not None:
            out[inside] = normed
        for i in sorted(set(range(len(origins))) - set(inside)):  # across the tile's edge: one by one
            out[i] = self.window(*origins[i], h, w)
        return out

    def full(self) -> torch.Tensor:
        """The whole (2, H, W) normalised tile (unpadded)."""
        return self.window(0, 0, *self.power.shape)


def fine_grid(x: torch.Tensor, spacing: tuple[float, float], valid: torch.Tensor | None) -> list[FineTile]:
    """(B, H, W) cleaned input sigma0 -> per tile its :class:`FineTile` on the fine grid.

    Resampled to :data:`FINE_SPACING_M` but handed to the network as if it were the working grid,
    so a small boat appears twice its working-grid size."""
    k = FINE_SPACING_M / WORKING_SPACING_M
    power, ok = to_working_grid(x, (spacing[0] / k, spacing[1] / k), valid, target_m=WORKING_SPACING_M)
    return [FineTile(power[i], ok[i]) for i in range(power.shape[0])]


def fine_window_scores(heads: Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]],
                       fine_feats: FineTile | torch.Tensor, centres: list[tuple[float, float]]) -> list[float]:
    """The network's score for each candidate (working-grid row, col), looked at on the fine grid.

    ``heads``: the detector's network call (prepared input -> sigmoid heatmap, regression);
    ``fine_feats``: the tile on the fine grid (:func:`fine_grid`), or already normalised as a
    whole (2, H, W). Only candidates are looked at: one FINE_WINDOW_PX window each (one per
    distinct window), batched in one network call, so the pass costs a few small windows per tile
    instead of a second full-resolution pass (four times the 1 m pass).
    """
    if not centres:
        return []
    k = FINE_SPACING_M / WORKING_SPACING_M  # working px per fine px
    rad = int(math.ceil(FINE_RADIUS_M / (STRIDE * FINE_SPACING_M)))  # in fine heat cells
    if isinstance(fine_feats, FineTile):
        th, tw = fine_feats.padded_shape[-2:]
        cut = fine_feats.windows
    else:
        tile = pad_to_multiple(fine_feats[None])[0]  # as the whole tile would be padded
        th, tw = tile.shape[-2:]

        def cut(at: list[tuple[int, int]], h: int, w: int) -> torch.Tensor:
            return torch.stack([tile[:, r0: r0 + h, c0: c0 + w] for r0, c0 in at])
    wh, ww = min(FINE_WINDOW_PX, th), min(FINE_WINDOW_PX, tw)
    origins: dict[tuple[int, int], int] = {}  # window origin -> its index in the batch
    cells = []
    for row, col in centres:
        r = min(max(int(round((row + 0.5) / k - 0.5)), 0), th - 1)
        c = min(max(int(round((col + 0.5) / k - 0.5)), 0), tw - 1)
        # Windows start on the network's 16-pixel lattice and stay inside the tile, as the
        # whole tile's pass would see it: a strided network is not shift-invariant, and this
        # keeps a window's heatmap the whole tile's (tested to 1e-3; up to ~0.02 on busy scenes,
        # from bright targets beyond the window but inside the receptive field).
        r0 = min(max((r - wh // 2) // PAD_MULTIPLE * PAD_MULTIPLE, 0), th - wh)
        c0 = min(max((c - ww // 2) // PAD_MULTIPLE * PAD_MULTIPLE, 0), tw - ww)
        cells.append((origins.setdefault((r0, c0), len(origins)), (r - r0) // STRIDE, (c - c0) // STRIDE))
    heat = heads(cut(list(origins), wh, ww))[0][:, 0]
    near = torch.stack([F.pad(heat[n], (rad, rad, rad, rad))[i: i + 2 * rad + 1, j: j + 2 * rad + 1]
                        for n, i, j in cells])
    return near.amax(dim=(1, 2)).float().cpu().tolist()


def screened_scores(rough: FineScores, exact: FineScores, centres: list[tuple[float, float]],
                    floor: float) -> tuple[list[float], int]:
    """Fine scores with a cheap screen (:data:`FINE_INT8_MARGIN`): ``rough`` for every centre, then
    ``exact`` for those at or above ``floor``, whose exact score replaces the rough one. Returns the
    scores and how many centres were scored again. A centre's window and its score do not depend
    on which other centres share the batch (:func:`fine_window_scores`), so the exact scores are
    those the exact pass alone would give."""
    scores = list(rough(centres))
    again = [i for i, v in enumerate(scores) if v >= floor]
    if again:
        for i, v in zip(again, exact([centres[i] for i in again])):
            scores[i] = v
    return scores, len(again)


def confirm_small_candidates(evidence: list[Peak], fine: FineScores, threshold: float,
                             name: str) -> tuple[list[Peak], list[Peak]]:
    """Sub-threshold ``evidence`` peaks the fine grid confirms: (confirmed, evidence left).

    Candidates are the peaks >= :data:`FINE_CANDIDATE_FLOOR` with a box <= :data:`FINE_MAX_BOX_M`;
    those whose fine-grid score reaches ``threshold`` are confirmed with that score (in
    ``evidence`` order), the rest stay evidence. ``name``: the detector, for the log.
    """
    cand = [i for i, p in enumerate(evidence)
            if p[0] >= FINE_CANDIDATE_FLOOR and max(p[3], p[4]) * WORKING_SPACING_M <= FINE_MAX_BOX_M]
    scores = fine([(evidence[i][1], evidence[i][2]) for i in cand]) if cand else []
    up = {i: s for i, s in zip(cand, scores) if s >= threshold}
    if not up:
        return [], evidence
    log.debug("%s: fine pass confirmed %d of %d small candidates", name, len(up), len(cand))
    return ([(up[i],) + tuple(evidence[i][1:]) for i in sorted(up)],
            [p for i, p in enumerate(evidence) if i not in up])
