#!/usr/bin/env bash
# Train the shipped models on a lent GPU within a fixed time, and keep the results.
# Usage (on the GPU machine, T91 copied into data/T91):
#   BUDGET=480 OUT=results bash tools/device-train.sh data/T91
# 1. calibration (unless EPOCHS is given): one epoch of every scale at once gives
#    the seconds per epoch;
# 2. the recipe of tools/train-shipped.sh with as many epochs as fit in BUDGET
#    seconds (counted from the start of this script);
# 3. models, logs and per-epoch records are copied into OUT.
# If the runs are still going when BUDGET is spent they are stopped like Ctrl-C
# and their best checkpoints are kept instead of finished models.
set -uo pipefail
cd "$(dirname "$0")/.."
t0=$(date +%s); BUDGET=${BUDGET:-480}; OUT=${OUT:?set OUT to a folder for the results}
t91=${1:-data/T91}
mkdir -p "$OUT"
export PYTHON=${PYTHON:-python3} PYTHONUNBUFFERED=1 OMP_NUM_THREADS=${OMP_NUM_THREADS:-4}
log="$OUT/device.log"
{ date; nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
  "$PYTHON" -c "import torch, PIL, numpy; print('torch', torch.__version__, 'pillow',
PIL.__version__, 'numpy', numpy.__version__, 'cuda', torch.cuda.is_available())"; } >"$log" 2>&1

if [ -n "${EPOCHS:-}" ]; then  # given: no calibration
  epochs=$EPOCHS
else
calib_start=$(date +%s)
EPOCHS=1 MODELS=runs/calib RUNS=runs/calib bash tools/train-shipped.sh "$t91" >>"$log" 2>&1 \
  || { echo "calibration failed" >>"$log"; tail -n 30 runs/calib/*.log >>"$log"; exit 1; }
calib_wall=$(( $(date +%s) - calib_start ))
epochs=$("$PYTHON" - "$calib_wall" "$(( BUDGET - ($(date +%s) - t0) ))" 2>>"$log" <<'PY'
import json, sys, glob
wall, left = float(sys.argv[1]), float(sys.argv[2])
records = [json.loads(l) for f in glob.glob("runs/calib/x*-*/metrics.jsonl") for l in open(f)]
train = max(r["seconds"] for r in records)          # slowest scale's epoch, all at once
per_epoch = train * 1.05 + 1.5                        # + validation and checkpoints
startup = max(wall - train, 5.0)                      # imports, data, CUDA set-up
print(max(1, int((left - startup - 10) / per_epoch)))
print(f"calibration: {train:.1f} s/epoch, {wall:.0f} s in all; {left:.0f} s left",
      file=sys.stderr)
PY
)
fi
echo "epochs: $epochs" >>"$log"

# stop the runs like Ctrl-C if they are still going when the budget is spent
( sleep $(( BUDGET - ($(date +%s) - t0) )); pkill -INT -f "main.py train" ) &
watchdog=$!
EPOCHS=$epochs MODELS="$OUT" bash tools/train-shipped.sh "$t91" >>"$log" 2>&1
status=$?
kill "$watchdog" 2>/dev/null
for f in runs/shipped/x*-*/best.pt; do  # fall-back when a run was stopped
  scale=$(basename "$(dirname "$f")" | cut -d- -f1)   # runs/shipped/x4-<time> -> x4
  [ -e "$OUT/srcnn_$scale.shipped.pt" ] || cp "$f" "$OUT/$scale.best.pt"
done
tar czf "$OUT/runs.tgz" --exclude='*.pt' --exclude='*.new' $(ls -d runs/calib runs/shipped 2>/dev/null)
echo "finished with status $status after $(( $(date +%s) - t0 )) s" >>"$log"
tail -n 8 "$log"
exit $status
