# Shared environment for the project's scripts (sourced, not executed).
# One target dir outside the clone so CI and local builds share artifacts.
export OPENLEDGER_CACHE="${OPENLEDGER_CACHE:-$HOME/.cache/openledger}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$OPENLEDGER_CACHE/target}"
# The runtime's Wasm build must find our workspace (and its Cargo.lock) though the target dir
# is outside it.
export WASM_BUILD_WORKSPACE_HINT="${WASM_BUILD_WORKSPACE_HINT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}"
# One profile for builds and tests.
export OPENLEDGER_PROFILE="${OPENLEDGER_PROFILE:-release}"
if [ -f "$OPENLEDGER_CACHE/wasm-env" ]; then
  # shellcheck disable=SC1091
  source "$OPENLEDGER_CACHE/wasm-env"
fi
export NODE_BIN="$CARGO_TARGET_DIR/$OPENLEDGER_PROFILE/openledger-node"
export CLI_BIN="$CARGO_TARGET_DIR/$OPENLEDGER_PROFILE/openledger"
# The inference worker is its own workspace with its own target dir, so that building it never
# waits on the node's build lock (and the two can build side by side).
export OPENLEDGER_WORKER_TARGET="${OPENLEDGER_WORKER_TARGET:-$OPENLEDGER_CACHE/target-worker}"
export WORKER_BIN="$OPENLEDGER_WORKER_TARGET/$OPENLEDGER_PROFILE/openledger-worker"
# The worker's benchmarks, a binary of their own (not in the production server).
export BENCH_BIN="$OPENLEDGER_WORKER_TARGET/$OPENLEDGER_PROFILE/openledger-bench"
# Python environment of the worker's end-to-end tests (official `openai` client).
export OPENLEDGER_VENV="$OPENLEDGER_CACHE/venv"
# The crates tested with `--features runtime-benchmarks,try-runtime`, in ONE cargo invocation by
# scripts/test.sh and by scripts/try-upgrade.sh alike: the same package set resolves the same
# features, so the upgrade check reuses the test build instead of compiling the runtime again.
OPENLEDGER_CHECKED=(-p pallet-datanets -p pallet-models -p pallet-open-staking -p pallet-attribution -p pallet-validator-set -p openledger-runtime)
