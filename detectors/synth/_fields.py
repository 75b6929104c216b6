"""Random-field helpers shared by the SAR and optical generators (pure numpy/scipy).

Everything natural in a scene (sea texture, wind cells, coastlines, land cover) is spatially
correlated, so the generators build smooth Gaussian random fields on a coarse grid and
upsample them: that keeps a 2048 x 2048 scene to a few hundred thousand random numbers and
fractions of a second, which matters on shared 2-core machines.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage, special


def smooth_field(rng: np.random.Generator, shape: tuple[int, int], corr_px: float,
                 coarse: int = 1) -> np.ndarray:
    """Zero-mean, unit-variance Gaussian random field with correlation length ~``corr_px``.

    Built by Gaussian-filtering white noise on a grid ``coarse`` times smaller than ``shape``
    and bilinearly upsampling, so the cost scales with the coarse grid only.
    """
    rows, cols = shape
    coarse = max(1, int(coarse))
    cr, cc = rows // coarse + 2, cols // coarse + 2
    noise = rng.standard_normal((cr, cc)).astype(np.float32)
    sig = max(corr_px / coarse, 0.0)
    if sig > 0:
        noise = ndimage.gaussian_filter(noise, sig, mode="wrap")
    std = float(noise.std())
    noise = (noise - noise.mean()) / (std if std > 0 else 1.0)
    if coarse == 1:
        return noise[:rows, :cols].astype(np.float32)
    return upsample(noise, coarse, shape)


def upsample(coarse_arr: np.ndarray, factor: int, shape: tuple[int, int]) -> np.ndarray:
    """Bilinear upsampling of a coarse grid by an integer factor, cropped to ``shape``."""
    rows, cols = shape
    r = (np.arange(rows, dtype=np.float32) + 0.5) / factor - 0.5
    c = (np.arange(cols, dtype=np.float32) + 0.5) / factor - 0.5
    r = np.clip(r, 0, coarse_arr.shape[0] - 1.001)
    c = np.clip(c, 0, coarse_arr.shape[1] - 1.001)
    r0 = r.astype(np.int64)
    c0 = c.astype(np.int64)
    fr = (r - r0)[:, None]
    fc = (c - c0)[None, :]
    a = coarse_arr[r0][:, c0]
    b = coarse_arr[r0][:, c0 + 1]
    cq = coarse_arr[r0 + 1][:, c0]
    d = coarse_arr[r0 + 1][:, c0 + 1]
    top = a + (b - a) * fc
    bot = cq + (d - cq) * fc
    return (top + (bot - top) * fr).astype(np.float32)


def gaussian_to_gamma(g: np.ndarray, shape_k: float) -> np.ndarray:
    """Map a standard-normal field to a unit-mean Gamma(shape_k) field of the same correlation.

    Uses the probability-integral transform (normal CDF, then the inverse regularised
    incomplete gamma function), i.e. a Gaussian copula: the marginal is exactly Gamma with
    mean 1 and variance 1/shape_k, which is the texture law of the K distribution.
    """
    if not np.isfinite(shape_k):
        return np.ones_like(g, dtype=np.float32)
    u = special.ndtr(g.astype(np.float64))
    u = np.clip(u, 1e-12, 1 - 1e-12)
    return (special.gammaincinv(shape_k, u) / shape_k).astype(np.float32)
