"""Capella / optical sidecar parsing: real files, timestamps and every failure path."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from conftest import CAPELLA_GEO_SIDECAR, CAPELLA_PFA_SIDECAR, CAPELLA_STRIPMAP_SIDECAR, capella_doc

from pipelines.errors import SceneError, SidecarError
from pipelines.scene import (
    CapellaMetadata,
    parse_optical_sidecar,
    parse_sidecar,
    parse_timestamp,
    read_sidecar,
)

UTC = timezone.utc


def test_real_geo_sidecar_values() -> None:
    m = read_sidecar(CAPELLA_GEO_SIDECAR)
    assert isinstance(m, CapellaMetadata)
    assert m.product_type == "GEO"
    assert m.product_version == "1.10"
    assert m.platform == "capella-14"
    assert m.mode == "spotlight"
    assert m.collect_id == "ce46dc3a-daa2-4169-b7d3-7bc3d425b2f7"
    # nanosecond strings, truncated to microseconds
    assert m.start == datetime(2024, 7, 9, 4, 3, 29, 10153, tzinfo=UTC)
    assert m.stop == datetime(2024, 7, 9, 4, 3, 57, 901172, tzinfo=UTC)
    assert m.data_type == "UInt16"
    assert (m.rows, m.columns) == (24638, 24103)
    assert m.pixel_spacing_row == pytest.approx(0.39527849717356395, rel=1e-15)
    assert m.pixel_spacing_column == pytest.approx(0.3952784971619971, rel=1e-15)
    assert m.scale_factor == pytest.approx(9.657046131856903e-05, rel=1e-15)
    assert m.radiometry == "sigma_nought"
    assert m.enl == 9.0
    assert m.center_frequency_hz == 9649999872.0
    assert m.polarizations == "HH"
    assert m.image_geometry["type"] == "geotransform"
    assert m.image_geometry["geotransform"][0] == pytest.approx(495852.26366303314)
    assert m.look_angle_deg == pytest.approx(34.442018)
    assert m.incidence_angle_deg == pytest.approx(38.231502739080746)
    # mean of the three PRF segments kept in the trimmed file
    assert m.prf_hz == pytest.approx((10123.096857790735 + 10129.112419642375 + 10135.135135135135) / 3)
    assert m.raw["collect"]["collect_id"] == m.collect_id


def test_real_slc_sidecars() -> None:
    pfa = read_sidecar(CAPELLA_PFA_SIDECAR)
    assert (pfa.product_type, pfa.data_type, pfa.mode, pfa.platform) == ("SLC", "CInt16", "spotlight", "capella-13")
    assert (pfa.rows, pfa.columns) == (35762, 9383)
    assert pfa.radiometry == "beta_nought"
    assert pfa.image_geometry["type"] == "pfa"
    assert pfa.scale_factor == pytest.approx(0.0012313161024507554)
    assert pfa.start == datetime(2025, 8, 26, 2, 35, 18, 973409, tzinfo=UTC)
    sm = read_sidecar(CAPELLA_STRIPMAP_SIDECAR)
    assert (sm.mode, sm.polarizations, sm.image_geometry["type"]) == ("stripmap", "VV", "slant_plane")
    assert sm.center_frequency_hz == 9649999872.0
    assert sm.prf_hz == pytest.approx((10110.541925047182 + 10111.087144089732) / 2)
    assert sm.look_angle_deg == pytest.approx(29.10185980935153)


@pytest.mark.parametrize(("text", "expected"), [
    ("2024-07-09T04:03:29.010153366Z", datetime(2024, 7, 9, 4, 3, 29, 10153, tzinfo=UTC)),
    ("2024-07-09T04:03:29.999999999Z", datetime(2024, 7, 9, 4, 3, 29, 999999, tzinfo=UTC)),  # never rolls over
    ("2024-07-09T04:03:29.5Z", datetime(2024, 7, 9, 4, 3, 29, 500000, tzinfo=UTC)),
    ("2024-07-09T04:03:29Z", datetime(2024, 7, 9, 4, 3, 29, tzinfo=UTC)),
    ("2024-07-09T06:03:29+02:00", datetime(2024, 7, 9, 4, 3, 29, tzinfo=UTC)),
    ("2024-07-09T04:03:29", datetime(2024, 7, 9, 4, 3, 29, tzinfo=UTC)),
    ("2024:07:09 04:03:29", datetime(2024, 7, 9, 4, 3, 29, tzinfo=UTC)),  # TIFFTAG_DATETIME form
    ("2024-07-09", datetime(2024, 7, 9, tzinfo=UTC)),
])
def test_parse_timestamp(text: str, expected: datetime) -> None:
    got = parse_timestamp(text)
    assert got == expected
    assert got.utcoffset() == timedelta(0)


@pytest.mark.parametrize("text", ["", "yesterday", "2024-13-01T00:00:00Z", "2024-07-09T25:00:00Z", "2024-07-09T04:03:29Q"])
def test_parse_timestamp_rejects(text: str) -> None:
    with pytest.raises(ValueError):
        parse_timestamp(text)


# ---------------------------------------------------------------- failure paths


def test_missing_file(tmp_path: Path) -> None:
    p = tmp_path / "X_extended.json"
    with pytest.raises(SidecarError, match="missing sidecar X_extended.json") as ei:
        read_sidecar(p)
    assert ei.value.path == str(p)
    assert isinstance(ei.value, SceneError) and isinstance(ei.value, ValueError)


def test_bad_json(tmp_path: Path) -> None:
    p = tmp_path / "X_extended.json"
    p.write_text('{"collect": ')
    with pytest.raises(SidecarError, match="not valid JSON") as ei:
        read_sidecar(p)
    assert str(p) in str(ei.value)


def test_json_not_object(tmp_path: Path) -> None:
    p = tmp_path / "X_extended.json"
    p.write_text("[1, 2]")
    with pytest.raises(SidecarError, match="JSON object"):
        read_sidecar(p)


def _without(doc: dict, dotted: str) -> dict:
    cur = doc
    parts = dotted.split(".")
    for part in parts[:-1]:
        cur = cur[part]
    del cur[parts[-1]]
    return doc


@pytest.mark.parametrize("key", [
    "product_type", "collect", "collect.platform", "collect.mode", "collect.collect_id",
    "collect.start_timestamp", "collect.image.rows", "collect.image.columns", "collect.image.data_type",
    "collect.image.pixel_spacing_row", "collect.image.scale_factor", "collect.image.radiometry",
    "collect.image.image_geometry", "collect.radar.center_frequency", "collect.radar.transmit_polarization",
])
def test_missing_key_is_named(key: str) -> None:
    doc = _without(capella_doc(), key)
    with pytest.raises(SidecarError, match=f"'{key}'"):
        parse_sidecar(doc, "side.json")


@pytest.mark.parametrize(("field", "value", "key"), [
    ("rows", "24638", "collect.image.rows"),
    ("rows", 0, "collect.image.rows"),
    ("columns", 12.5, "collect.image.columns"),
    ("scale_factor", True, "collect.image.scale_factor"),
    ("scale_factor", -1.0, "collect.image.scale_factor"),
    ("pixel_spacing_column", None, "collect.image.pixel_spacing_column"),
    ("radiometry", 3, "collect.image.radiometry"),
    ("enl", "nine", "collect.image.enl"),
    ("image_geometry", [1, 2], "collect.image.image_geometry"),
])
def test_ill_typed_key_is_named(field: str, value: object, key: str) -> None:
    with pytest.raises(SidecarError, match=key.replace(".", r"\.")):
        parse_sidecar(capella_doc(**{field: value}), "side.json")


def test_unsupported_data_type() -> None:
    with pytest.raises(SidecarError, match="unsupported data type 'CFloat32'"):
        parse_sidecar(capella_doc(data_type="CFloat32"))


def test_bad_timestamp_and_order() -> None:
    doc = capella_doc()
    doc["collect"]["start_timestamp"] = "2024-07-09 sometime"
    with pytest.raises(SidecarError, match="'collect.start_timestamp' is not a valid timestamp"):
        parse_sidecar(doc)
    doc = capella_doc()
    doc["collect"]["stop_timestamp"] = "2024-07-09T04:00:00Z"
    with pytest.raises(SidecarError, match="before"):
        parse_sidecar(doc)


def test_bad_prf() -> None:
    doc = capella_doc()
    doc["collect"]["radar"]["prf"] = [{"prf": "fast"}]
    with pytest.raises(SidecarError, match=r"collect\.radar\.prf\[0\]\.prf"):
        parse_sidecar(doc)
    doc["collect"]["radar"]["prf"] = "fast"
    with pytest.raises(SidecarError, match=r"collect\.radar\.prf"):
        parse_sidecar(doc)
    del doc["collect"]["radar"]["prf"]
    assert parse_sidecar(doc).prf_hz is None


def test_intermediate_not_object() -> None:
    doc = capella_doc()
    doc["collect"]["radar"] = "X-band"
    with pytest.raises(SidecarError, match="'collect.radar' is str"):
        parse_sidecar(doc)


def test_not_a_dict() -> None:
    with pytest.raises(SidecarError, match="JSON object"):
        parse_sidecar([], "side.json")  # type: ignore[arg-type]


# ---------------------------------------------------------------- optical sidecar

OPTICAL = {"orbitwatch_optical": 1, "platform": "landsat-8-like", "acquired": "2025-08-01T10:30:00Z",
           "sun_zenith_deg": 35.0, "pixel_size_m": 30.0,
           "bands": {"red": {"scale": 2.0e-5, "offset": -0.1, "unit": "reflectance"},
                     "lwir11": {"scale": 0.01, "offset": 0.0, "unit": "kelvin"}}}


def test_optical_sidecar_ok() -> None:
    cal = parse_optical_sidecar(json.loads(json.dumps(OPTICAL)))
    assert cal["red"].scale == 2.0e-5 and cal["red"].offset == -0.1 and cal["red"].unit == "reflectance"
    assert cal["lwir11"].unit == "kelvin"


@pytest.mark.parametrize(("patch", "msg"), [
    ({"orbitwatch_optical": 2}, "'orbitwatch_optical' must be 1"),
    ({"acquired": "not a time"}, "'acquired' is not a valid timestamp"),
    ({"pixel_size_m": -30}, "'pixel_size_m' must be > 0"),
    ({"bands": [1]}, "'bands' must be an object"),
    ({"bands": {"red": 2.0}}, "'bands.red' must be an object"),
    ({"bands": {"red": {"scale": "x"}}}, "'bands.red.scale' must be a finite number"),
    ({"bands": {"red": {"scale": 0}}}, "'bands.red.scale' must not be 0"),
    ({"bands": {"red": {"scale": 1, "unit": "radiance"}}}, "'bands.red.unit' must be one of"),
])
def test_optical_sidecar_errors(patch: dict, msg: str) -> None:
    doc = {**OPTICAL, **patch}
    with pytest.raises(SidecarError, match=msg):
        parse_optical_sidecar(doc, "o_extended.json")
