#!/usr/bin/env bash
# Regenerates the README's reference tables — every call of the OpenLedger pallets from the
# runtime metadata of a fresh dev node, every `openledger` JSON-RPC method and result type from
# the RPC module definitions (node/src/rpc) — between their `<!-- generated:… -->` markers.
# `--check` changes nothing and fails when the README is stale (the e2e suite checks the same).
# Needs a built node (scripts/build.sh).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$ROOT/scripts/lib/env.sh"
export NODE_BIN E2E_TMP="${E2E_TMP:-$(mktemp -d)}"
cd "$ROOT/tests/e2e"
node gen-docs.mjs "$@"
