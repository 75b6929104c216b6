#!/usr/bin/env bash
# The group-expert round of benchmarks/results/group_expert/CHOICE_RULE.txt on a 2-core CPU: the
# shipped weights (B) with the dense-group expert X (detectors/sar/group_expert.py) on validation
# (generated and SSDD halves side by side), then the rule applied by choose_sar_weights.py against
# B's validation files. Validation only: no hold-out, no seed >= 1000.
#   X=/tmp/c16/sar_centernet.pt WORK=/tmp/ge bash benchmarks/experiments/group_expert_round.sh
# X is the 1.5.0 candidate remade by its recorded command (CHOICE_RULE.txt says how), with its
# .sha256 beside it (train_sar writes it) and its .onnx twin (the CPU runtime runs it).
# Needs ../shared/datasets/ssdd_train (or SSDD=...) and the project's venv (make install; or PY=...).
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=${PY:-.venv/bin/python}
X=${X:?path of the expert .pt}
WORK=${WORK:-/tmp/ge}
GT=${GT:-}  # the expert's score threshold (--group-threshold); empty: the one stored with it
UNION=${UNION:-}  # the gate's union radius, metres (--group-union-m); empty: the detector's default (5 m since round 3); none: the expert replaces (rounds 1 and 2 ran so: rerun them with UNION=none)
NAME=${NAME:-g3}  # the candidate's name in choice.json (ends with a number, as the chooser asks)
SSDD=${SSDD:-../shared/datasets/ssdd_train}
R=benchmarks/results/train_sar_1.5.0
[ -d "$SSDD" ] || { echo "no SSDD folder at $SSDD (set SSDD=...)" >&2; exit 2; }
[ -f "$X" ] || { echo "no expert weights at $X" >&2; exit 2; }
mkdir -p "$WORK"
$PY benchmarks/eval_learned.py --ssdd-split val --seeds 930-969 --size 1024 --gen-spacings 0.5,1,3,10 \
    --ssdd-spacings '' --ssdd "$SSDD" --threads 1 --group-weights "$X" ${GT:+--group-threshold $GT} ${UNION:+--group-union-m $UNION} --out "$WORK/val_gen.json" \
    > "$WORK/val_gen.log" 2>&1 &
g=$!
$PY benchmarks/eval_learned.py --ssdd-split val --seeds '' --gen-spacings '' --ssdd-spacings 1,2,3,5,10 \
    --ssdd "$SSDD" --threads 1 --group-weights "$X" ${GT:+--group-threshold $GT} ${UNION:+--group-union-m $UNION} --out "$WORK/val_ssdd.json" > "$WORK/val_ssdd.log" 2>&1 &
s=$!
wait $g || { echo "generated half failed: $WORK/val_gen.log" >&2; exit 1; }
wait $s || { echo "SSDD half failed: $WORK/val_ssdd.log" >&2; exit 1; }
$PY benchmarks/experiments/choose_sar_weights.py --rule benchmarks/results/group_expert/CHOICE_RULE.txt \
    --base "$R/validation_B_1.4.0_generated.json,$R/validation_B_1.4.0.json" \
    --candidate "$NAME=$WORK/val_gen.json,$WORK/val_ssdd.json" --out "$WORK/choice.json"
