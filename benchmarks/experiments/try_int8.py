"""Validation of the int8 SAR network (``detectors/training/quantize_sar.py``): ``sar-fused`` int8 vs float32.

The rule, written before the run: ``benchmarks/results/sar_int8/CHOICE_RULE.txt`` (int8 becomes the
CPU default only if, on each of generated seeds 944-969 at 0.5 m and at 1 m with a dense group, and
the SSDD val chips at declared 1 m and 3 m, its F1 and lifeboat recall are each no lower than
float32's). CPU seconds of each detector are reported next to it.

    .venv/bin/python benchmarks/experiments/try_int8.py --ssdd ../shared/datasets/ssdd_train
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

import torch

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks" / "experiments"))

from benchmarks.eval_learned import _read_chip, ssdd_chosen  # noqa: E402
from benchmarks.eval_vessels import load_coco  # noqa: E402
from benchmarks.throughput import cpu_model  # noqa: E402
from detectors import get_detector  # noqa: E402
from detectors.integrity import sha256_file  # noqa: E402
from detectors.onnx_runtime import onnx_metadata  # noqa: E402
from detectors.sar import network  # noqa: E402
from detectors.synth.sar import make_sar_scene  # noqa: E402
from try_cascade import run  # noqa: E402  (the same scoring: eval_vessels matching and metrics)

RULE = ROOT / "benchmarks" / "results" / "sar_int8" / "CHOICE_RULE.txt"
INT8 = network.INT8_ONNX_FILE


def _hardware() -> str:
    """CPU model (and its int8 instructions), cores and threads: int8 speed depends on VNNI."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        text = ""
    flags = " ".join(f for f in ("avx512_vnni", "avx_vnni", "avx2") if f" {f}" in text)
    return (f"{cpu_model()} ({flags or 'no VNNI/AVX2 flags seen'}), {os.cpu_count()} CPUs, "
            f"{torch.get_num_threads()} torch threads, CPU only")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", default="944-969")
    ap.add_argument("--size", type=int, default=1024)
    ap.add_argument("--ssdd", type=Path, default=None)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "sar_int8" / "validation.json")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    lo, hi = (int(v) for v in args.seeds.split("-"))
    dets = {"float32": get_detector("sar-fused", "cpu", learned={"runtime": "onnxruntime"}),
            "int8": get_detector("sar-fused", "cpu", learned={"runtime": "onnxruntime-int8"})}
    out: dict[str, Any] = {"rule": str(RULE.relative_to(ROOT)), "seeds": args.seeds, "size": args.size,
                           "versions": {k: d.version for k, d in dets.items()},
                           "command": "python benchmarks/experiments/try_int8.py " + " ".join(argv or sys.argv[1:]),
                           "hardware": _hardware(),
                           "int8_file": str(INT8.relative_to(ROOT)), "int8_file_sha256": sha256_file(INT8),
                           "int8_command": onnx_metadata(INT8).get("quantization_command")}
    for sp in (0.5, 1.0):
        items = []
        for seed in range(lo, hi + 1):
            sc = make_sar_scene(seed, rows=args.size, cols=args.size, spacing_m=sp, n_groups=1)
            items.append((torch.from_numpy(sc.sigma0_from_dn()), torch.from_numpy(sc.dn > 0), sp,
                          [t for t in sc.truth if t["kind"] in ("vessel", "lifeboat")]))
        out[f"generated_{sp:g}m"] = {k: run(d, items, False) for k, d in dets.items()}
        print(sp, json.dumps(out[f"generated_{sp:g}m"]), flush=True)
    if args.ssdd is not None:
        imgs, anns = load_coco(args.ssdd / "instances_train.json")
        chosen = ssdd_chosen(imgs, "val")
        for sp in (1.0, 3.0):
            items = []
            for im in imgs:
                if im["id"] in chosen:
                    a = _read_chip(args.ssdd, im)
                    items.append((torch.from_numpy((a + 0.5) ** 2), None, sp, anns.get(im["id"], [])))
            out[f"ssdd_val_{sp:g}m"] = {k: run(d, items, True) for k, d in dets.items()}
            print("ssdd", sp, json.dumps(out[f"ssdd_val_{sp:g}m"]), flush=True)
    sets = {k: r for k, r in out.items() if k.startswith(("generated_", "ssdd_val_"))}

    def no_lower(r: dict[str, Any], key: str) -> bool:
        a, b = r["int8"][key], r["float32"][key]
        return a is None and b is None or (a is not None and b is not None and a >= b)  # None: no lifeboats

    verdicts = {k: {key: no_lower(r, key) for key in ("f1", "lifeboat_recall")} for k, r in sets.items()}
    ok = len(sets) == 4 and all(all(v.values()) for v in verdicts.values())
    out["no_lower_than_float32"] = verdicts
    out["int8_passes_rule"] = ok
    lower = [f"{k} {key}" for k, v in verdicts.items() for key, good in v.items() if not good]
    out["verdict"] = ("passes: int8 becomes the CPU default" if ok else
                      "fails (lower: " + ", ".join(lower) + "): int8 stays an option (runtime=onnxruntime-int8); "
                      "the CPU default stays the float32 network in onnxruntime")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=1))
    print("int8 passes the rule:", ok)
    return 0


if __name__ == "__main__":
    sys.exit(main())
