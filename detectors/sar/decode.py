"""Decoding the learned SAR detector's heads: heatmap peaks, box NMS, blob shapes, centre refinement.

Turns :class:`~detectors.sar.network.SarCenterNet` outputs and the working-grid power into
peaks and hull geometry, in working pixels; :mod:`detectors.sar.learned` composes these into
detections. Pure array code: nothing here knows the detector's settings but what it is passed.

**Decoding**: local maxima of the heatmap (3x3), score >= the threshold stored with the
weights (chosen on *validation* seeds/images by the training script, never on the test
data), box non-maximum suppression, peaks on invalid pixels dropped.
**Centre refinement** (``refine_centres``, default on, chosen on the validation split): a
CenterNet peak on a long hull may sit anywhere along it, and a hull can raise two peaks. When
the bright blob around a peak (below) is seen whole inside a window twice the predicted box,
is at most 1.5x the predicted box and has its centroid inside it, the detection moves to the
blob's centroid, and a later peak on a blob already reported is dropped (unless its box is
under a quarter of the first one's: a small boat against a hull keeps its own detection).

**Shape**: length, width and heading come from the second moments of the bright blob
(pixels >= 6 dB over the tile median and within 12 dB of the blob's peak, connected to
the peak) around the predicted box: for a uniform rectangle the variance along its axis is
L^2 / 12. Heading is the hull axis, 0-180 deg clockwise from image up (bow and stern are
not told apart). ``kind`` is ``lifeboat`` when the length is <= ``LIFEBOAT_MAX_LENGTH_M``.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from detectors.sar.network import STRIDE

#: Blob used for the shape estimate: >= this many dB over the tile median ...
BLOB_OVER_MEDIAN_DB = 6.0
#: ... and within this many dB of the blob's brightest pixel.
BLOB_BELOW_PEAK_DB = 12.0
#: Heatmap peaks down to this score are decoded as *evidence* for the azimuth-ghost test (a faint
#: ghost that is never reported still confirms the displacement its brighter sibling shows) and
#: then dropped; only peaks at or above the score threshold are reported. The training script's
#: threshold sweep runs this whole post-processing at every threshold it tries (``finish`` in
#: :mod:`detectors.sar.learned`, which runs the ghost test). A decoding floor, so it lives here:
#: the fine pass's candidate floor (:mod:`detectors.sar.fine_pass`) is the same number.
GHOST_EVIDENCE_FLOOR = 0.1
#: Box IoU above which :func:`decode_peaks` keeps only the stronger peak.
NMS_IOU = 0.3
#: Two overlapping peaks are one object only if the heatmap between them stays above this share
#: of the weaker peak: one long hull raises a ridge, two moored neighbours (an anchorage, boats
#: rafted together) a valley of sea between them. Axis-aligned boxes of hulls lying diagonally
#: overlap even when the hulls do not, so box overlap alone merged neighbours. None: box NMS only.
#: Off by default: with the shipped 1.4.0 weights it changed nothing on validation (generated seeds
#: 930-969 with planted groups, SSDD val), because that network does not raise separate peaks on
#: group members in the first place; the 1.5.0 candidate trained on groups does (group recall 0.38
#: -> 0.88 on those seeds) but was not adopted (benchmarks/results/train_sar_1.5.0/). Pass
#: ``valley_ratio=0.5`` to :func:`decode_peaks` to use it with such weights.
VALLEY_RATIO: float | None = None
#: Most peaks decoded per tile (strongest first).
MAX_PEAKS = 200

#: A decoded peak: (score, row, col, box height, box width), working pixels.
Peak = tuple[float, float, float, float, float]
#: Blobs already reported by :func:`peak_geometry` in a tile: their pixels and box areas.
TakenBlobs = list[tuple[set[tuple[int, int]], float]]


def _valley_between(hm: np.ndarray, a: tuple[int, int], b: tuple[int, int]) -> float:
    """The lowest heatmap value on the straight line between heat cells ``a`` and ``b`` (nearest cells)."""
    n = int(max(abs(a[0] - b[0]), abs(a[1] - b[1]))) + 1
    if n <= 2:
        return float(min(hm[a], hm[b]))
    t = np.linspace(0.0, 1.0, n)
    rr = np.rint(a[0] + t * (b[0] - a[0])).astype(int)
    cc = np.rint(a[1] + t * (b[1] - a[1])).astype(int)
    return float(hm[rr, cc].min())


def values_at(grid: np.ndarray | torch.Tensor, at: list[tuple[int, int]]) -> np.ndarray:
    """``grid[r, c]`` for each (r, c) in ``at``, as a host array of the grid's dtype. A tensor is
    indexed where it is, so on a GPU only these values are copied, never the grid."""
    if isinstance(grid, torch.Tensor):
        rc = torch.tensor(at, dtype=torch.long, device=grid.device).reshape(-1, 2)
        return grid[rc[:, 0], rc[:, 1]].cpu().numpy()
    rc_np = np.asarray(at, dtype=np.intp).reshape(-1, 2)
    return grid[rc_np[:, 0], rc_np[:, 1]]


def decode_peaks(heat: torch.Tensor, reg: torch.Tensor, threshold: float,
                 valid_w: np.ndarray | torch.Tensor | None = None, valley_ratio: float | None = None) -> list[Peak]:
    """One image's heads -> [(score, row, col, h, w)] in working pixels, after box NMS.

    Peaks are 3x3 local maxima of the heatmap. Box NMS then keeps the stronger of two peaks
    whose boxes overlap (IoU > 0.3), or whose centre lies in the other's box while being at
    least a quarter of its size - the duplicate peaks a long hull can raise - but never lets a
    large box swallow a small one (a lifeboat beside a ship), nor merges two peaks with a valley
    between them on the heatmap (:data:`VALLEY_RATIO`: neighbours in a dense group).
    """
    valley_ratio = VALLEY_RATIO if valley_ratio is None else (float(valley_ratio) or None)
    hm = heat[0]
    pooled = F.max_pool2d(hm[None, None], 3, 1, 1)[0, 0]
    keep = (hm == pooled) & (hm >= threshold)
    idx = torch.nonzero(keep, as_tuple=False)
    if idx.numel() == 0:
        return []
    scores = hm[idx[:, 0], idx[:, 1]]
    order = torch.argsort(scores, descending=True)[:MAX_PEAKS]
    idx, scores = idx[order], scores[order]
    r = reg[:, idx[:, 0], idx[:, 1]].float().cpu().numpy()
    idx_np, sc_np = idx.cpu().numpy(), scores.float().cpu().numpy()
    cand: list[Peak] = []
    cells: list[tuple[int, int]] = []
    for k in range(idx_np.shape[0]):
        i, j = int(idx_np[k, 0]), int(idx_np[k, 1])
        row = (i + float(r[2, k])) * STRIDE + (STRIDE - 1) / 2
        col = (j + float(r[3, k])) * STRIDE + (STRIDE - 1) / 2
        bh = float(np.exp(np.clip(r[0, k], -1.0, 7.0)))
        bw = float(np.exp(np.clip(r[1, k], -1.0, 7.0)))
        cand.append((float(sc_np[k]), row, col, bh, bw))
        cells.append((i, j))
    if valid_w is not None:
        vh, vw = valid_w.shape
        at = [(int(round(min(max(c[1], 0), vh - 1))), int(round(min(max(c[2], 0), vw - 1)))) for c in cand]
        ok = values_at(valid_w, at)
        cand, cells = [c for c, o in zip(cand, ok) if o], [e for e, o in zip(cells, ok) if o]
    if not cand:
        return []
    # Greedy NMS in score order, the pairwise box tests computed at once (float64): with
    # hundreds of evidence peaks a Python double loop over pairs dominated the tile's time.
    a = np.asarray([c[1:] for c in cand], np.float64)  # (N, 4): row, col, h, w
    r, c_, h, w = a[:, 0], a[:, 1], a[:, 2], a[:, 3]
    ih = (np.minimum((r + h / 2)[:, None], (r + h / 2)[None, :])
          - np.maximum((r - h / 2)[:, None], (r - h / 2)[None, :]))
    iw = (np.minimum((c_ + w / 2)[:, None], (c_ + w / 2)[None, :])
          - np.maximum((c_ - w / 2)[:, None], (c_ - w / 2)[None, :]))
    area = h * w
    inter = ih * iw
    with np.errstate(divide="ignore", invalid="ignore"):
        iou = np.where((ih > 0) & (iw > 0), inter / (area[:, None] + area[None, :] - inter), 0.0)
    inside = ((np.abs(r[:, None] - r[None, :]) <= h[None, :] / 2) & (np.abs(c_[:, None] - c_[None, :]) <= w[None, :] / 2)
              & (area[:, None] >= 0.25 * area[None, :]))
    dup_of = (iou > NMS_IOU) | inside  # [i, j]: candidate i is a duplicate of kept j
    hm_np = hm.float().cpu().numpy() if valley_ratio is not None and bool(dup_of.any()) else None
    kept: list[int] = []
    for i in range(len(cand)):
        if kept and dup_of[i, kept].any():
            if hm_np is None:
                continue
            # A duplicate only of kept peaks joined to it by a ridge, not across a valley.
            if any(_valley_between(hm_np, cells[i], cells[j]) >= valley_ratio * cand[i][0]
                   for j in kept if dup_of[i, j]):
                continue
        kept.append(i)
    return [cand[i] for i in kept]


def decode_tile(heat: torch.Tensor, reg: torch.Tensor, valid: torch.Tensor | np.ndarray,
                threshold: float) -> list[Peak]:
    """:func:`decode_peaks` for one tile's padded heads, cropped to the working grid ``valid`` covers.
    ``valid`` may stay a tensor on the tile's device: only the flags at the peaks are copied."""
    hw, ww = valid.shape
    heat = heat[:, : (hw + STRIDE - 1) // STRIDE, : (ww + STRIDE - 1) // STRIDE]
    reg = reg[:, : heat.shape[1], : heat.shape[2]]
    return decode_peaks(heat, reg, threshold, valid)


def blob_moments(db: np.ndarray, peak_rc: tuple[int, int], median_db: float) -> dict[str, Any] | None:
    """The bright blob around ``peak_rc`` in a dB window: shape, centroid, extent and pixels.

    Pixels >= median + 6 dB and >= brightest - 12 dB, 8-connected to the brightest pixel near
    the peak; second moments give the axes (L = sqrt(12 var + 1) for a uniform rectangle of
    unit pixels). Heading: hull axis clockwise from image up, 0-180 deg. Returns ``length``,
    ``width``, ``heading`` (px, px, deg), ``centroid`` (amplitude-weighted, window px),
    ``extent`` (rows, cols spanned), ``touches_edge`` (the blob reaches the window border, so it
    may continue outside it), ``seed`` (the brightest pixel) and ``pixels`` (rr, cc); None if no blob.
    """
    from scipy import ndimage

    r0, c0 = peak_rc
    h, w = db.shape
    rs, re_ = max(0, r0 - 2), min(h, r0 + 3)
    cs, ce = max(0, c0 - 2), min(w, c0 + 3)
    near = db[rs:re_, cs:ce]
    if near.size == 0:
        return None
    k = int(np.argmax(near))
    pr, pc = rs + k // near.shape[1], cs + k % near.shape[1]
    pk = float(db[pr, pc])
    if pk < median_db + BLOB_OVER_MEDIAN_DB:
        return None
    mask = (db >= median_db + BLOB_OVER_MEDIAN_DB) & (db >= pk - BLOB_BELOW_PEAK_DB)
    lab, _ = ndimage.label(mask, structure=np.ones((3, 3), bool))
    comp = lab == lab[pr, pc]
    rr, cc = np.nonzero(comp)
    if rr.size == 0:
        return None
    wts = 10 ** (db[rr, cc] / 10.0)
    wts = np.sqrt(wts / wts.max())  # amplitude weights: bright points do not dominate the axes
    ws = wts.sum()
    mr, mc = (wts * rr).sum() / ws, (wts * cc).sum() / ws
    dr, dc = rr - mr, cc - mc
    cov = np.array([[(wts * dr * dr).sum(), (wts * dr * dc).sum()],
                    [(wts * dr * dc).sum(), (wts * dc * dc).sum()]]) / ws
    evals, evecs = np.linalg.eigh(cov)
    lam_min, lam_max = max(float(evals[0]), 0.0), max(float(evals[1]), 0.0)
    er, ec = float(evecs[0, 1]), float(evecs[1, 1])
    return {"length": math.sqrt(12.0 * lam_max + 1.0), "width": math.sqrt(12.0 * lam_min + 1.0),
            "heading": math.degrees(math.atan2(ec, -er)) % 180.0, "centroid": (float(mr), float(mc)),
            "extent": (int(rr.max() - rr.min() + 1), int(cc.max() - cc.min() + 1)),
            "touches_edge": bool(rr.min() == 0 or cc.min() == 0 or rr.max() == h - 1 or cc.max() == w - 1),
            "seed": (int(pr), int(pc)), "pixels": (rr, cc)}


def blob_shape(db: np.ndarray, peak_rc: tuple[int, int], median_db: float) -> tuple[float, float, float] | None:
    """(length_px, width_px, heading_deg) of the bright blob around ``peak_rc`` (see :func:`blob_moments`)."""
    b = blob_moments(db, peak_rc, median_db)
    return None if b is None else (b["length"], b["width"], b["heading"])


def blob_window(row: float, col: float, bh: float, bw: float, hw: int, ww: int) -> tuple[int, int, int, int, int, int]:
    """(r0, r1, c0, c1, pr, pc): the window a peak's blob is looked for in, on an ``hw`` x ``ww``
    grid, and the rounded peak inside it. Twice the predicted box, so a hull whose peak fell near
    one end is still seen whole; at least 7 px around small boxes."""
    r0 = int(max(0, math.floor(row - bh / 2 - max(bh / 2, 4.0) - 3)))
    r1 = int(min(hw, math.ceil(row + bh / 2 + max(bh / 2, 4.0) + 4)))
    c0 = int(max(0, math.floor(col - bw / 2 - max(bw / 2, 4.0) - 3)))
    c1 = int(min(ww, math.ceil(col + bw / 2 + max(bw / 2, 4.0) + 4)))
    pr = int(min(max(round(row), 0), hw - 1)) - r0
    pc = int(min(max(round(col), 0), ww - 1)) - c0
    return r0, r1, c0, c1, pr, pc


def blob_is_the_box(touches_edge: bool, extent: tuple[int, int], centroid: tuple[float, float],
                    row: float, col: float, bh: float, bw: float) -> bool:
    """Whether a peak's blob is the object the network boxed - seen whole, about the predicted
    size, its centroid in the predicted box - so its centroid may replace the peak (centre
    refinement). Shared by :func:`peak_geometry` and its batched twin (``blob_batch``)."""
    eh, ew = extent
    return (not touches_edge and eh <= 1.5 * bh + 4 and ew <= 1.5 * bw + 4
            and abs(centroid[0] - row) <= bh / 2 + 1 and abs(centroid[1] - col) <= bw / 2 + 1)


def same_object(bh: float, bw: float, reported_area: float) -> bool:
    """A peak whose seed lies in a reported blob is that object again - unless its box is much
    smaller (a lifeboat moored against a hull keeps its own detection)."""
    return bh * bw >= 0.25 * reported_area


def blob_length(length_px: float, bh: float, bw: float) -> float:
    """The blob's length, capped by the predicted box (a blob merged with its surroundings)."""
    return min(length_px, math.hypot(bh, bw) * 1.2 + 2)


def box_geometry(row: float, col: float, bh: float, bw: float) -> tuple[float, float, float, float, float]:
    """No bright blob (a faint target): the predicted box gives the shape."""
    return row, col, max(bh, bw), min(bh, bw), (0.0 if bh >= bw else 90.0)


def peak_geometry(db_all: np.ndarray, median_db: float, row: float, col: float, bh: float, bw: float,
                  taken: TakenBlobs, refine: bool) -> tuple[float, float, float, float, float] | None:
    """Centre and shape of one decoded peak: (row, col, length_px, width_px, heading_deg), working px.

    ``db_all``: the tile's working-grid dB (-100 on invalid pixels); ``refine``: move the centre
    to the blob's centroid (centre refinement, see the module docstring) and record the blob in
    ``taken``. None when the peak is a second one on a blob ``taken`` already holds. Why one
    function: the blob gives both the better centre and the shape, and is found once.
    """
    r0, r1, c0, c1, pr, pc = blob_window(row, col, bh, bw, *db_all.shape)
    blob = blob_moments(db_all[r0:r1, c0:c1], (pr, pc), median_db) if r1 > r0 and c1 > c0 else None
    if blob is not None and refine:
        # Centre refinement: a CenterNet peak on a long hull can sit anywhere along it; the
        # centroid of the hull's bright blob is the better centre - when the blob is the
        # object the network boxed (seen whole, about the predicted size, its centroid in
        # the predicted box). Otherwise (land, a merged cluster) the peak stands.
        br, bc = blob["centroid"]
        br, bc = br + r0, bc + c0
        if blob_is_the_box(blob["touches_edge"], blob["extent"], (br, bc), row, col, bh, bw):
            pix = set(zip((blob["pixels"][0] + r0).tolist(), (blob["pixels"][1] + c0).tolist()))
            seed = (blob["seed"][0] + r0, blob["seed"][1] + c0)
            if any(seed in p and same_object(bh, bw, a) for p, a in taken):
                return None
            taken.append((pix, bh * bw))
            row, col = br, bc
    if blob is None:
        return box_geometry(row, col, bh, bw)
    return row, col, blob_length(blob["length"], bh, bw), blob["width"], blob["heading"]
