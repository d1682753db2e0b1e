#!/usr/bin/env bash
# The device calls of one GPU run, each a short command over the payload that gpu_prepare.py split
# into .devcarry/p1 … pN (p1..pA: the payload without onnxruntime; the rest: onnxruntime-gpu).
#
#   call 1 … A-1:  bash tests/bench/gpu_run.sh recv K
#   call A:        bash tests/bench/gpu_run.sh recv A && bash tests/bench/gpu_run.sh start [gpu_bench args]
#   calls up to N-1: bash tests/bench/gpu_run.sh recv K
#   call N:        bash tests/bench/gpu_run.sh recv N && bash tests/bench/gpu_run.sh finish
#
# `start` launches gpu_bench.py in its own session (it outlives the call) on a copy of the tree; it
# runs the torch sections while the onnxruntime parts travel, then waits for them. `finish`
# unpacks onnxruntime-gpu, lets the benchmark go on, and copies its results to $OUT every few
# seconds, so a call that reaches its limit still brings back what was measured.
#
# Call K carries [".devcarry/pK", ".devcarry/manifest"]. The machine stays warm only about 30 s
# between calls, so make them back to back. `start --budget-s S`: no routed ONNX variant starts
# later than S seconds after the start call; take the device time left then minus about 250 s.
set -euo pipefail
ROOT=${GPU_RUN_ROOT:-/root/lr}
OUT=${OUT:-$ROOT/out}
mkdir -p "$ROOT/parts" "$ROOT/res" "$OUT"

unxz_stream() {  # xz -d where xz is installed, else Python's lzma
  if command -v xz >/dev/null; then xz -d -T0; else python3 -c 'import lzma, shutil, sys; shutil.copyfileobj(lzma.open(sys.stdin.buffer), sys.stdout.buffer)'; fi
}

recv() {
  cp ".devcarry/p$1/part" "$ROOT/parts/$1"
  echo "part $1: $(stat -c %s "$ROOT/parts/$1") bytes; $(ls "$ROOT/parts" | wc -l) parts here"
  [[ -f $ROOT/res/log ]] && tail -n 3 "$ROOT/res/log" | cut -c1-300 || true
}

unpack_payload() {  # parts 1..A (the manifest's payload_parts) → $ROOT/payload
  local payload_parts; payload_parts=$(sed -n 's/^payload_parts=//p' .devcarry/manifest)
  for k in $(seq 1 "$payload_parts"); do cat "$ROOT/parts/$k"; done | unxz_stream | tar -x -C "$ROOT"
}

start() {
  unpack_payload
  python3 -m pip install -q --no-index --no-deps --no-compile --target "$ROOT/site" "$ROOT"/payload/wheels/*.whl
  rm -rf "$ROOT/repo" && mkdir -p "$ROOT/repo"
  tar --exclude=./.devcarry --exclude=./.venv --exclude=./.git -cf - . | tar -x -C "$ROOT/repo"
  nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm --format=csv,noheader || true
  # its own session, so it outlives this call (a group leader forks first: setsid needs a non-leader)
  (cd "$ROOT/repo" && PYTHONPATH="$ROOT/site" PYTHONUNBUFFERED=1 python3 -c '
import os, sys
if os.getpgrp() == os.getpid() and os.fork():
    os._exit(0)
os.setsid()
os.execvp(sys.argv[1], sys.argv[1:])' python3 tests/bench/gpu_bench.py \
     --payload "$ROOT/payload" --out "$ROOT/res" --ort-site "$ROOT/ort" --ort-flag "$ROOT/ort.ready" "$@" \
     >"$ROOT/res/log" 2>&1 </dev/null &)
  sleep 20
  echo "gpu_bench pid $(cat "$ROOT/res/pid")"; cut -c1-300 "$ROOT/res/log" | grep -v Converting | tail -n 5
}

finish() {
  local manifest=.devcarry/manifest
  local payload_parts total; payload_parts=$(sed -n 's/^payload_parts=//p' "$manifest"); total=$(sed -n 's/^parts=//p' "$manifest")
  mkdir -p "$ROOT/ort"
  for k in $(seq $((payload_parts + 1)) "$total"); do cat "$ROOT/parts/$k"; done | unxz_stream | tar -x -C "$ROOT/ort"
  touch "$ROOT/ort.ready"
  local pid; pid=$(cat "$ROOT/res/pid")
  while kill -0 "$pid" 2>/dev/null; do
    cp "$ROOT/res/gpu_bench.json" "$ROOT/res/log" "$OUT/" 2>/dev/null || true
    sleep 5
  done
  cp "$ROOT/res/gpu_bench.json" "$ROOT/res/log" "$OUT/" 2>/dev/null || true
  grep -v Converting "$ROOT/res/log" | cut -c1-400 | tail -n 60
}

"$@"
