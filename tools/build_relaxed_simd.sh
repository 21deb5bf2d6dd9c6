#!/usr/bin/env bash
# Release builds (tools/stamp_build.sh calls this): a second build of the app's
# wasm with WebAssembly relaxed SIMD on in the CPU engine's products, so their
# multiply-adds are fused (`f32x4.relaxed_madd`: one instruction where plain
# simd128 issues a multiply and an add; crates/simd128), staged beside Trunk's
# plain simd128 build as `<name>_bg.relaxed-simd.wasm`. index.html then loads
# it in a browser that validates a relaxed-SIMD module (Chromium since 114)
# and the plain build anywhere else, or when the relaxed one fails to load.
#
# The build differs from Trunk's by `ATTNSCOPE_RELAXED_SIMD=1` alone, which
# crates/simd128/build.rs turns into a cfg of that crate: no RUSTFLAGS and no
# cargo feature, so every dependency compiled for the plain build is reused
# (only crates/simd128 and the app's crate compile again) and wasm-bindgen
# writes the same glue for both, which this checks byte for byte. The two
# builds share one target directory: switching between them recompiles those
# two crates (about a minute), and leaves the last one built in place.
#
# Usage: tools/build_relaxed_simd.sh STAGE_DIR NAME
#          (Trunk's staging directory; NAME: the glue's base name,
#          attnscope-web-<hash>, as tools/stamp_build.sh found it)
#        tools/test.sh and tools/bench_browser.py build the wasm tests the
#        same way: ATTNSCOPE_RELAXED_SIMD=1 cargo test ...
set -euo pipefail
STAGE="${1:?usage: build_relaxed_simd.sh STAGE_DIR NAME}"
name="${2:?usage: build_relaxed_simd.sh STAGE_DIR NAME}"
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
fail() { echo "build_relaxed_simd: $*" >&2; exit 1; }

glue="$STAGE/$name.js"
[ -f "$glue" ] && [ -f "$STAGE/${name}_bg.wasm" ] || fail "$glue or $STAGE/${name}_bg.wasm is missing"

OUT="$(mktemp -d)"
trap 'rm -rf "$OUT"' EXIT
# Trunk's plain build must hold no relaxed-SIMD instruction (binaryen's text
# form names them all `<shape>.relaxed_<op>`).
wasm-dis --all-features "$STAGE/${name}_bg.wasm" -o "$OUT/plain.wat"
if grep -qE '\b(f32x4|f64x2|i8x16|i16x8|i32x4)\.relaxed_' "$OUT/plain.wat"; then
  fail "Trunk's plain build holds relaxed-SIMD instructions (is ATTNSCOPE_RELAXED_SIMD set in the environment?)"
fi
rm "$OUT/plain.wat"

# The same cargo invocation as Trunk's (index.html: the bin, the profile;
# Trunk.toml: offline).
(cd "$ROOT" && ATTNSCOPE_RELAXED_SIMD=1 \
  cargo build --offline --locked --target wasm32-unknown-unknown --profile wasm-release --bin attnscope-web)
BUILT="$ROOT/target/wasm32-unknown-unknown/wasm-release/attnscope-web.wasm"

# The products must hold the fused instruction inline: a function of its own
# named for the intrinsic (the build keeps its names until wasm-opt) would
# mean a caller without the target feature, and a call per multiply-add.
wasm-dis --all-features "$BUILT" -o "$OUT/built.wat"
fused=$(grep -c 'f32x4\.relaxed_madd' "$OUT/built.wat" || true)
[ "$fused" -gt 0 ] || fail "the relaxed-SIMD build holds no f32x4.relaxed_madd (crates/simd128/build.rs did not set its cfg?)"
if grep -qE '^ \(func \$[^ ]*relaxed_madd' "$OUT/built.wat"; then
  fail "f32x4_relaxed_madd was not inlined into every product: a function that reaches crates/simd128's madd lacks the attnscope_relaxed_simd target_feature"
fi
rm "$OUT/built.wat"

# Trunk runs wasm-bindgen with the bin's name and adds the hash to the file
# names afterwards (the glue's imports keep the plain name).
wasm-bindgen --target web --no-typescript --out-dir "$OUT" --out-name attnscope-web "$BUILT"
if ! cmp -s "$OUT/attnscope-web.js" "$glue"; then
  diff "$OUT/attnscope-web.js" "$glue" | head -20 >&2 || true
  fail "wasm-bindgen wrote different glue for the relaxed-SIMD build: both builds cannot share ${name}.js"
fi
# index.html's wasm-opt settings for the plain build (data-wasm-opt="z" and
# its params), with relaxed SIMD allowed.
wasm-opt -Oz --converge --strip-producers --strip-target-features --enable-simd --enable-relaxed-simd \
  "$OUT/attnscope-web_bg.wasm" -o "$STAGE/${name}_bg.relaxed-simd.wasm"
echo "build_relaxed_simd: $fused fused multiply-adds in the products"
ls -l "$STAGE/${name}_bg.wasm" "$STAGE/${name}_bg.relaxed-simd.wasm"
