"""The products users download, as scenes: Landsat Collection 2 folders, Sentinel-2 SAFE folders,
STAC items and catalogs, Capella GeoTIFFs with their metadata inside.

:func:`pipelines.scene.open_scene` and :func:`pipelines.scene.find_scenes` stay the single entry:
they ask :func:`product_kind` what a path is and hand products to the module that reads them.
A product is ONE scene whatever its number of files; its identity for resuming a batch is
:func:`scene_identity` (the metadata file plus every file of the product, with sizes and times).

Which path is the scene:

* Landsat: the ``*_MTL.json`` (else ``*_MTL.txt``) file; its product folder, given directly,
  opens the same product;
* Sentinel-2: the ``*.SAFE`` folder (``MTD_MSIL1C.xml`` / ``MTD_MSIL2A.xml`` inside);
* STAC: the Item JSON file; a Catalog / Collection JSON lists its items.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from pipelines.scene.products import landsat, sentinel2, stac

__all__ = ["landsat", "sentinel2", "stac", "product_kind", "open_product", "scene_identity", "claimed_files"]


def product_kind(path: Path) -> str | None:
    """"landsat" | "sentinel-2" | "stac-item" | "stac-catalog" | "stac-item-collection" | None.

    None: not a product this package reads (a plain GeoTIFF bundle, a sidecar, anything else).
    Only cheap checks: names, and a sniff of the first 64 kB of a ``.json``.
    """
    if path.is_dir():
        if sentinel2.is_safe(path):
            return "sentinel-2"
        if landsat.mtl_in(path):
            return "landsat"
        return None
    name = path.name
    if landsat.is_mtl(path):
        return "landsat"
    if name in sentinel2.PRODUCT_MTD:
        return "sentinel-2"
    if name.lower().endswith(".json") and not name.endswith("_extended.json"):
        t = stac.stac_type(path)
        if t == "item":
            return "stac-item"
        if t in ("catalog", "collection"):
            return "stac-catalog"
        if t == "item-collection":
            return "stac-item-collection"
    return None


def open_product(path: Path, kind: str, reflectance_scale: float | None = None, acquired: Any = None,
                 radiometry: str = "auto") -> Any:
    """Open a product of ``kind`` (from :func:`product_kind`) as a Scene; ``radiometry`` (SAR pixel
    encoding, see :mod:`pipelines.scene.radiometry`) matters only for a SAR STAC item."""
    from pipelines.errors import ProductError

    if kind == "landsat":
        if path.is_dir():
            mtls = landsat.mtl_in(path)
            if len(mtls) != 1:
                raise ProductError(f"the folder holds {len(mtls)} Landsat products ({', '.join(m.name for m in mtls)}): "
                                   "open one by its MTL file", path)
            path = mtls[0]
        return landsat.open_landsat(path, reflectance_scale, acquired)
    if kind == "sentinel-2":
        return sentinel2.open_safe(path if path.is_dir() else path.parent, reflectance_scale, acquired)
    if kind in ("stac-item", "stac-catalog", "stac-item-collection"):
        return stac.open_stac_item(path, reflectance_scale, acquired, radiometry)
    raise ProductError(f"not a product orbitwatch reads ({kind})", path)


def claimed_files(path: Path, kind: str) -> list[Path]:
    """The files a product is made of, which must not be listed as scenes of their own."""
    if kind == "landsat":
        return landsat.product_files(path)
    if kind == "stac-item":
        return stac.item_files(path)
    if kind == "sentinel-2":
        return sentinel2.safe_files(path)
    return []


def scene_identity(path: Path) -> list[Any]:
    """What identifies a scene's content for the batch fingerprint (only OSError is raised).

    A plain file: ``[resolved path, size, mtime_ns]`` (as before products existed, so the
    fingerprints of earlier runs still match). A product: the same for the path (the SAFE folder's
    own size/mtime are meaningless and left out), plus ``[name, size, mtime_ns]`` of every file
    of the product, so replacing one band file redoes the scene.
    """
    path = Path(path)
    kind = product_kind(path)
    if kind is None or kind == "stac-catalog":
        st = path.stat()
        return [str(path.resolve()), st.st_size, st.st_mtime_ns]
    files = claimed_files(path, kind)
    if path.is_file() and path not in files:
        files = [path, *files]
    entries = []
    for f in files:
        try:
            st = f.stat()
        except OSError:
            continue  # a missing band file: open_scene names it
        try:
            rel = os.path.relpath(f, path if path.is_dir() else path.parent)
        except ValueError:
            rel = str(f)
        entries.append([rel, st.st_size, st.st_mtime_ns])
    if path.is_dir():
        path.stat()  # a folder that vanished raises here, like a file would
        return [str(path.resolve()), kind, entries]
    st = path.stat()
    return [str(path.resolve()), st.st_size, st.st_mtime_ns, kind, entries]
