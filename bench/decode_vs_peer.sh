#!/usr/bin/env bash
# Greedy decode speed, ours vs the Hugging Face PyTorch peer, run back to back in
# alternating rounds on the same machine (the machine is shared: compare medians).
#
#   bash bench/decode_vs_peer.sh [ROUNDS] > /tmp/decode_vs_peer.log
#   python bench/summarize.py /tmp/decode_vs_peer.log
#
# Needs ~/peer-venv (see ../shared/bench/README.md) and our venv as $PY (default python).
set -u
ROUNDS=${1:-3}
PY=${PY:-python}
PEER_PY=${PEER_PY:-$HOME/peer-venv/bin/python}
HERE=$(cd "$(dirname "$0")" && pwd)
PEER_DIR=${PEER_DIR:-$HERE/../../shared/bench}
ARGS="--size small --batch 8 --inputs-len 128 --new-tokens 32 --reps 5"
for round in $(seq "$ROUNDS"); do
  echo "# round $round load: $(cut -d' ' -f1-3 /proc/loadavg)"
  "$PEER_PY" "$PEER_DIR/hf_t5_generate.py" $ARGS 2>/dev/null | grep '^RESULT'
  "$PY" "$HERE/decode_speed.py" $ARGS --weights plain float32 bfloat16 int8 2>/dev/null \
    | grep '^RESULT'
done
echo "# end load: $(cut -d' ' -f1-3 /proc/loadavg)"
