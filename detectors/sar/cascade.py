"""The CPU cascade: a cheap prescreen picks the windows worth the network, the network runs only there.

Why: on a CPU the CenterNet costs ~1 s per working-grid megapixel (``benchmarks/profile_detector.py``:
conv2d is ~70 % of a tile), so a whole 0.5 m scene through it took longer than the classical
NumPy/SciPy CFAR, while nearly all of a sea scene is empty water where the network's heatmap is ~0.
A pixel the network could report is bright against the tile's clutter: the network's own first
input channel (``(dB - median) / 10``, :func:`~detectors.sar.network.normalise`) is high there,
and the CFAR (which ``sar-fused`` runs anyway for its measurements) has an object there. So:

1. **Prescreen**: working-grid pixels whose 3 x 3 mean power reaches :data:`PRESCREEN_CH0` (chosen on
   validation, see there), and the CFAR's objects when ``sar-fused`` runs the cascade, mark their
   :data:`BLOCK` x :data:`BLOCK` block; marked
   blocks are dilated by one block (context), and each connected group of blocks becomes a window
   (its bounding box; overlapping or touching windows are merged).
2. **Network on windows**: each window is cut from the tile's own normalised input (so the
   normalisation, taken over the whole tile, is exactly the full pass's) with :data:`MARGIN` more
   pixels of context on each side, run through the network, and its interior pasted into a
   full-tile heatmap and regression map that are zero elsewhere. The pyramid's coarse grids do the
   same with the windows scaled to their grid.
3. Everything after the heads (decoding, fine pass, shapes, ghost test) runs on the full-tile maps
   exactly as without the cascade.

The windows are tile-local and computed from data only, so a resumed scan reproduces them.

Status: an option (``sar-fused.cascade=true``), off by default. On a sparse sea it does what it
should (``tests/test_sar_cascade.py``: same detections, the network on under a third of the
pixels); on the whole-scene CPU benchmark (``benchmarks/scan_cpu.py``) the coastal scene keeps
~60 % of its pixels in the windows (land is bright, and the network must see harbours), so the
scan is barely faster than the full pass. Making it pay needs land interiors left out (the
CFAR's land mask, keeping a band along the coast) and a validated threshold; see
``benchmarks/results/cascade_validation.json``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from detectors.windows import Window, window_fraction, windows_from_blocks

__all__ = ["BLOCK", "MARGIN", "PRESCREEN_CH0", "Window", "heads_in_windows", "plan_windows", "prescreen_blocks",
           "window_fraction"]

#: Block size of the prescreen (working pixels, a multiple of 32 so every grid of the pyramid (2x, 4x
#: coarser) still cuts windows on its stride-2 lattice and 16 px padding).
BLOCK = 32
#: Context (pixels of the grid being run) added around each window before the network sees it,
#: beyond the one-block dilation: the pasted interior never comes from a crop edge.
MARGIN = 16
#: Prescreen threshold: a 3 x 3 mean power 5 dB over the tile's median (in channel-0 units, dB / 10).
#: From validation seeds 930-943 (0.5 and 1 m, 2048 px, with groups): the faintest of the full
#: pass's 164 detections reaches 0.56 there (a 2 m lifeboat; a 4 m one 0.72); 0.4 marks 84 % of the
#: blocks, 0.5 70 % (those scenes are half land, which is always marked). Neither this value nor
#: 1.0 passes the rule of ``benchmarks/experiments/try_cascade.py`` on seeds 944-969
#: (``benchmarks/results/cascade_validation.json``), which is why the cascade is off by default.
PRESCREEN_CH0 = 0.5



def prescreen_blocks(feats: torch.Tensor, threshold: float = PRESCREEN_CH0, block: int = BLOCK,
                     points: Sequence[tuple[float, float]] = ()) -> np.ndarray:
    """(2, h, w) normalised tile -> bool (h/block, w/block) blocks worth the network, dilated by one:
    those holding a pixel whose 3 x 3 mean power reaches ``threshold`` x 10 dB over the tile's
    median (channel 0 is ``(dB - median) / 10``), or one of ``points`` (working-grid row, col: the
    candidates of another detector, e.g. the CFAR's objects)."""
    rel = torch.pow(10.0, feats[None, 0:1])  # power / tile median (channel 0's clamp bounds it)
    mean3 = F.avg_pool2d(rel, 3, 1, 1, count_include_pad=False)  # a lone speckle spike is not a hull
    marked = F.max_pool2d((mean3 >= 10.0 ** threshold).to(torch.float32), block, block, ceil_mode=True)[0, 0]
    if points:
        idx = torch.tensor([[int(r) // block, int(c) // block] for r, c in points], dtype=torch.long)
        idx[:, 0].clamp_(0, marked.shape[0] - 1)
        idx[:, 1].clamp_(0, marked.shape[1] - 1)
        marked[idx[:, 0].to(marked.device), idx[:, 1].to(marked.device)] = 1.0
    marked = F.max_pool2d(marked[None, None], 3, 1, 1)  # one block of context on every side
    return marked[0, 0].cpu().numpy() > 0


def plan_windows(feats: torch.Tensor, threshold: float = PRESCREEN_CH0, block: int = BLOCK,
                 points: Sequence[tuple[float, float]] = ()) -> list[Window]:
    """(2, h, w) normalised tile (h, w multiples of 16) -> disjoint windows in working pixels
    (:func:`detectors.windows.windows_from_blocks`)."""
    marked = prescreen_blocks(feats, threshold, block, points)
    return windows_from_blocks(marked, block, (int(feats.shape[-2]), int(feats.shape[-1])))


def heads_in_windows(heads: Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]], feats: torch.Tensor,
                     windows: list[Window], factor: int = 1, margin: int = MARGIN
                     ) -> tuple[torch.Tensor, torch.Tensor]:
    """The network's (heat, reg) for one (1, 2, h, w) input of a grid ``factor`` x coarser than the
    working grid the ``windows`` are in, computed only in those windows (zero elsewhere).

    Each window is scaled to this grid, rounded outwards to the 16 px lattice, grown by ``margin``
    (clipped to the input), run, and its unmargined part pasted at stride 2."""
    h, w = int(feats.shape[-2]), int(feats.shape[-1])
    heat = feats.new_zeros((feats.shape[0], 1, h // 2, w // 2))
    reg = feats.new_zeros((feats.shape[0], 4, h // 2, w // 2))

    def lattice(lo: int, hi: int, n: int) -> tuple[int, int, int, int]:
        a0 = (lo // factor) // 16 * 16
        a1 = min(n, -(-(-(-hi // factor)) // 16) * 16)
        return a0, a1, max(0, a0 - margin), min(n, a1 + margin)

    for r0, r1, c0, c1 in windows:
        a0, a1, cr0, cr1 = lattice(r0, r1, h)
        b0, b1, cc0, cc1 = lattice(c0, c1, w)
        if a1 <= a0 or b1 <= b0:
            continue
        hh, rr = heads(feats[..., cr0:cr1, cc0:cc1])
        ir, ic = (a0 - cr0) // 2, (b0 - cc0) // 2
        nr, nc = (a1 - a0) // 2, (b1 - b0) // 2
        heat[..., a0 // 2:a0 // 2 + nr, b0 // 2:b0 // 2 + nc] = hh[..., ir:ir + nr, ic:ic + nc]
        reg[..., a0 // 2:a0 // 2 + nr, b0 // 2:b0 // 2 + nc] = rr[..., ir:ir + nr, ic:ic + nc]
    return heat, reg
