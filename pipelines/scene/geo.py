"""Geolocation helpers for scenes whose GeoTIFF carries no CRS/transform and no GCPs.

Why this exists: Capella SLCs are delivered in the slant plane (``image_geometry.type``
``slant_plane`` or ``pfa``) with no map georeferencing in the TIFF. An alert still needs a
lon/lat, so we place pixels from the sidecar's own geometry. These are APPROXIMATE
(flat-earth tangent plane at the scene centre, no terrain): errors grow with distance from the
centre pixel and with relief, typically metres to tens of metres within a spotlight scene,
which is adequate for alerting but not for mapping.

* ``geotransform`` (GEO/GEC): the sidecar's GDAL geotransform + WKT; exact, same as the TIFF's.
* ``pfa``: SICD-style image grid: the scene reference point (SRP) plus the slant-plane row/col
  unit vectors and sample spacings, projected onto the ground plane along the slant-plane normal
  (the local direction of constant range and Doppler). In Capella's TIFF the PFA "row"
  (range) axis is the image *column* and the PFA "col" (azimuth) axis is the image *row*
  (checked on real files: row_direction is the line of sight, col_sample_spacing equals
  pixel_spacing_row, and scene_reference_point_row_col is [column, row] of the scene centre).
* ``slant_plane`` (stripmap SLC): rows are azimuth lines (``first_line_time`` +
  i * ``delta_line_time``), columns are slant-range samples. The centre pixel
  (``center_pixel.target_position`` / ``center_time``) is placed in the image from those, and
  other pixels are offset on the local tangent plane: along the ground track (satellite velocity
  from ``collect.state.state_vectors``) by ``pixel_spacing_row`` and away from the satellite by
  ``pixel_spacing_column`` (ground-projected spacings).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from pipelines.errors import SceneError
from pipelines.scene.sidecar import CapellaMetadata, parse_timestamp

WGS84_A = 6378137.0
WGS84_F = 1.0 / 298.257223563
WGS84_E2 = WGS84_F * (2.0 - WGS84_F)
WGS84_B = WGS84_A * (1.0 - WGS84_F)
_EP2 = (WGS84_A**2 - WGS84_B**2) / WGS84_B**2


def metre_spacing(crs: Any, transform: Any) -> tuple[float, float] | None:
    """(row, column) pixel size in metres of a projected grid; None when the CRS is missing, not
    projected, not in linear units, or the transform is the identity (not georeferenced)."""
    import math

    if crs is None or not crs.is_projected or transform.is_identity:
        return None
    try:
        _, factor = crs.linear_units_factor
    except Exception:  # pyproj cannot name the unit: not something we can measure in metres
        return None
    if not factor or factor <= 0:
        return None
    t = transform
    return (math.hypot(t.b, t.e) * factor, math.hypot(t.a, t.d) * factor)


def ecef_to_lonlat(x: np.ndarray, y: np.ndarray, z: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """ECEF metres -> (lon deg, lat deg, ellipsoidal height m) on WGS84 (Bowring, mm-accurate near the surface)."""
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    z = np.asarray(z, dtype=np.float64)
    p = np.hypot(x, y)
    theta = np.arctan2(z * WGS84_A, p * WGS84_B)
    lat = np.arctan2(z + _EP2 * WGS84_B * np.sin(theta) ** 3, p - WGS84_E2 * WGS84_A * np.cos(theta) ** 3)
    lon = np.arctan2(y, x)
    n = WGS84_A / np.sqrt(1.0 - WGS84_E2 * np.sin(lat) ** 2)
    h = p / np.cos(lat) - n
    return np.degrees(lon), np.degrees(lat), h


def lonlat_to_ecef(lon: np.ndarray, lat: np.ndarray, h: np.ndarray | float = 0.0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """WGS84 (lon deg, lat deg, height m) -> ECEF metres."""
    lo = np.radians(np.asarray(lon, dtype=np.float64))
    la = np.radians(np.asarray(lat, dtype=np.float64))
    n = WGS84_A / np.sqrt(1.0 - WGS84_E2 * np.sin(la) ** 2)
    x = (n + h) * np.cos(la) * np.cos(lo)
    y = (n + h) * np.cos(la) * np.sin(lo)
    z = (n * (1.0 - WGS84_E2) + h) * np.sin(la)
    return x, y, z


def _up(ecef: np.ndarray) -> np.ndarray:
    """Geodetic normal (local 'up') at an ECEF point."""
    lon, lat, _ = ecef_to_lonlat(ecef[0], ecef[1], ecef[2])
    lo, la = np.radians(lon), np.radians(lat)
    return np.array([np.cos(la) * np.cos(lo), np.cos(la) * np.sin(lo), np.sin(la)])


def _vec(meta: CapellaMetadata, key: str, path: str | Path | None, n: int = 3) -> np.ndarray:
    cur: Any = meta.raw
    for part in key.split("."):
        cur = cur.get(part) if isinstance(cur, dict) else None
    try:
        arr = np.asarray(cur, dtype=np.float64)
    except (TypeError, ValueError):
        arr = np.empty(0)
    if arr.shape != (n,) or not np.all(np.isfinite(arr)):
        raise SceneError(f"cannot geolocate: sidecar key '{key}' must be {n} finite numbers, got {cur!r}", path)
    return arr


def _num(d: dict, key: str, where: str, path: str | Path | None) -> float:
    v = d.get(key)
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not np.isfinite(v):
        raise SceneError(f"cannot geolocate: sidecar key '{where}.{key}' must be a number, got {v!r}", path)
    return float(v)


def _normalise(v: np.ndarray, what: str, path: str | Path | None) -> np.ndarray:
    n = float(np.linalg.norm(v))
    if not np.isfinite(n) or n < 1e-9:
        raise SceneError(f"cannot geolocate: {what} is degenerate", path)
    return v / n


def _pfa_lonlat(meta: CapellaMetadata, rows: np.ndarray, cols: np.ndarray,
                path: str | Path | None) -> tuple[np.ndarray, np.ndarray]:
    g = meta.image_geometry
    where = "collect.image.image_geometry"
    srp = _vec(meta, f"{where}.scene_reference_point_ecef", path)
    ref = g.get("scene_reference_point_row_col")
    if not (isinstance(ref, list) and len(ref) == 2 and all(isinstance(v, (int, float)) for v in ref)):
        raise SceneError(f"cannot geolocate: sidecar key '{where}.scene_reference_point_row_col' "
                         f"must be [row, col], got {ref!r}", path)
    rdir = _normalise(_vec(meta, f"{where}.row_direction", path), "row_direction", path)
    cdir = _normalise(_vec(meta, f"{where}.col_direction", path), "col_direction", path)
    rss = _num(g, "row_sample_spacing", where, path)
    css = _num(g, "col_sample_spacing", where, path)
    ns = g.get("slant_plane_normal")
    ng = g.get("ground_plane_normal")
    n_slant = _normalise(np.asarray(ns, dtype=np.float64), "slant_plane_normal", path) if ns is not None else \
        _normalise(np.cross(rdir, cdir), "row x col direction", path)
    n_ground = _normalise(np.asarray(ng, dtype=np.float64), "ground_plane_normal", path) if ng is not None else _up(srp)
    # PFA row (range) = image column; PFA col (azimuth) = image row (see module docstring).
    d_rng = (cols - float(ref[0])) * rss
    d_az = (rows - float(ref[1])) * css
    pts = srp[:, None] + rdir[:, None] * d_rng.ravel()[None, :] + cdir[:, None] * d_az.ravel()[None, :]
    denom = float(n_slant @ n_ground)
    if abs(denom) < 1e-6:
        raise SceneError("cannot geolocate: slant plane is perpendicular to the ground plane", path)
    t = -((pts - srp[:, None]).T @ n_ground) / denom
    pts = pts + n_slant[:, None] * t[None, :]
    lon, lat, _ = ecef_to_lonlat(pts[0], pts[1], pts[2])
    return lon.reshape(rows.shape), lat.reshape(rows.shape)


def _state_at(meta: CapellaMetadata, t: float, path: str | Path | None) -> tuple[np.ndarray, np.ndarray]:
    """Satellite ECEF position and velocity at t (s since collect start), linearly interpolated."""
    sv = (meta.raw.get("collect", {}).get("state") or {}).get("state_vectors")
    if not isinstance(sv, list) or len(sv) < 2:
        raise SceneError("cannot geolocate a slant-plane image: the TIFF has no CRS/transform or GCPs and the "
                         "sidecar has fewer than 2 'collect.state.state_vectors'", path)
    try:
        times = np.array([(parse_timestamp(s["time"]) - meta.start).total_seconds() for s in sv])
        pos = np.array([s["position"] for s in sv], dtype=np.float64)
        vel = np.array([s["velocity"] for s in sv], dtype=np.float64)
    except (KeyError, TypeError, ValueError) as exc:
        raise SceneError(f"cannot geolocate: malformed 'collect.state.state_vectors' ({exc})", path) from None
    if pos.shape != (len(sv), 3) or vel.shape != (len(sv), 3) or np.any(np.diff(times) <= 0):
        raise SceneError("cannot geolocate: 'collect.state.state_vectors' must be time-ordered with 3-vectors", path)
    if t < times[0] - 10 or t > times[-1] + 10:
        raise SceneError(f"cannot geolocate: state vectors ({times[0]:.1f}..{times[-1]:.1f} s) do not cover "
                         f"the centre time ({t:.1f} s after start)", path)
    p = np.array([np.interp(t, times, pos[:, k]) for k in range(3)])
    v = np.array([np.interp(t, times, vel[:, k]) for k in range(3)])
    # np.interp clamps outside the table; extrapolate the short way with the velocity instead.
    if t < times[0]:
        p = pos[0] + vel[0] * (t - times[0])
    elif t > times[-1]:
        p = pos[-1] + vel[-1] * (t - times[-1])
    return p, v


def _slant_plane_lonlat(meta: CapellaMetadata, rows: np.ndarray, cols: np.ndarray,
                        path: str | Path | None) -> tuple[np.ndarray, np.ndarray]:
    g = meta.image_geometry
    where = "collect.image.image_geometry"
    target = _vec(meta, "collect.image.center_pixel.target_position", path)
    cp = meta.raw["collect"]["image"].get("center_pixel") or {}
    try:
        t_c = (parse_timestamp(cp["center_time"]) - meta.start).total_seconds()
        t_0 = (parse_timestamp(g["first_line_time"]) - meta.start).total_seconds()
    except (KeyError, TypeError, ValueError) as exc:
        raise SceneError("cannot geolocate: sidecar needs 'collect.image.center_pixel.center_time' and "
                         f"'{where}.first_line_time' timestamps ({exc})", path) from None
    dt = _num(g, "delta_line_time", where, path)
    r0 = _num(g, "range_to_first_sample", where, path)
    dr = _num(g, "delta_range_sample", where, path)
    if dt <= 0 or dr <= 0:
        raise SceneError(f"cannot geolocate: '{where}.delta_line_time' and 'delta_range_sample' must be > 0", path)
    sat, vel = _state_at(meta, t_c, path)
    row_c = (t_c - t_0) / dt
    col_c = (float(np.linalg.norm(target - sat)) - r0) / dr
    up = _up(target)
    az = vel - (vel @ up) * up
    rg = (target - sat) - ((target - sat) @ up) * up
    az = _normalise(az, "along-track direction", path)
    rg = _normalise(rg, "ground-range direction", path)
    d_az = (rows.ravel() - row_c) * meta.pixel_spacing_row
    d_rg = (cols.ravel() - col_c) * meta.pixel_spacing_column
    pts = target[:, None] + az[:, None] * d_az[None, :] + rg[:, None] * d_rg[None, :]
    lon, lat, _ = ecef_to_lonlat(pts[0], pts[1], pts[2])
    return lon.reshape(rows.shape), lat.reshape(rows.shape)


def sidecar_lonlat(meta: CapellaMetadata, rows: np.ndarray, cols: np.ndarray,
                   path: str | Path | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Approximate lon/lat of slant-plane pixels from a Capella sidecar (see module docstring)."""
    kind = meta.image_geometry.get("type")
    if kind == "pfa":
        return _pfa_lonlat(meta, rows, cols, path)
    if kind == "slant_plane":
        return _slant_plane_lonlat(meta, rows, cols, path)
    raise SceneError(f"cannot geolocate: the TIFF has no CRS/transform or GCPs and the sidecar's "
                     f"image_geometry type {kind!r} has no fallback (supported: geotransform, pfa, slant_plane)", path)
