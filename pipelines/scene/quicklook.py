"""Quicklook PNG of a scene with its detections drawn and labelled (``orbitwatch scan --quicklook``).

Why: an operator checks in a second what a list of coordinates cannot show: that the vessel is
on the sea and not a pier, that the fire sits on the burn scar and not a glint. The picture is a
decimated read (GDAL serves it from the TIFF's overviews where there are any, so a spotlight
scene costs its overview, not its gigapixels), stretched for display between the 2nd and 98th
percentiles of its valid pixels: SAR amplitude in dB as grey; optical as a SWIR false colour
(``swir22, nir, red``: active fires stand out) where those bands exist, else true colour, else
the first band. Each alert is a circle (its length where known) in its kind's colour with
``kind score length``. Drawn with Pillow (matplotlib's own image backend), no figure machinery.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from pipelines.alerts.model import Alert
from pipelines.errors import QuicklookError
from pipelines.scene.reader import Scene

log = logging.getLogger(__name__)

#: Longest edge of a quicklook in pixels (a 24k x 24k spotlight scene becomes 2048 x 2048).
DEFAULT_MAX_SIDE = 2048

#: Marker colour per alert kind (RGB): distinct on grey SAR and on a SWIR false colour.
KIND_COLOURS: dict[str, tuple[int, int, int]] = {
    "vessel": (0, 220, 255), "lifeboat": (255, 200, 0), "fire": (255, 40, 40),
}
_FALSE_COLOUR = ("swir22", "nir", "red")
_TRUE_COLOUR = ("red", "green", "blue")


def _stretch(band: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Float band -> uint8 between its 2nd and 98th valid percentiles; invalid pixels black."""
    out = np.zeros(band.shape, dtype=np.uint8)
    if not valid.any():
        return out
    lo, hi = np.percentile(band[valid], [2.0, 98.0])
    span = float(hi - lo) or 1.0
    scaled = np.clip((band - lo) / span, 0.0, 1.0) * 255.0
    out[valid] = scaled[valid].astype(np.uint8)
    return out


def _picture(scene: Scene, data: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """(bands, h, w) preview values -> (h, w, 3) uint8 for display (see the module docstring)."""
    if scene.kind == "sar":
        amp = data[0].astype(np.float64)
        db = 20.0 * np.log10(np.maximum(amp, 1e-6))
        grey = _stretch(db, valid & (amp > 0))
        return np.repeat(grey[:, :, None], 3, axis=2)
    names = list(scene.bands)
    for combo in (_FALSE_COLOUR, _TRUE_COLOUR):
        if all(n in names for n in combo):
            return np.stack([_stretch(data[names.index(n)], valid) for n in combo], axis=2)
    grey = _stretch(data[0], valid)
    return np.repeat(grey[:, :, None], 3, axis=2)


def _label(alert: Alert) -> str:
    text = f"{alert.kind} {alert.score:.2f}"
    if alert.length_m is not None and math.isfinite(alert.length_m):
        text += f" {alert.length_m:.0f} m"
    return text


def render_quicklook(scene: Scene, alerts: Sequence[Alert], out_png: str | Path,
                     max_side: int = DEFAULT_MAX_SIDE) -> Path:
    """Write ``out_png`` for ``scene`` with ``alerts`` drawn; returns its path.

    Raises QuicklookError naming the scene when it cannot be read for display or the PNG cannot
    be written (a batch records that as a note: the scene's alerts stand without their picture).
    """
    from PIL import Image, ImageDraw, ImageFont

    out_png = Path(out_png)
    try:
        data, valid, (sy, sx) = scene.read_preview(max_side)
    except Exception as exc:
        raise QuicklookError(f"cannot read a preview for the quicklook: {exc}", scene.path) from exc
    rgb = _picture(scene, data, valid)
    img = Image.fromarray(rgb, mode="RGB")
    draw = ImageDraw.Draw(img)
    font: Any = ImageFont.load_default(size=max(11, min(img.size) // 60))
    spacing = float(min(scene.spacing_m)) if scene.spacing_m else 1.0
    for a in sorted(alerts, key=lambda a: a.score):  # best drawn last, on top
        y, x = a.row / sy, a.col / sx
        length_px = (a.length_m / spacing / max(sx, sy)) if a.length_m else 0.0
        r = max(6.0, length_px / 2.0 + 3.0)
        colour = KIND_COLOURS.get(a.kind, (255, 255, 255))
        draw.ellipse([x - r, y - r, x + r, y + r], outline=colour, width=2)
        text = _label(a)
        left, top, right, bottom = draw.textbbox((0, 0), text, font=font, stroke_width=2)
        tw, th = right - left, bottom - top
        tx = x + r + 3 if x + r + 3 + tw <= img.width else x - r - 3 - tw  # beside the circle, inside the image
        ty = min(max(y - th / 2, 0), img.height - th)
        draw.text((tx, ty), text, fill=colour, font=font, stroke_width=2, stroke_fill=(0, 0, 0))
    title = f"{scene.stem}  {scene.acquired.isoformat(timespec='seconds')}  {len(alerts)} alert(s)"
    draw.text((6, 4), title, fill=(255, 255, 255), font=font, stroke_width=2, stroke_fill=(0, 0, 0))
    try:
        out_png.parent.mkdir(parents=True, exist_ok=True)
        tmp = out_png.with_name(f".{out_png.name}.tmp")
        img.save(tmp, format="PNG", optimize=True)
        tmp.replace(out_png)
    except OSError as exc:
        raise QuicklookError(f"cannot write the quicklook {out_png}: {exc.strerror or exc}", scene.path) from exc
    return out_png
