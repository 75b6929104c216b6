"""The issue's number: each sample scene re-packaged in each form a user downloads gives the same
alerts as its tile form, with the default detectors.

Forms (written by :mod:`pipelines.scene.write_products` from the committed sample scenes):

* SAR (``sample_scenes/sar/*``): a Capella GeoTIFF with the metadata in its ImageDescription tag
  and no sidecar; a Capella open-data STAC item (bucket hrefs, files beside it);
* Landsat-like optical: Collection 2 Level-1 (MTL.json and MTL.txt) and Level-2 folders; a STAC item;
* Sentinel-2-like optical: L1C and L2A SAFE (JPEG 2000 bands at 10/20/60 m); a STAC item.

"Same alerts": the same number, kind, pixel position, score, length and fire pixels; positions
in WGS84 to 1e-7 deg. Exactly, for every form whose DNs hold the tile's values (SAR, STAC,
Sentinel-2: its sample is stored in L1C's own DN scaling). A Landsat folder re-quantises the
tile to Landsat's DNs (``REFLECTANCE_MULT`` 2e-5 over the sun's sine: a step of ~2.4e-5 in
reflectance), and saturates at the top of the DN range (the brightest fire pixels of the
butte sample reach 1.74 in swir22, above the 1.43 a Level-1 DN can hold): fire pixels, scores and
kinds stay identical, intensity-weighted centroids move by less than 0.1 pixel.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from pipelines.alerts.model import Alert
from pipelines.detect import ScanOptions, scan_scene
from pipelines.scene import write_products as wp

pytestmark = pytest.mark.slow

SAMPLES = Path(__file__).resolve().parent.parent / "sample_scenes"
SAR = sorted((SAMPLES / "sar").glob("*.tif"))
OPTICAL = sorted((SAMPLES / "optical").glob("*.tif"))
LANDSAT = [p for p in OPTICAL if "landsat" in p.stem]
SENTINEL2 = [p for p in OPTICAL if "sentinel2" in p.stem]

#: (tile stem, form) -> max centroid shift in pixels. 0: bit-identical alerts.
LANDSAT_SHIFT_PX = 0.1


def _forms(root: Path) -> dict[tuple[str, str], Path]:
    forms: dict[tuple[str, str], Path] = {}
    for tif in SAR:
        forms[(tif.stem, "capella-geotiff")] = wp.write_capella_geotiff(tif, root / "capella" / tif.stem)
        forms[(tif.stem, "stac-item")] = wp.write_capella_stac_item(tif, root / "stac" / tif.stem)
    for tif in LANDSAT:
        forms[(tif.stem, "landsat-l1-json")] = wp.write_landsat_c2(tif, root / "l1j" / tif.stem, level="L1")
        forms[(tif.stem, "landsat-l1-txt")] = wp.write_landsat_c2(tif, root / "l1t" / tif.stem, level="L1",
                                                                  mtl_format="txt")
        forms[(tif.stem, "landsat-l2")] = wp.write_landsat_c2(tif, root / "l2" / tif.stem, level="L2")
    for tif in SENTINEL2:
        forms[(tif.stem, "s2-l1c")] = wp.write_sentinel2_safe(tif, root / "l1c" / tif.stem, level="L1C")
        forms[(tif.stem, "s2-l2a")] = wp.write_sentinel2_safe(tif, root / "l2a" / tif.stem, level="L2A")
    for tif in OPTICAL:
        forms[(tif.stem, "stac-item")] = wp.write_optical_stac_item(tif, root / "stac" / tif.stem)
    return forms


@pytest.fixture(scope="module")
def scans(tmp_path_factory: pytest.TempPathFactory) -> dict[tuple[str, str], list[Alert]]:
    """Alerts of every tile form and every re-packaged form (one scan each, CPU, default detectors)."""
    forms = _forms(tmp_path_factory.mktemp("forms"))
    options = ScanOptions(device="cpu")
    out: dict[tuple[str, str], list[Alert]] = {}
    for tif in SAR + OPTICAL:
        out[(tif.stem, "tile")] = scan_scene(tif, options).alerts
    for key, path in forms.items():
        out[key] = scan_scene(path, options).alerts
    return out


def _order(alerts: list[Alert]) -> list[Alert]:
    return sorted(alerts, key=lambda a: (a.kind, round(a.row), round(a.col)))


def _assert_same(tile: list[Alert], other: list[Alert], shift_px: float, what: str) -> None:
    assert len(other) == len(tile), f"{what}: {len(other)} alerts, tile form {len(tile)}"
    for a, b in zip(_order(tile), _order(other)):
        assert (b.kind, b.detector) == (a.kind, a.detector), what
        if shift_px == 0:
            assert (b.row, b.col, b.score, b.length_m, b.width_m, b.heading_deg, b.area_m2, b.pixels) == \
                (a.row, a.col, a.score, a.length_m, a.width_m, a.heading_deg, a.area_m2, a.pixels), what
            assert abs(b.lon - a.lon) < 1e-7 and abs(b.lat - a.lat) < 1e-7, what
        else:
            assert abs(b.row - a.row) < shift_px and abs(b.col - a.col) < shift_px, (what, a, b)
            assert b.score == pytest.approx(a.score, abs=1e-3), what
            assert sorted(b.pixels or []) == sorted(a.pixels or []) and b.area_m2 == a.area_m2, what
        assert abs((b.acquired - a.acquired).total_seconds()) < 1e-3, what


@pytest.mark.parametrize("tif", SAR, ids=lambda p: p.stem)
@pytest.mark.parametrize("form", ["capella-geotiff", "stac-item"])
def test_sar_forms_give_the_tile_alerts(scans: dict, tif: Path, form: str) -> None:
    tile = scans[(tif.stem, "tile")]
    assert tile, "the sample must have alerts for the comparison to mean something"
    _assert_same(tile, scans[(tif.stem, form)], 0, f"{tif.stem} as {form}")
    sources = {a.attrs["acquired_source"] for a in scans[(tif.stem, form)]}
    assert sources == ({"tiff-tag:TIFFTAG_IMAGEDESCRIPTION"} if form == "capella-geotiff" else {"stac"})


@pytest.mark.parametrize("tif", LANDSAT, ids=lambda p: p.stem)
@pytest.mark.parametrize("form", ["landsat-l1-json", "landsat-l1-txt", "landsat-l2", "stac-item"])
def test_landsat_forms_give_the_tile_alerts(scans: dict, tif: Path, form: str) -> None:
    shift = 0 if form == "stac-item" else LANDSAT_SHIFT_PX
    _assert_same(scans[(tif.stem, "tile")], scans[(tif.stem, form)], shift, f"{tif.stem} as {form}")


@pytest.mark.parametrize("tif", SENTINEL2, ids=lambda p: p.stem)
@pytest.mark.parametrize("form", ["s2-l1c", "s2-l2a", "stac-item"])
def test_sentinel2_forms_give_the_tile_alerts(scans: dict, tif: Path, form: str) -> None:
    tile = scans[(tif.stem, "tile")]
    assert tile
    _assert_same(tile, scans[(tif.stem, form)], 0, f"{tif.stem} as {form}")


def test_every_sample_scene_has_its_forms(scans: dict) -> None:
    kinds = {}
    for stem, form in scans:
        kinds.setdefault(stem, set()).add(form)
    assert len(kinds) == 6
    for stem, forms in kinds.items():
        assert len(forms) >= 3, (stem, forms)  # the tile and at least two re-packagings
