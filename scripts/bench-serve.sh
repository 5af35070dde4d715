#!/usr/bin/env bash
# Benchmark: the real HTTP server under one replayed trace (Poisson arrivals, Zipf-distributed
# adapters) with 1 adapter, 2,000 adapters and the base model, in one run. Prints a table.
#
#   scripts/bench-serve.sh [--adapters 2000] [--requests 160] [--rate 3] [--max-batch 32]
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib/worker-bench.sh"
"$OPENLEDGER_VENV/bin/python" tests/worker/bench_serve.py --worker "$WORKER_BIN" --dir "$WORK" "$@"
