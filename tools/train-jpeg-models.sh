#!/usr/bin/env bash
# Retrain the JPEG-level models (models/srcnn_x<s>_jpeg<L>.shipped.safetensors).
# Usage: bash tools/train-jpeg-models.sh T91_DIR   (further `main.py train` flags in
#        TRAIN_FLAGS, e.g. TRAIN_FLAGS=--cpu)
#
# Each model fine-tunes a clean shipped model (x1 ones: the x2 model, then each other)
# on T91 whose small pictures are saved as JPEG at a quality drawn from its level's
# range (sr/jpeg.py LEVELS: 1: 84-98, 2: 60-90, 3: 10-70, 4: 5-25; level 4 has an x1
# model only, other scales run level 3's x1 model and then level 3's models), in the
# stages below.  Levels have x1 and x2 models: x3 and x4 run the x2 model twice, which
# beat x3 and x4 models fine-tuned here at every level (docs/real-pictures.md).  The
# recipe the shipped files were made with, on the project's 2-core CPU over three
# sessions (3 to 20 min a stage; stage lengths were what each session's CPU allowed).
set -euo pipefail
cd "$(dirname "$0")/.."
t91=${1:?usage: tools/train-jpeg-models.sh T91_DIR}
out=${RUNS:-runs/jpeg-models}; mkdir -p "$out"
declare -A range=([1]=84-98 [2]=60-90 [3]=10-70 [4]=5-25)

stage() {  # NAME START SCALE LEVEL EPOCHS [FLAGS]: $out/NAME.safetensors from START;
  local name=$1 start=$2 scale=$3 level=$4 epochs=$5; shift 5  # JPEG=QMIN-QMAX: not the level's
  # shellcheck disable=SC2086  # TRAIN_FLAGS is a list of flags
  python main.py train --init "$start" --scale "$scale" --jpeg "${JPEG:-${range[$level]}}" \
    -e "$epochs" --from-images "$t91" --patch 48 --patches 4096 --batch 32 --lr 3e-4 \
    --rescale 0.6 --runs "$out/runs" --output "$out/$name.safetensors" "$@" \
    ${TRAIN_FLAGS:-} > "$out/$name.log"
}
ship() {   # NAME SCALE LEVEL
  cp "$out/$1.safetensors" "models/srcnn_x$2_jpeg$3.shipped.safetensors"
}
m=models
stage x2_l1a $m/srcnn_x2.shipped.safetensors 2 1 10
stage x2_l1 "$out/x2_l1a.safetensors" 2 1 20
stage x2_l1d "$out/x2_l1.safetensors" 2 1 60 --seed 2 && ship x2_l1d 2 1   # fresh crops
stage x2_l2a $m/srcnn_x2.shipped.safetensors 2 2 10
stage x2_l2b "$out/x2_l2a.safetensors" 2 2 20
stage x2_l2 "$out/x2_l2b.safetensors" 2 2 30
stage x2_l2d "$out/x2_l2.safetensors" 2 2 60 --seed 2 && ship x2_l2d 2 2   # fresh crops
stage x2_l3a $m/srcnn_x2.shipped.safetensors 2 3 20
stage x2_l3 "$out/x2_l3a.safetensors" 2 3 30
# then weighted to the middle of the level (q50/q60 gained 0.06-0.1 dB, q20 lost 0.05)
JPEG=30-65 stage x2_l3w "$out/x2_l3.safetensors" 2 3 50 --seed 2 && ship x2_l3w 2 3
stage x1_l3a $m/srcnn_x2.shipped.safetensors 1 3 20     # x1 starts from the x2 model
stage x1_l3b "$out/x1_l3a.safetensors" 1 3 30
stage x1_l3 "$out/x1_l3b.safetensors" 1 3 30
# then weighted to the worst JPEGs (q10/q20 gained 0.1 dB, q60 lost 0.05), fresh crops
JPEG=10-45 stage x1_l3n "$out/x1_l3.safetensors" 1 3 60 --seed 2
JPEG=10-60 stage x1_l3m "$out/x1_l3n.safetensors" 1 3 40 --seed 2 && ship x1_l3m 1 3
stage x1_l4 "$out/x1_l3m.safetensors" 1 4 60 --seed 3 && ship x1_l4 1 4   # the worst JPEGs
stage x1_l2 "$out/x1_l3a.safetensors" 1 2 20 && ship x1_l2 1 2
stage x1_l1a "$out/x1_l2.safetensors" 1 1 20
stage x1_l1 "$out/x1_l1a.safetensors" 1 1 15 --lr 1e-4 --batch 64 && ship x1_l1 1 1
echo "done: models/srcnn_x*_jpeg*.shipped.safetensors; page: python main.py export-onnx"
