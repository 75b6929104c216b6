#!/usr/bin/env bash
# Train SAR CenterNet candidates side by side on one GPU (how the 1.3.0 and 1.4.0 candidates were
# made on a lent H200 through the device tool), without choosing a threshold. ROUND picks the set:
#   ROUND=1.3.0  three candidates from ~8 minutes, 5 batch workers each:
#     a  the 1.2.0 architecture (254 k parameters) from scratch
#     b  a wider one (934 k parameters, 3.7 MB) from scratch
#     c  the shipped 1.2.0 weights fine-tuned
#   ROUND=1.4.0  two fine-tunes of the shipped 1.3.0 weights, 7 batch workers each, on all 900
#     training scenes (1.3.0 saw 600), same budget and learning rate, so the pair tells whether
#     the group focus or just more training is what helps:
#     g  --group-focus 0.5: half the object-centred generated crops on a lifeboat with another
#        lifeboat within 40 m (1.3.0 under-scores the second boat of a group)
#     h  the control: the same without --group-focus
#   ROUND=1.5.0  two fine-tunes of the shipped 1.4.0 weights (7 batch workers each, all 900
#     scenes, same budget and learning rate), for the lifeboat recall issue 3 still misses:
#     k  --hard-focus 0.3: a third of the generated crops centred on 1.4.0's own errors on its
#        training scenes (missed objects, false peaks: train_sar.hard_examples). Tried on the CPU
#        at batch 32 for ~2,200 iterations (benchmarks/experiments/results/train_sar_cpu_1.5.0/), where both it
#        and its control lost recall; this is the same idea at the GPU runs' batch and length.
#     l  the control: the same without --hard-focus
#     Plan and choice rule, written before either exists: benchmarks/results/train_sar_gpu_1.5.0/PLAN.txt
# INIT (default: the shipped weights) is what c, g, h, k and l fine-tune. To repeat a round, set it to
# the weights that round started from (sha256 checked against INIT's .sha256 file):
#   ROUND=1.3.0: 1.2.0, e.g. git show c3f9144:detectors/weights/sar_centernet.pt (and .pt.sha256)
#   ROUND=1.4.0: 1.3.0, git show 97eaa3c:detectors/weights/sar_centernet.pt (and .pt.sha256)
# Then, on any machine with ../shared/datasets/ssdd_train, validate and export one of them:
#   python -m detectors.training.train_sar --init g.pt --iters 0 --version 1.4.0 --threads 2
# The shipped 1.3.0 came from ROUND=1.3.0 with MINUTES=5.5 (when the calibration still timed a full
# queue of ready batches and promised too many iterations: --max-minutes cut all three runs,
# which their weights record as --stop-after), then candidate b fine-tuned 2.6 more minutes
# alone on the GPU (command in detectors/sar/network.py). Logs and each candidate's validation:
# benchmarks/experiments/results/train_sar_gpu/ (1.4.0's: benchmarks/results/train_sar_gpu_1.4.0/).
# Data: generated seeds 0..SCENES-1 and SSDD's train split, read from $SSDD (a copy of
# ssdd_train without its hold-out images, since only 64 MiB travel to the device machine).
# --train-minutes times 40 batches and records the --iters it chose in the weights' metadata;
# rerunning that recorded command reproduces the batches exactly (batch i is seeded by (seed, i)),
# the GPU's float arithmetic only approximately.
set -u
PY=${PYTHON:-python3}
OUT=${OUT:-out/gpu_train}
SSDD=${SSDD:-.ssdd}
DEVICE=${DEVICE:-cuda}
INIT=${INIT:-detectors/weights/sar_centernet.pt}
ROUND=${ROUND:-1.4.0}
if [ "$ROUND" = 1.3.0 ]; then MINUTES=${MINUTES:-4.5}; SCENES=${SCENES:-600}; WORKERS=${WORKERS:-5}
    MAX_MINUTES=${MAX_MINUTES:-$($PY -c "print($MINUTES * 1.35)")}
else MINUTES=${MINUTES:-6.5}; SCENES=${SCENES:-900}; WORKERS=${WORKERS:-7}; MAX_MINUTES=${MAX_MINUTES:-7.0}; fi
mkdir -p "$OUT" /tmp/gpu_train
if [ ! -f "$SSDD/instances_train.json" ]; then  # build the copy here, before sending it (carry .ssdd)
    $PY - "$SSDD" <<'PYEOF' || exit 2
import json, shutil, sys
from pathlib import Path
from detectors.training.data_sar import SSDD_DIR
from detectors.training.splits import ssdd_split
dst = Path(sys.argv[1])
doc = json.loads((SSDD_DIR / "instances_train.json").read_text())
keep = {im["id"] for im in doc["images"] if ssdd_split(im["id"]) != "holdout"}
doc["images"] = [im for im in doc["images"] if im["id"] in keep]
doc["annotations"] = [a for a in doc["annotations"] if a["image_id"] in keep]
(dst / "images").mkdir(parents=True, exist_ok=True)
for im in doc["images"]:
    shutil.copy(SSDD_DIR / "images" / im["file_name"], dst / "images" / im["file_name"])
(dst / "instances_train.json").write_text(json.dumps(doc))
print(f"{dst}: {len(doc['images'])} SSDD chips (train + val; hold-out left out)")
PYEOF
fi
(nvidia-smi --query-gpu=name,memory.total --format=csv; $PY -c 'import torch; print(torch.__version__)') \
    > "$OUT/env.txt" 2>&1
common="--device $DEVICE --workers $WORKERS --amp --scenes $SCENES --crop 192 --batch-synth 32 --batch-ssdd 32
        --bright-aug 0.3 --train-minutes $MINUTES --max-minutes $MAX_MINUTES
        --no-validate --ssdd $SSDD --threads 2"
train() {  # name, extra arguments
    local name=$1; shift
    $PY -m detectors.training.train_sar $common "$@" --out /tmp/gpu_train/$name \
        --results /tmp/gpu_train/$name.json > "$OUT/$name.log" 2>&1 \
        && cp /tmp/gpu_train/$name/sar_centernet.pt "$OUT/$name.pt"
}
# At most 8 files come back from the device machine: 3 weights, 3 logs, env.txt, SHA256SUMS.
if [ "$ROUND" = 1.3.0 ]; then
    train a --seed 10 --widths 16,32,48,64 --fpn 24 --lr 3e-3 --version 1.3.0-a &
    train b --seed 11 --widths 24,48,96,128 --fpn 32 --lr 3e-3 --version 1.3.0-b &
    train c --seed 12 --init $INIT --lr 1e-3 --version 1.3.0-c &
elif [ "$ROUND" = 1.5.0 ]; then
    train k --seed 25 --init $INIT --lr 1e-3 --hard-focus 0.3 --version 1.5.0-k &
    train l --seed 26 --init $INIT --lr 1e-3 --version 1.5.0-l &
else
    train g --seed 23 --init $INIT --lr 1e-3 --group-focus 0.5 --version 1.4.0-g &
    train h --seed 24 --init $INIT --lr 1e-3 --version 1.4.0-h &
fi
wait
(cd "$OUT" && sha256sum ./*.pt | sed 's# \./# #' > SHA256SUMS)
ls -l "$OUT"
grep -h "calibration\|saved\|Error\|error" "$OUT"/*.log
