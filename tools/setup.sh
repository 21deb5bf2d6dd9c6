#!/usr/bin/env bash
# Installs what building the app needs, skipping whatever is already there at
# the right version: the wasm32 target, trunk, wasm-bindgen-cli (exactly the
# version Cargo.lock pins) and wasm-opt (npm binaryen, into .tools/).
# Source it (`. tools/setup.sh`) to get PATH and the environment; it never
# downloads anything at build time afterwards (Trunk.toml: offline).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TRUNK_VERSION=0.21.14
BINARYEN_VERSION=132.0.0
TERSER_VERSION=5.51.4
export PATH="${CARGO_HOME:-$HOME/.cargo}/bin:$ROOT/.tools/node_modules/.bin:$PATH"
export TRUNK_SKIP_VERSION_CHECK=true

say() { printf '\033[1m[setup]\033[0m %s\n' "$*"; }
fail() { printf '\033[31m[setup] %s\033[0m\n' "$*" >&2; exit 1; }

command -v cargo >/dev/null || fail "cargo is missing: install Rust with rustup (https://rustup.rs), then run this again."
command -v rustup >/dev/null || fail "rustup is missing: the wasm32 target is added with rustup; install Rust with rustup."
command -v npm >/dev/null || fail "npm is missing: install Node.js 18+ and npm (Debian: apt-get install nodejs npm)."

WASM_BINDGEN_VERSION="$(awk '/^name = "wasm-bindgen"$/ { getline; gsub(/"/, "", $3); print $3; exit }' "$ROOT/Cargo.lock")"
[ -n "$WASM_BINDGEN_VERSION" ] || fail "cannot read the wasm-bindgen version from Cargo.lock"

if ! rustup target list --installed | grep -qx wasm32-unknown-unknown; then
  say "adding the wasm32-unknown-unknown target"
  rustup target add wasm32-unknown-unknown
fi

# Cargo installs of tools: a quicker profile than their own (no LTO), same binaries.
install_tool() {
  local name="$1" version="$2" check="$3"; shift 3
  if [ "$($check 2>/dev/null || true)" = "$version" ]; then return 0; fi
  say "installing $name $version with cargo (several minutes the first time)"
  CARGO_PROFILE_RELEASE_LTO=false CARGO_PROFILE_RELEASE_CODEGEN_UNITS=16 CARGO_PROFILE_RELEASE_OPT_LEVEL=1 \
    cargo install --force "$@" "$name" --version "$version"
}
# wasm-bindgen-cli's own lockfile wants a webpki-roots version the registry lacks, so no --locked.
install_tool wasm-bindgen-cli "$WASM_BINDGEN_VERSION" "eval wasm-bindgen --version | awk '{print \$2}'"
install_tool trunk "$TRUNK_VERSION" "eval trunk --version | awk '{print \$2}'" --locked

if [ "$(wasm-opt --version 2>/dev/null | awk '{print $3}')" != "${BINARYEN_VERSION%%.*}" ]; then
  say "installing wasm-opt (npm binaryen@$BINARYEN_VERSION) into .tools/"
  mkdir -p "$ROOT/.tools"
  npm install --silent --no-audit --no-fund --prefix "$ROOT/.tools" "binaryen@$BINARYEN_VERSION"
fi
# Minifies the wasm-bindgen glue in release builds (tools/stamp_build.sh):
# Trunk's own minifier gives up on its `export default`.
if [ "$(terser --version 2>/dev/null | awk '{print $2}')" != "$TERSER_VERSION" ]; then
  say "installing terser $TERSER_VERSION (npm) into .tools/"
  mkdir -p "$ROOT/.tools"
  npm install --silent --no-audit --no-fund --prefix "$ROOT/.tools" "terser@$TERSER_VERSION"
fi

# Trunk builds offline: fetch the crates once.
(cd "$ROOT" && cargo fetch --locked --quiet)
