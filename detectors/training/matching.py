"""Minimal one-to-one detection/truth matching used by the SAR training script for threshold choice.

Hungarian assignment (scipy) on centre distance; a pair may match only when the distance is
within the truth's gate. The benchmark (``benchmarks/eval_learned.py``) uses the shared
``benchmarks/eval_vessels.py`` matching when it is available; this copy exists so the training
script does not depend on the benchmarks folder (not an installed package).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy.optimize import linear_sum_assignment


def match(det_rc: Sequence[tuple[float, float]], truth_rc: Sequence[tuple[float, float]],
          gates: Sequence[float | tuple[float, float]]) -> list[tuple[int, int]]:
    """Pairs (det_index, truth_index) minimising total distance, each within its truth's gate.

    A gate is a radius (pixels) or a (half_height, half_width) box around the truth centre
    (COCO boxes grown by 2 px, as ``benchmarks/eval_vessels.py`` matches SSDD)."""
    if len(det_rc) == 0 or len(truth_rc) == 0:
        return []
    d = np.asarray(det_rc, np.float64)[:, None, :] - np.asarray(truth_rc, np.float64)[None, :, :]
    dist = np.hypot(d[..., 0], d[..., 1])
    ok = np.zeros(dist.shape, bool)
    for j, g in enumerate(gates):
        if isinstance(g, tuple):
            ok[:, j] = (np.abs(d[:, j, 0]) <= g[0]) & (np.abs(d[:, j, 1]) <= g[1])
        else:
            ok[:, j] = dist[:, j] <= g
    big = 1e9
    cost = np.where(ok, dist, big)
    ri, ci = linear_sum_assignment(cost)
    return [(int(i), int(j)) for i, j in zip(ri, ci) if cost[i, j] < big]


def prf(tp: int, n_det: int, n_truth: int) -> tuple[float, float, float]:
    """Precision, recall, F1 (1.0 for empty denominators)."""
    p = tp / n_det if n_det else 1.0
    r = tp / n_truth if n_truth else 1.0
    f = 2 * p * r / (p + r) if (p + r) else 0.0
    return p, r, f
