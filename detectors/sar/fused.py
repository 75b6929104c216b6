"""``sar-fused``: the learned detector decides *where* (and whether), the CFAR measures *what*.

Why a combination: on data neither saw (benchmarks/results/eval_learned.json: generated seeds
1000-1019 and the real SSDD hold-out) the learned CenterNet finds more ships with far fewer
false alarms than the CFAR (generated F1 0.95 vs 0.67, lifeboat recall 0.89 vs 0.65; SSDD
0.87 vs 0.26), but its own length estimate comes from a blob around its peak and from its box,
which misjudges long hulls (median length error 3.8 m, lifeboat/vessel accuracy 0.87: a
50-170 m ship reported as a few-metre blob would be a *lifeboat* and send a rescue crew to a
tanker). The CFAR segments every bright object pixel by pixel and measures length, width and
heading from the pixels themselves (median length error 1.1 m, kind accuracy 0.99), but its
detections include coastline and ambiguity false alarms. Fused: kind accuracy 0.98, median
length error 1.2 m, the learned detector's detections. So:

* every learned detection is kept (its position and score);
* when a CFAR object lies within ``max(10 m, L_cfar / 2)`` of it (L_cfar: the CFAR object's
  length: a learned peak anywhere on a long hull is "on" that object), the alert takes the CFAR's
  length, width, heading and therefore its kind (lifeboat <= 12 m), and ``attrs["cfar"] = 1``;
  each CFAR object lends its geometry to the nearest learned detection only;
* CFAR objects with no learned detection nearby are *not* reported (they are where the CFAR's
  false alarms are; the learned model missed few real ships in validation).

Operating points. CFAR objects of 30 m or more that no learned detection lies on were, on the
validation data (generated seeds 900-919, SSDD val chips), 148 false alarms (coast, harbours,
ghosts) and 13 matches, 6 of them ships the model missed: so they are never added, however
bright. ``unconfirmed_min_score`` asks
learned detections that no CFAR object confirms for a higher score; ``PRECISE_UNCONFIRMED`` = 0.5
maximised the mean F0.5 (precision-weighted) of generated and SSDD validation for the shipped
weights (1.2.0): validation precision 0.988 -> 0.988 generated, 0.934 -> 0.974 SSDD, at the
cost of recall (lifeboats 0.89 -> 0.87). Rescue users miss no lifeboat they can avoid
missing, so the default keeps every learned detection (``None``); ``sar-fused-precise`` is
the precision-first option.

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
#: operating point (chosen on validation: generated seeds 900-919, SSDD val; module docstring).
PRECISE_UNCONFIRMED = 0.5


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
                 cfar: dict[str, Any] | None = None, unconfirmed_min_score: float | None = None,
                 cascade: bool = False) -> None:
        """``learned`` / ``cfar``: keyword options passed to each inner detector;
        ``unconfirmed_min_score``: see the module docstring (None keeps every learned detection);
        ``cascade``: the network only on prescreened windows, the CFAR's objects among the
        candidates (:mod:`detectors.sar.cascade`). Off by default: it lost a little F1 and lifeboat
        recall on validation (``benchmarks/results/cascade_validation.json``), and with the network
        in onnxruntime it no longer saves time on the whole-scene CPU benchmark
        (``benchmarks/results/scan_cpu.json``: land keeps most of a coastal tile in the windows)."""
        if not isinstance(cascade, bool):
            raise DetectorInputError(f"{self.name}: cascade must be true or false, got {cascade!r}")
        if unconfirmed_min_score is not None and not 0.0 <= float(unconfirmed_min_score) <= 1.0:
            raise DetectorInputError(f"{self.name}: unconfirmed_min_score must be in [0, 1], got {unconfirmed_min_score}")
        self.unconfirmed_min_score = None if unconfirmed_min_score is None else float(unconfirmed_min_score)
        for key, opts in (("learned", learned), ("cfar", cfar)):
            if opts is not None and not isinstance(opts, dict):
                raise DetectorInputError(f"{self.name}: {key} takes the inner detector's options as a mapping "
                                         f"(e.g. {key}.<option>=<value>), got {opts!r}")
        from detectors.sar.cfar import CfarDetector
        from detectors.sar.learned import LearnedSarDetector

        self.learned = LearnedSarDetector(device=device, **(learned or {}))
        self.cfar = CfarDetector(device=device, **(cfar or {}))
        self.device = self.learned.device
        self.learned.cascade = cascade
        self.version = f"{self.learned.version}+cfar{self.cfar.version}"

    def required_overlap_px(self, spacing_m: float | tuple[float, float] = 0.5) -> int:
        """The larger of the two detectors' overlaps (the CFAR's, in practice)."""
        return max(int(self.learned.required_overlap_px(spacing_m)), int(self.cfar.required_overlap_px(spacing_m)))

    def spacing_note(self, spacing_m: tuple[float, float]) -> str | None:
        """The learned detector's note on a spacing outside its training (see there)."""
        return self.learned.spacing_note(spacing_m)

    def detect_batch(self, sigma0: torch.Tensor, *, spacing_m: tuple[float, float],
                     valid: torch.Tensor | None = None) -> list[list[Detection]]:
        """(B, H, W) tiles -> detections per tile.

        The network first, and the CFAR only on the tiles where it found something: a fused
        detection is always a learned one, so a tile without any has nothing for the CFAR to
        measure - the same detections, and open sea (most of a maritime scene) costs the network
        alone. With the cascade the CFAR runs first on every tile: its objects are candidates
        the network looks at."""
        if self.learned.cascade_on:
            cb = self.cfar.detect_batch(sigma0, spacing_m=spacing_m, valid=valid)
            lb = self.learned.detect_batch(sigma0, spacing_m=spacing_m, valid=valid,
                                           candidates=[[(d.row, d.col) for d in dets] for dets in cb])
        else:
            lb = self.learned.detect_batch(sigma0, spacing_m=spacing_m, valid=valid)
            busy = [i for i, dets in enumerate(lb) if dets]
            idle = [i for i, dets in enumerate(lb) if not dets]
            if idle:  # refused as the CFAR refuses them (NaN at valid pixels), not read as no-data
                self.cfar.check_values(sigma0[idle], None if valid is None else valid[idle])
            cb: list[list[Detection]] = [[] for _ in lb]
            if busy:
                sub = busy if len(busy) < len(lb) else slice(None)
                found = self.cfar.detect_batch(sigma0[sub], spacing_m=spacing_m,
                                               valid=None if valid is None else valid[sub])
                for i, dets in zip(busy, found):
                    cb[i] = dets
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
                 cfar: dict[str, Any] | None = None, unconfirmed_min_score: float | None = PRECISE_UNCONFIRMED,
                 cascade: bool = False) -> None:
        super().__init__(device, learned, cfar, unconfirmed_min_score, cascade)
