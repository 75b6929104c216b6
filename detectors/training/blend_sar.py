"""Weight-space blend of two SAR CenterNet checkpoints: ``(1 - alpha) * base + alpha * tuned``.

Why: a fine-tune on new data (coarse scenes, dense groups) bought what it was trained for and lost
some of what the starting weights did well on real SSDD chips. Interpolating the fine-tuned
weights with the weights it started from ("WiSE-FT", Wortsman et al., *Robust fine-tuning of
zero-shot models*, CVPR 2022) tends to keep much of both, and costs no training. The blend is only
meaningful along a fine-tune (``tuned`` started from ``base``: same architecture, same basin),
which is checked from the metadata unless ``--allow-unrelated``.

Every floating-point tensor of the state dict is interpolated (weights, biases, batch-norm running
means and variances); integer tensors (``num_batches_tracked``) are the base's. The output has the
tuned weights' metadata (their training data describe what the blend has seen) with ``blend``
(alpha, both parents' versions, sha256 and the base's training command), today's date, and the
score threshold and test-time augmentation left for ``train_sar --init OUT --iters 0`` to choose on
validation, as for any release:

    python -m detectors.training.blend_sar --base detectors/weights/sar_centernet.pt \\
        --tuned /tmp/c15/sar_centernet.pt --alpha 0.5 --out /tmp/blend50
    python -m detectors.training.train_sar --init /tmp/blend50/sar_centernet.pt --iters 0 --tta 1 ...
"""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import shlex
import sys
from pathlib import Path
from typing import Any

import torch

from detectors.errors import WeightsError
from detectors.integrity import record_sha256, sha256_file
from detectors.sar.network import load_checkpoint
from detectors.training.train_sar import drop_options

log = logging.getLogger(__name__)


def _descends_from(meta: dict[str, Any], base_meta: dict[str, Any]) -> bool:
    """Whether ``meta``'s chain of fine-tunes passes through the base's training command."""
    want = base_meta.get("training_command")
    if not want:  # no record to compare with: nothing shows the descent
        return False
    node: Any = meta.get("fine_tuned_from")
    while isinstance(node, dict):
        if node.get("training_command") == want:
            return True
        node = node.get("fine_tuned_from")
    return False


def _norm(v: Any) -> Any:
    """A metadata value compared by content: sequences as lists, numbers as floats."""
    if isinstance(v, (list, tuple)):
        return [_norm(x) for x in v]
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        return float(v)
    return v


def blend_state(base: dict[str, torch.Tensor], tuned: dict[str, torch.Tensor], alpha: float
                ) -> dict[str, torch.Tensor]:
    """``(1 - alpha) * base + alpha * tuned`` for floating tensors, the base's for the others."""
    if not 0.0 <= alpha <= 1.0:
        raise WeightsError(f"blend alpha must lie in [0, 1], got {alpha}")
    if base.keys() != tuned.keys():
        diff = sorted(set(base) ^ set(tuned))
        raise WeightsError(f"checkpoints have different tensors: {diff[:5]}")
    out = {}
    for k, b in base.items():
        t = tuned[k]
        if b.shape != t.shape:
            raise WeightsError(f"tensor {k} has shape {tuple(b.shape)} in the base, {tuple(t.shape)} tuned")
        out[k] = torch.lerp(b, t.to(b.dtype), alpha) if b.is_floating_point() else b.clone()
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--base", type=Path, required=True, help="starting weights (.pt, sha256 recorded)")
    ap.add_argument("--tuned", type=Path, required=True, help="weights fine-tuned from --base (.pt)")
    ap.add_argument("--alpha", type=float, required=True, help="0 = base, 1 = tuned")
    ap.add_argument("--version", default=None, help="version in the output metadata (default: base's + '-blend')")
    ap.add_argument("--allow-unrelated", action="store_true",
                    help="blend even if --tuned does not descend from --base by its metadata")
    ap.add_argument("--out", type=Path, required=True, help="output folder (sar_centernet.pt + .sha256)")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    pt = args.out / "sar_centernet.pt"
    if pt.resolve() in (args.base.resolve(), args.tuned.resolve()):
        log.error("--out %s would overwrite an input weights file", args.out)
        return 2
    try:
        base_net, base_meta = load_checkpoint(args.base)
        tuned_net, tuned_meta = load_checkpoint(args.tuned)
        if not args.allow_unrelated and not _descends_from(tuned_meta, base_meta):
            raise WeightsError(f"{args.tuned} was not fine-tuned from {args.base} by its metadata "
                               "(--allow-unrelated to blend anyway)")
        # Not "normalisation": that is a description, reworded when post-processing 6 let the
        # working grid follow coarse inputs (1.4.0 and 1.5.0 carry different texts, same inputs).
        for key in ("widths", "fpn", "stride", "classes", "working_spacing_m"):
            if _norm(base_meta.get(key)) != _norm(tuned_meta.get(key)):
                raise WeightsError(f"{key} differ: {base_meta.get(key)} vs {tuned_meta.get(key)}")
        state = blend_state(base_net.state_dict(), tuned_net.state_dict(), args.alpha)
    except WeightsError as exc:
        log.error("%s", exc)
        return 2
    meta = dict(tuned_meta)  # the tuned data options describe what the blend has seen
    meta.update({
        "version": args.version or f"{base_meta.get('version')}-blend",
        "training_command": "python -m detectors.training.blend_sar " + shlex.join(drop_options(
            list(argv if argv is not None else sys.argv[1:]), {"--out"})),
        "date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "blend": {"alpha": args.alpha, "base_sha256": sha256_file(args.base),
                  "tuned_sha256": sha256_file(args.tuned), "base_version": base_meta.get("version"),
                  "tuned_version": tuned_meta.get("version"),
                  "base_training_command": base_meta.get("training_command"),
                  "rule": "(1 - alpha) * base + alpha * tuned, floating tensors; integer tensors from the base"},
        "fine_tuned_from": {"training_command": tuned_meta.get("training_command"),
                            "fine_tuned_from": tuned_meta.get("fine_tuned_from"),
                            "iterations": tuned_meta.get("iterations")},
        "iterations": 0,
        "score_threshold": 0.5,  # chosen next on validation by train_sar --init OUT --iters 0
    })
    for key in ("validation_mean_f1", "tta"):  # the tuned weights' choices, not the blend's
        meta.pop(key, None)
    args.out.mkdir(parents=True, exist_ok=True)
    torch.save({"state_dict": state, "metadata": meta}, pt)
    record_sha256(pt)
    log.info("wrote %s (alpha %.3f)", pt, args.alpha)
    return 0


if __name__ == "__main__":
    sys.exit(main())
