"""Published active-fire detection rules, vectorised in torch so they run on the detector's GPU.

Why rules first: they need no training data, their thresholds are published and reviewed, and
fire services know how to read them. Four families are implemented, each with the thresholds of
its paper (nothing here is tuned to orbitwatch's test scenes):

``schroeder2016``
    Schroeder, Oliva, Giglio, Quayle, Lorenz, Morelli (2016), *Active fire detection using
    Landsat-8/OLI data*, Remote Sens. Environ. 185, 210-220 (daytime part). With
    rho_k the OLI band k reflectance (1 coastal, 2 blue, 3 green, 4 red, 5 nir08, 6 swir16,
    7 swir22), R75 = rho7/rho5, R76 = rho7/rho6:

    * Eq. 1 unambiguous: R75 > 2.5 and rho7 - rho5 > 0.3 and rho7 > 0.5;
    * Eq. 2 unambiguous (saturation / DN folding): rho6 > 0.8 and rho1 < 0.2 and
      (rho5 > 0.4 or rho7 < 0.1);
    * Eq. 3 potential: R75 > 1.8 and rho7 - rho5 > 0.17; Eq. 6: R76 > 1.6;
    * Eqs. 4-5 contextual, 61 x 61 window: R75 > mean(R75) + max(3 std(R75), 0.8) and
      rho7 > mean(rho7) + max(3 std(rho7), 0.08), background = valid pixels that are neither fire
      candidates (Eqs. 1-3) nor water;
    * Eqs. 7-9 water: rho4 > rho5 > rho6 > rho7 and rho1 - rho7 < 0.2 and
      (rho3 > rho2 or (rho1 > rho2 > rho3 > rho4)); water pixels are never fire.

``murphy2016``
    Murphy, Souza Filho, Wright, Sabatino, Correa Pabon, ... (2016), *HOTMAP: Global hot target
    detection at moderate spatial resolution*, Remote Sens. Environ. 177, 78-88:

    * alpha: rho7/rho6 >= 1.4 and rho7/rho5 >= 1.4 and rho7 >= 0.15;
    * beta (only next to an alpha pixel, 3 x 3): rho6/rho5 >= 2 and rho6 >= 0.5 and rho7 >= 0.5.

``kumar_roy2018``
    Kumar & Roy (2018), *Global operational land imager Landsat-8 reflectance-based active fire
    detection algorithm* (GOLI), Int. J. Digital Earth 11(2), 154-178:

    * unambiguous: rho4 <= 0.53 rho7 - 0.214, plus 8-neighbours of those with
      rho4 <= 0.35 rho6 - 0.044;
    * potential: rho4 <= 0.53 rho7 - 0.125 or rho6 <= 1.08 rho7 - 0.048, confirmed by the
      Schroeder Eqs. 4-5 contextual test on a window grown from 5 x 5 to 61 x 61 until at least
      25 % of it is valid background;
    * water: rho2 > rho3 > rho4 > rho5.

``contextual_bt``
    Giglio, Descloitres, Justice, Kaufman (2003), *An enhanced contextual fire detection
    algorithm for MODIS*, Remote Sens. Environ. 87, 273-282 (day/night thresholds as kept in
    Collection 6, Giglio, Schroeder, Justice 2016, RSE 178, 31-41). T4 = ``mwir`` (~4 um) and
    T11 = ``lwir11`` brightness temperatures, dT = T4 - T11:

    * potential: T4 > 310 K (night 305 K) and dT > 10 K and, by day, rho0.86 < 0.3;
    * absolute: T4 > 360 K (night 320 K);
    * background window 3 x 3 grown to 21 x 21 until >= 25 % valid and >= 8 valid pixels;
      background fires (T4 > 325 K and dT > 20 K by day, T4 > 310 K and dT > 10 K by night) are
      left out; statistics are the mean and the mean absolute deviation (MAD, delta);
    * contextual: dT > mean(dT) + 3.5 delta(dT) and dT > mean(dT) + 6 K and
      T4 > mean(T4) + 3 delta(T4) and, by day, (T11 > mean(T11) + delta(T11) - 4 K or
      delta'(T4) > 5 K), delta'(T4) being the MAD of the rejected background fires.

Not implemented (documented so nobody assumes otherwise): the multi-temporal tests of Schroeder
2016 and Kumar & Roy 2018 (they need a previous acquisition), the night-time OLI algorithm, and
the sun-glint-angle tests of Giglio 2003 (they need the view/sun geometry, which the detector
interface does not carry). Glint over water is rejected by the published water tests; glint,
bright roofs and hot bare soil fail the SWIR *ratios* (they are bright at 0.86 and 1.6 um too).

Outputs. ``confidence`` per pixel in [0, 1] follows the MODIS/FIRMS classes (low < 0.3 <=
nominal < 0.8 <= high): unambiguous / absolute-threshold pixels are "high", pixels confirmed
only by a contextual or fixed-ratio test are "nominal" (higher the further they clear the
threshold), and any fire pixel touching water is capped at "low" as MODIS does for coastal
and glint-prone pixels. The mapping onto numbers is orbitwatch's; the classes are FIRMS'.
``intensity`` is the SWIR excess rho7 - mean background rho7 (61 x 61 window, fire and water
left out) in reflectance units: the 2.2 um signal a fire adds on top of its surroundings, which
grows with the fire's radiative power for a given fire temperature (a proxy, not calibrated FRP).
Without ``swir22`` (thermal-only input) it is the 4 um brightness-temperature excess in kelvin.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F

from detectors.errors import DetectorInputError, MissingBandError
from detectors.registry import register
from detectors.types import FireMap

log = logging.getLogger(__name__)

ALGORITHMS: tuple[str, ...] = ("schroeder2016", "murphy2016", "kumar_roy2018", "contextual_bt")

#: NIR band names accepted for OLI band 5, best first. Sentinel-2 B8A (nir08) matches OLI B5;
#: B08 ("nir") is broader; B09 ("nir09", 0.945 um) is a water-vapour band, used only as a last
#: resort (the real BC scene has nothing else) and reported in ``tests_run`` when it is.
NIR_NAMES: tuple[str, ...] = ("nir08", "nir", "nir09")

REFLECTIVE = ("coastal", "blue", "green", "red", "nir08", "nir", "nir09", "swir16", "swir22")
THERMAL = ("mwir", "lwir11", "lwir12")

#: FIRMS/MODIS confidence classes: low [0, 0.3), nominal [0.3, 0.8), high [0.8, 1].
CONF_LOW_MAX = 0.3
CONF_HIGH_MIN = 0.8

# --- Schroeder et al. 2016 -------------------------------------------------------------
S16_WINDOW_HALF = 30  # 61 x 61
S16_EQ1 = dict(r75=2.5, diff=0.3, rho7=0.5)
S16_EQ2 = dict(rho6=0.8, rho1=0.2, rho5=0.4, rho7=0.1)
S16_EQ3 = dict(r75=1.8, diff=0.17)
S16_EQ4 = dict(k=3.0, floor=0.8)
S16_EQ5 = dict(k=3.0, floor=0.08)
S16_EQ6_R76 = 1.6
S16_EQ7_R1M7 = 0.2
# --- Murphy et al. 2016 ----------------------------------------------------------------
M16_ALPHA = dict(r76=1.4, r75=1.4, rho7=0.15)
M16_BETA = dict(r65=2.0, rho6=0.5, rho7=0.5)
# --- Kumar & Roy 2018 ------------------------------------------------------------------
KR18_UNAMB = (0.53, -0.214)  # rho4 <= a rho7 + b
KR18_NEIGH = (0.35, -0.044)  # rho4 <= a rho6 + b
KR18_POT_A = (0.53, -0.125)  # rho4 <= a rho7 + b
KR18_POT_B = (1.08, -0.048)  # rho6 <= a rho7 + b
KR18_HALVES = tuple(range(2, 31))  # 5x5 .. 61x61
KR18_MIN_VALID_FRAC = 0.25
# --- Giglio et al. 2003 / 2016 ---------------------------------------------------------
G03_DAY = dict(t4_pot=310.0, dt_pot=10.0, rho086=0.3, t4_abs=360.0, bgfire_t4=325.0, bgfire_dt=20.0)
G03_NIGHT = dict(t4_pot=305.0, dt_pot=10.0, rho086=float("inf"), t4_abs=320.0, bgfire_t4=310.0,
                 bgfire_dt=10.0)
G03_HALVES = tuple(range(1, 11))  # 3x3 .. 21x21
G03_MIN_VALID = 8
G03_MIN_VALID_FRAC = 0.25

#: Reflectance sanity limits: a median above this is scaled DN, not reflectance.
_MAX_MEDIAN_REFLECTANCE = 1.5
#: Reflectance below this is a fill value / broken calibration, not a dark surface.
_MIN_REFLECTANCE = -0.05
_KELVIN_RANGE = (150.0, 400.0)
_EPS = 1e-6


def _ramp(x: torch.Tensor, lo: float, hi: float) -> torch.Tensor:
    """Giglio et al. 2003's ramp S(x; lo, hi): 0 below lo, 1 above hi, linear between."""
    return ((x - lo) / (hi - lo)).clamp(0.0, 1.0)


def _dilate(mask: torch.Tensor, half: int = 1) -> torch.Tensor:
    """Binary dilation by a (2h+1)^2 square (8-neighbourhood for h=1), on the mask's device."""
    k = 2 * half + 1
    return F.max_pool2d(mask[None, None].float(), k, stride=1, padding=half)[0, 0] > 0


def _integral_image(v: torch.Tensor) -> torch.Tensor:
    """(H, W) -> (H+1, W+1) float64 integral image with a zero first row and column.

    On a CPU numpy's cumsum writes straight into the padded buffer: the same sequential float64
    sums as torch's (bit-identical, ``tests/test_fire_rules.py``) in ~60 % of the time and
    without the pad copy - the integral images were ~40 % of ``fire-rules`` on a CPU."""
    if v.device.type != "cpu":
        return F.pad(v.double().cumsum(0).cumsum(1), (1, 0, 1, 0))
    h, w = v.shape
    ii = np.zeros((h + 1, w + 1), dtype=np.float64)
    np.cumsum(v.double().numpy(), axis=0, out=ii[1:, 1:])
    np.cumsum(ii[1:, 1:], axis=1, out=ii[1:, 1:])
    return torch.from_numpy(ii)


class _Integral:
    """Window sums of several masked fields at arbitrary pixels from integral images.

    Why: contextual tests need mean/std over 61 x 61 windows of *valid background only*; sums of
    x, x^2 and counts over the window give them exactly in O(1) per pixel (float64 cumsums keep
    the x^2 - mean^2 difference accurate), and evaluating only at candidate pixels keeps the
    growing-window variants (29 sizes) cheap.
    """

    def __init__(self, fields: dict[str, torch.Tensor]) -> None:
        self.h, self.w = next(iter(fields.values())).shape
        self.ii = {k: _integral_image(v) for k, v in fields.items()}

    def window(self, rows: torch.Tensor, cols: torch.Tensor, half: int | torch.Tensor
               ) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        """Sums of every field over the window of half-size ``half`` around (rows, cols), clipped
        to the image, and the clipped window area."""
        r0 = (rows - half).clamp(0, self.h)
        r1 = (rows + half + 1).clamp(0, self.h)
        c0 = (cols - half).clamp(0, self.w)
        c1 = (cols + half + 1).clamp(0, self.w)
        out = {k: ii[r1, c1] - ii[r0, c1] - ii[r1, c0] + ii[r0, c0] for k, ii in self.ii.items()}
        return out, ((r1 - r0) * (c1 - c0)).double()


def _masked_stats(integ: _Integral, rows: torch.Tensor, cols: torch.Tensor, half: int | torch.Tensor,
                  name: str) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(mean, population std, count) of field ``name`` over background pixels in the window."""
    s, _ = integ.window(rows, cols, half)
    n = s["n"]
    mean = s[name] / n.clamp(min=1.0)
    var = (s[name + "2"] / n.clamp(min=1.0) - mean * mean).clamp(min=0.0)
    return mean.float(), var.sqrt().float(), n


@dataclass(slots=True)
class _Result:
    """One algorithm's per-pixel outcome before the ensemble merge."""

    fire: torch.Tensor
    conf: torch.Tensor
    candidates: torch.Tensor  # pixels to keep out of background statistics
    water: torch.Tensor | None
    tests: list[str] = field(default_factory=list)


@register("fire-rules", "optical")
class FireRulesDetector:
    """Active-fire pixels from published reflective (and thermal) rules; see the module docstring."""

    modality: ClassVar[str] = "optical"
    version: str = "1.0.0"

    def __init__(self, device: torch.device | str | None = None, algorithm: str = "auto",
                 daytime: bool = True, **params: Any) -> None:
        """``algorithm``: one of :data:`ALGORITHMS` or ``"auto"`` (see :meth:`plan`);
        ``daytime`` selects Giglio's day or night thresholds (the reflective rules are daytime)."""
        if params:
            raise DetectorInputError(f"fire-rules: unknown parameter(s) {sorted(params)}; "
                                     "the published thresholds are not tunable")
        if algorithm != "auto" and algorithm not in ALGORITHMS:
            raise DetectorInputError(f"fire-rules: unknown algorithm {algorithm!r}; "
                                     f"choose one of {', '.join(('auto',) + ALGORITHMS)}")
        self.device = torch.device(device) if device is not None else torch.device("cpu")
        self.algorithm = algorithm
        self.daytime = bool(daytime)
        self.name = "fire-rules" if algorithm == "auto" else f"fire-rules:{algorithm}"

    # ------------------------------------------------------------------ planning
    @staticmethod
    def _nir_name(bands: Mapping[str, Any]) -> str | None:
        return next((n for n in NIR_NAMES if n in bands), None)

    def plan(self, band_names: Mapping[str, Any] | set[str]) -> list[str]:
        """Algorithms that will run on these bands.

        ``auto``: Schroeder 2016 (the Landsat FIRMS algorithm; its contextual test is what keeps
        hot soil and roofs out) united with Murphy 2016 (fixed SWIR ratios that also catch small,
        spectrally unambiguous fires below Schroeder's rho7 > 0.5, and that run on the reduced
        nir/swir16/swir22 band sets), plus Giglio's thermal test when ``mwir`` and ``lwir11`` are
        present. Kumar & Roy 2018 is selectable but not in ``auto``: its potential-fire test
        (rho6 <= 1.08 rho7 - 0.048) passes ordinary soil and leans entirely on the contextual test.
        """
        names = set(band_names)
        if self.algorithm != "auto":
            return [self.algorithm]
        plan: list[str] = []
        has_swir = {"swir16", "swir22"} <= names and self._nir_name(names) is not None
        if has_swir:
            plan += ["schroeder2016", "murphy2016"]
        if {"mwir", "lwir11"} <= names:
            plan.append("contextual_bt")
        if not plan:
            missing = sorted(({"swir16", "swir22", "nir08"} - names) if not has_swir else set())
            raise MissingBandError(
                f"fire-rules (auto) needs nir08 (or nir/nir09), swir16 and swir22 for the reflective "
                f"rules, or mwir and lwir11 for the thermal test; missing: {', '.join(missing)} "
                f"(have: {', '.join(sorted(names)) or 'none'})")
        return plan

    def required_overlap_px(self, pixel_size_m: float | tuple[float, float] = 30.0) -> int:
        """Total overlap between neighbouring tiles so every owned pixel sees its whole window.

        The pipeline gives each core pixel ``overlap // 2`` pixels of context, so this is twice
        the largest window half-size plus one pixel for the neighbour tests (Murphy beta, Kumar &
        Roy's 8-neighbours, water adjacency). Windows are in pixels, as published, so the pixel
        size does not change it.
        """
        algos = ALGORITHMS if self.algorithm == "auto" else (self.algorithm,)
        half = max(G03_HALVES[-1] if a == "contextual_bt" else
                   1 if a == "murphy2016" else S16_WINDOW_HALF for a in algos)
        # intensity always uses the 61 x 61 Schroeder background when swir22 is present
        half = max(half, S16_WINDOW_HALF)
        return 2 * (half + 1)

    # ------------------------------------------------------------------ input checks
    def _prepare(self, bands: Mapping[str, torch.Tensor], valid: torch.Tensor | None
                 ) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        """Move to device, check shapes/units, and fold non-finite or fill values into ``valid``."""
        if not isinstance(bands, Mapping) or not bands:
            raise DetectorInputError("fire-rules: bands must be a non-empty mapping name -> (H, W) tensor")
        out: dict[str, torch.Tensor] = {}
        shape: tuple[int, ...] | None = None
        for name, t in bands.items():
            if not isinstance(t, torch.Tensor):
                raise DetectorInputError(f"fire-rules: band {name!r} is {type(t).__name__}, not a torch.Tensor")
            if t.ndim != 2:
                raise DetectorInputError(f"fire-rules: band {name!r} must be (H, W), got shape {tuple(t.shape)}")
            if shape is None:
                shape = tuple(t.shape)
            elif tuple(t.shape) != shape:
                raise DetectorInputError(f"fire-rules: band {name!r} has shape {tuple(t.shape)}, "
                                         f"others {shape}")
            if t.is_complex() or t.dtype == torch.bool:
                raise DetectorInputError(f"fire-rules: band {name!r} has dtype {t.dtype}; expected real values")
            out[name] = t.to(self.device, torch.float32)
        if shape is None or min(shape) < 1:
            raise DetectorInputError(f"fire-rules: empty tile {shape}")
        if valid is None:
            ok = torch.ones(shape, dtype=torch.bool, device=self.device)
        else:
            if not isinstance(valid, torch.Tensor) or tuple(valid.shape) != shape:
                raise DetectorInputError(f"fire-rules: valid must be a bool tensor of shape {shape}")
            ok = valid.to(self.device).bool()
        bad = torch.zeros_like(ok)
        for name, t in out.items():
            bad |= ~torch.isfinite(t)
            if name in REFLECTIVE:
                bad |= t < _MIN_REFLECTANCE
        n_bad = int((bad & ok).sum())
        if n_bad:
            log.warning("fire-rules: %d pixels with NaN/inf or reflectance < %.2f treated as invalid",
                        n_bad, _MIN_REFLECTANCE)
        ok &= ~bad
        for name, t in out.items():
            self._check_units(name, t, ok)
            out[name] = torch.where(ok, t, torch.zeros_like(t))
        return out, ok

    @staticmethod
    def _check_units(name: str, t: torch.Tensor, ok: torch.Tensor) -> None:
        """Reject scaled DN / Celsius early: every threshold assumes reflectance 0..1 and kelvin."""
        step = max(1, int(max(t.shape) // 256))
        sample = t[::step, ::step][ok[::step, ::step]]
        if sample.numel() == 0:
            return
        med = float(sample.median())
        if name in REFLECTIVE and med > _MAX_MEDIAN_REFLECTANCE:
            raise DetectorInputError(
                f"fire-rules: band {name!r} has median {med:.4g}, which is not a reflectance (0..1); "
                "scaled digital numbers? (Sentinel-2 L1C/L2A: divide by 10000; Landsat C2: apply "
                "REFLECTANCE_MULT/ADD)")
        if name in THERMAL and not (_KELVIN_RANGE[0] <= med <= _KELVIN_RANGE[1]):
            raise DetectorInputError(f"fire-rules: band {name!r} has median {med:.4g}; thermal bands "
                                     "must be brightness temperature in kelvin")

    @staticmethod
    def _require(bands: Mapping[str, Any], algo: str, need: tuple[str, ...]) -> None:
        missing = [b for b in need if b not in bands]
        if missing:
            raise MissingBandError(f"fire-rules: algorithm {algo!r} needs band(s) {', '.join(missing)} "
                                   f"(have: {', '.join(sorted(bands))})")

    def _reflective(self, b: Mapping[str, torch.Tensor], algo: str
                    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, list[str]]:
        """(rho5, rho6, rho7, notes) with the NIR substitution made explicit."""
        nir = self._nir_name(b)
        need = tuple(x for x in ("swir16", "swir22") if x not in b)
        if nir is None or need:
            missing = (["nir08 (or nir/nir09)"] if nir is None else []) + list(need)
            raise MissingBandError(f"fire-rules: algorithm {algo!r} needs band(s) {', '.join(missing)} "
                                   f"(have: {', '.join(sorted(b))})")
        notes = [] if nir == "nir08" else [f"{algo}:rho5={nir}"]
        return b[nir], b["swir16"], b["swir22"], notes

    # ------------------------------------------------------------------ algorithms
    def _schroeder(self, b: Mapping[str, torch.Tensor], ok: torch.Tensor) -> _Result:
        r5, r6, r7, tests = self._reflective(b, "schroeder2016")
        r75 = r7 / r5.clamp(min=_EPS)
        r76 = r7 / r6.clamp(min=_EPS)
        d75 = r7 - r5
        eq1 = (r75 > S16_EQ1["r75"]) & (d75 > S16_EQ1["diff"]) & (r7 > S16_EQ1["rho7"])
        tests.append("schroeder2016:eq1")
        unamb = eq1
        if "coastal" in b:
            eq2 = (r6 > S16_EQ2["rho6"]) & (b["coastal"] < S16_EQ2["rho1"]) & (
                (r5 > S16_EQ2["rho5"]) | (r7 < S16_EQ2["rho7"]))
            unamb = unamb | eq2
            tests.append("schroeder2016:eq2")
        unamb &= ok
        potential = (r75 > S16_EQ3["r75"]) & (d75 > S16_EQ3["diff"]) & (r76 > S16_EQ6_R76) & ok & ~unamb
        water = None
        if all(k in b for k in ("coastal", "blue", "green", "red")):
            r1, r2, r3, r4 = b["coastal"], b["blue"], b["green"], b["red"]
            water = ((r4 > r5) & (r5 > r6) & (r6 > r7) & (r1 - r7 < S16_EQ7_R1M7)
                     & ((r3 > r2) | ((r1 > r2) & (r2 > r3) & (r3 > r4)))) & ok
            tests.append("schroeder2016:eq7-9(water)")
        bg = ok & ~unamb & ~potential & (r7 > 0)
        if water is not None:
            bg &= ~water
        conf = torch.zeros_like(r7)
        conf = torch.where(unamb, CONF_HIGH_MIN + (1 - CONF_HIGH_MIN) * _ramp(r7, 0.5, 1.0), conf)
        fire = unamb.clone()
        rows, cols = torch.nonzero(potential, as_tuple=True)
        if rows.numel():
            bgf = bg.double()
            integ = _Integral({"n": bgf, "r": r75 * bgf, "r2": (r75 * r75) * bgf,
                               "s": r7 * bgf, "s2": (r7 * r7) * bgf})
            m_r, s_r, n = _masked_stats(integ, rows, cols, S16_WINDOW_HALF, "r")
            m_s, s_s, _ = _masked_stats(integ, rows, cols, S16_WINDOW_HALF, "s")
            off_r = torch.clamp(S16_EQ4["k"] * s_r, min=S16_EQ4["floor"])
            off_s = torch.clamp(S16_EQ5["k"] * s_s, min=S16_EQ5["floor"])
            vr, vs = r75[rows, cols], r7[rows, cols]
            passed = (vr > m_r + off_r) & (vs > m_s + off_s) & (n > 0)
            margin = torch.minimum((vr - m_r - off_r) / off_r, (vs - m_s - off_s) / off_s)
            c = CONF_LOW_MAX + (CONF_HIGH_MIN - CONF_LOW_MAX - 1e-3) * _ramp(margin, 0.0, 1.0)
            fire[rows[passed], cols[passed]] = True
            conf[rows[passed], cols[passed]] = c[passed]
        tests.append("schroeder2016:eq3-6(contextual 61x61)")
        if water is not None:
            fire &= ~water
        return _Result(fire, torch.where(fire, conf, torch.zeros_like(conf)), unamb | potential, water, tests)

    def _murphy(self, b: Mapping[str, torch.Tensor], ok: torch.Tensor) -> _Result:
        r5, r6, r7, tests = self._reflective(b, "murphy2016")
        alpha = ((r7 / r6.clamp(min=_EPS) >= M16_ALPHA["r76"]) & (r7 / r5.clamp(min=_EPS) >= M16_ALPHA["r75"])
                 & (r7 >= M16_ALPHA["rho7"]) & ok)
        beta = ((r6 / r5.clamp(min=_EPS) >= M16_BETA["r65"]) & (r6 >= M16_BETA["rho6"])
                & (r7 >= M16_BETA["rho7"]) & ok)
        fire = alpha | (beta & _dilate(alpha))
        conf = torch.where(alpha, CONF_LOW_MAX + (1 - CONF_LOW_MAX) * _ramp(r7, M16_ALPHA["rho7"], 0.5),
                           torch.full_like(r7, CONF_HIGH_MIN))
        tests += ["murphy2016:alpha", "murphy2016:beta"]
        return _Result(fire, torch.where(fire, conf, torch.zeros_like(conf)), alpha | beta, None, tests)

    def _kumar_roy(self, b: Mapping[str, torch.Tensor], ok: torch.Tensor) -> _Result:
        self._require(b, "kumar_roy2018", ("red",))
        r5, r6, r7, tests = self._reflective(b, "kumar_roy2018")
        r4 = b["red"]
        unamb = (r4 <= KR18_UNAMB[0] * r7 + KR18_UNAMB[1]) & ok
        unamb |= _dilate(unamb) & (r4 <= KR18_NEIGH[0] * r6 + KR18_NEIGH[1]) & ok
        potential = (((r4 <= KR18_POT_A[0] * r7 + KR18_POT_A[1]) | (r6 <= KR18_POT_B[0] * r7 + KR18_POT_B[1]))
                     & ok & ~unamb)
        tests += ["kumar_roy2018:unambiguous", "kumar_roy2018:potential"]
        water = None
        if "blue" in b and "green" in b:
            water = (b["blue"] > b["green"]) & (b["green"] > r4) & (r4 > r5) & ok
            tests.append("kumar_roy2018:water")
        bg = ok & ~unamb & ~potential
        if water is not None:
            bg &= ~water
        r75 = r7 / r5.clamp(min=_EPS)
        conf = torch.where(unamb, CONF_HIGH_MIN + (1 - CONF_HIGH_MIN) * _ramp(r7, 0.5, 1.0), torch.zeros_like(r7))
        fire = unamb.clone()
        rows, cols = torch.nonzero(potential, as_tuple=True)
        if rows.numel():
            bgf = bg.double()
            integ = _Integral({"n": bgf, "r": r75 * bgf, "r2": (r75 * r75) * bgf,
                               "s": r7 * bgf, "s2": (r7 * r7) * bgf})
            half = torch.full_like(rows, -1)
            for h in KR18_HALVES:  # smallest window with >= 25 % valid background
                todo = half < 0
                if not bool(todo.any()):
                    break
                s, area = integ.window(rows[todo], cols[todo], h)
                good = s["n"] >= KR18_MIN_VALID_FRAC * area
                idx = torch.nonzero(todo, as_tuple=True)[0][good]
                half[idx] = h
            sel = half > 0
            rows, cols, half = rows[sel], cols[sel], half[sel]
            m_r, s_r, _ = _masked_stats(integ, rows, cols, half, "r")
            m_s, s_s, _ = _masked_stats(integ, rows, cols, half, "s")
            off_r = torch.clamp(S16_EQ4["k"] * s_r, min=S16_EQ4["floor"])
            off_s = torch.clamp(S16_EQ5["k"] * s_s, min=S16_EQ5["floor"])
            vr, vs = r75[rows, cols], r7[rows, cols]
            passed = (vr > m_r + off_r) & (vs > m_s + off_s)
            margin = torch.minimum((vr - m_r - off_r) / off_r, (vs - m_s - off_s) / off_s)
            c = CONF_LOW_MAX + (CONF_HIGH_MIN - CONF_LOW_MAX - 1e-3) * _ramp(margin, 0.0, 1.0)
            fire[rows[passed], cols[passed]] = True
            conf[rows[passed], cols[passed]] = c[passed]
        tests.append("kumar_roy2018:contextual(5x5..61x61)")
        if water is not None:
            fire &= ~water
        return _Result(fire, torch.where(fire, conf, torch.zeros_like(conf)), unamb | potential, water, tests)

    def _giglio(self, b: Mapping[str, torch.Tensor], ok: torch.Tensor) -> _Result:
        self._require(b, "contextual_bt", ("mwir", "lwir11"))
        p = G03_DAY if self.daytime else G03_NIGHT
        t4, t11 = b["mwir"], b["lwir11"]
        dt = t4 - t11
        tests = ["contextual_bt:potential", "contextual_bt:absolute", "contextual_bt:contextual"]
        potential = (t4 > p["t4_pot"]) & (dt > p["dt_pot"]) & ok
        if self.daytime:
            nir = "nir08" if "nir08" in b else ("nir" if "nir" in b else None)
            if nir is not None:
                potential &= b[nir] < p["rho086"]
                tests.append("contextual_bt:rho086<0.3")
        absolute = potential & (t4 > p["t4_abs"])
        bgfire = (t4 > p["bgfire_t4"]) & (dt > p["bgfire_dt"])
        bg = ok & ~bgfire
        conf = torch.zeros_like(t4)
        fire = absolute.clone()
        conf = torch.where(absolute, torch.full_like(t4, 1.0), conf)
        rows, cols = torch.nonzero(potential & ~absolute, as_tuple=True)
        if rows.numel():
            passed, c = self._giglio_context(t4, t11, bg, ok & bgfire, rows, cols)
            fire[rows[passed], cols[passed]] = True
            conf[rows[passed], cols[passed]] = c[passed]
        return _Result(fire, conf, potential | bgfire, None, tests)

    def _giglio_context(self, t4: torch.Tensor, t11: torch.Tensor, bg: torch.Tensor, bgfire: torch.Tensor,
                        rows: torch.Tensor, cols: torch.Tensor, chunk: int = 4096
                        ) -> tuple[torch.Tensor, torch.Tensor]:
        """Giglio's contextual tests with exact MAD, gathering each candidate's 21 x 21 window.

        Why gather instead of pooling: the mean absolute deviation around each pixel's own mean
        is not a box sum; gathering only the (few) candidates keeps it exact and vectorised.
        """
        H = G03_HALVES[-1]
        k = 2 * H + 1
        pad = (H, H, H, H)
        t4p = F.pad(t4, pad)
        t11p = F.pad(t11, pad)
        bgp = F.pad(bg.float(), pad) > 0
        bfp = F.pad(bgfire.float(), pad) > 0
        inimg = F.pad(torch.ones_like(t4), pad) > 0
        dy = torch.arange(-H, H + 1, device=t4.device)
        ring = torch.maximum(dy[:, None].abs(), dy[None, :].abs())  # Chebyshev radius, (k, k)
        ring_flat = ring.reshape(-1)
        passed_all, conf_all = [], []
        day = self.daytime
        for s in range(0, rows.numel(), chunk):
            r, c = rows[s:s + chunk] + H, cols[s:s + chunk] + H
            rr = (r[:, None] + dy[None, :])[:, :, None].expand(-1, k, k)
            cc = (c[:, None] + dy[None, :])[:, None, :].expand(-1, k, k)
            g = lambda a: a[rr, cc].reshape(r.numel(), -1)  # noqa: E731 - local gather helper
            w4, w11, wbg, wbf, win = g(t4p), g(t11p), g(bgp), g(bfp), g(inimg)
            wbg = wbg & (ring_flat > 0)[None, :]
            # smallest radius with >= 8 valid and >= 25 % of the (in-image) window valid
            chosen = torch.full((r.numel(),), -1, dtype=torch.long, device=t4.device)
            for h in G03_HALVES:
                inside = (ring_flat <= h)[None, :]
                n = (wbg & inside).sum(1)
                area = (win & inside).sum(1)
                good = (chosen < 0) & (n >= G03_MIN_VALID) & (n >= G03_MIN_VALID_FRAC * area)
                chosen = torch.where(good, torch.full_like(chosen, h), chosen)
            sel = (ring_flat[None, :] <= chosen.clamp(min=0)[:, None]) & wbg & (chosen[:, None] > 0)
            selw = sel.float()
            n = selw.sum(1).clamp(min=1)
            wdt = w4 - w11

            def mean_mad(x: torch.Tensor, m: torch.Tensor, cnt: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
                mu = (x * m).sum(1) / cnt
                return mu, ((x - mu[:, None]).abs() * m).sum(1) / cnt

            m4, d4 = mean_mad(w4, selw, n)
            m11, d11 = mean_mad(w11, selw, n)
            mdt, ddt = mean_mad(wdt, selw, n)
            bf = ((ring_flat[None, :] <= chosen.clamp(min=0)[:, None]) & wbf & (ring_flat > 0)[None, :]).float()
            nbf = bf.sum(1)
            _, d4f = mean_mad(w4, bf, nbf.clamp(min=1))
            d4f = torch.where(nbf > 0, d4f, torch.zeros_like(d4f))
            v4 = t4[rows[s:s + chunk], cols[s:s + chunk]]
            v11 = t11[rows[s:s + chunk], cols[s:s + chunk]]
            vdt = v4 - v11
            ok_bg = chosen > 0
            t1 = vdt > mdt + 3.5 * ddt
            t2 = vdt > mdt + 6.0
            t3 = v4 > m4 + 3.0 * d4
            t4_ = v11 > m11 + d11 - 4.0
            t5 = d4f > 5.0
            ok_ctx = t1 & t2 & t3 & ((t4_ | t5) if day else torch.ones_like(t1)) & ok_bg
            # Giglio 2003 confidence: C1 = S(T4; 310, 340), C2 = S(z4; 2.5, 6), C3 = S(zdT; 3, 6)
            z4 = (v4 - m4) / d4.clamp(min=1e-3)
            zdt = (vdt - mdt) / ddt.clamp(min=1e-3)
            c1 = _ramp(v4, 310.0, 340.0) if day else _ramp(v4, 305.0, 320.0)
            cc_ = (c1 * _ramp(z4, 2.5, 6.0) * _ramp(zdt, 3.0, 6.0)).clamp(min=0) ** (1.0 / 3.0)
            passed_all.append(ok_ctx)
            conf_all.append(cc_.clamp(min=1e-3))
        return torch.cat(passed_all), torch.cat(conf_all)

    # ------------------------------------------------------------------ main entry
    @torch.no_grad()
    def detect(self, bands: Mapping[str, torch.Tensor], *, pixel_size_m: float,
               valid: torch.Tensor | None = None) -> FireMap:
        """Fire pixels of one tile; ``tests_run`` lists every published test that could run."""
        try:
            ps = float(pixel_size_m)
        except (TypeError, ValueError):
            raise DetectorInputError(f"fire-rules: pixel_size_m must be a number, got {pixel_size_m!r}") from None
        if not (ps > 0 and ps < float("inf")):
            raise DetectorInputError(f"fire-rules: pixel_size_m must be > 0 and finite, got {pixel_size_m!r}")
        b, ok = self._prepare(bands, valid)
        plan = self.plan(b)
        runners = {"schroeder2016": self._schroeder, "murphy2016": self._murphy,
                   "kumar_roy2018": self._kumar_roy, "contextual_bt": self._giglio}
        results = [runners[a](b, ok) for a in plan]
        fire = torch.zeros_like(ok)
        conf = torch.zeros(ok.shape, dtype=torch.float32, device=self.device)
        candidates = torch.zeros_like(ok)
        water = torch.zeros_like(ok)
        tests: list[str] = []
        for res in results:
            fire |= res.fire
            conf = torch.maximum(conf, res.conf)
            candidates |= res.candidates
            if res.water is not None:
                water |= res.water
            tests += [t for t in res.tests if t not in tests]
        fire &= ok & ~water
        if bool(water.any()):
            # MODIS lowers confidence next to water (glint, coastal false alarms): cap at "low".
            near_water = _dilate(water) & fire
            conf = torch.where(near_water, conf.clamp(max=CONF_LOW_MAX - 1e-3), conf)
            tests.append("water-adjacency:low-confidence")
        conf = torch.where(fire, conf.clamp(1e-3, 1.0), torch.zeros_like(conf))
        intensity = self._intensity(b, ok, fire, candidates | fire, water)
        skipped = self._skipped(b, plan)
        log.info("fire-rules: %s on bands %s; tests run: %s%s; %d fire pixels", "+".join(plan),
                 ",".join(sorted(b)), ", ".join(tests),
                 f"; skipped (bands missing): {', '.join(skipped)}" if skipped else "", int(fire.sum()))
        return FireMap(mask=fire, confidence=conf, intensity=intensity, detector=self.name,
                       tests_run=tuple(tests))

    @staticmethod
    def _skipped(b: Mapping[str, Any], plan: list[str]) -> list[str]:
        out = []
        if "schroeder2016" in plan:
            if "coastal" not in b:
                out.append("schroeder2016:eq2 (needs coastal)")
            if not all(k in b for k in ("coastal", "blue", "green", "red")):
                out.append("schroeder2016:eq7-9 water (needs coastal, blue, green, red)")
        if "kumar_roy2018" in plan and not ("blue" in b and "green" in b):
            out.append("kumar_roy2018:water (needs blue, green)")
        return out

    def _intensity(self, b: Mapping[str, torch.Tensor], ok: torch.Tensor, fire: torch.Tensor,
                   exclude: torch.Tensor, water: torch.Tensor) -> torch.Tensor:
        """SWIR (else 4 um BT) excess of each fire pixel over its 61 x 61 non-fire, non-water background."""
        key = "swir22" if "swir22" in b else ("mwir" if "mwir" in b else None)
        out = torch.zeros(ok.shape, dtype=torch.float32, device=self.device)
        rows, cols = torch.nonzero(fire, as_tuple=True)
        if key is None or rows.numel() == 0:
            return out
        x = b[key]
        bg = (ok & ~exclude & ~water).double()
        integ = _Integral({"n": bg, "s": x * bg})  # the mean only: no squares needed
        sums, _ = integ.window(rows, cols, S16_WINDOW_HALF)
        n = sums["n"]
        mean = (sums["s"] / n.clamp(min=1.0)).float()
        if bool((n == 0).any()):  # no background in the window: fall back to the tile's
            tile_bg = x[bg > 0]
            fallback = float(tile_bg.median()) if tile_bg.numel() else 0.0
            mean = torch.where(n > 0, mean, torch.full_like(mean, fallback))
        out[rows, cols] = (x[rows, cols] - mean).clamp(min=0.0)
        return out
