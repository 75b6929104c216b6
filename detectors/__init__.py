"""orbitwatch detectors: pure compute, tensors in, detections out.

Imports only torch, torchvision, numpy and onnxruntime, so it runs on a bare GPU box.
"""

from detectors.errors import DetectorError, DetectorInputError, MissingBandError, UnknownDetectorError
from detectors.registry import detector_modality, get_detector, list_detectors, register
from detectors.types import Detection, FireMap

__all__ = [
    "Detection", "DetectorError", "DetectorInputError", "FireMap", "MissingBandError",
    "UnknownDetectorError", "detector_modality", "get_detector", "list_detectors", "register",
]
