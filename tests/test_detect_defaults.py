"""Default detectors: the learned models, with the classical detector as a fallback when the
learned weights cannot be trusted (checksum mismatch), so a scene is never lost to a bit flip."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import detectors.sar.learned as sar_learned
import detectors.sar.network as sar_network
import pipelines.detect as detect_mod
from detectors.errors import WeightsError
from pipelines.detect import DEFAULT_DETECTORS, ScanOptions, scan_scene
from pipelines.errors import SceneError


def _sea_with_ship(seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    dn = (rng.gamma(4.0, 1.0 / 4.0, (384, 384)) ** 0.5 * 300).astype(np.float32)
    dn[180:200, 150:156] = 20000.0  # a bright 10 m x 3 m target at 0.5 m
    return np.clip(dn, 1, 65535).astype(np.uint16)


@pytest.fixture
def corrupt_sar_weights(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A copy of the shipped weights with one flipped bit (its recorded checksum copied unchanged)."""
    d = tmp_path / "weights"
    d.mkdir()
    pt = d / sar_network.PT_FILE.name
    shutil.copy(sar_network.PT_FILE, pt)
    shutil.copy(sar_network.PT_FILE.with_name(sar_network.PT_FILE.name + ".sha256"), d)
    raw = bytearray(pt.read_bytes())
    raw[len(raw) // 2] ^= 0x10
    pt.write_bytes(bytes(raw))
    monkeypatch.setattr(sar_network, "PT_FILE", pt)  # where the default path is read
    monkeypatch.setattr(detect_mod, "_DETECTOR_CACHE", {})
    return pt


def test_defaults_are_the_learned_detectors() -> None:
    assert DEFAULT_DETECTORS == {"sar": ("sar-fused",), "optical": ("fire-learned",)}


def test_default_scan_falls_back_to_cfar_when_weights_fail_their_checksum(
        tmp_path: Path, write_tiny_sar: Any, corrupt_sar_weights: Path) -> None:
    tif = write_tiny_sar(tmp_path, _sea_with_ship())
    with pytest.raises(WeightsError):
        sar_network.load_checkpoint()
    res = scan_scene(tif, ScanOptions(device="cpu"))
    assert res.detectors == ["sar-cfar"]
    assert any("sar-fused unavailable" in n and "sar-cfar" in n for n in res.notes)
    assert res.alerts and {a.detector for a in res.alerts} == {"sar-cfar"}


def test_named_learned_detector_with_bad_weights_fails_the_scene(
        tmp_path: Path, write_tiny_sar: Any, corrupt_sar_weights: Path) -> None:
    tif = write_tiny_sar(tmp_path, _sea_with_ship())
    with pytest.raises((SceneError, WeightsError)) as ei:
        scan_scene(tif, ScanOptions(detectors=["sar-learned"], device="cpu"))
    assert "sha256 mismatch" in str(ei.value) or "sha256" in str(ei.value)


def test_resume_fingerprint_changes_with_the_defaults(tmp_path: Path, write_tiny_sar: Any,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """A batch resumed after the defaults changed must rescan, not reuse the old detectors' alerts."""
    from pipelines.batch import scene_fingerprint

    tif = write_tiny_sar(tmp_path, _sea_with_ship())
    before = scene_fingerprint(tif, ScanOptions())
    assert scene_fingerprint(tif, ScanOptions()) == before  # stable
    monkeypatch.setattr(detect_mod, "DEFAULT_DETECTORS", {"sar": ("sar-cfar",), "optical": ("fire-rules",)})
    assert scene_fingerprint(tif, ScanOptions()) != before
    named = scene_fingerprint(tif, ScanOptions(detectors=["sar-cfar"]))
    monkeypatch.setattr(detect_mod, "DEFAULT_DETECTORS", {"sar": ("sar-fused",), "optical": ("fire-learned",)})
    assert scene_fingerprint(tif, ScanOptions(detectors=["sar-cfar"])) == named  # named detectors: defaults irrelevant


def test_resume_fingerprint_keys_on_the_learned_post_processing(tmp_path: Path, write_tiny_sar: Any,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """A post-processing change (same weights) redoes a resumed scene; the key never holds
    anything that differs between processes (a property's repr did: every resume redid all)."""
    from pipelines.batch import _detector_versions, scene_fingerprint

    vers = _detector_versions()
    assert vers["sar-learned"] == sar_learned.LearnedSarDetector.code_version
    assert all(" at 0x" not in v for v in vers.values())
    tif = write_tiny_sar(tmp_path, _sea_with_ship())
    before = scene_fingerprint(tif, ScanOptions())
    monkeypatch.setattr(sar_learned.LearnedSarDetector, "code_version", "post999")
    assert scene_fingerprint(tif, ScanOptions()) != before
