"""Shared pytest fixtures. Each engineer's helpers live in their own clearly marked block."""

from __future__ import annotations

# ============================================================================ scene I/O helpers
# (owner: scene I/O — pipelines/scene). Tiny REAL GeoTIFFs written with rasterio, plus sidecars
# derived from the real Capella sidecars in tests/data/capella/.
import copy
import json
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import rasterio
from affine import Affine
from rasterio.errors import NotGeoreferencedWarning

CAPELLA_DATA = Path(__file__).parent / "data" / "capella"
CAPELLA_GEO_SIDECAR = CAPELLA_DATA / "CAPELLA_C14_SP_GEO_HH_20240709040329_20240709040358_extended.json"
CAPELLA_PFA_SIDECAR = CAPELLA_DATA / "CAPELLA_C13_SP_SLC_HH_20250826023518_20250826023527_extended.json"
CAPELLA_STRIPMAP_SIDECAR = CAPELLA_DATA / "CAPELLA_C11_SM_SLC_VV_20251031191104_20251031191109_extended.json"

#: 10 m pixels in UTM 33N, upper-left corner at E 500000, N 4,000,000.
UTM33_TRANSFORM = Affine(10.0, 0.0, 500000.0, 0.0, -10.0, 4000000.0)


def _write_tif(path: Path, data: np.ndarray, dtype: str, *, crs: Any, transform: Affine | None,
               nodata: float | None = None, descriptions: Sequence[str] | None = None,
               tags: dict[str, str] | None = None, gcps: tuple[list, Any] | None = None) -> Path:
    profile: dict[str, Any] = dict(driver="GTiff", width=data.shape[2], height=data.shape[1], count=data.shape[0],
                                   dtype=dtype)
    if crs is not None and transform is not None:
        profile.update(crs=crs, transform=transform)
    if nodata is not None:
        profile["nodata"] = nodata
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        with rasterio.open(path, "w", **profile) as ds:
            ds.write(data)
            if descriptions is not None:
                for i, d in enumerate(descriptions, start=1):
                    ds.set_band_description(i, d)
            if tags:
                ds.update_tags(**tags)
            if gcps is not None:
                ds.gcps = gcps
    return path


def capella_doc(source: Path = CAPELLA_GEO_SIDECAR, **image: Any) -> dict:
    """A real Capella sidecar with ``collect.image`` fields replaced (rows, columns, data_type...)."""
    doc = json.loads(source.read_text())
    doc = copy.deepcopy(doc)
    doc["collect"]["image"].update(image)
    return doc


def write_tiny_sar_impl(directory: Path, data: np.ndarray, *, data_type: str = "UInt16", name: str = "CAPELLA_TEST",
                        scale_factor: float = 1e-2, sidecar: dict | bool = True, nodata: float | None = None,
                        crs: Any = "EPSG:32633", transform: Affine | None = UTM33_TRANSFORM,
                        iq_bands: bool = False, source: Path = CAPELLA_GEO_SIDECAR) -> Path:
    """Write ``<name>.tif`` (+ ``<name>_extended.json`` from a real Capella sidecar) and return the .tif.

    ``data`` is (h, w): uint16 DN, float32 amplitude or complex (CInt16, written as complex_int16,
    or as two int16 bands when ``iq_bands``). ``sidecar=False`` writes no sidecar; a dict is written as is.
    """
    h, w = data.shape
    if data_type == "UInt16":
        arr, dtype = data.astype(np.uint16)[None], "uint16"
    elif data_type == "Float32":
        arr, dtype = data.astype(np.float32)[None], "float32"
    elif iq_bands:
        arr, dtype = np.stack([data.real, data.imag]).astype(np.int16), "int16"
    else:
        arr, dtype = data.astype(np.complex64)[None], "complex_int16"
    tif = _write_tif(directory / f"{name}.tif", arr, dtype, crs=crs, transform=transform, nodata=nodata)
    if sidecar is not False:
        doc = sidecar if isinstance(sidecar, dict) else capella_doc(
            source, rows=h, columns=w, data_type=data_type, scale_factor=scale_factor)
        (directory / f"{name}_extended.json").write_text(json.dumps(doc))
    return tif


def write_tiny_optical_impl(directory: Path, data: np.ndarray, descriptions: Sequence[str], *,
                            name: str = "optical_test", dtype: str = "float32", sidecar: dict | None = None,
                            tags: dict[str, str] | None = None, nodata: float | None = None,
                            crs: Any = "EPSG:32633", transform: Affine | None = UTM33_TRANSFORM,
                            gcps: tuple[list, Any] | None = None) -> Path:
    """Write a multi-band optical ``<name>.tif`` (bands named by description) and optional sidecar.

    Without a sidecar and without ``tags``, an ACQUISITION_DATETIME tag is added so the tile opens.
    """
    if tags is None and (sidecar is None or "acquired" not in sidecar):
        tags = {"ACQUISITION_DATETIME": "2025-08-01T10:30:00Z"}
    tif = _write_tif(directory / f"{name}.tif", np.asarray(data).astype(dtype), dtype, crs=crs,
                     transform=transform, nodata=nodata, descriptions=descriptions, tags=tags, gcps=gcps)
    if sidecar is not None:
        (directory / f"{name}_extended.json").write_text(json.dumps(sidecar))
    return tif


@pytest.fixture
def write_tiny_sar() -> Callable[..., Path]:
    """``write_tiny_sar(tmp_path, data, data_type=..., ...)`` -> .tif path (see write_tiny_sar_impl)."""
    return write_tiny_sar_impl


@pytest.fixture
def write_tiny_optical() -> Callable[..., Path]:
    """``write_tiny_optical(tmp_path, data, descriptions, ...)`` -> .tif path (see write_tiny_optical_impl)."""
    return write_tiny_optical_impl
# ============================================================================ end scene I/O helpers


# ============================================================================ Prefect
@pytest.fixture(scope="module")
def harness(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """One temporary Prefect API per test module (Prefect's own test harness, a real server);
    results and caches in tmp so runs never share a cache. Imported lazily: most tests never
    touch Prefect."""
    import os

    from prefect.settings import PREFECT_LOCAL_STORAGE_PATH, temporary_settings
    from prefect.testing.utilities import prefect_test_harness

    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    with prefect_test_harness(server_startup_timeout=180):
        with temporary_settings(updates={PREFECT_LOCAL_STORAGE_PATH: tmp_path_factory.mktemp("results")}):
            yield
