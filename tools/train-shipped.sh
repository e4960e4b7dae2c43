#!/usr/bin/env bash
# Retrain the shipped models from T91 (the recipe of the README, as flags).
# Usage: bash tools/train-shipped.sh T91_DIR [SCALES...]   (default scales: 2 3 4)
# x2 trains from scratch; x3 and x4 start from the x2 weights and are fine-tuned.
set -euo pipefail
cd "$(dirname "$0")/.."
t91=${1:?usage: tools/train-shipped.sh T91_DIR [SCALES...]}; shift || true
scales=${*:-2 3 4}
EPOCHS_X2=${EPOCHS_X2:-45}; EPOCHS_FT=${EPOCHS_FT:-12}
common=(--from-images "$t91" --arch 9-5-5 --patch 48 --patches 8192 --batch 64
        --lr 1e-3 --rescale 0.6 --seed 1 --runs runs/shipped)
for s in $scales; do
  out=models/srcnn_x$s.shipped.pt
  if [ "$s" = 2 ]; then
    python main.py train -n --scale 2 -e "$EPOCHS_X2" "${common[@]}" --output "$out.new"
  else
    python main.py train --init models/srcnn_x2.shipped.pt --scale "$s" -e "$EPOCHS_FT" \
      "${common[@]}" --output "$out.new"
  fi
  mv "$out.new" "$out"
done
