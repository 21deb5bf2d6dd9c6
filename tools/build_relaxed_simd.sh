#!/usr/bin/env bash
# Release builds (tools/stamp_build.sh calls this): a second build of the app's
# wasm with WebAssembly relaxed SIMD on, so the CPU engine's matmuls use fused
# multiply-adds (`f32x4.relaxed_madd`: one instruction where plain simd128
# issues a multiply and an add; crates/simd128), staged beside Trunk's plain
# simd128 build as `<name>_bg.relaxed-simd.wasm`. index.html then loads it in
# a browser that validates a relaxed-SIMD module (Chromium since 114) and the
# plain build anywhere else, or when the relaxed one fails to load.
#
# Both builds come from the same source and differ only in the target
# feature, so wasm-bindgen writes the same glue for both; this checks that it
# does (byte for byte) rather than trusting it. The build has a target
# directory of its own (target/relaxed-simd): RUSTFLAGS are part of what
# Cargo fingerprints, so sharing one would rebuild everything at each switch.
#
# Usage: tools/build_relaxed_simd.sh STAGE_DIR NAME
#          (Trunk's staging directory; NAME: the glue's base name,
#          attnscope-web-<hash>, as tools/stamp_build.sh found it)
#        tools/build_relaxed_simd.sh --rustflags  (prints the build's RUSTFLAGS:
#        tools/test.sh runs the kernels' wasm tests with them)
set -euo pipefail
STAGE="${1:?usage: build_relaxed_simd.sh STAGE_DIR NAME | --rustflags}"
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
fail() { echo "build_relaxed_simd: $*" >&2; exit 1; }

# The plain build's flags (.cargo/config.toml), plus relaxed-simd. A RUSTFLAGS
# variable replaces the config's, so they are repeated here; the check keeps
# the two from drifting apart.
PLAIN='rustflags = ["-C", "target-feature=+simd128", "--cfg", "erase_components"]'
grep -qxF "$PLAIN" "$ROOT/.cargo/config.toml" \
  || fail ".cargo/config.toml's wasm32 rustflags changed: update RUSTFLAGS in $0 to match"
FLAGS="-C target-feature=+simd128,+relaxed-simd --cfg erase_components"
if [ "$STAGE" = --rustflags ]; then echo "$FLAGS"; exit 0; fi

name="${2:?usage: build_relaxed_simd.sh STAGE_DIR NAME}"
glue="$STAGE/$name.js"
[ -f "$glue" ] && [ -f "$STAGE/${name}_bg.wasm" ] || fail "$glue or $STAGE/${name}_bg.wasm is missing"

# The same cargo invocation as Trunk's (index.html: the bin, the profile;
# Trunk.toml: offline), in its own target directory.
TARGET="$ROOT/target/relaxed-simd"
(cd "$ROOT" && CARGO_TARGET_DIR="$TARGET" RUSTFLAGS="$FLAGS" \
  cargo build --offline --locked --target wasm32-unknown-unknown --profile wasm-release --bin attnscope-web)

OUT="$(mktemp -d)"
trap 'rm -rf "$OUT"' EXIT
# Trunk runs wasm-bindgen with the bin's name and adds the hash to the file
# names afterwards (the glue's imports keep the plain name).
wasm-bindgen --target web --no-typescript --out-dir "$OUT" --out-name attnscope-web \
  "$TARGET/wasm32-unknown-unknown/wasm-release/attnscope-web.wasm"
if ! cmp -s "$OUT/attnscope-web.js" "$glue"; then
  diff "$OUT/attnscope-web.js" "$glue" | head -20 >&2 || true
  fail "wasm-bindgen wrote different glue for the relaxed-SIMD build: both builds cannot share ${name}.js"
fi
# index.html's wasm-opt settings for the plain build (data-wasm-opt="z" and
# its params); the relaxed-simd feature is read from the module's own
# target_features section before it is stripped.
wasm-opt -Oz --converge --strip-producers --strip-target-features \
  "$OUT/attnscope-web_bg.wasm" -o "$STAGE/${name}_bg.relaxed-simd.wasm"
ls -l "$STAGE/${name}_bg.wasm" "$STAGE/${name}_bg.relaxed-simd.wasm"
