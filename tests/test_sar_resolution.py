"""The learned SAR detector at any input spacing (issue 19): the working grid follows a coarse
input instead of interpolating it up, metre rules use the grid's own spacing, the coarse-grid
pyramid stops where a big ship already fits, scenes outside the trained spacings are said to be,
and the generator plants the dense groups the evaluation scores."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from detectors.sar import decode
from detectors.sar.learned import LearnedSarDetector
from detectors.sar.network import to_working_grid, working_shape, working_spacing
from detectors.synth.sar import make_sar_scene
from detectors.training import data_sar
from detectors.training.train_sar import focal_loss, targets


@pytest.fixture(scope="module")
def det() -> LearnedSarDetector:
    return LearnedSarDetector()


def test_working_grid_multilooks_fine_input_and_never_upsamples_coarse() -> None:
    assert working_spacing((0.5, 0.5)) == 1.0
    assert working_spacing((3.0, 3.0)) == 3.0
    assert working_spacing((0.5, 2.0)) == 2.0  # square: the finer axis is averaged to the coarser
    x = torch.rand(1, 200, 300)
    p, v = to_working_grid(x, (10.0, 10.0))
    assert p.shape == (1, 200, 300) and bool(v.all())  # the pixels themselves, not 10x10 of each
    assert working_shape((200, 300), (0.5, 0.5)) == (100, 150)
    assert working_shape((200, 300), (0.5, 2.0)) == (50, 300)
    # An explicit finer target still interpolates (the fine pass asks for 0.5 m).
    assert working_shape((200, 300), (1.0, 1.0), target_m=0.5) == (400, 600)


def test_cost_per_input_pixel_does_not_grow_for_coarse_input(det: LearnedSarDetector) -> None:
    """The network input of a 10 m tile has the tile's own size (the old 1 m grid made it 100x)."""
    x = torch.full((1, 256, 256), 1e-3)
    feats, power, _ = det.prepare(x, (10.0, 10.0), None)
    assert tuple(feats.shape[-2:]) == (256, 256) and tuple(power.shape[-2:]) == (256, 256)
    assert det.pyramid_for((0.5, 0.5)) == (2, 4)
    assert det.pyramid_for((2.0, 2.0)) == (2,)
    assert det.pyramid_for((3.0, 3.0)) == ()


def test_coarse_scene_vessels_found_with_lengths_in_metres(det: LearnedSarDetector) -> None:
    """A generated 8 m scene: its larger vessels are found where they are, lengths in metres."""
    sp = 8.0
    sc = make_sar_scene(5, 384, 384, sp, n_vessels=4, n_lifeboats=0, land=False)
    dets = det.detect(torch.from_numpy(sc.sigma0_from_dn()), spacing_m=(sp, sp), valid=torch.from_numpy(sc.dn > 0))
    big = [t for t in sc.truth if t["kind"] == "vessel" and t["length_m"] >= 60]
    assert big, "seed 5 should hold a vessel >= 60 m"
    for t in big:
        near = [d for d in dets if math.hypot(d.row - t["row"], d.col - t["col"]) * sp <= max(20.0, t["length_m"] / 2)]
        assert near, f"missed a {t['length_m']:.0f} m vessel at 8 m spacing"
        assert 0.4 * t["length_m"] <= near[0].length_m <= 2.5 * t["length_m"] + sp


def test_spacing_outside_training_is_said(det: LearnedSarDetector) -> None:
    lo, hi = det.trained_spacing
    assert det.spacing_note((max(lo, 0.5), max(lo, 0.5))) is None
    note = det.spacing_note((hi * 1.5, hi * 1.5))
    assert note is not None and "outside" in note and f"{hi:g}" in note
    assert det.spacing_note((lo / 2, lo / 2)) is not None


def test_generator_plants_dense_groups_without_changing_the_rest() -> None:
    base = make_sar_scene(1003, 768, 768, 1.0)
    grouped = make_sar_scene(1003, 768, 768, 1.0, n_groups=3)
    ships = [t for t in base.truth if t["kind"] in ("vessel", "lifeboat")]
    assert ships == [t for t in grouped.truth if t["kind"] in ("vessel", "lifeboat") and "group" not in t]
    members = [t for t in grouped.truth if "group" in t]
    assert members and {t["group_kind"] for t in members} <= {"liferafts", "anchorage", "convoy"}
    for g in {t["group"] for t in members}:
        m = [t for t in members if t["group"] == g]
        assert len(m) >= 3
        rc = np.array([(t["row"], t["col"]) for t in m])
        if m[0]["group_kind"] == "liferafts":  # within a 100 m circle, hulls apart
            assert np.hypot(*(rc - rc.mean(0)).T).max() <= 50.0 + 1e-6
    with pytest.raises(Exception, match="n_groups"):
        make_sar_scene(1, 64, 64, 1.0, n_groups=-1)


def test_decoding_keeps_neighbours_across_a_valley_and_merges_a_ridge() -> None:
    """Two peaks whose axis-aligned boxes overlap: kept apart when sea lies between them on the
    heatmap (moored side by side), one object when a ridge joins them (one long hull)."""
    heat = torch.zeros(1, 40, 40)
    reg = torch.zeros(4, 40, 40)
    reg[0:2] = math.log(24.0)  # 24-px boxes: each holds the other's centre
    heat[0, 20, 14] = 0.9
    heat[0, 20, 20] = 0.8
    valley = decode.decode_peaks(heat, reg, 0.5, valley_ratio=0.5)
    assert len(valley) == 2
    assert len(decode.decode_peaks(heat, reg, 0.5)) == 1  # the default: box NMS only
    heat[0, 20, 15:20] = 0.7  # a ridge between them
    assert len(decode.decode_peaks(heat, reg, 0.5, valley_ratio=0.5)) == 1


def test_training_ignores_objects_too_small_to_see() -> None:
    """A 5 m boat in 10 m pixels is neither a positive nor sea in the loss; SSDD zooms shrink boxes."""
    b = np.array([[20.0, 20.0, 6.0, 4.0], [40.0, 40.0, -1.0, -1.0]], np.float32)
    heat, _reg, mask = targets(b, crop=64)
    assert mask.sum() == 1 and (heat == -1).sum() > 0 and heat[0, 19, 19] < 0
    logits = torch.zeros(1, 1, 32, 32)
    logits[0, 0, 19, 19] = 8.0  # confident on the ignored object: no penalty for it
    base = focal_loss(torch.zeros(1, 1, 32, 32), torch.from_numpy(heat[None]))
    assert float(focal_loss(logits, torch.from_numpy(heat[None]))) == pytest.approx(float(base), rel=1e-6)
    # Coarse share of the generated scenes; the fine draws are those of the earlier weights.
    assert data_sar.synth_params(3) == data_sar.synth_params(3, 0.0)
    coarse = [data_sar.synth_params(s, 0.5)[0] for s in range(200)]
    assert 0.35 <= sum(c > 1.0 for c in coarse) / 200 <= 0.65 and max(coarse) <= 10.0


def test_coarse_weights_serve_coarse_grids_only(tmp_path) -> None:
    """A second checkpoint for inputs coarser than 1 m: used there with its own threshold, never
    for finer inputs; the version names both; "none" turns it off."""
    from detectors.integrity import sha256_file
    from detectors.sar.network import PT_FILE

    ck = torch.load(PT_FILE, map_location="cpu", weights_only=True)
    ck["metadata"] = {**ck["metadata"], "version": "9.9.9-test", "score_threshold": 0.99,
                      "trained_spacing_m": [1.0, 12.0]}
    cpath = tmp_path / "coarse.pt"
    torch.save(ck, cpath)
    cpath.with_name("coarse.pt.sha256").write_text(f"{sha256_file(cpath)}  coarse.pt\n")
    one = LearnedSarDetector(coarse_weights="none")
    two = LearnedSarDetector(coarse_weights=cpath)
    assert not one.uses_coarse((3.0, 3.0)) and two.uses_coarse((3.0, 3.0)) and not two.uses_coarse((0.5, 0.5))
    assert "coarse9.9.9-test" in two.version and two.version != one.version
    assert two.spacing_note((11.0, 11.0)) is None and one.spacing_note((11.0, 11.0)) is not None
    sc = make_sar_scene(5, 384, 384, 3.0, n_vessels=4, n_lifeboats=0, land=False)
    x, v = torch.from_numpy(sc.sigma0_from_dn()), torch.from_numpy(sc.dn > 0)
    a = one.detect(x, spacing_m=(3.0, 3.0), valid=v)
    b = two.detect(x, spacing_m=(3.0, 3.0), valid=v)
    assert a and all(d.score >= 0.99 for d in b) and len(b) < len(a)  # the coarse threshold applied
    fine = make_sar_scene(5, 256, 256, 0.5, n_vessels=2, n_lifeboats=2, land=False)
    xf, vf = torch.from_numpy(fine.sigma0_from_dn()), torch.from_numpy(fine.dn > 0)
    assert [d.row for d in one.detect(xf, spacing_m=(0.5, 0.5), valid=vf)] == \
        [d.row for d in two.detect(xf, spacing_m=(0.5, 0.5), valid=vf)]


def test_scene_outside_trained_spacing_says_so_in_its_notes(tmp_path, write_tiny_sar) -> None:
    """Through the pipeline: a 15 m scene is scanned, and its notes say the model was not trained there."""
    from tests.conftest import capella_doc

    from pipelines.detect import ScanOptions, scan_scene

    sc = make_sar_scene(7, 128, 128, 10.0, n_vessels=2, n_lifeboats=0, land=False)
    doc = capella_doc(rows=128, columns=128, data_type="UInt16", scale_factor=sc.scale_factor,
                      pixel_spacing_row=15.0, pixel_spacing_column=15.0)
    tif = write_tiny_sar(tmp_path, sc.dn, scale_factor=sc.scale_factor, sidecar=doc)
    res = scan_scene(tif, ScanOptions(detectors=["sar-learned"], device="cpu"))
    assert any("outside" in n and "15" in n for n in res.notes), res.notes
    res = scan_scene(tif, ScanOptions(detectors=["sar-cfar"], device="cpu"))
    assert not any("outside" in n for n in res.notes)
