"""SAR radiometric encodings (issue 19): the same scene as uint16 counts, float amplitude, float
intensity, float dB, an 8-bit display stretch and counts under another gain must give the same
detections through the real CLI; auto-detection picks each encoding from the metadata, the data
type or the values; impossible readings fail naming the file while the batch goes on.

One generated scene (768 x 768 at 0.5 m, fixed seed) is written once per module in every encoding
and scanned by ONE CLI batch, so the module costs a scene generation and a handful of CPU scans.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
import rasterio
from conftest import UTM33_TRANSFORM, capella_doc, write_tiny_sar_impl
from typer.testing import CliRunner

from pipelines.cli import app
from pipelines.detect import ScanOptions
from pipelines.errors import RadiometryError, ScanOptionError, SidecarError
from pipelines.scene import open_scene
from pipelines.scene.radiometry import check_choice, hint_from_text

log = logging.getLogger(__name__)

SEED = 11
SIDE = 768
#: Position tolerance between encodings of the same pixels (the brief: centres within 1 px).
SAME_PX = 1.0
#: Position tolerance for the display stretch, whose saturated blobs move centroids a little.
DISPLAY_PX = 4.0
SCAN = ["-d", "sar-learned", "--device", "cpu", "-q", "--no-resume"]


# --------------------------------------------------------------------------- writing the encodings
def _write(path: Path, band: np.ndarray, like: Any, *, nodata: float | None = None, unit: str | None = None,
           description: str | None = None, tags: dict[str, str] | None = None) -> Path:
    """One-band GeoTIFF with ``like``'s georeferencing, and optionally a band unit/description/tags."""
    profile = dict(driver="GTiff", width=band.shape[1], height=band.shape[0], count=1, dtype=band.dtype.name,
                   crs=like.crs, transform=like.transform, compress="DEFLATE")
    if min(band.shape) >= 256:
        profile.update(tiled=True, blockxsize=256, blockysize=256)
    if nodata is not None:
        profile["nodata"] = nodata
    with rasterio.open(path, "w", **profile) as ds:
        ds.write(band, 1)
        if unit:
            ds.set_band_unit(1, unit)
        if description:
            ds.set_band_description(1, description)
        if tags:
            ds.update_tags(**tags)
    return path


def _sidecar(src: Path, dst: Path, **image: Any) -> None:
    doc = json.loads(src.read_text())
    doc["collect"]["image"].update(image)
    dst.write_text(json.dumps(doc))


def display_stretch(amp: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """A quicklook as tools make them: 2-98 % percentile clip on amplitude, gamma 0.5, 8 bits."""
    lo, hi = np.percentile(amp[valid], [2.0, 98.0])
    x = np.clip((amp - lo) / (hi - lo), 0.0, 1.0) ** 0.5
    return np.where(valid, np.rint(255.0 * x), 0).astype(np.uint8)


@pytest.fixture(scope="module")
def encoded(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The scene in every encoding + one impossible file, scanned by one CLI batch."""
    from detectors.synth.sar import make_sar_scene
    from pipelines.scene.write import write_sar_bundle

    root = tmp_path_factory.mktemp("radiometry")
    scenes = root / "scenes"
    sar = make_sar_scene(seed=SEED, rows=SIDE, cols=SIDE, spacing_m=0.5, land=False, nodata_border=False)
    counts = write_sar_bundle(scenes, "counts", sar, origin_utm=(500000.0, 4000000.0))
    side = counts.with_name("counts_extended.json")
    s = float(sar.scale_factor)
    dn = sar.dn.astype(np.float64)
    valid = sar.dn > 0
    amp = dn * s
    sigma0 = amp ** 2
    with rasterio.open(counts) as like:
        # 10x the gain: the same counts, scale_factor x 10 (sigma0 x 100, +20 dB everywhere).
        _write(scenes / "gain10.tif", sar.dn, like, nodata=0)
        _sidecar(side, scenes / "gain10_extended.json", scale_factor=s * 10.0)
        # Float amplitude as Capella ships it: data_type Float32 (its word: amplitude), calibrated.
        _write(scenes / "amplitude.tif", amp.astype(np.float32), like)
        _sidecar(side, scenes / "amplitude_extended.json", data_type="Float32", scale_factor=1.0)
        # Linear power converted beside the original UInt16 sidecar, declared by a SNAP-style unit.
        _write(scenes / "intensity.tif", sigma0.astype(np.float32), like, unit="intensity", description="Sigma0_HH")
        _sidecar(side, scenes / "intensity_extended.json")
        # dB, NaN where there is no data, with nothing declared: auto must see it in the values.
        db = np.where(valid, 10.0 * np.log10(np.where(valid, sigma0, 1.0)), np.nan).astype(np.float32)
        _write(scenes / "db.tif", db, like, nodata=float("nan"))
        _sidecar(side, scenes / "db_extended.json", data_type="Float32", scale_factor=1.0)
        # 8-bit display stretch beside the original UInt16 sidecar: auto takes uint8 as display.
        _write(scenes / "display.tif", display_stretch(amp, valid), like)
        _sidecar(side, scenes / "display_extended.json")
        # Impossible: declared amplitude, holding dB (negative) values -> fails, the batch goes on.
        _write(scenes / "bad_amplitude.tif", db, like, nodata=float("nan"), unit="amplitude")
        _sidecar(side, scenes / "bad_amplitude_extended.json", data_type="Float32", scale_factor=1.0)
        # Linear power in a Float32 product with nothing declared: Capella's word (amplitude) would
        # be wrong, so this one is scanned with --radiometry intensity.
        plain = root / "override"
        plain.mkdir()
        _write(plain / "intensity_plain.tif", sigma0.astype(np.float32), like)
        _sidecar(side, plain / "intensity_plain_extended.json", data_type="Float32", scale_factor=1.0)

    out, report = root / "alerts.geojson", root / "report.json"
    res = CliRunner().invoke(app, ["scan", str(scenes), "-o", str(out), "--errors", str(report), *SCAN])
    out2 = root / "override.geojson"
    res2 = CliRunner().invoke(app, ["scan", str(plain), "-o", str(out2), "--radiometry", "intensity", *SCAN])
    return {"root": root, "scenes": scenes, "res": res, "res2": res2, "report": json.loads(report.read_text()),
            "alerts": _by_scene(out) | _by_scene(out2), "plain": plain / "intensity_plain.tif"}


def _by_scene(geojson: Path) -> dict[str, list[tuple[float, float]]]:
    out: dict[str, list[tuple[float, float]]] = {}
    for f in json.loads(geojson.read_text())["features"]:
        p = f["properties"]
        out.setdefault(p["scene"], []).append((p["row"], p["col"]))
    return out


def _matched(a: list[tuple[float, float]], b: list[tuple[float, float]], tol: float) -> int:
    """How many of ``a`` have a distinct partner in ``b`` within ``tol`` pixels (closest pairs first)."""
    pairs = sorted((float(np.hypot(ra - rb, ca - cb)), i, j) for i, (ra, ca) in enumerate(a)
                   for j, (rb, cb) in enumerate(b))
    used_a: set[int] = set()
    used_b: set[int] = set()
    for d, i, j in pairs:
        if d <= tol and i not in used_a and j not in used_b:
            used_a.add(i)
            used_b.add(j)
    return len(used_a)


# --------------------------------------------------------------------------- the same detections
def test_batch_scans_every_encoding_and_reports_the_impossible_one(encoded: dict[str, Any]) -> None:
    res, report = encoded["res"], encoded["report"]
    assert res.exit_code == 1, res.output  # one scene failed; the others were scanned
    assert [Path(f["path"]).name for f in report["failures"]] == ["bad_amplitude.tif"]
    fail = report["failures"][0]
    assert fail["error"] == "RadiometryError"
    assert "bad_amplitude.tif" in fail["reason"] and "negative" in fail["reason"]
    notes = {r["scene"]: " ".join(r["notes"]) for r in report["results"]}
    assert set(notes) == {"counts", "gain10", "amplitude", "intensity", "db", "display"}
    for scene, encoding in (("counts", "amplitude"), ("gain10", "amplitude"), ("amplitude", "amplitude"),
                            ("intensity", "intensity"), ("db", "db"), ("display", "display")):
        assert f"radiometry: {encoding} " in notes[scene], (scene, notes[scene])
    assert "look like dB" in notes["db"] and "band unit 'intensity'" in notes["intensity"]


@pytest.mark.parametrize("variant", ["gain10", "amplitude", "intensity", "db", "intensity_plain"])
def test_linear_encodings_give_the_same_detections(encoded: dict[str, Any], variant: str) -> None:
    assert encoded["res2"].exit_code == 0, encoded["res2"].output
    ref = encoded["alerts"]["counts"]
    got = encoded["alerts"].get(variant, [])
    assert len(ref) >= 3, "the scene must hold targets for the comparison to mean anything"
    assert len(got) == len(ref), (variant, got, ref)
    assert _matched(got, ref, SAME_PX) == len(ref), (variant, got, ref)


def test_display_stretch_is_scanned(encoded: dict[str, Any]) -> None:
    """The 8-bit quicklook opens as display and is scanned; what it finds is measured below."""
    ref = encoded["alerts"]["counts"]
    got = encoded["alerts"].get("display", [])
    recall = _matched(ref, got, DISPLAY_PX) / len(ref)
    log.warning("display stretch (2-98 %% clip, gamma 0.5): %d detection(s), %d of the %d counts detections "
                "(recall %.2f)", len(got), _matched(ref, got, DISPLAY_PX), len(ref), recall)
    assert "display" in {r["scene"] for r in encoded["report"]["results"]}


@pytest.mark.xfail(strict=True, reason="measured recall 0.00 (0 of 6) on this scene and 0.32 (21 of 65) over seeds "
                   "3-6, 11-13, 21: the 98th-percentile clip saturates the sea's bright tail and the targets alike "
                   "(4-6 dB of contrast left where the sea is homogeneous) and sar-learned does not find them; a "
                   "99.9 % clip keeps 0.75. An 8-bit stretch that clips the tail cannot be decoded back")
def test_display_stretch_finds_80_percent_of_the_counts_detections(encoded: dict[str, Any]) -> None:
    ref = encoded["alerts"]["counts"]
    got = encoded["alerts"].get("display", [])
    assert _matched(ref, got, DISPLAY_PX) >= 0.8 * len(ref), (got, ref)


def test_auto_misreads_undeclared_float_intensity_which_the_override_fixes(encoded: dict[str, Any]) -> None:
    """Why --radiometry exists: a Float32 product is amplitude by Capella's word."""
    with open_scene(encoded["plain"]) as auto, open_scene(encoded["plain"], radiometry="intensity") as fixed:
        assert auto.radiometry.encoding == "amplitude" and fixed.radiometry.encoding == "intensity"
        assert fixed.radiometry.source == "override"
        a, _ = auto.read(0, 0, 64, 64)
        b, _ = fixed.read(0, 0, 64, 64)
    np.testing.assert_allclose(a, b ** 2, rtol=1e-5)


# --------------------------------------------------------------------------- auto-detection
def _tiny(tmp_path: Path, band: np.ndarray, name: str = "T", *, data_type: str = "UInt16", scale: float = 0.01,
          **kw: Any) -> Path:
    """A 4 x 4-ish SAR TIFF + a real Capella sidecar whose data_type may differ from the TIFF."""
    h, w = band.shape
    tif = _write(tmp_path / f"{name}.tif", band, SimpleNamespace(crs="EPSG:32633", transform=UTM33_TRANSFORM), **kw)
    doc = capella_doc(rows=h, columns=w, data_type=data_type, scale_factor=scale)
    (tmp_path / f"{name}_extended.json").write_text(json.dumps(doc))
    return tif


def _enc(tif: Path, radiometry: str = "auto") -> tuple[str, str, float]:
    with open_scene(tif, radiometry=radiometry) as s:
        return s.radiometry.encoding, s.radiometry.source, s.radiometry.gain


POS = np.array([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]], np.float32)
DB = np.array([[-25.0, -20.0, 3.0], [-18.5, -30.0, 12.0]], np.float32)


@pytest.mark.parametrize("band, data_type, kw, want", [
    (np.array([[1, 2], [3, 4]], np.uint16), "UInt16", {}, ("amplitude", "data type", 0.01)),
    (POS, "Float32", {}, ("amplitude", "metadata", 0.01)),  # Capella's Float32 is amplitude
    (DB, "Float32", {}, ("db", "values", 0.01)),  # negative median: dB whatever the sidecar says
    (DB, "UInt16", {}, ("db", "values", 1.0)),  # a converted product: gain 1
    (POS, "UInt16", {"unit": "dB"}, ("db", "metadata", 1.0)),
    (POS, "UInt16", {"unit": "amplitude"}, ("amplitude", "metadata", 1.0)),
    (POS, "UInt16", {"description": "Sigma0_HH_db"}, ("db", "metadata", 1.0)),
    (POS, "UInt16", {"description": "Sigma0_HH"}, ("intensity", "metadata", 1.0)),  # SNAP: linear power
    (POS, "Float32", {"tags": {"RADIOMETRY": "intensity"}}, ("intensity", "metadata", 0.01)),
    (np.array([[0, 7], [200, 255]], np.uint8), "UInt16", {}, ("display", "data type", 1.0)),
    (np.array([[0, 7], [200, 255]], np.uint8), "CInt16", {}, ("display", "data type", 1.0)),
])
def test_auto_detection(tmp_path: Path, band: np.ndarray, data_type: str, kw: dict, want: tuple) -> None:
    assert _enc(_tiny(tmp_path, band, data_type=data_type, **kw)) == want


def test_sidecar_key_and_written_bundle_tag(tmp_path: Path) -> None:
    tif = _tiny(tmp_path, POS, data_type="Float32")
    doc = json.loads(tif.with_name("T_extended.json").read_text())
    doc["orbitwatch_radiometry"] = "intensity"
    tif.with_name("T_extended.json").write_text(json.dumps(doc))
    assert _enc(tif) == ("intensity", "metadata", 0.01)
    assert hint_from_text("sigma_nought: (DN*scale)^2", "tag").encoding == "amplitude"  # write_sar_bundle's tag
    assert hint_from_text("intensity_db", "unit").encoding == "db"
    assert hint_from_text("HH", "description") is None
    assert check_choice(" DB ") == "db"


def test_conversions_and_no_data(tmp_path: Path) -> None:
    db = np.array([[np.nan, 0.0, -20.0], [10.0, -np.inf, -3.0]], np.float32)
    with open_scene(_tiny(tmp_path, db, "D", data_type="Float32")) as s:
        data, valid = s.read(0, 0, 2, 3)
        preview, pvalid, _ = s.read_preview(8)
    np.testing.assert_array_equal(valid, [[False, False, True], [True, False, True]])  # 0, NaN, -inf: no data
    np.testing.assert_allclose(data[0][valid], 10.0 ** (db[valid] / 10.0), rtol=1e-5)
    np.testing.assert_allclose(preview[0][pvalid], 10.0 ** (db[valid] / 20.0), rtol=1e-5)  # amplitude for display
    disp = np.array([[0, 1], [100, 255]], np.uint8)
    data, valid = open_scene(_tiny(tmp_path, disp, "S")).read(0, 0, 2, 2)
    np.testing.assert_allclose(data[0][valid], (disp[valid] + 0.5) ** 2)
    assert not valid[0, 0]
    inten = open_scene(_tiny(tmp_path, POS, "I", data_type="Float32"), radiometry="intensity").read(0, 0, 2, 3)[0]
    np.testing.assert_allclose(inten[0], POS * 0.01 ** 2, rtol=1e-6)  # native Float32: gain = scale_factor


# --------------------------------------------------------------------------- error paths
def test_wrong_override_value(tmp_path: Path) -> None:
    tif = _tiny(tmp_path, POS, data_type="Float32")
    with pytest.raises(RadiometryError, match="radiometry must be one of auto, intensity") as ei:
        open_scene(tif, radiometry="linear")
    assert ei.value.path == str(tif)
    with pytest.raises(ScanOptionError, match="--radiometry must be one of"):
        ScanOptions(radiometry="sigma0").validate()
    res = CliRunner().invoke(app, ["scan", str(tif), "-o", str(tmp_path / "a.geojson"), "-q", "--radiometry", "x"])
    assert res.exit_code == 2 and "--radiometry must be one of" in res.output


def test_negative_values_as_amplitude(tmp_path: Path) -> None:
    tif = _tiny(tmp_path, DB, "NEG", data_type="Float32")
    for r in ("amplitude", "intensity", "display"):
        with pytest.raises(RadiometryError, match=r"NEG\.tif: .* are negative .*--radiometry db"):
            open_scene(tif, radiometry=r)


def test_db_out_of_range_and_undeclared_fill(tmp_path: Path) -> None:
    with pytest.raises(RadiometryError, match=r"BIG\.tif: .*outside -100\.\.\+60"):
        open_scene(_tiny(tmp_path, POS * 100, "BIG", data_type="Float32"), radiometry="db")
    fill = np.where(DB > 0, -9999.0, DB).astype(np.float32)  # a no-data value the TIFF does not declare
    with pytest.raises(RadiometryError, match=r"FILL\.tif: .*-9999.*set its nodata"):
        open_scene(_tiny(tmp_path, fill, "FILL", data_type="Float32"))
    ok = _tiny(tmp_path, fill, "DECLARED", data_type="Float32", nodata=-9999.0)
    assert _enc(ok)[0] == "db"


def test_impossible_display_is_caught_at_read(tmp_path: Path) -> None:
    """uint16 counts are not 8-bit: the check runs on each window read (no sample for integers)."""
    with open_scene(_tiny(tmp_path, np.array([[1, 300], [2, 3]], np.uint16), "U16"), radiometry="display") as s:
        with pytest.raises(RadiometryError, match=r"U16\.tif: pixels in window rows 0\.\.2 cols 0\.\.2 reach 300"):
            s.read(0, 0, 2, 2)


def test_complex_slc_refuses_other_encodings(tmp_path: Path) -> None:
    tif = write_tiny_sar_impl(tmp_path, np.ones((4, 4)) + 1j, data_type="CInt16")
    assert _enc(tif) == ("amplitude", "data type", 0.01)
    with pytest.raises(RadiometryError, match="complex .* SLC"):
        open_scene(tif, radiometry="db")


def test_undeclared_converted_float_names_the_fix(tmp_path: Path) -> None:
    tif = _tiny(tmp_path, POS, "CONV", data_type="UInt16")
    with pytest.raises(SidecarError, match=r"CONV\.tif: unsupported data type: sidecar data_type 'UInt16'.*"
                                           r"do not look like dB.*--radiometry"):
        open_scene(tif)
    assert _enc(tif, "intensity") == ("intensity", "override", 1.0)


def test_bad_sidecar_key(tmp_path: Path) -> None:
    tif = _tiny(tmp_path, POS, data_type="Float32")
    doc = json.loads(tif.with_name("T_extended.json").read_text())
    doc["orbitwatch_radiometry"] = "sigma0"
    tif.with_name("T_extended.json").write_text(json.dumps(doc))
    with pytest.raises(SidecarError, match="T_extended.json: key 'orbitwatch_radiometry' must be one of"):
        open_scene(tif)
