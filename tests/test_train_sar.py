"""The SAR training script end to end on a tiny COCO folder written here (SSDD's layout, made-up
chips): it trains, chooses threshold and test-time augmentation on validation data, writes verified
.pt + .onnx with metadata, and ``--init ... --iters 0`` re-validates weights keeping their history."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from detectors.sar.learned import LearnedSarDetector, LearnedSarOnnxDetector
from detectors.training import train_sar
from detectors.training.splits import ssdd_split

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[1]


def _coco(root: Path, n_train: int = 4, n_val: int = 2) -> None:
    """Chips of gamma speckle with one or two bright ships, split by the project's id rule."""
    rng = np.random.default_rng(0)
    (root / "images").mkdir(parents=True)
    images, anns = [], []
    want = {"train": n_train, "val": n_val}
    i = 0
    while any(want.values()):
        i += 1
        split = ssdd_split(i)
        if want.get(split, 0) == 0:
            continue
        want[split] -= 1
        h, w = 96, 128
        a = 40 * rng.gamma(2.0, 0.5, size=(h, w))
        for k in range(1 + i % 2):
            y, x = 20 + 40 * k, 30 + 50 * k
            a[y:y + 6, x:x + 14] = 230
            anns.append({"id": len(anns) + 1, "image_id": i, "category_id": 1, "bbox": [x, y, 14, 6],
                         "area": 84, "iscrowd": 0})
        name = f"{i:06d}.jpg"
        Image.fromarray(np.clip(a, 0, 255).astype(np.uint8)).save(root / "images" / name)
        images.append({"id": i, "file_name": name, "height": h, "width": w})
    doc = {"images": images, "annotations": anns, "categories": [{"id": 1, "name": "ship"}]}
    (root / "instances_train.json").write_text(json.dumps(doc))


def test_train_then_revalidate(tmp_path: Path) -> None:
    ssdd = tmp_path / "ssdd"
    _coco(ssdd)
    out, res = tmp_path / "w", tmp_path / "train.json"
    rc = train_sar.main(["--seed", "1", "--scenes", "2", "--iters", "3", "--crop", "64", "--batch-synth", "1",
                         "--batch-ssdd", "1", "--val-scenes", "1", "--threads", "1", "--tta", "auto",
                         "--widths", "8,8,16,16", "--fpn", "8", "--version", "0.0.1", "--bright-aug", "0.5",
                         "--ssdd", str(ssdd),
                         "--out", str(out), "--results", str(res)])
    assert rc == 0
    pt, onnx = out / "sar_centernet.pt", out / "sar_centernet.onnx"
    assert (out / "sar_centernet.pt.sha256").is_file() and (out / "sar_centernet.onnx.sha256").is_file()
    det = LearnedSarDetector(device="cpu", weights=pt)
    meta = det.metadata
    assert meta["version"] == "0.0.1" and meta["widths"] == [8, 8, 16, 16] and meta["iterations"] == 3
    assert det.tta in (1, 2, 4) and set(meta["validation_mean_f1"]) == {"1", "2", "4"}
    ox = LearnedSarOnnxDetector(device="cpu", weights=onnx)
    assert ox.tta == det.tta and abs(ox.score_threshold - det.score_threshold) < 1e-9
    summary = json.loads(res.read_text())
    assert summary["iterations"] == 3 and summary["sha256"]["sar_centernet.pt"]

    # Re-validation only: no training, the first command is kept as history.
    # Without --results, a run into another folder keeps its summary there: the shipped weights'
    # record (benchmarks/results/train_sar.json) is not overwritten by a candidate's.
    out2 = tmp_path / "w2"
    record = train_sar.RESULTS / "train_sar.json"
    before = record.read_bytes() if record.is_file() else None
    rc = train_sar.main(["--init", str(pt), "--iters", "0", "--val-scenes", "1", "--threads", "1", "--tta", "1",
                         "--version", "0.0.2", "--ssdd", str(ssdd), "--out", str(out2)])
    assert rc == 0
    assert json.loads((out2 / "train_sar.json").read_text())["iterations"] == 0
    assert (record.read_bytes() if record.is_file() else None) == before
    d2 = LearnedSarDetector(device="cpu", weights=out2 / "sar_centernet.pt")
    assert d2.tta == 1 and d2.metadata["version"] == "0.0.2" and d2.metadata["iterations"] == 0
    assert d2.metadata["fine_tuned_from"]["training_command"] == meta["training_command"]
    assert d2.metadata["fine_tuned_from"]["sha256"] == (out / "sar_centernet.pt.sha256").read_text().split()[0]
    assert d2.metadata["widths"] == [8, 8, 16, 16]


def test_missing_dataset_is_a_clear_failure(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    rc = train_sar.main(["--ssdd", str(tmp_path / "nowhere"), "--out", str(tmp_path / "w"),
                         "--results", str(tmp_path / "t.json")])
    assert rc == 2 and "SSDD not found" in caplog.text


def test_brighten_raises_small_objects_only_and_keeps_the_channel_scales() -> None:
    """The bright-boat augmentation: pixels of a small object rise by the same dB on both
    channels (ch1 in its own units), a large object and the sea are left alone, values stay clamped."""
    rng = np.random.default_rng(0)
    x = np.zeros((2, 96, 96), np.float32)
    x[0] = rng.normal(0.0, 0.15, (96, 96))
    x[0, 20:24, 20:28] += 1.2  # a small boat, 12 dB over the median
    x[0, 60:70, 5:90] += 1.5  # an 85 px hull
    x[1] = np.clip(2.5 * x[0], -2.0, 5.0)  # ch1 = 2.5 x ch0 (a MAD-scaled copy), as normalise makes it
    b = np.array([[21.5, 23.5, 4, 8], [64.5, 47.0, 10, 85]], np.float32)
    y = train_sar.brighten(x, b, np.random.default_rng(1))
    d0, d1 = y[0] - x[0], y[1] - x[1]
    boat = np.s_[20:24, 20:28]
    assert (d0[boat] >= 0.5).all() and np.allclose(d0[boat], d0[boat].flat[0])  # one gain, >= 5 dB
    unclamped = y[1][boat] < 5.0
    assert np.allclose(d1[boat][unclamped], 2.5 * d0[boat][unclamped], rtol=0.05)
    assert not d0[60:70, 5:90].any() and not d0[40:56].any()  # the hull and the sea are untouched
    assert y.max() <= 5.0


def _train_cli(args: list[str]) -> None:
    """The training command in a fresh process, as users run it: its worker pool forks, which is
    only safe from a single-threaded parent, and pytest's process has threads (Prefect, onnxruntime)
    by the time this runs."""
    r = subprocess.run([sys.executable, "-m", "detectors.training.train_sar", *args], cwd=REPO,
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]


def test_parallel_batches_do_not_depend_on_the_number_of_workers(tmp_path: Path) -> None:
    """``--workers N``: batch i is seeded by (seed, i), so 1 and 2 workers train identical weights;
    ``--train-minutes`` records the --iters it chose; ``--no-validate`` saves the .pt only; a run cut
    short by ``--max-minutes`` records where it stopped."""
    ssdd = tmp_path / "ssdd"
    _coco(ssdd)
    common = ["--seed", "3", "--scenes", "2", "--crop", "64", "--batch-synth", "2",
              "--batch-ssdd", "2", "--threads", "1", "--widths", "8,8,16,16", "--fpn", "8", "--bright-aug", "0.5",
              "--no-validate", "--ssdd", str(ssdd), "--results", str(tmp_path / "t.json")]
    states = []
    for workers in ("1", "2"):
        out = tmp_path / f"w{workers}"
        _train_cli(common + ["--iters", "4", "--workers", workers, "--out", str(out)])
        assert not (out / "sar_centernet.onnx").exists()
        states.append(LearnedSarDetector(device="cpu", weights=out / "sar_centernet.pt").net.state_dict())
    for k in states[0]:
        assert torch.equal(states[0][k], states[1][k]), k

    out = tmp_path / "timed"
    _train_cli(common + ["--workers", "2", "--amp", "--train-minutes", "0.01", "--out", str(out)])
    meta = LearnedSarDetector(device="cpu", weights=out / "sar_centernet.pt").metadata
    assert meta["iterations"] == 100 and "--train-minutes" not in meta["training_command"]
    assert meta["training_command"].endswith("--iters 100") and meta["trained_on"] == "cpu"

    out = tmp_path / "cut"
    _train_cli(common + ["--iters", "50", "--max-minutes", "0", "--out", str(out)])
    meta = LearnedSarDetector(device="cpu", weights=out / "sar_centernet.pt").metadata
    assert meta["iterations"] == 1 and meta["training_command"].endswith("--stop-after 1")


def test_group_focus_centres_crops_on_lifeboats_of_a_group() -> None:
    """``--group-focus``: lifeboats with another within 40 m are a group; with focus 1 every
    object-centred generated crop holds one of them near its centre; focus 0 draws as before."""
    from detectors.training.data_sar import Sample

    boxes = np.array([[50, 50, 5, 2], [50, 80, 5, 2], [200, 200, 6, 2], [260, 120, 40, 8]], np.float32)
    s = Sample(feats=np.zeros((2, 300, 300), np.float16), boxes=boxes,
               kinds=["lifeboat", "lifeboat", "lifeboat", "vessel"])
    assert train_sar.grouped_lifeboats(s).tolist() == [0, 1]
    crop, draws = 96, 400

    def centred_on_group(group: float) -> float:
        """Fraction of crops with a group lifeboat within 25 px of the centre (the jitter is 20)."""
        rng, near = np.random.default_rng(0), 0
        for _ in range(draws):
            x, heat, reg, mask = train_sar.make_batch([s], [], rng, 1, 0, crop, group=group)
            for r, c in np.argwhere(mask[0, 0].numpy() > 0) * 2:  # output stride 2 -> crop px
                if np.hypot(r - crop / 2, c - crop / 2) <= 25:
                    near += 1
                    break
        return near / draws

    # 45 % of generated crops are object-centred: all of them on the group at focus 1, half at 0
    # (2 of the 4 objects), plus what random crops catch.
    assert centred_on_group(1.0) >= centred_on_group(0.0) + 0.15
    a = train_sar.make_batch([s], [], np.random.default_rng(5), 1, 0, crop)
    b = train_sar.make_batch([s], [], np.random.default_rng(5), 1, 0, crop, group=0.0)
    assert all(torch.equal(u, v) for u, v in zip(a, b))


class _FixedHeat(torch.nn.Module):
    """A network whose heatmap is given (logits on the stride-2 grid): what ``hard_examples``
    sees of any CenterNet, without training one."""

    def __init__(self, heat: np.ndarray) -> None:
        super().__init__()
        self.heat = torch.nn.Parameter(torch.from_numpy(heat.astype(np.float32)))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h, w = x.shape[-2] // 2, x.shape[-1] // 2
        logits = torch.full((x.shape[0], 1, h, w), -6.0)
        logits[:, 0, : self.heat.shape[0], : self.heat.shape[1]] = self.heat
        return logits, torch.zeros((x.shape[0], 4, h, w))


def test_hard_examples_are_the_misses_and_false_peaks_and_crops_centre_on_them(tmp_path: Path) -> None:
    """An object whose heatmap stays below the threshold is mined, one the net finds is not; a peak
    far from every object is a false peak, one on an object is not. ``--hard-focus 1`` centres
    every generated crop on a mined place; 0 draws exactly as before; the option needs ``--init``."""
    from detectors.training.data_sar import Sample

    boxes = np.array([[20.5, 20.5, 6, 3], [60.5, 60.5, 5, 2], [100.5, 20.5, 30, 8]], np.float32)
    s = Sample(feats=np.zeros((2, 160, 160), np.float16), boxes=boxes, kinds=["lifeboat", "lifeboat", "vessel"])
    logit = lambda p: float(np.log(p / (1 - p)))  # noqa: E731
    heat = np.full((80, 80), -6.0, np.float32)
    heat[10, 10] = logit(0.9)    # on object 0: found
    heat[30, 30] = logit(0.3)    # on object 1: below the threshold, a miss
    heat[51, 11] = logit(0.7)    # one cell from the vessel's centre cell (50, 10): found
    heat[50, 13] = logit(0.6)    # a second peak on the vessel's hull, 6 px from its centre: not false
    heat[70, 70] = logit(0.8)    # open sea: a false peak at (140.5, 140.5)
    hard = train_sar.hard_examples(_FixedHeat(heat), [s, s], 0.5)
    got = sorted((int(k), round(float(r), 1), round(float(c), 1)) for k, r, c in hard)
    assert got == [(0, 60.5, 60.5), (0, 140.5, 140.5), (1, 60.5, 60.5), (1, 140.5, 140.5)]

    crop = 64
    rng = np.random.default_rng(2)
    near = 0
    for _ in range(100):
        _x, _h, _r, mask = train_sar.make_batch([s], [], rng, 1, 0, crop, hard=hard[:1], hard_p=1.0)
        cells = np.argwhere(mask[0, 0].numpy() > 0) * 2  # output stride 2 -> crop px
        near += any(np.hypot(r - crop / 2, c - crop / 2) <= 30 for r, c in cells)
    assert near == 100  # every crop is centred within the 20 px jitter (per axis) of object 1
    a = train_sar.make_batch([s], [], np.random.default_rng(5), 1, 0, crop)
    b = train_sar.make_batch([s], [], np.random.default_rng(5), 1, 0, crop, hard=hard, hard_p=0.0)
    assert all(torch.equal(u, v) for u, v in zip(a, b))
    _coco(tmp_path / "ssdd")
    with pytest.raises(SystemExit):  # argparse's error: nothing to mine without --init
        train_sar.main(["--hard-focus", "0.5", "--iters", "1", "--scenes", "1", "--ssdd", str(tmp_path / "ssdd"),
                        "--out", str(tmp_path / "w"), "--results", str(tmp_path / "t.json")])


def test_threshold_sweep_counts_what_the_detector_reports_at_each_threshold() -> None:
    """The sweep's counts at a threshold are those of the detector run at that threshold - not a
    low-threshold run filtered by score, whose ghost test and blob merging differ."""
    from detectors.synth.sar import make_sar_scene
    from detectors.training.matching import match

    sc = make_sar_scene(913, 512, 512, 0.5)
    ships = [t for t in sc.truth if t["kind"] in ("vessel", "lifeboat")]
    trc = [(t["row"], t["col"]) for t in ships]
    gates = [max(10.0, 0.5 * t["length_m"]) / 0.5 for t in ships]
    det = LearnedSarDetector(device="cpu", group_weights="none")
    thresholds = (0.2, 0.375, 0.6)
    got = train_sar.sweep_counts(det, sc.sigma0_from_dn(), 0.5, sc.dn > 0, trc, gates, thresholds)
    assert det.score_threshold == LearnedSarDetector(device="cpu", group_weights="none").score_threshold  # restored
    for thr in thresholds:
        ref = LearnedSarDetector(device="cpu", group_weights="none", score_threshold=thr).detect(
            torch.from_numpy(sc.sigma0_from_dn()), spacing_m=(0.5, 0.5), valid=torch.from_numpy(sc.dn > 0))
        want = (len(match([(d.row, d.col) for d in ref], trc, gates)), len(ref), len(trc))
        assert got[thr] == want
    assert got[0.2][1] >= got[0.6][1] and got[0.6][2] == len(trc) > 0


def test_anchor_decay_keeps_a_fine_tune_near_the_weights_it_starts_from(tmp_path: Path) -> None:
    ssdd = tmp_path / "ssdd"
    _coco(ssdd)
    common = ["--seed", "2", "--scenes", "2", "--crop", "64", "--batch-synth", "1", "--batch-ssdd", "1",
              "--threads", "1", "--ssdd", str(ssdd), "--no-validate"]
    base = tmp_path / "base"
    assert train_sar.main(common + ["--iters", "2", "--widths", "8,8,16,16", "--fpn", "8", "--out", str(base),
                                    "--results", str(tmp_path / "b.json")]) == 0
    drift = {}
    for name, decay in (("free", "0"), ("anchored", "90")):
        out = tmp_path / name
        rc = train_sar.main(common + ["--init", str(base / "sar_centernet.pt"), "--iters", "6", "--lr", "1e-2",
                                      "--anchor-decay", decay, "--out", str(out),
                                      "--results", str(tmp_path / f"{name}.json")])
        assert rc == 0
        meta = torch.load(out / "sar_centernet.pt", weights_only=False)["metadata"]
        assert meta["anchor_decay"] == float(decay)
        drift[name] = meta["drift_from_init"]
    assert drift["free"]["relative_l2"] > 0.0
    assert drift["anchored"]["relative_l2"] < 0.5 * drift["free"]["relative_l2"]
    assert drift["anchored"]["median_abs"] < drift["free"]["median_abs"]


@pytest.mark.parametrize(("extra", "message"), [
    (["--anchor-decay", "5"], "give --init"),
    (["--init", "x.pt", "--anchor-decay", "2000", "--lr", "1e-3"], "below 1 / --lr"),
    (["--init", "x.pt", "--anchor-decay", "-1"], "must be >= 0"),
])
def test_anchor_decay_refuses_what_it_cannot_do(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                extra: list[str], message: str) -> None:
    with pytest.raises(SystemExit) as exc:
        train_sar.main(["--ssdd", str(tmp_path), "--out", str(tmp_path / "w"), *extra])
    assert exc.value.code == 2 and message in capsys.readouterr().err
