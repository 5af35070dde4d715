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
for chain in dev local; do
  "$NODE_BIN" build-spec --chain "$chain" --disable-default-bootnode 2>/dev/null > "chain-spec/$chain.json"
  "$NODE_BIN" build-spec --chain "chain-spec/$chain.json" --raw --disable-default-bootnode 2>/dev/null > "chain-spec/$chain-raw.json"
  echo "chain-spec/$chain.json chain-spec/$chain-raw.json"
done
# The public testnet template: the preset's shape with placeholders where each network puts its
# own validators, operators, boot nodes and telemetry. It does not load until
# scripts/testnet-spec.py fills it (README: "Launching a testnet"), so no network can start on the
# development keys by mistake. No raw spec: there is nothing to launch before it is filled.
"$NODE_BIN" build-spec --chain testnet-template --disable-default-bootnode 2>/dev/null | python3 -c '
import json, sys
spec = json.load(sys.stdin)
patch = spec["genesis"]["runtimeGenesis"]["patch"]
n = len(patch["validatorSet"]["validators"])
account = lambda i: f"<validator-{i} account>"
patch["validatorSet"]["validators"] = [account(i + 1) for i in range(n)]
patch["session"]["keys"] = [
    [account(i + 1), account(i + 1), {"aura": f"<validator-{i + 1} aura key (sr25519)>", "grandpa": f"<validator-{i + 1} grandpa key (ed25519)>"}]
    for i in range(n)
]
balances = patch["balances"]["balances"]
patch["balances"]["balances"] = balances[:3] + [[f"<operator-{i + 1} account>", b] for i, (_, b) in enumerate(balances[3:])]
spec["bootNodes"] = ["/dns/<boot node host>/tcp/30333/p2p/<boot node peer id>"]
spec["telemetryEndpoints"] = [["wss://<telemetry host>/submit/", 0]]
json.dump(spec, sys.stdout, indent=2)
print()
' > chain-spec/testnet-template.json
rm -f chain-spec/testnet-template-raw.json
echo "chain-spec/testnet-template.json (placeholders)"
