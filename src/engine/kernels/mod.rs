//! The CPU engine's fast kernels: what the forward pass, prefix reuse and the
//! KV cache actually run. `engine::ops` keeps the plain loops they are tested
//! against (the reference); each kernel here has property tests comparing it
//! with them on random shapes, natively and in wasm (`tests/cpu_kernels.rs`,
//! `tests/wasm_cpu.rs`).
//!
//! Matmuls go through `matrixmultiply` (cache-blocked, packed panels, SIMD
//! microkernels: AVX-512/AVX2+FMA chosen at run time natively, simd128 in the
//! browser with `.cargo/config.toml`'s target feature). With the `threads`
//! feature (native builds; the browser stays single-threaded) a matmul's
//! columns are split over rayon's pool.

mod attention;
mod matmul;
mod rows;

pub use attention::{attention_rows, AttentionRows, QkvRows, ScoreRows};
pub use matmul::{lm_head, matmul_bias};
pub use rows::{activate, add, dot, exp, layernorm};
