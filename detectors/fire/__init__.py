"""Active-fire detectors for optical/thermal tiles; importing this registers them.

``fire-rules`` (:mod:`detectors.fire.rules`): published reflective/thermal rules on the GPU.
:mod:`detectors.fire.clusters` turns per-pixel fire maps into one Detection per fire.
"""

from detectors.fire.clusters import cluster_fire_pixels, firemap_to_pixels, firms_confidence_class
from detectors.fire.rules import ALGORITHMS, FireRulesDetector

__all__ = ["ALGORITHMS", "FireRulesDetector", "cluster_fire_pixels", "firemap_to_pixels",
           "firms_confidence_class"]
from detectors.fire import learned  # noqa: E402,F401  (registers fire-learned, fire-learned-onnx)
