#!/usr/bin/env bash
# Idempotent machine setup for building and testing the OpenLedger node.
#
# - Debian packages a Substrate build needs (protobuf-compiler; no clang: RocksDB is not built).
# - A toolchain that can build the runtime Wasm:
#     1. a normal machine: `rustup target add wasm32-unknown-unknown` + `rust-src` (preferred);
#     2. machines where rustup cannot download targets: the preinstalled `nightly` toolchain plus
#        Debian's `rust-src` package (sid), used through `-Zbuild-std`.
#        `OPENLEDGER_WASM_ROUTE=nightly` forces this route; `OPENLEDGER_SETUP_FORCE=1` redoes it.
# - Node.js dependencies of the end-to-end tests (@polkadot/api).
#
# Writes `target/.wasm-env` (sourced by the other scripts) with the variables the Wasm build needs.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
source "$ROOT/scripts/lib/env.sh"
ENV_FILE="$OPENLEDGER_CACHE/wasm-env"
mkdir -p "$OPENLEDGER_CACHE"

log() { printf '\033[1;34m[setup]\033[0m %s\n' "$*"; }

SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi

# ---- Debian packages -------------------------------------------------------------------------
need_pkgs=()
command -v protoc >/dev/null 2>&1 || need_pkgs+=(protobuf-compiler)
command -v node >/dev/null 2>&1 || need_pkgs+=(nodejs npm)
command -v curl >/dev/null 2>&1 || need_pkgs+=(curl)
command -v python3 >/dev/null 2>&1 || need_pkgs+=(python3)
python3 -c 'import ensurepip, venv' >/dev/null 2>&1 || need_pkgs+=(python3-venv)
if [ ${#need_pkgs[@]} -gt 0 ]; then
  if command -v apt-get >/dev/null 2>&1; then
    log "installing ${need_pkgs[*]}"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_pkgs[@]}" >/dev/null
  else
    echo "please install: ${need_pkgs[*]}" >&2; exit 1
  fi
fi

# The Studio's browser tests drive Debian's chromium headless (nothing downloads a browser); its
# own step, so a system without that package still gets the rest (set CHROMIUM_BIN to another).
if [ -z "${CHROMIUM_BIN:-}" ] && ! command -v chromium >/dev/null 2>&1; then
  if command -v apt-get >/dev/null 2>&1; then
    log "installing chromium (the Studio's browser tests)"
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium >/dev/null \
      || { $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium >/dev/null; } \
      || echo "warning: chromium could not be installed; the Studio's browser tests will fail (set CHROMIUM_BIN)" >&2
  else
    echo "warning: no chromium; the Studio's browser tests need one (set CHROMIUM_BIN)" >&2
  fi
fi

# ---- Wasm toolchain --------------------------------------------------------------------------
# Probe: can the default toolchain already compile for wasm32?
have_wasm_target() {
  rustup target list --installed 2>/dev/null | grep -qx "$1"
}

if [ -f "$ENV_FILE" ] && [ "${OPENLEDGER_SETUP_FORCE:-0}" != 1 ]; then
  log "wasm toolchain already configured ($ENV_FILE)"
else
  route=""
  if [ "${OPENLEDGER_WASM_ROUTE:-}" = nightly ]; then
    route="nightly"   # force the fallback (used to test it on machines where rustup works)
  elif have_wasm_target wasm32-unknown-unknown; then
    route="rustup"
  elif [ "${OPENLEDGER_NO_RUSTUP_DOWNLOAD:-0}" != 1 ] && \
       timeout 60 rustup target add wasm32-unknown-unknown >/dev/null 2>&1 && \
       timeout 60 rustup component add rust-src >/dev/null 2>&1; then
    route="rustup"
  fi

  if [ "$route" = rustup ]; then
    log "using rustup's wasm32-unknown-unknown target"
    : > "$ENV_FILE"
  else
    # Route 2: preinstalled nightly + Debian rust-src via -Zbuild-std.
    rustup toolchain list | grep -q '^nightly' || { echo "no nightly toolchain and rustup cannot add targets" >&2; exit 1; }
    sysroot="$(rustc +nightly --print sysroot)"
    src_link="$sysroot/lib/rustlib/src/rust"
    if [ ! -f "$src_link/library/core/src/lib.rs" ]; then
      D="$OPENLEDGER_CACHE/rust-src"
      mkdir -p "$D/lists/partial" "$D/cache/archives/partial"
      URI=$(awk '/^URIs:/{print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)
      [ -n "$URI" ] || URI=$(awk '/^deb /{print $2; exit}' /etc/apt/sources.list)
      echo "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $URI sid main" > "$D/sources.list"
      O=(-o Dir::Etc::SourceList="$D/sources.list" -o Dir::Etc::SourceParts=- -o Dir::State::Lists="$D/lists" -o Dir::Cache="$D/cache")
      if ! ls "$D"/rust-src_*.deb >/dev/null 2>&1; then
        log "downloading Debian rust-src (sid)"
        apt-get "${O[@]}" update -qq
        (cd "$D" && apt-get "${O[@]}" download rust-src >/dev/null)
      fi
      rm -rf "$D/x"; dpkg -x "$D"/rust-src_*.deb "$D/x"
      src_dir=$(ls -d "$D"/x/usr/src/rustc-* | head -n1)
      mkdir -p "$sysroot/lib/rustlib/src"
      ln -sfn "$src_dir" "$src_link"
      log "linked $src_dir -> $src_link"
    fi
    cat > "$ENV_FILE" <<ENV
export WASM_BUILD_TOOLCHAIN=nightly
export CARGO_UNSTABLE_BUILD_STD=core,alloc
export WASM_BUILD_RUSTFLAGS="-C link-arg=--allow-undefined"
ENV
    log "using nightly + rust-src with -Zbuild-std (written to $ENV_FILE)"
  fi
fi

# ---- npm dependencies: the end-to-end tests and the Studio (web/) -------------------------------
# Installed from each package-lock.json, again whenever it changes (a copy marks what is installed).
for dir in "$ROOT/tests/e2e" "$ROOT/web"; do
  [ -f "$dir/package-lock.json" ] || continue
  if ! cmp -s "$dir/package-lock.json" "$dir/node_modules/.openledger-lock"; then
    log "installing npm dependencies of ${dir#"$ROOT"/}"
    (cd "$dir" && { npm ci --no-audit --no-fund --loglevel=error || npm install --no-audit --no-fund --loglevel=error; })
    cp "$dir/package-lock.json" "$dir/node_modules/.openledger-lock"
  fi
done
# ---- Python environment of the worker's end-to-end tests -----------------------------------------
VENV="${OPENLEDGER_CACHE:-$HOME/.cache/openledger}/venv"
REQ="$ROOT/tests/worker/requirements.txt"
if [ -f "$REQ" ] && ! cmp -s "$REQ" "$VENV/.requirements" 2>/dev/null; then
  log "installing the worker e2e test environment ($VENV: $(tr '\n' ' ' < "$REQ"))"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check -r "$REQ"
  cp "$REQ" "$VENV/.requirements"
fi
log "done"
