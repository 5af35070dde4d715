#!/usr/bin/env bash
# Benchmark: our span index vs the infini-gram package's indexer and engine on one synthetic
# token corpus in one run (build time, bytes/token, longest-match latency p50/p99). Prints a table.
#
#   scripts/bench-spans.sh [--tokens 100000000] [--queries 2000]
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
bash scripts/setup.sh >/dev/null
source scripts/lib/env.sh
CARGO_TARGET_DIR="$OPENLEDGER_WORKER_TARGET" cargo build --locked --profile "$OPENLEDGER_PROFILE" --manifest-path inference-worker/Cargo.toml >&2
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
"$OPENLEDGER_VENV/bin/python" tests/worker/bench_spans.py --worker "$WORKER_BIN" --dir "$WORK" "$@"
