#!/usr/bin/env bash
# Benchmark: settled attribution receipts per second on a dev node, next to plain transfers
# measured in the same run (tests/e2e/bench-receipts.mjs prints the table).
#
#   scripts/bench-receipts.sh [receipts per worker] [workers] [batch]
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
bash scripts/setup.sh >/dev/null
bash scripts/build.sh >/dev/null 2>&1
source scripts/lib/env.sh
WORK="$(mktemp -d)"
NODE_PID=""
cleanup() { [ -n "$NODE_PID" ] && kill "$NODE_PID" 2>/dev/null && wait "$NODE_PID" 2>/dev/null; rm -rf "$WORK"; }
trap cleanup EXIT
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"$NODE_BIN" --dev --sealing instant --base-path "$WORK/chain" --rpc-port "$PORT" --no-prometheus --no-telemetry \
  --no-mdns --listen-addr /ip4/127.0.0.1/tcp/0 --rpc-max-connections 1000 --pool-limit 100000 --pool-kbytes 1000000 \
  >"$WORK/node.log" 2>&1 &
NODE_PID=$!
for _ in $(seq 1 120); do
  curl -s -H 'content-type: application/json' -d '{"jsonrpc":"2.0","id":1,"method":"system_health"}' "http://127.0.0.1:$PORT" >/dev/null 2>&1 && break
  sleep 0.5
done
cd tests/e2e && node bench-receipts.mjs "ws://127.0.0.1:$PORT" "${1:-1000}" "${2:-4}" "${3:-250}"
