"""The two detector interfaces. Every registered detector implements one of them."""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar, Protocol, runtime_checkable

import torch

from detectors.types import Detection, FireMap


@runtime_checkable
class SarDetector(Protocol):
    """Finds vessels and lifeboats in one SAR tile of calibrated sigma0 (linear power)."""

    modality: ClassVar[str]  # "sar"
    name: str
    version: str

    def detect(
        self,
        sigma0: torch.Tensor,
        *,
        spacing_m: tuple[float, float],
        valid: torch.Tensor | None = None,
    ) -> list[Detection]:
        """``sigma0``: float32 (H, W); ``spacing_m``: (row, col) pixel spacing in metres;
        ``valid``: bool (H, W), False where no-data or land (masked out)."""
        ...


@runtime_checkable
class OpticalDetector(Protocol):
    """Finds active-fire pixels in one multi-band optical tile."""

    modality: ClassVar[str]  # "optical"
    name: str
    version: str

    def detect(
        self,
        bands: Mapping[str, torch.Tensor],
        *,
        pixel_size_m: float,
        valid: torch.Tensor | None = None,
    ) -> FireMap:
        """``bands``: STAC eo common name (``red``, ``nir08``, ``swir16``, ``swir22``, ``lwir11``...)
        -> float32 (H, W) top-of-atmosphere reflectance (thermal bands: brightness temperature, K)."""
        ...
