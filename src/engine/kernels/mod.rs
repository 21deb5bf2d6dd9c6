//! The CPU engine's fast kernels: what the forward pass, prefix reuse and the
//! KV cache actually run. `engine::ops` keeps the plain loops they are tested
//! against (the reference); each kernel here has property tests comparing it
//! with them on random shapes, natively and in wasm (`tests/cpu_kernels.rs`,
//! `tests/wasm_cpu.rs`).
//!
//! Matmuls are cache-blocked with packed panels and SIMD microkernels: `gemm`
//! natively (AVX-512 or AVX2+FMA chosen at run time), `matrixmultiply` in the
//! browser (simd128, enabled by `.cargo/config.toml`); tools/gemm-bench has
//! the figures behind the choice. With the `threads` feature (native builds;
//! the browser stays single-threaded) a matmul's columns are split over
//! rayon's pool. Small-row products (a keystroke, a KV-cache step) stream
//! the weights once instead.

mod attention;
mod matmul;
mod rows;

pub use attention::{attention_rows, attention_rows_owned, AttentionOut, AttentionRows, QkvRows, ScoreRows};
pub use matmul::{lm_head, matmul_bias};
pub use rows::{activate, add, dot, exp, layernorm, rmsnorm, swiglu};
