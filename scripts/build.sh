#!/usr/bin/env bash
# Builds the node (with its runtime Wasm), the CLI and the inference worker in the one profile
# used for builds and tests. The worker is its own workspace with its own target dir, so both
# builds run side by side: on 2 cores that fills the serial stretches of each (the runtime Wasm,
# big single crates, linking) and saves minutes on a fresh machine.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
source scripts/lib/env.sh
# With OPENLEDGER_BUILD_TESTS=1 (scripts/test.sh) the worker's tests are compiled here too: the
# worker's side finishes long before the node's, so they cost little wall time here and none later.
(
  CARGO_TARGET_DIR="$OPENLEDGER_WORKER_TARGET" cargo build --locked --profile "$OPENLEDGER_PROFILE" --manifest-path inference-worker/Cargo.toml "$@"
  if [ "${OPENLEDGER_BUILD_TESTS:-0}" = 1 ]; then
    CARGO_TARGET_DIR="$OPENLEDGER_WORKER_TARGET" cargo test --no-run --locked --profile "$OPENLEDGER_PROFILE" --manifest-path inference-worker/Cargo.toml "$@"
  fi
) &
worker=$!
trap 'pkill -TERM -P "$worker" 2>/dev/null; kill "$worker" 2>/dev/null || true' ERR
cargo build --locked --profile "$OPENLEDGER_PROFILE" -p openledger-node -p openledger-cli "$@"
wait "$worker" || { echo "the worker build failed" >&2; exit 1; }
# The Studio: one esbuild bundle into web/dist (served by `openledger studio`).
(cd web && node build.mjs)
echo "built $NODE_BIN, $CLI_BIN, $WORKER_BIN and web/dist"
