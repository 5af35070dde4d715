#!/usr/bin/env bash
# Sets up the machine and runs every test:
#   1. Rust unit tests of every crate (runtime, pallets, primitives, node, CLI), in the build
#      profile; the pallets and the runtime with their benchmarks run once as tests and the
#      try-runtime checks of migrations and `try_state`;
#   2. the committed chain specs load in the node;
#   3. end-to-end tests: the real node binary, driven by @polkadot/api and the CLI (tests/e2e);
#   4. the inference worker (its own workspace): Rust tests (LoRA math, PEFT loading, engine,
#      HTTP), then the official `openai` Python client against the running worker
#      (tests/worker).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
t0=$(date +%s)
bash scripts/setup.sh
OPENLEDGER_BUILD_TESTS=1 bash scripts/build.sh
source scripts/lib/env.sh
t_build=$(date +%s)

# The pallets and the runtime are tested once, with their benchmarks and try-runtime checks
# compiled in (features only add tests and checks); one invocation (OPENLEDGER_CHECKED, shared
# with scripts/try-upgrade.sh), so the FRAME crates are built once with those features.
echo "== cargo test (workspace but the pallets and runtime, profile $OPENLEDGER_PROFILE)"
cargo test --locked --profile "$OPENLEDGER_PROFILE" --workspace --exclude pallet-datanets --exclude pallet-models \
  --exclude pallet-open-staking --exclude pallet-attribution --exclude pallet-validator-set --exclude openledger-runtime
echo "== pallets (mock runtimes) and runtime with benchmarks run as tests, migrations and try_state checked (the runtime's upgrade checks run over the development genesis; scripts/try-upgrade.sh runs them over a live chain)"
SKIP_WASM_BUILD=1 cargo test --locked --profile "$OPENLEDGER_PROFILE" "${OPENLEDGER_CHECKED[@]}" --features runtime-benchmarks,try-runtime
t_unit=$(date +%s)

echo "== committed chain specs load"
for spec in chain-spec/*.json; do
  # The public testnet template has placeholders until filled (tests/e2e/testnet.test.js).
  [ "$spec" = chain-spec/testnet-template.json ] && continue
  "$NODE_BIN" build-spec --chain "$spec" --raw --disable-default-bootnode >/dev/null 2>&1 \
    || { echo "chain spec $spec does not load"; exit 1; }
  echo "ok $spec"
done

echo "== end-to-end (node + polkadot-js)"
export NODE_BIN CLI_BIN WORKER_BIN OPENLEDGER_VENV
export E2E_TMP="${E2E_TMP:-$(mktemp -d)}"
(cd tests/e2e && node --test --test-concurrency=1 --test-reporter=spec ./*.test.js)
t_e2e=$(date +%s)

echo "== inference worker: cargo test"
CARGO_TARGET_DIR="$OPENLEDGER_WORKER_TARGET" cargo test --locked --profile "$OPENLEDGER_PROFILE" --manifest-path inference-worker/Cargo.toml
echo "== inference worker: openai client end to end"
WORKER_BIN="$WORKER_BIN" "$OPENLEDGER_VENV/bin/python" -m pytest -q -p no:cacheprovider tests/worker
t_worker=$(date +%s)
echo "timings: setup+build $((t_build - t0)) s, cargo test $((t_unit - t_build)) s, e2e $((t_e2e - t_unit)) s, worker $((t_worker - t_e2e)) s"
