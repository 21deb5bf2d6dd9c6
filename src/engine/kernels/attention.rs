//! The CPU twin of shaders/attention_rows.wgsl, with its signature: query
//! rows `row0..row0+m` of every head over keys `0..t`, keeping the raw,
//! masked and softmax rows the trace shows and each head's A·V. The full
//! forward (`row0 = 0`), prefix reuse (the new rows) and the KV cache (one
//! row) all call it. The reference it is tested against is the composition
//! `ops::attention_scores`, `ops::softmax_rows`, `ops::weighted_sum`.

use super::super::ops::count_flops;
#[cfg(not(target_arch = "wasm32"))]
use super::rows::dot;
use super::rows::exp;
use crate::engine::Mask;

/// Lanes of a softmax row's running max and sum ([`softmax_row`]).
const ROW_LANES: usize = 16;

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
/// is at `(h·rows + i − first_row)·cap + j`; the softmax of row i of head h
/// (its max and sum, [`SoftmaxRow`]) at `2·(h·rows + i − first_row)` of
/// `softmax`; head h's output of row i at
/// `(i − first_row)·d + h·d_head` of `out`. The kernel's layout is
/// `first_row = 0, rows = cap`; the KV cache's one row is `first_row = i, rows = 1`.
#[derive(Debug)]
pub struct ScoreRows<'a> {
    pub raw: &'a mut [f32],
    pub masked: &'a mut [f32],
    pub weights: &'a mut [f32],
    pub softmax: &'a mut [f32],
    pub out: &'a mut [f32],
    pub cap: usize,
    pub rows: usize,
    pub first_row: usize,
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
    pub softmax: Vec<f32>,
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
        softmax: vec![0.0; 2 * n_head * m],
        out: vec![0.0; m * n_head * d_head],
    };
    let mut dst = ScoreRows {
        raw: &mut o.raw,
        masked: &mut o.masked,
        weights: &mut o.weights,
        softmax: &mut o.softmax,
        out: &mut o.out,
        cap: t,
        rows: m,
        first_row: row0,
    };
    attention_rows(shape, qkv, &mut dst);
    o
}

/// Fills rows `row0..row0+m` of every head: Q·Kᵀ (raw, over every key, as
/// the trace shows it), scaled by 1/√d_head with −∞ where the mask forbids
/// (masked), the stable softmax (weights; a row with no allowed key is all
/// zero, never NaN), each row's softmax max and sum (softmax) and A·V (out).
/// Panics if a buffer is shorter than the shape says, like indexing.
pub fn attention_rows(shape: &AttentionRows, qkv: &QkvRows, dst: &mut ScoreRows) {
    let AttentionRows { row0, m, t, n_head, d_head, mask } = *shape;
    assert!(dst.cap >= t && row0 >= dst.first_row && row0 + m <= dst.first_row + dst.rows, "{shape:?} vs {dst:?}");
    let d = n_head * d_head;
    let scale = 1.0 / (d_head as f32).sqrt();
    count_flops(4 * n_head * m * t * d_head);
    if m == 0 {
        return;
    }
    // Each head's score rows and softmax pairs are blocks of their own; its
    // output columns, interleaved with the other heads' in `out`, go to a
    // buffer of its own ([m × d_head]) and are copied in after.
    let (rows, cap, first_row) = (dst.rows, dst.cap, dst.first_row);
    let (first, span) = ((row0 - first_row) * cap, (m - 1) * cap + t);
    let one_head = |(h, (((raw, masked), weights), softmax)): (usize, HeadRows)| {
        let col = h * d_head;
        // A query head reads the K and V columns of its group's KV head.
        let kv_col = h / qkv.group.max(1) * d_head;
        // Row i of this head's score rows is at first + (i − row0)·cap.
        let (raw, masked, weights) =
            (&mut raw[first..][..span], &mut masked[first..][..span], &mut weights[first..][..span]);
        head_scores(shape, qkv, (col, kv_col), raw, cap);
        for (r, i) in (row0..row0 + m).enumerate() {
            let at = r * cap..r * cap + t;
            let max_sum =
                softmax_row(&raw[at.clone()], mask.keys(i, t), scale, &mut masked[at.clone()], &mut weights[at]);
            softmax[2 * (i - first_row)..][..2].copy_from_slice(&[max_sum.max, max_sum.sum]);
        }
        let mut out = vec![0.0; m * d_head];
        head_output(shape, qkv, kv_col, weights, cap, &mut out, d_head);
        out
    };
    let heads = dst
        .raw
        .chunks_mut(rows * cap)
        .zip(dst.masked.chunks_mut(rows * cap))
        .zip(dst.weights.chunks_mut(rows * cap))
        .zip(dst.softmax.chunks_mut(2 * rows))
        .take(n_head)
        .enumerate();
    let outs: Vec<Vec<f32>> = each_head(heads, n_head * m * t * d_head, one_head);
    assert_eq!(outs.len(), n_head, "{shape:?} vs {dst:?}: a buffer is short of heads");
    let out_first = (row0 - first_row) * d;
    for (h, head_out) in outs.iter().enumerate() {
        for (r, row) in head_out.chunks_exact(d_head.max(1)).enumerate() {
            dst.out[out_first + r * d + h * d_head..][..d_head].copy_from_slice(row);
        }
    }
}

/// One head's score rows (raw, masked, weights) and softmax pairs in [`ScoreRows`].
type HeadRows<'a> = (((&'a mut [f32], &'a mut [f32]), &'a mut [f32]), &'a mut [f32]);

/// `work` over every head, natively on rayon's threads when the heads'
/// products are worth a hand-off (`threads` feature; `size`: their
/// multiply-adds), in head order.
fn each_head<'a, R: Send>(
    heads: impl Iterator<Item = (usize, HeadRows<'a>)> + Send,
    size: usize,
    work: impl Fn((usize, HeadRows<'a>)) -> R + Sync + Send,
) -> Vec<R> {
    #[cfg(all(feature = "threads", not(target_arch = "wasm32")))]
    if size >= 1 << 18 && rayon::current_num_threads() > 1 {
        use rayon::prelude::*;
        return heads.collect::<Vec<_>>().into_par_iter().map(work).collect();
    }
    let _ = size;
    heads.map(work).collect()
}

/// A row's stable softmax: the largest scaled score the mask allows and
/// the sum of their exponentials after subtracting it. With them one weight
/// is `exp(raw · scale − max) / sum` ([`SoftmaxRow::weight`]), bit for bit
/// what [`attention_rows`] wrote for it: a trace that keeps no T×T weights
/// keeps these two numbers per row (`HeadTrace::softmax`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SoftmaxRow {
    pub max: f32,
    pub sum: f32,
}

impl SoftmaxRow {
    /// The weight of a key the mask allows whose raw score is `raw`
    /// (0 in a row with no allowed key: its max is −∞).
    pub fn weight(self, raw: f32, scale: f32) -> f32 {
        if self.max == f32::NEG_INFINITY {
            0.0
        } else {
            exp(raw * scale - self.max) / self.sum
        }
    }
}

/// One row of the kernel after its raw scores: `masked` the raw scores
/// scaled where the mask allows (`lo..hi`) and −∞ elsewhere, `weights`
/// their stable softmax (0 outside `lo..hi`, all 0 when the run is empty);
/// returns the row's max and sum. The one place these loops live: the
/// kernel and a trace computing its weights on reading both call it.
pub fn softmax_row(
    raw: &[f32],
    (lo, hi): (usize, usize),
    scale: f32,
    masked: &mut [f32],
    weights: &mut [f32],
) -> SoftmaxRow {
    masked.fill(f32::NEG_INFINITY);
    weights.fill(0.0);
    let (raw, masked, weights) = (&raw[lo..hi], &mut masked[lo..hi], &mut weights[lo..hi]);
    // The max and the sum kept in ROW_LANES lanes, a lane per column modulo
    // ROW_LANES, summed in a fixed order at the end: loops the compiler
    // vectorises (one running sum made the row's exponentials scalar).
    let mut lanes = [f32::NEG_INFINITY; ROW_LANES];
    for (i, (mk, &r)) in masked.iter_mut().zip(raw).enumerate() {
        *mk = r * scale;
        lanes[i % ROW_LANES] = lanes[i % ROW_LANES].max(*mk);
    }
    let max = lanes.iter().fold(f32::NEG_INFINITY, |a, &b| a.max(b));
    if max == f32::NEG_INFINITY {
        return SoftmaxRow { max, sum: 0.0 };
    }
    let mut sums = [0.0f32; ROW_LANES];
    let mut chunks = weights.chunks_exact_mut(ROW_LANES).zip(masked.chunks_exact(ROW_LANES));
    for (w, s) in &mut chunks {
        for l in 0..ROW_LANES {
            w[l] = exp(s[l] - max);
            sums[l] += w[l];
        }
    }
    let done = weights.len() / ROW_LANES * ROW_LANES;
    for (l, (w, &s)) in weights[done..].iter_mut().zip(&masked[done..]).enumerate() {
        *w = exp(s - max);
        sums[l] += *w;
    }
    let sum = sums.iter().sum::<f32>();
    for w in weights.iter_mut() {
        *w /= sum;
    }
    SoftmaxRow { max, sum }
}

/// One head's raw scores over every key, `[m × t]` row-major: rows of `q`
/// (`[m × d_head]`) against rows of `k` (`[t × d_head]`), by the product
/// [`attention_rows`] computes them with. A trace that keeps no raw scores
/// computes them so when they are read (`HeadTrace::scores_raw`).
pub fn head_raw_scores(q: &[f32], k: &[f32], shape: (usize, usize, usize)) -> Vec<f32> {
    let mut raw = vec![0.0; shape.0 * shape.1];
    raw_scores_into(q, k, shape, &mut raw);
    raw
}

/// Rows `rows` of one head's weights over keys `0..t`, `[rows.len() × t]`
/// row-major, from its queries `q` (row i at `i·d_head`) and keys `k` (row
/// j at `j·d_head`) under `mask`: bit for bit what [`attention_rows`] wrote
/// for them (the same product, then [`softmax_row`]). A trace that keeps no
/// T×T weights computes them so when they are read.
pub fn head_weight_rows(
    q: &[f32],
    k: &[f32],
    d_head: usize,
    t: usize,
    rows: std::ops::Range<usize>,
    mask: Mask,
) -> Vec<f32> {
    let m = rows.len();
    let mut weights = vec![0.0; m * t];
    if m == 0 || t == 0 {
        return weights;
    }
    let mut raw = vec![0.0; m * t];
    raw_scores_into(&q[rows.start * d_head..][..m * d_head], &k[..t * d_head], (m, t, d_head), &mut raw);
    let (scale, mut masked) = (1.0 / (d_head as f32).sqrt(), vec![0.0; t]);
    for (r, i) in rows.enumerate() {
        softmax_row(&raw[r * t..][..t], mask.keys(i, t), scale, &mut masked, &mut weights[r * t..][..t]);
    }
    weights
}

/// One raw score `q · k` (rows of d_head), bit for bit the one
/// [`head_raw_scores`] and the attention kernels compute for that pair: a
/// score's sum does not depend on where it sits in the matrix (natively one
/// [`dot`]; in the browser the simd128 GEMM's dot loop, whose lanes are
/// independent). A hover reads a trace's raw score so without computing its row.
pub fn raw_score(q: &[f32], k: &[f32]) -> f32 {
    let mut raw = [0.0];
    raw_scores_into(q, k, (1, 1, q.len().min(k.len())), &mut raw);
    raw[0]
}

/// [`head_raw_scores`] into `raw` (`m × t` values, zero).
fn raw_scores_into(q: &[f32], k: &[f32], (m, t, d_head): (usize, usize, usize), raw: &mut [f32]) {
    if m > 0 && t > 0 && d_head > 0 {
        let shape = AttentionRows { row0: 0, m, t, n_head: 1, d_head, mask: Mask::Bidirectional };
        let qkv = QkvRows { q, q_row0: 0, q_stride: d_head, k, v: &[], kv_stride: d_head, group: 1 };
        head_scores(&shape, &qkv, (0, 0), raw, t);
    }
}

/// One head's raw scores `raw[(i − row0)·cap + j] = q_i · k_j` for its rows
/// and every key (its query columns `col`, its KV head's key columns
/// `kv_col`): a dot product each natively, the simd128 GEMM in the browser.
fn head_scores(shape: &AttentionRows, qkv: &QkvRows, (col, kv_col): (usize, usize), raw: &mut [f32], cap: usize) {
    let AttentionRows { row0, m, t, d_head, .. } = *shape;
    let q = &qkv.q[(row0 - qkv.q_row0) * qkv.q_stride + col..];
    #[cfg(target_arch = "x86_64")]
    if super::avx512::available() {
        return scores_avx512(shape, (q, qkv.q_stride), (qkv.k, qkv.kv_stride, kv_col), raw, cap);
    }
    #[cfg(not(target_arch = "wasm32"))]
    for r in 0..m {
        let q = &q[r * qkv.q_stride..][..d_head];
        for (j, out) in raw[r * cap..][..t].iter_mut().enumerate() {
            *out = dot(q, &qkv.k[j * qkv.kv_stride + kv_col..][..d_head]);
        }
    }
    #[cfg(target_arch = "wasm32")]
    {
        use attnscope_simd128::{gemm, Strided};
        for r in 0..m {
            raw[r * cap..][..t].fill(0.0);
        }
        let a = Strided { data: q, rs: qkv.q_stride, cs: 1 };
        let b = Strided { data: qkv.k.get(kv_col..).unwrap_or(&[]), rs: 1, cs: qkv.kv_stride };
        gemm(a, b, raw, cap, (m, d_head, t));
    }
}

/// [`head_scores`] with AVX-512 ([`super::avx512::gemm_dot_few`]): each
/// score a sum over the depth in one order whatever the rows and keys
/// around it (a score read alone equals the map's, bit for bit).
#[cfg(target_arch = "x86_64")]
fn scores_avx512(
    shape: &AttentionRows,
    (q, q_stride): (&[f32], usize),
    (k, kv_stride, kv_col): (&[f32], usize, usize),
    raw: &mut [f32],
    cap: usize,
) {
    let AttentionRows { m, t, d_head, .. } = *shape;
    if m == 0 || t == 0 {
        return;
    }
    let views = (m - 1) * q_stride + d_head <= q.len()
        && kv_col + (t - 1) * kv_stride + d_head <= k.len()
        && (m - 1) * cap + t <= raw.len();
    assert!(views, "attention operands are shorter than {m} rows × {t} keys of {d_head}");
    for r in 0..m {
        raw[r * cap..][..t].fill(0.0);
    }
    // SAFETY: the assert above covers rows 0..m of q and raw and keys 0..t
    // of k; the CPU has AVX-512 F (the caller checked).
    unsafe {
        super::avx512::gemm_dot_few(
            (m, d_head, t),
            (q.as_ptr(), q_stride),
            (k.as_ptr().add(kv_col), kv_stride),
            (raw.as_mut_ptr(), cap),
        )
    }
}

/// One head's outputs `out[(i − row0)·d ..][..d_head] = Σ_j w_ij · v_j` for
/// its rows, from their weight rows `weights[(i − row0)·cap ..][..t]` (zero
/// where the mask forbids) and its KV head's value columns `kv_col`.
fn head_output(
    shape: &AttentionRows,
    qkv: &QkvRows,
    kv_col: usize,
    weights: &[f32],
    cap: usize,
    out: &mut [f32],
    d: usize,
) {
    let AttentionRows { m, t, d_head, .. } = *shape;
    for r in 0..m {
        out[r * d..][..d_head].fill(0.0);
    }
    #[cfg(target_arch = "x86_64")]
    if super::avx512::available() {
        let views = m == 0
            || t == 0
            || ((m - 1) * cap + t <= weights.len()
                && kv_col + (t - 1) * qkv.kv_stride + d_head <= qkv.v.len()
                && (m - 1) * d + d_head <= out.len());
        assert!(views, "attention operands are shorter than {m} rows × {t} keys of {d_head}");
        // SAFETY: the assert covers every view; AVX-512 F checked.
        return unsafe {
            super::avx512::weighted_rows(
                (m, t, d_head),
                (weights.as_ptr(), cap),
                (qkv.v.as_ptr().wrapping_add(kv_col), qkv.kv_stride),
                (out.as_mut_ptr(), d),
            )
        };
    }
    #[cfg(not(target_arch = "wasm32"))]
    for r in 0..m {
        let o = &mut out[r * d..][..d_head];
        for (j, &w) in weights[r * cap..][..t].iter().enumerate() {
            if w != 0.0 {
                let v = &qkv.v[j * qkv.kv_stride + kv_col..][..d_head];
                for (oc, &vc) in o.iter_mut().zip(v) {
                    *oc += w * vc;
                }
            }
        }
    }
    #[cfg(target_arch = "wasm32")]
    {
        use attnscope_simd128::{gemm, Strided};
        let a = Strided { data: weights, rs: cap, cs: 1 };
        let b = Strided { data: qkv.v.get(kv_col..).unwrap_or(&[]), rs: qkv.kv_stride, cs: 1 };
        gemm(a, b, out, d, (m, t, d_head));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What `HeadTrace::scores_scaled` and `scores_masked` rely on to derive
    /// those stages from the raw scores: bit for bit the kernel's.
    #[test]
    fn masked_scores_are_the_raw_scores_scaled_where_the_mask_allows() {
        let (t, n_head, d_head) = (9, 3, 5);
        let d = n_head * d_head;
        let qkv: Vec<f32> = (0..t * 3 * d).map(|i| ((i * 37 % 23) as f32 - 11.0) * 0.173).collect();
        for mask in [Mask::Causal, Mask::Bidirectional, Mask::Window(3), Mask::Window(1)] {
            let shape = AttentionRows { row0: 0, m: t, t, n_head, d_head, mask };
            let o = attention_rows_owned(&shape, &QkvRows::fused(&qkv, d));
            let scale = 1.0 / (d_head as f32).sqrt();
            for h in 0..n_head {
                for i in 0..t {
                    for j in 0..t {
                        let at = (h * t + i) * t + j;
                        let want = if mask.allows(i, j) { o.raw[at] * scale } else { f32::NEG_INFINITY };
                        assert_eq!(o.masked[at].to_bits(), want.to_bits(), "{mask:?} head {h} ({i}, {j})");
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
        let mut softmax = [0.0; 2];
        let mut dst = ScoreRows {
            raw: &mut raw,
            masked: &mut masked,
            weights: &mut weights,
            softmax: &mut softmax,
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
