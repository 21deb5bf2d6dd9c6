#!/usr/bin/env bash
# Trunk post_build hook (Trunk.toml): stamps this build's id into the staged
# index.html and sw.js, in place of the __ATTNSCOPE_BUILD__ placeholder. The
# id is a hash of every staged file (the wasm and its glue carry content hashes
# already), so any change to what is served gives a new id: the service worker
# then keeps a new cache and deletes the old one, and the pages' shared model
# fetch cache (index.html) is per build, so two deploys never mix their files.
set -euo pipefail
STAGE="${TRUNK_STAGING_DIR:?run by trunk as a post_build hook (or set TRUNK_STAGING_DIR)}"
cd "$STAGE"
# The first visit's bytes (issue 19): the two scripts every visit loads go
# out without their whole-line comments (~1.4 kB gzipped); neither has a
# multi-line string in which a line could begin with `//` (www/ keeps the
# comments). Before the hash, so the id is that of what is served.
for f in models.js sw.js; do
  [ -f "$f" ] || { echo "stamp_build: $STAGE/$f is missing" >&2; exit 1; }
  sed -i '/^[[:space:]]*\/\//d' "$f"
done
# Release builds: a second wasm built with relaxed SIMD (fused multiply-adds
# in the CPU engine's matmuls) and index.html made to pick it where the
# browser has relaxed SIMD (tools/build_relaxed_simd.sh, tools/wasm_loader.mjs).
# ATTNSCOPE_NO_RELAXED_SIMD=1 skips the second build (a quicker `trunk serve
# --release` loop); the page then loads the plain build everywhere.
# Then the wasm-bindgen glue minified by terser (Trunk's minifier gives up on
# its `export default`; ~3 kB gzipped), and its subresource integrity hash in
# index.html updated to match.
if [ "${TRUNK_PROFILE:-}" = release ]; then
  SRC="${TRUNK_SOURCE_DIR:-$(dirname "$0")/..}"
  glue=(attnscope-web-*.js)
  [ ${#glue[@]} -eq 1 ] && [ -f "${glue[0]}" ] || { echo "stamp_build: expected one wasm-bindgen glue file in $STAGE" >&2; exit 1; }
  f="${glue[0]}"
  if [ "${ATTNSCOPE_NO_RELAXED_SIMD:-}" != 1 ]; then
    bash "$SRC/tools/build_relaxed_simd.sh" "$STAGE" "${f%.js}"
  fi
  node "$SRC/tools/wasm_loader.mjs" "$STAGE" "${f%.js}"
  TERSER="$SRC/.tools/node_modules/.bin/terser"
  [ -x "$TERSER" ] || { echo "stamp_build: $TERSER is missing (run tools/setup.sh)" >&2; exit 1; }
  sri() { node -e 'const f=require("fs"),c=require("crypto");process.stdout.write("sha384-"+c.createHash("sha384").update(f.readFileSync(process.argv[1])).digest("base64"))' "$1"; }
  before="$(sri "$f")"
  "$TERSER" "$f" --module --compress --mangle -o "$f.min"
  mv "$f.min" "$f"
  grep -q "$before" index.html || { echo "stamp_build: index.html has no integrity hash for $f" >&2; exit 1; }
  sed -i "s|$before|$(sri "$f")|" index.html
fi
BUILD="$(find . -type f -print0 | LC_ALL=C sort -z | xargs -0 sha256sum | sha256sum | cut -c1-16)"
for f in index.html sw.js; do
  [ -f "$f" ] || { echo "stamp_build: $STAGE/$f is missing" >&2; exit 1; }
  grep -q '__ATTNSCOPE_BUILD__' "$f" || { echo "stamp_build: no placeholder in $f" >&2; exit 1; }
  sed -i "s/__ATTNSCOPE_BUILD__/$BUILD/g" "$f"
done
echo "stamp_build: build $BUILD"
