#!/usr/bin/env bash
# Builds the node (with its runtime Wasm) in the one profile used for builds and tests.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
source scripts/lib/env.sh
cargo build --locked --profile "$OPENLEDGER_PROFILE" -p openledger-node -p openledger-cli "$@"
echo "built $NODE_BIN and $CLI_BIN"
