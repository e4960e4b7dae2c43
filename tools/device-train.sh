#!/usr/bin/env bash
# Train the shipped models (or variants of their recipe) on a lent GPU within a
# fixed time, and keep the results.
# Usage (on the GPU machine, T91 copied into data/T91):
#   BUDGET=480 OUT=results bash tools/device-train.sh data/T91
#   BUDGET=480 OUT=results SCALES=4 bash tools/device-train.sh data/T91 \
#       b64="BATCH=64 RESCALE=1" b32="BATCH=32 RESCALE=1"
#   BUDGET=480 OUT=results SCALES=4 bash tools/device-train.sh data/T91 \
#       s2="SEED=2 INIT=models/srcnn_x4.shipped.safetensors LR=3e-4" s3="SEED=3 INIT=..."
#   (a seed changes the starting weights, crops and batch order, never the
#   held-out pictures (--val-seed 1), so bench/heldout.py can choose between runs)
#   w11="ARCH=11-5-5 INIT=models/srcnn_x4.shipped.safetensors LR=3e-4 SEED=2" grows the
#   shipped x4 to 11-5-5 first (a 12-epoch CPU cycle of it tied its start)
# Each variant NAME="SETTINGS" is tools/train-shipped.sh with those environment
# settings, for the scales in SCALES (default 2 3 4); all variants and scales run
# at the same time.  Without variants: the shipped recipe, models straight into OUT.
# 1. calibration (unless EPOCHS is given): two epochs of everything at once give
#    each variant's seconds per epoch (the second: the first includes cuDNN's
#    autotuning);
# 2. each variant runs as many epochs as fit in BUDGET seconds (counted from the
#    start of this script), so variants are compared at equal GPU time;
# 3. models (OUT/NAME/srcnn_x<scale>.shipped.safetensors), logs and per-epoch records are
#    copied into OUT.
# If the runs are still going when BUDGET is spent they are stopped like Ctrl-C
# and their best checkpoints are kept instead of finished models.
set -uo pipefail
cd "$(dirname "$0")/.."
t0=$(date +%s); BUDGET=${BUDGET:-480}; OUT=${OUT:?set OUT to a folder for the results}
t91=${1:-data/T91}; shift || true
variants=("$@"); [ ${#variants[@]} -gt 0 ] || variants=("shipped=")
mkdir -p "$OUT"
export PYTHON=${PYTHON:-python3} PYTHONUNBUFFERED=1 OMP_NUM_THREADS=${OMP_NUM_THREADS:-4}
export SCALES=${SCALES:-2 3 4}
log="$OUT/device.log"
{ date; nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
  "$PYTHON" -c "import torch, PIL, numpy; print('torch', torch.__version__, 'pillow',
PIL.__version__, 'numpy', numpy.__version__, 'cuda', torch.cuda.is_available())"; } >"$log" 2>&1

models_of() {  # variant name -> where its models go
  if [ "${variants[*]}" = "shipped=" ]; then echo "$OUT"; else echo "$OUT/$1"; fi
}

run_variants() {  # stage (calib|train) -> runs every variant at once; epochs from $epochs_<name>
  local stage=$1 pids=() failed=0 spec name settings epochs epochs_var models
  for spec in "${variants[@]}"; do
    name=${spec%%=*}; settings=${spec#*=}
    if [ "$stage" = calib ]; then epochs=2; models=runs/calib/$name
    else epochs_var="epochs_$name"; epochs=${!epochs_var}; models=$(models_of "$name"); fi
    echo "$stage $name: ${settings:-shipped recipe}, $epochs epochs" >>"$log"
    # shellcheck disable=SC2086  # settings is a list of VAR=value words
    env $settings EPOCHS="$epochs" MODELS="$models" RUNS="runs/$stage/$name" \
      bash tools/train-shipped.sh "$t91" $SCALES >>"$log" 2>&1 & pids+=($!)
  done
  for pid in "${pids[@]}"; do wait "$pid" || failed=1; done
  return $failed
}

for spec in "${variants[@]}"; do
  name=${spec%%=*}
  [[ $name =~ ^[A-Za-z0-9_]+$ ]] || { echo "variant name '$name': letters, digits, _" >&2; exit 2; }
  declare "epochs_$name=${EPOCHS:-}"
done
if [ -z "${EPOCHS:-}" ]; then  # calibration
  calib_start=$(date +%s)
  run_variants calib || { echo "calibration failed" >>"$log"; tail -n 30 runs/calib/*/*.log >>"$log"; exit 1; }
  calib_wall=$(( $(date +%s) - calib_start ))
  for spec in "${variants[@]}"; do
    name=${spec%%=*}
    declare "epochs_$name=$("$PYTHON" - "$calib_wall" "$(( BUDGET - ($(date +%s) - t0) ))" \
      "runs/calib/$name" 2>>"$log" <<'PY'
import json, sys, glob
wall, left, runs = float(sys.argv[1]), float(sys.argv[2]), sys.argv[3]
epochs = [[json.loads(l) for l in open(f)] for f in glob.glob(f"{runs}/x*-*/metrics.jsonl")]
# wall_seconds: an epoch's steps, crops and validation; the second epoch is the
# faster one (the first includes cuDNN's autotuning)
train = max(min(r["wall_seconds"] for r in run) for run in epochs)  # slowest, all at once
spent = max(sum(r["wall_seconds"] for r in run) for run in epochs)
per_epoch = train * 1.05 + 0.1                        # + checkpoints
startup = max(wall - spent, 5.0)                      # imports, data, CUDA set-up
print(max(1, int((left - startup - 10) / per_epoch)))
print(f"calibration {runs}: {train:.1f} s/epoch, {wall:.0f} s in all; {left:.0f} s left",
      file=sys.stderr)
PY
)"
  done
fi

# stop the runs like Ctrl-C if they are still going when the budget is spent
( sleep $(( BUDGET - ($(date +%s) - t0) )); pkill -INT -f "main.py train" ) &
watchdog=$!
run_variants train
status=$?
kill "$watchdog" 2>/dev/null
for spec in "${variants[@]}"; do  # fall-back when a run was stopped
  name=${spec%%=*}
  for f in runs/train/"$name"/x*-*/best.pt; do
    [ -e "$f" ] || continue
    scale=$(basename "$(dirname "$f")" | cut -d- -f1)   # .../x4-<time> -> x4
    dest=$(models_of "$name")
    [ -e "$dest/srcnn_$scale.shipped.safetensors" ] || cp "$f" "$dest/$scale.best.pt"
  done
done
tar czf "$OUT/runs.tgz" --exclude='*.pt' --exclude='*.new' $(ls -d runs/calib runs/train 2>/dev/null)
echo "finished with status $status after $(( $(date +%s) - t0 )) s" >>"$log"
tail -n 12 "$log"
exit $status
