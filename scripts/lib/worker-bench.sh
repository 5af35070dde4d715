# Sourced by the worker's benchmark scripts: the toolchain (scripts/setup.sh), the environment
# (scripts/lib/env.sh: $WORKER_BIN, $OPENLEDGER_VENV, ...), the worker built with the project's
# profile, and a scratch folder $WORK removed on exit. Leaves the shell in the repository root.
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
bash scripts/setup.sh >/dev/null
source scripts/lib/env.sh
CARGO_TARGET_DIR="$OPENLEDGER_WORKER_TARGET" cargo build --locked --profile "$OPENLEDGER_PROFILE" --manifest-path inference-worker/Cargo.toml >&2
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
