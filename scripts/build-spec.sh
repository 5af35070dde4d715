#!/usr/bin/env bash
# Regenerates chain-spec/: plain (human-editable) and raw (what nodes load) specs for the
# development chain, the local testnet and the public testnet template.
# Run after every runtime change that should reach those networks.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
bash scripts/build.sh >/dev/null
source scripts/lib/env.sh
mkdir -p chain-spec
for chain in dev local testnet-template; do
  "$NODE_BIN" build-spec --chain "$chain" --disable-default-bootnode 2>/dev/null > "chain-spec/$chain.json"
  "$NODE_BIN" build-spec --chain "chain-spec/$chain.json" --raw --disable-default-bootnode 2>/dev/null > "chain-spec/$chain-raw.json"
  echo "chain-spec/$chain.json chain-spec/$chain-raw.json"
done
