#!/usr/bin/env bash
# Benchmark: decode tokens/s of one batch whose rows use 1, 8, 64, 512 distinct LoRA adapters
# (rank 16) on a CPU-shaped base model (hidden 1024, 8 layers, vocab 32000, seeded weights), as a
# ratio of the base model without adapters measured in the same run; the merge-per-request
# baseline; adapter cold-load latency (p50/p99) and memory per adapter. Prints a table.
#
#   scripts/bench-lora.sh [extra bench-lora flags, e.g. --targets all-linear... --dtype bf16]
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
source scripts/lib/env.sh
CARGO_TARGET_DIR="$OPENLEDGER_WORKER_TARGET" cargo build --locked --profile "$OPENLEDGER_PROFILE" --manifest-path inference-worker/Cargo.toml >&2
exec "$BENCH_BIN" bench-lora "$@"
