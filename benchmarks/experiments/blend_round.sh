#!/usr/bin/env bash
# The blend round of benchmarks/results/blend_sar_1.5.1/CHOICE_RULE.txt, end to end on a 2-core CPU:
# blends of the shipped weights (B) and the remade 1.5.0 candidate (C) at each alpha, their
# thresholds on validation (train_sar --iters 0), their validation runs (generated and SSDD halves
# side by side, two at a time), then the rule applied by choose_sar_weights.py.
#   C=/tmp/c15/sar_centernet.pt WORK=/tmp/blend bash benchmarks/experiments/blend_round.sh
# Needs ../shared/datasets/ssdd_train (or SSDD=...) and the project's venv (make install; or PY=...).
# Validation only: no hold-out, no seed >= 1000. Before it, as the rule asks: remake C by the command
# in benchmarks/results/blend_sar_1.5.1/train_C_remade.json (metadata.training_command, with --out),
# and re-run B's SSDD-val half (validation_B_1.4.0_ssdd_recheck.json has the command).
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=${PY:-.venv/bin/python}
C=${C:?path of the remade 1.5.0 candidate .pt (absolute, or relative to the repository root)}
WORK=${WORK:-/tmp/blend}
SSDD=${SSDD:-../shared/datasets/ssdd_train}
ALPHAS=${ALPHAS:-"0.25 0.5 0.75"}
VERSION=${VERSION:-1.5.1}  # the blends are named VERSION-a<alpha>
RULE=${RULE:-benchmarks/results/blend_sar_1.5.1/CHOICE_RULE.txt}  # the written rule the choice applies
B=detectors/weights/sar_centernet.pt
R=benchmarks/results/train_sar_1.5.0
[ -d "$SSDD" ] || { echo "no SSDD folder at $SSDD (set SSDD=...)" >&2; exit 2; }
[ -f "$C" ] || { echo "no candidate weights at $C" >&2; exit 2; }
mkdir -p "$WORK"
pids=()
run_bg() {  # run "$@" in the background, at most two at a time
  "$@" &
  pids+=($!)
  while [ "$(jobs -rp | wc -l)" -ge 2 ]; do sleep 2; done
}
wait_all() {  # every background job must succeed
  for p in "${pids[@]}"; do
    wait "$p" || { echo "a job failed (exit $?): see $WORK/*.log" >&2; exit 1; }
  done
  pids=()
}

for a in $ALPHAS; do
  $PY -m detectors.training.blend_sar --base "$B" --tuned "$C" --alpha "$a" --version "$VERSION-a$a" \
      --out "$WORK/raw_$a" 2>&1 | tail -1
done
threshold() {  # $1 alpha: the threshold chosen as C's was
  $PY -m detectors.training.train_sar --init "$WORK/raw_$1/sar_centernet.pt" --iters 0 --tta 1 --val-scenes 24 \
      --val-spacings 0.5,3,10 --threads 1 --version "$VERSION-a$1" --ssdd "$SSDD" --out "$WORK/a$1" \
      --results "$WORK/a$1/train.json" > "$WORK/thr_$1.log" 2>&1
}
validate() {  # $1 gen|ssdd, $2 alpha: one half of the validation run
  local args
  if [ "$1" = gen ]; then
    args=(--seeds 930-969 --size 1024 --gen-spacings 0.5,1,3,10 --ssdd-spacings '')
  else
    args=(--seeds '' --gen-spacings '' --ssdd-spacings 1,2,3,5,10)
  fi
  $PY benchmarks/eval_learned.py --ssdd-split val "${args[@]}" --ssdd "$SSDD" --threads 1 \
      --weights "$WORK/a$2/sar_centernet.pt" --out "$WORK/val_${1}_$2.json" > "$WORK/val_${1}_$2.log" 2>&1
}
# Thresholds, two at a time; then the generated and SSDD halves of each validation, two at a time.
for a in $ALPHAS; do run_bg threshold "$a"; done
wait_all
for a in $ALPHAS; do run_bg validate gen "$a"; run_bg validate ssdd "$a"; done
wait_all
cands=()
for a in $ALPHAS; do cands+=(--candidate "a$a=$WORK/val_gen_$a.json,$WORK/val_ssdd_$a.json"); done
$PY benchmarks/experiments/choose_sar_weights.py --base "$R/validation_B_1.4.0_generated.json,$R/validation_B_1.4.0.json" \
    "${cands[@]}" --rule "$RULE" --out "$WORK/choice.json"
