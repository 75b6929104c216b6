"""The ``sar-cfar`` algorithm written the classical way: NumPy + SciPy on the CPU.

Same maths as :mod:`detectors.sar.cfar` (box sums by ``scipy.ndimage.uniform_filter``,
components by ``scipy.ndimage.label``, Gamma quantiles by ``scipy.special.gammainccinv``), so
the two give the same detections; it is the ratio partner of the throughput benchmark and an
independent check of the torch implementation. The object-level rules on the small per-object
table are shared (:func:`detectors.sar.discriminate.discriminate`): they are not pixel work.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import ndimage, special

from detectors.sar.cfar import LUT_SHAPES, CfarParams, Windows, windows_for
from detectors.sar.discriminate import TABLE_FIELDS, discriminate
from detectors.types import Detection


def box_sum(x: np.ndarray, hr: int, hc: int) -> np.ndarray:
    """Window sum clipped to the frame (zero padding) via a running-mean filter."""
    size = (2 * hr + 1, 2 * hc + 1)
    return ndimage.uniform_filter(x, size=size, mode="constant", cval=0.0) * (size[0] * size[1])


def molc_luts(pfa: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """psi'(a), ln a - psi(a), and that plus ln(Q^-1(a, pfa)/a) over the shared shape grid."""
    a = LUT_SHAPES
    c = np.log(a) - special.digamma(a)
    return special.polygamma(1, a), c, c + np.log(special.gammainccinv(a, pfa) / a)


def interp_v(v: np.ndarray, v_tab: np.ndarray, y_tab: np.ndarray) -> np.ndarray:
    return np.interp(np.log(np.maximum(v, 1e-12)), np.log(v_tab)[::-1], y_tab[::-1])


def cell_sums(a: np.ndarray, cell: tuple[int, int]) -> np.ndarray:
    H, W = a.shape
    return a.reshape(H // cell[0], cell[0], W // cell[1], cell[1]).sum(axis=(1, 3))


def ring_stats(lv: np.ndarray, m: np.ndarray, frame: np.ndarray, w: Windows
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Log-moments over each background cell's ring of cells (guard cells excluded)."""
    md = m.astype(np.float64)
    cs = [cell_sums(a, w.cell) for a in (md, lv * md, lv * lv * md)]
    s = [box_sum(a, *w.outer_cells) - box_sum(a, *w.guard_cells) for a in cs + [frame]]
    nn = np.maximum(s[0], 1.0)
    mean = s[1] / nn
    return mean, np.maximum(s[2] / nn - mean * mean, 0.0), s[0] / np.maximum(s[3], 1.0)


def up(a: np.ndarray, cell: tuple[int, int]) -> np.ndarray:
    return np.repeat(np.repeat(a, cell[0], 0), cell[1], 1)


def target_mean(x: np.ndarray, m: np.ndarray, t: tuple[int, int]) -> np.ndarray:
    xd = x.astype(np.float64)
    if t == (0, 0):
        return xd
    size = (2 * t[0] + 1, 2 * t[1] + 1)
    md = m.astype(np.float64)
    num = ndimage.uniform_filter(xd * md, size=size, mode="constant", cval=0.0)
    den = ndimage.uniform_filter(md, size=size, mode="constant", cval=0.0)
    return num / np.maximum(den, 1e-12)


def auto_land(x: np.ndarray, valid: np.ndarray, p: CfarParams, w: Windows) -> np.ndarray:
    H, W = x.shape
    k = tuple(max(1, b // 16) for b in w.land_block)
    st = tuple(max(1, (b // ki) // 2) for b, ki in zip(w.land_block, k))
    bs = (2 * st[0], 2 * st[1])
    with np.errstate(divide="ignore"):
        z = np.where(valid & (x > 0), 10.0 * np.log10(np.maximum(x, 1e-30)), np.inf)[::k[0], ::k[1]]
    hs, ws = z.shape
    nbr = max(1, math.ceil((hs - bs[0]) / st[0]) + 1)
    nbc = max(1, math.ceil((ws - bs[1]) / st[1]) + 1)
    zp = np.full(((nbr - 1) * st[0] + bs[0], (nbc - 1) * st[1] + bs[1]), np.inf, np.float32)
    zp[:hs, :ws] = z
    q = np.full((nbr, nbc), np.nan)
    for i in range(nbr):
        for j in range(nbc):
            blk = np.sort(zp[i * st[0]:i * st[0] + bs[0], j * st[1]:j * st[1] + bs[1]].ravel())
            nv = int(np.isfinite(blk).sum())
            if nv >= (bs[0] * bs[1]) // 2:
                q[i, j] = blk[int(math.floor(p.land_quantile * (nv - 1)))]
    if not np.isfinite(q).any():
        return np.zeros((H, W), bool)
    ref = np.nanquantile(q, 0.1)
    with np.errstate(invalid="ignore"):
        lb = q > ref + p.land_contrast_db
    cell = ndimage.maximum_filter(np.pad(lb, ((1, 1), (1, 1))), size=2, origin=(-1, -1))[:nbr + 1, :nbc + 1]
    px = np.repeat(np.repeat(cell, st[0] * k[0], 0), st[1] * k[1], 1)
    out = np.zeros((H, W), bool)
    hh, ww = min(H, px.shape[0]), min(W, px.shape[1])
    out[:hh, :ww] = px[:hh, :ww]
    return out


def dilate(m: np.ndarray, hr: int, hc: int) -> np.ndarray:
    return ndimage.binary_dilation(m, structure=np.ones((2 * hr + 1, 2 * hc + 1), bool))


def object_table(x: np.ndarray, ys: np.ndarray, lab: np.ndarray, k: int, strong: np.ndarray, bg_mean: np.ndarray,
                 sp: tuple[float, float], w: Windows, p: CfarParams) -> dict[str, np.ndarray]:
    """Per-object measurements, one object at a time (the classical way)."""
    dr, dc = sp
    H, W = x.shape
    rows_all = np.arange(H)
    cols_all = np.arange(W)
    cols_tab = {f: np.zeros(k) for f in TABLE_FIELDS}
    for i, sl in enumerate(ndimage.find_objects(lab)):
        rr, cc = np.nonzero(lab[sl] == i + 1)
        rr = rr + sl[0].start
        cc = cc + sl[1].start
        v = x[rr, cc].astype(np.float64)
        order = np.lexsort((cc, rr))  # raster order: first maximum = the torch tie-break
        rr, cc, v = rr[order], cc[order], v[order]
        j = int(np.argmax(v))
        pr, pc = int(rr[j]), int(cc[j])
        y, xx = rr * dr, cc * dc
        my, mx = y.mean(), xx.mean()
        yc, xc = y - my, xx - mx
        cyy, cxx, cxy = (yc * yc).mean(), (xc * xc).mean(), (xc * yc).mean()
        phi = 0.5 * math.atan2(2.0 * cxy, cxx - cyy)
        cph, sph = math.cos(phi), math.sin(phi)
        u = xc * cph + yc * sph
        vv = -xc * sph + yc * cph
        length = u.max() - u.min() + abs(cph) * dc + abs(sph) * dr
        width = vv.max() - vv.min() + abs(sph) * dc + abs(cph) * dr
        um, vm = 0.5 * (u.max() + u.min()), 0.5 * (vv.max() + vv.min())
        band_c = np.clip(pc + np.arange(-1, 2), 0, W - 1)
        colv = x[:, band_c].max(1).astype(np.float64)
        outside_r = (rows_all < rr.min()) | (rows_all > rr.max())
        dist_r = np.abs(rows_all - pr)
        near_r = outside_r & (dist_r <= w.reach[0])
        amb_r = outside_r if p.ambiguity_offset_m is None else \
            outside_r & (np.abs(dist_r * dr - p.ambiguity_offset_m) <= p.ambiguity_tol_m)
        band_r = np.clip(pr + np.arange(-1, 2), 0, H - 1)
        rowv = x[band_r, :].max(0).astype(np.float64)
        outside_c = (cols_all < cc.min()) | (cols_all > cc.max())
        near_c = outside_c & (np.abs(cols_all - pc) <= w.reach[1])
        vals = {
            "n_px": len(v), "n_strong": float(strong[rr, cc].sum()),
            "row": (my + um * sph + vm * cph) / dr, "col": (mx + um * cph - vm * sph) / dc,
            "peak": v[j], "peak_row": pr, "peak_col": pc, "bg_mean": bg_mean[pr, pc],
            "length_m": length, "width_m": width, "heading_deg": math.degrees(math.atan2(cph, -sph)) % 180.0,
            "row_min": rr.min(), "row_max": rr.max(), "col_min": cc.min(), "col_max": cc.max(),
            "bright_col": colv[amb_r].max(initial=0.0),
            "bright_row": max(rowv[near_c].max(initial=0.0), colv[near_r].max(initial=0.0)),
            "mean_int": v.mean(), "peak_tw": ys[rr, cc].max(),
        }
        for f in TABLE_FIELDS:
            cols_tab[f][i] = vals[f]
    return cols_tab


def reference_detect(sigma0: np.ndarray, spacing_m: tuple[float, float], valid: np.ndarray | None = None,
                     **params: object) -> list[Detection]:
    """NumPy/SciPy ``sar-cfar`` on one (H, W) tile of linear intensity."""
    p = CfarParams(**params)  # type: ignore[arg-type]
    sp = (float(spacing_m[0]), float(spacing_m[1]))
    w = windows_for(p, sp)
    x0 = np.asarray(sigma0, np.float32)
    v0 = np.ones(x0.shape, bool) if valid is None else np.asarray(valid, bool)
    H0, W0 = x0.shape
    pad = ((0, (-H0) % w.cell[0]), (0, (-W0) % w.cell[1]))
    v = np.pad(v0, pad)
    x = np.pad(np.where(v0, x0, 0.0).astype(np.float32), pad)
    sea = v.copy()
    if p.land_auto:
        sea &= ~auto_land(x, v, p, w)
    vt, ct, ht = molc_luts(p.pfa)
    _, _, ht_ext = molc_luts(p.pfa_extent)
    md = sea & (x > 0)
    lx = np.log(np.maximum(x.astype(np.float64), 1e-30))
    ys = target_mean(x, sea, w.target)
    ly = np.log(np.maximum(ys, 1e-30))
    frame = cell_sums(np.pad(np.ones((H0, W0)), pad), w.cell)
    _, _, n = ring_stats(lx, md, frame, w)
    my, vy, _ = ring_stats(ly, md, frame, w)
    testable = sea & up(n >= p.min_bg_fraction, w.cell)
    hit1 = testable & (ly > up(my + interp_v(vy, vt, ht), w.cell))
    bg = md & ~dilate(hit1, *w.merge)
    mx, vx, n = ring_stats(lx, bg, frame, w)
    my, vy, _ = ring_stats(ly, bg, frame, w)
    testable = sea & up(n >= p.min_bg_fraction, w.cell)
    strong = testable & (ly > up(my + interp_v(vy, vt, ht), w.cell))
    ext = testable & (lx > up(mx + interp_v(vx, vt, ht_ext), w.cell))
    bg_mean = up(np.exp(mx + interp_v(vx, vt, ct)), w.cell)
    eight = np.ones((3, 3), bool)
    lab, k = ndimage.label(ext, structure=eight)
    if k == 0:
        return []
    has = np.zeros(k + 1, bool)
    has[np.unique(lab[strong & ext])] = True
    has[0] = False
    keep = has[lab]
    if not keep.any():
        return []
    glab, _ = ndimage.label(dilate(keep, *w.merge) & v, structure=eight)
    klab = np.where(keep, glab, 0)
    uniq = np.unique(klab[keep])
    remap = np.zeros(int(glab.max()) + 1, np.int64)
    remap[uniq] = np.arange(1, len(uniq) + 1)
    klab = remap[klab]
    table = object_table(x, ys, klab, len(uniq), strong, bg_mean, sp, w, p)
    return discriminate(table, spacing_m=sp, resolution_m=w.resolution_m, rules=p.rules(), detector="sar-cfar")
