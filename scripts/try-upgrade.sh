#!/usr/bin/env bash
# Checks this tree's runtime upgrade against a live chain's state, as try-runtime does:
#   bash scripts/try-upgrade.sh ws://127.0.0.1:9944 [block hash]
# Saves the chain's storage at its finalized head (or the given block) with
# tests/e2e/snapshot.mjs, then runs runtime/tests/live_upgrade.rs over it: every migration's
# pre_upgrade, the upgrade (this code's migrations and every pallet's on_runtime_upgrade), every
# post_upgrade, a decode of all storage in the new layout, every pallet's try_state, the
# runtime-wide OPEN equalities and idempotency (a second run changes nothing). Prints the
# upgrade's weight against the block's; exits non-zero on the first failed check (or when the
# upgrade does not fit in one block).
# Reads the chain over JSON-RPC only (an archive or a recent block of a full node).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
URI="${1:?usage: try-upgrade.sh <ws-url> [block hash]}"
AT="${2:-}"
source "$ROOT/scripts/lib/env.sh"
STATE="$(mktemp -d)/state.json"
trap 'rm -rf "$(dirname "$STATE")"' EXIT
[ -d "$ROOT/tests/e2e/node_modules" ] || (cd "$ROOT/tests/e2e" && npm ci --no-audit --no-fund >/dev/null)
node "$ROOT/tests/e2e/snapshot.mjs" "$URI" "$STATE" ${AT:+"$AT"}
# The test needs the runtime natively with try-runtime (no Wasm build). It is built exactly as
# scripts/test.sh builds it (the same packages and features: OPENLEDGER_CHECKED), so CI's build
# serves it; only the runtime has the `live_upgrade` test.
cd "$ROOT"
OPENLEDGER_STATE="$STATE" SKIP_WASM_BUILD=1 cargo test --locked --profile "$OPENLEDGER_PROFILE" \
  "${OPENLEDGER_CHECKED[@]}" --features try-runtime,runtime-benchmarks --test live_upgrade \
  -- --nocapture
