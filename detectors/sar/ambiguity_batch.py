"""The azimuth-ghost test's possible parents for all of a tile's candidates at once, as tensor operations.

:func:`~detectors.sar.ambiguity.parents` runs a dozen small NumPy steps per candidate on the host;
with a few hundred candidates per tile (the sub-threshold evidence peaks included) that loop is the
largest host cost left in the learned detector's post-processing on a GPU once the peak geometry
is batched (``docs/performance.md``, "Post-processing on the device"). :func:`parents_batch`
gives the same :class:`Parent` lists from batched operations on the tile's device:

- each candidate's seed (the brightest pixel within 2 px) and its column band's per-row maximum
  are gathered for all candidates at once; rows far and bright enough are the possible parents,
  one per run of such rows, at the run's brightest row (first of equals, as ``np.argmax``);
- every column span (:func:`~detectors.sar.ambiguity._col_span`, the candidate's and each
  parent's) is one gather of 5 x 401 pixels and a search for the nearest column below the floor;
- column-energy profiles, their correlation and the azimuth spreads are masked sums in float64
  over padded windows.

Comparisons with dB thresholds are made in float32 with float32 thresholds, as NumPy makes them
on a float32 tile, so the rows, runs and spans are the same; sums in another order move energies
by ~1e-15 relative (``tests/test_sar_ambiguity_batch.py`` checks the two against each other). The
column profiles are summed row by row, as NumPy sums over an axis, so a profile of equal columns
is exactly equal (its correlation is then 0, as with NumPy's zero standard deviation).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from detectors.sar.ambiguity import (BAND_HALF_PX, MIN_RATIO_DB, MIN_SEPARATION_M, PARENT_MIN_CONTRAST_DB,
                                     PROFILE_HALF_PX, SPAN_DROP_DB, Parent)

#: Half-width of the column profile a span is searched in (``_col_span``'s ``max_half``).
SPAN_MAX_HALF = 200


def _col_spans(db: torch.Tensor, r: torch.Tensor, c: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(lo, hi) columns of ``_col_span(db, r, c, SPAN_DROP_DB)`` for each (r, c), as long tensors."""
    h, w = db.shape
    dev = db.device
    dr = torch.arange(-2, 3, device=dev)
    dc = torch.arange(-SPAN_MAX_HALF, SPAN_MAX_HALF + 1, device=dev)
    rows, cols = r[:, None] + dr, c[:, None] + dc
    rok, cok = (rows >= 0) & (rows < h), (cols >= 0) & (cols < w)
    vals = db[rows.clamp(0, h - 1)[:, :, None], cols.clamp(0, w - 1)[:, None, :]]
    vals = torch.where(rok[:, :, None], vals, torch.tensor(-math.inf, dtype=db.dtype, device=dev))
    prof = torch.where(cok, vals.amax(1), torch.tensor(-math.inf, dtype=db.dtype, device=dev))
    k = SPAN_MAX_HALF
    floor = (prof[:, k].double() - SPAN_DROP_DB).float()  # a Python float against float32 pixels
    bad = prof < floor[:, None]
    idx = torch.arange(dc.numel(), device=dev)
    left = torch.where(bad & (idx < k), idx, -1).amax(1) + 1
    right = torch.where(bad & (idx > k), idx, dc.numel()).amin(1) - 1
    return c + left - k, c + right - k


def _masked_rows(power: torch.Tensor, r: torch.Tensor, half: torch.Tensor, c0: torch.Tensor, ncols: torch.Tensor,
                 sea: float) -> tuple[torch.Tensor, torch.Tensor]:
    """(Q, R, C) of power - sea (float64) over rows r +- half and columns c0 .. c0 + ncols - 1, zero
    outside those (and outside the tile), and the (Q, R) row numbers."""
    h, w = power.shape
    dev = power.device
    R, C = int(2 * half.max()) + 1, int(ncols.max())
    rows = r[:, None] - half[:, None] + torch.arange(R, device=dev)
    cols = c0[:, None] + torch.arange(C, device=dev)
    rok = (rows <= r[:, None] + half[:, None]) & (rows >= 0) & (rows < h)  # rows start at r - half
    cok = torch.arange(C, device=dev)[None] < ncols[:, None]
    vals = power[rows.clamp(0, h - 1)[:, :, None], cols.clamp(0, w - 1)[:, None, :]].double() - sea
    return torch.where(rok[:, :, None] & cok[:, None, :], vals, torch.zeros((), dtype=vals.dtype, device=dev)), rows


def _spread(e_rows: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
    """``_row_spread`` from per-row energies (Q, R) (zero on masked rows) at row numbers ``rows``."""
    e = e_rows.clamp(min=0.0)
    tot = e.sum(1)
    safe = torch.where(tot > 0, tot, torch.ones_like(tot))
    y = rows.double()
    mu = (e * y).sum(1) / safe
    return torch.where(tot > 0, torch.sqrt((e * (y - mu[:, None]) ** 2).sum(1) / safe), torch.zeros_like(tot))


def _profiles(power: torch.Tensor, r: torch.Tensor, half: torch.Tensor, c0: torch.Tensor, ncols: torch.Tensor,
              sea: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Per query: the column-energy profile (``_column_energy``: rows r +- half, columns c0 ..
    c0 + ncols - 1; (Q, max ncols), zero beyond its own columns) and ``_row_spread`` (rows r +-
    (half + 8)). Queries are grouped by the power-of-two bucket of their half-size, so one large
    ship's window does not set the padded size of every small boat's."""
    q = r.numel()
    prof = torch.zeros((q, int(ncols.max())), dtype=torch.float64, device=power.device)
    spread = torch.zeros(q, dtype=torch.float64, device=power.device)
    bucket = torch.ceil(torch.log2(half.double())).long()
    for b in torch.unique(bucket).tolist():
        sel = torch.nonzero(bucket == b)[:, 0]
        vals, _ = _masked_rows(power, r[sel], half[sel], c0[sel], ncols[sel], sea)
        # Row by row, as NumPy sums over axis 0: every column added in the same order, so a hull
        # that is flat across its columns gives a profile of equal values (its std exactly 0).
        p = torch.cumsum(vals, 1)[:, -1]
        prof[sel, : p.shape[1]] = p
        svals, srows = _masked_rows(power, r[sel], half[sel] + 8, c0[sel], ncols[sel], sea)
        spread[sel] = _spread(svals.sum(2), srows)
    return prof, spread


def parents_batch(db: torch.Tensor, linear: torch.Tensor, candidates: Sequence[tuple[float, float]], median_db: float,
                  spacing_m: float, half_sizes: Sequence[int], sea: float) -> list[list[Parent]]:
    """:func:`~detectors.sar.ambiguity.parents` (its first value) for every candidate.

    ``db``: the tile in dB (float32, any device); ``linear``: the same tile as linear power;
    ``half_sizes``: each candidate's profile half-size (ints, as ``ghost_flags`` passes them);
    ``sea``: :func:`~detectors.sar.ambiguity.sea_level` of the tile."""
    n = len(candidates)
    if n == 0:
        return []
    h, w = db.shape
    dev = db.device
    neg = torch.tensor(-math.inf, dtype=db.dtype, device=dev)
    # Python's round, as parents(): half to even.
    r = torch.tensor([int(min(max(round(rc[0]), 0), h - 1)) for rc in candidates], device=dev)
    c = torch.tensor([int(min(max(round(rc[1]), 0), w - 1)) for rc in candidates], device=dev)
    d5 = torch.arange(-2, 3, device=dev)
    wr, wc = r[:, None] + d5, c[:, None] + d5
    ok5 = ((wr >= 0) & (wr < h))[:, :, None] & ((wc >= 0) & (wc < w))[:, None, :]
    win = torch.where(ok5, db[wr.clamp(0, h - 1)[:, :, None], wc.clamp(0, w - 1)[:, None, :]], neg).flatten(1)
    k = win.argmax(1)
    pr, pc = r + k // 5 - 2, c + k % 5 - 2
    peak = win.gather(1, k[:, None])[:, 0]
    # The column band's per-row maximum (columns pc-1 .. pc+1, inside the tile).
    b0 = (pc - BAND_HALF_PX).clamp(min=0)
    bc = b0[:, None] + torch.arange(2 * BAND_HALF_PX + 1, device=dev)
    bok = bc <= (pc[:, None] + BAND_HALF_PX).clamp(max=w - 1)
    sub = torch.where(bok[:, None, :], db[:, bc.clamp(max=w - 1)].permute(1, 0, 2), neg)  # (n, h, 3)
    band = sub.amax(2)
    need = torch.maximum(peak.double() + MIN_RATIO_DB, torch.tensor(median_db + PARENT_MIN_CONTRAST_DB,
                                                                    dtype=torch.float64, device=dev)).float()
    rows = torch.arange(h, device=dev)
    ok = ((rows[None] - pr[:, None]).abs().double() * spacing_m >= MIN_SEPARATION_M) & (band >= need[:, None])
    # Runs of bright rows, one parent each: (candidate, row) at its brightest row (first of equals).
    okp = torch.nn.functional.pad(ok, (1, 0))
    start = ok & ~okp[:, :-1]
    run = torch.cumsum(start.flatten(), 0).view(n, h) - 1  # global run id, valid where ok
    n_runs = int(start.sum())
    out: list[list[Parent]] = [[] for _ in range(n)]
    if n_runs == 0:
        return out
    rid = run[ok]
    best = torch.full((n_runs,), -math.inf, dtype=band.dtype, device=dev).scatter_reduce(0, rid, band[ok], "amax")
    row_of = rows[None].expand(n, h)[ok]
    first = torch.full((n_runs,), h, dtype=torch.long, device=dev).scatter_reduce(
        0, rid, torch.where(band[ok] == best[rid], row_of, h), "amin")
    cand = torch.zeros((n_runs,), dtype=torch.long, device=dev).scatter_reduce(
        0, rid, torch.nonzero(ok)[:, 0], "amax")
    j = first
    jc = b0[cand] + sub[cand, j].argmax(1)
    has = torch.zeros(n, dtype=torch.bool, device=dev)
    has[cand] = True
    ci = torch.nonzero(has)[:, 0]  # candidates with at least one possible parent
    m = ci.numel()
    # Column spans: the candidates' own, then the parents'.
    lo, hi = _col_spans(db, torch.cat([pr[ci], j]), torch.cat([pc[ci], jc]))
    slot = torch.full((n,), -1, dtype=torch.long, device=dev)
    slot[ci] = torch.arange(m, device=dev)
    mlo, mhi = lo[:m][slot[cand]], hi[:m][slot[cand]]
    plo, phi = lo[m:], hi[m:]
    inter = torch.minimum(mhi, phi) - torch.maximum(mlo, plo) + 1
    union = torch.maximum(mhi, phi) - torch.minimum(mlo, plo) + 1
    iou = (inter.double() / union.double()).clamp(min=0.0)
    # Profiles over each candidate's column window, summed over rows r +- half (the candidate's and each parent's).
    hp = torch.tensor([int(x) for x in half_sizes], device=dev)
    half = hp.clamp(min=PROFILE_HALF_PX)
    c0 = (pc - half).clamp(min=0)
    ncols = torch.minimum(pc + half, torch.full_like(pc, w - 1)) - c0 + 1
    q_r = torch.cat([pr[ci], j])
    q_cand = torch.cat([ci, cand])
    prof, spread = _profiles(linear, q_r, half[q_cand], c0[q_cand], ncols[q_cand], sea)
    energy = prof.sum(1)
    pc_prof, pp_prof = prof[:m][slot[cand]], prof[m:]
    e_c, e_p = energy[:m][slot[cand]], energy[m:]
    s_c, s_p = spread[:m][slot[cand]], spread[m:]
    ncol = ncols[cand].double()
    colmask = torch.arange(prof.shape[1], device=dev)[None] < ncols[cand][:, None]
    a = pc_prof - (pc_prof.sum(1) / ncol)[:, None]
    b = pp_prof - (pp_prof.sum(1) / ncol)[:, None]
    a, b = torch.where(colmask, a, 0.0), torch.where(colmask, b, 0.0)
    saa, sbb, sab = (a * a).sum(1), (b * b).sum(1), (a * b).sum(1)

    def varies(p: torch.Tensor) -> torch.Tensor:  # std > 0: not every column the same (a flat hull's profile is)
        inf = torch.tensor(math.inf, dtype=p.dtype, device=dev)
        return torch.where(colmask, p, -inf).amax(1) > torch.where(colmask, p, inf).amin(1)

    corr = torch.where(varies(pc_prof) & varies(pp_prof) & (saa > 0) & (sbb > 0),
                       (sab / torch.sqrt(saa * sbb).clamp(min=1e-300)).clamp(-1.0, 1.0), torch.zeros_like(sab))
    ratio = torch.where(e_c <= 0, torch.full_like(e_c, math.inf),
                        torch.where(e_p > 0, 10.0 * torch.log10(e_p / torch.where(e_c > 0, e_c, 1.0)),
                                    torch.full_like(e_c, -math.inf)))
    srat = torch.where(s_p > 0, s_c / torch.where(s_p > 0, s_p, 1.0), torch.zeros_like(s_p))
    cols_np = [t.cpu().tolist() for t in (cand, j, pr[cand], iou, ratio, corr, srat, hp[cand])]
    for k_, jj, prr, io, ra, co, sr, hpx in sorted(zip(*cols_np), key=lambda t: (t[0], t[1])):
        out[k_].append(Parent(offset_m=float((jj - prr) * spacing_m), span_iou=float(io),
                              length_m=float(2 * hpx * spacing_m), energy_ratio_db=float(ra), corr=float(co),
                              spread_ratio=float(sr)))
    return out
