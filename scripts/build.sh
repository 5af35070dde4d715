#!/usr/bin/env bash
# Builds the node (with its runtime Wasm) in the one profile used for builds and tests.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
source scripts/lib/env.sh
cargo build --locked --profile "$OPENLEDGER_PROFILE" -p openledger-node -p openledger-cli "$@"
# The inference worker is its own workspace (own Cargo.lock) and target dir.
CARGO_TARGET_DIR="$OPENLEDGER_WORKER_TARGET" cargo build --locked --profile "$OPENLEDGER_PROFILE" --manifest-path inference-worker/Cargo.toml "$@"
echo "built $NODE_BIN, $CLI_BIN and $WORKER_BIN"
