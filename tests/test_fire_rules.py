"""fire-rules on hand-built tiles: each published test, each look-alike, each input failure."""

from __future__ import annotations

import logging

import pytest
import torch

from detectors import DetectorInputError, FireMap, MissingBandError, get_detector, list_detectors
from detectors.fire.rules import FireRulesDetector

H = W = 80
#: A plain vegetated (forest-like) Landsat-8 TOA spectrum: coastal..swir22.
FOREST = {"coastal": 0.10, "blue": 0.08, "green": 0.07, "red": 0.05, "nir08": 0.30, "swir16": 0.16,
          "swir22": 0.08}


def tile(spec: dict[str, float] = FOREST, seed: int = 0, noise: float = 0.003) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {k: torch.full((H, W), v) + noise * torch.randn(H, W, generator=g) for k, v in spec.items()}


def put(bands: dict[str, torch.Tensor], r: int, c: int, **vals: float) -> None:
    for k, v in vals.items():
        bands[k][r, c] = v


def run(bands: dict[str, torch.Tensor], algorithm: str = "auto", **kw: object) -> FireMap:
    return FireRulesDetector(torch.device("cpu"), algorithm=algorithm).detect(bands, pixel_size_m=30.0, **kw)


def test_registered_and_protocol() -> None:
    assert "fire-rules" in list_detectors("optical")
    det = get_detector("fire-rules", device="cpu")
    assert det.modality == "optical" and det.name == "fire-rules" and det.version
    # twice the 61 x 61 half-window plus the 1-px neighbour tests: owned pixels see their window
    assert det.required_overlap_px(30.0) == 62
    assert FireRulesDetector(algorithm="murphy2016").required_overlap_px(30.0) == 62  # intensity window


def test_schroeder_unambiguous_pixel_detected_and_high_confidence() -> None:
    b = tile()
    put(b, 40, 40, nir08=0.25, swir16=0.40, swir22=0.90)  # R75 = 3.6, diff 0.65, rho7 0.9 (Eq. 1)
    fm = run(b, "schroeder2016")
    assert fm.mask[40, 40] and int(fm.mask.sum()) == 1
    assert fm.confidence[40, 40] >= 0.8
    assert fm.intensity[40, 40] == pytest.approx(0.90 - 0.08, abs=0.01)  # SWIR excess over background
    assert fm.mask.dtype == torch.bool and fm.confidence.dtype == torch.float32


def test_schroeder_eq1_thresholds_are_the_published_ones() -> None:
    # rho7 = 0.49 < 0.5 fails Eq. 1, but R75 > 1.8 etc. make it a potential fire confirmed by context;
    # against a background with rho7 = 0.42 it misses Eq. 5 (0.49 < 0.42 + 0.08) and must fail.
    b = tile()
    put(b, 40, 40, nir08=0.15, swir16=0.2, swir22=0.49)
    assert run(b, "schroeder2016").mask[40, 40]
    hot = tile({**FOREST, "nir08": 0.28, "swir16": 0.30, "swir22": 0.42}, noise=0.0)  # R75 1.5: background
    put(hot, 40, 40, nir08=0.15, swir16=0.2, swir22=0.49)
    assert not run(hot, "schroeder2016").mask[40, 40]


def test_contextual_window_decides() -> None:
    """The same moderately hot pixel: fire in a cool background, not in a uniformly warm one."""
    cool = tile()
    put(cool, 40, 40, nir08=0.12, swir16=0.20, swir22=0.34)  # R75 2.8 (> 1.8), below Eq. 1's 0.5
    fm = run(cool, "schroeder2016")
    assert fm.mask[40, 40]
    assert 0.3 <= float(fm.confidence[40, 40]) < 0.8  # contextual only: FIRMS "nominal"
    warm_spec = {**FOREST, "nir08": 0.14, "swir16": 0.22, "swir22": 0.30}  # R75 ~2.1 everywhere
    warm = tile(warm_spec, noise=0.01)
    put(warm, 40, 40, nir08=0.12, swir16=0.20, swir22=0.34)
    assert not run(warm, "schroeder2016").mask[40, 40]


@pytest.mark.parametrize("name,spec", [
    ("bright roof", {"coastal": 0.45, "blue": 0.48, "green": 0.50, "red": 0.52, "nir08": 0.54,
                     "swir16": 0.53, "swir22": 0.47}),
    ("hot bare soil", {"coastal": 0.16, "blue": 0.19, "green": 0.26, "red": 0.34, "nir08": 0.40,
                       "swir16": 0.50, "swir22": 0.46}),
    ("sun glint", {"coastal": 0.55, "blue": 0.52, "green": 0.50, "red": 0.48, "nir08": 0.45,
                   "swir16": 0.42, "swir22": 0.40}),
    ("cloud", {"coastal": 0.70, "blue": 0.72, "green": 0.72, "red": 0.71, "nir08": 0.68,
               "swir16": 0.45, "swir22": 0.28}),
])
@pytest.mark.parametrize("algorithm", ["auto", "schroeder2016", "murphy2016", "kumar_roy2018"])
def test_look_alikes_rejected(name: str, spec: dict[str, float], algorithm: str) -> None:
    b = tile()
    for k, v in spec.items():
        b[k][30:36, 30:36] = v  # a 6 x 6 object, much brighter than the forest around it
    fm = run(b, algorithm)
    assert not bool(fm.mask.any()), f"{name} flagged by {algorithm}"


def test_water_left_out_of_the_background() -> None:
    """Eqs. 7-9: a warm shore next to a lake must not be judged against dark water.

    Water can never pass Eq. 1/3 itself (rho7 < rho5), so the water test matters through the
    background: without it, a strip of warm land whose only non-candidate neighbours are water
    looks hot against rho7 ~ 0.01 and the whole shore becomes "fire".
    """
    water = {"coastal": 0.12, "blue": 0.09, "green": 0.10, "red": 0.065, "nir08": 0.03,
             "swir16": 0.018, "swir22": 0.008}
    b = tile(water, noise=0.0005)
    shore = {"coastal": 0.10, "blue": 0.08, "green": 0.07, "red": 0.06, "nir08": 0.14,
             "swir16": 0.16, "swir22": 0.33}  # R75 2.4, diff 0.19, R76 2.1: Eq. 3 candidates
    for k, v in shore.items():
        b[k][:, 36:44] = v + 0.02 * torch.rand(H, 8, generator=torch.Generator().manual_seed(5))
    fm = run(b, "schroeder2016")
    assert "schroeder2016:eq7-9(water)" in fm.tests_run
    assert not bool(fm.mask.any())
    reduced = {k: b[k] for k in ("nir08", "swir16", "swir22")}  # no water test possible
    fm_r = run(reduced, "schroeder2016")
    assert "schroeder2016:eq7-9(water)" not in fm_r.tests_run
    assert bool(fm_r.mask[:, 36:44].any())


def test_saturation_eq2_needs_coastal() -> None:
    b = tile()
    # folded/saturated pixel: rho7 reads low, rho6 saturated high, rho5 > 0.4, rho1 < 0.2
    put(b, 20, 20, nir08=0.45, swir16=0.95, swir22=0.05)
    fm = run(b, "schroeder2016")
    assert fm.mask[20, 20] and "schroeder2016:eq2" in fm.tests_run
    no_coastal = {k: v for k, v in b.items() if k != "coastal"}
    fm2 = run(no_coastal, "schroeder2016")
    assert not fm2.mask[20, 20] and "schroeder2016:eq2" not in fm2.tests_run


def test_murphy_beta_only_next_to_alpha() -> None:
    b = tile()
    put(b, 40, 40, nir08=0.2, swir16=0.3, swir22=0.6)  # alpha: 0.6/0.3 = 2 >= 1.4, 0.6/0.2 >= 1.4
    put(b, 40, 41, nir08=0.25, swir16=0.6, swir22=0.6)  # beta only: 0.6/0.25 >= 2, both >= 0.5
    put(b, 10, 10, nir08=0.25, swir16=0.6, swir22=0.6)  # beta alone, far from alpha
    fm = run(b, "murphy2016")
    assert fm.mask[40, 40] and fm.mask[40, 41] and not fm.mask[10, 10]


def test_kumar_roy_unambiguous() -> None:
    b = tile()
    put(b, 40, 40, red=0.05, nir08=0.2, swir16=0.3, swir22=0.6)  # 0.05 <= 0.53*0.6 - 0.214 = 0.104
    assert run(b, "kumar_roy2018").mask[40, 40]


def test_missing_band_names_band_and_algorithm() -> None:
    b = tile()
    del b["swir22"]
    with pytest.raises(MissingBandError, match="swir22") as ei:
        run(b, "schroeder2016")
    assert "schroeder2016" in str(ei.value)
    with pytest.raises(MissingBandError, match="kumar_roy2018.*red"):
        run({k: v for k, v in tile().items() if k != "red"}, "kumar_roy2018")
    with pytest.raises(MissingBandError, match="mwir"):
        run(tile(), "contextual_bt")
    with pytest.raises(MissingBandError, match="swir22"):
        run({"red": tile()["red"]})


def test_reduced_mode_records_tests_and_nir_substitution(caplog: pytest.LogCaptureFixture) -> None:
    full = tile()
    b = {"nir09": full["nir08"], "swir16": full["swir16"], "swir22": full["swir22"]}
    put(b, 40, 40, nir09=0.25, swir16=0.40, swir22=0.90)
    with caplog.at_level(logging.INFO, logger="detectors.fire.rules"):
        fm = run(b)
    assert fm.mask[40, 40]
    assert "schroeder2016:eq1" in fm.tests_run and "murphy2016:alpha" in fm.tests_run
    assert "schroeder2016:rho5=nir09" in fm.tests_run
    assert "schroeder2016:eq2" not in fm.tests_run and "schroeder2016:eq7-9(water)" not in fm.tests_run
    assert "skipped" in caplog.text and "eq2" in caplog.text


def test_dn_scaled_input_rejected() -> None:
    b = {k: v * 10000 for k, v in tile().items()}
    with pytest.raises(DetectorInputError, match="10000"):
        run(b)


def test_nan_negative_and_invalid_pixels_are_never_fire() -> None:
    b = tile()
    put(b, 40, 40, nir08=0.25, swir16=0.40, swir22=0.90)
    put(b, 10, 10, nir08=float("nan"), swir16=0.40, swir22=0.90)
    put(b, 11, 11, nir08=-0.5, swir16=0.40, swir22=0.90)  # fill-value-like: R75 would be huge
    put(b, 12, 12, swir22=float("inf"))
    valid = torch.ones(H, W, dtype=torch.bool)
    valid[40, 40] = False
    fm = run(b, valid=valid)
    assert not bool(fm.mask.any())
    assert torch.isfinite(fm.confidence).all() and torch.isfinite(fm.intensity).all()


def test_bad_arguments() -> None:
    with pytest.raises(DetectorInputError, match="algorithm"):
        FireRulesDetector(algorithm="magic")
    with pytest.raises(DetectorInputError, match="not tunable"):
        FireRulesDetector(threshold=0.1)
    with pytest.raises(DetectorInputError, match="shape"):
        run({"nir08": torch.zeros(4, 4), "swir16": torch.zeros(4, 4), "swir22": torch.zeros(5, 4)})
    with pytest.raises(DetectorInputError, match="pixel_size_m"):
        FireRulesDetector().detect(tile(), pixel_size_m=0.0)
    with pytest.raises(DetectorInputError, match="kelvin"):
        run({**tile(), "mwir": torch.full((H, W), 30.0), "lwir11": torch.full((H, W), 25.0)}, "contextual_bt")


def _thermal(t4_bg: float = 300.0, t11_bg: float = 295.0, seed: int = 1) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {"mwir": t4_bg + 1.0 * torch.randn(H, W, generator=g),
            "lwir11": t11_bg + 1.0 * torch.randn(H, W, generator=g),
            "nir08": torch.full((H, W), 0.2)}


def test_giglio_contextual_bt() -> None:
    b = _thermal()
    b["mwir"][40, 40], b["lwir11"][40, 40] = 330.0, 298.0  # dT 32 K vs ~5 K; T4 30 K above
    b["mwir"][10, 10], b["lwir11"][10, 10] = 365.0, 300.0  # absolute test (> 360 K)
    fm = run(b, "contextual_bt")
    assert fm.mask[40, 40] and fm.mask[10, 10] and int(fm.mask.sum()) == 2
    assert fm.confidence[10, 10] == pytest.approx(1.0)
    # the same 330 K pixel in a warm background (dT 27 K, not "background fire") is not a fire:
    # its dT = 32 K misses mean(dT) + 6 K
    hot = _thermal(t4_bg=324.0, t11_bg=297.0)
    hot["mwir"][40, 40], hot["lwir11"][40, 40] = 330.0, 298.0
    assert not run(hot, "contextual_bt").mask[40, 40]


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cpu_and_cuda_agree() -> None:
    b = tile(seed=3)
    put(b, 40, 40, nir08=0.25, swir16=0.40, swir22=0.90)
    put(b, 50, 20, nir08=0.12, swir16=0.20, swir22=0.34)
    b.update({k: v for k, v in _thermal().items() if k != "nir08"})
    b["mwir"][60, 60] = 340.0
    for algo in ("auto", "schroeder2016", "murphy2016", "kumar_roy2018", "contextual_bt"):
        cpu = FireRulesDetector(torch.device("cpu"), algorithm=algo).detect(b, pixel_size_m=30.0)
        gpu = FireRulesDetector(torch.device("cuda"), algorithm=algo).detect(
            {k: v.cuda() for k, v in b.items()}, pixel_size_m=30.0)
        assert gpu.mask.is_cuda
        assert torch.equal(cpu.mask, gpu.mask.cpu()), algo
        assert torch.allclose(cpu.confidence, gpu.confidence.cpu(), atol=1e-4), algo


def test_integral_images_equal_torch_cumsums_bit_for_bit() -> None:
    """The CPU integral image (numpy cumsums into a padded buffer) is the torch expression it
    replaced, exactly: the contextual tests' thresholds compare against these sums."""
    import torch.nn.functional as F

    from detectors.fire.rules import _integral_image

    g = torch.Generator().manual_seed(4)
    for shape, dtype in (((257, 190), torch.float32), ((64, 1), torch.float64), ((1, 33), torch.float32)):
        v = torch.rand(shape, generator=g, dtype=torch.float64).to(dtype) * 1e3
        want = F.pad(v.double().cumsum(0).cumsum(1), (1, 0, 1, 0))
        got = _integral_image(v)
        assert got.dtype == torch.float64 and got.shape == (shape[0] + 1, shape[1] + 1)
        assert torch.equal(got, want)
