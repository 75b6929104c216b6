"""Behaviour of the classical SAR CFAR detector (``sar-cfar``) on small synthetic tiles."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy import ndimage

from detectors import DetectorInputError, get_detector
from detectors.sar.cfar import CfarDetector, gamma_threshold_lut, windows_for, CfarParams

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.reference_cfar import reference_detect  # noqa: E402

SP = 1.0  # m; small tiles keep the tests fast (the windows are in metres)
SEA = 10 ** (-22 / 10)


def k_clutter(seed: int, h: int = 256, w: int = 256, nu: float = 2.0, looks: float = 3.0,
              mean: float = SEA) -> np.ndarray:
    """K-distributed intensity: Gamma(nu) texture (2-pixel correlated) x Gamma(L) speckle."""
    rng = np.random.default_rng(seed)
    tex = rng.gamma(nu, 1.0 / nu, size=(h // 2 + 1, w // 2 + 1)).repeat(2, 0).repeat(2, 1)[:h, :w]
    speckle = rng.gamma(looks, 1.0 / looks, size=(h, w))
    return (mean * tex * speckle).astype(np.float32)


def add_ship(img: np.ndarray, row: float, col: float, length_m: float, width_m: float, heading_deg: float,
             peak_db_over_sea: float, spacing: float = SP, blur_px: float = 0.6) -> None:
    """A bright rectangle hull (blurred by a Gaussian impulse response) added in place."""
    h, w = img.shape
    rr, cc = np.mgrid[0:h, 0:w].astype(np.float64)
    th = math.radians(heading_deg)
    u = (-(rr - row) * math.cos(th) + (cc - col) * math.sin(th)) * spacing
    v = ((rr - row) * math.sin(th) + (cc - col) * math.cos(th)) * spacing
    hull = ((np.abs(u) <= length_m / 2) & (np.abs(v) <= width_m / 2)).astype(np.float64)
    hull = ndimage.gaussian_filter(hull, blur_px)
    img += (hull / max(hull.max(), 1e-9) * SEA * 10 ** (peak_db_over_sea / 10)).astype(np.float32)


def run(img: np.ndarray, valid: np.ndarray | None = None, spacing: float = SP, **kw: object) -> list:
    det = CfarDetector(torch.device("cpu"), **kw)
    return det.detect(torch.from_numpy(img), spacing_m=(spacing, spacing),
                      valid=None if valid is None else torch.from_numpy(valid))


def near(dets: list, row: float, col: float, tol: float = 6.0) -> list:
    return [d for d in dets if abs(d.row - row) <= tol and abs(d.col - col) <= tol]


def test_registered_and_protocol() -> None:
    det = get_detector("sar-cfar", device="cpu")
    assert det.modality == "sar" and det.name == "sar-cfar" and det.version


def test_finds_vessel_and_lifeboat_with_kind_and_length() -> None:
    img = k_clutter(1)
    add_ship(img, 80, 80, 60.0, 10.0, 30.0, 30.0)
    add_ship(img, 180, 170, 7.0, 2.5, 100.0, 25.0)
    dets = run(img)
    v = near(dets, 80, 80)
    b = near(dets, 180, 170)
    assert len(v) == 1 and v[0].kind == "vessel"
    assert abs(v[0].length_m - 60.0) <= 0.15 * 60.0
    assert abs(((v[0].heading_deg - 30.0) + 90) % 180 - 90) <= 10.0
    assert len(b) == 1 and b[0].kind == "lifeboat"
    assert abs(b[0].length_m - 7.0) <= 2.5
    assert 0.0 <= v[0].score <= 1.0 and v[0].attrs["contrast_db"] > 20
    assert len(dets) == 2


def test_windows_follow_spacing() -> None:
    p = CfarParams()
    w1, w05 = windows_for(p, (1.0, 1.0)), windows_for(p, (0.5, 0.5))
    assert w05.guard[0] == 2 * w1.guard[0] and w05.outer[1] == 2 * w1.outer[1]
    aniso = windows_for(p, (0.5, 1.0))
    assert aniso.outer[0] == 2 * aniso.outer[1]
    det = CfarDetector("cpu")
    assert det.required_overlap_px(0.5) > det.required_overlap_px(1.0) > 0
    # context covers half the largest vessel plus the outer window
    assert det.required_overlap_px(1.0) // 2 >= 150 + w1.outer[0]


def test_gamma_threshold_matches_closed_form() -> None:
    # Exponential (a = 1) speckle: P(I > t mean) = exp(-t)  ->  t = -ln(pfa).
    t = gamma_threshold_lut(1e-6, np.array([1.0]))[0]
    assert t == pytest.approx(-math.log(1e-6), rel=1e-6)


@pytest.mark.parametrize("seed", [11, 12, 13])
def test_no_detections_on_pure_k_clutter(seed: int) -> None:
    # 65k pixels at pfa 1e-6: the Gamma model expects 0.07 detection pixels and objects need 2
    # of them plus 15 dB contrast, so any object here is a false alarm the design does not allow.
    img = k_clutter(seed, nu=1.0, looks=2.0)
    assert run(img) == []


def test_speckle_spike_rejected() -> None:
    img = k_clutter(2)
    img[100, 100] = SEA * 10 ** 4.0  # one 40 dB pixel
    img[150, 60:62] = SEA * 10 ** 3.5
    assert run(img) == []


def test_sidelobe_streak_rejected_but_not_without_its_source() -> None:
    img = k_clutter(3)
    streak = k_clutter(3)
    # thin streak along the row of a much brighter scatterer (range sidelobe), 30 px away
    for im in (img, streak):
        im[128, 150:175] += SEA * 10 ** 2.2  # 22 dB over the sea, 1 px wide
    add_ship(img, 128, 120, 12.0, 4.0, 90.0, 48.0)  # source 26 dB brighter than the streak
    dets = run(img)
    assert near(dets, 128, 120, tol=8) and not near(dets, 128, 162, tol=10)
    assert near(run(streak), 128, 162, tol=10)  # control: the streak alone is detectable


def test_azimuth_ambiguity_rejected_but_not_without_its_source() -> None:
    img = k_clutter(4)
    ghost_only = k_clutter(4)
    for im in (img, ghost_only):
        add_ship(im, 200, 100, 30.0, 6.0, 10.0, 22.0, blur_px=1.5)  # faint, defocused copy
    add_ship(img, 60, 100, 30.0, 6.0, 10.0, 45.0)  # source 23 dB brighter, same columns
    dets = run(img)
    assert near(dets, 60, 100, tol=8) and not near(dets, 200, 100, tol=15)
    assert near(run(ghost_only), 200, 100, tol=15)
    # the same ghost is also rejected when the sidecar offset is given (and the source is there)
    dets = run(img, ambiguity_offset_m=140.0)
    assert not near(dets, 200, 100, tol=15)


def test_land_masked_automatically() -> None:
    img = k_clutter(5)
    land = k_clutter(6, mean=10 ** (-10 / 10), nu=6.0)
    img[:, :110] = land[:, :110]
    rng = np.random.default_rng(0)
    for r, c in zip(rng.integers(10, 250, 12), rng.integers(10, 100, 12)):
        img[r, c] = 10 ** 2.5  # urban corner reflectors on land
    add_ship(img, 128, 200, 40.0, 8.0, 0.0, 30.0)
    dets = run(img)
    assert [d for d in dets if d.col < 110] == []
    assert near(dets, 128, 200)
    assert run(img, land_auto=False) != dets  # control: without the mask land objects appear


def test_nodata_masked() -> None:
    img = k_clutter(7)
    add_ship(img, 60, 60, 40.0, 8.0, 45.0, 30.0)
    add_ship(img, 200, 200, 40.0, 8.0, 45.0, 30.0)
    valid = np.ones_like(img, dtype=bool)
    valid[150:, 150:] = False
    img[~valid] = 0.0  # fill value next to sea must not create edge detections
    dets = run(img, valid)
    assert len(dets) == 1 and near(dets, 60, 60)


@pytest.mark.parametrize("bad", [
    lambda d: d.detect(torch.zeros(2, 64, 64), spacing_m=(1.0, 1.0)),
    lambda d: d.detect(torch.full((64, 64), float("nan")), spacing_m=(1.0, 1.0)),
    lambda d: d.detect(torch.ones(64, 64), spacing_m=(-1.0, 1.0)),
    lambda d: d.detect(torch.ones(64, 64), spacing_m=(1.0,)),
    lambda d: d.detect(-torch.ones(64, 64), spacing_m=(1.0, 1.0)),
    lambda d: d.detect(torch.ones(64, 64), spacing_m=(1.0, 1.0), valid=torch.ones(32, 32, dtype=torch.bool)),
    lambda d: d.detect_batch(torch.ones(64, 64), spacing_m=(1.0, 1.0)),
])
def test_invalid_input_raises(bad) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(DetectorInputError):
        bad(CfarDetector("cpu"))


def test_invalid_params_raise() -> None:
    with pytest.raises(DetectorInputError):
        CfarDetector("cpu", pfa=2.0)
    with pytest.raises(DetectorInputError):
        CfarDetector("cpu", no_such_param=1)


def test_nan_in_nodata_is_fine() -> None:
    img = k_clutter(8)
    valid = np.ones_like(img, dtype=bool)
    img[:20] = np.nan
    valid[:20] = False
    assert run(img, valid) == []


def _key(dets: list) -> list[tuple]:
    return sorted((round(d.row, 3), round(d.col, 3), d.kind, round(d.length_m, 2)) for d in dets)


def test_torch_and_numpy_reference_agree() -> None:
    img = k_clutter(9)
    add_ship(img, 70, 60, 50.0, 9.0, 120.0, 32.0)
    add_ship(img, 190, 180, 6.0, 2.0, 20.0, 24.0)
    add_ship(img, 180, 60, 20.0, 4.0, 75.0, 26.0)
    img[:, 230:] = k_clutter(10, mean=0.1)[:, 230:]
    valid = np.ones_like(img, dtype=bool)
    valid[:10, :40] = False
    a = run(img, valid)
    b = reference_detect(img, (SP, SP), valid)
    assert len(a) >= 3
    assert _key(a) == _key(b)


def test_batch_equals_single() -> None:
    imgs = [k_clutter(20), k_clutter(21)]
    add_ship(imgs[0], 100, 100, 40.0, 8.0, 60.0, 30.0)
    add_ship(imgs[1], 150, 80, 8.0, 3.0, 10.0, 25.0)
    det = CfarDetector("cpu")
    batch = det.detect_batch(torch.from_numpy(np.stack(imgs)), spacing_m=(SP, SP))
    single = [det.detect(torch.from_numpy(i), spacing_m=(SP, SP)) for i in imgs]
    assert [_key(b) for b in batch] == [_key(s) for s in single]
    assert all(len(b) == 1 for b in batch)


def test_generator_scene_vessels_found() -> None:
    from detectors.synth.sar import make_sar_scene

    s = make_sar_scene(3, 384, 384, 1.0, n_vessels=2, n_lifeboats=0, land=False, ambiguity_mode="none",
                       nodata_border=False)
    dets = run(s.sigma0_from_dn(), s.dn > 0, spacing=1.0)
    vessels = [t for t in s.truth if t["kind"] == "vessel"]
    for t in vessels:
        m = near(dets, t["row"], t["col"], tol=max(10.0, t["length_m"] / 2))
        assert len(m) == 1 and m[0].kind == "vessel"


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu() -> None:
    img = k_clutter(30)
    add_ship(img, 80, 80, 60.0, 10.0, 30.0, 30.0)
    add_ship(img, 180, 170, 7.0, 2.5, 100.0, 25.0)
    cpu = CfarDetector("cpu").detect(torch.from_numpy(img), spacing_m=(SP, SP))
    gpu = CfarDetector("cuda").detect(torch.from_numpy(img).cuda(), spacing_m=(SP, SP))
    assert _key(cpu) == _key(gpu) and len(cpu) == 2


@pytest.mark.parametrize("seed, spacing", [(41, 0.5), (42, 0.5), (43, 1.0)])
def test_torch_and_reference_agree_on_generator_scenes(seed: int, spacing: float) -> None:
    # Land, no-data border, speckle, ships and lifeboats of the scene generator: the float32
    # full-resolution path must make exactly the reference's (float64) decisions.
    from detectors.synth.sar import make_sar_scene

    s = make_sar_scene(seed, 448, 448, spacing)
    img, valid = s.sigma0_from_dn().astype(np.float32), s.dn > 0
    a = run(img, valid, spacing=spacing)
    b = reference_detect(img, (spacing, spacing), valid)
    assert len(b) > 0
    assert _key(a) == _key(b)
    for da, db in zip(sorted(a, key=lambda d: (d.row, d.col)), sorted(b, key=lambda d: (d.row, d.col))):
        assert da.width_m == db.width_m and da.heading_deg == db.heading_deg and da.attrs == db.attrs
        assert da.score == pytest.approx(db.score, abs=1e-6)


def test_run_components_match_scipy_label() -> None:
    from detectors.sar.cfar import mask_runs, run_components, run_pixels

    rng = np.random.default_rng(0)
    for _ in range(60):
        B, H, W = (int(v) for v in rng.integers(1, 30, 3))
        B = B % 3 + 1
        m = rng.random((B, H, W)) < rng.uniform(0.05, 0.7)
        s, e = mask_runs(torch.from_numpy(m))
        lab, k = run_components(s, e, H, W)
        pix, rid = run_pixels(s, e)
        assert np.array_equal(pix.numpy(), np.flatnonzero(m.ravel()))
        ref, off = [], 0
        for b in range(B):  # tiles of a batch never connect; labels in raster order, like scipy
            lb, kb = ndimage.label(m[b], structure=np.ones((3, 3)))
            ref.append(np.where(lb > 0, lb + off, 0).ravel())
            off += kb
        assert k == off
        assert np.array_equal(lab[rid].numpy() + 1, np.concatenate(ref)[pix.numpy()])


def test_float32_threshold_comparison_is_exact() -> None:
    from detectors.sar.cfar import floor_f32

    rng = np.random.default_rng(1)
    t = torch.from_numpy(rng.lognormal(-5.0, 3.0, 20000))
    t[:5] = torch.tensor([0.0, 1.0, 0.1, 1e-30, math.inf], dtype=torch.float64)
    y = torch.cat([t.float(), torch.nextafter(t.float(), torch.full_like(t.float(), math.inf)),
                   torch.nextafter(t.float(), torch.zeros_like(t.float()))])
    tt = t.repeat(3)
    assert torch.equal(y > floor_f32(tt), y.double() > tt)


def test_large_tile_batch_equals_single() -> None:
    # >= 1 Mpx tiles take the one-at-a-time CPU path of detect_batch; results must not change
    from detectors.synth.sar import make_sar_scene

    s = make_sar_scene(44, 1024, 2048, 0.5)
    img, valid = s.sigma0_from_dn().astype(np.float32), s.dn > 0
    x = torch.from_numpy(np.stack([img[:, :1024], img[:, 1024:]]))
    v = torch.from_numpy(np.stack([valid[:, :1024], valid[:, 1024:]]))
    det = CfarDetector("cpu")
    batch = det.detect_batch(x, spacing_m=(0.5, 0.5), valid=v)
    single = [det.detect(x[k], spacing_m=(0.5, 0.5), valid=v[k]) for k in range(2)]
    assert [_key(b) for b in batch] == [_key(s) for s in single]
    assert sum(len(b) for b in batch) > 0
