"""``sar-fused``: the learned detector decides *where* (and whether), the CFAR measures *what*.

Why a combination: on data neither saw (benchmarks/results/eval_learned.json) the learned
CenterNet finds more ships with fewer false alarms than the CFAR (real SSDD hold-out F1 0.77 vs
0.26; fresh generated scenes 0.81 vs 0.69, lifeboat recall 0.98 vs 0.64), but its box regression
is poor on long hulls: it often reports a 50-170 m ship as a 2-5 m blob, i.e. as a *lifeboat*,
which would send a rescue crew to a tanker. The CFAR segments every bright object pixel by pixel
and measures length, width and heading from the pixels themselves (median length error ~1 m on
generated scenes, lifeboat/vessel accuracy 0.98), but its detections include coastline and
ambiguity false alarms. So:

* every learned detection is kept (its position and score);
* when a CFAR object lies within ``max(10 m, L_cfar / 2)`` of it (L_cfar: the CFAR object's
  length: a learned peak anywhere on a long hull is "on" that object), the alert takes the CFAR's
  length, width, heading and therefore its kind (lifeboat <= 12 m), and ``attrs["cfar"] = 1``;
  each CFAR object lends its geometry to the nearest learned detection only;
* CFAR objects with no learned detection nearby are *not* reported (they are where the CFAR's
  false alarms are; the learned model missed few real ships in validation).

Operating points. On validation scenes (generated seeds 900-911, never used for the reported
numbers) 31 of the 34 false alarms were learned detections *without* CFAR support (mostly
azimuth ambiguities of bright ships), but so were 19 of the 100 hits, 17 of them lifeboats
(faint, below the CFAR's 15 dB contrast rule). ``unconfirmed_min_score`` asks unconfirmed
detections for a higher score: at 0.48 validation precision rose from 0.75 to 0.93 and F1 from
0.82 to 0.90, but lifeboat recall fell from 0.91 to 0.85. Rescue users miss no lifeboat they can
avoid missing, so the default keeps every learned detection (``None``); ``PRECISE_UNCONFIRMED``
is the validated precision-first setting (``sar-fused-precise``).

Both detectors run on the same device; the fused detector needs the larger of their overlaps.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import torch

from detectors.errors import DetectorInputError
from detectors.registry import register
from detectors.types import LIFEBOAT_MAX_LENGTH_M, Detection

#: A learned detection takes the geometry of a CFAR object whose centre is within this many
#: metres, or within half the CFAR object's length, whichever is larger.
MATCH_FLOOR_M = 10.0
#: Minimum learned score of a detection no CFAR object confirms, for the precision-first
#: operating point (chosen on validation seeds 900-911; see the module docstring).
PRECISE_UNCONFIRMED = 0.48


def fuse(learned: list[Detection], cfar: list[Detection], spacing_m: tuple[float, float],
         name: str = "sar-fused", unconfirmed_min_score: float | None = None) -> list[Detection]:
    """Learned detections with CFAR geometry where a CFAR object confirms them (module docstring);
    with ``unconfirmed_min_score``, unconfirmed ones below that score are dropped."""
    dr, dc = float(spacing_m[0]), float(spacing_m[1])
    owner: dict[int, int] = {}  # cfar index -> learned index (nearest learned detection wins)
    best: dict[int, float] = {}
    for j, b in enumerate(cfar):
        reach = max(MATCH_FLOOR_M, 0.5 * float(b.length_m or 0.0))
        for i, a in enumerate(learned):
            d = math.hypot((a.row - b.row) * dr, (a.col - b.col) * dc)
            if d <= reach and d < best.get(j, math.inf):
                best[j], owner[j] = d, i
    lent: dict[int, Detection] = {}
    for j, i in owner.items():  # a learned detection on several CFAR objects takes the longest one
        if i not in lent or (cfar[j].length_m or 0.0) > (lent[i].length_m or 0.0):
            lent[i] = cfar[j]
    out = []
    for i, a in enumerate(learned):
        b = lent.get(i)
        attrs: dict[str, float | str] = dict(a.attrs)
        attrs["cfar"] = 1.0 if b is not None else 0.0
        if b is None:
            if unconfirmed_min_score is not None and a.score < unconfirmed_min_score:
                continue
            out.append(Detection(row=a.row, col=a.col, score=a.score, kind=a.kind, detector=name,
                                 length_m=a.length_m, width_m=a.width_m, heading_deg=a.heading_deg,
                                 attrs=attrs))
            continue
        for k in ("peak_db", "contrast_db"):
            if k in b.attrs:
                attrs[k] = b.attrs[k]
        length = b.length_m
        kind = "lifeboat" if length is not None and length <= LIFEBOAT_MAX_LENGTH_M else "vessel"
        out.append(Detection(row=a.row, col=a.col, score=a.score, kind=kind, detector=name,  # type: ignore[arg-type]
                             length_m=length, width_m=b.width_m, heading_deg=b.heading_deg, attrs=attrs))
    return out


@register("sar-fused", "sar")
class FusedSarDetector:
    """``sar-learned`` positions and scores with ``sar-cfar`` measurements (see the module doc)."""

    modality: ClassVar[str] = "sar"
    name = "sar-fused"
    version = "1.0"  # of the fusion rule; instances report "<learned version>+cfar<cfar version>"

    def __init__(self, device: torch.device | str | None = None, learned: dict[str, Any] | None = None,
                 cfar: dict[str, Any] | None = None, unconfirmed_min_score: float | None = None) -> None:
        """``learned`` / ``cfar``: keyword options passed to each inner detector;
        ``unconfirmed_min_score``: see the module docstring (None keeps every learned detection)."""
        if unconfirmed_min_score is not None and not 0.0 <= float(unconfirmed_min_score) <= 1.0:
            raise DetectorInputError(f"{self.name}: unconfirmed_min_score must be in [0, 1], got {unconfirmed_min_score}")
        self.unconfirmed_min_score = None if unconfirmed_min_score is None else float(unconfirmed_min_score)
        from detectors.sar.cfar import CfarDetector
        from detectors.sar.learned import LearnedSarDetector

        self.learned = LearnedSarDetector(device=device, **(learned or {}))
        self.cfar = CfarDetector(device=device, **(cfar or {}))
        self.device = self.learned.device
        self.version = f"{self.learned.version}+cfar{self.cfar.version}"

    def required_overlap_px(self, spacing_m: float | tuple[float, float] = 0.5) -> int:
        """The larger of the two detectors' overlaps (the CFAR's, in practice)."""
        return max(int(self.learned.required_overlap_px(spacing_m)), int(self.cfar.required_overlap_px(spacing_m)))

    def detect_batch(self, sigma0: torch.Tensor, *, spacing_m: tuple[float, float],
                     valid: torch.Tensor | None = None) -> list[list[Detection]]:
        """(B, H, W) tiles -> detections per tile."""
        lb = self.learned.detect_batch(sigma0, spacing_m=spacing_m, valid=valid)
        cb = self.cfar.detect_batch(sigma0, spacing_m=spacing_m, valid=valid)
        return [fuse(a, b, spacing_m, self.name, self.unconfirmed_min_score) for a, b in zip(lb, cb)]

    def detect(self, sigma0: torch.Tensor, *, spacing_m: tuple[float, float],
               valid: torch.Tensor | None = None) -> list[Detection]:
        """One (H, W) tile of linear sigma0 -> fused detections."""
        return self.detect_batch(sigma0[None], spacing_m=spacing_m,
                                 valid=None if valid is None else valid[None])[0]


@register("sar-fused-precise", "sar")
class PreciseFusedSarDetector(FusedSarDetector):
    """``sar-fused`` at the precision-first operating point (``PRECISE_UNCONFIRMED``)."""

    name = "sar-fused-precise"

    def __init__(self, device: torch.device | str | None = None, learned: dict[str, Any] | None = None,
                 cfar: dict[str, Any] | None = None, unconfirmed_min_score: float | None = PRECISE_UNCONFIRMED) -> None:
        super().__init__(device, learned, cfar, unconfirmed_min_score)
