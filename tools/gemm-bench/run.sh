#!/usr/bin/env bash
# Native then wasm (simd128, run in node) timings of the matmul candidates.
set -euo pipefail
cd "$(dirname "$0")"
cargo build --release --bin native
./target/release/native
RUSTFLAGS="-C target-feature=+simd128" cargo build --release --lib --target wasm32-unknown-unknown
node run.mjs target/wasm32-unknown-unknown/release/gemm_bench.wasm
