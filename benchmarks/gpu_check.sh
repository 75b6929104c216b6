#!/usr/bin/env bash
# One prepared run on a lent GPU machine (the `device` tool): the CUDA tests, then the throughput
# benchmark (detector matrix + the full spotlight GEO from disk to alerts) on CUDA.
# The GPU image has torch/torchvision/onnxruntime but neither prefect nor rasterio: rasterio (and
# its pure-Python deps) travel as wheels in the git-ignored .whl/, made on the host with
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#     --platform manylinux_2_28_x86_64 --platform manylinux2014_x86_64 -d .whl \
#     rasterio==1.4.4 affine cligj click-plugins
# (without them the CUDA streaming tests and the scene-level run are skipped or fail there).
# Results go to $OUT (device tool) or benchmarks/results/ when run by hand.
set -uo pipefail
OUT="${OUT:-benchmarks/results}"
export PYTHONUNBUFFERED=1
if ls .whl/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
    && export PYTHONPATH="/tmp/site:${PYTHONPATH:-}" || exit 3
fi
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$OUT/gpu_check_nvidia_smi.txt"
python3 -c "import torch, onnxruntime as o; print(torch.__version__, torch.cuda.get_device_name(0), o.__version__, o.get_available_providers())"
timeout 150 python3 -m pytest -q -m gpu -p no:cacheprovider \
  tests/test_streaming.py tests/test_sar_learned.py tests/test_sar_blob_batch.py tests/test_sar_ambiguity_batch.py \
  tests/test_sar_cfar.py \
  tests/test_fire_learned.py tests/test_fire_rules.py \
  2>&1 | tee "$OUT/gpu_check_pytest.txt"
timeout "${THROUGHPUT_TIMEOUT:-400}" python3 benchmarks/throughput.py --device cuda \
  --detectors sar-cfar,sar-learned,sar-learned-onnx,sar-fused,fire-rules,fire-learned,fire-learned-onnx \
  --tile-sizes 512,2048,4096 --batch-sizes 1,4 --repeats 10 --budget-s 2 \
  --scene-size full --scene-detectors sar-cfar,sar-learned --scene-timeout 240 \
  --out "$OUT/throughput_gpu.json" > "$OUT/gpu_check_throughput.log" 2>&1; echo "throughput rc=$?"
grep -v "^ \|^{\|^}" "$OUT/gpu_check_throughput.log" | tail -60
# Where sar-learned's time goes on the GPU (host post-processing vs network), one 4096 tile.
timeout 120 python3 benchmarks/profile_detector.py --detector sar-learned --device cuda --size 4096 \
  > "$OUT/gpu_check_profile_sar_learned.txt" 2>&1; head -30 "$OUT/gpu_check_profile_sar_learned.txt"
# The same tile with the per-peak host loop for peak geometry instead of the batched tensor path
# (detectors/sar/blob_batch.py, the CUDA default): what batching bought, and the same detections.
timeout 120 python3 benchmarks/profile_detector.py --detector sar-learned --device cuda --size 4096 \
  --tensor-geometry off > "$OUT/gpu_check_profile_sar_learned_loop.txt" 2>&1
head -30 "$OUT/gpu_check_profile_sar_learned_loop.txt"
# The network alone per runtime on the GPU (torch, channels_last, onnxruntime's CUDA/TensorRT
# providers in float32 and int8): which runtime the CUDA path should use, measured, not assumed.
timeout 120 python3 benchmarks/net_runtime.py --device cuda --out "$OUT/net_runtime_cuda.json" \
  > "$OUT/gpu_check_net_runtime.log" 2>&1; echo "net_runtime rc=$?"; tail -8 "$OUT/gpu_check_net_runtime.log"
# The batched post-processing (the CUDA default) against the host loops on the evaluation seeds, on
# CUDA: the same detections, and each path's post-processing seconds.
timeout 150 python3 benchmarks/postprocess_equivalence.py --device cuda \
  --out "$OUT/postprocess_equivalence_cuda.json" > "$OUT/gpu_check_postprocess_equivalence.log" 2>&1
echo "postprocess_equivalence rc=$?"; tail -3 "$OUT/gpu_check_postprocess_equivalence.log"
