"""Seeded optical/thermal tiles with sub-pixel active fires and fire look-alikes (pure numpy).

Radiometry (each step is a stated model):

* Surface reflectance spectra per land cover (conifer forest, dry grass, bare soil, burn
  scar, urban, water, bright roof, cloud) are typical library values (USGS Spectral Library
  v7, Kokaly et al. 2017; ECOSTRESS library, Meerdink et al. 2019), band-averaged by eye.
* TOA reflectance = path reflectance + transmittance x surface reflectance (a one-line
  atmosphere: Rayleigh/aerosol path term strongest in the blue, water vapour absorption at
  945 nm), plus Gaussian sensor noise.
* Fires: a pixel holding a fraction f of flaming/smouldering area at temperature T adds
  spectral radiance f * B(lambda, T) (Planck's law) over the background, converted to TOA
  reflectance with rho = pi L d^2 / (E_sun cos(theta_s)) (the standard Landsat/Sentinel-2
  conversion). E_sun per band: Sentinel-2A SOLAR_IRRADIANCE values from the L1C metadata;
  Landsat-8 OLI values from the Thuillier (2003) spectrum convolved with OLI RSRs (as used
  by e.g. GRASS i.landsat.toar). The emitted signal is weighted by a band transmittance.
  This is the physics exploited by SWIR fire detectors (Schroeder et al., RSE 185, 2016;
  Hu et al., RSE 2021 for Sentinel-2).
* Thermal (Landsat TIRS-like lwir11, 10.9 um): radiance mixing of background at its
  kinetic temperature (emissivity folded in) and fire, then Planck inversion to brightness
  temperature; TIRS's ~100 m footprint is modelled by a Gaussian PSF on the radiance.
* The optical PSF (MTF) spreads fire radiance into neighbours, so truth is defined after it.

Truth rule: a pixel is a fire pixel when its emitted excess in swir22 is at least
``max(0.04, 0.2 * background swir22)`` reflectance - well above sensor noise (~0.004) and
the scene's cover-to-cover swir22 contrast at that place - i.e. a pixel a careful detector
can be expected to find. Seeded fires whose every pixel falls below it are reported only in
``params["n_fires_undetectable"]``.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import ndimage

from detectors.errors import SynthError
from detectors.synth._fields import smooth_field

log = logging.getLogger(__name__)

GENERATOR_VERSION = "orbitwatch-synth-optical 1.0"
C1 = 1.191042e8  # 2 h c^2 in W um^4 m^-2 sr^-1
C2 = 1.4387770e4  # h c / k in um K

#: band -> (centre wavelength um, E_sun W m^-2 um^-1, path reflectance, transmittance)
LANDSAT8_BANDS: dict[str, tuple[float, float, float, float]] = {
    "coastal": (0.443, 1895.33, 0.10, 0.75),
    "blue": (0.482, 2004.57, 0.08, 0.80),
    "green": (0.561, 1820.75, 0.05, 0.85),
    "red": (0.655, 1549.49, 0.03, 0.88),
    "nir08": (0.865, 951.76, 0.015, 0.90),
    "swir16": (1.609, 247.55, 0.005, 0.92),
    "swir22": (2.201, 85.46, 0.003, 0.90),
}
SENTINEL2_BANDS: dict[str, tuple[float, float, float, float]] = {
    "coastal": (0.4427, 1884.69, 0.10, 0.75),
    "blue": (0.4924, 1959.66, 0.08, 0.80),
    "green": (0.5598, 1823.24, 0.05, 0.85),
    "red": (0.6646, 1512.06, 0.03, 0.88),
    "rededge071": (0.7041, 1424.64, 0.025, 0.89),
    "rededge075": (0.7405, 1287.61, 0.02, 0.89),
    "rededge078": (0.7828, 1162.08, 0.018, 0.90),
    "nir": (0.8328, 1041.63, 0.015, 0.90),
    "nir08": (0.8647, 955.32, 0.015, 0.90),
    "nir09": (0.9451, 812.92, 0.01, 0.45),
    "swir16": (1.6137, 245.59, 0.005, 0.92),
    "swir22": (2.2024, 85.25, 0.003, 0.90),
}
LWIR11_UM = 10.9

# Surface reflectance at wavelength knots (um); interpolated to each band centre.
_KNOTS = np.array([0.44, 0.49, 0.56, 0.66, 0.70, 0.74, 0.78, 0.83, 0.865, 0.945, 1.61, 2.2])
COVER_SPECTRA: dict[str, np.ndarray] = {
    "forest": np.array([0.025, 0.03, 0.06, 0.03, 0.08, 0.20, 0.26, 0.29, 0.30, 0.28, 0.15, 0.07]),
    "grass": np.array([0.05, 0.06, 0.09, 0.12, 0.16, 0.20, 0.23, 0.25, 0.26, 0.25, 0.33, 0.24]),
    "soil": np.array([0.09, 0.11, 0.16, 0.22, 0.25, 0.27, 0.28, 0.29, 0.30, 0.30, 0.37, 0.32]),
    "burn": np.array([0.04, 0.045, 0.055, 0.065, 0.075, 0.085, 0.095, 0.10, 0.105, 0.11, 0.17, 0.16]),
    "urban": np.array([0.11, 0.12, 0.14, 0.16, 0.17, 0.18, 0.19, 0.20, 0.20, 0.20, 0.23, 0.20]),
    "water": np.array([0.06, 0.05, 0.045, 0.03, 0.02, 0.015, 0.01, 0.01, 0.008, 0.005, 0.002, 0.001]),
    "roof": np.array([0.45, 0.48, 0.50, 0.52, 0.53, 0.53, 0.54, 0.54, 0.54, 0.53, 0.50, 0.45]),
    "hot_soil": np.array([0.16, 0.19, 0.26, 0.34, 0.37, 0.39, 0.40, 0.41, 0.42, 0.42, 0.52, 0.48]),
    "cloud": np.array([0.70, 0.72, 0.72, 0.71, 0.70, 0.70, 0.69, 0.68, 0.68, 0.62, 0.45, 0.28]),
}
#: Kinetic (emissivity-weighted) surface temperature per cover, K, for the thermal band.
COVER_TEMP_K = {"forest": 296.0, "grass": 306.0, "soil": 312.0, "burn": 318.0, "urban": 308.0,
                "water": 292.0, "roof": 315.0, "hot_soil": 328.0, "cloud": 255.0}


def planck_radiance(wavelength_um: float | np.ndarray, temp_k: float | np.ndarray) -> np.ndarray:
    """Planck spectral radiance B(lambda, T) in W m^-2 sr^-1 um^-1."""
    lam = np.asarray(wavelength_um, dtype=np.float64)
    t = np.asarray(temp_k, dtype=np.float64)
    with np.errstate(over="ignore"):
        return C1 / (lam ** 5 * np.expm1(C2 / (lam * np.maximum(t, 1.0))))


def brightness_temperature(wavelength_um: float, radiance: np.ndarray) -> np.ndarray:
    """Inverse Planck: T = c2 / (lambda ln(1 + c1 / (lambda^5 L)))."""
    lam = float(wavelength_um)
    return C2 / (lam * np.log1p(C1 / (lam ** 5 * np.maximum(radiance, 1e-9))))


def radiance_to_reflectance(radiance: np.ndarray | float, esun: float, sun_zenith_deg: float,
                            earth_sun_au: float = 1.0) -> np.ndarray:
    """TOA reflectance rho = pi L d^2 / (E_sun cos(theta_s))."""
    return np.asarray(radiance) * math.pi * earth_sun_au ** 2 / (esun * math.cos(math.radians(sun_zenith_deg)))


def earth_sun_distance_au(day_of_year: int) -> float:
    """Earth-Sun distance (AU), first-order eccentricity model (perihelion ~ 3 January)."""
    return 1.0 - 0.01672 * math.cos(math.radians(0.9856 * (day_of_year - 4)))


@dataclass
class SynthOpticalTile:
    """A generated optical tile: TOA reflectance bands (+ BT), truth mask/list and sidecar."""

    bands: dict[str, np.ndarray]  # float32, STAC common names; lwir11 in kelvin
    fire_mask: np.ndarray  # bool truth
    truth: list[dict[str, Any]]
    sidecar: dict[str, Any]
    cover: np.ndarray | None = None  # uint8 land-cover index (see ``params['cover_names']``)
    fire_fraction: np.ndarray | None = None  # float32 active-fire area fraction per pixel
    #: Fire-emitted TOA reflectance per reflective band (after the PSF): the Planck signal alone.
    fire_excess: dict[str, np.ndarray] = field(default_factory=dict)
    params: dict[str, Any] = field(default_factory=dict)


def _band_table(sensor: str) -> dict[str, tuple[float, float, float, float]]:
    if sensor == "landsat8":
        return LANDSAT8_BANDS
    if sensor == "sentinel2":
        return SENTINEL2_BANDS
    raise SynthError(f"sensor must be 'landsat8' or 'sentinel2', got {sensor!r}")


def _blobs(rng: np.random.Generator, shape: tuple[int, int], n: int, r_min: float, r_max: float,
           allowed: np.ndarray | None = None) -> list[np.ndarray]:
    """n irregular blob masks (noisy discs) of radius r_min..r_max px, optionally in ``allowed``."""
    rows, cols = shape
    out: list[np.ndarray] = []
    rr, cc = np.ogrid[:rows, :cols]
    for _ in range(n * 20):
        if len(out) >= n:
            break
        rad = float(rng.uniform(r_min, r_max))
        r = float(rng.uniform(rad, rows - rad))
        c = float(rng.uniform(rad, cols - rad))
        if allowed is not None and not allowed[int(r), int(c)]:
            continue
        r0, r1 = int(max(0, r - 2 * rad - 2)), int(min(rows, r + 2 * rad + 3))
        c0, c1 = int(max(0, c - 2 * rad - 2)), int(min(cols, c + 2 * rad + 3))
        sub_r, sub_c = rr[r0:r1], cc[:, c0:c1]
        ang = np.arctan2(sub_r - r, sub_c - c)
        k = rng.uniform(0, 2 * math.pi, 3)
        wob = 1.0 + 0.25 * np.sin(2 * ang + k[0]) + 0.15 * np.sin(3 * ang + k[1]) + 0.1 * np.sin(5 * ang + k[2])
        m = np.zeros(shape, bool)
        m[r0:r1, c0:c1] = np.hypot(sub_r - r, sub_c - c) <= rad * wob
        if allowed is not None:
            m &= allowed
        if m.any():
            out.append(m)
    return out


def make_optical_tile(
    seed: int,
    rows: int = 512,
    cols: int = 512,
    pixel_size_m: float = 30.0,
    sensor: str = "landsat8",
    n_fires: int | None = None,
    traps: bool = True,
    thermal: bool = False,
    sun_zenith_deg: float | None = None,
    day_of_year: int = 213,
    n_traps: int | None = None,
    smoke: bool = True,
    noise: bool = True,
) -> SynthOpticalTile:
    """Generate one seeded optical tile (see the module docstring for the physics).

    ``thermal=True`` adds ``lwir11`` brightness temperature (Landsat-8 only: Sentinel-2 MSI
    has no thermal band). Traps: bright roofs, hot bare soil, sun glint on water, clouds with
    soft edges (and their shadows) - all bright somewhere, none a fire.
    """
    if not (16 <= rows <= 8192 and 16 <= cols <= 8192):
        raise SynthError(f"rows/cols must be in [16, 8192], got {rows}x{cols}")
    if not (5.0 <= pixel_size_m <= 1000.0):
        raise SynthError(f"pixel_size_m must be in [5, 1000], got {pixel_size_m}")
    table = _band_table(sensor)
    if thermal and sensor != "landsat8":
        raise SynthError("thermal=True needs sensor='landsat8' (Sentinel-2 MSI has no thermal band)")
    if n_fires is not None and n_fires < 0:
        raise SynthError(f"n_fires must be >= 0, got {n_fires}")
    if n_traps is not None and n_traps < 0:
        raise SynthError(f"n_traps must be >= 0, got {n_traps}")
    rng = np.random.default_rng(seed)
    shape = (rows, cols)
    sza = float(sun_zenith_deg if sun_zenith_deg is not None else rng.uniform(25.0, 50.0))
    if not (0.0 <= sza < 80.0):
        raise SynthError(f"sun_zenith_deg must be in [0, 80), got {sza}")
    d_au = earth_sun_distance_au(day_of_year)

    # ---- land cover ------------------------------------------------------------------------
    names = ["forest", "grass", "soil", "burn", "urban", "water", "roof", "hot_soil", "cloud"]
    idx = {n: i for i, n in enumerate(names)}
    corr = max(4.0, 1500.0 / pixel_size_m)
    coarse = max(1, rows // 128)
    veg = smooth_field(rng, shape, corr, coarse)
    dry = smooth_field(rng, shape, corr * 0.7, coarse)
    cover = np.full(shape, idx["forest"], np.uint8)
    cover[dry > 0.3] = idx["grass"]
    cover[(dry > 1.1) & (veg < 0.0)] = idx["soil"]
    wet = smooth_field(rng, shape, corr * 1.2, coarse)
    water = wet > float(rng.uniform(1.6, 2.1))
    urb = smooth_field(rng, shape, corr * 0.5, coarse) > float(rng.uniform(1.7, 2.2))
    cover[urb] = idx["urban"]
    cover[water] = idx["water"]

    n_f = int(n_fires if n_fires is not None else rng.integers(2, 7))
    land = ~water
    # Burn scars lie behind fire fronts; make them first so fires sit on their edges.
    fire_seeds: list[tuple[float, float, float]] = []
    for blob in _blobs(rng, shape, n_f, 2.0, max(3.0, 600.0 / pixel_size_m), land & ~urb):
        cover[blob] = idx["burn"]
        rr, cc = np.nonzero(blob)
        fire_seeds.append((float(rr.mean()), float(cc.mean()), float(math.sqrt(blob.sum() / math.pi))))
    if len(fire_seeds) < n_f:
        log.warning("seed %s: room for only %d of %d fires", seed, len(fire_seeds), n_f)

    # ---- traps (objects, not fires) ---------------------------------------------------------
    trap_objs: list[tuple[str, np.ndarray]] = []
    glint = np.zeros(shape, np.float32)
    cloud_opacity = np.zeros(shape, np.float32)
    if traps:
        n_t = int(n_traps if n_traps is not None else rng.integers(4, 9))
        kinds = ["roof", "hot_soil", "glint", "cloud_edge"]
        picks = [kinds[i % 4] for i in range(n_t)]
        rng.shuffle(picks)
        if any(p == "glint" for p in picks) and not water.any():
            for lake in _blobs(rng, shape, 1, 6.0, 14.0):
                cover[lake] = idx["water"]
                water |= lake
        burnt = cover == idx["burn"]
        for kind in picks:
            if kind == "roof":
                allowed = (cover == idx["urban"]) if (cover == idx["urban"]).any() else (land & ~burnt)
                m = _blobs(rng, shape, 1, 0.8, 2.5, allowed)
                if m:
                    cover[m[0]] = idx["roof"]
                    trap_objs.append(("roof", m[0]))
            elif kind == "hot_soil":
                m = _blobs(rng, shape, 1, 3.0, 9.0, land & ~burnt)
                if m:
                    cover[m[0]] = idx["hot_soil"]
                    trap_objs.append(("hot_soil", m[0]))
            elif kind == "glint":
                m = _blobs(rng, shape, 1, 2.0, 8.0, water)
                if m:
                    # Specular glint: Fresnel reflection is almost flat in wavelength, so it is
                    # as bright in swir22 as in the visible (Giglio et al., RSE 87, 2003).
                    g = ndimage.gaussian_filter(m[0].astype(np.float32), 1.0) * float(rng.uniform(0.3, 0.9))
                    glint = np.maximum(glint, g)
                    trap_objs.append(("glint", g > 0.1))
            else:
                m = _blobs(rng, shape, 1, 5.0, 20.0)
                if m:
                    op = ndimage.gaussian_filter(m[0].astype(np.float32), float(rng.uniform(1.0, 3.0)))
                    cloud_opacity = np.maximum(cloud_opacity, np.clip(op * 1.3, 0, 1))
                    edge = (op > 0.15) & (op < 0.85)
                    trap_objs.append(("cloud_edge", edge if edge.any() else m[0]))

    # ---- smoke: plumes drift downwind of each fire; aerosol optical depth falls with
    # wavelength (Angstrom exponent ~1.5), so smoke brightens the blue and is nearly
    # transparent in the SWIR - which is why SWIR sees fires through smoke.
    smoke_aod = np.zeros(shape, np.float32)
    if smoke and fire_seeds:
        wdir = rng.uniform(0, 2 * math.pi)
        for (r, c, rad) in fire_seeds:
            length = float(rng.uniform(10.0, 40.0)) * 30.0 / pixel_size_m
            along = (rr_ := np.arange(rows)[:, None] - r) * -math.cos(wdir) + (np.arange(cols)[None, :] - c) * math.sin(wdir)
            across = rr_ * math.sin(wdir) + (np.arange(cols)[None, :] - c) * math.cos(wdir)
            width = 2.0 + 0.25 * np.clip(along, 0, None)
            plume = np.where(along > -rad, np.exp(-0.5 * (across / width) ** 2) * np.exp(-np.clip(along, 0, None) / length), 0.0)
            smoke_aod = np.maximum(smoke_aod, (float(rng.uniform(0.3, 1.2)) * plume).astype(np.float32))

    # ---- surface reflectance per band, TOA conversion ------------------------------------------
    band_names = list(table)
    spec = {n: np.interp([table[b][0] for b in band_names], _KNOTS, COVER_SPECTRA[n]) for n in names}
    lut = np.array([spec[n] for n in names], np.float32)  # (n_cover, n_band)
    bright = np.exp(0.08 * smooth_field(rng, shape, 2.0, 1)).astype(np.float32)  # within-cover texture
    moist = smooth_field(rng, shape, corr * 0.3, coarse) * 0.1
    shadow_shift = (int(rng.integers(-6, 7)), int(rng.integers(2, 9)))
    shadow = np.roll(cloud_opacity, shadow_shift, axis=(0, 1)) * (1 - cloud_opacity)
    bands: dict[str, np.ndarray] = {}
    surf_swir22 = None
    for bi, b in enumerate(band_names):
        lam, esun, path, tau = table[b]
        surf = lut[cover, bi] * bright
        if lam > 1.0:
            surf = surf * (1.0 - moist).astype(np.float32)  # leaf water absorbs in SWIR
        surf = surf + glint
        surf = surf * (1.0 - 0.6 * shadow)
        aod = smoke_aod * (lam / 0.55) ** -1.5
        toa = path + 0.12 * aod + tau * np.exp(-aod) * surf
        cl = lut[idx["cloud"], bi]
        toa = (1 - cloud_opacity) * toa + cloud_opacity * cl
        bands[b] = toa.astype(np.float32)
        if b == "swir22":
            surf_swir22 = bands[b].copy()

    # ---- fires: fraction, temperature, Planck radiance ----------------------------------------
    frac = np.zeros(shape, np.float32)
    tfire = np.zeros(shape, np.float32)
    rr, cc = np.ogrid[:rows, :cols]
    for (r, c, rad) in fire_seeds:
        # Front: a ring arc on the scar edge, 1-3 px thick, with a few hot cores.
        ang = np.arctan2(rr - r, cc - c)
        a0 = rng.uniform(-math.pi, math.pi)
        span = rng.uniform(0.6, 2.2)
        dang = np.angle(np.exp(1j * (ang - a0)))
        dist = np.hypot(rr - r, cc - c)
        thick = float(rng.uniform(0.8, 2.0))
        front = (np.abs(dist - rad) <= thick) & (np.abs(dang) <= span / 2)
        if not front.any():
            front = (np.abs(rr - int(r)) <= 0) & (np.abs(cc - int(c)) <= 0)
        fr_, fc_ = np.nonzero(front)
        # Smouldering: low temperature, larger fraction; flaming: hot, small fraction.
        # Flaming front: 800-1000 K over 1e-4..3e-3 of the pixel (a 30 m pixel holding a
        # 0.1-3 m^2 ... 3 m deep flame line); hot cores 1000-1200 K, 1e-3..8e-3; smouldering
        # edges 600-800 K, 0.5-5 %. Typical of Landsat/MODIS sub-pixel retrievals
        # (Giglio & Kendall 2001; Wooster et al. 2005) and keeps swir22 below ~2-3 like
        # real Sentinel-2 fire pixels.
        f = np.exp(rng.uniform(math.log(1e-4), math.log(3e-3), fr_.size)).astype(np.float32)
        t = rng.uniform(800.0, 1000.0, fr_.size).astype(np.float32)
        n_core = max(1, fr_.size // 8)
        core = rng.choice(fr_.size, n_core, replace=False)
        f[core] = np.exp(rng.uniform(math.log(1e-3), math.log(8e-3), n_core))
        t[core] = rng.uniform(1000.0, 1200.0, n_core)
        edge = (np.abs(dang[fr_, fc_]) > 0.35 * span)
        edge[core] = False
        t[edge] = rng.uniform(600.0, 800.0, int(edge.sum()))
        f[edge] = rng.uniform(0.005, 0.05, int(edge.sum()))
        keep = f > frac[fr_, fc_]
        frac[fr_[keep], fc_[keep]] = f[keep]
        tfire[fr_[keep], fc_[keep]] = t[keep]

    psf_sigma = 0.45  # px; OLI/MSI MTF at Nyquist ~0.2-0.3
    excess_swir22 = np.zeros(shape, np.float32)
    fire_excess: dict[str, np.ndarray] = {}
    for b in band_names:
        lam, esun, path, tau = table[b]
        emitted = frac * (planck_radiance(lam, tfire) if frac.any() else 0.0)
        emitted = ndimage.gaussian_filter(np.asarray(emitted, np.float32), psf_sigma)
        drho = radiance_to_reflectance(tau * emitted, esun, sza, d_au).astype(np.float32)
        # The fire's area no longer reflects sunlight: (1 - f) on the background.
        bands[b] = bands[b] * (1.0 - frac) + drho
        fire_excess[b] = drho
        if b == "swir22":
            excess_swir22 = drho

    if thermal:
        t_bg = np.array([COVER_TEMP_K[n] for n in names], np.float32)[cover]
        t_bg = t_bg + 2.0 * smooth_field(rng, shape, 3.0, 1) - 20.0 * moist
        t_bg = (1 - cloud_opacity) * t_bg + cloud_opacity * COVER_TEMP_K["cloud"]
        t_bg = t_bg - 8.0 * shadow
        L = (1 - frac) * planck_radiance(LWIR11_UM, t_bg) + frac * planck_radiance(LWIR11_UM, np.maximum(tfire, 1.0))
        L = ndimage.gaussian_filter(L.astype(np.float32), 100.0 / pixel_size_m / 2.355)  # ~100 m TIRS FWHM
        bt = brightness_temperature(LWIR11_UM, L)
        if noise:
            bt = bt + rng.normal(0.0, 0.1, shape)  # TIRS NEdT ~0.05-0.1 K
        bands["lwir11"] = bt.astype(np.float32)

    if noise:
        for b in band_names:
            sig = 0.004 if table[b][0] > 1.0 else 0.003
            bands[b] = (bands[b] + rng.normal(0.0, sig, shape)).astype(np.float32)

    # ---- truth --------------------------------------------------------------------------------
    thr = np.maximum(0.04, 0.2 * surf_swir22)
    fire_mask = excess_swir22 >= thr
    lab, n_lab = ndimage.label(fire_mask, structure=np.ones((3, 3)))
    truth: list[dict[str, Any]] = []
    px_area = pixel_size_m * pixel_size_m
    for k in range(1, n_lab + 1):
        pr, pc = np.nonzero(lab == k)
        fk, tk = frac[pr, pc], tfire[pr, pc]
        wts = fk * planck_radiance(2.2, np.maximum(tk, 1.0))
        burning = fk > 0
        t_eff = float(np.sum(wts * tk) / np.sum(wts)) if np.sum(wts) > 0 else float(tfire[lab == k].max())
        truth.append({
            "kind": "fire", "row": float(pr.mean()), "col": float(pc.mean()),
            "pixels": [[int(a), int(b)] for a, b in zip(pr, pc)],
            "area_m2": float(pr.size * px_area),
            "fire_area_m2": round(float(fk.sum() * px_area), 2),
            "temperature_k": round(t_eff, 1),
            "fraction": round(float(fk[burning].mean()) if burning.any() else 0.0, 5),
            "max_swir22_excess": round(float(excess_swir22[pr, pc].max()), 4),
        })
    seeded_detect = sum(1 for (r, c, rad) in fire_seeds
                        if fire_mask[max(0, int(r - rad - 3)):int(r + rad + 4), max(0, int(c - rad - 3)):int(c + rad + 4)].any())
    for kind, m in trap_objs:
        pr, pc = np.nonzero(m)
        if pr.size == 0:
            continue
        truth.append({"kind": "trap", "trap": kind, "row": float(pr.mean()), "col": float(pc.mean()),
                      "pixels": [[int(a), int(b)] for a, b in zip(pr, pc)], "area_m2": float(pr.size * px_area)})

    platform = "landsat-8-like" if sensor == "landsat8" else "sentinel-2-like"
    band_meta: dict[str, dict[str, Any]] = {}
    for b in band_names:
        band_meta[b] = {"scale": 1.0, "offset": 0.0, "unit": "reflectance",
                        "wavelength_um": table[b][0], "esun": table[b][1]}
    if thermal:
        band_meta["lwir11"] = {"scale": 1.0, "offset": 0.0, "unit": "kelvin", "wavelength_um": LWIR11_UM}
    params = {
        "seed": int(seed), "generator": GENERATOR_VERSION, "sensor": sensor,
        "n_fires_seeded": len(fire_seeds), "n_fires_undetectable": len(fire_seeds) - seeded_detect,
        "n_fire_clusters": n_lab, "n_traps": len(trap_objs), "cover_names": names,
        "truth_rule": "swir22 emitted excess >= max(0.04, 0.2 * background swir22) reflectance",
        "earth_sun_au": round(d_au, 5), "max_smoke_aod550": round(float(smoke_aod.max()), 3), "psf_sigma_px": psf_sigma,
    }
    sidecar = {
        "orbitwatch_optical": 1,
        "platform": platform,
        "acquired": "2025-08-01T10:30:00Z",
        "sun_zenith_deg": round(sza, 3),
        "pixel_size_m": float(pixel_size_m),
        "bands": band_meta,
        "orbitwatch_synth": params,
    }
    return SynthOpticalTile(bands=bands, fire_mask=fire_mask, truth=truth, sidecar=sidecar, cover=cover,
                            fire_fraction=frac, fire_excess=fire_excess, params=params)


def make_trap_only_tile(seed: int, rows: int = 512, cols: int = 512, pixel_size_m: float = 30.0,
                        sensor: str = "landsat8", thermal: bool = False, n_traps: int | None = None,
                        **kwargs: Any) -> SynthOpticalTile:
    """A tile with fire look-alikes only (roofs, hot soil, glint, cloud edges) and zero fires.

    Used to measure false-alarm rates: any fire detection on it is wrong by construction.
    """
    nt = n_traps if n_traps is not None else int(np.random.default_rng(seed).integers(8, 14))
    return make_optical_tile(seed, rows=rows, cols=cols, pixel_size_m=pixel_size_m, sensor=sensor,
                             n_fires=0, traps=True, thermal=thermal, n_traps=nt, **kwargs)
