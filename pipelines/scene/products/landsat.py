"""Landsat Collection 2 Level-1 and Level-2 product folders (Landsat 8 and 9, OLI/TIRS).

A product is what USGS ships (EarthExplorer, the M2M API, the ``landsat-c2`` buckets): one
GeoTIFF per band named ``<product id>_B<n>.TIF`` (Level-2: ``_SR_B<n>.TIF``, ``_ST_B10.TIF``),
``_QA_PIXEL.TIF`` and the metadata ``_MTL.json`` / ``_MTL.txt`` (/ ``_MTL.xml``). The scene is
the MTL file; its bands are read from their own files (:mod:`pipelines.scene.products.multiband`).

Values handed to the detectors (USGS Landsat 8-9 Collection 2 Level 1/2 data format control books):

* Level-1 reflective bands 1-7 and 9: TOA reflectance
  ``(REFLECTANCE_MULT_BAND_n * Q + REFLECTANCE_ADD_BAND_n) / sin(SUN_ELEVATION)``;
* Level-1 thermal bands 10 and 11: brightness temperature ``K2 / ln(K1 / L + 1)`` with
  ``L = RADIANCE_MULT_BAND_n * Q + RADIANCE_ADD_BAND_n`` and ``K1/K2_CONSTANT_BAND_n``;
* Level-2 ``SR_B1..7``: surface reflectance ``REFLECTANCE_MULT/ADD_BAND_n`` (no sun correction:
  it is already reflectance); ``ST_B10``: surface temperature ``TEMPERATURE_MULT/ADD_BAND_ST_B10``
  in kelvin (the thermal band for the detectors);
* DN 0 and ``QA_PIXEL`` bit 0 are no-data; the QA's cloud, cirrus, shadow, snow and water flags
  are reported on each alert (``quality_flags``), never used to drop pixels;
* time: ``DATE_ACQUIRED`` + ``SCENE_CENTER_TIME`` (``acquired_source`` "mtl").

The panchromatic band 8 (15 m) is not read: no detector uses it and it would quadruple the read.

Why the MTL.txt parser is written here: the file is a flat subset of ODL (``GROUP = X`` /
``KEY = VALUE`` / ``END_GROUP = X`` lines). The one maintained ODL/PVL parser on PyPI, ``pvl``, has
had no release since 2022 and types the values its own way (dates, ints), where MTL.json gives
strings; a dozen lines turn both forms into the same dict.
"""

from __future__ import annotations

import json
import logging
import re
from datetime import datetime
from pathlib import Path
from typing import Any

from pipelines.errors import ProductError
from pipelines.scene.acquisition import resolve_acquired
from pipelines.scene.bands import LANDSAT8
from pipelines.scene.products.multiband import (
    BandSource,
    BrightnessTemperature,
    Grid,
    Linear,
    MultiFileScene,
    QualitySource,
    SunCorrected,
    build_scene,
    open_band_file,
    spacing_of,
)
from pipelines.scene.sidecar import parse_timestamp

log = logging.getLogger(__name__)

MTL_SUFFIXES = ("_MTL.json", "_MTL.txt")
ROOT = "LANDSAT_METADATA_FILE"

#: Largest MTL we read (a real one is ~15 kB): a bigger file is not an MTL.
MAX_MTL_BYTES = 4 << 20

#: OLI/TIRS bands read at Level-1 (8, panchromatic, is not) and at Level-2.
L1_REFLECTIVE = (1, 2, 3, 4, 5, 6, 7, 9)
L1_THERMAL = (10, 11)
L2_REFLECTIVE = (1, 2, 3, 4, 5, 6, 7)

_PRODUCT_ID_RE = re.compile(r"^(L[COTEM]0\d_L[12][A-Z]{2}_\d{6}_\d{8}_\d{8}_\d{2}_(?:T1|T2|RT|A1|A2))")


def is_mtl(path: Path) -> bool:
    """True for a ``*_MTL.json`` / ``*_MTL.txt`` file name."""
    return path.name.endswith(MTL_SUFFIXES)


def product_id_of(name: str) -> str | None:
    """The Collection 2 product id a file name starts with (``LC08_L1TP_..._02_T1``), or None."""
    m = _PRODUCT_ID_RE.match(name)
    return m.group(1) if m else None


def mtl_in(folder: Path) -> list[Path]:
    """The MTL of each product in ``folder``, one per product (MTL.json preferred over MTL.txt)."""
    by_product: dict[str, Path] = {}
    try:
        names = sorted(p.name for p in folder.iterdir())
    except OSError:
        return []
    for suffix in MTL_SUFFIXES:  # json first: it wins
        for n in names:
            if n.endswith(suffix):
                by_product.setdefault(n[: -len(suffix)], folder / n)
    return sorted(by_product.values())


def product_files(mtl: Path) -> list[Path]:
    """Every file of the product beside ``mtl`` (same product-id prefix), the MTL included."""
    prefix = mtl.name[: -len("_MTL.json")] if mtl.name.endswith("_MTL.json") else mtl.name[: -len("_MTL.txt")]
    try:
        return sorted(p for p in mtl.parent.iterdir() if p.name.startswith(prefix + "_") and p.is_file())
    except OSError:
        return [mtl]


# --------------------------------------------------------------------------- MTL parsing


def _parse_odl(text: str, path: Path) -> dict[str, Any]:
    """``GROUP = A`` ... ``KEY = VALUE`` ... ``END_GROUP = A`` ... ``END`` -> nested dict of strings."""
    root: dict[str, Any] = {}
    stack: list[tuple[str, dict[str, Any]]] = [("", root)]
    for lineno, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line == "END":
            continue
        key, sep, value = line.partition("=")
        if not sep:
            raise ProductError(f"line {lineno} of {path.name} is not KEY = VALUE: {line[:80]!r}", path)
        key, value = key.strip(), value.strip()
        if len(value) >= 2 and value[0] == value[-1] == '"':
            value = value[1:-1]
        if key == "GROUP":
            child: dict[str, Any] = {}
            stack[-1][1][value] = child
            stack.append((value, child))
        elif key == "END_GROUP":
            if len(stack) == 1 or stack[-1][0] != value:
                raise ProductError(f"line {lineno} of {path.name}: END_GROUP = {value} does not close the open "
                                   f"group {stack[-1][0] or '(none)'}", path)
            stack.pop()
        else:
            stack[-1][1][key] = value
    if len(stack) != 1:
        raise ProductError(f"{path.name} ends inside GROUP = {stack[-1][0]} (truncated file?)", path)
    return root


def read_mtl(path: Path) -> dict[str, Any]:
    """The ``LANDSAT_METADATA_FILE`` object of an MTL.json or MTL.txt (values as strings)."""
    try:
        size = path.stat().st_size
        if size > MAX_MTL_BYTES:
            raise ProductError(f"{path.name} is {size:,} bytes: not a Landsat MTL (they are ~15 kB)", path)
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ProductError("Landsat metadata file does not exist", path) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ProductError(f"cannot read the Landsat metadata: {exc}", path) from None
    if path.name.endswith(".json"):
        try:
            doc = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ProductError(f"not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}", path) from None
    else:
        doc = _parse_odl(text, path)
    if not isinstance(doc, dict):
        raise ProductError(f"must be an object, got {type(doc).__name__}", path)
    if "L1_METADATA_FILE" in doc:
        raise ProductError("a Landsat Collection 1 MTL (L1_METADATA_FILE): Collection 1 was retired by USGS in "
                           "2022; download the Collection 2 product", path)
    body = doc.get(ROOT)
    if not isinstance(body, dict):
        raise ProductError(f"missing group '{ROOT}' (not a Landsat Collection 2 MTL)", path)
    return body


class _Mtl:
    """Typed lookups into one MTL, every error naming the file and the key."""

    def __init__(self, body: dict[str, Any], path: Path) -> None:
        self.body = body
        self.path = path

    def group(self, name: str) -> dict[str, Any]:
        g = self.body.get(name)
        if not isinstance(g, dict):
            raise ProductError(f"missing group '{ROOT}.{name}'", self.path)
        return g

    def str(self, group: str, key: str, required: bool = True) -> str | None:
        v = self.group(group).get(key) if (required or isinstance(self.body.get(group), dict)) else None
        if v is None or str(v).strip() == "":
            if required:
                raise ProductError(f"missing key '{group}.{key}'", self.path)
            return None
        return str(v).strip()

    def num(self, group: str, key: str) -> float:
        text = self.str(group, key)
        try:
            v = float(text)  # type: ignore[arg-type]
        except ValueError:
            raise ProductError(f"key '{group}.{key}' must be a number, got {text!r}", self.path) from None
        if v != v or v in (float("inf"), float("-inf")):
            raise ProductError(f"key '{group}.{key}' must be finite, got {text!r}", self.path)
        return v


# --------------------------------------------------------------------------- opening


def open_landsat(mtl_path: Path, reflectance_scale: float | None = None,
                 acquired: datetime | None = None) -> MultiFileScene:
    """Open a Collection 2 product from its MTL (reads headers only; see the module docstring)."""
    mtl = _Mtl(read_mtl(mtl_path), mtl_path)
    product_id = mtl.str("PRODUCT_CONTENTS", "LANDSAT_PRODUCT_ID")
    level = mtl.str("PRODUCT_CONTENTS", "PROCESSING_LEVEL")
    spacecraft = mtl.str("IMAGE_ATTRIBUTES", "SPACECRAFT_ID")
    sensor = mtl.str("IMAGE_ATTRIBUTES", "SENSOR_ID")
    if spacecraft not in ("LANDSAT_8", "LANDSAT_9") or sensor != "OLI_TIRS":
        raise ProductError(f"{spacecraft} {sensor} products are not supported (Landsat 8/9 OLI_TIRS are; "
                           "TM/ETM+ number their bands differently)", mtl_path)
    day = mtl.str("IMAGE_ATTRIBUTES", "DATE_ACQUIRED")
    centre = mtl.str("IMAGE_ATTRIBUTES", "SCENE_CENTER_TIME")
    try:
        when = parse_timestamp(f"{day}T{centre}")
    except ValueError:
        raise ProductError(f"keys 'IMAGE_ATTRIBUTES.DATE_ACQUIRED' ({day!r}) and 'SCENE_CENTER_TIME' "
                           f"({centre!r}) are not a valid time", mtl_path) from None
    folder = mtl_path.parent
    contents = "PRODUCT_CONTENTS"
    sources: list[BandSource] = []
    if level.startswith("L1"):  # type: ignore[union-attr]
        sun = mtl.num("IMAGE_ATTRIBUTES", "SUN_ELEVATION")
        if not 0.0 < sun <= 90.0:
            raise ProductError(f"key 'IMAGE_ATTRIBUTES.SUN_ELEVATION' is {sun}: TOA reflectance needs the sun above "
                               "the horizon", mtl_path)
        resc = "LEVEL1_RADIOMETRIC_RESCALING"
        for n in L1_REFLECTIVE:
            key = f"FILE_NAME_BAND_{n}"
            sources.append(BandSource(
                name=LANDSAT8[f"B{n}"], path=folder / mtl.str(contents, key),  # type: ignore[operator]
                calibration=SunCorrected(mtl.num(resc, f"REFLECTANCE_MULT_BAND_{n}"),
                                         mtl.num(resc, f"REFLECTANCE_ADD_BAND_{n}"), sun),
                nodata=(0,), label=f"{contents}.{key}"))
        for n in L1_THERMAL:
            key = f"FILE_NAME_BAND_{n}"
            sources.append(BandSource(
                name=LANDSAT8[f"B{n}"], path=folder / mtl.str(contents, key),  # type: ignore[operator]
                calibration=BrightnessTemperature(
                    mtl.num(resc, f"RADIANCE_MULT_BAND_{n}"), mtl.num(resc, f"RADIANCE_ADD_BAND_{n}"),
                    mtl.num("LEVEL1_THERMAL_CONSTANTS", f"K1_CONSTANT_BAND_{n}"),
                    mtl.num("LEVEL1_THERMAL_CONSTANTS", f"K2_CONSTANT_BAND_{n}")),
                nodata=(0,), label=f"{contents}.{key}"))
        product = "landsat-c2-l1"
    elif level.startswith("L2"):  # type: ignore[union-attr]
        srp = "LEVEL2_SURFACE_REFLECTANCE_PARAMETERS"
        for n in L2_REFLECTIVE:
            key = f"FILE_NAME_BAND_{n}"
            sources.append(BandSource(
                name=LANDSAT8[f"B{n}"], path=folder / mtl.str(contents, key),  # type: ignore[operator]
                calibration=Linear(mtl.num(srp, f"REFLECTANCE_MULT_BAND_{n}"), mtl.num(srp, f"REFLECTANCE_ADD_BAND_{n}")),
                nodata=(0,), label=f"{contents}.{key}"))
        st_file = mtl.str(contents, "FILE_NAME_BAND_ST_B10", required=level == "L2SP")
        if st_file is not None:
            stp = "LEVEL2_SURFACE_TEMPERATURE_PARAMETERS"
            sources.append(BandSource(
                name="lwir11", path=folder / st_file,
                calibration=Linear(mtl.num(stp, "TEMPERATURE_MULT_BAND_ST_B10"),
                                   mtl.num(stp, "TEMPERATURE_ADD_BAND_ST_B10"), unit="kelvin"),
                nodata=(0,), label=f"{contents}.FILE_NAME_BAND_ST_B10"))
        product = "landsat-c2-l2"
    else:
        raise ProductError(f"key 'PRODUCT_CONTENTS.PROCESSING_LEVEL' is {level!r}: expected L1TP/L1GT/L1GS or "
                           "L2SP/L2SR", mtl_path)
    qa_key = "FILE_NAME_QUALITY_L1_PIXEL"
    qa_name = mtl.str(contents, qa_key, required=False)
    quality = [QualitySource("landsat-qa-pixel", folder / qa_name, label=f"{contents}.{qa_key}")] if qa_name else []
    if not quality:
        log.warning("%s: no %s in the MTL: only DN 0 marks no-data, and alerts carry no QA flags", mtl_path.name, qa_key)
    headers = {}
    for s in [*sources, *quality]:
        if s.path not in headers:
            headers[s.path] = open_band_file(s.path, mtl_path, s.label)
    grid = Grid.of(headers[sources[0].path])
    when, source = resolve_acquired((when, "mtl"), acquired, mtl_path, "no acquisition time")
    metadata = {
        "product_id": product_id, "processing_level": level, "spacecraft": spacecraft, "sensor": sensor,
        "wrs_path": mtl.str("IMAGE_ATTRIBUTES", "WRS_PATH", required=False),
        "wrs_row": mtl.str("IMAGE_ATTRIBUTES", "WRS_ROW", required=False),
        "sun_elevation_deg": _maybe_num(mtl, "IMAGE_ATTRIBUTES", "SUN_ELEVATION"),
        "sun_azimuth_deg": _maybe_num(mtl, "IMAGE_ATTRIBUTES", "SUN_AZIMUTH"),
        "cloud_cover": _maybe_num(mtl, "IMAGE_ATTRIBUTES", "CLOUD_COVER"),
        "mtl": mtl_path.name,
    }
    return build_scene(path=mtl_path, stem=product_id, grid=grid, sources=sources,  # type: ignore[arg-type]
                       quality=quality, headers=headers, acquired=when, acquired_source=source,
                       spacing_m=spacing_of(grid, mtl_path), metadata=metadata, product=product,
                       reflectance_scale=reflectance_scale)


def _maybe_num(mtl: _Mtl, group: str, key: str) -> float | None:
    try:
        return mtl.num(group, key) if mtl.str(group, key, required=False) is not None else None
    except ProductError:
        return None
