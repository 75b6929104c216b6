"""Fire pixels -> one Detection per connected fire (pure numpy; no scipy in ``detectors/``).

Why sparse coordinates: the pipeline collects the fire pixels each tile *owns* (its core) in
scene coordinates and clusters them once for the whole scene, so a fire straddling a tile
border becomes one alert, not two halves. Fire pixels are a tiny fraction of a scene, so a
sparse union-find on them is cheaper than labelling a scene-sized raster.
"""

from __future__ import annotations

import logging

import numpy as np

from detectors.errors import DetectorInputError
from detectors.types import Detection, FireMap

log = logging.getLogger(__name__)

#: MODIS Collection 6 / FIRMS confidence classes (MOD14 user guide): low < 30 % <= nominal < 80 % <= high.
FIRMS_LOW_MAX = 0.3
FIRMS_HIGH_MIN = 0.8


def firms_confidence_class(confidence: float) -> str:
    """FIRMS class of a confidence in [0, 1]: "low", "nominal" or "high"."""
    if confidence >= FIRMS_HIGH_MIN:
        return "high"
    if confidence >= FIRMS_LOW_MAX:
        return "nominal"
    return "low"


def firemap_to_pixels(firemap: FireMap, row_off: int, col_off: int,
                      core: tuple[int, int, int, int] | None = None
                      ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Fire pixels of one tile in scene coordinates: (rows, cols, confidence, intensity).

    ``core`` = (r0, c0, r1, c1), half-open, in *scene* coordinates: only pixels the tile owns are
    returned, so overlapping tiles never report a pixel twice. None keeps every fire pixel.
    """
    mask = firemap.mask
    rr, cc = (t.cpu().numpy() for t in mask.nonzero(as_tuple=True))
    conf = firemap.confidence[mask].float().cpu().numpy()
    inten = firemap.intensity[mask].float().cpu().numpy()
    rows = rr.astype(np.int64) + int(row_off)
    cols = cc.astype(np.int64) + int(col_off)
    if core is not None:
        r0, c0, r1, c1 = (int(v) for v in core)
        keep = (rows >= r0) & (rows < r1) & (cols >= c0) & (cols < c1)
        rows, cols, conf, inten = rows[keep], cols[keep], conf[keep], inten[keep]
    return rows, cols, conf.astype(np.float32), inten.astype(np.float32)


def _components(rows: np.ndarray, cols: np.ndarray, connectivity: int) -> np.ndarray:
    """Component label (0..k-1, by first pixel in row-major order) of unique pixels (rows, cols)."""
    n = rows.size
    width = int(cols.max()) + 3
    keys = rows * width + cols
    order = np.argsort(keys, kind="stable")
    skeys = keys[order]
    offsets = [(0, 1), (1, 0)] if connectivity == 4 else [(0, 1), (1, -1), (1, 0), (1, 1)]
    src_list, dst_list = [], []
    for dr, dc in offsets:
        nk = (rows + dr) * width + (cols + dc)
        pos = np.searchsorted(skeys, nk)
        pos_c = np.minimum(pos, n - 1)
        hit = skeys[pos_c] == nk
        src_list.append(np.nonzero(hit)[0])
        dst_list.append(order[pos_c[hit]])
    src = np.concatenate(src_list)
    dst = np.concatenate(dst_list)
    parent = np.arange(n)
    # Min-label propagation with pointer jumping: converges in O(log diameter) outer rounds
    # for blob-like fires; every round is vectorised.
    while True:
        m = np.minimum(parent[src], parent[dst])
        new = parent.copy()
        np.minimum.at(new, src, m)
        np.minimum.at(new, dst, m)
        np.minimum.at(new, parent, new)  # propagate to the roots as well
        while True:
            jumped = new[new]
            if np.array_equal(jumped, new):
                break
            new = jumped
        if np.array_equal(new, parent):
            break
        parent = new
    _, labels = np.unique(parent, return_inverse=True)
    return labels


def cluster_fire_pixels(rows: np.ndarray, cols: np.ndarray, confidence: np.ndarray,
                        intensity: np.ndarray, pixel_area_m2: float, detector: str,
                        connectivity: int = 8) -> list[Detection]:
    """Group fire pixels (scene coordinates) into connected fires, one Detection each.

    ``row``/``col`` is the intensity-weighted centroid (it leans towards the hottest, most
    actionable part of a front), falling back to the plain centroid when all intensities are
    zero; ``score`` is the cluster's highest pixel confidence and ``attrs["confidence"]`` its
    FIRMS class. ``swir_excess`` sums the pixel intensities; ``frp_proxy`` is that times the
    pixel area (a radiative-power proxy in reflectance x m^2, not calibrated FRP in MW).
    Duplicate pixels (e.g. from overlapping tiles without cores) are merged, keeping the maxima.
    """
    if connectivity not in (4, 8):
        raise DetectorInputError(f"connectivity must be 4 or 8, got {connectivity!r}")
    try:
        area = float(pixel_area_m2)
    except (TypeError, ValueError):
        raise DetectorInputError(f"pixel_area_m2 must be a number, got {pixel_area_m2!r}") from None
    if not (area > 0 and np.isfinite(area)):
        raise DetectorInputError(f"pixel_area_m2 must be > 0 and finite, got {pixel_area_m2!r}")
    arrs = [np.asarray(a).reshape(-1) for a in (rows, cols, confidence, intensity)]
    if len({a.size for a in arrs}) != 1:
        raise DetectorInputError("rows, cols, confidence and intensity must have the same length, got "
                                 + ", ".join(str(a.size) for a in arrs))
    r, c = arrs[0].astype(np.int64), arrs[1].astype(np.int64)
    if r.size == 0:
        return []
    if not (np.array_equal(r, arrs[0]) and np.array_equal(c, arrs[1])):
        raise DetectorInputError("rows and cols must be integer pixel indices")
    conf = np.nan_to_num(arrs[2].astype(np.float64), nan=0.0).clip(0.0, 1.0)
    inten = np.nan_to_num(arrs[3].astype(np.float64), nan=0.0, posinf=0.0).clip(min=0.0)
    # shift to non-negative coordinates for key encoding; merge duplicate pixels (max of values)
    r0, c0 = int(r.min()), int(c.min())
    rs, cs = r - r0, c - c0
    width = int(cs.max()) + 1
    keys = rs * width + cs
    ukeys, inv = np.unique(keys, return_inverse=True)
    if ukeys.size != keys.size:
        log.debug("cluster_fire_pixels: merged %d duplicate pixels", keys.size - ukeys.size)
    uconf = np.zeros(ukeys.size)
    uint = np.zeros(ukeys.size)
    np.maximum.at(uconf, inv, conf)
    np.maximum.at(uint, inv, inten)
    ur = ukeys // width
    uc = ukeys % width
    labels = _components(ur, uc, connectivity)
    order = np.argsort(labels, kind="stable")
    bounds = np.flatnonzero(np.diff(labels[order])) + 1
    out: list[Detection] = []
    for grp in np.split(order, bounds):
        gr, gc = ur[grp] + r0, uc[grp] + c0
        w = uint[grp]
        tot = float(w.sum())
        if tot > 0:
            row, col = float((gr * w).sum() / tot), float((gc * w).sum() / tot)
        else:
            row, col = float(gr.mean()), float(gc.mean())
        # Confidences are rounded to 1e-4: a model's probabilities differ in the ~9th digit between
        # thread counts (summation order), and the same scene must give byte-identical alerts.
        score = round(float(uconf[grp].max()), 4)
        n = int(grp.size)
        out.append(Detection(
            row=row, col=col, score=score, kind="fire", detector=detector,
            pixels=[(int(a), int(b)) for a, b in zip(gr, gc)], area_m2=n * area,
            attrs={"confidence": firms_confidence_class(score), "n_pixels": float(n),
                   "mean_confidence": round(float(uconf[grp].mean()), 4), "swir_excess": tot,
                   "frp_proxy": tot * area, "max_intensity": float(w.max()),
                   "centroid": "intensity-weighted" if tot > 0 else "plain"},
        ))
    out.sort(key=lambda d: (-d.score, d.row, d.col))
    return out
