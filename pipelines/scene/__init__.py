"""Scene I/O: open a scene (a GeoTIFF bundle, or a provider's product), read calibrated windows, tile it.

Pure I/O and geometry; no detector code. See :mod:`pipelines.scene.reader` for what the values
mean, :mod:`pipelines.scene.products` for Landsat Collection 2 folders, Sentinel-2 SAFE, STAC items
and Capella GeoTIFFs with their metadata inside, :mod:`pipelines.scene.acquisition` for where a
scene's time comes from, :mod:`pipelines.scene.tiling` for how tiles own pixels,
:mod:`pipelines.scene.bands` for optical band names and :mod:`pipelines.scene.geo` for
slant-plane geolocation.
"""

from pipelines.scene.bands import common_band_name, resolve_band_names
from pipelines.scene.reader import Scene, find_scenes, open_scene
from pipelines.scene.sidecar import (
    BandCalibration,
    CapellaMetadata,
    parse_optical_sidecar,
    parse_sidecar,
    parse_timestamp,
    read_sidecar,
)
from pipelines.scene.tiling import Tile, dedupe_by_distance, iter_tiles

__all__ = [
    "BandCalibration",
    "CapellaMetadata",
    "Scene",
    "Tile",
    "common_band_name",
    "dedupe_by_distance",
    "find_scenes",
    "iter_tiles",
    "open_scene",
    "parse_optical_sidecar",
    "parse_sidecar",
    "parse_timestamp",
    "read_sidecar",
    "resolve_band_names",
]
