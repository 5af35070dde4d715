#!/usr/bin/env bash
# Generates a pallet's weights with the benchmarking tool, never by hand.
#
#   scripts/benchmark.sh <pallet_name> <output weights.rs> [extra bencher args]
#   e.g. scripts/benchmark.sh pallet_datanets pallets/datanets/src/weights.rs
#
# Path chosen: the benchmarks run inside the runtime *Wasm* built with `runtime-benchmarks`, driven
# by `tools/bencher` (frame-benchmarking-cli's pallet command, as frame-omni-bencher does, but
# without RocksDB). The node binary carries no benchmarking CLI, so frame-benchmarking-cli and the
# polkadot crates it pulls in never slow down the node build or the tests.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
[ $# -ge 2 ] || { sed -n '2,11p' "$0"; exit 2; }
PALLET="$1"; OUTPUT="$2"; shift 2
bash scripts/setup.sh >/dev/null
source scripts/lib/env.sh

echo "== building the bencher (tools/bencher)"
# Its own target dir too: it never waits on (or for) the node's build lock.
BENCHER_TARGET="$OPENLEDGER_CACHE/target-bencher"
CARGO_TARGET_DIR="$BENCHER_TARGET" cargo build --locked --release --manifest-path tools/bencher/Cargo.toml
BENCHER="$BENCHER_TARGET/release/openledger-bencher"

echo "== building the runtime Wasm with runtime-benchmarks"
# Its own target dir: other features than the node's build, which stays untouched.
BENCH_TARGET="$OPENLEDGER_CACHE/target-bench"
CARGO_TARGET_DIR="$BENCH_TARGET" cargo build --locked --release -p openledger-runtime --features runtime-benchmarks
WASM="$BENCH_TARGET/release/wbuild/openledger-runtime/openledger_runtime.compact.compressed.wasm"

echo "== benchmarking $PALLET"
"$BENCHER" \
  --runtime "$WASM" \
  --genesis-builder runtime \
  --pallet "$PALLET" --extrinsic "${EXTRINSIC:-*}" \
  --steps "${STEPS:-50}" --repeat "${REPEAT:-20}" \
  --template scripts/frame-weight-template.hbs \
  --header scripts/weights-header.txt \
  --output "$OUTPUT" "$@"
echo "wrote $OUTPUT"
