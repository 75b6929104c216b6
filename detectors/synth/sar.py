"""Seeded, physically motivated X-band SAR GEO scenes with vessels, lifeboats and traps.

Pure numpy/scipy on purpose (no rasterio): detector training scripts import this on GPU
machines that may lack GDAL. ``pipelines.scene.write`` turns a scene into a Capella-style
GeoTIFF bundle.

Conventions
-----------
* Rows run along azimuth (flight direction), columns along ground range.
* Pixel values are sigma0 (linear, m^2/m^2). Calibrated DN follow Capella GEO:
  ``sigma0 = (DN * scale_factor)^2`` (Capella SAR Imagery Products Format Specification).
* ``heading_deg`` is clockwise from image "up" (decreasing row); the centre of pixel
  ``[i, j]`` is ``row=i, col=j``.

Physics and its sources (each is a model, deliberately simple, stated in the docstrings):

* Sea clutter: compound K distribution, intensity = mean * texture * speckle with Gamma
  texture (shape nu) and Gamma(L, 1/L) speckle (L = ENL). Ward, Tough & Watts, *Sea Clutter:
  Scattering, the K Distribution and Radar Performance* (IET, 2nd ed. 2013), ch. 2-3; nu from
  Ward's empirical fit (same book, eq. 2.10), clipped because the fit is for low grazing.
* Mean sea sigma0 grows with wind speed and falls with incidence angle, as in X-band
  geophysical model functions (XMOD2, Li & Lehner, IEEE TGRS 52(5), 2014); we use a simple
  log-wind fit that spans -28..-20 dB for 3..12 m/s at 30 deg (VV), HH 2 dB lower
  (polarisation ratio, Thompson et al., JGR 103(C4), 1998).
* Swell: tilt/hydrodynamic modulation of the texture by a long wave (Alpers et al.,
  JGR 86(C7), 1981) - a sinusoid of 80-300 m wavelength and 5-30 % depth.
* Ships: RCS from Skolnik's empirical formula sigma = 52 f_MHz^0.5 D_kt^1.5 (Skolnik,
  IEEE Trans. AES-10(2), 1974, "An empirical formula for the radar cross section of ships at
  grazing incidence") with displacement from hull dimensions and block coefficient; because
  the fit is for grazing incidence, a 3-10 dB steep-incidence loss is drawn per vessel (an
  assumption, not a fitted model). Lifeboats: same formula (about 1 m^2 for a 7 m GRP boat)
  plus, with probability 1/2, a partly aligned passive radar reflector of 2-10 m^2 (ISO 8729
  asks 7.5-10 m^2 at X band for a well mounted one).
* Impulse response: the separable band-limited IRF of a SAR processor, i.e. the inverse FFT
  of the azimuth/range processing windows ("rectangular" -13.3 dB first sidelobe, "taylor",
  "avci-nacaroglu"); Cumming & Wong, *Digital Processing of SAR Data* (2005), ch. 2.
  Sidelobe crosses along rows and columns therefore come from the same IRF as the main lobe.
* Azimuth ambiguities: copies of bright targets displaced by dx = lambda R PRF / (2 V) along
  azimuth at the scene's AASR (-18..-25 dB), defocused (Curlander & McDonough, *Synthetic
  Aperture Radar* (1991), sec. 6.5). For Capella this is ~10-15 km, i.e. outside a small
  frame; ``ambiguity_mode="in_frame"`` folds the displacement into the frame (documented as a
  compression, not physics) so small scenes still contain ghosts.
* Land: brighter textured clutter (-12..-8 dB mean, patchy cover) behind a fractal
  coastline; urban blocks of bright dihedral/trihedral point scatterers (10-10^4 m^2).
"""

from __future__ import annotations

import logging
import math
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

import numpy as np
from scipy import fft as sfft
from scipy import ndimage
from scipy.signal import fftconvolve
from scipy.signal.windows import taylor as taylor_window

from detectors.errors import SynthError
from detectors.synth._fields import gaussian_to_gamma, smooth_field, upsample

log = logging.getLogger(__name__)

C_LIGHT = 299_792_458.0
R_EARTH = 6_371_000.0
GM_EARTH = 3.986004418e14
GENERATOR_VERSION = "orbitwatch-synth-sar 1.0"

#: Array sizes are capped so a typo cannot allocate tens of GB.
MAX_SIDE = 16384


@dataclass
class SynthSarScene:
    """A generated SAR GEO scene: calibrated DN, truth and a Capella-shaped sidecar."""

    dn: np.ndarray  # uint16 (rows, cols), 0 = no data
    scale_factor: float  # sigma0 = (dn * scale_factor) ** 2
    truth: list[dict[str, Any]]
    land_mask: np.ndarray  # bool (rows, cols)
    sidecar: dict[str, Any]
    sigma0: np.ndarray | None = None  # float32 linear sigma0 before quantisation
    nodata_mask: np.ndarray | None = None  # bool, True where dn == 0 by design
    params: dict[str, Any] = field(default_factory=dict)

    @property
    def spacing_m(self) -> float:
        """Pixel spacing (square pixels), from the sidecar."""
        return float(self.sidecar["collect"]["image"]["pixel_spacing_row"])

    def sigma0_from_dn(self) -> np.ndarray:
        """Calibrate DN back to sigma0 exactly as a reader of the sidecar would."""
        a = self.dn.astype(np.float32) * np.float32(self.scale_factor)
        return a * a


# --------------------------------------------------------------------------------------
# Physics helpers
# --------------------------------------------------------------------------------------

def sea_sigma0_db(wind_speed_ms: float, incidence_deg: float, pol: str = "VV") -> float:
    """Mean X-band sea sigma0 (dB) from wind speed and incidence.

    Log-wind growth with a slope chosen so 3 -> 12 m/s spans -28 -> -20 dB at 30 deg
    (the range XMOD2 gives for moderate incidence, Li & Lehner 2014), minus 0.25 dB per
    degree beyond 30 deg, HH 2 dB below VV (polarisation ratio, Thompson et al. 1998).
    This is a stand-in for a full GMF, not XMOD2 itself.
    """
    u = max(float(wind_speed_ms), 0.5)
    db = -28.0 + 8.0 * math.log10(u / 3.0) / math.log10(4.0)
    db -= 0.25 * (incidence_deg - 30.0)
    if pol.upper().startswith("H"):
        db -= 2.0
    return float(db)


def ward_texture_shape(grazing_deg: float, cell_area_m2: float, pol: str,
                       swell_dir_deg: float) -> float:
    """K-distribution texture shape nu from Ward's empirical fit, clipped to [0.8, 30].

    log10(nu) = 2/3 log10(grazing_deg) + 5/8 log10(A_c) - k_pol - cos(2 theta_sw)/3,
    k_pol = 1.39 (VV) / 2.09 (HH) (Ward, Tough & Watts 2013, eq. 2.10). The fit was made at
    low grazing angles; at the 40-70 deg grazing of a spaceborne SAR it is extrapolated,
    hence the clip (Rayleigh-like at high nu, very spiky at nu < 1).
    """
    k_pol = 2.09 if pol.upper().startswith("H") else 1.39
    lg = (2.0 / 3.0) * math.log10(max(grazing_deg, 0.1)) + 0.625 * math.log10(cell_area_m2) \
        - k_pol - math.cos(math.radians(2 * swell_dir_deg)) / 3.0
    return float(np.clip(10 ** lg, 0.8, 30.0))


def skolnik_rcs_m2(length_m: float, width_m: float, freq_hz: float) -> float:
    """Skolnik (1974) ship RCS: sigma = 52 f_MHz^0.5 D_kt^1.5 (m^2).

    Displacement D = Cb * L * B * T * 1.025 t/m^3 with block coefficient Cb = 0.6 and draft
    T = 0.06 L (typical merchant proportions).
    """
    draft = 0.06 * length_m
    disp_kt = 0.6 * length_m * width_m * draft * 1.025 / 1000.0
    return float(52.0 * math.sqrt(freq_hz / 1e6) * disp_kt ** 1.5)


def window_taper(name: str, n: int, params: dict[str, Any] | None = None) -> np.ndarray:
    """Processing window of length n over the processed band.

    "rectangular" (unweighted, -13.3 dB sidelobes), "taylor" (scipy Taylor, nbar and
    sidelobe level), "avci-nacaroglu" (exponential window w = exp(pi a (sqrt(1-x^2) - 1)),
    Avci & Nacaroglu, 2008). Names follow Capella's sidecar ``*_window.name``.
    """
    params = params or {}
    if name == "rectangular":
        return np.ones(n)
    if name == "taylor":
        return taylor_window(n, nbar=int(params.get("nbar", 4)),
                             sll=abs(float(params.get("sidelobelevel", -30.0))), norm=False)
    if name == "avci-nacaroglu":
        a = float(params.get("alpha", 1.25))
        x = np.linspace(-1.0, 1.0, n)
        return np.exp(math.pi * a * (np.sqrt(np.clip(1 - x * x, 0, 1)) - 1.0))
    raise SynthError(f"unknown SAR processing window {name!r}")


def window_spectrum(name: str, params: dict[str, Any] | None, n: int, band_frac: float) -> np.ndarray:
    """FFT-ordered transfer function of length n: the window over band_frac of the band."""
    m = max(3, int(round(band_frac * n)))
    m = min(m, n)
    w = window_taper(name, m, params)
    spec = np.zeros(n)
    start = n // 2 - m // 2
    spec[start:start + m] = w
    spec = np.fft.ifftshift(spec)
    # Unit-energy IRF: sum |h|^2 = sum |H|^2 / n = 1.
    spec *= math.sqrt(n / float(np.sum(spec ** 2)))
    return spec


def irf_1d(name: str, params: dict[str, Any] | None, band_frac: float, half: int) -> np.ndarray:
    """Sampled unit-energy 1-D impulse response, centred, for offsets -half..half."""
    n = max(4 * half + 8, 512)
    h = np.real(np.fft.ifft(window_spectrum(name, params, n, band_frac)))
    h = np.fft.fftshift(h)
    c = n // 2
    return h[c - half:c + half + 1]


def broadening_factor(name: str, params: dict[str, Any] | None) -> float:
    """-3 dB mainlobe width of the window's IRF relative to the unweighted one."""
    def width(nm: str) -> float:
        n, m = 8192, 256
        spec = np.zeros(n)
        spec[:m] = window_taper(nm, m, params)
        h = np.abs(np.fft.fftshift(np.fft.ifft(spec))) ** 2
        h /= h.max()
        return float(np.count_nonzero(h >= 0.5))
    return width(name) / width("rectangular")


def slant_range_m(altitude_m: float, incidence_deg: float) -> float:
    """Slant range to the scene centre on a spherical Earth (law of cosines)."""
    rs = R_EARTH + altitude_m
    inc = math.radians(incidence_deg)
    return math.sqrt(rs ** 2 - (R_EARTH * math.sin(inc)) ** 2) - R_EARTH * math.cos(inc)


def look_from_incidence(altitude_m: float, incidence_deg: float) -> float:
    """Off-nadir look angle from incidence angle (sine rule on a spherical Earth)."""
    return math.degrees(math.asin(R_EARTH / (R_EARTH + altitude_m) * math.sin(math.radians(incidence_deg))))


def azimuth_ambiguity_offset_m(wavelength_m: float, slant_m: float, prf_hz: float,
                               v_eff_ms: float) -> float:
    """Displacement of the first azimuth ambiguity: lambda R PRF / (2 V) (Curlander 1991)."""
    return wavelength_m * slant_m * prf_hz / (2.0 * v_eff_ms)


# --------------------------------------------------------------------------------------
# Geometry helpers
# --------------------------------------------------------------------------------------

def _hull_weights(L_px: float, W_px: float, heading_deg: float, rng: np.random.Generator,
                  pad: int) -> tuple[np.ndarray, int, int]:
    """Relative backscatter weights of a hull footprint on a local patch.

    The hull is a rectangle with a tapered bow (last 20 % of the length narrows to a point),
    supersampled 3x3 per pixel for partial coverage; the hull edges (hull/sea dihedral) and a
    random deck texture modulate the weights. Returns (weights, r_centre, c_centre) where the
    target centre sits at patch[r_centre, c_centre].
    """
    half = int(math.ceil(max(L_px, W_px) / 2)) + 2
    size = 2 * (half + pad) + 1
    ctr = half + pad
    ss = 3
    off = (np.arange(size * ss) + 0.5) / ss - 0.5 - ctr
    dr, dc = np.meshgrid(off, off, indexing="ij")
    th = math.radians(heading_deg)
    # Along-ship axis points to the bow: up (-row) rotated clockwise by heading.
    u = -dr * math.cos(th) + dc * math.sin(th)
    v = dr * math.sin(th) + dc * math.cos(th)
    halfw = W_px / 2.0
    bow_start = 0.3 * L_px
    taper = np.where(u > bow_start, 1.0 - (u - bow_start) / (0.5 * L_px - bow_start + 1e-9), 1.0)
    inside = (np.abs(u) <= L_px / 2) & (np.abs(v) <= halfw * np.clip(taper, 0.05, 1.0))
    edge = inside & (np.abs(v) >= halfw * np.clip(taper, 0.05, 1.0) - 0.6)
    w = inside.astype(np.float32) + 1.5 * edge.astype(np.float32)
    w = w.reshape(size, ss, size, ss).mean(axis=(1, 3))
    deck = np.exp(0.5 * rng.standard_normal(w.shape)).astype(np.float32)
    return w * deck, ctr, ctr


def _coast_mask(rng: np.random.Generator, rows: int, cols: int, side: str,
                land_frac: float, coarse: int) -> np.ndarray:
    """Land mask behind a fractal coastline on one side of the frame.

    A ramp towards ``side`` plus multi-scale smooth noise (bays and headlands), thresholded
    at the quantile that gives ``land_frac``.
    """
    g = (smooth_field(rng, (rows, cols), rows / 6.0, coarse) * 0.6
         + smooth_field(rng, (rows, cols), rows / 20.0, coarse) * 0.25
         + smooth_field(rng, (rows, cols), rows / 60.0, coarse) * 0.1)
    rr = np.linspace(0.0, 1.0, rows, dtype=np.float32)[:, None]
    cc = np.linspace(0.0, 1.0, cols, dtype=np.float32)[None, :]
    ramp = {"top": 1 - rr + 0 * cc, "bottom": rr + 0 * cc,
            "left": 1 - cc + 0 * rr, "right": cc + 0 * rr}[side]
    f = 3.0 * ramp + g
    thr = np.quantile(f[:: max(1, rows // 256), :: max(1, cols // 256)], 1.0 - land_frac)
    return f > thr


def _nodata_wedge(rng: np.random.Generator, rows: int, cols: int) -> np.ndarray:
    """A no-data wedge along one edge, as left by the rotated footprint of a GEO product."""
    side = rng.choice(["top", "bottom", "left", "right"])
    n = rows if side in ("left", "right") else cols
    depth_max = int(rng.uniform(0.03, 0.12) * (cols if side in ("left", "right") else rows))
    depth = np.linspace(rng.uniform(0, 0.3) * depth_max, depth_max, n)
    if rng.random() < 0.5:
        depth = depth[::-1]
    if side == "left":
        return np.arange(cols)[None, :] < depth[:, None]
    if side == "right":
        return np.arange(cols)[None, :] >= cols - depth[:, None]
    if side == "top":
        return np.arange(rows)[:, None] < depth[None, :]
    return np.arange(rows)[:, None] >= rows - depth[None, :]


# --------------------------------------------------------------------------------------
# The generator
# --------------------------------------------------------------------------------------

def make_sar_scene(
    seed: int,
    rows: int = 2048,
    cols: int = 2048,
    spacing_m: float = 0.5,
    enl: float | None = None,
    n_vessels: int | None = None,
    n_lifeboats: int | None = None,
    land: bool = True,
    wind_speed_ms: float | None = None,
    sea_sigma0_db_override: float | None = None,
    texture_nu: float | None = None,
    swell: bool = True,
    incidence_deg: float | None = None,
    polarization: str | None = None,
    azimuth_window: str | None = None,
    range_window: str = "avci-nacaroglu",
    nesz_db: float | None = -24.0,
    ambiguity_mode: str = "in_frame",
    aasr_db: float | None = None,
    nodata_border: bool | None = None,
    coast_side: str | None = None,
    land_fraction: float | None = None,
    n_urban_blocks: int | None = None,
    dn_max_sigma0_db: float = 40.0,
    return_sigma0: bool = True,
    n_groups: int = 0,
) -> SynthSarScene:
    """Generate one seeded SAR GEO scene (see the module docstring for the physics).

    ``None`` parameters are drawn from the seed, so fresh seeds give varied scenes
    (wind 3-12 m/s, incidence 22-48 deg, ENL 2/4/9, 2-6 vessels, 3-8 lifeboats...).
    ``texture_nu=float('inf')`` turns the K texture off (pure Gamma speckle), ``nesz_db=None``
    removes thermal noise; both are useful for calibration checks.
    ``ambiguity_mode``: "physical" (ghosts only where lambda R PRF / 2V lands in the frame,
    almost never for < 10 km scenes), "in_frame" (displacement folded into the frame; the
    sidecar keeps the physical value) or "none".
    ``n_groups``: dense groups planted on top of the drawn targets (:func:`_group_layout`: a
    cluster of 3-30 lifeboats/rafts within 100 m, an anchorage of 5-20 vessels moored side by
    side, or a convoy of 3-8 in line); their members' truth carries ``group`` (an index) and
    ``group_kind``. Drawn from their own random stream, so ``n_groups=0`` scenes are unchanged.
    """
    if not (32 <= rows <= MAX_SIDE and 32 <= cols <= MAX_SIDE):
        raise SynthError(f"rows/cols must be in [32, {MAX_SIDE}], got {rows}x{cols}")
    if not (0.1 <= spacing_m <= 10.0):
        raise SynthError(f"spacing_m must be in [0.1, 10] m, got {spacing_m}")
    if enl is not None and not (1.0 <= enl <= 64.0):
        raise SynthError(f"enl must be in [1, 64], got {enl}")
    if ambiguity_mode not in ("physical", "in_frame", "none"):
        raise SynthError(f"ambiguity_mode must be physical|in_frame|none, got {ambiguity_mode!r}")
    for name, v in (("n_vessels", n_vessels), ("n_lifeboats", n_lifeboats), ("n_urban_blocks", n_urban_blocks),
                    ("n_groups", n_groups)):
        if v is not None and v < 0:
            raise SynthError(f"{name} must be >= 0, got {v}")
    if coast_side is not None and coast_side not in ("top", "bottom", "left", "right"):
        raise SynthError(f"coast_side must be top|bottom|left|right, got {coast_side!r}")
    if land_fraction is not None and not (0.0 < land_fraction < 0.8):
        raise SynthError(f"land_fraction must be in (0, 0.8), got {land_fraction}")

    rng = np.random.default_rng(seed)
    shape = (rows, cols)
    # ---- acquisition parameters ---------------------------------------------------------
    freq = 9.65e9
    lam = C_LIGHT / freq
    altitude = float(rng.uniform(520e3, 620e3))
    inc = float(incidence_deg if incidence_deg is not None else rng.uniform(22.0, 48.0))
    look = look_from_incidence(altitude, inc)
    pol = polarization or str(rng.choice(["HH", "VV"], p=[0.7, 0.3]))
    enl_v = float(enl if enl is not None else rng.choice([2.0, 4.0, 9.0]))
    wind = float(wind_speed_ms if wind_speed_ms is not None else rng.uniform(3.0, 12.0))
    prf = float(rng.uniform(7000.0, 11000.0))
    az_win = azimuth_window or str(rng.choice(["taylor", "rectangular"], p=[0.6, 0.4]))
    az_params: dict[str, Any] = {"nbar": 3, "sidelobelevel": -30.0} if az_win == "taylor" else {}
    if az_win == "avci-nacaroglu":
        az_params = {"alpha": 1.25}
    rg_params: dict[str, Any] = {"alpha": 1.25} if range_window == "avci-nacaroglu" else (
        {"nbar": 3, "sidelobelevel": -30.0} if range_window == "taylor" else {})
    oversample = float(rng.uniform(1.15, 1.35))
    band_frac = 1.0 / oversample
    az_bf = broadening_factor(az_win, az_params)
    rg_bf = broadening_factor(range_window, rg_params)
    az_res = spacing_m * oversample * az_bf
    rg_res_ground = spacing_m * oversample * rg_bf
    cell_area = az_res * rg_res_ground
    aasr = float(aasr_db if aasr_db is not None else rng.uniform(-25.0, -18.0))
    vs = math.sqrt(GM_EARTH / (R_EARTH + altitude))
    vg = vs * R_EARTH / (R_EARTH + altitude)
    v_eff = math.sqrt(vs * vg)
    r_slant = slant_range_m(altitude, inc)
    amb_phys_m = azimuth_ambiguity_offset_m(lam, r_slant, prf, v_eff)

    # ---- sea clutter ---------------------------------------------------------------------
    s0_db = float(sea_sigma0_db_override if sea_sigma0_db_override is not None
                  else sea_sigma0_db(wind, inc, pol))
    s0 = 10 ** (s0_db / 10)
    swell_dir = float(rng.uniform(0, 180))
    nu = float(texture_nu if texture_nu is not None
               else ward_texture_shape(90.0 - inc, cell_area, pol, swell_dir))
    tex_coarse = max(1, int(round(2.0 / spacing_m)))  # texture correlation ~2 m (wave facets)
    g = smooth_field(rng, (rows // tex_coarse + 2, cols // tex_coarse + 2), 0.7, 1)
    texture = upsample(gaussian_to_gamma(g, nu), tex_coarse, shape) if np.isfinite(nu) \
        else np.ones(shape, np.float32)
    big = max(4, rows // 64)
    # Wind cells / atmospheric streaks: +-1 dB over hundreds of metres.
    wind_cells = np.exp(np.float32(0.23 * 1.0) * smooth_field(rng, shape, 300.0 / spacing_m / big, big))
    wind_cells /= wind_cells.mean()
    mean_sea = (s0 * wind_cells).astype(np.float32)
    if swell:
        swell_len = float(rng.uniform(80.0, 300.0)) / spacing_m
        depth = float(np.clip(0.05 + 0.02 * wind + rng.normal(0, 0.03), 0.03, 0.3))
        a = math.radians(swell_dir)
        kr, kc = 2 * math.pi * math.cos(a) / swell_len, 2 * math.pi * math.sin(a) / swell_len
        ph = rng.uniform(0, 2 * math.pi)
        rr = np.arange(rows, dtype=np.float32)[:, None]
        cc = np.arange(cols, dtype=np.float32)[None, :]
        swell_mod = 1.0 + depth * np.sin(kr * rr + kc * cc + ph).astype(np.float32)
    else:
        swell_len, depth = 0.0, 0.0
        swell_mod = np.ones(shape, np.float32)

    # ---- land, urban, nodata ----------------------------------------------------------
    coarse = max(1, rows // 256)
    if land:
        side = coast_side or str(rng.choice(["top", "bottom", "left", "right"]))
        lf = float(land_fraction if land_fraction is not None else rng.uniform(0.15, 0.4))
        land_mask = _coast_mask(rng, rows, cols, side, lf, coarse)
    else:
        side, lf = "none", 0.0
        land_mask = np.zeros(shape, bool)
    nod = bool(nodata_border if nodata_border is not None else rng.random() < 0.4)
    nodata_mask = _nodata_wedge(rng, rows, cols) if nod else np.zeros(shape, bool)

    clutter_mean = np.where(land_mask, 0.0, mean_sea).astype(np.float32)
    intensity_tex = np.where(land_mask, 0.0, mean_sea * swell_mod * texture).astype(np.float32)
    del texture, swell_mod
    if land and land_mask.any():
        land_db = float(rng.uniform(-12.0, -8.0))
        cover = 10 ** ((land_db + 2.5 * smooth_field(rng, shape, 60.0 / spacing_m / coarse, coarse)) / 10)
        land_tex = upsample(gaussian_to_gamma(smooth_field(rng, (rows // tex_coarse + 2, cols // tex_coarse + 2), 1.0, 1), 6.0),
                            tex_coarse, shape)
        clutter_mean = np.where(land_mask, cover, clutter_mean).astype(np.float32)
        intensity_tex = np.where(land_mask, cover * land_tex, intensity_tex).astype(np.float32)
        del cover, land_tex
    else:
        land_db = float("nan")

    nesz = 10 ** (nesz_db / 10) if nesz_db is not None else 0.0
    speckle = rng.gamma(enl_v, 1.0 / enl_v, size=shape).astype(np.float32)
    intensity = (intensity_tex + np.float32(nesz)) * speckle
    del speckle, intensity_tex

    # ---- targets ---------------------------------------------------------------------
    truth: list[dict[str, Any]] = []
    n_v = int(n_vessels if n_vessels is not None else rng.integers(2, 7))
    n_l = int(n_lifeboats if n_lifeboats is not None else rng.integers(3, 9))
    max_len_m = 0.8 * min(rows, cols) * spacing_m
    occupied: list[tuple[float, float, float]] = []  # (row, col, radius_px)
    sea_ok = ~(land_mask | nodata_mask)
    # Keep targets >= 30 m from land/no-data: dilate the forbidden zone on a coarse grid.
    forbid = ndimage.binary_dilation(~sea_ok[::4, ::4], iterations=max(1, int(30.0 / spacing_m / 4)))

    def place(radius_px: float, gen: np.random.Generator = rng) -> tuple[float, float] | None:
        if gen is not rng and 2 * radius_px + 4 >= min(rows, cols):  # a group larger than the frame
            return None
        for _ in range(200):
            r = float(gen.uniform(radius_px + 2, rows - radius_px - 2))
            c = float(gen.uniform(radius_px + 2, cols - radius_px - 2))
            r0, r1 = int(max(0, r - radius_px)) // 4, int(min(rows - 1, r + radius_px)) // 4 + 1
            c0, c1 = int(max(0, c - radius_px)) // 4, int(min(cols - 1, c + radius_px)) // 4 + 1
            if forbid[r0:r1, c0:c1].any():
                continue
            if any((r - orr) ** 2 + (c - occ) ** 2 < (radius_px + orad + 10) ** 2 for orr, occ, orad in occupied):
                continue
            occupied.append((r, c, radius_px))
            return r, c
        return None

    specs: list[dict[str, Any]] = []
    for i in range(n_v + n_l):
        is_boat = i >= n_v
        hi = min(300.0, max_len_m)
        if not is_boat and hi < 15.0:
            raise SynthError(f"frame {rows}x{cols} at {spacing_m} m is too small for a 15 m vessel")
        pos = None
        for _attempt in range(4):
            if is_boat:
                L = float(rng.uniform(4.0, 9.0))
                W = L / float(rng.uniform(2.5, 3.5))
            else:
                L = float(math.exp(rng.uniform(math.log(15.0), math.log(hi))))
                W = L / float(rng.uniform(5.0, 8.0))
            pos = place(L / 2 / spacing_m + 3)
            if pos is not None:
                break
            hi = max(15.0, hi / 2)  # crowded/coastal frame: try a smaller ship
        if pos is None:
            log.warning("seed %s: no room for a %s, skipped", seed, "lifeboat" if is_boat else "vessel")
            continue
        sig = _target_signature(is_boat, L, W, freq, rng)
        heading = float(rng.uniform(0.0, 360.0))
        specs.append(dict(kind="lifeboat" if is_boat else "vessel", row=pos[0], col=pos[1], L=L, W=W,
                          heading=heading, **sig))
    if n_groups:
        grng = np.random.default_rng([seed, 7])  # own stream: scenes without groups are unchanged
        for g in range(int(n_groups)):
            group_kind, members = _group_layout(grng)
            reach = max(math.hypot(dr, dc) + L / 2 for dr, dc, L, _W, _h, _b in members)
            pos = place(reach / spacing_m + 3, grng)
            if pos is None:
                log.warning("seed %s: no room for the %s group (%.0f m across), skipped", seed, group_kind, 2 * reach)
                continue
            for dr, dc, L, W, heading, is_boat in members:
                specs.append(dict(kind="lifeboat" if is_boat else "vessel", row=pos[0] + dr / spacing_m,
                                  col=pos[1] + dc / spacing_m, L=L, W=W, heading=heading, group=g,
                                  group_kind=group_kind, **_target_signature(is_boat, L, W, freq, grng)))

    # Point scatterers (coherent, full IRF incl. far sidelobes) collected on a sparse canvas.
    pts_r: list[int] = []
    pts_c: list[int] = []
    pts_a: list[complex] = []
    pts_owner: list[int] = []  # index in specs, or -1 for urban
    pix_area = spacing_m * spacing_m
    K = 24  # near-field IRF half width (px) for distributed returns
    h_az = irf_1d(az_win, az_params, band_frac, K)
    h_rg = irf_1d(range_window, rg_params, band_frac, K)
    looks = int(min(16, max(1, round(enl_v))))
    k2d = np.outer(h_az, h_rg)
    psf2 = (k2d ** 2).astype(np.float32)
    target_patches: list[tuple[int, int, np.ndarray]] = []  # (r0, c0, intensity) for ghosts

    for idx, s in enumerate(specs):
        L_px, W_px = s["L"] / spacing_m, s["W"] / spacing_m
        w, rc0, cc0 = _hull_weights(L_px, W_px, s["heading"], rng, K)
        r_int, c_int = int(round(s["row"])), int(round(s["col"]))
        r0, c0 = r_int - rc0, c_int - cc0
        hull_sigma = s["dist_sig"]
        wsum = float(w.sum())
        amp = np.sqrt(np.float32(hull_sigma / pix_area) * w / max(wsum, 1e-9)).astype(np.float32)
        z = (rng.standard_normal((looks,) + w.shape) + 1j * rng.standard_normal((looks,) + w.shape)) \
            * (amp / math.sqrt(2.0))
        z = fftconvolve(z, k2d[None, :, :], mode="same", axes=(1, 2))
        hull_patch = (np.abs(z) ** 2).mean(axis=0).astype(np.float32)
        del z
        patch = hull_patch.copy()  # hull + point near-field: the source of the ghost copy
        # Dominant scatterers on the hull centreline: bridge/superstructure, masts, cranes, bow.
        th = math.radians(s["heading"])
        wts = np.array(s["point_sig"])
        n_pts = wts.size
        if s["kind"] == "lifeboat":
            us = rng.uniform(-0.2, 0.2, n_pts)
        else:
            bridge_u = float(rng.choice([-0.35, 0.3], p=[0.75, 0.25]))
            us = np.concatenate([[bridge_u], rng.uniform(-0.45, 0.45, n_pts - 1)])
        vs_ = rng.normal(0.0, 0.12, n_pts)
        for u, vv, sig in zip(us, vs_, wts):
            du, dv = u * L_px, vv * W_px
            pr = s["row"] - du * math.cos(th) + dv * math.sin(th)
            pc = s["col"] + du * math.sin(th) + dv * math.cos(th)
            pts_r.append(int(round(pr)))
            pts_c.append(int(round(pc)))
            pts_a.append(complex(math.sqrt(sig / pix_area) * np.exp(1j * rng.uniform(0, 2 * math.pi))))
            pts_owner.append(idx)
            # Near-field point response for the ghost copy (intensity, defocused later).
            ir, ic = int(round(pr)) - r0, int(round(pc)) - c0
            if K <= ir < patch.shape[0] - K and K <= ic < patch.shape[1] - K:
                patch[ir - K:ir + K + 1, ic - K:ic + K + 1] += np.float32(sig / pix_area) * psf2
        _add_patch(intensity, hull_patch, r0, c0)
        target_patches.append((r0, c0, patch))
        truth.append({
            "kind": s["kind"], "row": float(s["row"]), "col": float(s["col"]),
            "length_m": round(s["L"], 3), "width_m": round(s["W"], 3),
            "heading_deg": round(s["heading"], 2), "rcs_m2": round(s["rcs"], 3),
            "reflector_m2": round(s["reflector_m2"], 2),
            **({"group": s["group"], "group_kind": s["group_kind"]} if "group" in s else {}),
        })

    # ---- urban blocks on land ------------------------------------------------------------
    urban_truth: list[dict[str, Any]] = []
    if land and land_mask.any():
        n_ub = int(n_urban_blocks if n_urban_blocks is not None else rng.integers(2, 6))
        land_idx = np.flatnonzero(land_mask[::8, ::8].ravel())
        for _ in range(n_ub):
            if land_idx.size == 0:
                break
            k = int(rng.choice(land_idx))
            br, bc = (k // ((cols + 7) // 8)) * 8, (k % ((cols + 7) // 8)) * 8
            bh = int(rng.uniform(40.0, 150.0) / spacing_m)
            bw = int(rng.uniform(40.0, 150.0) / spacing_m)
            street = max(4, int(rng.uniform(15.0, 40.0) / spacing_m))
            n_in = 0
            for rr_ in range(br - bh // 2, br + bh // 2, street):
                for cc_ in range(bc - bw // 2, bc + bw // 2, max(2, int(3.0 / spacing_m))):
                    if not (0 <= rr_ < rows and 0 <= cc_ < cols) or not land_mask[rr_, cc_]:
                        continue
                    if rng.random() < 0.35:
                        sig = float(10 ** rng.uniform(1.0, 3.0))  # facade dihedrals 10-1000 m^2
                        if rng.random() < 0.02:
                            sig = float(10 ** rng.uniform(3.0, 4.0))  # trihedral-like corners
                        pts_r.append(rr_)
                        pts_c.append(cc_)
                        pts_a.append(complex(math.sqrt(sig / pix_area) * np.exp(1j * rng.uniform(0, 2 * math.pi))))
                        pts_owner.append(-1)
                        n_in += 1
            if n_in:
                urban_truth.append({"kind": "trap", "trap": "urban", "row": float(np.clip(br, 0, rows - 1)),
                                    "col": float(np.clip(bc, 0, cols - 1)), "n_scatterers": n_in,
                                    "extent_m": [round(bh * spacing_m, 1), round(bw * spacing_m, 1)]})

    # ---- coherent rendering of all point scatterers with the full IRF ------------------------
    if pts_a:
        canvas = np.zeros(shape, np.complex64)
        pr_ = np.clip(np.array(pts_r), 0, rows - 1)
        pc_ = np.clip(np.array(pts_c), 0, cols - 1)
        np.add.at(canvas, (pr_, pc_), np.array(pts_a, np.complex64))
        H_az = window_spectrum(az_win, az_params, rows, band_frac).astype(np.float32)
        H_rg = window_spectrum(range_window, rg_params, cols, band_frac).astype(np.float32)
        spec = sfft.fft2(canvas, workers=1)
        spec *= H_az[:, None]
        spec *= H_rg[None, :]
        img = sfft.ifft2(spec, workers=1, overwrite_x=True)
        intensity += (img.real ** 2 + img.imag ** 2).astype(np.float32)
        del canvas, spec, img

    # ---- azimuth ambiguities --------------------------------------------------------------
    amb_lin = 10 ** (aasr / 10)
    if ambiguity_mode == "in_frame":
        frac = (amb_phys_m / spacing_m / rows) % 1.0
        amb_px = rows * (0.25 + 0.5 * frac)
    else:
        amb_px = amb_phys_m / spacing_m
    amb_truth: list[dict[str, Any]] = []
    if ambiguity_mode != "none":
        defocus = float(rng.uniform(1.5, 4.0))
        sources: list[tuple[int, int, np.ndarray, str]] = [(r0, c0, p, "target") for (r0, c0, p) in target_patches]
        # Bright urban corners ghost onto the sea too (a classic false alarm near ports).
        urb = [(r, c, abs(a) ** 2) for r, c, a, o in zip(pts_r, pts_c, pts_a, pts_owner) if o == -1]
        urb.sort(key=lambda t: -t[2])
        for r, c, p in urb[:6]:
            pt = (np.float32(p) * psf2)
            sources.append((r - K, c - K, pt, "urban"))
        for r0, c0, patch, origin in sources:
            ghost = ndimage.gaussian_filter1d(patch * np.float32(amb_lin), defocus, axis=0)
            for sign in (+1, -1):
                gr0 = int(round(r0 + sign * amb_px))
                if gr0 + patch.shape[0] <= 0 or gr0 >= rows:
                    continue
                _add_patch(intensity, ghost, gr0, c0)
                pk = np.unravel_index(int(np.argmax(ghost)), ghost.shape)
                gr, gc = gr0 + pk[0], c0 + pk[1]
                if 0 <= gr < rows and 0 <= gc < cols and not land_mask[gr, gc] and not nodata_mask[gr, gc]:
                    if ghost[pk] > 10.0 * (clutter_mean[gr, gc] + nesz):
                        amb_truth.append({"kind": "trap", "trap": "ambiguity", "row": float(gr), "col": float(gc),
                                          "source": origin, "offset_px": round(sign * amb_px, 1),
                                          "peak_db_over_clutter": round(10 * math.log10(ghost[pk] / (clutter_mean[gr, gc] + nesz)), 1)})

    # ---- sidelobe traps (truth only: the streaks were rendered by the coherent IRF) -----------
    side_truth = _sidelobe_traps(pts_r, pts_c, pts_a, pts_owner, specs, land_mask, nodata_mask, clutter_mean,
                                 nesz, az_win, az_params, range_window, rg_params, band_frac, spacing_m, rows, cols)

    # ---- calibration to Capella GEO DN ----------------------------------------------------------
    scale = math.sqrt(10 ** (dn_max_sigma0_db / 10)) / 65535.0
    dn = np.sqrt(intensity) / np.float32(scale)
    saturated = float(np.mean(dn > 65535))
    dn = np.clip(np.rint(dn), 1, 65535).astype(np.uint16)
    dn[nodata_mask] = 0
    if return_sigma0:
        intensity[nodata_mask] = 0.0
    truth.extend(urban_truth)
    truth.extend(amb_truth)
    truth.extend(side_truth)

    params = {
        "seed": int(seed), "generator": GENERATOR_VERSION, "wind_speed_ms": round(wind, 3),
        "sea_sigma0_db": round(s0_db, 3), "texture_nu": nu if np.isfinite(nu) else None,
        "swell_wavelength_m": round(swell_len * spacing_m, 1), "swell_depth": round(depth, 3),
        "swell_direction_deg": round(swell_dir, 1), "land_sigma0_db": None if math.isnan(land_db) else round(land_db, 2),
        "coast_side": side, "land_fraction": round(float(land_mask.mean()), 4), "nesz_db": nesz_db,
        "aasr_db": round(aasr, 2), "ambiguity_mode": ambiguity_mode,
        "ambiguity_offset_m_physical": round(amb_phys_m, 1), "ambiguity_offset_px_used": round(amb_px, 1),
        "platform_altitude_m": round(altitude, 1), "platform_velocity_ms": round(vs, 1),
        "effective_velocity_ms": round(v_eff, 1), "slant_range_m": round(r_slant, 1),
        "oversampling": round(oversample, 4), "saturated_fraction": saturated,
        "nodata_border": nod, "n_vessels": sum(t["kind"] == "vessel" for t in truth),
        "n_lifeboats": sum(t["kind"] == "lifeboat" for t in truth),
    }
    sidecar = _capella_sidecar(seed, rows, cols, spacing_m, scale, enl_v, look, inc, az_win, az_params,
                               range_window, rg_params, az_bf, rg_bf, az_res, rg_res_ground, freq, pol, prf,
                               nesz_db, params)
    log.debug("SAR scene seed=%s %dx%d: %d truth entries", seed, rows, cols, len(truth))
    return SynthSarScene(dn=dn, scale_factor=scale, truth=truth, land_mask=land_mask, sidecar=sidecar,
                         sigma0=intensity if return_sigma0 else None, nodata_mask=nodata_mask, params=params)


def _target_signature(is_boat: bool, L: float, W: float, freq: float, rng: np.random.Generator) -> dict[str, Any]:
    """Radar signature of one hull (see the module docstring): total and distributed RCS, the
    point scatterers' RCS and the reflector. The draws are in the order the first generator made
    them, so seeded scenes are reproduced exactly."""
    scint = float(10 ** (rng.normal(0.0, 2.0) / 10))  # aspect scintillation, 2 dB
    if is_boat:
        # Skolnik hull (~2 m^2 at 7.5 m) floored at 0.5 m^2: engine, fittings and crew.
        hull_rcs = max(skolnik_rcs_m2(L, W, freq), 0.5)
        refl = float(rng.uniform(2.0, 10.0)) if rng.random() < 0.5 else 0.0  # partly aligned reflector
        point_sig = [0.3 * hull_rcs * scint] + ([refl * scint] if refl > 0 else [])
        dist_sig = 0.7 * hull_rcs * scint
    else:
        refl = 0.0
        rcs = max(skolnik_rcs_m2(L, W, freq) * 10 ** (-rng.uniform(3.0, 10.0) / 10), 10.0) * scint
        pf = float(rng.uniform(0.45, 0.7))
        n_pts = int(min(12, 3 + L // 30))
        wts = np.concatenate([[rng.uniform(2.0, 4.0)], rng.gamma(1.0, 1.0, n_pts - 1)])
        point_sig = list(wts / wts.sum() * rcs * pf)
        dist_sig = rcs * (1.0 - pf)
    return dict(rcs=float(sum(point_sig) + dist_sig), dist_sig=dist_sig, point_sig=point_sig, reflector_m2=refl)


#: Kinds of dense group :func:`_group_layout` draws, with their probabilities.
GROUP_KINDS = (("liferafts", 0.5), ("anchorage", 0.3), ("convoy", 0.2))


def _group_layout(rng: np.random.Generator) -> tuple[str, list[tuple[float, float, float, float, float, bool]]]:
    """One dense group: its kind and members as (d_row_m, d_col_m, length, width, heading, is_boat)
    around the group centre.

    * ``liferafts`` - what a sinking ship leaves: 3-30 lifeboats and rafts (3-9 m) scattered within
      a 100 m circle (often much tighter), headings random, hulls >= 2 m apart;
    * ``anchorage`` - 5-20 small vessels (12-45 m) moored side by side in 1-3 rows at 1.2-2 beams
      apart, headings within 10 deg of each other (the real SSDD anchorage chips);
    * ``convoy`` - 3-8 vessels (20-120 m) in line ahead, 1.5-4 lengths apart.
    Why: a detector trained on isolated targets merges or suppresses neighbours; the issue's
    real anchorage of 122 ships found 8.
    """
    u, acc = rng.random(), 0.0
    kind = GROUP_KINDS[-1][0]
    for k, p in GROUP_KINDS:
        acc += p
        if u < acc:
            kind = k
            break
    out: list[tuple[float, float, float, float, float, bool]] = []
    if kind == "liferafts":
        n = int(rng.integers(3, 31))
        radius = float(rng.uniform(15.0, 50.0))
        for _ in range(n):
            L = float(rng.uniform(3.0, 9.0))
            W = L / float(rng.uniform(1.0, 3.5))  # rafts are round, boats 2.5-3.5:1
            for _try in range(60):
                a, rr = rng.uniform(0, 2 * math.pi), radius * math.sqrt(rng.random())
                dr, dc = rr * math.cos(a), rr * math.sin(a)
                if all(math.hypot(dr - o[0], dc - o[1]) >= (L + o[2]) / 2 + 2.0 for o in out):
                    out.append((dr, dc, L, W, float(rng.uniform(0, 360)), True))
                    break
        return kind, out
    heading = float(rng.uniform(0, 180))
    th = math.radians(heading)
    ax = (-math.cos(th), math.sin(th))  # (d_row, d_col) of one metre along the hull axis
    ac = (math.sin(th), math.cos(th))  # ... and across it
    if kind == "anchorage":
        n = int(rng.integers(5, 21))
        n_rows = int(rng.integers(1, 4))
        L = float(rng.uniform(12.0, 45.0))
        W = L / float(rng.uniform(4.0, 6.0))
        gap = W * float(rng.uniform(1.2, 2.0))
        per_row = int(math.ceil(n / n_rows))
        for i in range(n):
            row_i, k = divmod(i, per_row)
            along = (row_i - (n_rows - 1) / 2) * L * 1.15
            across = (k - (per_row - 1) / 2) * gap
            Li = L * float(rng.uniform(0.85, 1.15))
            out.append((along * ax[0] + across * ac[0], along * ax[1] + across * ac[1], Li, Li * W / L,
                        (heading + float(rng.normal(0, 5.0))) % 360.0, False))
        return kind, out
    n = int(rng.integers(3, 9))
    L = float(rng.uniform(20.0, 120.0))
    step = max(1.3 * L, min(L * float(rng.uniform(1.5, 4.0)), 600.0 / (n - 1)))  # a convoy within ~600 m
    for i in range(n):
        along = (i - (n - 1) / 2) * step
        Li = L * float(rng.uniform(0.8, 1.2))
        out.append((along * ax[0], along * ax[1], Li, Li / float(rng.uniform(5.0, 8.0)),
                    (heading + float(rng.normal(0, 3.0))) % 360.0, False))
    return kind, out


def _add_patch(img: np.ndarray, patch: np.ndarray, r0: int, c0: int) -> None:
    """Add ``patch`` into ``img`` with its top-left at (r0, c0), clipped to the frame."""
    rows, cols = img.shape
    pr0, pc0 = max(0, -r0), max(0, -c0)
    ir0, ic0 = max(0, r0), max(0, c0)
    ir1 = min(rows, r0 + patch.shape[0])
    ic1 = min(cols, c0 + patch.shape[1])
    if ir1 <= ir0 or ic1 <= ic0:
        return
    img[ir0:ir1, ic0:ic1] += patch[pr0:pr0 + ir1 - ir0, pc0:pc0 + ic1 - ic0]


def _sidelobe_traps(pts_r: list[int], pts_c: list[int], pts_a: list[complex], pts_owner: list[int],
                    specs: list[dict[str, Any]], land_mask: np.ndarray, nodata_mask: np.ndarray,
                    clutter_mean: np.ndarray, nesz: float, az_win: str, az_params: dict[str, Any],
                    rg_win: str, rg_params: dict[str, Any], band_frac: float, spacing_m: float,
                    rows: int, cols: int) -> list[dict[str, Any]]:
    """Truth entries for sidelobe streaks that stand >= 7 dB over the local clutter mean.

    Uses the same IRF as the renderer: the level at offset d along an axis is
    |a|^2 h_axis(d)^2 h_other(0)^2. One trap per visible arm (outside the owner's hull),
    placed at the median visible offset; arms over land are ignored.
    """
    if not pts_a:
        return []
    half = max(rows, cols)
    h_az = irf_1d(az_win, az_params, band_frac, half) ** 2
    h_rg = irf_1d(rg_win, rg_params, band_frac, half) ** 2
    power = np.abs(np.array(pts_a)) ** 2
    # Brightest point per vessel/lifeboat, and the brightest urban points.
    cand: dict[int, int] = {}
    for i, o in enumerate(pts_owner):
        if o >= 0 and (o not in cand or power[i] > power[cand[o]]):
            cand[o] = i
    urban = sorted((i for i, o in enumerate(pts_owner) if o < 0), key=lambda i: -power[i])[:20]
    out: list[dict[str, Any]] = []
    for i in list(cand.values()) + urban:
        r, c, p, o = pts_r[i], pts_c[i], float(power[i]), pts_owner[i]
        d0 = (specs[o]["L"] / spacing_m / 2 + 4) if o >= 0 else 4
        for axis, sign in ((0, 1), (0, -1), (1, 1), (1, -1)):
            n = rows if axis == 0 else cols
            start = r if axis == 0 else c
            d = np.arange(1, n)
            pos = start + sign * d
            ok = (pos >= 0) & (pos < n)
            d, pos = d[ok], pos[ok]
            if d.size == 0:
                continue
            if axis == 0:
                lvl = p * h_az[half + d] * h_rg[half]
                rr, cc = pos, np.full_like(pos, c)
            else:
                lvl = p * h_rg[half + d] * h_az[half]
                rr, cc = np.full_like(pos, r), pos
            bg = clutter_mean[rr, cc] + nesz
            vis = (lvl > 5.0 * bg) & ~land_mask[rr, cc] & ~nodata_mask[rr, cc] & (d > d0)
            if np.count_nonzero(vis) < 3:
                continue
            dv = d[vis]
            dm = int(np.median(dv))
            tr, tc = (r + sign * dm, c) if axis == 0 else (r, c + sign * dm)
            if any(abs(t["row"] - tr) < 10 and abs(t["col"] - tc) < 10 for t in out):
                continue
            out.append({"kind": "trap", "trap": "sidelobe", "row": float(tr), "col": float(tc),
                        "axis": "azimuth" if axis == 0 else "range", "source": "urban" if o < 0 else specs[o]["kind"],
                        "extent_px": [int(dv.min()), int(dv.max())]})
    return out


def _capella_sidecar(seed: int, rows: int, cols: int, spacing_m: float, scale: float, enl: float,
                     look: float, inc: float, az_win: str, az_params: dict[str, Any], rg_win: str,
                     rg_params: dict[str, Any], az_bf: float, rg_bf: float, az_res: float,
                     rg_res_ground: float, freq: float, pol: str, prf: float, nesz_db: float | None,
                     params: dict[str, Any]) -> dict[str, Any]:
    """Capella GEO ``_extended.json`` with the real product's key names and nesting.

    The geotransform/WKT are placeholders (origin 0, 0; empty WKT) until
    ``pipelines.scene.write.write_sar_bundle`` georeferences the scene; timestamps are a
    deterministic function of the seed and are replaced by the writer's ``acquired``.
    Non-Capella generator facts live under the top-level ``orbitwatch_synth`` key.
    """
    start = datetime(2025, 6, 1, tzinfo=timezone.utc) + timedelta(minutes=int(seed) % 525_600)
    dur = 10.0 if spacing_m < 0.6 else 5.0
    stop = start + timedelta(seconds=dur)
    ts = lambda t: t.strftime("%Y-%m-%dT%H:%M:%S.%fZ")  # noqa: E731
    mode = "spotlight" if spacing_m < 0.6 else "stripmap"
    rg_res_slant = rg_res_ground * math.sin(math.radians(inc))
    return {
        "software_version": GENERATOR_VERSION,
        "processing_time": ts(stop + timedelta(hours=1)),
        "copyright": "Synthetic data generated by orbitwatch (Apache-2.0); not a Capella product.",
        "product_version": "1.10",
        "product_type": "GEO",
        "collect": {
            "start_timestamp": ts(start),
            "stop_timestamp": ts(stop),
            "platform": "capella-synthetic",
            "mode": mode,
            "collect_id": str(uuid.uuid5(uuid.NAMESPACE_URL, f"orbitwatch-sar-{seed}")),
            "image": {
                "data_type": "UInt16",
                "length": rows * spacing_m,
                "width": cols * spacing_m,
                "rows": int(rows),
                "columns": int(cols),
                "pixel_spacing_row": float(spacing_m),
                "pixel_spacing_column": float(spacing_m),
                "algorithm": "backprojection",
                "scale_factor": float(scale),
                "range_window": {"name": rg_win, "parameters": rg_params, "broadening_factor": rg_bf},
                "azimuth_window": {"name": az_win, "parameters": az_params, "broadening_factor": az_bf},
                "image_geometry": {
                    "type": "geotransform",
                    "geotransform": [0.0, float(spacing_m), 0.0, 0.0, 0.0, -float(spacing_m)],
                    "coordinate_system": {"type": "wkt", "wkt": ""},
                },
                "center_pixel": {"look_angle": round(look, 6), "incidence_angle": round(inc, 6),
                                 "squint_angle": 0.0, "center_time": ts(start + timedelta(seconds=dur / 2))},
                "range_resolution": rg_res_slant,
                "ground_range_resolution": rg_res_ground,
                "azimuth_resolution": az_res,
                "ground_azimuth_resolution": az_res,
                "azimuth_looks": float(enl),
                "range_looks": 1.0,
                "enl": float(enl),
                "radiometry": "sigma_nought",
                "calibration": "full",
                "nesz_peak": nesz_db,
            },
            "radar": {
                "center_frequency": float(freq),
                "pointing": "left" if seed % 2 else "right",
                "transmit_polarization": pol[0],
                "receive_polarization": pol[1],
                "prf": [{"start_timestamps": [ts(start)], "prf": float(prf)}],
            },
            "state": {"coordinate_system": {"type": "ecef"},
                      "direction": "ascending" if (seed // 2) % 2 else "descending"},
        },
        "orbitwatch_synth": params,
    }
