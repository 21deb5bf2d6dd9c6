//! Pieces shared by the CPU kernel tests, natively and in wasm (included by
//! path: `tests/common/mod.rs` holds native-only GPU helpers).
#![allow(dead_code)]

use attnscope::engine::kernels::{self, AttentionRows, QkvRows, ScoreRows};
use attnscope::engine::sampling::Rng;

/// A size in `lo..=hi`.
pub fn pick(rng: &mut Rng, lo: usize, hi: usize) -> usize {
    lo + (rng.next_u64() % (hi - lo + 1) as u64) as usize
}

/// `len` values in (−scale, scale).
pub fn values(rng: &mut Rng, len: usize, scale: f32) -> Vec<f32> {
    (0..len).map(|_| (rng.next_f64() as f32 * 2.0 - 1.0) * scale).collect()
}

/// What one `kernels::attention_rows` call wrote: per head a `cap × cap`
/// block of raw, masked and softmax scores, and the `T × q_dim` outputs
/// (zeros wherever it wrote nothing).
pub struct Scores {
    pub raw: Vec<f32>,
    pub masked: Vec<f32>,
    pub weights: Vec<f32>,
    /// Each row's softmax max and sum, `2·(h·cap + i)`.
    pub softmax: Vec<f32>,
    pub out: Vec<f32>,
}

impl Scores {
    /// Runs the kernel into fresh zeroed buffers with room for `cap` rows
    /// and columns per head.
    pub fn run(shape: &AttentionRows, qkv: &QkvRows, cap: usize, q_dim: usize) -> Self {
        let len = shape.n_head * cap * cap;
        let mut s = Scores {
            raw: vec![0.0; len],
            masked: vec![0.0; len],
            weights: vec![0.0; len],
            softmax: vec![0.0; 2 * shape.n_head * cap],
            out: vec![0.0; shape.t * q_dim],
        };
        let mut dst = ScoreRows {
            raw: &mut s.raw,
            masked: &mut s.masked,
            weights: &mut s.weights,
            softmax: &mut s.softmax,
            out: &mut s.out,
            cap,
            rows: cap,
            first_row: 0,
        };
        kernels::attention_rows(shape, qkv, &mut dst);
        s
    }
}
