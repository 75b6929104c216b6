"""Issue 9, item 3: a radiation bit flip in the weights never costs an alert.

Bits are flipped for real: in a copy of the shipped weights file (flash upset) and in the
loaded tensors of a live detector (DRAM upset). Each test shows the flip matters (the model's
output or hash changes), is detected (checksum / re-hash), is repaired from a redundant copy
(backup file, in-memory golden copy, or the verified file), and that detections afterwards are
exactly the clean model's. Packet bit flips are caught by the CCSDS packet CRC
(tests/test_alerts_packets.py), not here.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from detectors.errors import WeightsError
from detectors.fire.learned import LearnedFireDetector
from detectors.integrity import SessionGuard, WeightGuard, read_verified, recorded_sha256, scrub, sha256_file, state_hash
from detectors.sar.learned import PT_FILE as SAR_PT
from detectors.sar.learned import LearnedSarDetector
from detectors.synth.optical import make_optical_tile
from detectors.synth.sar import make_sar_scene

WEIGHTS = Path(__file__).resolve().parents[1] / "detectors" / "weights"


@pytest.fixture(scope="module")
def sar_tile() -> tuple[torch.Tensor, tuple[float, float]]:
    scene = make_sar_scene(seed=7, rows=512, cols=512, spacing_m=0.5, n_vessels=2, n_lifeboats=1,
                           land=False, nodata_border=False)
    return torch.from_numpy(scene.sigma0_from_dn()), (scene.spacing_m, scene.spacing_m)


@pytest.fixture(scope="module")
def fire_bands() -> dict[str, torch.Tensor]:
    tile = make_optical_tile(seed=11, rows=160, cols=160, pixel_size_m=30.0, sensor="landsat8", n_fires=2,
                             traps=True)
    return {k: torch.from_numpy(np.asarray(v, dtype=np.float32)) for k, v in tile.bands.items()}


def _dets(det: LearnedSarDetector, tile: tuple[torch.Tensor, tuple[float, float]]) -> list[tuple]:
    sigma0, spacing = tile
    return [(d.kind, d.row, d.col, d.score, d.length_m) for d in det.detect(sigma0, spacing_m=spacing)]


def _flip_file_bit(path: Path, offset: int, bit: int = 4) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 1 << bit
    path.write_bytes(bytes(data))


def _flip_tensor_bit(t: torch.Tensor, index: int = 0, bit: int = 30) -> None:
    """Flip one bit of one float32 element in place (bit 30: the exponent's top bit, x ~1e38)."""
    with torch.no_grad():
        flat = t.view(-1)
        as_int = flat[index:index + 1].clone().view(torch.int32)
        as_int ^= 1 << bit
        flat[index] = as_int.view(torch.float32)[0]


@pytest.fixture(scope="module")
def clean_sar(sar_tile: tuple) -> list[tuple]:
    out = _dets(LearnedSarDetector(runtime="torch"), sar_tile)
    assert out, "the clean model must find the scene's vessels for this test to mean anything"
    return out


def test_shipped_weights_match_their_checksums() -> None:
    checks = scrub(WEIGHTS, repair=False)
    assert {c.path.name for c in checks} == {"sar_centernet.pt", "sar_centernet.onnx", "sar_centernet_int8.onnx", "sar_centernet_group.pt",
                                              "sar_centernet_group.onnx",
                                            "fire_unet.pt", "fire_unet.onnx"}
    assert not any(c.upset for c in checks)
    for c in checks:
        assert sha256_file(c.path) == recorded_sha256(c.path) == c.sha256


def test_flipped_bit_in_weights_file_is_detected_and_restored_from_backup(
        tmp_path: Path, sar_tile: tuple, clean_sar: list[tuple]) -> None:
    primary, backup = tmp_path / "flash", tmp_path / "backup"
    primary.mkdir()
    backup.mkdir()
    for d in (primary, backup):
        shutil.copy(SAR_PT, d / SAR_PT.name)
    shutil.copy(SAR_PT.with_name(SAR_PT.name + ".sha256"), primary)
    pt = primary / SAR_PT.name
    _flip_file_bit(pt, pt.stat().st_size // 2)
    with pytest.raises(WeightsError, match="sha256 mismatch"):  # the detector refuses the flipped file
        LearnedSarDetector(weights=pt)
    data, check = read_verified(pt, backups=[backup / SAR_PT.name], repair=True)
    assert check.upset and check.source == backup / SAR_PT.name and check.repaired
    assert "sha256" in check.failures[0] and str(pt) in check.failures[0]
    assert data == SAR_PT.read_bytes() and sha256_file(pt) == check.sha256
    assert _dets(LearnedSarDetector(weights=pt), sar_tile) == clean_sar


def test_no_good_copy_is_an_error_naming_every_copy(tmp_path: Path) -> None:
    pt = tmp_path / SAR_PT.name
    shutil.copy(SAR_PT, pt)
    shutil.copy(SAR_PT.with_name(SAR_PT.name + ".sha256"), tmp_path)
    bak = tmp_path / "bak.pt"
    shutil.copy(SAR_PT, bak)
    _flip_file_bit(pt, 1000)
    _flip_file_bit(bak, 2000)
    with pytest.raises(WeightsError) as err:
        read_verified(pt, backups=[bak, tmp_path / "absent.pt"])
    msg = str(err.value)
    assert str(pt) in msg and str(bak) in msg and "absent.pt: cannot read" in msg


def test_scrub_repairs_a_weights_folder(tmp_path: Path) -> None:
    flash = tmp_path / "weights"
    shutil.copytree(WEIGHTS, flash)
    _flip_file_bit(flash / "fire_unet.onnx", 5000, bit=0)
    checks = {c.path.name: c for c in scrub(flash, backup_dir=WEIGHTS)}
    assert [n for n, c in checks.items() if c.upset] == ["fire_unet.onnx"]
    assert checks["fire_unet.onnx"].repaired
    assert (flash / "fire_unet.onnx").read_bytes() == (WEIGHTS / "fire_unet.onnx").read_bytes()


def test_flipped_bit_in_loaded_sar_weights_is_restored_from_golden_copy(
        sar_tile: tuple, clean_sar: list[tuple]) -> None:
    det = LearnedSarDetector(runtime="torch")
    det.integrity.every_calls = 10_000  # no scheduled check yet: show the flip does damage first
    ref = det.integrity.reference_hash
    name, weight = next((k, v) for k, v in det.net.state_dict().items() if v.dtype == torch.float32 and v.ndim == 4)
    _flip_tensor_bit(weight)
    assert state_hash(det.net) != ref
    assert _dets(det, sar_tile) != clean_sar  # one flipped bit changes what the model reports
    report = det.integrity.verify()
    assert not report.ok and report.corrupted == (name,) and report.restored_from == "golden"
    assert state_hash(det.net) == ref and det.integrity.upsets == 1 and det.integrity.restorations == 1
    assert _dets(det, sar_tile) == clean_sar
    assert det.integrity.verify().ok


def test_scheduled_check_restores_before_the_next_batch(sar_tile: tuple, clean_sar: list[tuple]) -> None:
    """The detector's own hook: with every_calls=2, the flip is repaired at the 2nd network call."""
    det = LearnedSarDetector(runtime="torch")
    guard = det.integrity
    guard.every_calls = 2
    guard.verify()  # resets the call counter
    weight = next(v for v in det.net.state_dict().values() if v.dtype == torch.float32 and v.ndim == 4)
    _flip_tensor_bit(weight, index=3)
    first = _dets(det, sar_tile)  # call 1: not checked yet, runs on the flipped weights
    second = _dets(det, sar_tile)  # call 2: tick() verifies and restores before running
    assert first != clean_sar and second == clean_sar
    assert guard.restorations == 1


def test_golden_copy_hit_too_falls_back_to_verified_file(sar_tile: tuple, clean_sar: list[tuple]) -> None:
    det = LearnedSarDetector(runtime="torch")
    guard = det.integrity
    ref = guard.reference_hash
    golden = bytearray(guard._golden)
    golden[len(golden) // 2] ^= 0x01  # flip a bit of the spare in host memory as well
    guard._golden = bytes(golden)
    weight = next(v for v in det.net.state_dict().values() if v.dtype == torch.float32 and v.ndim == 4)
    _flip_tensor_bit(weight, index=7)
    report = guard.verify()
    assert report.restored_from == "reload"
    assert state_hash(det.net) == ref and _dets(det, sar_tile) == clean_sar
    assert guard.verify().ok  # a fresh, good golden copy was taken


def test_golden_copy_hit_alone_is_retaken_from_live_weights() -> None:
    det = LearnedSarDetector(runtime="torch")
    guard = det.integrity
    before = guard._golden
    guard._golden = before[:100] + bytes([before[100] ^ 0x80]) + before[101:]
    assert guard.verify().restored_from == "live"
    assert guard._golden == before and guard.verify().ok


def test_flipped_bit_in_loaded_fire_weights_is_restored(fire_bands: dict[str, torch.Tensor]) -> None:
    det = LearnedFireDetector()
    clean = det.detect(fire_bands, pixel_size_m=30.0)
    assert clean.mask.any()
    guard = det.integrity
    guard.every_calls = 10_000
    guard.verify()
    weight = next(v for v in det.model.state_dict().values() if v.dtype == torch.float32 and v.ndim == 4)
    _flip_tensor_bit(weight)
    hit = det.detect(fire_bands, pixel_size_m=30.0)
    assert not torch.equal(hit.confidence, clean.confidence)
    guard.every_calls = 1  # the next call's hook verifies first
    fixed = det.detect(fire_bands, pixel_size_m=30.0)
    assert guard.restorations == 1
    assert torch.equal(fixed.mask, clean.mask) and torch.equal(fixed.confidence, clean.confidence)


def test_guard_rejects_nonsense_schedule() -> None:
    with pytest.raises(WeightsError, match="every_calls"):
        WeightGuard(torch.nn.Linear(2, 2), every_calls=0)
    with pytest.raises(WeightsError, match="every_calls"):
        SessionGuard(WEIGHTS / "sar_centernet.onnx", make=lambda b: None, every_seconds=0.0)


def _flipped_onnx(data: bytes) -> bytes:
    """The ONNX model with the exponent's top bit flipped in the first element of its first 4-D
    float initializer (a conv kernel): what a DRAM upset in onnxruntime's copy of it would be."""
    import onnx
    from onnx import numpy_helper

    model = onnx.load_from_string(data)
    for init in model.graph.initializer:
        arr = numpy_helper.to_array(init)
        if arr.dtype == np.float32 and arr.ndim == 4:
            flat = arr.copy().reshape(-1).view(np.int32)
            flat[0] ^= 1 << 30
            init.CopyFrom(numpy_helper.from_array(flat.view(np.float32).reshape(arr.shape), init.name))
            return model.SerializeToString()
    raise AssertionError("no conv kernel in the model")


def test_flipped_bit_in_an_onnxruntime_session_lives_only_until_the_scheduled_rebuild(
        sar_tile: tuple, clean_sar: list[tuple]) -> None:
    """The CPU default runs the network in onnxruntime, whose weights cannot be re-hashed: the session
    is rebuilt from the verified in-memory copy on schedule instead (SessionGuard)."""
    det = LearnedSarDetector(device="cpu")
    assert det.runtime == "onnxruntime" and det.sessions is not None
    clean = _dets(det, sar_tile)
    assert len(clean) == len(clean_sar)  # the torch model's detections
    for (k, r, c, s, n), (k2, r2, c2, s2, n2) in zip(clean, clean_sar):
        assert (k, n) == (k2, n2) and abs(r - r2) < 1e-2 and abs(c - c2) < 1e-2 and abs(s - s2) < 1e-5
    guard = det.sessions
    guard.every_calls, guard.every_seconds = 10_000, 1e9  # no scheduled rebuild while the flip is shown
    guard.refresh()
    guard._session = guard.make(_flipped_onnx(guard._bytes))  # the session's copy hit
    assert _dets(det, sar_tile) != clean  # one flipped bit changes what the model reports
    guard.every_calls = 1  # the next call's hook rebuilds the session first
    assert _dets(det, sar_tile) == clean
    assert guard.refreshes >= 2 and guard.reloads == 0  # (one per network call of that detect)


def test_hit_spare_of_an_onnx_session_is_read_again_from_the_verified_file(sar_tile: tuple) -> None:
    det = LearnedSarDetector(device="cpu")
    clean = _dets(det, sar_tile)
    guard = det.sessions
    good = guard._bytes
    guard._bytes = good[:5000] + bytes([good[5000] ^ 0x10]) + good[5001:]
    assert guard.refresh() == "reload"
    assert guard._bytes == good and guard.reloads == 1
    assert _dets(det, sar_tile) == clean


def test_onnx_session_whose_file_and_spare_are_both_hit_is_refused(tmp_path: Path) -> None:
    onnx_file = tmp_path / "sar_centernet.onnx"
    shutil.copy(WEIGHTS / "sar_centernet.onnx", onnx_file)
    shutil.copy(WEIGHTS / "sar_centernet.onnx.sha256", tmp_path)
    guard = SessionGuard(onnx_file, make=lambda b: b"session")
    guard._bytes = b"hit" + guard._bytes[3:]
    _flip_file_bit(onnx_file, 4000)
    with pytest.raises(WeightsError, match="matches its recorded sha256"):
        guard.refresh()


def test_flipped_bit_in_the_fire_onnx_session_is_gone_at_the_next_rebuild(fire_bands: dict[str, torch.Tensor]) -> None:
    from detectors.fire.learned import LearnedFireOnnxDetector

    det = LearnedFireOnnxDetector(device="cpu", cascade=False)
    clean = det.detect(fire_bands, pixel_size_m=30.0)
    assert clean.mask.any()
    guard = det.sessions
    guard.every_calls, guard.every_seconds = 10_000, 1e9
    guard.refresh()
    guard._session = guard.make(_flipped_onnx(guard._bytes))
    assert not torch.equal(det.detect(fire_bands, pixel_size_m=30.0).confidence, clean.confidence)
    guard.every_calls = 1
    fixed = det.detect(fire_bands, pixel_size_m=30.0)
    assert torch.equal(fixed.mask, clean.mask) and torch.equal(fixed.confidence, clean.confidence)
