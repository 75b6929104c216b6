"""Capella products as they are downloaded: metadata inside the GeoTIFF, or beside it.

Capella writes the full product metadata into every GeoTIFF it ships: the TIFF
``ImageDescription`` tag (GDAL: ``TIFFTAG_IMAGEDESCRIPTION``) holds the same JSON document as
``<stem>_extended.json``. A ``.tif`` fetched alone is therefore a complete SAR scene; the reader
takes the metadata from there when no sidecar lies beside the file (a sidecar, when present,
wins: it is what the user put there).

Why the metadata is parsed by :func:`pipelines.scene.sidecar.parse_sidecar` and not by the
maintained ``capella-reader`` package (evaluated: version 0.2.3 installs cleanly, numpy + pydantic
+ tifffile, all of which we already have): its pydantic model (``CapellaSLCMetadata``) requires
fields orbitwatch never uses (``software_revision``, ``processing_deployment``,
``collect.image.processed_azimuth_bandwidth``, the beam-pattern flags and ten more) and refuses a
document without any of them: all seven real Capella sidecars in ``shared/datasets`` validate, but
the committed sample scenes' sidecars (14 such fields absent) and products of older
``product_version``\\s would be refused for no reason, and its errors are pydantic reports rather
than "missing key 'collect.image.scale_factor'" naming the file. Our parser checks the ~20 fields
the reader uses, with errors that name the key.

SICD (the NGA complex-SAR standard Capella and Umbra also ship, NITF) is not read: ``sarpy``
(2.1.1, maintained by NGA) reads it, but brings h5py, lxml, shapely and sarkit for one format whose
products are also shipped as the GeoTIFF SLCs read here; see docs/inputs.md.
"""

from __future__ import annotations

import json
import logging
from typing import Any

log = logging.getLogger(__name__)

#: GDAL's name for the TIFF ImageDescription tag (default metadata domain).
IMAGE_DESCRIPTION_TAG = "TIFFTAG_IMAGEDESCRIPTION"

#: acquired_source / metadata source of a Capella GeoTIFF read without its sidecar.
TAG_SOURCE = f"tiff-tag:{IMAGE_DESCRIPTION_TAG}"


def embedded_metadata(tags: dict[str, str]) -> dict[str, Any] | None:
    """The Capella metadata document in a GeoTIFF's ImageDescription tag, or None.

    None when there is no such tag, or it is not a JSON object with a ``collect`` key (other
    writers put free text there: that is simply not Capella metadata, not an error).
    """
    text = None
    for k, v in tags.items():
        if k.upper() == IMAGE_DESCRIPTION_TAG:
            text = v
            break
    if not text or '"collect"' not in text:
        return None
    try:
        doc = json.loads(text)
    except (ValueError, TypeError):
        log.debug("ImageDescription is not JSON: not Capella metadata")
        return None
    if isinstance(doc, dict) and isinstance(doc.get("collect"), dict):
        return doc
    return None
