"""The dense-group expert: a second network asked only around what the main one found, and
believed only where it sees a group there.

Why: every way tried of moving the one shipped network towards dense groups (fine-tuning on
generated groups, weight blends, anchored fine-tuning; ``docs/evaluation.md``) separated group
members on the generator (group recall 0.38 -> 0.80-0.88 on validation) and cost real SSDD chips,
which are nearly all isolated ships. A hard-gated mixture of experts keeps the main weights'
answer on isolated ships and lets the group-trained weights answer where they see a group:

1. **Windows** (:func:`group_windows`): the :data:`~detectors.sar.cascade.BLOCK` px blocks of the
   working grid that hold a main detection, dilated by :data:`DILATE_BLOCKS` (64 m each side on
   the 1 m grid, so a group within 100 m of any member the main weights found is inside), merged
   into disjoint windows.
2. **The expert** runs in those windows only (:func:`~detectors.sar.cascade.heads_in_windows`) with
   its own post-processing and threshold (:meth:`~detectors.sar.learned._SarLearnedBase.finish`).
3. **The gate** (:func:`gate`): in a window where the expert finds at least :data:`GROUP_MIN`
   objects and more than the main weights, its detections farther than :data:`UNION_M` from every
   main one are added to them; elsewhere the main weights' stand alone.

Only on the 1 m working grid (inputs of 1 m and finer), where group members are resolvable;
coarser grids are the main (or coarse) weights alone. The rule that fixed these constants before
anything was evaluated: ``benchmarks/results/group_expert/CHOICE_RULE.txt``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F

from detectors.types import Detection
from detectors.sar.cascade import BLOCK
from detectors.windows import Window, windows_from_blocks

__all__ = ["DILATE_BLOCKS", "GROUP_MIN", "UNION_M", "gate", "group_windows", "in_window"]

#: Blocks of context around each block holding a main detection (2 x 32 px = 64 m at 1 m).
DILATE_BLOCKS = 2
#: The gate's union form (chosen in round 3 of the rule): in a window the expert takes, the main
#: detections all stay and an expert detection is added when it lies farther than this many metres
#: (a lifeboat's length) from every main one. Replacing the main detections instead (rounds 1-2)
#: lost ordinary lifeboats the expert scores lower than the main weights do.
UNION_M = 5.0
#: The expert's detections take a window only if it finds at least this
#: many there (the issue's smallest group is 3 lifeboats) and more than the main weights did.
GROUP_MIN = 3


def group_windows(points: Sequence[tuple[float, float]], shape: tuple[int, int], block: int = BLOCK,
                  dilate: int = DILATE_BLOCKS) -> list[Window]:
    """Working-grid (row, col) points of the main detections -> disjoint windows (working px,
    within ``shape``) of the blocks holding them, dilated by ``dilate`` blocks."""
    h, w = int(shape[0]), int(shape[1])
    nb_r, nb_c = -(-h // block), -(-w // block)
    marked = torch.zeros((1, 1, nb_r, nb_c))
    for r, c in points:
        marked[0, 0, min(max(int(r) // block, 0), nb_r - 1), min(max(int(c) // block, 0), nb_c - 1)] = 1.0
    if not bool(marked.any()):
        return []
    k = 2 * int(dilate) + 1  # dilation by max pooling, as the cascade's prescreen dilates its blocks
    marked = F.max_pool2d(marked, k, 1, int(dilate))[0, 0].numpy() > 0
    return windows_from_blocks(marked, block, (h, w))


def in_window(point: tuple[float, float], win: Window) -> bool:
    """Whether a working-grid (row, col) point lies in ``win`` (end-exclusive)."""
    r0, r1, c0, c1 = win
    return r0 <= point[0] < r1 and c0 <= point[1] < c1


def gate(main: list[Detection], main_at: Sequence[tuple[float, float]], expert: list[Detection],
         expert_at: Sequence[tuple[float, float]], windows: list[Window],
         group_min: int = GROUP_MIN, union_px: float | None = None) -> tuple[list[Detection], int]:
    """The tile's detections after the gate, and how many windows the expert took.

    ``main_at`` / ``expert_at``: each detection's working-grid (row, col). Per window, the expert
    takes it when it finds at least ``group_min`` objects there and more than the main weights.
    There its detections replace the main ones, or, with ``union_px`` (working px), the main ones
    stay and each expert detection farther than ``union_px`` from every main one is added (the
    expert misses some objects the main weights find). Detections outside every window are the
    main weights' (the expert ran nowhere else; any of its detections outside a window are dropped)."""
    replaced: list[int] = []
    for k, win in enumerate(windows):
        n_main = sum(in_window(p, win) for p in main_at)
        n_exp = sum(in_window(p, win) for p in expert_at)
        if n_exp >= group_min and n_exp > n_main:
            replaced.append(k)
    if not replaced:
        return list(main), 0
    wins = [windows[k] for k in replaced]
    taken = [(d, p) for d, p in zip(expert, expert_at) if any(in_window(p, w) for w in wins)]
    if union_px is not None:
        far = [d for d, p in taken if all(math.hypot(p[0] - q[0], p[1] - q[1]) > union_px for q in main_at)]
        return list(main) + far, len(replaced)
    kept = [d for d, p in zip(main, main_at) if not any(in_window(p, w) for w in wins)]
    return kept + [d for d, _p in taken], len(replaced)
