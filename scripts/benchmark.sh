#!/usr/bin/env bash
# Generates weights for a pallet with the benchmarking tool, never by hand.
#
#   scripts/benchmark.sh <pallet_name> <output weights.rs>
#   e.g. scripts/benchmark.sh pallet_datanets pallets/datanets/src/weights.rs
#
# Path chosen: `frame-omni-bencher` runs the benchmarks inside the runtime *Wasm* built with the
# `runtime-benchmarks` feature. The node binary carries no benchmarking CLI, so
# frame-benchmarking-cli (and the polkadot crates it pulls in) never slow down the node build.
# frame-omni-bencher 0.12.0 is the release that matches our polkadot-sdk crates (stable2503,
# frame-benchmarking-cli 48); it is installed once into $OPENLEDGER_CACHE/bin.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
[ $# -ge 2 ] || { sed -n '2,12p' "$0"; exit 2; }
PALLET="$1"; OUTPUT="$2"; shift 2
source scripts/lib/env.sh
BENCHER_VERSION=0.12.0
BIN_DIR="$OPENLEDGER_CACHE/bin"
if ! "$BIN_DIR/bin/frame-omni-bencher" --version 2>/dev/null | grep -q "$BENCHER_VERSION"; then
  echo "installing frame-omni-bencher $BENCHER_VERSION (once)"
  cargo install --locked --root "$BIN_DIR" frame-omni-bencher --version "$BENCHER_VERSION"
fi
# A separate target dir: the benchmark build has other features than the node's.
BENCH_TARGET="$OPENLEDGER_CACHE/target-bench"
CARGO_TARGET_DIR="$BENCH_TARGET" cargo build --locked --release -p openledger-runtime --features runtime-benchmarks
# Pallet-style weights (a `WeightInfo` trait + `SubstrateWeight<T>`) come from our template once
# it exists; without it the bencher's default (runtime-style) template is used.
TEMPLATE_ARGS=()
[ -f scripts/frame-weight-template.hbs ] && TEMPLATE_ARGS=(--template scripts/frame-weight-template.hbs)
WASM="$BENCH_TARGET/release/wbuild/openledger-runtime/openledger_runtime.compact.compressed.wasm"
"$BIN_DIR/bin/frame-omni-bencher" v1 benchmark pallet \
  --runtime "$WASM" \
  --pallet "$PALLET" --extrinsic '*' \
  --steps 50 --repeat 20 \
  "${TEMPLATE_ARGS[@]}" \
  --header scripts/weights-header.txt \
  --output "$OUTPUT" "$@"
echo "wrote $OUTPUT"
