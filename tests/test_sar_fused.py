"""sar-fused: learned positions and scores, CFAR geometry (and so kind) where a CFAR object confirms."""

from __future__ import annotations

import numpy as np
import torch

from detectors import get_detector
from detectors.sar.fused import PRECISE_UNCONFIRMED, fuse
from detectors.types import Detection

SP = (0.5, 0.5)


def _d(row: float, col: float, kind: str = "lifeboat", length: float | None = 3.0, score: float = 0.6,
       det: str = "sar-learned", heading: float | None = None) -> Detection:
    return Detection(row=row, col=col, score=score, kind=kind, detector=det, length_m=length,  # type: ignore[arg-type]
                     width_m=2.0, heading_deg=heading)


def test_a_learned_peak_on_a_long_hull_takes_the_cfar_geometry_and_kind() -> None:
    learned = [_d(100.0, 160.0)]  # a peak 30 m from the hull centre, reported by the model as a 3 m blob
    cfar = [_d(100.0, 100.0, kind="vessel", length=120.0, det="sar-cfar", heading=90.0)]
    (out,) = fuse(learned, cfar, SP)
    assert out.kind == "vessel" and out.length_m == 120.0 and out.heading_deg == 90.0
    assert (out.row, out.col, out.score) == (100.0, 160.0, 0.6)  # position and score stay the model's
    assert out.detector == "sar-fused" and out.attrs["cfar"] == 1.0


def test_unconfirmed_learned_detections_stay_and_cfar_only_objects_do_not_appear() -> None:
    learned = [_d(10.0, 10.0)]
    cfar = [_d(500.0, 500.0, kind="vessel", length=60.0, det="sar-cfar")]  # 350 m away: a CFAR-only object
    (out,) = fuse(learned, cfar, SP)
    assert out.kind == "lifeboat" and out.length_m == 3.0 and out.attrs["cfar"] == 0.0


def test_a_cfar_object_lends_its_geometry_to_the_nearest_learned_detection_only() -> None:
    learned = [_d(100.0, 100.0), _d(100.0, 112.0)]  # two peaks 6 m apart, both within 10 m of the object
    cfar = [_d(100.0, 110.0, kind="lifeboat", length=7.0, det="sar-cfar")]
    a, b = fuse(learned, cfar, SP)
    assert a.attrs["cfar"] == 0.0 and b.attrs["cfar"] == 1.0 and b.length_m == 7.0
    assert fuse([], cfar, SP) == [] and len(fuse(learned, [], SP)) == 2


def _imaged(var: np.ndarray, seed: int, band: float = 0.8) -> np.ndarray:
    """Intensity image of a scene of mean backscatter ``var`` as a SAR images it: circular complex
    Gaussian scatterers, low-passed to ``band`` of the spectrum in both axes with a Hamming taper
    (the processor's bandwidth and window: speckle and edges are correlated over ~1/band pixels,
    as in any SAR product)."""
    rng = np.random.default_rng(seed)
    z = (rng.standard_normal(var.shape) + 1j * rng.standard_normal(var.shape)) * np.sqrt(var / 2)

    def taper(n: int) -> np.ndarray:  # Hamming-weighted band (sidelobes ~-43 dB, as processors do)
        f = np.abs(np.fft.fftfreq(n)) / (band / 2)
        return np.where(f < 1.0, 0.54 + 0.46 * np.cos(np.pi * f), 0.0)

    keep = np.outer(taper(var.shape[0]), taper(var.shape[1]))
    z = np.fft.ifft2(np.fft.fft2(z) * keep) / np.sqrt((keep ** 2).mean())
    return (np.abs(z) ** 2).astype(np.float32)


def test_fused_detector_reports_a_long_ship_as_a_vessel_with_its_length() -> None:
    var = np.full((512, 512), 0.01)
    var[238:274, 120:360] = 30.0  # a 120 m x 18 m hull at 0.5 m, ~35 dB over the sea
    sea = _imaged(var, seed=1)
    det = get_detector("sar-fused", device="cpu")
    got = det.detect(torch.from_numpy(sea), spacing_m=SP)
    assert got, "the hull was not found"
    best = max(got, key=lambda d: d.length_m or 0.0)
    assert best.kind == "vessel" and best.attrs["cfar"] == 1.0
    assert abs(best.length_m - 120.0) < 15.0
    assert det.required_overlap_px(SP) >= get_detector("sar-learned", device="cpu").required_overlap_px(SP)


def test_precise_operating_point_drops_only_weak_unconfirmed_detections() -> None:
    learned = [_d(10.0, 10.0, score=0.35), _d(300.0, 300.0, score=0.6), _d(100.0, 100.0, score=0.31)]
    cfar = [_d(100.0, 101.0, kind="lifeboat", length=6.0, det="sar-cfar")]  # confirms the weak third one
    out = fuse(learned, cfar, SP, unconfirmed_min_score=0.48)
    assert [(d.row, d.score) for d in out] == [(300.0, 0.6), (100.0, 0.31)]
    assert len(fuse(learned, cfar, SP)) == 3  # default: every learned detection stays
    det = get_detector("sar-fused-precise", device="cpu")
    assert det.unconfirmed_min_score == PRECISE_UNCONFIRMED and det.name == "sar-fused-precise"
    assert det.learned.score_threshold < PRECISE_UNCONFIRMED < 1.0  # stricter than the model, not absurd


def test_bad_operating_point_is_a_clear_error() -> None:
    import pytest

    from detectors.errors import DetectorInputError

    with pytest.raises(DetectorInputError, match="unconfirmed_min_score"):
        get_detector("sar-fused", device="cpu", unconfirmed_min_score=3.0)


def test_the_cfar_runs_only_on_tiles_where_the_network_found_something() -> None:
    """A batch of a ship tile, an open-sea tile and another ship tile: the CFAR measures the two
    ship tiles only (open sea has no learned detection to lend geometry to), and every tile's
    detections equal those of the CFAR run on all three (the order before)."""
    ship = np.full((512, 512), 0.01)
    ship[238:274, 120:360] = 30.0
    tiles = np.stack([_imaged(ship, seed=1), _imaged(np.full((512, 512), 0.01), seed=2), _imaged(ship, seed=3)])
    x = torch.from_numpy(tiles)
    valid = torch.ones(x.shape, dtype=torch.bool)
    valid[2, :, 500:] = False  # a no-data strip: the valid mask follows its tile into the CFAR
    det = get_detector("sar-fused", device="cpu")
    seen: list[int] = []
    run_cfar = det.cfar.detect_batch

    def counted(sigma0: torch.Tensor, **kw: object) -> list[list[Detection]]:
        seen.append(int(sigma0.shape[0]))
        return run_cfar(sigma0, **kw)  # type: ignore[arg-type]

    det.cfar.detect_batch = counted  # type: ignore[method-assign]
    got = det.detect_batch(x, spacing_m=SP, valid=valid)
    assert seen == [2] and got[1] == [] and got[0] and got[2]
    learned = det.learned.detect_batch(x, spacing_m=SP, valid=valid)
    everywhere = run_cfar(x, spacing_m=SP, valid=valid)
    assert learned[1] == []
    assert got == [fuse(a, b, SP) for a, b in zip(learned, everywhere)]


def test_a_tile_the_cfar_refuses_is_refused_even_where_the_network_finds_nothing() -> None:
    """NaN at a valid pixel is an input error for sar-fused (its CFAR's check), on a tile with
    ships and on open sea alike: skipping the CFAR on empty tiles must not turn it into no-data."""
    import pytest

    from detectors.errors import DetectorInputError

    sea = torch.from_numpy(np.stack([_imaged(np.full((256, 256), 0.01), seed=s) for s in (4, 5)]))
    sea[1, 100, 100] = float("nan")
    det = get_detector("sar-fused", device="cpu")
    with pytest.raises(DetectorInputError, match="NaN"):
        det.detect_batch(sea, spacing_m=SP)
    valid = torch.ones(sea.shape, dtype=torch.bool)
    valid[1, 100, 100] = False  # the same pixel marked no-data: fine
    assert det.detect_batch(sea, spacing_m=SP, valid=valid) == [[], []]
