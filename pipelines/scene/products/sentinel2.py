"""Sentinel-2 Level-1C and Level-2A SAFE folders.

A SAFE is what the Copernicus Data Space ships (unzipped): ``S2B_MSIL1C_<sensing>_N<baseline>_R<orbit>_
T<tile>_<generation>.SAFE/`` with the product metadata ``MTD_MSIL1C.xml`` (``MTD_MSIL2A.xml``), and
``GRANULE/<granule>/`` holding the tile metadata ``MTD_TL.xml`` and ``IMG_DATA/`` with one JPEG 2000
file per band (Level-2A: per resolution, ``IMG_DATA/R10m|R20m|R60m/..._B04_10m.jp2``, plus ``SCL``).
The product metadata lists every image file (``Granule_List/Granule/IMAGE_FILE``, without
extension); band files in GeoTIFF (``.tif``) in place of JPEG 2000 are read too.

Values handed to the detectors (ESA Sentinel-2 product specification, processing baseline notes):

* reflectance = ``(DN + offset) / QUANTIFICATION_VALUE``: Level-1C ``QUANTIFICATION_VALUE`` and
  ``Radiometric_Offset_List/RADIO_ADD_OFFSET``, Level-2A ``BOA_QUANTIFICATION_VALUE`` and
  ``BOA_ADD_OFFSET_VALUES_LIST/BOA_ADD_OFFSET`` (per ``band_id``). Since processing baseline 04.00
  (January 2022, and the reprocessed archive) the offset is -1000 and must be there: a product of
  baseline >= 04.00 without it is refused, never read with offset 0 (that would add 0.1 to every
  reflectance). Before 04.00 there is no offset.
* the ``NODATA`` special value (0) is no-data; Level-2A ``SCL`` 0 is no-data and its classes
  (cloud, cirrus, shadow, snow, water) are reported on each alert, never used to drop pixels.
* bands at 10, 20 and 60 m are brought to the 20 m grid (:data:`TARGET_RESOLUTION_M`): the SWIR
  bands that find fires (B11, B12) are 20 m natively and stay untouched; 10 m bands are averaged
  2 x 2, 60 m bands repeated 3 x 3 (see :mod:`pipelines.scene.products.multiband`). A Level-2A
  product's own 20 m file of a band is used where it has one.
* time: ``MTD_TL.xml`` ``SENSING_TIME`` (``acquired_source`` "mtd"), else the datatake start.

XML is read with the standard library's ElementTree (expat, protected against entity expansion
since Python 3.7.1 / expat 2.4); every element is looked up by local name, so the ``n1:`` namespace
prefixes, which change between product versions, do not matter.
"""

from __future__ import annotations

import logging
import re
import xml.etree.ElementTree as ET
from datetime import datetime
from pathlib import Path

from pipelines.errors import ProductError
from pipelines.scene.acquisition import resolve_acquired
from pipelines.scene.bands import SENTINEL2
from pipelines.scene.products.multiband import (
    BandSource,
    Grid,
    MultiFileScene,
    QualitySource,
    Quantified,
    build_scene,
    open_band_file,
    spacing_of,
)
from pipelines.scene.sidecar import parse_timestamp

log = logging.getLogger(__name__)

PRODUCT_MTD = ("MTD_MSIL1C.xml", "MTD_MSIL2A.xml")
TILE_MTD = "MTD_TL.xml"

#: The grid every band is brought to (see the module docstring).
TARGET_RESOLUTION_M = 20

#: Native resolution of each band (ESA).
NATIVE_M = {"B01": 60, "B02": 10, "B03": 10, "B04": 10, "B05": 20, "B06": 20, "B07": 20, "B08": 10,
            "B8A": 20, "B09": 60, "B10": 60, "B11": 20, "B12": 20}
#: ``band_id`` order of the offset lists and Spectral_Information (ESA: 0..12).
BAND_IDS = ("B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B10", "B11", "B12")

#: Largest metadata XML we parse (a real MTD_TL is ~600 kB with its angle grids).
MAX_XML_BYTES = 64 << 20

#: First processing baseline whose DNs carry the -1000 offset.
OFFSET_BASELINE = 4.0

_IMAGE_RE = re.compile(r"_(B\d{2}|B8A|SCL|TCI|AOT|WVP)(?:_(\d{2})m)?$")


def is_safe(folder: Path) -> bool:
    """True for a SAFE folder: it holds MTD_MSIL1C.xml / MTD_MSIL2A.xml, or is named ``*.SAFE``."""
    return folder.is_dir() and (folder.name.upper().endswith(".SAFE")
                                or any((folder / n).is_file() for n in PRODUCT_MTD))


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _parse_xml(path: Path, product: Path) -> ET.Element:
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        raise ProductError(f"missing metadata file {path.name} (looked in {path.parent})", product) from None
    if size > MAX_XML_BYTES:
        raise ProductError(f"{path.name} is {size:,} bytes: too large for Sentinel-2 metadata", product)
    try:
        return ET.parse(path).getroot()
    except ET.ParseError as exc:
        raise ProductError(f"{path.name} is not valid XML: {exc}", product) from None
    except OSError as exc:
        raise ProductError(f"cannot read {path.name}: {exc.strerror or exc}", product) from None


def _find(root: ET.Element, *names: str) -> ET.Element | None:
    """First descendant following the local-name path ``names`` (each a child of the previous)."""
    level = [root]
    for n in names:
        nxt = [c for e in level for c in e.iter() if _local(c.tag) == n and c is not e]
        if not nxt:
            return None
        level = nxt[:1]
    return level[0]


def _all(root: ET.Element, name: str) -> list[ET.Element]:
    return [e for e in root.iter() if _local(e.tag) == name]


def _text(root: ET.Element, mtd: Path, product: Path, *names: str, required: bool = True) -> str | None:
    e = _find(root, *names)
    if e is None or e.text is None or not e.text.strip():
        if required:
            raise ProductError(f"{mtd.name} has no element {'/'.join(names)}", product)
        return None
    return e.text.strip()


def _num(text: str, what: str, mtd: Path, product: Path) -> float:
    try:
        return float(text)
    except ValueError:
        raise ProductError(f"{mtd.name}: {what} must be a number, got {text!r}", product) from None


def open_safe(safe: Path, reflectance_scale: float | None = None,
              acquired: datetime | None = None) -> MultiFileScene:
    """Open a Level-1C / Level-2A SAFE folder (reads metadata and headers only)."""
    mtd = next((safe / n for n in PRODUCT_MTD if (safe / n).is_file()), None)
    if mtd is None:
        raise ProductError(f"SAFE folder without its product metadata ({' or '.join(PRODUCT_MTD)})", safe)
    level2 = mtd.name == "MTD_MSIL2A.xml"
    root = _parse_xml(mtd, safe)
    baseline_text = _text(root, mtd, safe, "Product_Info", "PROCESSING_BASELINE", required=False)
    baseline = _num(baseline_text, "PROCESSING_BASELINE", mtd, safe) if baseline_text else None
    uri = _text(root, mtd, safe, "Product_Info", "PRODUCT_URI", required=False)
    spacecraft = _text(root, mtd, safe, "Datatake", "SPACECRAFT_NAME", required=False)
    # -- calibration
    if level2:
        qtext = _text(root, mtd, safe, "QUANTIFICATION_VALUES_LIST", "BOA_QUANTIFICATION_VALUE")
        offsets_tag, list_tag = "BOA_ADD_OFFSET", "BOA_ADD_OFFSET_VALUES_LIST"
    else:
        qtext = _text(root, mtd, safe, "Product_Image_Characteristics", "QUANTIFICATION_VALUE")
        offsets_tag, list_tag = "RADIO_ADD_OFFSET", "Radiometric_Offset_List"
    quant = _num(qtext, "the quantification value", mtd, safe)  # type: ignore[arg-type]
    if quant <= 0:
        raise ProductError(f"{mtd.name}: quantification value must be > 0, got {quant}", safe)
    physical = {e.get("bandId"): e.get("physicalBand") for e in _all(root, "Spectral_Information")}
    offsets: dict[str, float] = {}
    for e in _all(root, offsets_tag):
        bid = e.get("band_id")
        name = _band_name(physical.get(bid)) if bid in physical else (
            BAND_IDS[int(bid)] if bid is not None and bid.isdigit() and int(bid) < len(BAND_IDS) else None)
        if name is None or e.text is None:
            raise ProductError(f"{mtd.name}: {offsets_tag} band_id={bid!r} is not a band", safe)
        offsets[name] = _num(e.text.strip(), f"{offsets_tag} band_id={bid}", mtd, safe)
    if not offsets and baseline is not None and baseline >= OFFSET_BASELINE:
        raise ProductError(f"{mtd.name}: processing baseline {baseline_text} (>= 04.00) but no {list_tag}/"
                           f"{offsets_tag}: the DN offset (-1000) is unknown, refusing to guess", safe)
    nodata_vals = [int(_num(_text(sv, mtd, safe, "SPECIAL_VALUE_INDEX") or "", "SPECIAL_VALUE_INDEX", mtd, safe))
                   for sv in _all(root, "Special_Values")
                   if (_text(sv, mtd, safe, "SPECIAL_VALUE_TEXT", required=False) or "").upper() == "NODATA"]
    nodata = tuple(float(v) for v in nodata_vals) or (0.0,)
    # -- files
    images = [e.text.strip() for e in _all(root, "IMAGE_FILE") if e.text and e.text.strip()]
    if not images:
        raise ProductError(f"{mtd.name} lists no IMAGE_FILE (Product_Organisation/Granule_List)", safe)
    granules = sorted({Path(i).parts[1] for i in images if len(Path(i).parts) > 2 and Path(i).parts[0] == "GRANULE"})
    if len(granules) > 1:
        raise ProductError(f"{mtd.name} lists {len(granules)} granules: multi-tile products (before 2016) are not "
                           "supported, only one tile per SAFE", safe)
    by_band: dict[str, dict[int, str]] = {}
    for rel in images:
        m = _IMAGE_RE.search(rel)
        if not m:
            continue
        res = int(m.group(2)) if m.group(2) else NATIVE_M.get(m.group(1), 0)
        by_band.setdefault(m.group(1), {})[res] = rel
    sources: list[BandSource] = []
    for band in BAND_IDS:
        files = by_band.get(band)
        if not files:
            continue
        res = TARGET_RESOLUTION_M if TARGET_RESOLUTION_M in files else NATIVE_M[band]
        rel = files.get(res) or next(iter(files.values()))
        if offsets and band not in offsets:
            raise ProductError(f"{mtd.name}: no {offsets_tag} for {band}", safe)
        sources.append(BandSource(name=SENTINEL2[band], path=_image_path(safe, rel, mtd),
                                  calibration=Quantified(offsets.get(band, 0.0), quant), nodata=nodata,
                                  label=f"IMAGE_FILE {rel}"))
    if not sources:
        raise ProductError(f"{mtd.name} lists no band image (B01..B12)", safe)
    quality: list[QualitySource] = []
    if "SCL" in by_band:
        rel = by_band["SCL"].get(TARGET_RESOLUTION_M) or next(iter(by_band["SCL"].values()))
        quality.append(QualitySource("s2-scl", _image_path(safe, rel, mtd), label=f"IMAGE_FILE {rel}"))
    # -- tile metadata: sensing time, sun angle
    when: datetime | None = None
    sun_zenith = None
    tile_id = None
    if granules:
        tl = safe / "GRANULE" / granules[0] / TILE_MTD
        if tl.is_file():
            troot = _parse_xml(tl, safe)
            st = _text(troot, tl, safe, "SENSING_TIME")
            try:
                when = parse_timestamp(st)  # type: ignore[arg-type]
            except ValueError:
                raise ProductError(f"{tl.name}: SENSING_TIME {st!r} is not a valid time", safe) from None
            z = _text(troot, tl, safe, "Mean_Sun_Angle", "ZENITH_ANGLE", required=False)
            sun_zenith = _num(z, "Mean_Sun_Angle/ZENITH_ANGLE", tl, safe) if z else None
            tile_id = _text(troot, tl, safe, "TILE_ID", required=False)
        else:
            log.warning("%s: no %s in granule %s: sensing time from the product metadata", safe.name, TILE_MTD,
                        granules[0])
    source = "mtd"
    if when is None:
        st = (_text(root, mtd, safe, "Datatake", "DATATAKE_SENSING_START", required=False)
              or _text(root, mtd, safe, "Product_Info", "PRODUCT_START_TIME", required=False))
        if st is None:
            raise ProductError(f"no sensing time: neither {TILE_MTD} SENSING_TIME nor {mtd.name} "
                               "DATATAKE_SENSING_START / PRODUCT_START_TIME", safe)
        try:
            when = parse_timestamp(st)
        except ValueError:
            raise ProductError(f"{mtd.name}: sensing start {st!r} is not a valid time", safe) from None
    headers = {}
    for s in [*sources, *quality]:
        if s.path not in headers:
            headers[s.path] = open_band_file(s.path, safe, s.label)
    target = next((s for s in sources if headers[s.path].transform.a == TARGET_RESOLUTION_M), sources[0])
    grid = Grid.of(headers[target.path])
    if grid.crs is None:
        raise ProductError(f"band file {target.path.name} has no georeferencing (CRS)", safe)
    when, source = resolve_acquired((when, source), acquired, safe, "no acquisition time")
    stem = safe.name[:-5] if safe.name.upper().endswith(".SAFE") else safe.name
    metadata = {"product_uri": uri, "product_type": "S2MSI2A" if level2 else "S2MSI1C", "spacecraft": spacecraft,
                "processing_baseline": baseline_text, "quantification_value": quant, "offsets": offsets,
                "sun_zenith_deg": sun_zenith, "tile_id": tile_id, "metadata": mtd.name}
    return build_scene(path=safe, stem=stem, grid=grid, sources=sources, quality=quality, headers=headers,
                       acquired=when, acquired_source=source, spacing_m=spacing_of(grid, safe), metadata=metadata,
                       product="sentinel-2-l2a" if level2 else "sentinel-2-l1c", reflectance_scale=reflectance_scale)


def _band_name(physical: str | None) -> str | None:
    """ESA ``physicalBand`` ("B1", "B8A") -> file band code ("B01", "B8A")."""
    if not physical:
        return None
    p = physical.upper()
    if p == "B8A":
        return p
    m = re.fullmatch(r"B(\d{1,2})", p)
    return f"B{int(m.group(1)):02d}" if m else None


def _image_path(safe: Path, rel: str, mtd: Path) -> Path:
    """IMAGE_FILE (no extension) -> the file on disk: ``.jp2``, else ``.tif`` / ``.TIF``."""
    base = safe / rel
    for ext in (".jp2", ".tif", ".TIF", ".tiff"):
        cand = base.with_name(base.name + ext)
        if cand.exists() or cand.is_symlink():
            return cand
    return base.with_name(base.name + ".jp2")  # open_band_file reports it missing, naming it


def safe_files(safe: Path) -> list[Path]:
    """Every file under the SAFE folder (for the scene's fingerprint)."""
    import os

    out: list[Path] = []
    for dirpath, _dirs, files in os.walk(safe, followlinks=False):
        for n in files:
            p = Path(dirpath) / n
            if p.is_file():
                out.append(p)
    return sorted(out)
