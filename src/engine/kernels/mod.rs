//! The CPU engine's fast kernels: what the forward pass, prefix reuse and the
//! KV cache actually run. `engine::ops` keeps the plain loops they are tested
//! against (the reference); each kernel here has property tests comparing it
//! with them on random shapes, natively and in wasm (`tests/cpu_kernels.rs`,
//! `tests/wasm_cpu.rs`).
//!
//! Matmuls are cache-blocked with packed panels and SIMD microkernels:
//! natively the `gemm` crate (AVX-512 or AVX2+FMA chosen at run time; with
//! the `threads` feature a matmul's columns are split over rayon's pool, and
//! small-row products — a keystroke, a KV-cache step — stream the weights
//! once instead), and on a CPU with AVX-512 our own kernels for 5–48 rows
//! of `x·w`, the tied LM head at any number of rows, and attention's Q·Kᵀ
//! and A·V, which read the weights where they lie (`avx512`: gemm's packing
//! copied every weight for a product that reads each a few times; GPT-2
//! small at T = 16 went from 1.37× PyTorch's one-thread time to 0.84×;
//! gemm transposes `wte` as it packs it); in the browser our own simd128 GEMM, `crates/simd128`
//! (single-threaded), which also runs attention's Q·Kᵀ and A·V and GELU four
//! lanes at a time. The app ships its wasm twice, with plain simd128 and with
//! relaxed SIMD, where these loops' multiply-adds are fused
//! (tools/build_relaxed_simd.sh; index.html picks by what the browser
//! validates): [`WASM_SIMD`] says which one runs.
//!
//! Why our own in the browser: matrixmultiply's simd128 kernel (8×8 tile,
//! 16 accumulators) spills on the 16 vector registers V8 has on x86-64 and
//! reached ~20 GFLOP/s alone, ~12 inside the forward; ours is a 4×8 tile
//! with row-major weights packed 128 columns at a time (read in place up to
//! 32 rows, where packing first cannot overlap the reads), a dot-product
//! tile for `wteᵀ` and Q·Kᵀ, which need no packing, and for at most 4 rows
//! (a keystroke, a KV-cache step) the weights streamed once, row by row. It is built at
//! opt-level 3 inside the size-first wasm profile (at "z" its loops ran
//! 1.5–10× slower). Measured in node on GPT-2 small's matmuls (tools/gemm-bench,
//! same run, GFLOP/s): T = 16 ~23–29 vs matrixmultiply's ~20–24, T = 128
//! ~29–37 vs ~19–31, and the full traced forward in headless Chromium went
//! from 1.4–1.6× ONNX Runtime Web's time to ≤ 0.91× (README, "Performance").

mod attention;
#[cfg(target_arch = "x86_64")]
mod avx512;
mod matmul;
mod rows;

pub use attention::{
    attention_rows, attention_rows_owned, head_raw_scores, head_weight_rows, raw_score, softmax_row, AttentionOut,
    AttentionRows, QkvRows, ScoreRows, SoftmaxRow,
};
/// Which of the app's two wasm builds this is: "simd128", or
/// "simd128 + relaxed-simd" (`crates/simd128`'s multiply-adds fused).
#[cfg(target_arch = "wasm32")]
pub const WASM_SIMD: &str = if attnscope_simd128::RELAXED { "simd128 + relaxed-simd" } else { "simd128" };

pub use matmul::{lm_head, lm_head_columns, matmul_bias, matmul_bias_columns};
pub use rows::{activate, add, dot, exp, layernorm, rmsnorm, swiglu};
