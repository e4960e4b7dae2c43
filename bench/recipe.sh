#!/usr/bin/env bash
# What each choice of the training recipe is worth: short x3 runs from scratch on
# T91, one change at a time against the base recipe, scored on Set5 / Set14 x3.
# Usage: bash bench/recipe.sh [DATASETS_DIR] [VARIANT...]   (default ../shared/datasets)
# Settings: EPOCHS=12 PATCHES=8192 (a short run: about 6 min per variant on 2 cores).
# Base: 9-5-5, residual, 48 px crops, batch 64, Adam 1e-3 with warm-up + cosine,
# flips and 90-degree turns, pictures rescaled by 0.6..1, default initialisation.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
datasets=$(cd "${1:-../shared/datasets}" && pwd); shift || true
py=${PYTHON:-$root/.venv/bin/python}
EPOCHS=${EPOCHS:-12}; PATCHES=${PATCHES:-8192}
declare -A VARIANTS=(
  [base]=""
  [plain]="--plain"                 # predict the image, not a correction to bicubic
  [no-rescale]="--rescale 1"        # no random picture rescaling
  [patch-33]="--patch 33"           # the paper's 33 px sub-images
  [batch-16]="--batch 16"
  [batch-256]="--batch 256"
  [lr-1e-4]="--lr 1e-4"
  [arch-9-1-5]="--arch 9-1-5"
)
names=${*:-base plain no-rescale patch-33 batch-16 batch-256 lr-1e-4 arch-9-1-5}
out=runs/recipe; mkdir -p "$out"
printf '| variant | Set5 x3 | Set14 x3 | train s |\n|---|---|---|---|\n' > "$out/table.md"
for name in $names; do
  model="$out/$name.pt"; rm -f "$model" "$out/$name".*.json
  start=$(date +%s)
  # shellcheck disable=SC2086  # the variant's flags are a list
  TQDM_DISABLE=1 "$py" main.py train -n --cpu --scale 3 --from-images "$datasets/T91" \
    --arch 9-5-5 --patch 48 --patches "$PATCHES" --batch 64 --lr 1e-3 --rescale 0.6 \
    --seed 1 -e "$EPOCHS" --runs "$out/runs" --output "$model" ${VARIANTS[$name]} \
    > "$out/$name.log" 2>&1
  seconds=$(( $(date +%s) - start ))
  row="| $name |"
  for set in Set5 Set14; do
    "$py" main.py eval -i "$datasets/$set" --scale 3 --model "$model" --json "$out/$name.$set.json" \
      > /dev/null
    row+=" $("$py" -c 'import json,sys; print("%.2f" % json.load(open(sys.argv[1]))["mean"]["psnr"])' \
      "$out/$name.$set.json") |"
  done
  echo "$row $seconds |" | tee -a "$out/table.md"
done
echo; cat "$out/table.md"
