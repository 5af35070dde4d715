#!/usr/bin/env bash
# Sets up the machine, builds, and starts the whole system on this machine:
#   - a one-validator development chain (Aura, 6 s blocks) with RPC on ws://127.0.0.1:9944
#     and Prometheus metrics on http://127.0.0.1:9615/metrics.
# Data lives in $OPENLEDGER_CACHE/dev-chain and survives restarts; `--fresh` wipes it first.
# Extra arguments go to the node, e.g. `scripts/start.sh --sealing instant`.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
bash scripts/setup.sh
bash scripts/build.sh
source scripts/lib/env.sh

BASE="$OPENLEDGER_CACHE/dev-chain"
args=()
for a in "$@"; do
  if [ "$a" = "--fresh" ]; then rm -rf "$BASE"; else args+=("$a"); fi
done

echo "starting openledger-node --dev (base path $BASE); Ctrl-C stops it"
exec "$NODE_BIN" --dev --base-path "$BASE" --rpc-port 9944 --prometheus-port 9615 "${args[@]}"
