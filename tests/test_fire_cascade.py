"""fire-learned's cascade: the network (and the intensity background) only in prescreened windows,
with the full pass's fire pixels; box means from running sums equal torch's average pool."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from detectors import get_detector
from detectors.errors import DetectorInputError
from detectors.fire.learned import box_mean
from detectors.synth.optical import make_optical_tile


@pytest.mark.parametrize("k", [5, 15, 31])
@pytest.mark.parametrize("include_pad", [True, False])
def test_box_mean_equals_the_average_pool(k: int, include_pad: bool) -> None:
    x = torch.rand(2, 1, 70, 53, generator=torch.Generator().manual_seed(k)) * 0.5
    ref = F.avg_pool2d(x, k, stride=1, padding=k // 2, count_include_pad=include_pad)
    torch.testing.assert_close(box_mean(x, k, include_pad), ref, rtol=0, atol=1e-6)


@pytest.mark.parametrize("seed,sensor,px", [(404, "landsat8", 30.0), (505, "sentinel2", 20.0)])
def test_cascade_reports_the_full_pass_fire_pixels(seed: int, sensor: str, px: float) -> None:
    t = make_optical_tile(seed, rows=512, cols=512, pixel_size_m=px, sensor=sensor, n_fires=4, traps=True)
    bands = {k: torch.from_numpy(v.astype("float32")) for k, v in t.bands.items()}
    full = get_detector("fire-learned", device="cpu", cascade=False).detect(bands, pixel_size_m=px)
    det = get_detector("fire-learned", device="cpu")  # the default on a CPU: the cascade
    got = det.detect(bands, pixel_size_m=px)
    assert det.cascade_on and int(full.mask.sum()) > 0
    assert torch.equal(got.mask, full.mask)
    torch.testing.assert_close(got.confidence, full.confidence, rtol=0, atol=1e-5)
    torch.testing.assert_close(got.intensity, full.intensity, rtol=0, atol=1e-5)
    assert det.last_window_fraction < 0.8


def test_no_fire_candidate_means_no_network_call_and_no_fire() -> None:
    flat = {"swir16": torch.full((256, 256), 0.2), "swir22": torch.full((256, 256), 0.15)}
    det = get_detector("fire-learned", device="cpu", cascade=True)
    got = det.detect(flat, pixel_size_m=30.0)
    assert det.last_window_fraction == 0.0 and not bool(got.mask.any())


def test_cascade_option_is_checked() -> None:
    with pytest.raises(DetectorInputError, match="cascade"):
        get_detector("fire-learned", device="cpu", cascade="fast")
    assert not get_detector("fire-learned-onnx", device="cpu", cascade=False).cascade_on
