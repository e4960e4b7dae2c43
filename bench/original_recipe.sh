#!/usr/bin/env bash
# The original project's recipe, timed, in a fresh clone of this repository:
#   T91 in images_raw/, gen_samples.py 400 -64, train --cpu -n -e 20, eval Set5 x2.
# Usage: bash bench/original_recipe.sh [DATASETS_DIR]   (default ../shared/datasets)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
datasets=$(cd "${1:-$root/../shared/datasets}" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
git clone -q "$root" "$work/clone"
cd "$work/clone"
cp "$datasets"/T91/* images_raw/
py="$root/.venv/bin/python"
start=$(date +%s.%N)
TQDM_DISABLE=1 "$py" gen_samples.py 400 -64
TQDM_DISABLE=1 "$py" main.py train --cpu -n -e 20 | grep -E "^(training|epoch  20|saved)"
end=$(date +%s.%N)
echo "generation + training: $(echo "$end - $start" | bc) s ($(nproc) cores, $(uname -m))"
model=$(ls models/srcnn_x2.2*.pt)
"$py" main.py eval -i "$datasets/Set5" --scale 2 --model "$model" | tail -1
