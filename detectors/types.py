"""Plain result types shared by every detector.

Detectors take tensors and return these small Python objects, so nothing downstream
(alerts, packets, webhooks) depends on torch.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import torch

Kind = Literal["vessel", "lifeboat", "fire"]

#: Lifeboats are 4-9 m; anything estimated shorter than this is reported as a lifeboat.
LIFEBOAT_MAX_LENGTH_M = 12.0


@dataclass(slots=True)
class Detection:
    """One object found by a detector.

    ``row``/``col`` are the pixel centre in the coordinates of the array the detector was
    given (the pipeline shifts them into full-scene coordinates).
    """

    row: float
    col: float
    score: float
    kind: Kind
    detector: str
    length_m: float | None = None
    width_m: float | None = None
    heading_deg: float | None = None
    #: Fire clusters: member pixels as (row, col) and their area.
    pixels: list[tuple[int, int]] | None = None
    area_m2: float | None = None
    #: Free-form numeric extras: peak_db, contrast_db, frp_proxy, confidence class...
    attrs: dict[str, float | str] = field(default_factory=dict)

    def shifted(self, drow: float, dcol: float) -> "Detection":
        """Copy moved by (drow, dcol) pixels, pixels included."""
        px = None if self.pixels is None else [(r + int(drow), c + int(dcol)) for r, c in self.pixels]
        return Detection(
            row=self.row + drow, col=self.col + dcol, score=self.score, kind=self.kind,
            detector=self.detector, length_m=self.length_m, width_m=self.width_m,
            heading_deg=self.heading_deg, pixels=px, area_m2=self.area_m2, attrs=dict(self.attrs),
        )


@dataclass(slots=True)
class FireMap:
    """Per-pixel output of an optical fire detector for one tile.

    Kept per pixel (not clustered) so the pipeline can stitch tiles and cluster fires that
    straddle tile borders exactly once.
    """

    mask: torch.Tensor  # bool (H, W): fire pixels
    confidence: torch.Tensor  # float32 (H, W) in [0, 1]
    intensity: torch.Tensor  # float32 (H, W): SWIR excess / radiative-power proxy
    detector: str
    tests_run: tuple[str, ...] = ()  # which published tests could run on these bands
