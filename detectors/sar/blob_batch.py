"""Centre refinement and shape of all of a tile's peaks at once, as tensor operations.

:func:`~detectors.sar.decode.peak_geometry` finds each peak's bright blob with a SciPy label and
NumPy moments, one peak at a time on the host. A tile has up to a few hundred peaks (the
sub-threshold evidence peaks of the ghost test go through it too). On a GPU the host
post-processing, not the network, took most of a tile's time, and this loop about a quarter of it
(``benchmarks/results/gpu_check_profile_sar_learned.txt``: ``blob_moments`` 0.18 s of the 0.78 s
of post-processing for five 4096 px tiles, 0.99 s in all).
:func:`peak_geometries` gives the same answers for every peak in a few batched operations on the
device the tile is on:

- the windows (:func:`~detectors.sar.decode.blob_window`, as in ``peak_geometry``) are gathered
  into square buckets of a power-of-two side, so one large ship does not make every small boat's
  window large;
- the seed is the brightest pixel within 2 px of the peak (first in row-major order, as
  ``np.argmax``), and the blob is its 8-connected component of the pixels >= median + 6 dB and
  >= seed - 12 dB, grown from the seed by repeated 3 x 3 max-pooling inside that mask until it
  stops changing (a flood fill: the component ``scipy.ndimage.label`` would give);
- the amplitude-weighted centroid and central second moments are summed on the device in
  float64; only a dozen numbers per peak come back to the host, where ``np.linalg.eigh`` of the
  2 x 2 covariances gives length, width and heading exactly as :func:`blob_moments` does;
- "a later peak on a blob already reported" is one gather: for every pair of peaks, whether the
  later one's seed lies in the earlier one's blob; the order-dependent bookkeeping (which blobs
  are reported) is then a loop over plain numbers.

Comparisons are made in float32 with float32 thresholds, as NumPy makes them on a float32 tile,
so the blobs are the same pixels; sums in another order can move a centroid by ~1e-6 px
(``tests/test_sar_blob_batch.py`` checks the two paths against each other).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from detectors.sar.decode import (BLOB_BELOW_PEAK_DB, BLOB_OVER_MEDIAN_DB, blob_is_the_box, blob_length,
                                  blob_window, box_geometry, same_object)

#: Smallest bucket side (pixels): the window of the smallest box is 15-16 px.
MIN_BUCKET_PX = 16
#: Flood-fill steps between two checks that the blobs stopped growing (each check waits for the device).
FILL_CHECK_EVERY = 8

#: (row, col, length_px, width_px, heading_deg) of one peak, working pixels; None: a second peak on
#: a blob already reported (see :func:`~detectors.sar.decode.peak_geometry`).
Geometry = tuple[float, float, float, float, float] | None


def _bucket(side: int) -> int:
    return max(MIN_BUCKET_PX, 1 << max(0, side - 1).bit_length())


def _blob_bucket(db: torch.Tensor, win: np.ndarray, median_db: float, side: int
                 ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Blobs of the windows ``win`` (K, 6 ints: r0, r1, c0, c1, pr, pc) in one square bucket.

    Returns ``stats`` (K, 13) float64 on the device: found, sum of weights, centroid row/col,
    central moments rr/rc/cc, row min/max, col min/max, seed row/col (window pixels); ``comp``
    (K, side, side) bool, the blobs; and ``origin`` (K, 2) long, each window's (r0, c0)."""
    dev = db.device
    hw, ww = db.shape
    w = torch.as_tensor(win, dtype=torch.long, device=dev)
    r0, r1, c0, c1, pr, pc = w.unbind(1)
    h, wd = r1 - r0, c1 - c0
    ar = torch.arange(side, device=dev)
    rows = (r0[:, None] + ar).clamp_(max=hw - 1)
    cols = (c0[:, None] + ar).clamp_(max=ww - 1)
    inside = (ar[None, :, None] < h[:, None, None]) & (ar[None, None, :] < wd[:, None, None])
    vals = db[rows[:, :, None], cols[:, None, :]]  # (K, side, side) float32
    neg = torch.tensor(-math.inf, dtype=vals.dtype, device=dev)
    vals = torch.where(inside, vals, neg)
    # The seed: the brightest pixel within 2 px of the rounded peak (clipped to the window).
    near = ((ar[None, :, None] - pr[:, None, None]).abs() <= 2) & ((ar[None, None, :] - pc[:, None, None]).abs() <= 2)
    k = torch.where(near & inside, vals, neg).flatten(1).argmax(1)
    sr, sc = k // side, k % side
    idx = torch.arange(len(win), device=dev)
    pk = vals[idx, sr, sc]
    # float32 thresholds compared with float32 pixels: what NumPy does with a Python float (NEP 50).
    over = torch.tensor(median_db + BLOB_OVER_MEDIAN_DB, dtype=torch.float64, device=dev)
    # blob_moments compares the peak itself as a Python float; no pixel near the peak: no blob
    found = (pk.double() >= over) & (near & inside).flatten(1).any(1)
    mask = (vals >= over.float()) & (vals >= (pk.double() - BLOB_BELOW_PEAK_DB).float()[:, None, None]) & inside
    mask &= found[:, None, None]
    comp = torch.zeros_like(mask)
    comp[idx, sr, sc] = mask[idx, sr, sc]
    while True:  # flood fill inside the mask, 8-connected
        before = comp
        for _ in range(FILL_CHECK_EVERY):
            comp = (F.max_pool2d(comp[:, None].to(vals.dtype), 3, 1, 1)[:, 0] > 0) & mask
        if torch.equal(comp, before):
            break
    found = comp.flatten(1).any(1)
    lin = torch.where(comp, torch.pow(10.0, vals / 10.0), torch.zeros((), dtype=vals.dtype, device=dev))
    top = lin.flatten(1).amax(1).clamp_(min=torch.finfo(vals.dtype).tiny)
    wts = torch.sqrt(lin / top[:, None, None]).double()  # amplitude weights, as blob_moments
    ws = wts.sum((1, 2))
    gr = ar.double()[None, :, None]
    gc = ar.double()[None, None, :]
    safe = torch.where(found, ws, torch.ones_like(ws))
    mr = (wts * gr).sum((1, 2)) / safe
    mc = (wts * gc).sum((1, 2)) / safe
    dr, dc = gr - mr[:, None, None], gc - mc[:, None, None]
    crr = (wts * dr * dr).sum((1, 2)) / safe
    crc = (wts * dr * dc).sum((1, 2)) / safe
    ccc = (wts * dc * dc).sum((1, 2)) / safe
    big = torch.tensor(side, dtype=torch.long, device=dev)
    rmin = torch.where(comp.any(2), ar[None], big).amin(1)
    rmax = torch.where(comp.any(2), ar[None], -1).amax(1)
    cmin = torch.where(comp.any(1), ar[None], big).amin(1)
    cmax = torch.where(comp.any(1), ar[None], -1).amax(1)
    stats = torch.stack([found.double(), ws, mr, mc, crr, crc, ccc, rmin.double(), rmax.double(),
                         cmin.double(), cmax.double(), sr.double(), sc.double()], 1)
    return stats, comp, torch.stack([r0, c0], 1)


def peak_geometries(db: torch.Tensor, median_db: float, boxes: Sequence[tuple[float, float, float, float]],
                    refine: bool) -> list[Geometry]:
    """:func:`~detectors.sar.decode.peak_geometry` for each (row, col, box h, box w) in order,
    with one list of reported blobs shared by all, as the per-peak loop would give.

    ``db``: the tile's working-grid dB as a float32 tensor on any device (-100 on invalid pixels)."""
    n = len(boxes)
    if n == 0:
        return []
    hw, ww = (int(s) for s in db.shape)
    wins = np.array([blob_window(r, c, bh, bw, hw, ww) for r, c, bh, bw in boxes], dtype=np.int64).reshape(n, 6)
    sides = np.maximum(wins[:, 1] - wins[:, 0], wins[:, 3] - wins[:, 2])
    usable = sides > 0
    stats = np.zeros((n, 13))
    seeds = torch.zeros((n, 2), dtype=torch.long, device=db.device)  # global (row, col) of each seed
    bucket_of = np.array([_bucket(int(s)) for s in sides])
    buckets = []
    for side in sorted(set(bucket_of[usable].tolist())):
        ids = np.flatnonzero(usable & (bucket_of == side))
        st, comp, origin = _blob_bucket(db, wins[ids], median_db, side)
        ids_t = torch.as_tensor(ids, device=db.device)
        seeds[ids_t] = st[:, 11:13].round().long() + origin
        stats[ids] = st.cpu().numpy()
        buckets.append((ids, ids_t, comp, origin))
    # member[i, j]: peak i's seed lies in peak j's blob (an n x n gather, for "already reported")
    member = torch.zeros((n, n), dtype=torch.bool, device=db.device)
    for ids, ids_t, comp, origin in buckets:
        side = comp.shape[-1]
        loc = seeds[None, :, :] - origin[:, None, :]  # (K, n, 2)
        ok = ((loc >= 0) & (loc < side)).all(2)
        loc = loc.clamp(0, side - 1)
        hit = comp[torch.arange(len(ids), device=db.device)[:, None], loc[..., 0], loc[..., 1]] & ok
        member[:, ids_t] = hit.T
    member_np = member.cpu().numpy()
    cov = np.stack([stats[:, 4], stats[:, 5], stats[:, 5], stats[:, 6]], 1).reshape(n, 2, 2)
    evals, evecs = np.linalg.eigh(cov)
    out: list[Geometry] = []
    taken: list[tuple[int, float]] = []  # reported blobs: peak index, box area
    for i, (row, col, bh, bw) in enumerate(boxes):
        r0, r1, c0, c1 = (int(v) for v in wins[i, :4])
        if not (usable[i] and stats[i, 0]):
            out.append(box_geometry(row, col, bh, bw))
            continue
        _, _, mr, mc, _, _, _, rmin, rmax, cmin, cmax, _, _ = stats[i]
        h, w = r1 - r0, c1 - c0
        if refine:
            br, bc = float(mr) + r0, float(mc) + c0
            touches = bool(rmin == 0 or cmin == 0 or rmax == h - 1 or cmax == w - 1)
            if blob_is_the_box(touches, (int(rmax - rmin + 1), int(cmax - cmin + 1)), (br, bc), row, col, bh, bw):
                if any(member_np[i, j] and same_object(bh, bw, a) for j, a in taken):
                    out.append(None)
                    continue
                taken.append((i, bh * bw))
                row, col = br, bc
        lam_min, lam_max = max(float(evals[i, 0]), 0.0), max(float(evals[i, 1]), 0.0)
        er, ec = float(evecs[i, 0, 1]), float(evecs[i, 1, 1])
        length_px = blob_length(math.sqrt(12.0 * lam_max + 1.0), bh, bw)
        out.append((row, col, length_px, math.sqrt(12.0 * lam_min + 1.0), math.degrees(math.atan2(ec, -er)) % 180.0))
    return out
