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
   the sparse hit coordinates on the device (min-label propagation with pointer jumping); nearby
   fragments of one hull (gaps up to ``merge_m``) are merged.
5. **Measurements** per object: length, width and heading from the oriented extent along the
   principal axis of the pixel second moments (metres, so anisotropic pixels are handled),
   corrected for the impulse-response spread; peak/mean contrast in dB over the background.
6. **Discrimination** (``detectors.sar.discriminate``): size, sidelobe and azimuth-ambiguity
   rules on the small per-object table, shared with the NumPy/SciPy reference.

Only the per-object table (tens of numbers per object) leaves the device.
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
    lb = tuple(max(4, int(round(p.land_block_m / s))) for s in (dr, dc))
    reach = tuple(max(4, int(round(p.sidelobe_reach_m / s))) for s in (dr, dc))
    res = p.resolution_m if p.resolution_m is not None else (p.resolution_factor * dr, p.resolution_factor * dc)
    cell = tuple(max(1, int(round(p.cell_m / s))) for s in (dr, dc))
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
def _box1(x: torch.Tensor, h: int, dim: int) -> torch.Tensor:
    """Window sum of half size ``h`` along ``dim``, clipped to the frame (cumsum + two slices)."""
    n = x.shape[dim]
    c = x.cumsum(dim)
    zshape = list(x.shape)
    zshape[dim] = h + 1
    tail = c.narrow(dim, n - 1, 1).expand(*[h if d == dim % x.dim() else -1 for d in range(x.dim())])
    cp = torch.cat([c.new_zeros(zshape), c, tail], dim)  # cp[j] = C[clamp(j - h - 1)]
    return cp.narrow(dim, 2 * h + 1, n) - cp.narrow(dim, 0, n)


def box_sum(x: torch.Tensor, hr: int, hc: int) -> torch.Tensor:
    """Sum over the (2 hr + 1) x (2 hc + 1) window clipped to the frame; x (..., H, W).

    Used on the (small) background-cell grid, in float64, where its cost does not matter.
    """
    return _box1(_box1(x, hr, -2), hc, -1)


def cell_sums(t: torch.Tensor, cell: tuple[int, int]) -> torch.Tensor:
    """Sums over non-overlapping cells: (..., H, W) with H, W multiples of the cell -> (..., Hc, Wc)."""
    *lead, H, W = t.shape
    cr, cc = cell
    return t.reshape(*lead, H // cr, cr, W // cc, cc).sum((-3, -1))


def cell_ring_stats(s: torch.Tensor, frame: torch.Tensor, w: "Windows"
                    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Mean and variance of a log image over the background ring of every cell, and the fraction
    of the ring's in-frame pixels that were usable; ``s`` (3, ...) holds the per-cell count, sum and
    sum of squares over valid background pixels, ``frame`` the per-cell in-frame pixel count."""
    r = box_sum(s, *w.outer_cells) - box_sum(s, *w.guard_cells)
    f = box_sum(frame, *w.outer_cells) - box_sum(frame, *w.guard_cells)
    n = r[0]
    nn = n.clamp(min=1.0)
    mean = r[1] / nn
    var = (r[2] / nn - mean * mean).clamp(min=0.0)
    return mean, var, n / f.clamp(min=1.0)


def exceeds(img: torch.Tensor, thr: torch.Tensor, cell: tuple[int, int]) -> torch.Tensor:
    """img (B, H, W) > the threshold of each pixel's cell, thr (B, Hc, Wc) (broadcast, no upsampling)."""
    B, H, W = img.shape
    cr, cc = cell
    return (img.view(B, H // cr, cr, W // cc, cc) > thr[:, :, None, :, None]).view(B, H, W)


def upsample_cells(t: torch.Tensor, cell: tuple[int, int]) -> torch.Tensor:
    """(B, Hc, Wc) -> (B, Hc cr, Wc cc), each cell's value on its pixels."""
    B, Hc, Wc = t.shape
    cr, cc = cell
    return t[:, :, None, :, None].expand(B, Hc, cr, Wc, cc).reshape(B, Hc * cr, Wc * cc)


def target_mean(x: torch.Tensor, m: torch.Tensor, t: tuple[int, int]) -> torch.Tensor:
    """Mean of x over the valid pixels (mask m) of the (2 t + 1)^2 target window (float64)."""
    xd = x.double()
    if t == (0, 0):
        return xd
    md = m.double()
    num = _box_small(_box_small(xd * md, t[0], -2), t[1], -1)
    den = _box_small(_box_small(md, t[0], -2), t[1], -1)
    return num / den.clamp(min=1e-12)


def _box_small(x: torch.Tensor, h: int, dim: int) -> torch.Tensor:
    """Window sum of half size h along dim by shifted adds (zero outside the frame); small h."""
    out = x.clone()
    n = x.shape[dim]
    for d in range(1, min(h, n - 1) + 1):
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


def lut_interp_v(v: torch.Tensor, v_tab: torch.Tensor, y_tab: torch.Tensor) -> torch.Tensor:
    """Interpolate y_tab at log-variance v (v_tab decreasing in the shape); clamped at the ends."""
    lv = torch.log(v.clamp(min=1e-12))
    lt = torch.log(v_tab).flip(0)  # increasing
    yt = y_tab.flip(0)
    n = lt.numel()
    i = (torch.searchsorted(lt, lv.contiguous()) - 1).clamp(0, n - 2)
    f = ((lv - lt[i]) / (lt[i + 1] - lt[i])).clamp(0.0, 1.0)
    return yt[i] * (1.0 - f) + yt[i + 1] * f


def auto_land(x: torch.Tensor, valid: torch.Tensor, p: CfarParams, w: Windows) -> torch.Tensor:
    """Bright textured land: overlapping blocks whose low quantile is far above the open sea."""
    B, H, W = x.shape
    k = tuple(max(1, b // 16) for b in w.land_block)  # ~16 x 16 samples per block
    st = tuple(max(1, (b // ki) // 2) for b, ki in zip(w.land_block, k))
    bs = (2 * st[0], 2 * st[1])
    z = torch.where(valid & (x > 0), 10.0 * torch.log10(x.clamp(min=1e-30)),
                    torch.full_like(x, float("inf")))[:, ::k[0], ::k[1]]
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


def sparse_components(idx: torch.Tensor, H: int, W: int) -> tuple[torch.Tensor, int]:
    """8-connected components of the pixels at flat indices ``idx`` (b*H*W + r*W + c, sorted).

    Neighbours are found through a dense int32 position map of the (frame-padded) tiles, so no
    search and no boolean indexing; missing neighbours become self loops. Union-find by hooking
    the larger root onto the smaller one over every edge, then full path compression
    (Shiloach-Vishkin style, O(log n) rounds; a component's root is its smallest index, so no
    cycles). Labels are 0..K-1 in raster order of each component's first pixel (the order
    scipy.ndimage.label uses).
    """
    n = idx.numel()
    if n == 0:
        return idx.new_zeros(0), 0
    dev = idx.device
    ids = torch.arange(n, device=dev)
    Wp = W + 2
    b = idx // (H * W)
    rc = idx - b * (H * W)
    pidx = b * ((H + 2) * Wp) + (rc // W + 1) * Wp + (rc % W + 1)  # position in the padded frame
    pos = torch.full((int(b[-1].item() + 1) * (H + 2) * Wp,), -1, dtype=torch.int32, device=dev)
    pos.index_copy_(0, pidx, ids.to(torch.int32))
    offs = torch.tensor([1, Wp - 1, Wp, Wp + 1], device=dev)
    nb = pos.index_select(0, (pidx[None, :] + offs[:, None]).reshape(-1)).view(4, n).long()
    ea = ids.expand(4, n).reshape(-1)
    eb = torch.where(nb >= 0, nb, ids[None, :]).reshape(-1)
    lab = ids.clone()
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
            break
    _, inv = torch.unique(lab, return_inverse=True)
    return inv, int(inv.max().item()) + 1


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
    bi = idx // (H * W)
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
    Hc, Wc = bg_mean.shape[-2:]
    bgm = bg_mean[pb, pr // w.cell[0], pc // w.cell[1]].double()
    peak_tw = torch.zeros(k, dtype=f64, device=dev).scatter_reduce(0, lab, ys.reshape(-1)[idx], reduce="amax")

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
        """Objects in each of B same-size tiles, (B, H, W); one pass of every kernel for all."""
        x, v, sp = self._prepare(sigma0, spacing_m, valid)
        p = self.params
        w = windows_for(p, sp)
        B, H0, W0 = x.shape
        cr, cc = w.cell
        x = F.pad(x, (0, (-W0) % cc, 0, (-H0) % cr))  # whole cells; padding is no-data
        v = F.pad(v, (0, (-W0) % cc, 0, (-H0) % cr))
        H, W = x.shape[-2:]
        sea = v.clone()
        if p.land_auto:
            sea &= ~auto_land(x, v, p, w)
        md = sea & (x > 0)
        lx = torch.log(x.double().clamp(min=1e-30))
        ys = target_mean(x, sea, w.target)
        ly = torch.log(ys.clamp(min=1e-30))
        frame = cell_sums(F.pad(torch.ones(H0, W0, dtype=torch.float64, device=x.device),
                                (0, W - W0, 0, H - H0)), w.cell)
        lut = lambda var, tab: lut_interp_v(var, self._v, tab)  # noqa: E731

        def stats(mask: torch.Tensor) -> tuple[torch.Tensor, ...]:
            mk = mask.double()
            lxm, lym = lx * mk, ly * mk
            cs = cell_sums(torch.stack([mk, lxm, lxm * lx, lym, lym * ly]), w.cell)
            mx, vx, n = cell_ring_stats(cs[:3], frame, w)
            my, vy, _ = cell_ring_stats(cs[[0, 3, 4]], frame, w)
            return mx, vx, my, vy, n

        # pass 1 (all sea), then pass 2 with pass-1 detections censored from the background
        mx, vx, my, vy, n = stats(md)
        testable = sea & upsample_cells(n >= p.min_bg_fraction, w.cell)
        hit1 = testable & exceeds(ly, my + lut(vy, self._h), w.cell)
        mx, vx, my, vy, n = stats(md & ~dilate(hit1, *w.merge))
        testable = sea & upsample_cells(n >= p.min_bg_fraction, w.cell)
        strong = testable & exceeds(ly, my + lut(vy, self._h), w.cell)
        ext = testable & exceeds(lx, mx + lut(vx, self._h_ext), w.cell)
        mean = torch.exp(mx + lut(vx, self._c))  # background mean intensity per cell
        del vx, vy, n, hit1, lx, ly
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
        x = sigma0.to(self.device, torch.float32)
        if valid is None:
            v = torch.ones_like(x, dtype=torch.bool)
        else:
            if not isinstance(valid, torch.Tensor) or valid.shape != sigma0.shape:
                raise DetectorInputError(f"sar-cfar: valid must have shape {tuple(sigma0.shape)}, "
                                         f"got {getattr(valid, 'shape', type(valid))}")
            v = valid.to(self.device).bool()
        finite = torch.isfinite(x)
        if bool((v & ~finite).any()):
            raise DetectorInputError("sar-cfar: sigma0 has NaN/inf at valid pixels; mark no-data in `valid`")
        if bool((v & (x < 0)).any()):
            raise DetectorInputError("sar-cfar: sigma0 must be linear intensity >= 0 (got negative values; dB input?)")
        x = torch.where(v, x, torch.zeros_like(x))
        return x, v, sp


def objects(x: torch.Tensor, ys: torch.Tensor, ext: torch.Tensor, strong: torch.Tensor, mean: torch.Tensor,
            sp: tuple[float, float], w: Windows, p: CfarParams, valid: torch.Tensor
            ) -> tuple[torch.Tensor, dict[str, np.ndarray]] | None:
    """Hysteresis components (extent pixels holding a detection), merged across small gaps."""
    B, H, W = x.shape
    idx = torch.nonzero(ext.reshape(-1)).squeeze(1)
    lab, k = sparse_components(idx, H, W)
    if k == 0:
        return None
    has = torch.zeros(k, dtype=torch.bool, device=x.device)
    has[lab[strong.reshape(-1)[idx]]] = True
    keep_px = torch.zeros(B * H * W, dtype=torch.bool, device=x.device)
    keep_px[idx[has[lab]]] = True
    keep = keep_px.reshape(B, H, W)
    if not bool(keep.any()):
        return None
    # Merge fragments: components of the dilated kept mask; members are the kept pixels only.
    grown = dilate(keep, *w.merge) & valid
    gidx = torch.nonzero(grown.reshape(-1)).squeeze(1)
    glab, gk = sparse_components(gidx, H, W)
    kidx = torch.nonzero(keep.reshape(-1)).squeeze(1)
    klab_g = glab[torch.searchsorted(gidx, kidx)]
    _, klab = torch.unique(klab_g, return_inverse=True)
    k2 = int(klab.max().item()) + 1
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
