#!/usr/bin/env bash
# The whole loop on a fresh dev chain, narrated: contributors' texts go into a Datanet snapshot
# (contribute), the factory pretrains the demo base model and fine-tunes a LoRA adapter on the
# snapshot (build), registers it and adds it to a worker (deploy), a paying user's answers are
# attributed and receipted on chain (use), and the contributor claims the OPEN they earned (earn).
# It is tests/e2e/factory.test.js run on its own; the `ℹ build:`, `deploy:`, `use:`, `earn:` lines are the story.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
bash scripts/setup.sh
bash scripts/build.sh
source scripts/lib/env.sh
export NODE_BIN CLI_BIN WORKER_BIN
export E2E_TMP="${E2E_TMP:-$(mktemp -d)}"
cd tests/e2e && exec node --test --test-reporter=spec ./factory.test.js
