#!/usr/bin/env bash
# Sets up the machine, builds, and starts the whole system on this machine:
#   - a one-validator development chain (Aura, 6 s blocks) with RPC on ws://127.0.0.1:9944
#     and Prometheus metrics on http://127.0.0.1:9615/metrics;
#   - the inference worker with the demo model (a seeded Llama-style base model pretrained on the
#     bundled corpus, and two LoRA adapters, made on first start) serving the OpenAI API on http://127.0.0.1:8000/v1;
#   - OpenLedger Studio, the web app, on http://127.0.0.1:3000 (uploads go to $OPENLEDGER_CACHE/content-store).
# Chain data lives in $OPENLEDGER_CACHE/dev-chain and survives restarts; `--fresh` wipes it first.
# Extra arguments go to the node, e.g. `scripts/start.sh --sealing instant`. Ctrl-C stops all three.
# The worker here serves the demo models without a chain connection (no billing, no factory): the
# Studio's Datanets, Models and Earnings pages and its unpaid playground work against it; the
# paid loop and ModelFactory need a bonded worker (see "The whole loop, as a demo").
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
bash scripts/setup.sh
bash scripts/build.sh
source scripts/lib/env.sh

BASE="$OPENLEDGER_CACHE/dev-chain"
DEMO="$OPENLEDGER_CACHE/demo"
args=()
for a in "$@"; do
  if [ "$a" = "--fresh" ]; then rm -rf "$BASE"; else args+=("$a"); fi
done

if [ ! -f "$DEMO/demo-base/config.json" ]; then
  "$WORKER_BIN" gen-model --out "$DEMO/demo-base" --hidden 256 --intermediate 704 --layers 4 --heads 8 \
    --kv-heads 4 --vocab 1024 --max-positions 1024 --seed 42
  # A language model of the bundled corpus rather than noise (ModelFactory pretraining).
  "$WORKER_BIN" factory pretrain --model "$DEMO/demo-base" --max-steps 60 --lr 3e-3 --max-seq-len 64 >/dev/null
  "$WORKER_BIN" gen-adapter --base "$DEMO/demo-base" --out "$DEMO/adapters/demo-legal" --rank 8 --seed 1
  "$WORKER_BIN" gen-adapter --base "$DEMO/demo-base" --out "$DEMO/adapters/demo-medical" --rank 8 --seed 2
fi

echo "starting openledger-node --dev (base path $BASE)"
"$NODE_BIN" --dev --base-path "$BASE" --rpc-port 9944 --prometheus-port 9615 "${args[@]}" \
  >"$OPENLEDGER_CACHE/node.log" 2>&1 &
NODE_PID=$!
echo "node pid $NODE_PID, log $OPENLEDGER_CACHE/node.log"
"$CLI_BIN" studio --url ws://127.0.0.1:9944 --listen 127.0.0.1:3000 --dir "$ROOT/web/dist" \
  --store "$OPENLEDGER_CACHE/content-store" --worker http://127.0.0.1:8000 >"$OPENLEDGER_CACHE/studio.log" 2>&1 &
STUDIO_PID=$!
trap 'kill "$NODE_PID" "$STUDIO_PID" 2>/dev/null; wait "$NODE_PID" "$STUDIO_PID" 2>/dev/null' EXIT
echo "OpenLedger Studio: http://127.0.0.1:3000 (pid $STUDIO_PID, log $OPENLEDGER_CACHE/studio.log)"

echo "starting openledger-worker on http://127.0.0.1:8000/v1 (models: demo-base, demo-legal, demo-medical)"
"$WORKER_BIN" serve --model "$DEMO/demo-base" --adapters "$DEMO/adapters" --host 127.0.0.1 --port 8000
