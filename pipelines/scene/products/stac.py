"""STAC: an Item JSON with local (or relative) asset hrefs is a scene; a Catalog or Collection is a
folder of scenes.

Read with ``pystac`` (href resolution, the SAR / EO / view / projection / raster extensions);
STAC 1.1 ``bands`` arrays (``eo:common_name``, ``raster:scale``...), which pystac 1.x does not
model, are read from the asset's own fields.

What is taken from the item:

* ``datetime`` (or ``start_datetime``): the acquisition time (``acquired_source`` "stac"); an item
  with neither falls back on the product id in its ``id``;
* SAR items (``sar:*`` fields): the data asset (role ``data``, a GeoTIFF) calibrated with Capella's
  extended metadata, taken from the item's ``metadata`` asset (``*_extended.json``) or from the
  GeoTIFF's ImageDescription tag; ``sar:pixel_spacing_azimuth`` / ``sar:pixel_spacing_range`` are
  the pixel spacing, ``sar:polarizations`` must agree with the metadata;
* optical items: one band per entry of each data asset's ``eo:bands`` (``common_name``, or the
  band ``name`` when the common name is ambiguous, e.g. Sentinel-2's three ``rededge``), calibrated
  with ``raster:bands`` ``scale`` / ``offset`` / ``nodata``; a Landsat item with a local ``MTL``
  asset is calibrated from its MTL (TOA reflectance needs the sun elevation);
  quality assets ``qa_pixel`` (Landsat) and ``scl`` (Sentinel-2) give flags;
* ``proj:epsg`` / ``proj:code`` + ``proj:transform`` georeference assets that lack it, and must
  agree with the files that have it.

Hrefs: relative hrefs resolve against the item file. A remote href (``https://``, ``s3://``, as in
Capella's own open-data items) is read from a file of the same name beside the item, which is
what "download the item and its assets into one folder" gives; orbitwatch never fetches.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from collections import Counter
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

from pipelines.errors import SceneError, StacError
from pipelines.scene.acquisition import resolve_acquired, time_from_identifier
from pipelines.scene.bands import COMMON_NAMES, common_band_name, normalise_hint
from pipelines.scene.products.multiband import (
    BandSource,
    Grid,
    Linear,
    MultiFileScene,
    QualitySource,
    build_scene,
    open_band_file,
    spacing_of,
)

log = logging.getLogger(__name__)

#: Largest STAC JSON we parse (a big Collection with summaries is a few MB).
MAX_STAC_BYTES = 32 << 20
#: How much of a .json file is read to tell whether it is STAC at all.
SNIFF_BYTES = 64 << 10

_IMAGE_EXTS = (".tif", ".tiff", ".jp2")
_QUALITY_KEYS = {"qa_pixel": "landsat-qa-pixel", "scl": "s2-scl"}


def stac_type(path: Path) -> str | None:
    """"item" / "catalog" / "collection" / "item-collection" for a STAC JSON file, else None.

    Reads at most :data:`SNIFF_BYTES` of anything that is not STAC (only a file that mentions
    ``stac_version`` early is parsed), so a folder of large non-STAC JSON costs little.
    """
    try:
        with open(path, "rb") as fh:
            head = fh.read(SNIFF_BYTES)
    except OSError:
        return None
    if b'"stac_version"' not in head and b'"type": "FeatureCollection"' not in head:
        return None
    doc = _load(path, quiet=True)
    if doc is None:
        return None
    t = doc.get("type")
    if t == "Feature" and "stac_version" in doc:
        return "item"
    if t in ("Catalog", "Collection") and "stac_version" in doc:
        return t.lower()
    if t == "FeatureCollection" and any(isinstance(f, dict) and "stac_version" in f for f in doc.get("features", [])):
        return "item-collection"
    return None


def _load(path: Path, quiet: bool = False) -> dict[str, Any] | None:
    try:
        if path.stat().st_size > MAX_STAC_BYTES:
            if quiet:
                return None
            raise StacError(f"{path.name} is larger than {MAX_STAC_BYTES:,} bytes: not read as STAC", path)
        doc = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        if quiet:
            return None
        raise StacError("STAC file does not exist", path) from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        if quiet:
            return None
        msg = f"not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}" \
            if isinstance(exc, json.JSONDecodeError) else f"cannot read: {exc}"
        raise StacError(msg, path) from None
    if not isinstance(doc, dict):
        if quiet:
            return None
        raise StacError(f"a STAC document must be a JSON object, got {type(doc).__name__}", path)
    return doc


def catalog_items(path: Path) -> list[Path]:
    """The item files a local Catalog / Collection links to (``item`` links, recursively through
    ``child`` links), without reading the items. Missing item files are listed too, so that a scan
    reports them instead of silently scanning fewer scenes."""
    import pystac

    out: dict[Path, None] = {}
    seen: set[Path] = set()

    def walk(p: Path) -> None:
        rp = p.resolve()
        if rp in seen:
            return
        seen.add(rp)
        try:
            cat = pystac.read_file(str(p))
        except Exception as exc:
            raise StacError(f"cannot read STAC catalog: {exc}", p) from exc
        if not isinstance(cat, pystac.Catalog):
            raise StacError(f"not a STAC Catalog or Collection ({type(cat).__name__})", p)
        remote = 0
        for link in cat.get_links("item"):
            href = link.get_absolute_href()
            local = _local_path(href) if href else None
            if local is not None:
                out.setdefault(local, None)
            else:
                remote += 1
        if remote:
            log.warning("%s links %d remote item(s): not read (orbitwatch reads local files only)", p.name, remote)
        for link in cat.get_links("child"):
            href = link.get_absolute_href()
            local = _local_path(href) if href else None
            if local is not None and local.is_file():
                walk(local)

    walk(path)
    return sorted(out)


def _local_path(href: str) -> Path | None:
    """A local file path for ``href`` (plain path or file:// URL), None for a remote URL."""
    u = urlparse(href)
    if u.scheme in ("", "file") or (len(u.scheme) == 1 and href[1:3] in (":\\", ":/")):
        return Path(unquote(u.path) if u.scheme == "file" else href)
    return None


def _asset_path(key: str, asset: Any, item_path: Path) -> Path:
    """The local file of asset ``key`` (see the module docstring for remote hrefs)."""
    given = getattr(asset, "href", None)
    if not given:
        raise StacError(f"asset '{key}' has no href", item_path)
    href = asset.get_absolute_href() or given
    local = _local_path(href)
    if local is not None:
        if not local.exists() and not local.is_symlink():
            raise StacError(f"asset '{key}' href {given!r} leads to {local}, which does not exist", item_path)
        return local
    name = Path(unquote(urlparse(href).path)).name
    beside = item_path.parent / name
    if name and (beside.exists() or beside.is_symlink()):
        return beside
    raise StacError(f"asset '{key}' href {href} is remote and no local copy {name or '(no file name)'} lies "
                    f"beside the item: download it next to {item_path.name} (orbitwatch reads local files only)",
                    item_path)


def item_files(item_path: Path) -> list[Path]:
    """The local files of an item's assets that exist (for claims and fingerprints; never raises)."""
    doc = _load(item_path, quiet=True)
    if doc is None or not isinstance(doc.get("assets"), dict):
        return []
    out: list[Path] = []
    for a in doc["assets"].values():
        if not isinstance(a, dict) or not isinstance(a.get("href"), str):
            continue
        href = a["href"]
        local = _local_path(href)
        if local is not None and not local.is_absolute():
            local = item_path.parent / local
        if local is None:
            name = Path(unquote(urlparse(href).path)).name
            local = item_path.parent / name if name else None
        if local is not None and local.is_file():
            out.append(local)
    return out


def _read_item(path: Path) -> Any:
    import pystac

    doc = _load(path)
    t = doc.get("type")  # type: ignore[union-attr]
    if t in ("Catalog", "Collection"):
        raise StacError(f"a STAC {t} is a folder of scenes, not one scene: scan it (orbitwatch scan "
                        f"{path}) or open one of its items", path)
    if t == "FeatureCollection":
        raise StacError("a STAC ItemCollection (FeatureCollection of items): save each item as its own JSON "
                        "file next to its assets", path)
    if t != "Feature" or "stac_version" not in doc:  # type: ignore[operator]
        raise StacError("not a STAC Item (needs \"type\": \"Feature\" and \"stac_version\")", path)
    try:
        item = pystac.Item.from_dict(doc, href=str(path.resolve()), migrate=True)
    except Exception as exc:
        raise StacError(f"not a valid STAC Item: {exc}", path) from exc
    if not item.assets:
        raise StacError("the item has no assets", path)
    return item


def _ext(cls: Any, obj: Any) -> Any:
    """A pystac extension view of ``obj`` whatever schema version (or none) the item declares:
    its fields are read the same way in every version we use."""
    return cls.ext(obj, add_if_missing=True)


def _item_time(item: Any, path: Path) -> tuple[datetime, str] | None:
    if item.datetime is not None:
        return item.datetime, "stac"
    start = item.common_metadata.start_datetime
    if start is not None:
        return start, "stac"
    pt = time_from_identifier(item.id)
    return (pt.when, pt.source) if pt is not None else None


def _is_data_asset(key: str, asset: Any) -> bool:
    roles = asset.roles or []
    if "data" in roles:
        return True
    if roles:
        return False
    href = (asset.href or "").lower().split("?")[0]
    return href.endswith(_IMAGE_EXTS)


def _proj(obj: Any) -> tuple[Any, Any] | None:
    """(CRS, Affine) from proj:code / proj:epsg / proj:wkt2 + proj:transform of an item or asset."""
    from affine import Affine
    from pystac.extensions.projection import ProjectionExtension
    from rasterio.crs import CRS

    p = _ext(ProjectionExtension, obj)
    try:
        code, epsg, wkt, tr = getattr(p, "code", None), p.epsg, p.wkt2, p.transform
    except Exception:  # a malformed proj field: as if there were none (the file's own georeference is used)
        return None
    crs = None
    try:
        if epsg is not None:
            crs = CRS.from_epsg(int(epsg))
        elif code:
            crs = CRS.from_user_input(code)
        elif wkt:
            crs = CRS.from_wkt(wkt)
    except Exception:
        crs = None
    transform = Affine(*tr[:6]) if isinstance(tr, (list, tuple)) and len(tr) >= 6 else None
    return crs, transform


def open_stac_item(path: Path, reflectance_scale: float | None = None,
                   acquired: datetime | None = None, radiometry: str = "auto") -> Any:
    """Open a STAC Item as a scene (SAR or optical; see the module docstring). ``radiometry``: the
    SAR data asset's pixel encoding (see :mod:`pipelines.scene.radiometry`); ignored for optical."""
    item = _read_item(path)
    props = item.properties
    own = _item_time(item, path)
    when, source = resolve_acquired(own, acquired, path,
                                    "no acquisition time: the item has no datetime / start_datetime and its id "
                                    "holds no product id")
    if any(k.startswith("sar:") for k in props) or any("/sar/" in u for u in item.stac_extensions):
        return _open_sar_item(item, path, when, source, radiometry)
    mtl = next(((k, a) for k, a in item.assets.items()
                if k.lower() in ("mtl.json", "mtl.txt") or (a.href or "").endswith(("_MTL.json", "_MTL.txt"))), None)
    if mtl is not None:
        from pipelines.scene.products.landsat import open_landsat

        try:
            mtl_path = _asset_path(mtl[0], mtl[1], path)
        except StacError as exc:  # not downloaded: the raster:bands scales are used instead
            log.info("%s: %s; calibrating from raster:bands", path.name, exc.reason)
        else:
            scene = open_landsat(mtl_path, reflectance_scale, acquired)
            scene.path, scene.stem, scene.product = path, item.id, f"stac-item+{scene.product}"
            return scene
    return _open_optical_item(item, path, when, source, reflectance_scale)


# --------------------------------------------------------------------------- SAR


def _open_sar_item(item: Any, path: Path, when: datetime, source: str, radiometry: str = "auto") -> Any:
    from pystac.extensions.sar import SarExtension
    from pystac.extensions.view import ViewExtension

    from pipelines.scene.products.capella import TAG_SOURCE, embedded_metadata
    from pipelines.scene.reader import _check_header_size, _open_sar, _read_header, check_scene_path
    from pipelines.scene.sidecar import load_json

    data = [(k, a) for k, a in item.assets.items() if _is_data_asset(k, a)
            and (a.href or "").lower().split("?")[0].endswith((".tif", ".tiff"))]
    if not data:
        raise StacError("SAR item without a GeoTIFF data asset (role 'data', .tif)", path)
    if len(data) > 1:
        log.warning("%s: %d data assets (%s); scanning the first, %s", path.name, len(data),
                    ", ".join(k for k, _ in data), data[0][0])
    key, asset = data[0]
    tif = _asset_path(key, asset, path)
    check_scene_path(tif)
    header = _read_header(tif)
    _check_header_size(tif, header)
    header = _georeference(header, item, asset, path, tif)
    meta_asset = next(((k, a) for k, a in item.assets.items() if "metadata" in (a.roles or [])
                       and (a.href or "").split("?")[0].endswith("_extended.json")), None)
    sidecar: Path | None = None
    if meta_asset is not None:
        sidecar = _asset_path(meta_asset[0], meta_asset[1], path)
        doc = load_json(sidecar)
        if "collect" not in doc:
            raise StacError(f"asset '{meta_asset[0]}' ({sidecar.name}) is not Capella extended metadata "
                            "(no 'collect')", path)
    else:
        doc = embedded_metadata(header.tags)  # type: ignore[assignment]
        if doc is None:
            raise StacError(f"SAR item without calibration: no 'metadata' asset (*_extended.json) and no Capella "
                            f"metadata in the ImageDescription of {tif.name}; orbitwatch calibrates SAR from "
                            "Capella's extended metadata", path)
    scene = _open_sar(tif, header, doc, sidecar, None, "sidecar" if sidecar else TAG_SOURCE, radiometry)
    sar = _ext(SarExtension, item)
    pols = [str(getattr(p, "value", p)) for p in (sar.polarizations or [])]
    meta_pol = scene.metadata.polarizations  # type: ignore[union-attr]
    if pols and meta_pol not in pols:
        raise StacError(f"the item's sar:polarizations {pols} do not include the metadata's {meta_pol}", path)
    az, rg = sar.pixel_spacing_azimuth, sar.pixel_spacing_range
    if az is not None and rg is not None:
        try:
            az, rg = float(az), float(rg)
        except (TypeError, ValueError):
            raise StacError(f"sar:pixel_spacing_azimuth/range must be numbers, got {az!r} / {rg!r}", path) from None
        if not (az > 0 and rg > 0):
            raise StacError(f"sar:pixel_spacing_azimuth/range must be > 0, got {az} / {rg}", path)
        scene.spacing_m = (az, rg)
    view = _ext(ViewExtension, item)
    scene.item_properties = {"id": item.id, "sar:polarizations": pols, "view:incidence_angle": view.incidence_angle,
                             "sar:product_type": item.properties.get("sar:product_type"),
                             "platform": item.properties.get("platform")}
    scene.path, scene.data_path, scene.stem, scene.product = path, tif, item.id, "stac-item"
    scene.acquired, scene.acquired_source = when, source
    scene.sidecar_path = sidecar
    return scene


def _georeference(header: Any, item: Any, asset: Any, path: Path, tif: Path) -> Any:
    """Use the item's proj fields for a file without georeferencing; refuse a contradiction."""
    proj = _proj(asset) or (None, None)
    if proj == (None, None) or proj[0] is None:
        proj = _proj(item) or (None, None)
    crs, transform = proj
    if header.crs is None or header.transform.is_identity:
        if crs is not None and transform is not None:
            return dataclasses.replace(header, crs=crs, transform=transform)
        return header
    if crs is not None and header.crs != crs:
        raise StacError(f"the item says {crs.to_string()} (proj:epsg / proj:code) but {tif.name} is in "
                        f"{header.crs.to_string()}", path)
    return header


# --------------------------------------------------------------------------- optical


def _bands_of(asset: Any) -> list[dict[str, Any]]:
    """Per-band dicts of an asset: ``name``, ``common_name``, ``scale``, ``offset``, ``nodata``."""
    from pystac.extensions.eo import EOExtension
    from pystac.extensions.raster import RasterExtension

    out: list[dict[str, Any]] = []
    raw11 = asset.extra_fields.get("bands")
    if isinstance(raw11, list) and raw11:  # STAC 1.1
        for b in raw11:
            b = b if isinstance(b, dict) else {}
            out.append({"name": b.get("name"), "common_name": b.get("eo:common_name"),
                        "scale": b.get("raster:scale", b.get("scale")), "offset": b.get("raster:offset", b.get("offset")),
                        "nodata": b.get("nodata")})
        return out
    eo = _ext(EOExtension, asset).bands or []
    rb = _ext(RasterExtension, asset).bands or []
    for i in range(max(len(eo), len(rb))):
        e = eo[i] if i < len(eo) else None
        r = rb[i] if i < len(rb) else None
        out.append({"name": e.name if e else None, "common_name": e.common_name if e else None,
                    "scale": r.scale if r else None, "offset": r.offset if r else None,
                    "nodata": r.nodata if r else None})
    return out


def _band_name(b: dict[str, Any], hint: str | None) -> str | None:
    cn = b.get("common_name")
    cn = str(getattr(cn, "value", cn)) if cn is not None else None
    if cn in COMMON_NAMES and cn not in ("rededge", "nir", "lwir"):
        return cn
    by_name = common_band_name(b.get("name"), hint) if b.get("name") else None
    return by_name or (cn if cn in COMMON_NAMES else None)


def _open_optical_item(item: Any, path: Path, when: datetime, source: str,
                       reflectance_scale: float | None) -> MultiFileScene:
    props = item.properties
    hint = normalise_hint(str(props.get("platform") or props.get("constellation") or "")) or None
    sources: list[BandSource] = []
    quality: list[QualitySource] = []
    headers: dict[Path, Any] = {}
    unnamed: list[str] = []
    # Assets whose file is not here (remote, never downloaded): fine when other assets give the
    # same bands (Earth Search lists each band as a COG and again as a JP2), an error otherwise.
    absent: list[tuple[set[str], StacError]] = []
    for key, asset in item.assets.items():
        qkind = _QUALITY_KEYS.get(key.lower())
        if qkind is not None:
            qp = _asset_path(key, asset, path)
            if qp not in headers:  # a quality asset in a file already opened as a band: opened once
                headers[qp] = open_band_file(qp, path, f"asset '{key}'")
            quality.append(QualitySource(qkind, qp, label=f"asset '{key}'"))
            continue
        if not _is_data_asset(key, asset):
            continue
        bands = _bands_of(asset)
        if not bands:
            unnamed.append(key)
            continue
        names = [_band_name(b, hint) for b in bands]
        for i, (b, name) in enumerate(zip(bands, names), start=1):
            if name is None:
                raise StacError(f"asset '{key}' band {i} ({b.get('name')!r}, common_name "
                                f"{b.get('common_name')!r}) is not a band orbitwatch knows (STAC eo common names: "
                                f"{', '.join(COMMON_NAMES)})", path)
        try:
            fp = _asset_path(key, asset, path)
        except StacError as exc:
            absent.append(({n for n in names if n}, exc))
            continue
        if fp not in headers:
            headers[fp] = open_band_file(fp, path, f"asset '{key}'")
            headers[fp] = _georeference(headers[fp], item, asset, path, fp)
        h = headers[fp]
        for i, (b, name) in enumerate(zip(bands, names), start=1):
            if any(s.name == name for s in sources):
                log.info("%s: band '%s' given again by asset '%s'; keeping the first", path.name, name, key)
                continue
            unit = "kelvin" if name in ("lwir", "lwir11", "lwir12") else "reflectance"
            scale, offset = b.get("scale"), b.get("offset")
            cal = None
            if scale is not None or offset is not None:
                try:
                    cal = Linear(float(1.0 if scale is None else scale), float(0.0 if offset is None else offset), unit)
                except (TypeError, ValueError):
                    raise StacError(f"asset '{key}' band {i}: raster scale/offset must be numbers, got "
                                    f"{scale!r} / {offset!r}", path) from None
            nd = b.get("nodata")
            if nd is None and i <= len(h.nodata):
                nd = h.nodata[i - 1]
            nodata: tuple[float, ...] = ()
            if nd is not None:
                try:
                    nodata = (float(nd),)
                except (TypeError, ValueError):
                    nodata = ()  # "nan" / "inf" strings: non-finite values are no-data anyway
            sources.append(BandSource(name=name, path=fp, band=i, calibration=cal, nodata=nodata,  # type: ignore[arg-type]
                                      label=f"asset '{key}' band {i}"))
    have = {s.name for s in sources}
    for names, exc in absent:
        if not names <= have:
            raise exc
        log.info("%s: skipping an asset that is not here; its bands come from others (%s)", path.name, exc.reason)
    if not sources:
        what = f" (data assets without eo:bands: {', '.join(unnamed)})" if unnamed else ""
        raise StacError(f"optical item without a band to read: no data asset with eo:bands{what}", path)
    # The target grid: the resolution most bands have (ties: the coarser), first such asset.
    res = Counter(round(abs(headers[s.path].transform.a), 6) for s in sources)
    best = max(res.items(), key=lambda kv: (kv[1], kv[0]))[0]
    target = next(s for s in sources if round(abs(headers[s.path].transform.a), 6) == best)
    grid = Grid.of(headers[target.path])
    try:
        spacing = spacing_of(grid, path)
    except SceneError:
        gsd = props.get("gsd")
        if not isinstance(gsd, (int, float)) or gsd <= 0:
            raise
        spacing = (float(gsd), float(gsd))
    metadata = {"id": item.id, "platform": props.get("platform"), "eo:cloud_cover": props.get("eo:cloud_cover"),
                "view:sun_elevation": props.get("view:sun_elevation"), "proj:epsg": props.get("proj:epsg"),
                "item": path.name}
    return build_scene(path=path, stem=item.id, grid=grid, sources=sources, quality=quality, headers=headers,
                       acquired=when, acquired_source=source, spacing_m=spacing, metadata=metadata,
                       product="stac-item", reflectance_scale=reflectance_scale)
