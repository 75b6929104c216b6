"""The learned SAR detector's network: a small CenterNet on a working grid of max(1 m, input spacing).

What the network sees and how it is built - the part training and inference must share exactly
(``detectors.training`` trains it with these very functions): the working grid, the normalisation, the
network, and the verified weights. Decoding its heatmap is :mod:`detectors.sar.decode`; the
detector that runs it is :mod:`detectors.sar.learned`, whose pipeline's first three steps these are:

1. **Working grid: 1 m, or the input's own spacing when coarser** (:func:`working_spacing`).
   Finer inputs are resampled to :data:`WORKING_SPACING_M` = 1 m per pixel by *averaging*
   sigma0 (area resampling of linear power), which is multilooking - 0.35-0.5 m Capella pixels
   become 4-8 looks, cutting speckle. Why 1 m there: a 4 m lifeboat still spans >= 4 pixels and
   its width 1-2 pixels, and the GPU work per km^2 drops 4-8x against native resolution.
   Coarser inputs (TerraSAR-X stripmap 3 m, Sentinel-1 IW 10 m) are worked on as they are:
   interpolating them up onto 1 m (what 1.4.0 and before did) cost the square of the ratio in
   pixels - a 10 m scene 100x its size - and showed the network smooth blobs no real sensor
   makes (on real SSDD chips declared at 10 m, F1 fell from 0.92 to 0.11). The network works in
   pixels: the same CNN sees a 60 m ship as 60 px at 1 m and 6 px at 10 m, and since 1.5.0 it is
   trained on both (generated scenes at 0.35-10 m, SSDD chips at two zooms); every length the
   post-processing judges is converted with the grid's own spacing.
2. **Normalisation** (:func:`normalise`, identical in training and inference and stored in
   the weights' metadata): ``dB = 10 log10(max(sigma0, 1e-10))``; the tile's median ``m`` and
   MAD over valid pixels; two channels ``clamp((dB - m) / 10, -2, 5)`` (contrast in dB, which
   is physical: target-to-clutter ratio) and ``clamp((dB - m) / (1.4826 MAD + 0.1) / 5, -2, 5)``
   (contrast in units of the clutter spread, which makes the heavy speckle of 1-look data and
   the smooth multilooked 0.35 m data look alike). Invalid pixels (no-data, land) are set to 0,
   i.e. "median sea". Per-tile median/MAD make the input independent of calibration gain,
   which is what lets the real SSDD chips (8-bit display images with an unknown stretch; we
   read them as amplitude, ``sigma0 = ((dn + 1) / 256)^2``) train the same network.
3. **Network** (:class:`SarCenterNet`; the shipped weights 0.93 M parameters, 3.7 MB): a
   ResNet-like backbone with few channels (24-128; strides 2, 4, 8, 16, the last stage
   dilated), a top-down feature pyramid back to stride 2 and CenterNet heads (Zhou et al.,
   "Objects as Points", 2019): a centre heatmap, the axis-aligned box height/width (log pixels)
   and the sub-cell centre offset.
   Output stride :data:`STRIDE` = 2 (2 m cells), so neighbouring lifeboats stay separable.

Weights (1.4.0): ``detectors/weights/sar_centernet.pt`` and ``.onnx``: 1.3.0 (below) fine-tuned
on a lent NVIDIA H200 for 5400 iterations (6.1 min) on all 900 training scenes, then validated
here (each command is also in the weights' metadata, the earlier ones under ``fine_tuned_from``;
``--ssdd .ssdd`` was a copy of ``ssdd_train`` without its hold-out images, see
``detectors/training/train_sar_gpu.sh``, ``ROUND=1.4.0``, candidate h):
``python -m detectors.training.train_sar --device cuda --workers 7 --amp --scenes 900 --crop 192
--batch-synth 32 --batch-ssdd 32 --bright-aug 0.3 --no-validate --threads 2 --seed 24 --init
<1.3.0 .pt> --lr 1e-3 --iters 5400 --version 1.4.0-h --out H``; then on the CPU
``... --init H/sar_centernet.pt --iters 0 --tta auto --threads 1 --val-scenes 20 --version 1.4.0``
(threshold 0.375, one pass). Chosen over 1.3.0 and over its twin g (the same run with
``--group-focus 0.5``) by a rule fixed before any of them was evaluated
(``benchmarks/results/train_sar_gpu_1.4.0/CHOICE_RULE.txt``) on 60 validation scenes (seeds
920-979) and SSDD's val chips: mean F1 0.959 (1.3.0 0.953, g 0.964) and lifeboat recall 0.943
(1.3.0 0.922, g 0.922; the rule wants it higher).

1.3.0 came from two seeded runs on the H200:
``python -m detectors.training.train_sar --device cuda --workers 5 --amp --scenes 600 --crop 192
--batch-synth 32 --batch-ssdd 32 --bright-aug 0.3 --no-validate --threads 2 --seed 11 --widths
24,48,96,128 --fpn 32 --lr 3e-3 --iters 8900 --stop-after 6134 --version 1.3.0-b --out B``
(7.4 min, three candidates sharing the GPU);
``... --device cuda --workers 14 --amp --scenes 600 --crop 192 --batch-synth 32 --batch-ssdd 32
--bright-aug 0.3 --iters 2400 --stop-after 2270 --no-validate --threads 2 --seed 13 --init
B/sar_centernet.pt --lr 1e-3 --version 1.3.0-b2 --out C`` (2.6 min); then on the CPU
``... --init C/sar_centernet.pt --iters 0 --tta auto --threads 2 --val-scenes 20 --version
1.3.0``. Chosen by mean validation F1 (generated seeds 900-919 + SSDD val, one pass): 0.962,
against 0.957 for B before its second run, 0.946 for the 0.25 M architecture of 1.2.0 trained
from scratch beside it, 0.957 for 1.2.0 fine-tuned beside it, and 0.933 for 1.2.0.
GPU training repeats the batches exactly (batch i is seeded by (seed, i)) but its float
arithmetic only approximately. The previous weights (1.2.0, 0.25 M parameters) came from
~90 minutes on one CPU thread; their commands are in the git history of
``detectors/sar/learned.py``, which held this module until it was split by role.
Checked against their sha256 (a line in ``detectors/weights/SHA256SUMS`` or ``<file>.sha256``)
before use; a mismatch raises :class:`~detectors.errors.WeightsError`.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from detectors.errors import WeightsError
from detectors.sar.cfar import all_true
# The weights checksums are read as every shipped model's are (SHA256SUMS, else <file>.sha256).
from detectors.integrity import recorded_sha256 as expected_sha256
from detectors.integrity import sha256_file

MODEL_NAME = "orbitwatch-sar-centernet"
MODEL_VERSION = "1.1.0"
WEIGHTS_DIR = Path(__file__).resolve().parent.parent / "weights"
PT_FILE = WEIGHTS_DIR / "sar_centernet.pt"
ONNX_FILE = WEIGHTS_DIR / "sar_centernet.onnx"
#: Its int8 quantisation for CPUs (:mod:`detectors.training.quantize_sar`).
INT8_ONNX_FILE = WEIGHTS_DIR / "sar_centernet_int8.onnx"
#: Weights for inputs coarser than 1 m (working grid = the input's own spacing), when shipped: the
#: same network trained for 1-10 m; absent, the weights above serve every spacing.
COARSE_PT_FILE = WEIGHTS_DIR / "sar_centernet_coarse.pt"
COARSE_ONNX_FILE = WEIGHTS_DIR / "sar_centernet_coarse.onnx"
#: The dense-group expert (:mod:`detectors.sar.group_expert`), when shipped.
GROUP_PT_FILE = WEIGHTS_DIR / "sar_centernet_group.pt"
GROUP_ONNX_FILE = WEIGHTS_DIR / "sar_centernet_group.onnx"
SUMS_FILE = WEIGHTS_DIR / "SHA256SUMS"
ONNX_INPUT = "features"
ONNX_OUTPUTS = ("heatmap", "regression")
CLASSES = ("ship",)

#: The grid the network works on (metres per pixel, both axes); see the module docstring.
WORKING_SPACING_M = 1.0
#: Output stride of the heads relative to the working grid.
STRIDE = 2
#: Input sides are padded to a multiple of this (four stride-2 stages).
PAD_MULTIPLE = 16
NORMALISATION = ("working grid max(1 m, input spacing) (area-average of linear sigma0, never interpolated up); "
                 "dB = 10*log10(max(sigma0, 1e-10)); m, MAD = median, median |dB - m| over valid "
                 "pixels; ch0 = clamp((dB - m)/10, -2, 5); ch1 = clamp((dB - m)/(1.4826*MAD + 0.1)/5, -2, 5); "
                 "invalid pixels = 0; pad to a multiple of 16 with 0")


# ------------------------------------------------------------------------------------ network
class ResBlock(nn.Module):
    """torchvision ``BasicBlock`` with a dilation option (torchvision's refuses dilation > 1)."""

    def __init__(self, cin: int, cout: int, stride: int = 1, dilation: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, padding=dilation, dilation=dilation, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, padding=dilation, dilation=dilation, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.down: nn.Module = nn.Identity()
        if stride != 1 or cin != cout:
            self.down = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu(self.bn1(self.conv1(x)), inplace=True)
        y = self.bn2(self.conv2(y))
        return F.relu(y + self.down(x), inplace=True)


class SarCenterNet(nn.Module):
    """Small CenterNet: (B, 2, H, W) features -> heat logits (B, 1, H/2, W/2), regression (B, 4, H/2, W/2).

    Regression channels: log box height, log box width (working pixels), row and column
    offset of the centre inside its stride-2 cell. H and W must be multiples of 16.
    """

    def __init__(self, in_ch: int = 2, widths: tuple[int, int, int, int] = (16, 32, 48, 64), fpn: int = 24) -> None:
        super().__init__()
        w1, w2, w3, w4 = widths
        self.stem = nn.Sequential(nn.Conv2d(in_ch, w1, 3, 2, 1, bias=False), nn.BatchNorm2d(w1), nn.ReLU(inplace=True),
                                  ResBlock(w1, w1))
        self.layer2 = ResBlock(w1, w2, stride=2)
        self.layer3 = nn.Sequential(ResBlock(w2, w3, stride=2), ResBlock(w3, w3))
        self.layer4 = nn.Sequential(ResBlock(w3, w4, stride=2), ResBlock(w4, w4, dilation=2))
        self.lat = nn.ModuleList([nn.Conv2d(c, fpn, 1) for c in (w1, w2, w3, w4)])
        self.smooth = nn.Sequential(nn.Conv2d(fpn, fpn, 3, 1, 1, bias=False), nn.BatchNorm2d(fpn), nn.ReLU(inplace=True))
        # One shared 3x3 layer feeds both 1x1 heads: at stride 2 the heads dominate the cost.
        self.head = nn.Sequential(nn.Conv2d(fpn, fpn, 3, 1, 1), nn.ReLU(inplace=True))
        self.heat = nn.Conv2d(fpn, 1, 1)
        self.reg = nn.Conv2d(fpn, 4, 1)
        # CenterNet's prior: start with ~1 % positives so the focal loss does not explode.
        nn.init.constant_(self.heat.bias, -4.6)
        nn.init.constant_(self.reg.bias, 0.0)
        with torch.no_grad():
            self.reg.bias[:2] = 2.5  # log(~12 px) boxes to begin with

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        c2 = self.stem(x)
        c4 = self.layer2(c2)
        c8 = self.layer3(c4)
        c16 = self.layer4(c8)
        p = self.lat[3](c16)
        for lat, c in ((self.lat[2], c8), (self.lat[1], c4), (self.lat[0], c2)):
            p = F.interpolate(p, scale_factor=2.0, mode="nearest") + lat(c)
        f = self.head(self.smooth(p))
        return self.heat(f), self.reg(f)


class SarCenterNetExport(nn.Module):
    """The network as exported/served: sigmoid heatmap (B,1,h,w) and regression (B,4,h,w)."""

    def __init__(self, net: SarCenterNet) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        heat, reg = self.net(x)
        return torch.sigmoid(heat), reg


# ------------------------------------------------------------------------- pre-processing
def working_spacing(spacing_m: tuple[float, float]) -> float:
    """The working grid's spacing (metres, both axes) for an input of ``spacing_m`` (row, col).

    1 m (:data:`WORKING_SPACING_M`) for inputs finer than that, the input's own coarser spacing
    otherwise: a coarse scene is never interpolated up onto a finer grid, which would cost the
    square of the ratio in pixels and show the network smooth blobs it never sees in real
    imagery. Square: the finer axis of an anisotropic input is area-averaged to the coarser one."""
    return max(WORKING_SPACING_M, float(spacing_m[0]), float(spacing_m[1]))


def working_shape(shape: tuple[int, int], spacing_m: tuple[float, float],
                  target_m: float | None = None) -> tuple[int, int]:
    """Size of a (rows, cols) tile once resampled to the working grid (or to ``target_m``)."""
    t = working_spacing(spacing_m) if target_m is None else float(target_m)
    return (max(1, int(round(shape[0] * spacing_m[0] / t))),
            max(1, int(round(shape[1] * spacing_m[1] / t))))


def _pool_factor(n: int, m: int) -> int | None:
    """The factor k when ``m`` output pixels average exactly k input pixels each and k is a power
    of two (2, 4, 8...); None otherwise. For those factors the window mean is exact in float32
    either way (a power-of-two divisor), so :func:`torch.nn.functional.avg_pool2d` returns the
    same bits as the adaptive ("area") resampling (``tests/test_sar_normalise.py``) at less cost."""
    k = n // m if m else 0
    return k if k >= 2 and k * m == n and k & (k - 1) == 0 else None


def to_working_grid(sigma0: torch.Tensor, spacing_m: tuple[float, float],
                    valid: torch.Tensor | None = None, target_m: float | None = None
                    ) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, H, W) linear sigma0 (+ bool valid) -> the same on the working grid
    (:func:`working_spacing`, or ``target_m`` metres when given).

    Power is area-averaged where the input is finer than the grid (multilooking; invalid pixels
    are left out of each average) and bilinearly interpolated where coarser - which the
    working grid itself never asks for (only an explicit finer ``target_m``, as the fine pass
    does). A working pixel is valid when at least half of what it averages was valid.

    Written for speed on a CPU, with the values of the plain expression
    (``power = area(sigma0 * v) / area(v)`` where ``v`` is the valid mask as 0/1, then zeroed
    where ``area(v) < 0.5``): power-of-two factors on a CPU use ``avg_pool2d``
    (:func:`_pool_factor`), and there a tile whose pixels are all valid skips the mask arithmetic
    (a fraction of exactly 1 changes nothing). Identical values, ``tests/test_sar_normalise.py``.
    """
    b, h, w = sigma0.shape
    hw, ww = working_shape((h, w), spacing_m, target_m)
    everywhere = valid is None or all_true(valid)
    if (hw, ww) == (h, w):
        if everywhere:
            return sigma0.clone(), torch.ones_like(sigma0, dtype=torch.bool)
        v = valid.to(sigma0.dtype)
        return sigma0 * v, v > 0.5
    down = hw <= h and ww <= w
    # (not for a 1-pixel side: torch takes the area mean of a whole axis in another summation order)
    fast = down and sigma0.device.type == "cpu" and hw > 1 and ww > 1
    kr, kc = (_pool_factor(h, hw), _pool_factor(w, ww)) if fast else (None, None)

    def area(t: torch.Tensor) -> torch.Tensor:
        if kr is not None and kc is not None:
            return F.avg_pool2d(t, (kr, kc))
        if down:
            return F.interpolate(t, size=(hw, ww), mode="area")
        return F.interpolate(t, size=(hw, ww), mode="bilinear", align_corners=False)

    if everywhere and kr is not None and kc is not None:
        # The mean of all-valid flags over a power-of-two window is exactly 1: power / 1, all valid.
        return area(sigma0[:, None])[:, 0], torch.ones((b, hw, ww), dtype=torch.bool, device=sigma0.device)
    v = torch.ones_like(sigma0) if everywhere else valid.to(sigma0.dtype)
    y = area(torch.stack([sigma0 * v, v], dim=1))
    frac = y[:, 1]
    power = y[:, 0] / frac.clamp_min(1e-6)
    ok = frac >= 0.5
    return power * ok, ok


#: The median and MAD of a tile are taken from at most this many of its valid pixels (a regular
#: subsample: as good, and much cheaper than a sort of millions).
STATS_SAMPLE = 262_144


def to_db(power: torch.Tensor) -> torch.Tensor:
    """``10 log10(max(power, 1e-10))`` as a new tensor (in place on one copy: a 4 Mpx tile is three
    passes fewer than the expression)."""
    db = power.clamp_min(1e-10)
    return db.log10_().mul_(10.0)


def normal_stats(power: torch.Tensor, valid: torch.Tensor, db: torch.Tensor | None = None
                 ) -> tuple[torch.Tensor, torch.Tensor] | None:
    """One (h, w) tile's median ``m`` and MAD of dB over its valid pixels (None: no valid pixel).

    ``db``: the tile in dB when already made; else only the subsample is converted (the fine
    pass needs the statistics of a tile it normalises a few windows of)."""
    everywhere = all_true(valid)
    src = power if db is None else db
    sample = src.reshape(-1) if everywhere else src[valid]  # row-major either way: the same sample
    if sample.numel() > STATS_SAMPLE:
        sample = sample[:: sample.numel() // STATS_SAMPLE + 1]
    if sample.numel() == 0:
        return None
    if db is None:
        sample = to_db(sample)
    m = sample.median()
    return m, (sample - m).abs().median()


def normal_channels(db: torch.Tensor, valid: torch.Tensor, stats: tuple[torch.Tensor, torch.Tensor] | None,
                    out: torch.Tensor | None = None) -> torch.Tensor:
    """(..., h, w) dB + valid + :func:`normal_stats` -> the (..., 2, h, w) float32 network input,
    into ``out`` (leading dimensions: several windows of one tile at once, the fine pass).

    The same operations, in the same order, as the expression in the module docstring, written
    into one buffer: identical values (``tests/test_sar_normalise.py``) at a third of the passes."""
    if out is None:
        out = torch.empty(tuple(db.shape[:-2]) + (2,) + tuple(db.shape[-2:]), dtype=torch.float32, device=db.device)
    if stats is None:
        return out.zero_()
    m, mad = stats
    c = db - m
    if c.dtype != torch.float32:  # the float32 in-place steps below would round differently
        c0 = (c / 10.0).clamp(-2.0, 5.0)
        c1 = (c / (1.4826 * mad + 0.1) / 5.0).clamp(-2.0, 5.0)
        out.copy_(torch.stack([c0, c1], dim=-3) * valid.unsqueeze(-3))
        return out
    torch.div(c, 10.0, out=out.select(-3, 0)).clamp_(-2.0, 5.0)
    torch.div(c, 1.4826 * mad + 0.1, out=out.select(-3, 1)).div_(5.0).clamp_(-2.0, 5.0)
    if not all_true(valid):
        out.mul_(valid.unsqueeze(-3))
    return out


def normalise(power: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """(B, h, w) working-grid sigma0 + valid -> (B, 2, h, w) network input (see the module docstring)."""
    db = to_db(power)
    out = torch.empty((db.shape[0], 2) + tuple(db.shape[1:]), dtype=torch.float32, device=db.device)
    for i in range(db.shape[0]):
        normal_channels(db[i], valid[i], normal_stats(power[i], valid[i], db[i]), out=out[i])
    return out


def pad_to_multiple(x: torch.Tensor, multiple: int = PAD_MULTIPLE) -> torch.Tensor:
    """Zero-pad (B, C, h, w) at the bottom/right to multiples of ``multiple`` (0 = median sea)."""
    h, w = x.shape[-2:]
    ph, pw = (-h) % multiple, (-w) % multiple
    return F.pad(x, (0, pw, 0, ph)) if (ph or pw) else x


# ----------------------------------------------------------------------------- weights I/O
def verify_weights(path: str | Path, sha256: str | None = None) -> Path:
    """Check ``path`` exists and matches its recorded sha256 (or ``sha256``); WeightsError otherwise.

    Why always: a weights file flipped by a radiation upset or a truncated uplink would
    otherwise produce confident nonsense that sends rescuers to empty sea.
    """
    p = Path(path)
    if not p.is_file():
        raise WeightsError(f"weights file not found: {p}")
    want = sha256 or expected_sha256(p)
    if want is None:
        raise WeightsError(f"no recorded sha256 for {p} (expected a line in {p.parent / 'SHA256SUMS'} "
                           f"or {p.name}.sha256)")
    got = sha256_file(p)
    if got != want.lower():
        raise WeightsError(f"sha256 mismatch for {p}: expected {want}, got {got}")
    return p


def load_checkpoint(path: str | Path | None = None, sha256: str | None = None) -> tuple[SarCenterNet, dict[str, Any]]:
    """Verified :class:`SarCenterNet` (eval mode, CPU) and its metadata from a ``.pt`` checkpoint."""
    p = verify_weights(PT_FILE if path is None else path, sha256)
    try:
        ckpt = torch.load(p, map_location="cpu", weights_only=True)
        meta = dict(ckpt["metadata"])
        net = SarCenterNet(widths=tuple(int(v) for v in meta.get("widths", (16, 32, 48, 64))),
                           fpn=int(meta.get("fpn", 24)))
        net.load_state_dict(ckpt["state_dict"])
    except WeightsError:
        raise
    except Exception as exc:
        raise WeightsError(f"cannot load SAR CenterNet weights {p}: {exc}") from exc
    net.eval()
    return net, meta


def export_onnx(net: SarCenterNet, path: Path, metadata: Mapping[str, str], opset: int = 17) -> Path:
    """Export ``net`` (+ sigmoid) with dynamic batch/height/width axes and string metadata."""
    wrapped = SarCenterNetExport(net).eval()
    dummy = torch.zeros(1, 2, 64, 96)
    path.parent.mkdir(parents=True, exist_ok=True)
    axes = {0: "batch", 2: "height", 3: "width"}
    out_axes = {0: "batch", 2: "out_height", 3: "out_width"}
    torch.onnx.export(wrapped, (dummy,), str(path), input_names=[ONNX_INPUT], output_names=list(ONNX_OUTPUTS),
                      dynamic_axes={ONNX_INPUT: axes, ONNX_OUTPUTS[0]: out_axes, ONNX_OUTPUTS[1]: out_axes},
                      opset_version=opset, dynamo=False)
    from detectors.onnx_runtime import stamp_metadata

    return stamp_metadata(path, metadata, producer="orbitwatch")
