#!/usr/bin/env bash
# Retrain the shipped models from T91: each scale from scratch, same recipe.
# Usage: bash tools/train-shipped.sh T91_DIR [SCALES...]   (default scales: 2 3 4)
#
# The recipe, as environment settings (defaults = how the shipped models were made):
#   EPOCHS=88  PATCHES=131072  (fresh 48 px crops per epoch)  BATCH=128  LR=1e-3
#   RESCALE=0.6  SEED=1  ARCH=9-5-5
#   PARALLEL=1  train the scales at the same time (one GPU has room for all three;
#               on a CPU set PARALLEL=0)
#   INIT=FILE  start from this model's weights instead of random ones (--init)
#   TEACHER=FILE  blend this model's x8 self-ensemble output into the targets
#               (--teacher; TEACHER_WEIGHT=0.5 its share)
#   PYTHON=python  the interpreter
#   MODELS=models  where srcnn_x<scale>.shipped.safetensors is written;  RUNS=runs/shipped
# Any further flags of `main.py train` can be given in TRAIN_FLAGS (e.g. "--cpu").
set -euo pipefail
cd "$(dirname "$0")/.."
t91=${1:?usage: tools/train-shipped.sh T91_DIR [SCALES...]}; shift || true
scales=${*:-2 3 4}
EPOCHS=${EPOCHS:-88}; PATCHES=${PATCHES:-131072}; BATCH=${BATCH:-128}; LR=${LR:-1e-3}
RESCALE=${RESCALE:-0.6}; SEED=${SEED:-1}; ARCH=${ARCH:-9-5-5}; PARALLEL=${PARALLEL:-1}
MODELS=${MODELS:-models}; RUNS=${RUNS:-runs/shipped}
mkdir -p "$RUNS" "$MODELS"

train_one() {  # scale -> models/srcnn_x<scale>.shipped.safetensors, log in $RUNS/x<scale>.log
  local s=$1 out="$MODELS/srcnn_x$1.shipped.safetensors" start=(--new)
  if [ -n "${INIT:-}" ]; then start=(--init "$INIT"); fi
  local teacher=()
  if [ -n "${TEACHER:-}" ]; then
    teacher=(--teacher "$TEACHER" --teacher-weight "${TEACHER_WEIGHT:-0.5}")
  fi
  # shellcheck disable=SC2086  # TRAIN_FLAGS is a list of flags
  "${PYTHON:-python}" main.py train "${start[@]}" "${teacher[@]}" --scale "$s" -e "$EPOCHS" --from-images "$t91" --arch "$ARCH" \
    --patch 48 --patches "$PATCHES" --batch "$BATCH" --lr "$LR" --rescale "$RESCALE" \
    --seed "$SEED" --runs "$RUNS" --output "$RUNS/x$s.safetensors" ${TRAIN_FLAGS:-} \
    > "$RUNS/x$s.log" 2>&1 && mv "$RUNS/x$s.safetensors" "$out"
}

start=$(date +%s); pids=(); failed=0
for s in $scales; do
  if [ "$PARALLEL" = 1 ]; then
    train_one "$s" & pids+=($!)
  else
    train_one "$s" || { echo "x$s failed: see $RUNS/x$s.log" >&2; failed=1; }
  fi
done
for i in "${!pids[@]}"; do
  wait "${pids[$i]}" || { echo "a run failed: see the logs in $RUNS/" >&2; failed=1; }
done
for s in $scales; do tail -n 1 "$RUNS/x$s.log"; done
echo "trained x${scales// /, x} in $(( $(date +%s) - start )) s"
exit $failed
