#!/usr/bin/env bash
# Native then wasm (simd128, run in node) timings of the matmul candidates.
set -euo pipefail
cd "$(dirname "$0")"
cargo build --release --bin native
./target/release/native
RUSTFLAGS="-C target-feature=+simd128" cargo build --release --lib --target wasm32-unknown-unknown
node run.mjs target/wasm32-unknown-unknown/release/gemm_bench.wasm
# The app's relaxed-SIMD build (crates/simd128's products with fused
# multiply-adds; tools/build_relaxed_simd.sh), in a target directory of its
# own so the two do not rebuild each other. Node 20 runs relaxed SIMD behind a flag.
ATTNSCOPE_RELAXED_SIMD=1 RUSTFLAGS="-C target-feature=+simd128" CARGO_TARGET_DIR=target/relaxed-simd \
  cargo build --release --lib --target wasm32-unknown-unknown
FLAG=(); node --v8-options | grep -q -- '--experimental-wasm-relaxed-simd' && FLAG=(--experimental-wasm-relaxed-simd)
echo "relaxed SIMD:"
node "${FLAG[@]}" run.mjs target/relaxed-simd/wasm32-unknown-unknown/release/gemm_bench.wasm
