"""``detectors.training.blend_sar``: the weight-space blend of a fine-tune with its starting weights.

Checkpoints are made here (tiny networks, verified like shipped ones); the blend is checked tensor
by tensor, its refusals are checked to name the problem, and ``train_sar --init BLEND --iters 0``
(how a blend gets its threshold) keeps what the blend is made of."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from detectors.errors import WeightsError
from detectors.integrity import record_sha256, sha256_file
from detectors.sar.network import SarCenterNet, load_checkpoint
from detectors.training import blend_sar

WIDTHS = (8, 8, 16, 16)


def _save(path: Path, net: SarCenterNet, meta: dict) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"state_dict": net.state_dict(), "metadata": meta}, path)
    record_sha256(path)
    return path


def _pair(tmp_path: Path, related: bool = True) -> tuple[Path, Path]:
    torch.manual_seed(0)
    base = SarCenterNet(widths=WIDTHS, fpn=8)
    tuned = SarCenterNet(widths=WIDTHS, fpn=8)
    with torch.no_grad():  # different running statistics and counters too
        for m in tuned.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.add_(1.0)
                m.running_var.mul_(3.0)
                m.num_batches_tracked.fill_(7)
    bmeta = {"version": "0.1.0", "widths": list(WIDTHS), "fpn": 8, "training_command": "train base",
             "score_threshold": 0.4}
    tmeta = {"version": "0.2.0", "widths": list(WIDTHS), "fpn": 8, "training_command": "train tuned",
             "score_threshold": 0.45, "coarse_fraction": 0.5,
             "fine_tuned_from": {"training_command": "train base" if related else "something else",
                                 "fine_tuned_from": None, "iterations": 10}}
    return _save(tmp_path / "b" / "sar_centernet.pt", base, bmeta), _save(tmp_path / "t" / "sar_centernet.pt", tuned, tmeta)


@pytest.mark.parametrize("alpha", [0.0, 0.3, 1.0])
def test_blend_interpolates_float_tensors_and_keeps_the_base_counters(tmp_path: Path, alpha: float) -> None:
    b, t = _pair(tmp_path)
    out = tmp_path / "out"
    assert blend_sar.main(["--base", str(b), "--tuned", str(t), "--alpha", str(alpha), "--out", str(out),
                           "--version", "9.9.9"]) == 0
    net, meta = load_checkpoint(out / "sar_centernet.pt")  # verified against the sha256 written beside it
    sb = load_checkpoint(b)[0].state_dict()
    st = load_checkpoint(t)[0].state_dict()
    got = net.state_dict()
    n_float = 0
    for k, v in got.items():
        if v.is_floating_point():
            n_float += 1
            torch.testing.assert_close(v, (1 - alpha) * sb[k] + alpha * st[k], rtol=0, atol=1e-6)
        else:
            assert torch.equal(v, sb[k]), k
    assert n_float > 10 and any("running_var" in k for k in got)
    assert meta["version"] == "9.9.9" and meta["blend"]["alpha"] == alpha
    assert meta["blend"]["base_sha256"] == sha256_file(b) and meta["blend"]["tuned_sha256"] == sha256_file(t)
    assert meta["fine_tuned_from"]["training_command"] == "train tuned" and meta["coarse_fraction"] == 0.5
    assert meta["score_threshold"] == 0.5 and "blend_sar" in meta["training_command"]


def test_blend_refuses_weights_that_are_not_a_fine_tune_of_the_base(tmp_path: Path,
                                                                     caplog: pytest.LogCaptureFixture) -> None:
    b, t = _pair(tmp_path, related=False)
    out = tmp_path / "out"
    assert blend_sar.main(["--base", str(b), "--tuned", str(t), "--alpha", "0.5", "--out", str(out)]) == 2
    assert "was not fine-tuned from" in caplog.text and str(t) in caplog.text
    assert not (out / "sar_centernet.pt").exists()
    assert blend_sar.main(["--base", str(b), "--tuned", str(t), "--alpha", "0.5", "--out", str(out),
                           "--allow-unrelated"]) == 0


def test_blend_refuses_other_architectures_bad_alpha_and_unverified_files(tmp_path: Path,
                                                                          caplog: pytest.LogCaptureFixture) -> None:
    b, t = _pair(tmp_path)
    other = _save(tmp_path / "o" / "sar_centernet.pt", SarCenterNet(widths=(8, 8, 16, 24), fpn=8),
                  {"version": "0.3.0", "widths": [8, 8, 16, 24], "fpn": 8, "training_command": "x",
                   "fine_tuned_from": {"training_command": "train base"}})
    out = tmp_path / "out"
    assert blend_sar.main(["--base", str(b), "--tuned", str(other), "--alpha", "0.5", "--out", str(out)]) == 2
    assert "widths differ" in caplog.text
    assert blend_sar.main(["--base", str(b), "--tuned", str(t), "--alpha", "1.5", "--out", str(out)]) == 2
    assert "alpha must lie in [0, 1]" in caplog.text
    t.write_bytes(t.read_bytes()[:-10])  # truncated: its recorded sha256 no longer matches
    assert blend_sar.main(["--base", str(b), "--tuned", str(t), "--alpha", "0.5", "--out", str(out)]) == 2
    assert "sha256 mismatch" in caplog.text
    assert not (out / "sar_centernet.pt").exists()


def test_blend_state_checks_tensor_names_and_shapes() -> None:
    a = {"w": torch.zeros(2), "n": torch.tensor(3)}
    with pytest.raises(WeightsError, match="different tensors"):
        blend_sar.blend_state(a, {"w": torch.zeros(2)}, 0.5)
    with pytest.raises(WeightsError, match="shape"):
        blend_sar.blend_state(a, {"w": torch.zeros(3), "n": torch.tensor(1)}, 0.5)
    got = blend_sar.blend_state(a, {"w": torch.ones(2), "n": torch.tensor(9)}, 0.25)
    assert torch.equal(got["w"], torch.full((2,), 0.25)) and int(got["n"]) == 3


@pytest.mark.slow
def test_revalidating_a_blend_keeps_what_it_is_made_of(tmp_path: Path) -> None:
    from test_train_sar import _coco  # the tiny SSDD-layout folder of the training tests

    from detectors.training import train_sar

    ssdd = tmp_path / "ssdd"
    _coco(ssdd)
    b, t = _pair(tmp_path)
    out = tmp_path / "blend"
    assert blend_sar.main(["--base", str(b), "--tuned", str(t), "--alpha", "0.5", "--out", str(out)]) == 0
    out2 = tmp_path / "w2"
    rc = train_sar.main(["--init", str(out / "sar_centernet.pt"), "--iters", "0", "--val-scenes", "1",
                         "--threads", "1", "--tta", "1", "--version", "0.5.0", "--ssdd", str(ssdd),
                         "--out", str(out2), "--results", str(tmp_path / "t2.json")])
    assert rc == 0
    _net, meta = load_checkpoint(out2 / "sar_centernet.pt")
    assert meta["blend"]["alpha"] == 0.5 and meta["blend"]["base_version"] == "0.1.0"
    assert "blend_sar" in meta["fine_tuned_from"]["training_command"]
    assert (out2 / "sar_centernet.onnx").is_file()


def test_blend_refuses_unrecorded_files_other_heads_nan_alpha_and_overwriting_an_input(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    b, t = _pair(tmp_path)
    out = tmp_path / "out"
    assert blend_sar.main(["--base", str(b), "--tuned", str(t), "--alpha", "nan", "--out", str(out)]) == 2
    assert "alpha must lie in [0, 1]" in caplog.text
    assert blend_sar.main(["--base", str(b), "--tuned", str(t), "--alpha", "0.5", "--out", str(b.parent)]) == 2
    assert "would overwrite an input" in caplog.text
    other = _save(tmp_path / "f" / "sar_centernet.pt", SarCenterNet(widths=WIDTHS, fpn=16),
                  {"version": "0.4.0", "widths": list(WIDTHS), "fpn": 16, "training_command": "y",
                   "fine_tuned_from": {"training_command": "train base"}})
    assert blend_sar.main(["--base", str(b), "--tuned", str(other), "--alpha", "0.5", "--out", str(out)]) == 2
    assert "fpn differ" in caplog.text
    t.with_name(t.name + ".sha256").unlink()  # no checksum recorded at all
    assert blend_sar.main(["--base", str(b), "--tuned", str(t), "--alpha", "0.5", "--out", str(out)]) == 2
    assert "no recorded sha256" in caplog.text and str(t) in caplog.text
    assert not out.exists()


def test_descent_needs_the_base_command_and_metadata_compares_by_content(tmp_path: Path,
                                                                         caplog: pytest.LogCaptureFixture) -> None:
    torch.manual_seed(0)
    net = SarCenterNet(widths=WIDTHS, fpn=8)
    # a base with no training command of its own, a tuned file whose parent has none either
    b = _save(tmp_path / "b" / "sar_centernet.pt", net, {"version": "0.1.0", "widths": tuple(WIDTHS), "fpn": 8})
    t = _save(tmp_path / "t" / "sar_centernet.pt", net, {"version": "0.2.0", "widths": list(WIDTHS), "fpn": 8,
                                                         "fine_tuned_from": {"training_command": None}})
    out = tmp_path / "out"
    assert blend_sar.main(["--base", str(b), "--tuned", str(t), "--alpha", "0.5", "--out", str(out)]) == 2
    assert "was not fine-tuned from" in caplog.text
    # tuple and list widths are the same architecture
    assert blend_sar.main(["--base", str(b), "--tuned", str(t), "--alpha", "0.5", "--out", str(out),
                           "--allow-unrelated"]) == 0
    meta = load_checkpoint(out / "sar_centernet.pt")[1]
    assert meta["blend"]["base_version"] == "0.1.0" and "--out" not in meta["training_command"]
    assert "--allow-unrelated" in meta["training_command"] and "tta" not in meta


def test_blend_records_its_checksum_in_a_sha256sums_file_beside_it(tmp_path: Path) -> None:
    b, t = _pair(tmp_path)
    out = tmp_path / "weights"
    out.mkdir()
    (out / "SHA256SUMS").write_text(f"{'0' * 64}  sar_centernet.pt\n{'1' * 64}  fire_unet.pt\n")
    assert blend_sar.main(["--base", str(b), "--tuned", str(t), "--alpha", "0.5", "--out", str(out)]) == 0
    load_checkpoint(out / "sar_centernet.pt")  # verifies against the updated SHA256SUMS line
    lines = (out / "SHA256SUMS").read_text().splitlines()
    assert lines[1] == f"{'1' * 64}  fire_unet.pt" and not (out / "sar_centernet.pt.sha256").exists()
