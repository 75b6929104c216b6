"""SAR vessel/lifeboat detectors; importing this registers them.

``sar-cfar`` (:mod:`detectors.sar.cfar`): classical Gamma-CFAR with censoring, land masking and
sidelobe/ambiguity discrimination, in torch on the detector's device.
"""

from detectors.sar.cfar import CfarDetector, CfarParams, windows_for
from detectors.sar.discriminate import Discrimination, discriminate

__all__ = ["CfarDetector", "CfarParams", "Discrimination", "discriminate", "windows_for"]
from detectors.sar import learned  # noqa: E402,F401  registers sar-learned and sar-learned-onnx
from detectors.sar import fused  # noqa: E402,F401  registers sar-fused (learned positions, CFAR geometry)
