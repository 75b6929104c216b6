"""Learned active-fire detector: a tiny fully-convolutional network on the two SWIR bands.

Why a model next to the published rules (:mod:`detectors.fire.rules`): the rules' fixed
thresholds (e.g. Schroeder's rho7 > 0.5 or R75 > 1.8) were chosen to keep commission errors
low on the whole globe and so they miss the weaker, sub-pixel flaming and smouldering edge of
a front. A small network that looks at a pixel *and its surroundings* can estimate the
background each pixel would have without fire and flag the fire-emitted excess, outlining the
whole front while still rejecting look-alikes.

Inputs - ``swir16`` and ``swir22`` only (in that order), top-of-atmosphere reflectance 0..1:

* These two bands exist with (almost) the same wavelengths on Landsat-8/9 OLI (B6, B7) and
  Sentinel-2 MSI (B11, B12), so one model serves both sensors and any reduced band set that
  keeps them (the real BC Sentinel-2 scene ships only B9, B11, B12).
* The fire signal lives in them: a 600-1200 K sub-pixel fire adds 4-20x more reflectance-
  equivalent signal at 2.2 um than at 1.6 um (Planck's law divided by the solar irradiance),
  whereas every look-alike is a *reflector* - bright roofs, hot bare soil, sun glint and cloud
  edges raise both SWIR bands by similar amounts (roof, soil, glint) or raise 1.6 um more
  (cloud). The ratio of the local excesses separates them without any visible band.
* NIR is deliberately not used. On Sentinel-2 the only NIR band in the reduced set is B9
  (945 nm), a water-vapour absorption band whose level depends on the atmosphere (about 0.14
  on our generated tiles, 0.47 median on the real BC scene): a model keyed to it would learn
  the generator's water vapour, not fires. Fire adds almost nothing at 0.86-0.95 um anyway.

Normalisation (inside the network, so the ONNX file carries it): inputs clamped to
[-0.05, 4]; features = s16, s22, s22 - s16, ln((s22 + 0.02) / (s16 + 0.02)), the pixel minus
its 15 x 15 mean in each band, the cover-matched excess s22 - s16 * mean15(s22) / mean15(s16)
and mean15(s22); reflectance-like features are multiplied by 5 (0.2 -> 1) (feature set ``v1``,
weights 1.0.x). Feature set ``v2`` (weights 1.1.x) adds three features scaled like the truth rule
of the generator (fire = swir22 excess >= max(0.04, 0.2 x background)): the excess over the
15 x 15 cover-matched background divided by max(0.04, 0.2 x that background), and the same with
a 5 x 5 background from which candidate fire pixels (excess > 0.02, dilated by 1 px) are masked
out - the thin front otherwise raises its own background - plus that masked excess itself. Then
three 3 x 3 convolutions (the middle one dilated by 2) and a 1 x 1 head; no down-sampling, so
any tile size works and the receptive field is fixed: 11 px (v1) or 14 px (v2) each side
(:data:`RECEPTIVE_HALF_BY_SET`; the weights' metadata names their set). Feature set ``v3``
(experimental, not shipped: on validation it did no better than v2 and its trap-only margin was
thin) adds the scaled excess over fire-masked backgrounds of four directional half-windows (min,
middle, max), for pixels at burn-scar and forest edges; receptive field 15 px.

Outputs. ``confidence`` is the network's fire probability (0 outside the mask); ``mask`` is
probability >= the threshold stored with the weights (chosen on validation seeds, see
``detectors/training/train_fire.py``); ``intensity`` is swir22 minus the mean swir22 of the
non-fire pixels in a 31 x 31 window - the same SWIR-excess proxy as the rules detector.

Weights ship in ``detectors/weights/fire_unet.pt`` (torch) and ``fire_unet.onnx``
(onnxruntime); both are checked against their sha256 before use (:class:`WeightsError`).
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from detectors.errors import DetectorInputError, MissingBandError, WeightsError
from detectors.registry import register
from detectors.types import FireMap
from detectors.windows import paste_windows, window_fraction, windows_from_blocks

log = logging.getLogger(__name__)

MODEL_NAME = "orbitwatch-fire-learned"
MODEL_VERSION = "1.1.2"  # 1.0.x: feature set v1; 1.1.x: v2 (1.1.2: 1.1.0 fine-tuned thrice, the shipped weights)
#: Input bands, in the network's channel order (stored in the ONNX metadata too).
BANDS: tuple[str, ...] = ("swir16", "swir22")
WEIGHTS_DIR = Path(__file__).resolve().parent.parent / "weights"
PT_FILE = WEIGHTS_DIR / "fire_unet.pt"
ONNX_FILE = WEIGHTS_DIR / "fire_unet.onnx"
SUMS_FILE = WEIGHTS_DIR / "SHA256SUMS"
ONNX_INPUT = "bands"
ONNX_OUTPUT = "fire_probability"

CONTEXT_KERNEL = 15  # background mean window (px)
INTENSITY_HALF = 15  # 31 x 31 background for the intensity proxy
MASKED_KERNEL = 5  # fire-masked background window of feature set v2 (px)
DIRECTIONAL_HALF = 3  # v3: four 3 x 7 half-windows (above, below, left, right) of a 7 x 7 square
#: Feature sets: ``v1`` (8 features, weights 1.0.x), ``v2`` (v1 + 3 truth-rule-scaled excesses,
#: 1.1.x) and ``v3`` (v2 + min / middle / max of 4 directional fire-masked backgrounds' scaled excess).
FEATURE_SETS: dict[str, int] = {"v1": 8, "v2": 11, "v3": 14}
DEFAULT_FEATURES = "v2"
#: Pixels each side that influence one output pixel, per feature set: v1 7 (15 x 15 mean) + 1 + 2 + 1
#: (convs); v2 adds a fire mask dilated by 1 px and a 5 x 5 masked mean: 7 + 1 + 2, then the convs.
RECEPTIVE_HALF_BY_SET: dict[str, int] = {"v1": CONTEXT_KERNEL // 2 + 4,
                                         "v2": CONTEXT_KERNEL // 2 + 1 + MASKED_KERNEL // 2 + 4,
                                         "v3": CONTEXT_KERNEL // 2 + 1 + DIRECTIONAL_HALF + 4}
RECEPTIVE_HALF = RECEPTIVE_HALF_BY_SET[DEFAULT_FEATURES]
_NORM_V1 = ("clamp(-0.05, 4); features [s16, s22, s22-s16, ln((s22+0.02)/(s16+0.02)), "
            "s16-mean15(s16), s22-mean15(s22), s22-s16*(mean15(s22)+0.01)/(mean15(s16)+0.01), mean15(s22)]; "
            "reflectance features x5")
NORMALISATION_BY_SET: dict[str, str] = {
    "v1": _NORM_V1 + "; learned affine per feature (batch-norm, eval mode)",
    "v2": _NORM_V1 + "; plus, with bg15 = s16*(mean15(s22)+0.01)/(mean15(s16)+0.01): "
          "q15 = clamp((s22-bg15)/max(0.04, 0.2*bg15), -5, 10); candidates s22-bg15 > 0.02 dilated 3x3 "
          "are masked out of 5x5 means m16, m22, bg5 = s16*(m22+0.01)/(m16+0.01): "
          "q5 = clamp((s22-bg5)/max(0.04, 0.2*bg5), -5, 10), 5*(s22-bg5); learned affine per feature "
          "(batch-norm, eval mode)",
}
NORMALISATION_BY_SET["v3"] = NORMALISATION_BY_SET["v2"].replace(
    "; learned affine per feature", "; plus, with the same candidate mask, cover-matched backgrounds from 4 "
    "masked 3x7 half-windows of a 7x7 square (above, below, left, right): qd = clamp((s22-bgd)/max(0.04, "
    "0.2*bgd), -5, 10) (q5 where a half-window is all masked); features min, mean of middle two, max of qd; "
    "learned affine per feature")
NORMALISATION = NORMALISATION_BY_SET[DEFAULT_FEATURES]
_MAX_MEDIAN_REFLECTANCE = 1.5
_MIN_REFLECTANCE = -0.05
_CHUNK = 1 << 20


def _box_sum(x: torch.Tensor, half: int, dim: int, acc: torch.dtype = torch.float64
             ) -> tuple[torch.Tensor, torch.Tensor]:
    """Sum over a (2 half + 1) window along ``dim``, clipped to the array, by a float64 running
    sum c: sum[i] = c[min(i + half, n - 1)] - c[i - half - 1] (c[-1] = 0), written region by
    region; and the number of pixels each clipped window holds."""
    n = x.shape[dim]
    c = torch.cumsum(x.to(acc), dim=dim)
    out = torch.empty_like(c)
    hi = min(half, n - 1)  # i in [0, h]: nothing to subtract; c[i + h] while inside, then c[n - 1]
    inside = max(0, min(hi, n - 1 - half) + 1)
    if inside:
        out.narrow(dim, 0, inside).copy_(c.narrow(dim, half, inside))
    if hi + 1 > inside:
        out.narrow(dim, inside, hi + 1 - inside).copy_(
            c.narrow(dim, n - 1, 1).expand_as(out.narrow(dim, inside, hi + 1 - inside)))
    if n > half + 1:  # i in [h + 1, n): c[min(i + h, n - 1)] - c[i - h - 1]
        m = n - half - 1
        top = min(m, max(0, n - 2 * half - 1))  # i + h still inside
        if top:
            torch.sub(c.narrow(dim, 2 * half + 1, top), c.narrow(dim, 0, top), out=out.narrow(dim, half + 1, top))
        if m > top:
            last = c.narrow(dim, n - 1, 1)
            torch.sub(last.expand_as(out.narrow(dim, half + 1 + top, m - top)), c.narrow(dim, top, m - top),
                      out=out.narrow(dim, half + 1 + top, m - top))
    i = torch.arange(n, device=x.device)
    cnt = ((i + half + 1).clamp(max=n) - (i - half).clamp(min=0)).to(acc)
    return out, cnt


def box_mean(x: torch.Tensor, k: int, count_include_pad: bool = True, acc: torch.dtype = torch.float64
             ) -> torch.Tensor:
    """``F.avg_pool2d(x, k, stride=1, padding=k // 2, count_include_pad=...)`` of a (B, C, H, W) tensor
    from running sums.

    Why: torch's CPU average pool costs k^2 per pixel (a 15 x 15 window: 225 adds, 31 x 31: 961)
    and the pools were most of a ``fire-learned`` tile on a CPU; running sums cost the same for
    every window size. float64 sums (``acc``) keep the result equal to the pool's to float32
    rounding; float32 ones are ~1e-4 off over a 2048 px tile, enough for a prescreen."""
    h = k // 2
    if torch.onnx.is_in_onnx_export():  # the exported graph keeps the pool (ONNX AveragePool), whose
        # result this equals; the slice writes below do not trace into a graph
        return F.avg_pool2d(x, k, stride=1, padding=h, count_include_pad=count_include_pad)
    rows, nr = _box_sum(x, h, -2, acc)
    both, nc = _box_sum(rows, h, -1, acc)
    n = float(k * k) if count_include_pad else nr[:, None] * nc[None, :]
    return (both / n).to(x.dtype)


#: The cascade (see :meth:`_LearnedFireBase.fire_probability`): blocks of this many pixels are worth
#: the network when one of their pixels has a swir22 excess over its 15 x 15 cover-matched
#: background of at least :data:`PRESCREEN_EXCESS` (reflectance). The generator's fire rule is
#: an excess >= max(0.04, 0.2 x background), the network's own first features are this excess.
CASCADE_BLOCK = 32
#: Chosen on validation by the rule written in ``benchmarks/experiments/try_fire_cascade.py`` (the
#: highest candidate whose fire masks equal the full pass's on every tile): 0.08 - identical on
#: the 40 validation tiles (seeds 5000-5019, 5100-5119) and the real Sentinel-2 scene, the network
#: on 10 % of the pixels (36 % at most), 8.4 vs 55.5 CPU seconds with the intensity background also windowed
#: (``benchmarks/results/fire_cascade_validation.json``). A fire front's excess is far above it;
#: its weak edge pixels lie in the blocks (and the one-block ring) its core marks.
PRESCREEN_EXCESS = 0.08


class FireNet(nn.Module):
    """~12k-parameter fully-convolutional fire/no-fire network (see the module docstring).

    ``forward`` returns logits (training uses them with BCE); :class:`FireProb` wraps it with
    the sigmoid for export and inference.
    """

    def __init__(self, width: int = 24, feature_set: str = "v1") -> None:
        super().__init__()
        if feature_set not in FEATURE_SETS:
            raise WeightsError(f"fire-learned: unknown feature set {feature_set!r} (known: {', '.join(FEATURE_SETS)})")
        self.width = width
        self.feature_set = feature_set
        n_in = FEATURE_SETS[feature_set]
        self.norm = nn.BatchNorm2d(n_in)
        self.body = nn.Sequential(
            nn.Conv2d(n_in, width, 3, padding=1), nn.ReLU(inplace=True),
            nn.Conv2d(width, width, 3, padding=2, dilation=2), nn.ReLU(inplace=True),
            nn.Conv2d(width, width, 3, padding=1), nn.ReLU(inplace=True),
            nn.Conv2d(width, 1, 1),
        )

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 2, H, W) reflectance [swir16, swir22] -> (B, n, H, W) features of this net's set."""
        if self.feature_set == "v3":
            return self.features_v3(x)
        return self.features_v2(x) if self.feature_set == "v2" else self.features_v1(x)

    @staticmethod
    def features_v3(x: torch.Tensor) -> torch.Tensor:
        """v2 plus directional backgrounds: at a burn-scar or forest edge the square 5 x 5 background
        mixes two covers; the half-window on the pixel's own side does not. The scaled excess over
        the fire-masked cover-matched background of each of 4 half-windows (3 x 7, above / below /
        left / right), sorted: min, mean of the middle two, max. (B, 14, H, W)."""
        v2 = FireNet.features_v2(x, with_keep=True)
        base, q5, keep = v2[:, :11], v2[:, 9:10], v2[:, 11:12]
        x = x.clamp(-0.05, 4.0)
        s16, s22 = x[:, 0:1], x[:, 1:2]
        h = DIRECTIONAL_HALF
        k = 2 * h + 1
        ker = torch.zeros(4, 1, k, k, dtype=x.dtype, device=x.device)
        ker[0, 0, :h, :] = 1.0  # above
        ker[1, 0, h + 1:, :] = 1.0  # below
        ker[2, 0, :, :h] = 1.0  # left
        ker[3, 0, :, h + 1:] = 1.0  # right
        n = F.conv2d(keep, ker, padding=h)
        m16 = F.conv2d(s16 * keep, ker, padding=h) / n.clamp(min=1e-3)
        m22 = F.conv2d(s22 * keep, ker, padding=h) / n.clamp(min=1e-3)
        bgd = s16 * (m22 + 0.01) / (m16 + 0.01)
        qd = ((s22 - bgd) / torch.clamp(0.2 * bgd, min=0.04)).clamp(-5.0, 10.0)
        qd = torch.where(n > 0.5, qd, q5.expand_as(qd))
        srt = torch.sort(qd, dim=1).values
        return torch.cat([base, srt[:, 0:1], 0.5 * (srt[:, 1:2] + srt[:, 2:3]), srt[:, 3:4]], dim=1)

    @staticmethod
    def features_v2(x: torch.Tensor, with_keep: bool = False) -> torch.Tensor:
        """v1 plus the swir22 excess over a cover-matched background scaled like the truth rule
        (excess / max(0.04, 0.2 * background)): once with the 15 x 15 background, once with a
        5 x 5 background from which candidate fire pixels (and their PSF halo) are masked out, so
        the thin front does not raise its own background. (B, 11, H, W)."""
        x = x.clamp(-0.05, 4.0)
        s16, s22 = x[:, 0:1], x[:, 1:2]
        k = CONTEXT_KERNEL
        a16 = box_mean(s16, k, count_include_pad=False)
        a22 = box_mean(s22, k, count_include_pad=False)
        base = FireNet.features_v1(x, (a16, a22))  # the same 15 x 15 means, made once
        bg15 = s16 * (a22 + 0.01) / (a16 + 0.01)
        q15 = ((s22 - bg15) / torch.clamp(0.2 * bg15, min=0.04)).clamp(-5.0, 10.0)
        cand = ((s22 - bg15) > 0.02).to(x.dtype)
        keep = 1.0 - F.max_pool2d(cand, 3, stride=1, padding=1)
        km = MASKED_KERNEL
        n = box_mean(keep, km).clamp(min=1e-3)
        m16 = box_mean(s16 * keep, km) / n
        m22 = box_mean(s22 * keep, km) / n
        bg5 = s16 * (m22 + 0.01) / (m16 + 0.01)
        e5 = s22 - bg5
        q5 = (e5 / torch.clamp(0.2 * bg5, min=0.04)).clamp(-5.0, 10.0)
        if with_keep:  # for v3: the non-candidate mask as a 12th channel
            return torch.cat([base, q15, q5, e5 * 5.0, keep], dim=1)
        return torch.cat([base, q15, q5, e5 * 5.0], dim=1)

    def load_from_smaller(self, state: Mapping[str, torch.Tensor]) -> None:
        """Warm start from a checkpoint of a feature set whose features are a prefix of this one's
        (v2 -> v3): shared weights copied, the new input channels start with zero first-layer
        weights (so the warm-started net computes exactly the old function) and identity norm."""
        own = self.state_dict()
        for key, val in state.items():
            cur = own[key]
            if cur.shape == val.shape:
                own[key] = val.clone()
            elif key.startswith("norm.") and cur.ndim == 1:
                own[key][: val.shape[0]] = val
            elif key == "body.0.weight":
                own[key].zero_()
                own[key][:, : val.shape[1]] = val
            else:
                raise WeightsError(f"fire-learned: cannot warm-start {key}: {tuple(val.shape)} -> {tuple(cur.shape)}")
        self.load_state_dict(own)

    @staticmethod
    def features_v1(x: torch.Tensor, means: tuple[torch.Tensor, torch.Tensor] | None = None) -> torch.Tensor:
        """(B, 2, H, W) reflectance [swir16, swir22] -> (B, 8, H, W) brightness-robust features;
        ``means``: the bands' 15 x 15 means when the caller has them already."""
        x = x.clamp(-0.05, 4.0)
        s16, s22 = x[:, 0:1], x[:, 1:2]
        k = CONTEXT_KERNEL
        if means is None:
            means = (box_mean(s16, k, count_include_pad=False), box_mean(s22, k, count_include_pad=False))
        a16, a22 = means
        ratio_bg = (a22 + 0.01) / (a16 + 0.01)
        feats = [s16, s22, s22 - s16, s16 - a16, s22 - a22, s22 - s16 * ratio_bg, a22]
        out = torch.cat([f * 5.0 for f in feats[:3]]
                        + [torch.log((s22 + 0.02) / (s16 + 0.02))]
                        + [f * 5.0 for f in feats[3:]], dim=1)
        return out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(self.norm(self.features(x)))


class FireProb(nn.Module):
    """FireNet + sigmoid: (batch, 2, height, width) -> (batch, 1, height, width) probability."""

    def __init__(self, net: FireNet) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.net(x))


# ---------------------------------------------------------------------------- weights
def sha256_file(path: Path) -> str:
    """Hex sha256 of a file, read in chunks (weights may be read on a small flight computer)."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(_CHUNK), b""):
            h.update(chunk)
    return h.hexdigest()


def expected_sha256(path: Path) -> str | None:
    """The recorded checksum of ``path``: its line in the folder's ``SHA256SUMS`` (``sha256sum``
    format), else the first word of ``<file>.sha256``; None when neither records it."""
    path = Path(path)
    sums = path.parent / "SHA256SUMS"
    if sums.is_file():
        for line in sums.read_text().splitlines():
            parts = line.strip().split()
            if len(parts) >= 2 and parts[-1].lstrip("*") == path.name:
                return parts[0].lower()
    side = path.with_name(path.name + ".sha256")
    if side.is_file():
        words = side.read_text().split()
        if words:
            return words[0].lower()
    return None


def verify_weights(path: Path, sha256: str | None = None) -> Path:
    """Refuse weights that are missing, unrecorded or whose sha256 differs from the record.

    Why strict: a flipped bit in an uplinked weight file silently changes what fires are
    reported; the checksum turns that into a loud error before anything runs.
    """
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"fire-learned: weights file {path} does not exist "
                           "(run `python -m detectors.training.train_fire --seed 0`)")
    want = (sha256 or expected_sha256(path) or "").lower()
    if not want:
        raise WeightsError(f"fire-learned: no sha256 recorded for {path} (pass sha256=..., or add it to "
                           f"{path.parent / 'SHA256SUMS'} or {path.name}.sha256)")
    got = sha256_file(path)
    if got != want:
        raise WeightsError(f"fire-learned: sha256 mismatch for {path}: expected {want}, got {got}")
    return path


def load_checkpoint(path: Path, sha256: str | None = None) -> tuple[FireNet, dict[str, Any]]:
    """Verified FireNet (eval mode, CPU) and its metadata dict from a ``.pt`` checkpoint."""
    verify_weights(path, sha256)
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
        meta = dict(ckpt["meta"])
        net = FireNet(width=int(meta.get("width", 24)), feature_set=str(meta.get("features", "v1")))
        net.load_state_dict(ckpt["state_dict"])
    except Exception as exc:  # unreadable / wrong layout: still a weights problem for the caller
        raise WeightsError(f"fire-learned: cannot load {path}: {exc}") from exc
    net.eval()
    return net, meta


# ---------------------------------------------------------------------------- onnxruntime
def onnx_metadata(path: Path) -> dict[str, str]:
    """Custom metadata (name, version, bands, normalisation, training data, date...) of an ONNX file."""
    from detectors import onnx_runtime

    return onnx_runtime.onnx_metadata(path)


# ---------------------------------------------------------------------------- detectors
def _masked_mean(x: torch.Tensor, keep: torch.Tensor, half: int) -> torch.Tensor:
    """Mean of ``x`` over ``keep`` pixels in a (2 half + 1)^2 window (0 where none is kept)."""
    k = 2 * half + 1
    w = keep.float()[None, None]
    s = box_mean((x * keep.float())[None, None], k)
    n = box_mean(w, k)
    return (s / n.clamp(min=1e-6))[0, 0] * (n[0, 0] > 0)


class _LearnedFireBase:
    """Input checks and post-processing shared by the torch and onnxruntime back-ends."""

    modality: ClassVar[str] = "optical"
    version: str = MODEL_VERSION
    name: str = "fire-learned"

    def __init__(self, device: torch.device | str | None, threshold: float | None,
                 meta: Mapping[str, Any]) -> None:
        self.device = torch.device(device) if device is not None else torch.device("cpu")
        self.meta = dict(meta)
        self.version = str(meta.get("version") or MODEL_VERSION)
        thr = float(meta.get("threshold", 0.5)) if threshold is None else float(threshold)
        if not (0.0 < thr < 1.0):
            raise DetectorInputError(f"{self.name}: threshold must be in (0, 1), got {threshold!r}")
        self.threshold = thr
        fs = str(meta.get("features") or "v1")
        self.receptive_half = int(meta.get("receptive_half_px") or RECEPTIVE_HALF_BY_SET.get(fs, RECEPTIVE_HALF))
        self.bands: tuple[str, ...] = tuple(meta.get("bands", BANDS))
        if self.bands != BANDS:
            raise WeightsError(f"{self.name}: weights expect bands {self.bands}, this code feeds {BANDS}")

    def required_overlap_px(self, pixel_size_m: float | tuple[float, float] = 30.0) -> int:
        """Total overlap between neighbouring tiles so each owned pixel sees its full context.

        The network's receptive field (11 px each side) and the intensity background (15 px)
        are fixed in pixels, so the pixel size does not change it; the pipeline gives each core
        pixel ``overlap // 2`` of context, hence twice the larger half-width.
        """
        return 2 * max(self.receptive_half, INTENSITY_HALF)

    def _prepare(self, bands: Mapping[str, torch.Tensor], valid: torch.Tensor | None
                 ) -> tuple[torch.Tensor, torch.Tensor]:
        """(1, 2, H, W) float32 input on the device and the bool (H, W) valid mask."""
        if not isinstance(bands, Mapping):
            raise DetectorInputError(f"{self.name}: bands must be a mapping name -> (H, W) tensor")
        missing = [b for b in self.bands if b not in bands]
        if missing:
            raise MissingBandError(f"{self.name}: missing band(s) {', '.join(missing)}; the model needs "
                                   f"{', '.join(self.bands)} (have: {', '.join(sorted(bands)) or 'none'})")
        chans = []
        shape: tuple[int, ...] | None = None
        for name in self.bands:
            t = bands[name]
            if not isinstance(t, torch.Tensor):
                raise DetectorInputError(f"{self.name}: band {name!r} is {type(t).__name__}, not a torch.Tensor")
            if t.ndim != 2 or min(t.shape) < 1:
                raise DetectorInputError(f"{self.name}: band {name!r} must be a non-empty (H, W), "
                                         f"got shape {tuple(t.shape)}")
            if t.is_complex() or t.dtype == torch.bool:
                raise DetectorInputError(f"{self.name}: band {name!r} has dtype {t.dtype}; expected real values")
            if shape is None:
                shape = tuple(t.shape)
            elif tuple(t.shape) != shape:
                raise DetectorInputError(f"{self.name}: band {name!r} has shape {tuple(t.shape)}, others {shape}")
            chans.append(t.to(self.device, torch.float32))
        if shape is None:  # only reachable with an empty band list in the weights' metadata
            raise WeightsError(f"{self.name}: the weights name no input bands")
        x = torch.stack(chans)
        if valid is None:
            ok = torch.ones(shape, dtype=torch.bool, device=self.device)
        else:
            if not isinstance(valid, torch.Tensor) or tuple(valid.shape) != shape:
                raise DetectorInputError(f"{self.name}: valid must be a bool tensor of shape {shape}")
            ok = valid.to(self.device).bool()
        bad = (~torch.isfinite(x) | (x < _MIN_REFLECTANCE)).any(0)
        n_bad = int((bad & ok).sum())
        if n_bad:
            log.warning("%s: %d pixels with NaN/inf or reflectance < %.2f treated as invalid",
                        self.name, n_bad, _MIN_REFLECTANCE)
        ok = ok & ~bad
        sample = x[:, ok] if bool(ok.any()) else x.new_zeros((len(self.bands), 0))
        if sample.shape[1]:
            med = sample[:, :: max(1, sample.shape[1] // 65536)].median(dim=1).values
            for name, m in zip(self.bands, med.tolist()):
                if m > _MAX_MEDIAN_REFLECTANCE:
                    raise DetectorInputError(
                        f"{self.name}: band {name!r} has median {m:.4g}, not a reflectance (0..1); scaled "
                        "digital numbers? (Sentinel-2 L1C/L2A: divide by 10000)")
        x = torch.where(ok[None], x, torch.zeros_like(x))
        return x[None], ok

    def _probability(self, x: torch.Tensor) -> torch.Tensor:  # (1, 2, H, W) -> (H, W)
        raise NotImplementedError

    #: The network only on prescreened windows (None: on CPU devices, where the network is most of a
    #: tile; off on a GPU, where the full pass is cheaper than the bookkeeping).
    cascade: bool | None = None
    #: Share of the tile's pixels the network saw in the last :meth:`fire_probability`.
    last_window_fraction: float = 1.0

    @property
    def cascade_on(self) -> bool:
        return self.device.type == "cpu" if self.cascade is None else bool(self.cascade)

    def _set_cascade(self, cascade: Any) -> None:
        if cascade is not None and not isinstance(cascade, bool):
            raise DetectorInputError(f"{self.name}: cascade must be true, false or none (auto), got {cascade!r}")
        self.cascade = cascade

    def fire_probability(self, x: torch.Tensor) -> torch.Tensor:
        """(1, 2, H, W) prepared tile -> (H, W) fire probability, through the cascade when it is on.

        The cascade: blocks holding a pixel whose swir22 excess over its cover-matched 15 x 15
        background reaches :data:`PRESCREEN_EXCESS`, dilated by one block, are cut into disjoint
        windows (:func:`detectors.windows.windows_from_blocks`); each is run with ``receptive_half
        + 2`` pixels of context and its own part pasted; the probability is 0 elsewhere. The
        network sees nothing beyond its receptive field, so inside a window the result is the full
        pass's (to float rounding); what the cascade can change is only a fire pixel in a block
        the prescreen left out (validated: :data:`PRESCREEN_EXCESS`)."""
        return self._probability_windows(x)[0]

    def _probability_windows(self, x: torch.Tensor) -> tuple[torch.Tensor, list[tuple[int, int, int, int]] | None]:
        """:meth:`fire_probability` and its windows (None: the full pass), which also bound where
        :meth:`detect` needs an intensity background."""
        if not self.cascade_on:
            self.last_window_fraction = 1.0
            return self._probability(x), None
        h, w = int(x.shape[-2]), int(x.shape[-1])
        s16, s22 = x[:, 0:1].clamp(-0.05, 4.0), x[:, 1:2].clamp(-0.05, 4.0)
        a16 = box_mean(s16, CONTEXT_KERNEL, count_include_pad=False, acc=torch.float32)  # a prescreen only
        a22 = box_mean(s22, CONTEXT_KERNEL, count_include_pad=False, acc=torch.float32)
        excess = s22 - s16 * (a22 + 0.01) / (a16 + 0.01)
        marked = F.max_pool2d((excess >= PRESCREEN_EXCESS).to(torch.float32), CASCADE_BLOCK, CASCADE_BLOCK,
                              ceil_mode=True)
        marked = F.max_pool2d(marked, 3, 1, 1)[0, 0].cpu().numpy() > 0
        windows = windows_from_blocks(marked, CASCADE_BLOCK, (h, w))
        self.last_window_fraction = window_fraction(windows, (h, w))
        prob = paste_windows(torch.zeros((h, w), dtype=torch.float32, device=self.device), windows,
                             self.receptive_half + 2, lambda a0, a1, b0, b1: self._probability(
                                 x[..., a0:a1, b0:b1]).to(self.device, torch.float32))
        return prob, windows

    @torch.no_grad()
    def detect(self, bands: Mapping[str, torch.Tensor], *, pixel_size_m: float,
               valid: torch.Tensor | None = None) -> FireMap:
        """Fire pixels of one tile. ``pixel_size_m`` is checked but not used: the model was
        trained on 15-40 m pixels and works in pixel units, like the published rules."""
        try:
            ps = float(pixel_size_m)
        except (TypeError, ValueError):
            raise DetectorInputError(f"{self.name}: pixel_size_m must be a number, got {pixel_size_m!r}") from None
        if not (0.0 < ps < float("inf")):
            raise DetectorInputError(f"{self.name}: pixel_size_m must be > 0 and finite, got {pixel_size_m!r}")
        if not (10.0 <= ps <= 60.0):
            log.warning("%s: pixel size %.1f m is outside the 15-40 m the model was trained on", self.name, ps)
        x, ok = self._prepare(bands, valid)
        prob, windows = self._probability_windows(x)
        prob = prob.to(self.device, torch.float32)
        fire = (prob >= self.threshold) & ok
        conf = torch.where(fire, prob, torch.zeros_like(prob))
        s22 = x[0, 1]
        keep = ok & ~fire
        if windows is None:
            bg = _masked_mean(s22, keep, INTENSITY_HALF)
        else:  # every fire pixel lies in a window: the background only there, with its own context
            bg = paste_windows(torch.zeros_like(s22), windows, INTENSITY_HALF, lambda a0, a1, b0, b1: _masked_mean(
                s22[a0:a1, b0:b1], keep[a0:a1, b0:b1], INTENSITY_HALF))
        intensity = torch.where(fire, (s22 - bg).clamp(min=0.0), torch.zeros_like(s22))
        log.info("%s: %d fire pixels (threshold %.3f)", self.name, int(fire.sum()), self.threshold)
        return FireMap(mask=fire, confidence=conf, intensity=intensity, detector=self.name,
                       tests_run=(f"{MODEL_NAME} {self.version} on {'+'.join(self.bands)}",))

    def predict_proba(self, x: torch.Tensor) -> torch.Tensor:
        """Raw batch inference: (B, 2, H, W) reflectance in :data:`BANDS` order -> (B, H, W)."""
        if not isinstance(x, torch.Tensor) or x.ndim != 4 or x.shape[1] != len(self.bands):
            raise DetectorInputError(f"{self.name}: expected (B, {len(self.bands)}, H, W), got "
                                     f"{tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__}")
        return self._batch_probability(x.to(torch.float32))

    def _batch_probability(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError


@register("fire-learned", "optical")
class LearnedFireDetector(_LearnedFireBase):
    """The fire network run by torch on ``device`` (see the module docstring)."""

    name = "fire-learned"

    def __init__(self, device: torch.device | str | None = None, weights: str | Path | None = None,
                 *, sha256: str | None = None, threshold: float | None = None,
                 cascade: bool | None = None) -> None:
        """``weights``: a ``.pt`` checkpoint (default: the shipped one), verified against ``sha256``
        or its recorded checksum; ``threshold``: override the probability cut stored with it;
        ``cascade``: the network only on prescreened windows (:meth:`fire_probability`; None: on
        CPU devices)."""
        net, meta = load_checkpoint(Path(weights) if weights is not None else PT_FILE, sha256)
        super().__init__(device, threshold, meta)
        self._set_cascade(cascade)
        self.model = FireProb(net).to(self.device).eval()
        # --- radiation hardening hook (detectors/integrity.py): live weights re-hashed every few
        # batches; a bit flip is restored from the golden copy, else from the verified file.
        from detectors.integrity import WeightGuard

        wpath = Path(weights) if weights is not None else PT_FILE
        self.integrity = WeightGuard(self.model, name=self.name,
                                     reload=lambda: FireProb(load_checkpoint(wpath, sha256)[0]))

    def _batch_probability(self, x: torch.Tensor) -> torch.Tensor:
        self.integrity.tick()  # radiation hardening hook
        with torch.no_grad():
            return self.model(x.to(self.device))[:, 0]

    def _probability(self, x: torch.Tensor) -> torch.Tensor:
        return self._batch_probability(x)[0]


@register("fire-learned-onnx", "optical")
class LearnedFireOnnxDetector(_LearnedFireBase):
    """The same network exported to ONNX, run by onnxruntime (TensorRT / CUDA / CPU)."""

    name = "fire-learned-onnx"

    def __init__(self, device: torch.device | str | None = None, weights: str | Path | None = None,
                 *, sha256: str | None = None, threshold: float | None = None,
                 cascade: bool | None = None) -> None:
        """``weights``: an ``.onnx`` file (default: the shipped one), verified like the ``.pt``;
        band order, threshold and version come from its metadata; ``cascade``: as for ``fire-learned``."""
        from detectors.onnx_runtime import guarded_session, session_metadata

        path = verify_weights(Path(weights) if weights is not None else ONNX_FILE, sha256)
        # radiation hardening hook (detectors/integrity.py): the session rebuilt from its verified
        # bytes on schedule, since onnxruntime's copy of the weights cannot be hashed
        self.sessions = guarded_session(path, torch.device(device) if device is not None else torch.device("cpu"),
                                        self.name, sha256)
        md = session_metadata(self.session)
        meta: dict[str, Any] = {"bands": tuple(b for b in md.get("bands", "").split(",") if b),
                                "threshold": float(md.get("threshold", "0.5")), "version": md.get("version"),
                                "features": md.get("features", "v1"), "receptive_half_px": md.get("receptive_half_px")}
        super().__init__(device, threshold, meta)
        self._set_cascade(cascade)

    @property
    def session(self) -> Any:
        """The live onnxruntime session (rebuilt on schedule by :attr:`sessions`)."""
        return self.sessions.session

    def _batch_probability(self, x: torch.Tensor) -> torch.Tensor:
        arr = x.detach().cpu().contiguous().numpy()
        self.sessions.tick()
        out = self.session.run([ONNX_OUTPUT], {ONNX_INPUT: arr})[0]
        return torch.from_numpy(out)[:, 0]

    def _probability(self, x: torch.Tensor) -> torch.Tensor:
        return self._batch_probability(x)[0]


def export_onnx(net: FireNet, path: Path, metadata: Mapping[str, str], opset: int = 17) -> Path:
    """Export ``net`` (+ sigmoid) with dynamic batch/height/width axes and string metadata.

    Used by the training script; here so the export and the loader agree on names.
    """
    model = FireProb(net).eval().cpu()
    dummy = torch.rand(1, len(BANDS), 64, 64) * 0.4
    path = Path(path)
    torch.onnx.export(model, (dummy,), str(path), input_names=[ONNX_INPUT], output_names=[ONNX_OUTPUT],
                      dynamic_axes={ONNX_INPUT: {0: "batch", 2: "height", 3: "width"},
                                    ONNX_OUTPUT: {0: "batch", 2: "height", 3: "width"}},
                      opset_version=opset, dynamo=False)
    from detectors.onnx_runtime import stamp_metadata

    return stamp_metadata(path, metadata, producer=MODEL_NAME, model_version=int(MODEL_VERSION.split(".")[0]))


__all__: Sequence[str] = ("BANDS", "FEATURE_SETS", "FireNet", "LearnedFireDetector", "LearnedFireOnnxDetector",
                          "RECEPTIVE_HALF", "export_onnx", "load_checkpoint", "onnx_metadata",
                          "sha256_file", "verify_weights")
