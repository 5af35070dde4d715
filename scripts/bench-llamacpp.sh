#!/usr/bin/env bash
# Benchmark: llama.cpp (llama-cpp-python 0.3.36, built here from source for this CPU) against our
# worker on the same seeded weights and token ids, f32 then f16, in one run. Prints two tables.
# Its own venv (~/.cache/openledger/venv-yardstick): the first run compiles llama.cpp (about
# 20 minutes on 2 cores); CI does not run it.
#
#   scripts/bench-llamacpp.sh [--threads N] [--streams 16] [--prompt 512] [--decode 128]
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib/worker-bench.sh"
VENV="${OPENLEDGER_YARDSTICK_VENV:-$HOME/.cache/openledger/venv-yardstick}"
if ! "$VENV/bin/python" -c 'import llama_cpp, gguf' 2>/dev/null; then
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q gguf==0.19.0 numpy
  CMAKE_BUILD_PARALLEL_LEVEL="$(nproc)" CMAKE_ARGS="-DGGML_NATIVE=ON -DLLAMA_CURL=OFF" \
    "$VENV/bin/pip" install -q llama-cpp-python==0.3.36
fi
for dtype in f32 f16; do
  "$VENV/bin/python" tests/worker/yardstick_llamacpp.py --worker "$WORKER_BIN" --dir "$WORK" --dtype "$dtype" "$@"
done
