#!/usr/bin/env bash
# Train-step speed and MFU, ours vs the Hugging Face PyTorch peer, run back to back in
# alternating rounds on the same machine (T5 v1.1-small, batch 8, inputs 128,
# targets 64, Adafactor), then one table: ratios to the peer's best setting per round.
#
#   bash bench/train_step_vs_peer.sh [ROUNDS] > /tmp/train_step_vs_peer.log
#
# Needs ~/peer-venv (see ../shared/bench/README.md) and our venv as $PY (default python).
# MFU on a CPU: against this machine's matmul peak, measured with
# ../shared/bench/matmul_peak.py (torch and jax, the best of both per dtype) before
# and after the rounds; the table divides both sides by the higher of the two (a
# peak measured while other work runs is too low).
set -u
ROUNDS=${1:-3}
PY=${PY:-python}
PEER_PY=${PEER_PY:-$HOME/peer-venv/bin/python}
HERE=$(cd "$(dirname "$0")" && pwd)
PEER_DIR=${PEER_DIR:-$HERE/../../shared/bench}
ARGS=${ARGS:-"--size small --batch 8 --inputs-len 128 --targets-len 64 --steps 8 --warmup 2"}
LOG=$(mktemp)

{
  echo "# cpu: $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) cores;" \
    "flags: $(grep -o 'avx512_bf16\|avx512f\|amx[a-z_0-9]*\|avx2' /proc/cpuinfo | sort -u | tr '\n' ' ')"
  echo "# $(date -u '+%Y-%m-%d %H:%M UTC'); ours: $("$PY" -c 'import jax; print("jax", jax.__version__)');" \
    "peer: $("$PEER_PY" -c 'import torch, transformers; print("torch", torch.__version__, "transformers", transformers.__version__)')"
  measure_peaks() {  # prints "fp32 bf16": the best GFLOP/s of torch and jax per dtype
    { "$PEER_PY" "$PEER_DIR/matmul_peak.py" --backend torch --sizes 1024 2048 --reps 7
      "$PY" "$PEER_DIR/matmul_peak.py" --backend jax --sizes 1024 2048 --reps 7; } 2>/dev/null \
      | grep '^RESULT' | "$PY" -c '
import json, sys
best = {}
for line in sys.stdin:
  r = json.loads(line[len("RESULT "):])
  best[r["dtype"]] = max(best.get(r["dtype"], 0), r["best_gflops"])
print(best["fp32"], best["bf16"])'
  }
  read -r PEAK_F32 PEAK_BF16 <<< "$(measure_peaks)"
  [ -n "${PEAK_BF16:-}" ] || { echo "# matmul_peak.py gave no peak: stopping"; exit 1; }
  echo "# peak fp32 $PEAK_F32 bf16 $PEAK_BF16 (measured matmul GFLOP/s before the rounds)"

  peer() {
    "$PEER_PY" "$PEER_DIR/hf_t5_train.py" $ARGS --optimizer adafactor --peak-gflops "$PEAK_F32" \
      2>/dev/null | grep '^RESULT'
    "$PEER_PY" "$PEER_DIR/hf_t5_train.py" $ARGS --optimizer adafactor --bf16-autocast \
      --peak-gflops "$PEAK_BF16" 2>/dev/null | grep '^RESULT'
  }
  ours() {
    "$PY" "$HERE/train_step_speed.py" $ARGS --modes f32 bf16_fast \
      --peak-gflops-float32 "$PEAK_F32" --peak-gflops-bfloat16 "$PEAK_BF16" 2>/dev/null \
      | grep '^RESULT'
  }
  for round in $(seq "$ROUNDS"); do
    echo "# round $round load: $(cut -d' ' -f1-3 /proc/loadavg)"
    if (( round % 2 )); then peer; ours; else ours; peer; fi
  done
  echo "# end load: $(cut -d' ' -f1-3 /proc/loadavg)"
  read -r PEAK_F32 PEAK_BF16 <<< "$(measure_peaks)"
  echo "# peak fp32 $PEAK_F32 bf16 $PEAK_BF16 (measured again after the rounds)"
} | tee "$LOG"
echo
"$PY" "$HERE/summarize_train_step.py" "$LOG"
rm -f "$LOG"
