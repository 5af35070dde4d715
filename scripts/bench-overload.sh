#!/usr/bin/env bash
# Overload: locust (headless, tests/worker/locustfile.py) drives a worker of capacity C
# (--max-batch + --queue) with 10×C users without think time for a bounded time, then prints
# a table: requests admitted (200) and refused (429 with Retry-After), errors (anything else:
# must be 0), latency of admitted requests (p50/p99) against the same worker unloaded (one
# user, measured first, in the same run), and the worker's peak RSS against its configured
# memory bounds.
#
#   scripts/bench-overload.sh [seconds=30] [capacity: max_batch=4 queue=4]
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
source scripts/lib/env.sh
SECS="${1:-30}"; BATCH="${2:-4}"; QUEUE="${3:-4}"
USERS=$(( 10 * (BATCH + QUEUE) ))
KV_MIB=64; ADAPTER_MIB=64
bash scripts/setup.sh >/dev/null
CARGO_TARGET_DIR="$OPENLEDGER_WORKER_TARGET" cargo build --locked --profile "$OPENLEDGER_PROFILE" --manifest-path inference-worker/Cargo.toml >&2
T=$(mktemp -d); trap 'kill "$PID" 2>/dev/null || true; rm -rf "$T"' EXIT
"$WORKER_BIN" gen-model --out "$T/base" --hidden 256 --intermediate 688 --layers 4 --heads 8 --kv-heads 4 --vocab 2048 --max-positions 512 --seed 1 >/dev/null
"$WORKER_BIN" gen-adapter --base "$T/base" --out "$T/adapters/legal" --rank 16 --seed 2 >/dev/null
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"$WORKER_BIN" serve --model "$T/base" --adapters "$T/adapters" --served-model-name demo-base --host 127.0.0.1 --port "$PORT" \
  --max-batch "$BATCH" --queue "$QUEUE" --kv-cache-mib "$KV_MIB" --adapter-cache-mib "$ADAPTER_MIB" >"$T/worker.log" 2>&1 &
PID=$!
for _ in $(seq 200); do curl -fs "http://127.0.0.1:$PORT/health" >/dev/null && break; sleep 0.1; done
LOCUST="$OPENLEDGER_VENV/bin/locust"
run() { "$LOCUST" -f tests/worker/locustfile.py --headless -u "$1" -r "$1" -t "$2" --host "http://127.0.0.1:$PORT" \
  --csv "$T/$3" --only-summary --exit-code-on-error 0 >"$T/$3.out" 2>&1; }
run 1 "$(( SECS / 3 ))s" base
run "$USERS" "${SECS}s" load
kill -0 "$PID" || { echo "the worker died under load"; tail -20 "$T/worker.log"; exit 1; }
HWM_KB=$(awk '/VmHWM/{print $2}' /proc/$PID/status)
WEIGHTS=$(du -k "$T/base"/*.safetensors | awk '{s+=$1} END {print s}')
python3 - "$T" "$USERS" "$BATCH" "$QUEUE" "$HWM_KB" "$WEIGHTS" "$KV_MIB" "$ADAPTER_MIB" "$SECS" <<'PY'
import csv, sys
t, users, batch, queue, hwm, weights, kv, ad, secs = sys.argv[1:]
def rows(name):
    return {r["Name"]: r for r in csv.DictReader(open(f"{t}/{name}_stats.csv"))}
base, load = rows("base"), rows("load")
adm, ref, err = load.get("admitted", {}), load.get("refused", {}), load.get("error", {})
n = lambda r, k="Request Count": int(float(r.get(k, 0) or 0))
b = base["admitted"]
print(f"overload: capacity {int(batch)+int(queue)} (max-batch {batch} + queue {queue}), {users} users, {secs} s, no think time")
print(f"| {'':30} | {'value':>14} |")
print(f"|{'-'*32}|{'-'*16}|")
for k, v in [("admitted (200)", n(adm)), ("refused (429 + Retry-After)", n(ref)), ("errors (anything else)", n(err) + n(load['Aggregated'], 'Failure Count')),
             ("admitted req/s", f"{float(adm.get('Requests/s', 0)):.1f}"), ("unloaded p50 / p99 ms", f"{b['50%']} / {b['99%']}"),
             ("admitted p50 / p99 ms", f"{adm.get('50%')} / {adm.get('99%')}"), ("p99 loaded / unloaded", f"{float(adm.get('99%', 0)) / max(float(b['99%']), 1):.1f}x"),
             ("refused p99 ms", ref.get("99%", "-")), ("peak RSS MiB", f"{int(hwm) / 1024:.0f}"),
             ("bound: weights+KV+adapters MiB", f"{int(weights) / 1024:.0f}+{kv}+{ad}")]:
    print(f"| {k:30} | {str(v):>14} |")
PY
