#!/usr/bin/env bash
# Benchmark: the CLI ingests a folder of N records (default 10,000) into a dev chain — content
# store writes plus batched `contribute` extrinsics — and reports contributions/s and bytes/s.
# Then, in the same run, the benchmarking tool measures `pallet_datanets::contribute` next to
# `pallet_balances::transfer_keep_alive` (the baseline) and prints both weights and their ratio.
#
#   scripts/bench-datanets.sh [records] [batch]
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
N="${1:-10000}"; BATCH="${2:-250}"
bash scripts/setup.sh >/dev/null
bash scripts/build.sh >/dev/null 2>&1
source scripts/lib/env.sh

WORK="$(mktemp -d)"
NODE_PID=""
cleanup() { [ -n "$NODE_PID" ] && kill "$NODE_PID" 2>/dev/null && wait "$NODE_PID" 2>/dev/null; rm -rf "$WORK"; }
trap cleanup EXIT

# N JSONL records of realistic size (~200-400 bytes), deterministic.
mkdir -p "$WORK/records"
python3 - "$N" "$WORK/records/data.jsonl" <<'PY'
import json, random, sys
n, out = int(sys.argv[1]), sys.argv[2]
rng = random.Random(7)
words = "patient dose symptom blood pressure heart rate treatment trial result daily risk chronic".split()
with open(out, "w") as f:
    for i in range(n):
        q = " ".join(rng.choice(words) for _ in range(rng.randint(8, 20)))
        a = " ".join(rng.choice(words) for _ in range(rng.randint(20, 50)))
        f.write(json.dumps({"id": i, "question": q, "answer": a}) + "\n")
PY

PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"$NODE_BIN" --dev --sealing instant --tmp --rpc-port "$PORT" --no-prometheus --no-telemetry --no-mdns \
  --listen-addr /ip4/127.0.0.1/tcp/0 >"$WORK/node.log" 2>&1 &
NODE_PID=$!
for _ in $(seq 1 120); do
  curl -s -H 'content-type: application/json' -d '{"jsonrpc":"2.0","id":1,"method":"system_health"}' "http://127.0.0.1:$PORT" >/dev/null 2>&1 && break
  sleep 0.5
done
CLI=("$CLI_BIN" --url "ws://127.0.0.1:$PORT")
"${CLI[@]}" --suri //Alice datanet create --name bench --license CC0 >/dev/null
SUMMARY=$("${CLI[@]}" --suri //Bob contribute 0 "$WORK/records" --store "$WORK/store" --batch "$BATCH" --json)

echo
echo "## Ingest: $N records, batch $BATCH, dev chain (instant seal), $(nproc) cores"
python3 - "$SUMMARY" <<'PY'
import json, sys
s = json.loads(sys.argv[1])
print("| records | bytes | total s | store s | contributions/s | bytes/s |")
print("|---:|---:|---:|---:|---:|---:|")
print(f"| {s['contributions']} | {s['bytes']} | {s['seconds']:.1f} | {s['storeSeconds']:.1f} | {s['contributionsPerSecond']:.0f} | {s['bytesPerSecond']:.0f} |")
PY

echo
echo "## Weights measured in this run (benchmarking tool, runtime Wasm)"
EXTRINSIC=transfer_keep_alive STEPS=2 REPEAT=5 bash scripts/benchmark.sh pallet_balances "$WORK/balances.rs" >/dev/null 2>&1
EXTRINSIC=contribute STEPS=2 REPEAT=5 bash scripts/benchmark.sh pallet_datanets "$WORK/datanets.rs" >/dev/null 2>&1
python3 - "$WORK/balances.rs" "$WORK/datanets.rs" <<'PY'
import re, sys
def weight(path, fn):
    text = open(path).read()
    body = text[text.index(f"fn {fn}"):]
    m = re.search(r"Weight::from_parts\(([\d_]+), ([\d_]+)\)", body)
    ref, proof = (int(x.replace("_", "")) for x in m.groups())
    reads = re.search(r"reads\((\d+)_u64\)", body); writes = re.search(r"writes\((\d+)_u64\)", body)
    return ref, proof, int(reads.group(1)) if reads else 0, int(writes.group(1)) if writes else 0
base = weight(sys.argv[1], "transfer_keep_alive")
contrib = weight(sys.argv[2], "contribute")
# ParityDB weights of the runtime (frame_support::weights::constants::ParityDbWeight).
READ_US, WRITE_US = 8.0, 50.0
total = lambda w: w[0] / 1e6 + w[2] * READ_US + w[3] * WRITE_US
print("| extrinsic | execution µs | DB reads | DB writes | total µs with DB | proof size (B) |")
print("|---|---:|---:|---:|---:|---:|")
for name, w in [("balances.transfer_keep_alive (baseline)", base), ("datanets.contribute (longest fields)", contrib)]:
    print(f"| {name} | {w[0]/1e6:.1f} | {w[2]} | {w[3]} | {total(w):.1f} | {w[1]} |")
print(f"\ncontribute / transfer_keep_alive: execution {contrib[0]/base[0]:.2f}x, total with DB {total(contrib)/total(base):.2f}x")
PY
