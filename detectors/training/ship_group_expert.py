"""Ship a trained SAR checkpoint as the dense-group expert (detectors/sar/group_expert.py).

Why a tool and not a copy: the expert runs at the score threshold its choice round validated
(``benchmarks/results/group_expert/CHOICE_RULE.txt``), not the one its own training chose, and the
``.pt`` and its ``.onnx`` twin must carry the same metadata (the detector refuses a twin whose
version, date or threshold differ). So both are rewritten with the new threshold and a record of
the round, and their sha256 files written beside them.

    python -m detectors.training.ship_group_expert --expert /tmp/c16/sar_centernet.pt \\
        --threshold 0.55 --round benchmarks/results/group_expert/CHOICE_RULE.txt
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

import torch

from detectors.integrity import record_sha256
from detectors.onnx_runtime import onnx_metadata, stamp_metadata
from detectors.sar.network import GROUP_ONNX_FILE, GROUP_PT_FILE, load_checkpoint, verify_weights

log = logging.getLogger("ship_group_expert")


def ship(expert: Path, threshold: float, chosen_by: str, pt_out: Path = GROUP_PT_FILE,
         onnx_out: Path = GROUP_ONNX_FILE) -> dict[str, str]:
    """Write the expert's ``.pt`` and ``.onnx`` (the file beside ``expert``) with ``threshold`` and
    ``chosen_by`` in their metadata; their sha256, by file name."""
    if not 0.0 < threshold < 1.0:
        raise SystemExit(f"--threshold must be in (0, 1), got {threshold}")
    twin = expert.with_suffix(".onnx")
    verify_weights(twin)
    _net, meta = load_checkpoint(expert)  # verifies the .pt against its sha256
    ck = torch.load(expert, map_location="cpu", weights_only=True)
    meta = {**meta, "score_threshold": threshold, "role": "group expert", "threshold_chosen_by": chosen_by}
    ck["metadata"] = meta
    pt_out.parent.mkdir(parents=True, exist_ok=True)
    torch.save(ck, pt_out)
    onnx_meta = {**onnx_metadata(twin), "score_threshold": threshold, "role": "group expert",
                 "threshold_chosen_by": chosen_by}
    onnx_out.write_bytes(twin.read_bytes())
    stamp_metadata(onnx_out, onnx_meta, "orbitwatch ship_group_expert")
    return {p.name: record_sha256(p) for p in (pt_out, onnx_out)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--expert", type=Path, required=True, help="the trained .pt (its .onnx and sha256 files beside it)")
    ap.add_argument("--threshold", type=float, required=True, help="the score threshold the choice round validated")
    ap.add_argument("--round", default="benchmarks/results/group_expert/CHOICE_RULE.txt",
                    help="the rule that chose it (recorded in the metadata)")
    ap.add_argument("--out", type=Path, default=GROUP_PT_FILE.parent)
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    shas = ship(args.expert, args.threshold, args.round, args.out / GROUP_PT_FILE.name, args.out / GROUP_ONNX_FILE.name)
    for name, sha in shas.items():
        log.info("%s  %s", sha, name)
    return 0


if __name__ == "__main__":
    sys.exit(main())
