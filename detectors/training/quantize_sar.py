"""INT8 export of the shipped SAR network for CPUs: onnxruntime static quantisation, seeded calibration.

Why: on a CPU the network is most of the shipped default's time, and CPUs with VNNI (AVX-512 or
AVX-VNNI; AMD Zen 4, Intel Ice Lake and later) run int8 convolutions faster than float32: the
network ~2x faster than in float32 onnxruntime on the 2-vCPU benchmark machine
(``benchmarks/results/net_runtime_cpu.json``), a whole scan ~1.1x (``scan_cpu.json``). The weights do not change: the float32 ONNX export is
quantised after training (per-channel int8 weights, uint8 activations, QDQ format), with the
activation ranges measured on inputs the network sees in the shipped pipeline - working-grid
tiles, the pyramid's 2 m and 4 m grids and the fine pass's 0.5 m grid - of generated *training*
scenes (seeds from ``SYNTH_TRAIN_SEEDS``; validation and test seeds stay unseen).

The result is a file beside the float32 one (``sar_centernet_int8.onnx``), with the float32
file's metadata plus what was done (``quantized_from``: its sha256; the calibration seeds and
the command), and its sha256 recorded. ``sar-learned`` runs it with ``runtime=onnxruntime-int8``;
whether it is the CPU default is decided on validation data by a rule written before the test
(``benchmarks/experiments/try_int8.py``).

    python -m detectors.training.quantize_sar                 # writes detectors/weights/sar_centernet_int8.onnx
    python -m detectors.training.quantize_sar --out /tmp/q.onnx --scenes 8
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
from collections.abc import Iterator, Sequence
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import torch

from detectors.integrity import sha256_file
from detectors.onnx_runtime import onnx_metadata, stamp_metadata
from detectors.sar import network
from detectors.sar.fine_pass import FINE_WINDOW_PX, fine_grid
from detectors.sar.network import PAD_MULTIPLE, normalise, pad_to_multiple, to_working_grid
from detectors.synth.sar import make_sar_scene
from detectors.training.splits import SYNTH_TRAIN_SEEDS

log = logging.getLogger("orbitwatch.train.quantize_sar")

#: Where the shipped int8 model lives (beside the float32 export it is made from).
INT8_FILE = network.INT8_ONNX_FILE
#: Nodes kept in float32: the two 1x1 output convolutions and the sigmoid. Quantised, the heat
#: logits fell on ~0.1-logit steps (scores 0.76, 0.74, 0.83...: the score, fine-pass and evidence
#: thresholds would act on a staircase) and the log box sizes on ~5 % steps; they cost ~1 % of the
#: network's arithmetic.
FLOAT_NODES = ("/net/heat/Conv", "/net/reg/Conv", "/Sigmoid")
#: Calibration scenes: every k-th training seed from this one, at these spacings (metres).
CALIB_SEED0 = 11
CALIB_SPACINGS_M = (0.35, 0.5, 1.0)


def calibration_inputs(n_scenes: int, size: int, seed0: int = CALIB_SEED0) -> Iterator[np.ndarray]:
    """Network inputs (1, 2, h, w) of ``n_scenes`` generated training scenes, as the pipeline makes
    them: the working grid, the pyramid's 2x and 4x grids, and one fine-grid window per scene."""
    seeds = list(SYNTH_TRAIN_SEEDS)[seed0::max(1, len(SYNTH_TRAIN_SEEDS) // max(n_scenes, 1))][:n_scenes]
    for i, seed in enumerate(seeds):
        sp = CALIB_SPACINGS_M[i % len(CALIB_SPACINGS_M)]
        sc = make_sar_scene(seed, size, size, sp, n_groups=1)
        x = torch.from_numpy(sc.sigma0_from_dn())[None]
        v = torch.from_numpy(sc.dn > 0)[None]
        power, vw = to_working_grid(x, (sp, sp), v)
        yield pad_to_multiple(normalise(power, vw)).numpy()
        for f in (2, 4):
            p_c, v_c = to_working_grid(power, (1.0, 1.0), vw, target_m=float(f))
            if min(p_c.shape[-2:]) >= 32:
                yield pad_to_multiple(normalise(p_c, v_c)).numpy()
        if sp <= 0.625:  # the fine pass runs there
            tile = fine_grid(x, (sp, sp), v)[0]
            h, w = tile.padded_shape[-2:]
            r0 = (h // 2 - FINE_WINDOW_PX // 2) // PAD_MULTIPLE * PAD_MULTIPLE
            c0 = (w // 2 - FINE_WINDOW_PX // 2) // PAD_MULTIPLE * PAD_MULTIPLE
            yield tile.window(max(r0, 0), max(c0, 0), min(FINE_WINDOW_PX, h), min(FINE_WINDOW_PX, w))[None].numpy()


def quantize(src: Path, out: Path, n_scenes: int, size: int, command: str) -> Path:
    """Quantise ``src`` (float32 ONNX) into ``out`` and record its metadata and sha256."""
    from onnxruntime.quantization import (CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType,
                                          quantize_static)
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.it = calibration_inputs(n_scenes, size)

        def get_next(self) -> dict[str, np.ndarray] | None:
            x = next(self.it, None)
            return None if x is None else {network.ONNX_INPUT: x}

    with tempfile.TemporaryDirectory() as tmp:
        pre = Path(tmp) / "pre.onnx"
        # Dynamic height/width defeat onnxruntime's symbolic shape inference; ONNX's own suffices.
        quant_pre_process(str(src), str(pre), skip_symbolic_shape=True)
        quantize_static(str(pre), str(out), Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                        calibrate_method=CalibrationMethod.MinMax, nodes_to_exclude=list(FLOAT_NODES))
    meta = dict(onnx_metadata(src))
    meta.update({
        "precision": ("int8 (onnxruntime static quantisation: QDQ, per-channel int8 weights, uint8 activations, "
                      f"MinMax); float32: {', '.join(FLOAT_NODES)}"),
        "quantized_from": f"{src.name} sha256 {sha256_file(src)}",
        "calibration": (f"{n_scenes} generated training scenes (seeds {CALIB_SEED0}:: of SYNTH_TRAIN_SEEDS) at "
                        f"{', '.join(f'{s:g}' for s in CALIB_SPACINGS_M)} m, {size} px: working grid, 2x/4x pyramid, "
                        "one fine-pass window each"),
        "quantization_command": command,
        "quantized": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
    })
    stamp_metadata(out, meta, producer="orbitwatch quantize_sar")
    digest = sha256_file(out)
    out.with_name(out.name + ".sha256").write_text(f"{digest}  {out.name}\n")
    log.info("wrote %s (%d bytes, sha256 %s)", out, out.stat().st_size, digest)
    return out


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--src", type=Path, default=network.ONNX_FILE, help="float32 ONNX export (default: the shipped one)")
    ap.add_argument("--out", type=Path, default=INT8_FILE)
    ap.add_argument("--scenes", type=int, default=24)
    ap.add_argument("--size", type=int, default=768)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    torch.set_num_threads(args.threads)
    network.verify_weights(args.src)
    cmd = "python -m detectors.training.quantize_sar " + " ".join(sys.argv[1:] if argv is None else argv)
    quantize(args.src, args.out, args.scenes, args.size, cmd.strip())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
