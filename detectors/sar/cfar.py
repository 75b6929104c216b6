"""Classical CFAR ship and lifeboat detector for calibrated SAR intensity, in torch.

Why classical first: it needs no training data, every threshold has a stated meaning (a false
alarm probability, a size in metres, a level in dB), and it behaves predictably on imagery it
has never seen. The learned detector (``detectors.sar.learned``) is judged against it.

Algorithm (all windows in metres, converted with the tile's pixel spacing):

1. **Land** (when the caller gives no land mask): blocks of ``land_block_m`` (50 % overlap) whose
   ``land_quantile`` (25th percentile) of 10 log10(sigma0) is ``land_contrast_db`` above the
   darkest blocks of the tile (their 10th percentile, i.e. open sea). A ship cannot fill 75 % of
   a 100 m block (hull widths are L/5-L/8 <= 60 m), so ships are not mistaken for land; land at
   X band is -12..-8 dB against -28..-18 dB for the sea (Ulaby & Dobson 1989; XMOD2).
2. **Background**: a square ring between a guard window (half size ``guard_m``) and an outer
   window (``guard_m + background_m``); mean and variance of valid sea pixels in the ring from
   separable box sums over cumulative sums (cost independent of the window size). Two passes:
   pixels detected in the first pass are censored from the second pass's background (iterative
   censoring, An, Xie & Yuan 2014, IEEE TGRS 52(8), "An improved iterative censoring scheme for
   CFAR ship detection with SAR imagery"), so bright ships do not raise their neighbours'
   thresholds.
3. **Threshold**: Gamma-distributed clutter intensity with its shape estimated from the ring
   moments, a = mean^2 / var (the effective number of looks, Oliver & Quegan 1998, *Understanding
   Synthetic Aperture Radar Images*, ch. 4); a pixel is a hit when
   I > mean * Q^-1(a, pfa) / a, Q the regularised upper incomplete gamma function. This is exact
   for fully developed speckle and scale invariant (it works on any linear intensity, calibrated
   or not); for K-distributed (textured) sea the estimated a falls, which raises the threshold,
   but the K tail is still heavier than the moment-matched Gamma, so the realised pixel Pfa is
   above ``pfa`` - the object-level size rule removes those isolated hits (Crisp 2004, sec. 5).
   Two thresholds: ``pfa`` (detection) and ``pfa_extent`` (hysteresis: the object's extent).
4. **Objects**: 8-connected components of extent pixels that contain detection pixels, found on
   the device from the mask's horizontal runs (run-based labelling: each run is joined to the runs
   it touches in the row above, then union-find with pointer jumping), so the work grows with the
   number of runs, not of pixels; nearby fragments of one hull (gaps up to ``merge_m``) are merged.
5. **Measurements** per object: length, width and heading from the oriented extent along the
   principal axis of the pixel second moments (metres, so anisotropic pixels are handled),
   corrected for the impulse-response spread; peak/mean contrast in dB over the background.
6. **Discrimination** (``detectors.sar.discriminate``): size, sidelobe and azimuth-ambiguity
   rules on the small per-object table, shared with the NumPy/SciPy reference.

Only the per-object table (tens of numbers per object) leaves the device.

Precision and speed (the same code runs on a CPU and a GPU): full-resolution images are float32
and touched a few times each (log moments are reduced per background cell as soon as they are
formed); float64 starts on the cell grid (1/64 of the pixels at 0.5 m), where ring sums, variances
and thresholds are computed. A pixel test ln(I) > T is done as I > exp(T) on the float32 image with
the threshold rounded down to float32 (exact). The NumPy/SciPy reference computes in float64
throughout; the detections are the same (``tests/test_sar_cfar.py``), object scores agree to
~1e-7 (the background mean comes from float32 cell sums).
"""

from __future__ import annotations

import logging
import math
from dataclasses import asdict, dataclass, fields

import numpy as np
import torch
import torch.nn.functional as F

from detectors.errors import DetectorInputError
from detectors.registry import register
from detectors.sar.discriminate import Discrimination, discriminate
from detectors.types import Detection

log = logging.getLogger(__name__)

#: Gamma shapes of the threshold look-up table (log-spaced); shapes outside are clamped.
LUT_SHAPES = np.exp(np.linspace(math.log(0.25), math.log(64.0), 97))


@dataclass(frozen=True)
class CfarParams:
    """Every tunable of the detector, in physical units. Defaults are design values, not fits."""

    pfa: float = 1e-6  # per-pixel false-alarm probability of the detection threshold (Gamma model)
    pfa_extent: float = 1e-2  # lower threshold that delimits an object's extent (hysteresis)
    guard_m: float = 30.0  # half size of the guard window
    background_m: float = 60.0  # thickness of the background ring beyond the guard
    min_guard_px: int = 3
    min_ring_px: int = 4
    min_bg_fraction: float = 0.25  # of the in-frame ring that must be valid sea to test a pixel
    merge_m: float = 1.5  # fragments of one hull closer than this are one object
    max_vessel_m: float = 300.0  # largest vessel found whole (sets the tile overlap)
    resolution_m: tuple[float, float] | None = None  # IRF width (row, col); None: 1.2 x spacing
    resolution_factor: float = 1.2
    land_auto: bool = True
    land_block_m: float = 100.0
    land_quantile: float = 0.25
    land_contrast_db: float = 6.0
    sidelobe_reach_m: float = 100.0
    ambiguity_offset_m: float | None = None  # azimuth displacement from sidecar geometry, if known
    ambiguity_tol_m: float = 30.0
    min_area_m2: float = 3.0
    min_strong_px: int = 2
    max_length_m: float = 450.0
    thin_cells: float = 2.5
    sidelobe_db: float = 10.0
    ambiguity_db: float = 15.0
    min_contrast_db: float = 15.0
    min_cells: float = 3.0
    cell_m: float = 4.0  # background statistics are gathered per cell of this size (see module doc)
    # ... and per cell of at least this many pixels a side: at 1 px cells (inputs coarser than
    # 2.7 m) the float64 cell-grid work is done per pixel and a 10 m scene cost 20x a 1 m scene per
    # pixel; 2 px (20 m at 10 m, still under a third of the 60 m ring) costs a quarter of that.
    min_cell_px: int = 2
    target_m: float = 1.5  # target window (full size) of the detection statistic

    def rules(self) -> Discrimination:
        return Discrimination(min_area_m2=self.min_area_m2, min_strong_px=self.min_strong_px,
                              max_length_m=self.max_length_m, thin_cells=self.thin_cells,
                              sidelobe_db=self.sidelobe_db, ambiguity_db=self.ambiguity_db,
                              min_contrast_db=self.min_contrast_db, min_cells=self.min_cells)


@dataclass(frozen=True)
class Windows:
    """Window half sizes in pixels (row, col) for one pixel spacing."""

    guard: tuple[int, int]
    outer: tuple[int, int]
    merge: tuple[int, int]
    land_block: tuple[int, int]
    reach: tuple[int, int]
    resolution_m: tuple[float, float]
    cell: tuple[int, int] = (1, 1)  # background cell size (px)
    guard_cells: tuple[int, int] = (1, 1)  # guard half size in cells (excluded around a pixel's cell)
    outer_cells: tuple[int, int] = (2, 2)  # outer half size in cells
    target: tuple[int, int] = (0, 0)  # target window half size (px)


def windows_for(p: CfarParams, spacing_m: tuple[float, float]) -> Windows:
    """Convert the metre windows of ``p`` to pixels for ``spacing_m`` (row, col)."""
    dr, dc = spacing_m
    g = tuple(max(p.min_guard_px, int(math.ceil(p.guard_m / s))) for s in (dr, dc))
    o = tuple(gi + max(p.min_ring_px, int(math.ceil(p.background_m / s))) for gi, s in zip(g, (dr, dc)))
    m = tuple(max(1, int(round(p.merge_m / s))) for s in (dr, dc))
    # Land blocks of at least 32 px: below that every pixel is sorted ~4 times (no subsampling, 50 %
    # overlap), which made land finding at 10 m cost 40x per pixel what it costs at 1 m.
    lb = tuple(max(32, int(round(p.land_block_m / s))) for s in (dr, dc))
    reach = tuple(max(4, int(round(p.sidelobe_reach_m / s))) for s in (dr, dc))
    res = p.resolution_m if p.resolution_m is not None else (p.resolution_factor * dr, p.resolution_factor * dc)
    cell = tuple(max(int(p.min_cell_px), int(round(p.cell_m / s))) for s in (dr, dc))
    # Every pixel of a cell keeps >= guard px to the ring: gc cells minus its offset in the cell.
    gc = tuple(-(-(gi + ci - 1) // ci) for gi, ci in zip(g, cell))
    oc = tuple(gci + max(1, -(-(oi - gi) // ci)) for gci, oi, gi, ci in zip(gc, o, g, cell))
    tw = tuple(max(0, int((p.target_m / s - 1.0) / 2.0 + 0.5)) for s in (dr, dc))  # (2t+1) px ~ target_m
    return Windows(g, o, m, lb, reach, (float(res[0]), float(res[1])), cell, gc, oc, tw)  # type: ignore[arg-type]


def gamma_threshold_lut(pfa: float, shapes: np.ndarray = LUT_SHAPES) -> np.ndarray:
    """Threshold factor t(a) with P(I > t mean) = pfa for Gamma(a) intensity: Q^-1(a, pfa)/a.

    Solved by bisection on torch.special.gammaincc in float64 (no SciPy on the detector side);
    the reference checks it against scipy.special.gammainccinv.
    """
    a = torch.tensor(shapes, dtype=torch.float64)
    lo = torch.zeros_like(a)
    hi = torch.full_like(a, 1.0)
    while bool((torch.special.gammaincc(a, hi) > pfa).any()):
        hi = torch.where(torch.special.gammaincc(a, hi) > pfa, hi * 2.0, hi)
    for _ in range(80):
        mid = 0.5 * (lo + hi)
        above = torch.special.gammaincc(a, mid) > pfa
        lo = torch.where(above, mid, lo)
        hi = torch.where(above, hi, mid)
    return (0.5 * (lo + hi) / a).numpy()


# ---------------------------------------------------------------------------------------- maths
def cell_sums(t: torch.Tensor, cell: tuple[int, int]) -> torch.Tensor:
    """Sums over non-overlapping cells: (..., H, W) with H, W multiples of the cell -> (..., Hc, Wc).

    Down the cell's rows first (an elementwise add of whole image rows, vectorised), then along
    the 8x smaller result's columns: several times faster on a CPU than one reduction over two
    strided dimensions. Boolean masks are counted in uint8 (a column of a cell holds <= 255).
    """
    *lead, H, W = t.shape
    cr, cc = cell
    if t.dtype == torch.bool:
        if cr <= 255 and t.is_contiguous():
            t = t.view(torch.uint8).reshape(*lead, H // cr, cr, W).sum(-2, dtype=torch.uint8)
        else:
            t = t.reshape(*lead, H // cr, cr, W).sum(-2)
        return t.reshape(*lead, H // cr, W // cc, cc).sum(-1)
    if cr > 1:
        t = t.reshape(*lead, H // cr, cr, W).sum(-2)
    if cc > 1:
        t = t.reshape(*lead, H // cr, W // cc, cc).sum(-1)
    return t


def all_true(m: torch.Tensor) -> bool:
    """``bool(m.all())`` for a bool tensor; through a uint8 view (vectorised: ~20x faster on CPU).
    Shared with the learned detector's pre-processing (:mod:`detectors.sar.network`)."""
    if m.dtype == torch.bool and m.is_contiguous() and m.numel():
        return bool(m.view(torch.uint8).min())
    return bool(m.all())


def frame_counts(H0: int, W0: int, cell: tuple[int, int], device: torch.device) -> torch.Tensor:
    """In-frame pixels of each cell of the cell-padded tile (the last cell row/column may be partial)."""
    cr, cc = cell
    rows = (H0 - torch.arange(-(-H0 // cr), device=device, dtype=torch.float64) * cr).clamp(max=cr)
    cols = (W0 - torch.arange(-(-W0 // cc), device=device, dtype=torch.float64) * cc).clamp(max=cc)
    return rows[:, None] * cols[None, :]


def ring_sums(s: torch.Tensor, w: "Windows") -> torch.Tensor:
    """Sums over the background ring of every cell (outer window minus guard window, both clipped
    to the frame) of a cell grid (..., Hc, Wc), float64: one 2-D integral image, then the two
    windows by gathering its rows and columns at clamped offsets."""
    Hc, Wc = s.shape[-2:]
    P = F.pad(s, (1, 0, 1, 0)).cumsum(-2).cumsum(-1)  # P[i, j] = sum of s[:i, :j]

    def edge_pad(t: torch.Tensor, dim: int, n: int) -> torch.Tensor:
        """``t`` with its first and last slice along ``dim`` repeated ``n`` times each (clamped offsets)."""
        first, last = t.narrow(dim, 0, 1), t.narrow(dim, t.shape[dim] - 1, 1)
        reps = [1] * t.dim()
        reps[dim] = n
        return torch.cat([first.repeat(reps), t, last.repeat(reps)], dim=dim) if n else t

    def box(hr: int, hc: int) -> torch.Tensor:
        # P[min(i + h + 1, n)] - P[max(i - h, 0)] as two slices of the edge-padded P (Q[k] =
        # P[clamp(k - h, 0, n)]): the same float64 differences as gathering at clamped indices,
        # without the gathers (at 1 px cells - 10 m input - they were ~40 % of the CFAR's time).
        q = edge_pad(P, -2, hr)
        a = q.narrow(-2, 2 * hr + 1, Hc) - q.narrow(-2, 0, Hc)
        q = edge_pad(a, -1, hc)
        return q.narrow(-1, 2 * hc + 1, Wc) - q.narrow(-1, 0, Wc)

    return box(*w.outer_cells) - box(*w.guard_cells)


def ring_moments(r: torch.Tensor, f_ring: torch.Tensor
                 ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Mean and variance of a log image over each cell's ring from its ring sums ``r`` (count, sum,
    sum of squares), and the fraction of the ring's in-frame pixels (``f_ring``) that were usable."""
    n = r[0]
    nn = n.clamp(min=1.0)
    mean = r[1] / nn
    var = (r[2] / nn - mean * mean).clamp_(min=0.0)
    return mean, var, n / f_ring.clamp(min=1.0)


def exceeds(img: torch.Tensor, thr: torch.Tensor, cell: tuple[int, int]) -> torch.Tensor:
    """img (B, H, W) > the threshold of each pixel's cell, thr (B, Hc, Wc).

    The threshold is widened along columns only (B, Hc, W: 1/cr of the image), so the comparison
    broadcasts over the cell's rows with whole image rows as its contiguous inner loop."""
    B, H, W = img.shape
    cr, cc = cell
    t = thr.repeat_interleave(cc, dim=-1) if cc > 1 else thr
    return (img.view(B, H // cr, cr, W) > t[:, :, None, :]).view(B, H, W)


def floor_f32(t: torch.Tensor) -> torch.Tensor:
    """Largest float32 <= t (a float64 tensor): for any float32 y, ``y > t`` iff ``y > floor_f32(t)``.

    So a float32 image is compared with a float64 threshold exactly, without widening the image.
    """
    f = t.float()
    return torch.where(f.double() > t, torch.nextafter(f, torch.full_like(f, -math.inf)), f)


def target_mean(x: torch.Tensor, m: torch.Tensor, t: tuple[int, int]) -> torch.Tensor:
    """Mean of x over the valid pixels (mask m) of the (2 t + 1)^2 target window, float32 (B, H, W).

    float32 is enough here: the value is only compared with a threshold (ratio steps of ~1e-7,
    far below the spread of any pixel near a threshold) and summarised in the log moments.
    """
    if t == (0, 0):
        return x
    if all_true(m):  # all sea: the count is separable (rows in frame x columns in frame)
        B, H, W = x.shape
        num = _box_small(_box_small(x, t[0], -2), t[1], -1)
        rc = _box_small(torch.ones(H, dtype=x.dtype, device=x.device), t[0], 0)
        cc = _box_small(torch.ones(W, dtype=x.dtype, device=x.device), t[1], 0)
        return num.div_(rc[:, None] * cc[None, :])
    num = _box_small(_box_small(torch.where(m, x, 0.0), t[0], -2),
                     t[1], -1)
    # counts are small integers: uint8 arithmetic (exact) moves a quarter of the bytes
    small = (2 * t[0] + 1) * (2 * t[1] + 1) <= 255
    den = _box_small(_box_small(m.to(torch.uint8 if small else torch.int32), t[0], -2), t[1], -1)
    return num.div_(den.clamp_(min=1))  # den 0: no sea in the window, num is 0 too


def _box_small(x: torch.Tensor, h: int, dim: int) -> torch.Tensor:
    """Window sum of half size h along dim by shifted adds (zero outside the frame); small h.

    The first add writes straight into the output (x[i-1] + x[i]), so no copy of x is made."""
    n = x.shape[dim]
    h = min(h, n - 1)
    if h <= 0:
        return x.clone()
    out = torch.empty_like(x)
    torch.add(x.narrow(dim, 0, n - 1), x.narrow(dim, 1, n - 1), out=out.narrow(dim, 1, n - 1))
    out.narrow(dim, 0, 1).copy_(x.narrow(dim, 0, 1))
    out.narrow(dim, 0, n - 1).add_(x.narrow(dim, 1, n - 1))
    for d in range(2, h + 1):
        out.narrow(dim, d, n - d).add_(x.narrow(dim, 0, n - d))
        out.narrow(dim, 0, n - d).add_(x.narrow(dim, d, n - d))
    return out


def molc_luts(pfa: float, shapes: np.ndarray = LUT_SHAPES) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Tables over the Gamma shape a: ln-variance psi'(a), ln(mean) - E[ln I] and ln(threshold) - E[ln I].

    Method of log-cumulants (Nicolas 2002, "Introduction to second kind statistics", Traitement
    du Signal 19(3)): for Gamma(a, mean mu) intensity, E[ln I] = ln mu + psi(a) - ln a and
    Var[ln I] = psi'(a). So the ring's log-variance gives a, and the Pfa threshold mu t(a) is
    exp(E[ln I] + ln a - psi(a) + ln t(a)).
    """
    a = torch.tensor(shapes, dtype=torch.float64)
    v = torch.special.polygamma(1, a).numpy()
    c = (torch.log(a) - torch.special.digamma(a)).numpy()
    h = c + np.log(gamma_threshold_lut(pfa, shapes))
    return v, c, h


class ShapeLut:
    """Linear interpolation in ln(variance) over the shape grid, tables prepared once per detector;
    ``at(var)`` finds the brackets and weights once for every table looked up at that variance."""

    def __init__(self, v_tab: torch.Tensor) -> None:
        self.lt = torch.log(v_tab).flip(0).contiguous()  # increasing
        self.dl = self.lt[1:] - self.lt[:-1]

    def at(self, v: torch.Tensor):  # -> Callable[[torch.Tensor], torch.Tensor]
        lv = torch.log(v.clamp(min=1e-12))
        n = self.lt.numel()
        i = (torch.searchsorted(self.lt, lv.contiguous()) - 1).clamp_(0, n - 2)
        f = ((lv - self.lt[i]) / self.dl[i]).clamp_(0.0, 1.0)
        g = 1.0 - f

        def interp(y_tab: torch.Tensor) -> torch.Tensor:
            yt = y_tab.flip(0)
            return yt[i] * g + yt[i + 1] * f

        return interp


def auto_land(x: torch.Tensor, valid: torch.Tensor, p: CfarParams, w: Windows) -> torch.Tensor:
    """Bright textured land: overlapping blocks whose low quantile is far above the open sea."""
    B, H, W = x.shape
    k = tuple(max(1, b // 16) for b in w.land_block)  # ~16 x 16 samples per block
    st = tuple(max(1, (b // ki) // 2) for b, ki in zip(w.land_block, k))
    bs = (2 * st[0], 2 * st[1])
    xs, vs = x[:, ::k[0], ::k[1]], valid[:, ::k[0], ::k[1]]  # subsample first: same values, 1/k^2 the work
    z = torch.where(vs & (xs > 0), 10.0 * torch.log10(xs.clamp(min=1e-30)), torch.full_like(xs, float("inf")))
    hs, ws = z.shape[-2:]
    nbr = max(1, math.ceil((hs - bs[0]) / st[0]) + 1)
    nbc = max(1, math.ceil((ws - bs[1]) / st[1]) + 1)
    z = F.pad(z, (0, (nbc - 1) * st[1] + bs[1] - ws, 0, (nbr - 1) * st[0] + bs[0] - hs), value=float("inf"))
    blocks = z.unfold(1, bs[0], st[0]).unfold(2, bs[1], st[1]).reshape(B, nbr, nbc, -1)
    srt, _ = blocks.sort(dim=-1)
    nv = torch.isfinite(srt).sum(-1)
    qi = (p.land_quantile * (nv - 1).clamp(min=0).double()).floor().long()
    q = srt.gather(-1, qi.unsqueeze(-1)).squeeze(-1)
    known = nv >= (bs[0] * bs[1]) // 2
    q = torch.where(known, q, torch.full_like(q, float("nan")))
    land = torch.zeros(B, H, W, dtype=torch.bool, device=x.device)
    for b in range(B):
        qb = q[b]
        if not bool(torch.isfinite(qb).any()):
            continue
        ref = torch.nanquantile(qb.double().flatten(), 0.1)
        lb = (qb > ref + p.land_contrast_db).float()  # NaN compares False
        cell = F.max_pool2d(lb[None, None], kernel_size=2, stride=1, padding=1)[0, 0] > 0
        cell = cell[: nbr + 1, : nbc + 1]
        px = cell.repeat_interleave(st[0] * k[0], 0).repeat_interleave(st[1] * k[1], 1)
        px = F.pad(px, (0, max(0, W - px.shape[1]), 0, max(0, H - px.shape[0])))
        land[b] = px[:H, :W]
    return land


def _shift_or(m: torch.Tensor, h: int, dim: int) -> torch.Tensor:
    out = m.clone()
    n = m.shape[dim]
    for d in range(1, min(h, n - 1) + 1):
        out.narrow(dim, d, n - d).logical_or_(m.narrow(dim, 0, n - d))
        out.narrow(dim, 0, n - d).logical_or_(m.narrow(dim, d, n - d))
    return out


def dilate(mask: torch.Tensor, hr: int, hc: int) -> torch.Tensor:
    """Binary dilation of (B, H, W) with a (2 hr + 1) x (2 hc + 1) square: separable shifted ORs
    (small windows only: the merge gap, a few pixels)."""
    return _shift_or(_shift_or(mask, hr, -2), hc, -1)


def nonzero_rows(m: torch.Tensor, other: torch.Tensor | None = None) -> torch.Tensor:
    """``torch.nonzero`` of a sparse 2-D bool mask (or of ``m & other``) as (n, 2) (row, col), in
    raster order. Rows without a True are skipped first with one vectorised max per row, which is
    several times cheaper than a full nonzero scan when most rows are empty."""
    if not m.is_contiguous():
        m = m.contiguous()
    rows = torch.nonzero(m.view(torch.uint8).amax(-1)).squeeze(1)
    if rows.numel() * 2 > m.shape[0]:  # dense in rows: the plain scan is as good
        return torch.nonzero(m if other is None else m & other)
    sub = m.index_select(0, rows)
    if other is not None:
        sub &= other.index_select(0, rows)
    rc = torch.nonzero(sub)
    rc[:, 0] = rows.index_select(0, rc[:, 0])
    return rc


def mask_runs(mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Horizontal runs of a (B, H, W) mask: flat start and (exclusive) end positions b*H*W + r*W + c,
    in raster order. One comparison and one nonzero over the mask; no per-pixel lists."""
    B, H, W = mask.shape
    m = mask.reshape(B * H, W)
    mp = torch.zeros((B * H, W + 2), dtype=torch.bool, device=mask.device)
    mp[:, 1:-1] = m
    t = torch.nonzero((mp[:, 1:] != mp[:, :-1]).view(-1)).squeeze(1)  # starts and ends, paired per row
    row = t // (W + 1)
    pos = row * W + (t - row * (W + 1))
    return pos[0::2].contiguous(), pos[1::2].contiguous()


def _union_find(n: int, ea: torch.Tensor, eb: torch.Tensor) -> torch.Tensor:
    """Root (smallest member) of each of n nodes under the edges (ea, eb): hook the larger root onto
    the smaller over every edge, then full path compression (Shiloach-Vishkin style: O(log n)
    rounds; roots only ever decrease, so no cycles)."""
    lab = torch.arange(n, device=ea.device)
    if ea.numel() == 0:
        return lab
    while True:
        ra, rb = lab.index_select(0, ea), lab.index_select(0, eb)
        lab.scatter_reduce_(0, torch.maximum(ra, rb), torch.minimum(ra, rb), reduce="amin")
        changed = False
        while True:
            nxt = lab.index_select(0, lab)
            if torch.equal(nxt, lab):
                break
            lab = nxt
            changed = True
        if not changed and torch.equal(lab.index_select(0, ea), lab.index_select(0, eb)):
            return lab


def run_components(starts: torch.Tensor, ends: torch.Tensor, H: int, W: int) -> tuple[torch.Tensor, int]:
    """8-connected components of a mask given as its horizontal runs (``mask_runs``).

    Run-based labelling (the classical CPU algorithm, vectorised): a run touches the runs of the
    row above whose extent, widened by one pixel for diagonal contact, overlaps it. Those form a
    contiguous range of the raster-ordered runs, found by two binary searches; the run is joined
    to the first of its range and each run of the range to the next (they all touch it), so the
    edges are at most two per run. Labels are 0..K-1 in raster order of each component's first
    pixel, the order scipy.ndimage.label uses. Work is O(runs), not O(pixels).
    """
    n = starts.numel()
    if n == 0:
        return starts.new_zeros(0), 0
    dev = starts.device
    g = starts // W  # global row (b * H + r)
    s = starts - g * W
    e = ends - g * W  # exclusive
    Wk = W + 2
    skey = g * Wk + s
    ekey = g * Wk + e
    up = g - 1
    # first run of the row above ending at or after s (touches if it also starts <= e)
    first = torch.searchsorted(ekey, up * Wk + s, side="left").clamp(max=n - 1)
    last = torch.searchsorted(skey, up * Wk + e, side="right") - 1  # last run above starting <= e
    ok = (g % H != 0) & (g[first] == up) & (last >= first) & (s[first] <= e)
    ids = torch.arange(n, device=dev)
    ea = [ids[ok]]
    eb = [first[ok]]
    span = torch.zeros(n + 1, dtype=torch.int64, device=dev)
    span.index_add_(0, first[ok], torch.ones_like(first[ok]))
    span.index_add_(0, last[ok], -torch.ones_like(last[ok]))
    link = torch.nonzero(span.cumsum(0)[:-1] > 0).squeeze(1)  # run i and i + 1 share a run below
    ea.append(link)
    eb.append(link + 1)
    lab = _union_find(n, torch.cat(ea), torch.cat(eb))
    root = lab == ids
    new = root.long().cumsum(0) - 1
    return new.index_select(0, lab), int(root.sum().item())


def run_pixels(starts: torch.Tensor, ends: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Flat pixel positions of the runs, and the run each pixel belongs to (raster order)."""
    ln = ends - starts
    rid = torch.repeat_interleave(torch.arange(starts.numel(), device=starts.device), ln)
    off = torch.arange(rid.numel(), device=starts.device) - (ln.cumsum(0) - ln).index_select(0, rid)
    return starts.index_select(0, rid) + off, rid


def object_table(x: torch.Tensor, xs: torch.Tensor, ys: torch.Tensor, idx: torch.Tensor, lab: torch.Tensor, k: int,
                 strong: torch.Tensor, bg_mean: torch.Tensor, spacing_m: tuple[float, float],
                 w: Windows, p: CfarParams) -> tuple[torch.Tensor, dict[str, np.ndarray]]:
    """Per-object measurements from member pixels (flat ``idx`` with labels ``lab``).

    ``xs`` is the image searched for brighter scatterers (no-data zeroed, land kept: a bright
    corner reflector on land does throw ghosts and sidelobes onto the sea). Returns the batch
    index of each object and the table of ``detectors.sar.discriminate.TABLE_FIELDS``.
    """
    B, H, W = x.shape
    dev = x.device
    dr, dc = spacing_m
    f64 = torch.float64
    r = (idx // W) % H
    c = idx % W
    v = x.reshape(-1)[idx].double()
    cnt = torch.bincount(lab, minlength=k).double()
    n_strong = torch.bincount(lab, weights=strong.reshape(-1)[idx].double(), minlength=k)
    peak = torch.full((k,), -1.0, dtype=f64, device=dev).scatter_reduce(0, lab, v, reduce="amax")
    is_peak = v == peak[lab]
    big = torch.iinfo(torch.int64).max
    pidx = torch.full((k,), big, dtype=torch.int64, device=dev).scatter_reduce(
        0, lab[is_peak], idx[is_peak], reduce="amin")
    bgm = bg_mean.reshape(-1)[((pidx // (H * W)) * bg_mean.shape[-2] + ((pidx // W) % H) // w.cell[0])
                              * bg_mean.shape[-1] + (pidx % W) // w.cell[1]].double()
    # The first rules of ``discriminate`` (size, strong pixels, contrast) need only these numbers:
    # objects that fail them (nearly all of them on a textured sea) are dropped here, before the
    # per-pixel geometry and the row/column searches; a small margin leaves the exact decision to
    # discriminate, so the detections are the same as with the full table.
    rules = p.rules()
    min_area = max(rules.min_area_m2, rules.min_cells * w.resolution_m[0] * w.resolution_m[1])
    contrast = 10.0 * (torch.log10(peak.clamp(min=1e-30)) - torch.log10(bgm.clamp(min=1e-30)))
    cand = ((n_strong >= rules.min_strong_px - 0.5) & (cnt * (dr * dc) >= min_area * (1.0 - 1e-9))
            & (contrast >= rules.min_contrast_db - 1e-6))
    if not all_true(cand):
        sel = cand.index_select(0, lab)
        idx, lab, v = idx[sel], (cand.long().cumsum(0) - 1).index_select(0, lab[sel]), v[sel]
        r, c = r[sel], c[sel]
        cnt, n_strong, peak, pidx, bgm = cnt[cand], n_strong[cand], peak[cand], pidx[cand], bgm[cand]
        k = int(cand.sum().item())
        if k == 0:
            from detectors.sar.discriminate import TABLE_FIELDS

            return torch.zeros(0, dtype=torch.int64), {name: np.zeros(0) for name in TABLE_FIELDS}
    pb = pidx // (H * W)
    pr = (pidx // W) % H
    pc = pidx % W
    y = r.to(f64) * dr
    xx = c.to(f64) * dc

    def seg_mean(t: torch.Tensor) -> torch.Tensor:
        return torch.zeros(k, dtype=f64, device=dev).index_add_(0, lab, t) / cnt

    my, mx = seg_mean(y), seg_mean(xx)
    yc, xc = y - my[lab], xx - mx[lab]
    cyy, cxx, cxy = seg_mean(yc * yc), seg_mean(xc * xc), seg_mean(xc * yc)
    phi = 0.5 * torch.atan2(2.0 * cxy, cxx - cyy)  # major axis angle in (col=x, row=y) coordinates
    cph, sph = torch.cos(phi), torch.sin(phi)
    u = xc * cph[lab] + yc * sph[lab]
    vv = -xc * sph[lab] + yc * cph[lab]

    def seg_ext(t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        hi = torch.full((k,), -1e300, dtype=f64, device=dev).scatter_reduce(0, lab, t, reduce="amax")
        lo = torch.full((k,), 1e300, dtype=f64, device=dev).scatter_reduce(0, lab, t, reduce="amin")
        return lo, hi

    ulo, uhi = seg_ext(u)
    vlo, vhi = seg_ext(vv)
    pix_u = cph.abs() * dc + sph.abs() * dr  # a pixel's footprint along the axis
    pix_v = sph.abs() * dc + cph.abs() * dr
    length = uhi - ulo + pix_u
    width = vhi - vlo + pix_v
    # Centre of the oriented box (robust to uneven pixel density along the hull).
    um, vm = 0.5 * (uhi + ulo), 0.5 * (vhi + vlo)
    cy = my + um * sph + vm * cph
    cx = mx + um * cph - vm * sph
    heading = torch.rad2deg(torch.atan2(cph, -sph)) % 180.0  # clockwise from up (-row)
    rlo, rhi = seg_ext(r.to(f64))
    clo, chi = seg_ext(c.to(f64))
    mean_int = torch.zeros(k, dtype=f64, device=dev).index_add_(0, lab, v) / cnt
    peak_tw = torch.zeros(k, dtype=f64, device=dev).scatter_reduce(0, lab, ys.reshape(-1)[idx].double(), reduce="amax")

    # Brightest pixel in the object's column band (azimuth) and row band (range), outside itself.
    rows = torch.arange(H, device=dev, dtype=f64)
    cols = torch.arange(W, device=dev, dtype=f64)
    band = torch.arange(-1, 2, device=dev)
    cidx = (pc[:, None] + band[None, :]).clamp(0, W - 1)  # (K, 3)
    colv = xs[pb[:, None], :, cidx].amax(1).double()  # (K, H)
    outside_r = (rows[None, :] < rlo[:, None]) | (rows[None, :] > rhi[:, None])
    dist_r = (rows[None, :] - pr[:, None].to(f64)).abs()
    near_r = outside_r & (dist_r <= w.reach[0])
    if p.ambiguity_offset_m is not None:
        amb_r = outside_r & ((dist_r * dr - p.ambiguity_offset_m).abs() <= p.ambiguity_tol_m)
    else:
        amb_r = outside_r
    zero = torch.zeros((), dtype=f64, device=dev)
    bright_col = torch.where(amb_r, colv, zero).amax(1)
    bright_col_near = torch.where(near_r, colv, zero).amax(1)
    ridx = (pr[:, None] + band[None, :]).clamp(0, H - 1)
    rowv = xs[pb[:, None], ridx, :].amax(1).double()  # (K, W)
    outside_c = (cols[None, :] < clo[:, None]) | (cols[None, :] > chi[:, None])
    near_c = outside_c & ((cols[None, :] - pc[:, None].to(f64)).abs() <= w.reach[1])
    bright_row = torch.where(near_c, rowv, zero).amax(1)
    bright_row = torch.maximum(bright_row, bright_col_near)

    t = torch.stack([cnt, n_strong, cy / dr, cx / dc, peak, pr.to(f64), pc.to(f64), bgm, length, width,
                     heading, rlo, rhi, clo, chi, bright_col, bright_row, mean_int, peak_tw]).cpu().numpy()
    from detectors.sar.discriminate import TABLE_FIELDS

    return pb.cpu(), {name: t[i] for i, name in enumerate(TABLE_FIELDS)}


# ------------------------------------------------------------------------------------ detector
@register("sar-cfar", "sar")
class CfarDetector:
    """Two-threshold Gamma-CFAR with censoring, land masking and object discrimination."""

    modality = "sar"
    version = "1.0"  # bump when detections change for the same input (flow caches key on it)

    @staticmethod
    def option_names() -> list[str]:
        """The ``**params`` it takes: the fields of :class:`CfarParams` (``get_detector`` checks them)."""
        return sorted(f.name for f in fields(CfarParams))

    def __init__(self, device: torch.device | str | None = None, **params: object) -> None:
        names = {f.name for f in fields(CfarParams)}
        unknown = sorted(set(params) - names)
        if unknown:
            raise DetectorInputError(f"sar-cfar: unknown parameter(s) {', '.join(unknown)}; known: {', '.join(sorted(names))}")
        self.params = CfarParams(**params)  # type: ignore[arg-type]
        p = self.params
        for nm in ("pfa", "pfa_extent"):
            val = getattr(p, nm)
            if not (0.0 < val < 0.5):
                raise DetectorInputError(f"sar-cfar: {nm} must be in (0, 0.5), got {val}")
        if p.pfa_extent < p.pfa:
            raise DetectorInputError("sar-cfar: pfa_extent must be >= pfa (it is the lower, hysteresis threshold)")
        for nm in ("guard_m", "background_m", "merge_m", "max_vessel_m", "land_block_m", "min_area_m2"):
            if not getattr(p, nm) > 0:
                raise DetectorInputError(f"sar-cfar: {nm} must be > 0, got {getattr(p, nm)}")
        self.device = torch.device(device) if device is not None else torch.device("cpu")
        self.name = "sar-cfar"
        self.version = "1.0"
        v, c, h = molc_luts(p.pfa)
        _, _, h_ext = molc_luts(p.pfa_extent)
        t = lambda a: torch.tensor(a, dtype=torch.float64, device=self.device)  # noqa: E731
        self._v, self._c, self._h, self._h_ext = t(v), t(c), t(h), t(h_ext)
        self._lut = ShapeLut(self._v)

    def config(self) -> dict[str, object]:
        """Parameters as a plain dict (recorded with benchmark results)."""
        return asdict(self.params)

    def required_overlap_px(self, spacing_m: float | tuple[float, float] = 0.5) -> int:
        """Tile overlap so every owned object is seen whole with its full background ring.

        The pipeline gives each core pixel ``overlap // 2`` pixels of context: an owned centre
        needs half the largest vessel plus the outer CFAR window beyond its far end.
        """
        sp = _spacing(spacing_m)
        w = windows_for(self.params, sp)
        half = max(int(math.ceil(self.params.max_vessel_m / 2 / s)) + max(o, (oc + 1) * c) + m
                   for s, o, m, oc, c in zip(sp, w.outer, w.merge, w.outer_cells, w.cell))
        return 2 * half

    # ------------------------------------------------------------------------------ public
    def detect(self, sigma0: torch.Tensor, *, spacing_m: tuple[float, float],
               valid: torch.Tensor | None = None) -> list[Detection]:
        """Objects in one (H, W) tile of linear sigma0 (or any linear intensity)."""
        if not isinstance(sigma0, torch.Tensor) or sigma0.dim() != 2:
            raise DetectorInputError(f"sar-cfar: sigma0 must be a 2-D (H, W) tensor, got "
                                     f"{getattr(sigma0, 'shape', type(sigma0))}")
        if valid is not None:
            if not isinstance(valid, torch.Tensor) or valid.shape != sigma0.shape:
                raise DetectorInputError(f"sar-cfar: valid must be a tensor of shape {tuple(sigma0.shape)}")
            valid = valid[None]
        return self.detect_batch(sigma0[None], spacing_m=spacing_m, valid=valid)[0]

    def detect_batch(self, sigma0: torch.Tensor, *, spacing_m: tuple[float, float],
                     valid: torch.Tensor | None = None) -> list[list[Detection]]:
        """Objects in each of B same-size tiles, (B, H, W); one pass of every kernel for all.

        On a CPU, large tiles (>= 1 Mpx) go through one at a time: batching amortises kernel
        launches and transfers on a GPU, while on a CPU it only multiplies the working set (B x the
        full-resolution temporaries) for no gain. Results are the same either way."""
        with torch.inference_mode():
            if (self.device.type == "cpu" and isinstance(sigma0, torch.Tensor) and sigma0.dim() == 3
                    and sigma0.shape[0] > 1 and sigma0.shape[-2] * sigma0.shape[-1] >= 1 << 20
                    and (valid is None or (isinstance(valid, torch.Tensor) and valid.shape == sigma0.shape))):
                return [self._detect_batch(sigma0[b:b + 1], spacing_m, None if valid is None else valid[b:b + 1])[0]
                        for b in range(sigma0.shape[0])]
            return self._detect_batch(sigma0, spacing_m, valid)

    def _detect_batch(self, sigma0: torch.Tensor, spacing_m: object, valid: torch.Tensor | None
                      ) -> list[list[Detection]]:
        x, v, sp = self._prepare(sigma0, spacing_m, valid)
        p = self.params
        w = windows_for(p, sp)
        B, H0, W0 = x.shape
        cr, cc = w.cell
        if H0 % cr or W0 % cc:
            x = F.pad(x, (0, (-W0) % cc, 0, (-H0) % cr))  # whole cells; padding is no-data
            v = F.pad(v, (0, (-W0) % cc, 0, (-H0) % cr))
        H, W = x.shape[-2:]
        sea = v & ~auto_land(x, v, p, w) if p.land_auto else v
        md = sea & (x > 0)  # pixels that may be background
        nmd = None if all_true(md) else ~md
        ys = target_mean(x, sea, w.target)  # detection statistic (float32)

        # Log moments per cell. Full-resolution work is float32 in one reused buffer, each image
        # reduced per cell as soon as it is formed (no multi-channel stacks at full resolution);
        # float64 starts on the cell grid (B x H/cr x W/cc), where every ring sum, variance and
        # threshold is computed. Thresholds are applied to the linear images:
        # ln(I) > T  <=>  I > exp(T), and floor_f32(exp(T)) makes the float32 comparison exact.
        buf = torch.empty_like(x)

        def log_moments(src: torch.Tensor) -> list[torch.Tensor]:
            torch.clamp(src, min=1e-30, out=buf).log_()
            if nmd is not None:
                buf.masked_fill_(nmd, 0.0)
            s1 = cell_sums(buf, w.cell).double()
            return [s1, cell_sums(buf.mul_(buf), w.cell).double()]

        cs = torch.stack([cell_sums(md, w.cell).double(), *log_moments(x), *log_moments(ys)])  # (5, B, Hc, Wc)
        del buf
        f_ring = ring_sums(frame_counts(H0, W0, w.cell, x.device), w)
        inf = torch.tensor(math.inf, dtype=torch.float64, device=x.device)

        def threshold(mean: torch.Tensor, lut: object, tab: torch.Tensor, ok: torch.Tensor) -> torch.Tensor:
            return floor_f32(torch.where(ok, torch.exp(mean + lut(tab)), inf))  # type: ignore[operator]

        # pass 1 (all sea): detection statistic only
        my, vy, n = ring_moments(ring_sums(cs[[0, 3, 4]], w), f_ring)
        hit1 = exceeds(ys, threshold(my, self._lut.at(vy), self._h, n >= p.min_bg_fraction), w.cell)
        hit1 &= sea
        # pass 2: pass-1 detections (dilated by the merge gap) censored from the background. They
        # are few, so their moments are taken out of the pass-1 cell sums (same float32 values).
        if bool(hit1.any()):
            rc = nonzero_rows(dilate(hit1, *w.merge).view(B * H, W), md.view(B * H, W))  # (n, 2): b*H + r, c
            cell = (rc[:, 0] // cr) * (W // cc) + rc[:, 1] // cc  # H % cr == 0: rows stay in b
            flat = rc[:, 0] * W + rc[:, 1]
            ncell = cs[0].numel()
            delta = [torch.bincount(cell, minlength=ncell).double()]
            for img in (x, ys):
                lv = torch.log(img.reshape(-1).index_select(0, flat).clamp_(min=1e-30))
                delta += [torch.bincount(cell, weights=lv.double(), minlength=ncell),
                          torch.bincount(cell, weights=(lv * lv).double(), minlength=ncell)]
            cs = cs - torch.stack(delta).view_as(cs)
        del hit1
        r = ring_sums(cs, w)
        mx, vx, n = ring_moments(r[:3], f_ring)
        my, vy, _ = ring_moments(r[[0, 3, 4]], f_ring)
        ok = n >= p.min_bg_fraction  # enough sea in the ring to test the cell's pixels
        strong = exceeds(ys, threshold(my, self._lut.at(vy), self._h, ok), w.cell)
        strong &= sea
        lut_x = self._lut.at(vx)
        ext = exceeds(x, threshold(mx, lut_x, self._h_ext, ok), w.cell)
        ext &= sea
        mean = torch.exp(mx + lut_x(self._c))  # background mean intensity per cell
        del md, nmd
        det = objects(x, ys, ext, strong, mean, sp, w, p, v)
        out: list[list[Detection]] = [[] for _ in range(B)]
        if det is None:
            return out
        pb, table = det
        rules = p.rules()
        for b in range(B):
            sel = (pb == b).numpy()
            if sel.any():
                out[b] = discriminate({kk: vv[sel] for kk, vv in table.items()}, spacing_m=sp,
                                      resolution_m=w.resolution_m, rules=rules, detector=self.name)
        return out

    # ------------------------------------------------------------------------------ helpers
    def _prepare(self, sigma0: torch.Tensor, spacing_m: object, valid: torch.Tensor | None
                 ) -> tuple[torch.Tensor, torch.Tensor, tuple[float, float]]:
        """Check inputs, move them to the device; NaN/negative sea pixels are errors, not no-data."""
        if not isinstance(sigma0, torch.Tensor) or sigma0.dim() != 3:
            raise DetectorInputError(f"sar-cfar: sigma0 batch must be a 3-D (B, H, W) tensor, got "
                                     f"{getattr(sigma0, 'shape', type(sigma0))}")
        if sigma0.is_complex() or not sigma0.is_floating_point():
            raise DetectorInputError(f"sar-cfar: sigma0 must be real floating point (linear intensity), got {sigma0.dtype}")
        if min(sigma0.shape[-2:]) < 8:
            raise DetectorInputError(f"sar-cfar: tile {tuple(sigma0.shape[-2:])} is too small (min 8 x 8)")
        sp = _spacing(spacing_m)
        x = sigma0.to(self.device, torch.float32).contiguous()  # may be the caller's tensor: never written
        if valid is None:
            v = torch.ones_like(x, dtype=torch.bool)
        else:
            if not isinstance(valid, torch.Tensor) or valid.shape != sigma0.shape:
                raise DetectorInputError(f"sar-cfar: valid must have shape {tuple(sigma0.shape)}, "
                                         f"got {getattr(valid, 'shape', type(valid))}")
            v = valid.to(self.device).bool()
        if valid is not None:
            x = torch.where(v, x, 0.0)
        _check_values(x)
        return x, v, sp

    @staticmethod
    def check_values(sigma0: torch.Tensor, valid: torch.Tensor | None = None) -> None:
        """DetectorInputError where :meth:`detect_batch` would refuse these values (NaN/inf or
        negative at a valid pixel), without detecting: ``sar-fused`` asks it of the tiles it
        does not run the CFAR on, so it refuses the same inputs either way."""
        x = sigma0.to(torch.float32)
        _check_values(x if valid is None else torch.where(valid.to(x.device, torch.bool), x, 0.0))


def _check_values(x: torch.Tensor) -> None:
    """DetectorInputError unless every value of ``x`` (no-data already zeroed) is finite and >= 0."""
    lo, hi = torch.aminmax(x)  # one pass; NaN propagates and fails both tests below
    if not (bool(lo >= 0) and bool(hi < math.inf)):
        if bool((~torch.isfinite(x)).any()):
            raise DetectorInputError("sar-cfar: sigma0 has NaN/inf at valid pixels; mark no-data in `valid`")
        raise DetectorInputError("sar-cfar: sigma0 must be linear intensity >= 0 (got negative values; dB input?)")


def objects(x: torch.Tensor, ys: torch.Tensor, ext: torch.Tensor, strong: torch.Tensor, mean: torch.Tensor,
            sp: tuple[float, float], w: Windows, p: CfarParams, valid: torch.Tensor
            ) -> tuple[torch.Tensor, dict[str, np.ndarray]] | None:
    """Hysteresis components (extent pixels holding a detection), merged across small gaps."""
    B, H, W = x.shape
    rc = nonzero_rows(strong.view(B * H, W), ext.view(B * H, W))
    seeds = rc[:, 0] * W + rc[:, 1]
    if seeds.numel() == 0:
        return None  # no detection pixel: nothing to grow (the common case on open sea)
    rs, re = mask_runs(ext)
    lab, k = run_components(rs, re, H, W)
    has = torch.zeros(k, dtype=torch.bool, device=x.device)
    has[lab.index_select(0, torch.searchsorted(rs.contiguous(), seeds, side="right") - 1)] = True
    kr = has.index_select(0, lab)
    kidx, _ = run_pixels(rs[kr], re[kr])  # kept pixels, raster order
    # Merge fragments: components of the dilated kept mask; members are the kept pixels only.
    keep = torch.zeros(B * H * W, dtype=torch.bool, device=x.device)
    keep[kidx] = True
    grown = dilate(keep.view(B, H, W), *w.merge) & valid
    gs, ge = mask_runs(grown)
    glab, gk = run_components(gs, ge, H, W)
    klab_g = glab.index_select(0, torch.searchsorted(gs, kidx, side="right") - 1)
    present = torch.zeros(gk, dtype=torch.bool, device=x.device)
    present[klab_g] = True
    klab = (present.long().cumsum(0) - 1).index_select(0, klab_g)
    k2 = int(present.sum().item())
    xs = x  # no-data already zeroed in _prepare
    return object_table(x, xs, ys, kidx, klab, k2, strong, mean, sp, w, p)


def _spacing(spacing_m: object) -> tuple[float, float]:
    """(row, col) spacing in metres from a number or a pair; must be finite and > 0."""
    if isinstance(spacing_m, (int, float)):
        sp = (float(spacing_m), float(spacing_m))
    else:
        try:
            sp = tuple(float(s) for s in spacing_m)  # type: ignore[union-attr]
        except TypeError as exc:
            raise DetectorInputError(f"sar-cfar: spacing_m must be (row_m, col_m), got {spacing_m!r}") from exc
        if len(sp) != 2:
            raise DetectorInputError(f"sar-cfar: spacing_m must be (row_m, col_m), got {spacing_m!r}")
    if not all(math.isfinite(s) and s > 0 for s in sp):
        raise DetectorInputError(f"sar-cfar: spacing_m must be finite and > 0, got {spacing_m!r}")
    return sp  # type: ignore[return-value]
