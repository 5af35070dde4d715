#!/usr/bin/env bash
# Sets up the machine, builds, and starts the whole system on this machine, on loopback:
#   - a one-validator development chain (Aura, 6 s blocks) with RPC on ws://127.0.0.1:9944
#     and Prometheus metrics on http://127.0.0.1:9615/metrics;
#   - the inference worker serving the OpenAI API on http://127.0.0.1:8000/v1: the demo model (a
#     seeded Llama-style base model pretrained on the bundled corpus, and two LoRA adapters, made
#     on first start), billing on chain as Charlie's bonded worker (the base model is registered
#     and priced by Alice on a new chain), its ModelFactory on (the admin token is in a file, mode
#     600, never printed), and unpaid requests served unbilled;
#   - OpenLedger Studio, the web app, on http://127.0.0.1:3000 (uploads go to the content store
#     the worker's ModelFactory reads), where the whole loop can be walked: contribute, snapshot,
#     train an adapter (Build), ask it and pay (Playground), see the receipt settle, claim.
# State lives in $OPENLEDGER_RUN_DIR (default $OPENLEDGER_CACHE, ~/.cache/openledger) and
# survives restarts; `--fresh` wipes the chain, the worker's receipts and jobs and the adapters
# its factory trained first (they belong to that chain).
# Ports: OPENLEDGER_RPC_PORT, OPENLEDGER_WORKER_PORT, OPENLEDGER_STUDIO_PORT,
# OPENLEDGER_PROMETHEUS_PORT, OPENLEDGER_P2P_PORT. `--no-build` skips setup and build (they
# must have run). Other arguments go to the node, e.g. `scripts/start.sh --sealing instant`.
# Ctrl-C (or SIGTERM to this script) stops all three.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
build=1
fresh=0
args=()
for a in "$@"; do
  case "$a" in
    --fresh) fresh=1 ;;
    --no-build) build=0 ;;
    *) args+=("$a") ;;
  esac
done

# Every process this script starts runs in a process group of its own (setsid) and is stopped
# with it: SIGTERM to the group (cargo's compilers too, during a build), SIGKILL after 30 s.
pids=()
declare -A logs=()
stop_all() {
  trap - EXIT INT TERM HUP
  [ "${#pids[@]}" -gt 0 ] || return 0
  local p alive
  for p in "${pids[@]}"; do kill -TERM -- "-$p" 2>/dev/null || kill -TERM "$p" 2>/dev/null || true; done
  for _ in $(seq 1 60); do
    alive=0
    for p in "${pids[@]}"; do kill -0 -- "-$p" 2>/dev/null && alive=1; done
    [ "$alive" = 1 ] || break
    sleep 0.5
  done
  for p in "${pids[@]}"; do kill -KILL -- "-$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap stop_all EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
trap 'exit 129' HUP
# Starts `$@` in the background in a process group of its own; its pid (the group's id) in $last.
spawn() {
  setsid "$@" &
  last=$!
  pids+=("$last")
}
# Runs `$@` that way and waits for it, so that a signal to this script stops it too.
step() {
  spawn "$@"
  local p=$last q keep=()
  wait "$p"
  for q in "${pids[@]}"; do [ "$q" = "$p" ] || keep+=("$q"); done
  pids=(${keep[@]+"${keep[@]}"})
}

source scripts/lib/env.sh
RUN="${OPENLEDGER_RUN_DIR:-$OPENLEDGER_CACHE}"
mkdir -p "$RUN"
# One start.sh per state folder, taken before anything is built or changed (the processes it
# starts hold the lock too, while they run).
exec 9>"$RUN/start.lock"
lock=0
flock -n 9 || lock=$?
if [ "$lock" = 1 ]; then
  echo "another scripts/start.sh (or the node, worker or Studio it started) runs on $RUN" >&2
  exit 1
elif [ "$lock" != 0 ]; then
  echo "cannot lock $RUN/start.lock (flock exited $lock)" >&2
  exit 1
fi

if [ "$build" = 1 ]; then
  step bash scripts/setup.sh
  step bash scripts/build.sh
  source scripts/lib/env.sh
fi

RPC_PORT="${OPENLEDGER_RPC_PORT:-9944}"
WORKER_PORT="${OPENLEDGER_WORKER_PORT:-8000}"
STUDIO_PORT="${OPENLEDGER_STUDIO_PORT:-3000}"
PROMETHEUS_PORT="${OPENLEDGER_PROMETHEUS_PORT:-9615}"
P2P_PORT="${OPENLEDGER_P2P_PORT:-30333}"
BASE="$RUN/dev-chain"
DEMO="$RUN/demo"
STORE="$RUN/content-store"
RECEIPTS="$RUN/worker-receipts"
JOBS="$RUN/worker-factory"
TOKEN="$RUN/worker-admin-token"
# Refuses ports that are not free: anything there would answer the checks below in place of
# what this script starts (checked now, and again just before the node starts).
check_ports() {
  local port
  for port in "$RPC_PORT" "$WORKER_PORT" "$STUDIO_PORT" "$PROMETHEUS_PORT" "$P2P_PORT"; do
    if ! [[ "$port" =~ ^[0-9]{1,5}$ ]] || [ "$port" -lt 1 ] || [ "$port" -gt 65535 ]; then
      echo "not a port: $port" >&2
      exit 1
    fi
    if timeout 2 bash -c "exec 3<>/dev/tcp/127.0.0.1/$port" 2>/dev/null; then
      echo "something already listens on 127.0.0.1:$port (another scripts/start.sh?)" >&2
      exit 1
    fi
  done
}
check_ports
if [ ! -f "$DEMO/demo-base/config.json" ] && [ -d "$BASE" ] && [ "$fresh" = 0 ]; then
  # The chain registered the demo model that is gone: nothing is wiped without being asked.
  echo "the demo model in $DEMO is gone, but the chain in $BASE registered it: start with --fresh for a new chain" >&2
  echo "(--fresh wipes the chain, the worker's receipts and jobs, and the adapters its factory trained)" >&2
  exit 1
fi
if [ "$fresh" = 1 ]; then
  # The worker's receipts and jobs, and the adapters its factory trained, belong to the chain.
  rm -rf "$BASE" "$RECEIPTS" "$JOBS"
  if [ -d "$DEMO/adapters" ]; then
    find "$DEMO/adapters" -mindepth 1 -maxdepth 1 ! -name demo-legal ! -name demo-medical -exec rm -rf {} +
  fi
fi
mkdir -p "$STORE"

if [ ! -f "$DEMO/demo-base/config.json" ]; then
  rm -rf "$DEMO"
  step "$WORKER_BIN" gen-model --out "$DEMO/demo-base.tmp" --hidden 256 --intermediate 704 --layers 4 --heads 8 \
    --kv-heads 4 --vocab 1024 --max-positions 1024 --seed 42
  # A language model of the bundled corpus rather than noise (ModelFactory pretraining).
  step "$WORKER_BIN" factory pretrain --model "$DEMO/demo-base.tmp" --max-steps 60 --lr 3e-3 --max-seq-len 64 >/dev/null
  # In place only once whole (an interrupted first start makes it again).
  mv "$DEMO/demo-base.tmp" "$DEMO/demo-base"
fi
for a in demo-legal:1 demo-medical:2; do
  if [ ! -f "$DEMO/adapters/${a%%:*}/adapter_config.json" ]; then
    rm -rf "$DEMO/adapters/${a%%:*}"
    step "$WORKER_BIN" gen-adapter --base "$DEMO/demo-base" --out "$DEMO/adapters/${a%%:*}" --rank 8 --seed "${a##*:}"
  fi
done

# Waits until `curl ARGS…` succeeds; fails with the end of log `$1` if any process started here
# has stopped meanwhile.
wait_for() {
  local log=$1
  shift
  local deadline=$((SECONDS + 120))
  while [ "$SECONDS" -lt "$deadline" ]; do
    for p in "${pids[@]}"; do
      if ! kill -0 "$p" 2>/dev/null; then
        echo "process $p stopped; the end of ${logs[$p]:-$log}:" >&2
        tail -n 30 "${logs[$p]:-$log}" >&2
        exit 1
      fi
    done
    if curl -sf --max-time 2 -o /dev/null "$@"; then return 0; fi
    sleep 0.5
  done
  echo "not up after 120 s; the end of $log:" >&2
  tail -n 30 "$log" >&2
  exit 1
}

check_ports
echo "starting openledger-node --dev (base path $BASE)"
spawn "$NODE_BIN" --dev --base-path "$BASE" --rpc-port "$RPC_PORT" --prometheus-port "$PROMETHEUS_PORT" \
  --listen-addr "/ip4/127.0.0.1/tcp/$P2P_PORT" ${args[@]+"${args[@]}"} >>"$RUN/node.log" 2>&1
NODE_PID=$last
logs[$NODE_PID]="$RUN/node.log"
echo "node pid $NODE_PID, log $RUN/node.log"
wait_for "$RUN/node.log" -H 'content-type: application/json' \
  -d '{"jsonrpc":"2.0","id":1,"method":"system_health","params":[]}' "http://127.0.0.1:$RPC_PORT"

# The demo's accounts on chain: development keys, given to the CLI and the worker in the
# environment.
export OPENLEDGER_URL="ws://127.0.0.1:$RPC_PORT"
# (Each call bounded: a chain that seals no block must not hold the script, or its Ctrl-C.)
as() { OPENLEDGER_SURI="$1" timeout 120 "$CLI_BIN" "${@:2}"; }
json() { node -e "let s='';process.stdin.on('data',d=>s+=d).on('end',()=>{const v=JSON.parse(s)$1;console.log(Array.isArray(v)?v.join(' '):v)})"; }
WEIGHTS="$("$WORKER_BIN" model-hash "$DEMO/demo-base")"
found="$(as //Alice model find "$WEIGHTS")"
if [ "$found" = null ]; then
  echo "registering the demo base model on chain (Alice)"
  as //Alice model register-base demo-base --weights-hash "$WEIGHTS" --license apache-2.0 --architecture llama \
    --uri demo://demo-base
  found="$(as //Alice model find "$WEIGHTS")"
fi
BASE_ID="$(echo "$found" | json .model)"
# Priced (also when a first start stopped between registering and pricing).
model="$(as //Alice model show "$BASE_ID")"
price="$(echo "$model" | json .pricePerRequest)"
if [ "$price" = 0 ]; then
  as //Alice model set-price "$BASE_ID" --per-request 0.001 --per-1k-tokens 0.01
fi
key="$("$NODE_BIN" key inspect --output-type json "//Charlie//receipts")"
SIGNING="$(echo "$key" | json .publicKey)"
ENDPOINT="http://127.0.0.1:$WORKER_PORT"
if worker="$(as //Charlie worker show 2>"$RUN/worker-show.err")"; then
  # A kept chain: the worker's record made to match this start (its models, key and endpoint).
  update=()
  serves="$(echo "$worker" | json ".models.includes($BASE_ID)")"
  if [ "$serves" != true ]; then
    models="$(echo "$worker" | json .models)"
    for m in $models "$BASE_ID"; do update+=(--model "$m"); done
  fi
  current="$(echo "$worker" | json .signingKey)"
  [ "$current" = "$SIGNING" ] || update+=(--signing-key "$SIGNING")
  current="$(echo "$worker" | json .endpoint)"
  [ "$current" = "$ENDPOINT" ] || update+=(--endpoint "$ENDPOINT")
  if [ "${#update[@]}" -gt 0 ]; then
    echo "updating Charlie's worker record"
    as //Charlie worker update "${update[@]}"
  fi
elif grep -q "is not a worker" "$RUN/worker-show.err"; then
  echo "bonding Charlie's worker to serve model $BASE_ID"
  as //Charlie worker bond 1000 --signing-key "$SIGNING" --endpoint "$ENDPOINT" --model "$BASE_ID"
else
  echo "cannot read Charlie's worker record: $(cat "$RUN/worker-show.err")" >&2
  exit 1
fi
if [ -L "$TOKEN" ]; then
  echo "$TOKEN is a symbolic link: refusing to use it" >&2
  exit 1
fi
if [ ! -s "$TOKEN" ]; then
  rm -f "$TOKEN"
  (umask 077 && head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$TOKEN")
fi
chmod 600 "$TOKEN"

echo "starting openledger-worker on http://127.0.0.1:$WORKER_PORT/v1 (models: demo-base = model $BASE_ID on chain, demo-legal, demo-medical)"
OPENLEDGER_WORKER_ACCOUNT=//Charlie OPENLEDGER_SIGNING_KEY=//Charlie//receipts \
  spawn "$WORKER_BIN" serve --model "$DEMO/demo-base" --adapters "$DEMO/adapters" --host 127.0.0.1 --port "$WORKER_PORT" \
  --chain-rpc "$OPENLEDGER_URL" --base-model-id "$BASE_ID" --receipts "$RECEIPTS" --allow-unpaid \
  --content-store "$STORE" --factory-jobs "$JOBS" --admin-token-file "$TOKEN" >>"$RUN/worker.log" 2>&1
WORKER_PID=$last
logs[$WORKER_PID]="$RUN/worker.log"
wait_for "$RUN/worker.log" "http://127.0.0.1:$WORKER_PORT/health"
echo "worker pid $WORKER_PID, log $RUN/worker.log"

spawn "$CLI_BIN" studio --url "$OPENLEDGER_URL" --listen "127.0.0.1:$STUDIO_PORT" --dir "$ROOT/web/dist" \
  --store "$STORE" --worker "http://127.0.0.1:$WORKER_PORT" >>"$RUN/studio.log" 2>&1
STUDIO_PID=$last
logs[$STUDIO_PID]="$RUN/studio.log"
wait_for "$RUN/studio.log" "http://127.0.0.1:$STUDIO_PORT/api/config"
echo "studio pid $STUDIO_PID, log $RUN/studio.log"
echo "the worker's admin token (the Studio's Build page asks for it) is in $TOKEN"
echo "OpenLedger Studio: http://127.0.0.1:$STUDIO_PORT"
# Until one of them stops (or Ctrl-C): then all stop.
while kill -0 "$NODE_PID" 2>/dev/null && kill -0 "$WORKER_PID" 2>/dev/null && kill -0 "$STUDIO_PID" 2>/dev/null; do
  sleep 1 &
  wait $! || true
done
echo "a process stopped; stopping the others (logs in $RUN)" >&2
exit 1
