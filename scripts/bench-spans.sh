#!/usr/bin/env bash
# Benchmark: our span index vs the infini-gram package's indexer and engine on one synthetic
# token corpus in one run (build time, bytes/token, longest-match latency p50/p99). Prints a table.
#
#   scripts/bench-spans.sh [--tokens 100000000] [--queries 2000]
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib/worker-bench.sh"
"$OPENLEDGER_VENV/bin/python" tests/worker/bench_spans.py --worker "$WORKER_BIN" --dir "$WORK" "$@"
