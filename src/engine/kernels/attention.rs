//! The CPU twin of shaders/attention_rows.wgsl, with its signature: query
//! rows `row0..row0+m` of every head over keys `0..t`, keeping the raw,
//! masked and softmax rows the trace shows and each head's W·V. The full
//! forward (`row0 = 0`), prefix reuse (the new rows) and the KV cache (one
//! row) all call it. The reference it is tested against is the composition
//! `ops::attention_scores`, `ops::softmax_rows`, `ops::weighted_sum`.

use super::super::ops::count_flops;
use super::rows::{dot, exp};
use crate::engine::Mask;

/// Which rows and keys: the kernel's uniform block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AttentionRows {
    /// First query row and number of rows.
    pub row0: usize,
    pub m: usize,
    /// Keys `0..t`.
    pub t: usize,
    pub n_head: usize,
    pub d_head: usize,
    pub mask: Mask,
}

/// Where the Q, K and V rows are. Query head h's slice of a row is columns
/// `h·d_head..` of it; the K and V it reads are KV head `h / group`'s,
/// columns `(h / group)·d_head..` (grouped-query attention; `group` 1 is
/// full multi-head). Query row `i` (absolute, `row0 ≤ i`) is at
/// `(i − q_row0)·q_stride`; key and value `j` at `j·kv_stride`.
#[derive(Debug, Clone, Copy)]
pub struct QkvRows<'a> {
    pub q: &'a [f32],
    pub q_row0: usize,
    pub q_stride: usize,
    pub k: &'a [f32],
    pub v: &'a [f32],
    pub kv_stride: usize,
    /// Query heads per KV head.
    pub group: usize,
}

impl<'a> QkvRows<'a> {
    /// The fused projection `qkv[T×3d]` the kernel reads: Q, K, V side by side.
    pub fn fused(qkv: &'a [f32], d: usize) -> Self {
        Self::fused_grouped(qkv, d, d, 1)
    }

    /// A fused projection `qkv[T×(q_dim + 2·kv_dim)]` with `group` query
    /// heads per KV head: Q (q_dim wide), K, V (kv_dim each) side by side.
    pub fn fused_grouped(qkv: &'a [f32], q_dim: usize, kv_dim: usize, group: usize) -> Self {
        let tail = |from: usize| qkv.get(from..).unwrap_or(&[]);
        let stride = q_dim + 2 * kv_dim;
        Self { q: qkv, q_row0: 0, q_stride: stride, k: tail(q_dim), v: tail(q_dim + kv_dim), kv_stride: stride, group }
    }
}

/// Where the outputs go. Element (h, i, j) of `raw`, `masked` and `weights`
/// is at `(h·rows + i − first_row)·cap + j`; head h's output of row i at
/// `(i − first_row)·d + h·d_head` of `out`. The kernel's layout is
/// `first_row = 0, rows = cap`; the KV cache's one row is `first_row = i, rows = 1`.
#[derive(Debug)]
pub struct ScoreRows<'a> {
    pub raw: &'a mut [f32],
    pub masked: &'a mut [f32],
    pub weights: &'a mut [f32],
    pub out: &'a mut [f32],
    pub cap: usize,
    pub rows: usize,
    pub first_row: usize,
}

impl ScoreRows<'_> {
    /// Offset of row i of head h in the score buffers.
    fn at(&self, h: usize, i: usize) -> usize {
        (h * self.rows + i - self.first_row) * self.cap
    }
}

/// What [`attention_rows_owned`] computes for rows `row0..row0+m`, in
/// buffers of its own: element (h, i, j) of `raw`, `masked` and `weights` at
/// `(h·m + i − row0)·t + j`; row i's heads side by side at `(i − row0)·d` of
/// `out` (the [`ScoreRows`] layout with `cap = t`, `rows = m`, `first_row = row0`).
#[derive(Debug)]
pub struct AttentionOut {
    pub raw: Vec<f32>,
    pub masked: Vec<f32>,
    pub weights: Vec<f32>,
    pub out: Vec<f32>,
}

/// [`attention_rows`] into new buffers holding just the rows it computes:
/// what the full forward, prefix reuse and the KV cache each need.
pub fn attention_rows_owned(shape: &AttentionRows, qkv: &QkvRows) -> AttentionOut {
    let AttentionRows { row0, m, t, n_head, d_head, .. } = *shape;
    let len = n_head * m * t;
    let mut o = AttentionOut {
        raw: vec![0.0; len],
        masked: vec![0.0; len],
        weights: vec![0.0; len],
        out: vec![0.0; m * n_head * d_head],
    };
    let mut dst = ScoreRows {
        raw: &mut o.raw,
        masked: &mut o.masked,
        weights: &mut o.weights,
        out: &mut o.out,
        cap: t,
        rows: m,
        first_row: row0,
    };
    attention_rows(shape, qkv, &mut dst);
    o
}

/// Keys `lo..hi` are the ones `mask` lets query `i` see among `0..t`.
fn allowed_keys(mask: Mask, i: usize, t: usize) -> (usize, usize) {
    match mask {
        Mask::Bidirectional => (0, t),
        Mask::Causal => (0, (i + 1).min(t)),
        Mask::Window(w) => ((i + 1).saturating_sub(w as usize), (i + 1).min(t)),
    }
}

/// Fills rows `row0..row0+m` of every head: Q·Kᵀ (raw, over every key, as
/// the trace shows it), scaled by 1/√d_head with −∞ where the mask forbids
/// (masked), the stable softmax (weights; a row with no allowed key is all
/// zero, never NaN) and W·V (out). Panics if a buffer is shorter than the
/// shape says, like indexing.
pub fn attention_rows(shape: &AttentionRows, qkv: &QkvRows, dst: &mut ScoreRows) {
    let AttentionRows { row0, m, t, n_head, d_head, mask } = *shape;
    assert!(dst.cap >= t && row0 >= dst.first_row && row0 + m <= dst.first_row + dst.rows, "{shape:?} vs {dst:?}");
    let d = n_head * d_head;
    let scale = 1.0 / (d_head as f32).sqrt();
    count_flops(4 * n_head * m * t * d_head);
    let mut o = vec![0.0f32; d_head];
    for h in 0..n_head {
        let col = h * d_head;
        let kv_col = h / qkv.group.max(1) * d_head;
        for i in row0..row0 + m {
            let q = &qkv.q[(i - qkv.q_row0) * qkv.q_stride + col..][..d_head];
            let at = dst.at(h, i);
            let raw = &mut dst.raw[at..][..t];
            for (j, r) in raw.iter_mut().enumerate() {
                *r = dot(q, &qkv.k[j * qkv.kv_stride + kv_col..][..d_head]);
            }
            let (lo, hi) = allowed_keys(mask, i, t);
            let masked = &mut dst.masked[at..][..t];
            masked.fill(f32::NEG_INFINITY);
            let mut max = f32::NEG_INFINITY;
            for (mk, &r) in masked[lo..hi].iter_mut().zip(&raw[lo..hi]) {
                *mk = r * scale;
                max = max.max(*mk);
            }
            let weights = &mut dst.weights[at..][..t];
            weights.fill(0.0);
            o.fill(0.0);
            if max != f32::NEG_INFINITY {
                let mut sum = 0.0;
                for (w, &s) in weights[lo..hi].iter_mut().zip(&masked[lo..hi]) {
                    *w = exp(s - max);
                    sum += *w;
                }
                for w in &mut weights[lo..hi] {
                    *w /= sum;
                }
                for (j, &w) in weights.iter().enumerate().take(hi).skip(lo) {
                    let v = &qkv.v[j * qkv.kv_stride + kv_col..][..d_head];
                    for (oc, &vc) in o.iter_mut().zip(v) {
                        *oc += w * vc;
                    }
                }
            }
            dst.out[(i - dst.first_row) * d + col..][..d_head].copy_from_slice(&o);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allowed_keys_follow_the_mask() {
        for mask in [Mask::Causal, Mask::Bidirectional, Mask::Window(1), Mask::Window(3), Mask::Window(0)] {
            for t in 1..7 {
                for i in 0..t {
                    let (lo, hi) = allowed_keys(mask, i, t);
                    for j in 0..t {
                        assert_eq!((lo..hi).contains(&j), mask.allows(i, j), "{mask:?} i={i} j={j} t={t}");
                    }
                }
            }
        }
    }

    #[test]
    fn one_cached_row_reads_separate_q_k_v() {
        // Two keys, one head of width 2; the query sees both (causal, row 1).
        let (q, k, v) = ([1.0, 0.0], [0.0, 0.0, 2.0, 0.0], [1.0, 1.0, 3.0, 5.0]);
        let qkv = QkvRows { q: &q, q_row0: 1, q_stride: 2, k: &k, v: &v, kv_stride: 2, group: 1 };
        let (mut raw, mut masked, mut weights, mut out) = ([0.0; 2], [0.0; 2], [0.0; 2], [0.0; 2]);
        let mut dst = ScoreRows {
            raw: &mut raw,
            masked: &mut masked,
            weights: &mut weights,
            out: &mut out,
            cap: 2,
            rows: 1,
            first_row: 1,
        };
        let shape = AttentionRows { row0: 1, m: 1, t: 2, n_head: 1, d_head: 2, mask: Mask::Causal };
        attention_rows(&shape, &qkv, &mut dst);
        assert_eq!(raw, [0.0, 2.0]);
        let e = (2.0f32 / 2f32.sqrt()).exp();
        let want = [1.0 / (1.0 + e), e / (1.0 + e)];
        assert!((weights[0] - want[0]).abs() < 1e-6 && (weights[1] - want[1]).abs() < 1e-6, "{weights:?}");
        assert!((out[0] - (want[0] + 3.0 * want[1])).abs() < 1e-5, "{out:?}");
    }
}
