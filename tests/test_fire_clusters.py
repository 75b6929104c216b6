"""Fire pixel clustering and tile-to-scene pixel ownership."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from detectors import DetectorInputError, FireMap
from detectors.fire.clusters import cluster_fire_pixels, firemap_to_pixels, firms_confidence_class


def _pix(cells: list[tuple[int, int]], conf: float = 0.9, inten: float = 0.2
         ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    r = np.array([a for a, _ in cells])
    c = np.array([b for _, b in cells])
    return r, c, np.full(r.size, conf, np.float32), np.full(r.size, inten, np.float32)


def test_two_blobs_two_clusters_with_areas() -> None:
    a = [(10, 10), (10, 11), (11, 10), (11, 11)]
    b = [(30, 40), (31, 41), (32, 42)]  # diagonal chain: one cluster with 8-connectivity
    dets = cluster_fire_pixels(*_pix(a + b), pixel_area_m2=900.0, detector="t")
    assert len(dets) == 2
    by_n = sorted(dets, key=lambda d: len(d.pixels or []))
    assert [len(d.pixels or []) for d in by_n] == [3, 4]
    assert by_n[0].area_m2 == pytest.approx(3 * 900.0) and by_n[1].area_m2 == pytest.approx(4 * 900.0)
    assert (by_n[1].row, by_n[1].col) == pytest.approx((10.5, 10.5))
    assert all(d.kind == "fire" and d.attrs["n_pixels"] == len(d.pixels or []) for d in dets)
    # 4-connectivity splits the diagonal chain into three
    assert len(cluster_fire_pixels(*_pix(a + b), pixel_area_m2=900.0, detector="t", connectivity=4)) == 4


def test_intensity_weighted_centroid() -> None:
    r, c, cf, it = _pix([(5, 5), (5, 6)])
    it[:] = [0.3, 0.1]
    (d,) = cluster_fire_pixels(r, c, cf, it, pixel_area_m2=400.0, detector="t")
    assert d.col == pytest.approx(5.25) and d.attrs["centroid"] == "intensity-weighted"
    assert d.attrs["swir_excess"] == pytest.approx(0.4)
    assert d.attrs["frp_proxy"] == pytest.approx(0.4 * 400.0)


def test_blob_split_across_tiles_is_joined_once() -> None:
    """A 6 x 6 fire across the border between two overlapping tiles: one cluster, no duplicates."""
    H, W = 20, 24
    scene = torch.zeros(H, W, dtype=torch.bool)
    scene[7:13, 9:15] = True
    tiles = [(0, 0, (0, 0, H, 12)), (0, 8, (0, 12, H, W))]  # tile col_off 8, overlap cols 8..15
    rows, cols, conf, inten = [], [], [], []
    for r_off, c_off, core in tiles:
        m = scene[:, c_off:c_off + 16]
        fm = FireMap(mask=m, confidence=m.float() * 0.9, intensity=m.float() * 0.5, detector="t")
        r, c, cf, it = firemap_to_pixels(fm, r_off, c_off, core)
        rows.append(r), cols.append(c), conf.append(cf), inten.append(it)
    r, c = np.concatenate(rows), np.concatenate(cols)
    assert r.size == 36  # each pixel owned by exactly one tile
    dets = cluster_fire_pixels(r, c, np.concatenate(conf), np.concatenate(inten), pixel_area_m2=900.0,
                               detector="t")
    assert len(dets) == 1 and len(dets[0].pixels or []) == 36
    assert (dets[0].row, dets[0].col) == pytest.approx((9.5, 11.5))
    # without cores the overlap is reported twice: duplicates are merged, not double-counted
    r2, c2, cf2, it2 = zip(*(firemap_to_pixels(FireMap(scene[:, o:o + 16], scene[:, o:o + 16].float(),
                                                         scene[:, o:o + 16].float(), "t"), 0, o) for o in (0, 8)))
    dets2 = cluster_fire_pixels(np.concatenate(r2), np.concatenate(c2), np.concatenate(cf2),
                                np.concatenate(it2), pixel_area_m2=900.0, detector="t")
    assert len(dets2) == 1 and dets2[0].area_m2 == pytest.approx(36 * 900.0)


@pytest.mark.parametrize("conf,cls", [(0.0, "low"), (0.29, "low"), (0.3, "nominal"), (0.79, "nominal"),
                                      (0.8, "high"), (1.0, "high")])
def test_firms_classes(conf: float, cls: str) -> None:
    assert firms_confidence_class(conf) == cls
    (d,) = cluster_fire_pixels(*_pix([(1, 1)], conf=conf), pixel_area_m2=1.0, detector="t")
    assert d.attrs["confidence"] == cls and d.score == pytest.approx(conf)


def test_cluster_score_is_max_confidence() -> None:
    r, c, cf, it = _pix([(1, 1), (1, 2), (1, 3)])
    cf[:] = [0.2, 0.5, 0.85]
    (d,) = cluster_fire_pixels(r, c, cf, it, pixel_area_m2=1.0, detector="t")
    assert d.score == pytest.approx(0.85) and d.attrs["confidence"] == "high"


def test_large_snake_converges_to_one_cluster() -> None:
    # a long serpentine front (worst case for label propagation) stays one cluster
    cells = [(r, c) for r in range(0, 200, 2) for c in range(200)]
    cells += [(r + 1, 199 if (r // 2) % 2 == 0 else 0) for r in range(0, 198, 2)]
    dets = cluster_fire_pixels(*_pix(cells), pixel_area_m2=1.0, detector="t")
    assert len(dets) == 1 and len(dets[0].pixels or []) == len(set(cells))


def test_empty_and_bad_inputs() -> None:
    assert cluster_fire_pixels(np.array([], int), np.array([], int), np.array([]), np.array([]), 1.0, "t") == []
    with pytest.raises(DetectorInputError, match="same length"):
        cluster_fire_pixels(np.array([1, 2]), np.array([1]), np.array([1.0]), np.array([1.0]), 1.0, "t")
    with pytest.raises(DetectorInputError, match="connectivity"):
        cluster_fire_pixels(*_pix([(1, 1)]), pixel_area_m2=1.0, detector="t", connectivity=6)
    with pytest.raises(DetectorInputError, match="pixel_area_m2"):
        cluster_fire_pixels(*_pix([(1, 1)]), pixel_area_m2=0.0, detector="t")
