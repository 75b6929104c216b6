"""orbitwatch pipelines: everything around the detectors.

scene bundle -> tiles -> detections -> alerts -> packets -> downlink -> ground -> webhook.
Kept import-light: submodules import rasterio/prefect only where they need them.
"""

__version__ = "0.1.0"
