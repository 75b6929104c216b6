"""Tests of the learned fire detector (fire-learned / fire-learned-onnx) and its shipped weights.

Why these: the weights are a flight artefact, so a corrupted copy must be refused; the torch
and onnxruntime back-ends must report the same fires (the GPU box runs ONNX); the ONNX file
must carry its band order and normalisation; and the model must tell a hot pixel from the
classic bright look-alikes.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from detectors import get_detector, list_detectors
from detectors.errors import DetectorInputError, MissingBandError, WeightsError
from detectors.fire.learned import (BANDS, ONNX_FILE, ONNX_INPUT, PT_FILE, LearnedFireDetector,
                                    LearnedFireOnnxDetector, onnx_metadata, sha256_file)


@pytest.fixture(scope="module")
def torch_det() -> LearnedFireDetector:
    return LearnedFireDetector(torch.device("cpu"))


@pytest.fixture(scope="module")
def onnx_det() -> LearnedFireOnnxDetector:
    return LearnedFireOnnxDetector(torch.device("cpu"))


def _scene(seed: int = 0, size: int = 64) -> dict[str, torch.Tensor]:
    """Uniform grassland-like background (swir16 0.30, swir22 0.22) with sensor noise, plus:
    a sub-pixel fire at (20, 20) (Planck at ~900 K adds ~10x more at 2.2 um than at 1.6 um),
    a bright roof at (44, 16), sun glint at (20, 46) and hot bare soil at (46, 46)."""
    rng = np.random.default_rng(seed)
    s16 = 0.30 + rng.normal(0, 0.004, (size, size))
    s22 = 0.22 + rng.normal(0, 0.004, (size, size))
    s16[20, 20] += 0.06
    s22[20, 20] += 0.60
    s16[43:46, 15:18] = 0.50 * 0.92  # roof: 0.50 / 0.45 surface, times transmittance
    s22[43:46, 15:18] = 0.45 * 0.90
    s16[19:22, 45:48] += 0.6 * 0.92  # glint: spectrally flat specular reflection
    s22[19:22, 45:48] += 0.6 * 0.90
    s16[43:50, 43:50] = 0.52 * 0.92  # hot bare soil
    s22[43:50, 43:50] = 0.48 * 0.90
    return {"swir16": torch.tensor(s16, dtype=torch.float32), "swir22": torch.tensor(s22, dtype=torch.float32)}


def test_registered() -> None:
    names = list_detectors("optical")
    assert "fire-learned" in names and "fire-learned-onnx" in names
    det = get_detector("fire-learned", device="cpu")
    assert isinstance(det, LearnedFireDetector)
    assert det.required_overlap_px(20.0) >= 2 * 11


def test_checksum_rejects_corrupt_copy(tmp_path: Path) -> None:
    bad = tmp_path / PT_FILE.name
    shutil.copy(PT_FILE, bad)
    good_sha = sha256_file(PT_FILE)
    (tmp_path / (bad.name + ".sha256")).write_text(f"{good_sha}  {bad.name}\n")
    LearnedFireDetector("cpu", weights=bad)  # an intact copy with its checksum loads
    data = bytearray(bad.read_bytes())
    data[len(data) // 2] ^= 0x01
    bad.write_bytes(bytes(data))
    with pytest.raises(WeightsError, match="sha256 mismatch"):
        LearnedFireDetector("cpu", weights=bad)
    onnx_copy = tmp_path / ONNX_FILE.name
    shutil.copy(ONNX_FILE, onnx_copy)
    with pytest.raises(WeightsError, match="no sha256"):  # unrecorded weights are refused too
        LearnedFireOnnxDetector("cpu", weights=onnx_copy)
    with pytest.raises(WeightsError, match="sha256 mismatch"):
        LearnedFireOnnxDetector("cpu", weights=onnx_copy, sha256="0" * 64)


def test_torch_and_onnxruntime_agree(torch_det: LearnedFireDetector, onnx_det: LearnedFireOnnxDetector) -> None:
    from detectors.synth.optical import make_optical_tile

    tile = make_optical_tile(20001, rows=128, cols=128, pixel_size_m=20.0, sensor="sentinel2")
    bands = {k: torch.from_numpy(v) for k, v in tile.bands.items()}
    a = torch_det.detect(bands, pixel_size_m=20.0)
    b = onnx_det.detect(bands, pixel_size_m=20.0)
    assert a.mask.any()
    assert torch.equal(a.mask, b.mask)
    x = torch.stack([bands[k] for k in BANDS])[None]
    diff = (torch_det.predict_proba(x) - onnx_det.predict_proba(x)).abs().max().item()
    assert diff < 1e-4


@pytest.mark.parametrize("shape", [(1, 2, 64, 64), (3, 2, 80, 112)])
def test_dynamic_axes(onnx_det: LearnedFireOnnxDetector, torch_det: LearnedFireDetector,
                      shape: tuple[int, int, int, int]) -> None:
    x = torch.rand(shape, generator=torch.Generator().manual_seed(1)) * 0.5
    p = onnx_det.predict_proba(x)
    assert tuple(p.shape) == (shape[0], shape[2], shape[3])
    assert (p - torch_det.predict_proba(x)).abs().max().item() < 1e-4


def test_onnx_metadata_and_axes() -> None:
    import onnx

    md = onnx_metadata(ONNX_FILE)
    for key in ("name", "version", "bands", "normalisation", "training_data", "date", "threshold"):
        assert md.get(key), key
    assert md["bands"].split(",") == list(BANDS)
    model = onnx.load(str(ONNX_FILE))
    inp = next(i for i in model.graph.input if i.name == ONNX_INPUT)
    dims = [d.dim_param or d.dim_value for d in inp.type.tensor_type.shape.dim]
    assert dims == ["batch", len(BANDS), "height", "width"]


@pytest.mark.parametrize("backend", ["torch", "onnx"])
def test_hot_pixel_found_lookalikes_not(backend: str, torch_det: LearnedFireDetector,
                                        onnx_det: LearnedFireOnnxDetector) -> None:
    det = torch_det if backend == "torch" else onnx_det
    fm = det.detect(_scene(), pixel_size_m=30.0)
    m = fm.mask
    assert m[20, 20], "hot pixel missed"
    assert fm.confidence[20, 20] >= det.threshold and fm.intensity[20, 20] > 0.3
    assert not m[43:46, 15:18].any(), "roof flagged"
    assert not m[19:22, 45:48].any(), "glint flagged"
    assert not m[43:50, 43:50].any(), "hot soil flagged"
    assert int(m.sum()) <= 9  # the fire and at most its PSF neighbours


def test_valid_mask_and_extra_bands(torch_det: LearnedFireDetector) -> None:
    bands = _scene()
    bands["nir08"] = torch.full((64, 64), 0.3)  # ignored
    valid = torch.ones(64, 64, dtype=torch.bool)
    valid[20, 20] = False
    fm = torch_det.detect(bands, pixel_size_m=20.0, valid=valid)
    assert not fm.mask[20, 20]


def test_missing_band_named(torch_det: LearnedFireDetector) -> None:
    bands = _scene()
    del bands["swir16"]
    with pytest.raises(MissingBandError, match="swir16"):
        torch_det.detect(bands, pixel_size_m=20.0)


def test_bad_inputs(torch_det: LearnedFireDetector) -> None:
    bands = _scene()
    with pytest.raises(DetectorInputError, match="not a reflectance"):
        torch_det.detect({k: v * 10000 for k, v in bands.items()}, pixel_size_m=20.0)
    with pytest.raises(DetectorInputError, match="shape"):
        torch_det.detect({"swir16": bands["swir16"], "swir22": bands["swir22"][:10]}, pixel_size_m=20.0)
    with pytest.raises(DetectorInputError, match="pixel_size_m"):
        torch_det.detect(bands, pixel_size_m=-1.0)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu(torch_det: LearnedFireDetector) -> None:
    bands = _scene()
    gpu = LearnedFireDetector(torch.device("cuda"))
    fm = gpu.detect({k: v.cuda() for k, v in bands.items()}, pixel_size_m=30.0)
    assert fm.mask.is_cuda
    ref = torch_det.detect(bands, pixel_size_m=30.0)
    assert torch.equal(fm.mask.cpu(), ref.mask)
    assert (fm.confidence.cpu() - ref.confidence).abs().max().item() < 1e-4
    onnx_gpu = LearnedFireOnnxDetector(torch.device("cuda"))
    x = torch.stack([bands[k] for k in BANDS])[None]
    assert (onnx_gpu.predict_proba(x) - torch_det.predict_proba(x)).abs().max().item() < 1e-3


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # torch's legacy ONNX exporter, used on purpose
@pytest.mark.parametrize("feature_set", ["v1", "v2", "v3", None])
def test_feature_sets_round_trip(tmp_path: Path, feature_set: str | None) -> None:
    """Both input feature sets load from a checkpoint (a 1.0.x checkpoint names none: v1), report
    their own receptive field, and export to an ONNX file that agrees with torch."""
    from detectors.fire.learned import FEATURE_SETS, RECEPTIVE_HALF_BY_SET, FireNet, export_onnx

    fs = feature_set or "v1"
    torch.manual_seed(0)
    net = FireNet(width=8, feature_set=fs).eval()
    meta = {"name": "t", "version": "0.0.1", "bands": list(BANDS), "width": 8, "threshold": 0.5}
    if feature_set is not None:
        meta["features"] = feature_set
    pt = tmp_path / "m.pt"
    torch.save({"state_dict": net.state_dict(), "meta": meta}, pt)
    det = LearnedFireDetector(weights=pt, sha256=sha256_file(pt))
    assert det.model.net.feature_set == fs and det.version == "0.0.1"
    assert det.receptive_half == RECEPTIVE_HALF_BY_SET[fs]
    assert det.required_overlap_px() >= 2 * det.receptive_half
    x = torch.rand(2, len(BANDS), 40, 53, generator=torch.Generator().manual_seed(2)) * 0.5
    assert net.features(x).shape[1] == FEATURE_SETS[fs]
    onnx_path = export_onnx(net, tmp_path / "m.onnx", {"bands": ",".join(BANDS), "threshold": "0.5",
                                                        "features": fs, "version": "0.0.1"})
    odet = LearnedFireOnnxDetector(weights=onnx_path, sha256=sha256_file(onnx_path))
    assert odet.receptive_half == RECEPTIVE_HALF_BY_SET[fs]
    assert (odet.predict_proba(x) - det.predict_proba(x)).abs().max().item() < 1e-4


def test_shipped_pt_and_onnx_agree_on_metadata() -> None:
    md = onnx_metadata(ONNX_FILE)
    meta = torch.load(PT_FILE, map_location="cpu", weights_only=True)["meta"]
    assert md["version"] == meta["version"]
    assert md.get("features", "v1") == meta.get("features", "v1")
    assert abs(float(md["threshold"]) - float(meta["threshold"])) < 1e-4
    assert md["torch_weights_sha256"] == sha256_file(PT_FILE)
