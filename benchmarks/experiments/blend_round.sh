#!/usr/bin/env bash
# The blend round of benchmarks/results/blend_sar_1.5.1/CHOICE_RULE.txt, end to end on a 2-core CPU:
# blends of the shipped weights (B) and the remade 1.5.0 candidate (C) at each alpha, their
# thresholds on validation (train_sar --iters 0), their validation runs (generated and SSDD halves
# side by side, two at a time), then the rule applied by choose_sar_weights.py.
#   C=/tmp/c15/sar_centernet.pt WORK=/tmp/blend bash benchmarks/experiments/blend_round.sh
# Needs ../shared/datasets/ssdd_train (or SSDD=...). Validation only: no hold-out, no seed >= 1000.
set -euo pipefail
PY=${PY:-.venv/bin/python}
C=${C:?path of the remade 1.5.0 candidate .pt}
WORK=${WORK:-/tmp/blend}
SSDD=${SSDD:-../shared/datasets/ssdd_train}
ALPHAS=${ALPHAS:-"0.25 0.5 0.75"}
B=detectors/weights/sar_centernet.pt
R=benchmarks/results/train_sar_1.5.0
mkdir -p "$WORK"

for a in $ALPHAS; do
  $PY -m detectors.training.blend_sar --base "$B" --tuned "$C" --alpha "$a" --version "1.5.1-a$a" \
      --out "$WORK/raw_$a" 2>&1 | tail -1
done
# Thresholds: the same validation C's threshold came from, two at a time.
for a in $ALPHAS; do
  $PY -m detectors.training.train_sar --init "$WORK/raw_$a/sar_centernet.pt" --iters 0 --tta 1 --val-scenes 24 \
      --val-spacings 0.5,3,10 --threads 1 --version "1.5.1-a$a" --ssdd "$SSDD" --out "$WORK/a$a" \
      --results "$WORK/a$a/train.json" > "$WORK/thr_$a.log" 2>&1 &
  while [ "$(jobs -rp | wc -l)" -ge 2 ]; do sleep 2; done
done
wait
# Validation runs: the generated and the SSDD halves as separate jobs, two at a time.
jobs_list=()
for a in $ALPHAS; do
  jobs_list+=("gen $a" "ssdd $a")
done
for j in "${jobs_list[@]}"; do
  set -- $j
  if [ "$1" = gen ]; then
    args=(--seeds 930-969 --size 1024 --gen-spacings 0.5,1,3,10 --ssdd-spacings '')
  else
    args=(--seeds '' --gen-spacings '' --ssdd-spacings 1,2,3,5,10)
  fi
  $PY benchmarks/eval_learned.py --ssdd-split val "${args[@]}" --ssdd "$SSDD" --threads 1 \
      --weights "$WORK/a$2/sar_centernet.pt" --out "$WORK/val_${1}_$2.json" > "$WORK/val_${1}_$2.log" 2>&1 &
  while [ "$(jobs -rp | wc -l)" -ge 2 ]; do sleep 2; done
done
wait
cands=()
for a in $ALPHAS; do cands+=(--candidate "a$a=$WORK/val_gen_$a.json,$WORK/val_ssdd_$a.json"); done
$PY benchmarks/experiments/choose_sar_weights.py --base "$R/validation_B_1.4.0_generated.json,$R/validation_B_1.4.0.json" \
    "${cands[@]}" --out "$WORK/choice.json"
