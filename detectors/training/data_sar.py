"""Training/validation data for the learned SAR detector: generated scenes and SSDD chips.

Everything goes through the detector's own pre-processing (:func:`to_working_grid` and
:func:`normalise` from :mod:`detectors.sar.learned`), so the network is trained on exactly
what it sees at inference. Objects are stored as centre boxes on the 1 m working grid:
(row, col, height, width) in working pixels, pixel-centre coordinates.

SSDD chips are read with PIL as amplitude-like 8-bit display values and turned into a
sigma0-like intensity ``(dn + 0.5)^2`` with pixel spacing taken as 1 m (they carry none;
real spacing is 1-15 m). Only the tile-relative normalisation sees them, so the unknown gain
of the display stretch does not matter.
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from detectors.sar.learned import normalise, to_working_grid
from detectors.sar.network import working_spacing

log = logging.getLogger(__name__)

SSDD_DIR = Path(__file__).resolve().parents[2].parent / "shared" / "datasets" / "ssdd_train"


@dataclass
class Sample:
    """One image on the working grid: features (2, h, w) float16, boxes (N, 4), trap centres (M, 2)."""

    feats: np.ndarray
    boxes: np.ndarray  # (N, 4) row, col, h, w (working px)
    kinds: list[str] = field(default_factory=list)
    traps: np.ndarray = field(default_factory=lambda: np.zeros((0, 2), np.float32))
    source: str = ""
    #: (K, 2) centres of objects too small to teach either way (:data:`MIN_TARGET_PX`)
    ignore: np.ndarray = field(default_factory=lambda: np.zeros((0, 2), np.float32))


def ship_box_px(length_m: float, width_m: float, heading_deg: float, spacing_m: float) -> tuple[float, float]:
    """Axis-aligned (height, width) in working pixels of a hull rectangle with the given heading."""
    th = math.radians(heading_deg)
    c, s = abs(math.cos(th)), abs(math.sin(th))
    return (length_m * c + width_m * s) / spacing_m, (length_m * s + width_m * c) / spacing_m


def to_working_rc(r: float, c: float, in_shape: tuple[int, int], w_shape: tuple[int, int]) -> tuple[float, float]:
    """Input pixel-centre coordinates -> working-grid pixel-centre coordinates."""
    return ((r + 0.5) * w_shape[0] / in_shape[0] - 0.5, (c + 0.5) * w_shape[1] / in_shape[1] - 0.5)


#: Objects shorter than this many working pixels are neither taught as ships nor as sea (a 5 m
#: lifeboat in a 10 m pixel): :attr:`Sample.ignore` (the loss skips their cells).
MIN_TARGET_PX = 2.0


def synth_params(seed: int, coarse_fraction: float = 0.0) -> tuple[float, int]:
    """Spacing and frame size of a training scene, from its own seed: 0.35-1 m and ~450-650 m
    frames; with ``coarse_fraction`` > 0 that share of the seeds is instead drawn log-uniformly at
    1-10 m (Sentinel-1 IW is 10 m) with 384-768 px frames (0.4-7.7 km). The fine draws are the same
    either way, so the earlier weights' training commands still make their scenes."""
    rng = np.random.default_rng([seed, 11])
    sp = float(np.round(rng.uniform(0.35, 1.0), 3))
    n = int(min(1600, round(rng.uniform(450.0, 650.0) / sp)))
    if coarse_fraction > 0.0:
        crng = np.random.default_rng([seed, 13])
        if crng.random() < coarse_fraction:
            sp = float(np.round(math.exp(crng.uniform(0.0, math.log(10.0))), 3))
            n = int(crng.integers(384, 769))
    return sp, n


def synth_groups(seed: int, group_fraction: float) -> int:
    """How many dense groups (``make_sar_scene(n_groups=...)``) a training scene gets: 1-2 in a
    ``group_fraction`` share of the seeds, else none."""
    if group_fraction <= 0.0:
        return 0
    g = np.random.default_rng([seed, 17])
    return int(g.integers(1, 3)) if g.random() < group_fraction else 0


def synth_sample(seed: int, spacing_m: float | None = None, size_px: int | None = None,
                 mask_land: bool = False, coarse_fraction: float = 0.0, group_fraction: float = 0.0) -> Sample:
    """A generated scene on the working grid (see :func:`synth_params`, :func:`synth_groups`).
    Land is *not* masked by default: the pipeline's ``valid`` only marks no-data, so the network
    must learn that land and harbours are not ships."""
    from detectors.synth.sar import make_sar_scene

    sp, n = synth_params(seed, coarse_fraction)
    sp = spacing_m if spacing_m is not None else sp
    n = size_px if size_px is not None else n
    sc = make_sar_scene(seed, n, n, sp, n_groups=synth_groups(seed, group_fraction))
    sigma0 = torch.from_numpy(sc.sigma0_from_dn())[None]
    valid = sc.dn > 0
    if mask_land:
        valid &= ~sc.land_mask
    power, vw = to_working_grid(sigma0, (sp, sp), torch.from_numpy(valid)[None])
    feats = normalise(power, vw)[0].numpy().astype(np.float16)
    ws = feats.shape[1:]
    wsp = working_spacing((sp, sp))
    boxes, kinds, traps, ignore = [], [], [], []
    for t in sc.truth:
        r, c = to_working_rc(t["row"], t["col"], (n, n), ws)
        if t["kind"] in ("vessel", "lifeboat"):
            h, w = ship_box_px(t["length_m"], t["width_m"], t["heading_deg"], wsp)
            if t["length_m"] / wsp < MIN_TARGET_PX:
                ignore.append((r, c))
                continue
            boxes.append((r, c, max(h, 1.5), max(w, 1.5)))
            kinds.append(t["kind"])
        else:
            traps.append((r, c))
    return Sample(feats=feats, boxes=np.array(boxes, np.float32).reshape(-1, 4), kinds=kinds,
                  traps=np.array(traps, np.float32).reshape(-1, 2), source=f"synth:{seed}@{sp:g}m",
                  ignore=np.array(ignore, np.float32).reshape(-1, 2))


def ssdd_sigma0(path: Path) -> np.ndarray:
    """An SSDD chip as sigma0-like linear intensity: (dn + 0.5)^2, dn read as amplitude.

    Same convention as ``benchmarks/eval_vessels.py`` (the gain is irrelevant after the
    detector's per-tile normalisation; the +0.5 keeps black pixels finite in dB)."""
    from PIL import Image

    with Image.open(path) as im:
        dn = np.asarray(im.convert("L"), dtype=np.float32)
    a = dn + 0.5
    return a * a


def ssdd_index(root: Path = SSDD_DIR) -> list[tuple[str, int, int, int, list[tuple[float, float, float, float]]]]:
    """[(file_name, image_id, height, width, [(row, col, h, w) centre boxes])] from the COCO json."""
    doc = json.loads((root / "instances_train.json").read_text())
    by_img: dict[int, list[tuple[float, float, float, float]]] = {im["id"]: [] for im in doc["images"]}
    for a in doc["annotations"]:
        x, y, w, h = (float(v) for v in a["bbox"])
        by_img[a["image_id"]].append((y + h / 2 - 0.5, x + w / 2 - 0.5, h, w))
    return [(im["file_name"], int(im["id"]), int(im["height"]), int(im["width"]), by_img[im["id"]])
            for im in doc["images"]]


def ssdd_sample(root: Path, file_name: str, boxes: list[tuple[float, float, float, float]],
                zoom: float = 1.0) -> Sample:
    """One SSDD chip on the working grid; ``zoom`` < 1 area-averages it to that fraction of its
    size first: the same real ships seen by a coarser sensor (SSDD's own spacing is unknown,
    1-15 m, so its chips are shown at several). Ships shorter than :data:`MIN_TARGET_PX` after the
    zoom become :attr:`Sample.ignore`."""
    s0 = ssdd_sigma0(root / "images" / file_name)
    t = torch.from_numpy(s0)[None]
    if not (0.0 < zoom <= 1.0):
        raise ValueError(f"zoom must be in (0, 1], got {zoom}")
    power, vw = to_working_grid(t, (1.0, 1.0), None, target_m=None if zoom == 1.0 else 1.0 / zoom)
    feats = normalise(power, vw)[0].numpy().astype(np.float16)
    fr, fc = power.shape[1] / s0.shape[0], power.shape[2] / s0.shape[1]
    b = np.array([((r + 0.5) * fr - 0.5, (c + 0.5) * fc - 0.5, h * fr, w * fc) for r, c, h, w in boxes],
                 np.float32).reshape(-1, 4)
    small = np.maximum(b[:, 2], b[:, 3]) < MIN_TARGET_PX if len(b) else np.zeros(0, bool)
    return Sample(feats=feats, boxes=b[~small], kinds=["vessel"] * int((~small).sum()),
                  source=f"ssdd:{file_name}@x{zoom:g}", ignore=b[small, :2].copy())
