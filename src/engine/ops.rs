//! The plain-loop reference of what the GPU kernels in `shaders/` and the fast
//! CPU kernels (`engine::kernels`) compute: f32 loops written for clarity, which
//! define what both must compute (`shaders/README.md` maps each kernel to its twin).

use std::cell::Cell;

use super::Mask;
use crate::model::Activation;

thread_local! {
    static FLOPS: Cell<u64> = const { Cell::new(0) };
}

/// FLOPs this thread's matmul-like ops performed since the last call (one
/// multiply-add = 2; layernorm, softmax and activations are not counted, as
/// in `cost`). Resets the count; lets tests check the cost model against
/// what the forward pass actually did.
pub fn take_flops() -> u64 {
    FLOPS.with(|f| f.replace(0))
}

/// Adds FLOPs done outside these ops (the KV cache's one-row attention).
pub fn count_flops(flops: usize) {
    FLOPS.with(|f| f.set(f.get() + flops as u64));
}

/// `x[t] = wte[ids[t]] + wpe[t]` (shaders/embed.wgsl). Ids must be < vocab.
pub fn embed(ids: &[u32], wte: &[f32], wpe: &[f32], d: usize) -> Vec<f32> {
    embed_from(ids, wte, wpe, d, 0)
}

/// [`embed`] for tokens at positions `row0..` (the kernel's `row0`: rows
/// appended after a reused prefix).
pub fn embed_from(ids: &[u32], wte: &[f32], wpe: &[f32], d: usize, row0: usize) -> Vec<f32> {
    let mut x = vec![0.0; ids.len() * d];
    for (t, &id) in ids.iter().enumerate() {
        let tok = &wte[id as usize * d..][..d];
        let pos = &wpe[(row0 + t) * d..][..d];
        for c in 0..d {
            x[t * d + c] = tok[c] + pos[c];
        }
    }
    x
}

/// `x[t] = wte[ids[t]]`: the token rows alone (RoPE models add no positions).
pub fn embed_tokens(ids: &[u32], wte: &[f32], d: usize) -> Vec<f32> {
    ids.iter().flat_map(|&id| wte[id as usize * d..][..d].iter().copied()).collect()
}

/// Row-wise RMSNorm as Hugging Face's `LlamaRMSNorm`: `x / √(mean(x²) + ε) · gain`.
pub fn rmsnorm(x: &[f32], gain: &[f32], d: usize, eps: f32) -> Vec<f32> {
    let mut y = vec![0.0; x.len()];
    for (row_in, row_out) in x.chunks_exact(d).zip(y.chunks_exact_mut(d)) {
        let mean_sq = row_in.iter().map(|v| v * v).sum::<f32>() / d as f32;
        let inv = 1.0 / (mean_sq + eps).sqrt();
        for c in 0..d {
            row_out[c] = row_in[c] * inv * gain[c];
        }
    }
    y
}

/// RoPE in Hugging Face's rotate-half convention, in place: in each of
/// `rows` rows (`stride` apart, row r at position `row0 + r`), each of the
/// `n_heads` head slices of width `d_head` at the row's start has element
/// `c < d_head/2` paired with `c + d_head/2` and rotated by the angle
/// `position · inv_freq[c]` (computed in f32, as `transformers` does).
pub fn rope(x: &mut [f32], rows: usize, stride: usize, n_heads: usize, d_head: usize, row0: usize, inv_freq: &[f32]) {
    let half = d_head / 2;
    for r in 0..rows {
        let position = (row0 + r) as f32;
        for h in 0..n_heads {
            let head = &mut x[r * stride + h * d_head..][..d_head];
            for c in 0..half {
                let (sin, cos) = rope_angle(position, inv_freq[c]).sin_cos();
                let (a, b) = (head[c], head[c + half]);
                head[c] = a * cos - b * sin;
                head[c + half] = b * cos + a * sin;
            }
        }
    }
}

/// The angle of pair c at a position: `position · inv_freq[c]` in f32.
fn rope_angle(position: f32, inv_freq: f32) -> f32 {
    position * inv_freq
}

/// The cos/sin table shaders/rope.wgsl reads: row r (position r, for
/// `positions` rows) holds cos of each pair's angle, then its sin
/// (`2·inv_freq.len()` = d_head values), the numbers [`rope`] uses.
pub fn rope_table(inv_freq: &[f32], positions: usize) -> Vec<f32> {
    let mut table = Vec::with_capacity(positions * 2 * inv_freq.len());
    for r in 0..positions {
        let angles = inv_freq.iter().map(|&f| rope_angle(r as f32, f).sin_cos());
        let (sin, cos): (Vec<f32>, Vec<f32>) = angles.unzip();
        table.extend(cos);
        table.extend(sin);
    }
    table
}

/// SwiGLU: rows of `[gate | up]` (each `m` wide) to `silu(gate)·up`, `m` wide.
pub fn swiglu(gate_up: &[f32], m: usize) -> Vec<f32> {
    let mut y = Vec::with_capacity(gate_up.len() / 2);
    for row in gate_up.chunks_exact(2 * m) {
        let (gate, up) = row.split_at(m);
        y.extend(gate.iter().zip(up).map(|(&g, &u)| g / (1.0 + (-g).exp()) * u));
    }
    y
}

/// Row-wise layernorm with biased variance, as GPT-2 (shaders/layernorm.wgsl).
pub fn layernorm(x: &[f32], gain: &[f32], bias: &[f32], d: usize, eps: f32) -> Vec<f32> {
    let mut y = vec![0.0; x.len()];
    for (row_in, row_out) in x.chunks_exact(d).zip(y.chunks_exact_mut(d)) {
        let mean = row_in.iter().sum::<f32>() / d as f32;
        let var = row_in.iter().map(|v| (v - mean) * (v - mean)).sum::<f32>() / d as f32;
        let inv = 1.0 / (var + eps).sqrt();
        for c in 0..d {
            row_out[c] = (row_in[c] - mean) * inv * gain[c] + bias[c];
        }
    }
    y
}

/// `y[M×N] = x[M×K] · w[K×N] + b[N]` (shaders/matmul_bias.wgsl).
pub fn matmul_bias(x: &[f32], w: &[f32], b: &[f32], m: usize, k: usize, n: usize) -> Vec<f32> {
    count_flops(2 * m * k * n);
    let mut y = vec![0.0; m * n];
    for i in 0..m {
        let out = &mut y[i * n..][..n];
        out.copy_from_slice(&b[..n]);
        for kk in 0..k {
            let xv = x[i * k + kk];
            let w_row = &w[kk * n..][..n];
            for j in 0..n {
                out[j] += xv * w_row[j];
            }
        }
    }
    y
}

/// Scores of every head from the fused `qkv[T×3d]` (Q, K, V side by side,
/// head h in columns h·d_head..). Returns `(raw, masked)`, each `[H×T×T]`:
/// raw = Q·Kᵀ; masked = raw / √d_head, or −∞ where the mask forbids
/// (the first two steps of shaders/attention_rows.wgsl).
pub fn attention_scores(qkv: &[f32], t: usize, n_head: usize, d_head: usize, mask: Mask) -> (Vec<f32>, Vec<f32>) {
    let d = n_head * d_head;
    let scale = 1.0 / (d_head as f32).sqrt();
    count_flops(2 * n_head * t * t * d_head);
    let mut raw = vec![0.0; n_head * t * t];
    let mut masked = vec![0.0; n_head * t * t];
    for h in 0..n_head {
        for i in 0..t {
            let q = &qkv[i * 3 * d + h * d_head..][..d_head];
            for j in 0..t {
                let k = &qkv[j * 3 * d + d + h * d_head..][..d_head];
                let s: f32 = q.iter().zip(k).map(|(a, b)| a * b).sum();
                let at = (h * t + i) * t + j;
                raw[at] = s;
                masked[at] = if mask.allows(i, j) { s * scale } else { f32::NEG_INFINITY };
            }
        }
    }
    (raw, masked)
}

/// Numerically stable softmax of each row of length `n`; a row that is all
/// −∞ gives all zeros, never NaN (the softmax step of shaders/attention_rows.wgsl).
pub fn softmax_rows(scores: &[f32], n: usize) -> Vec<f32> {
    let mut out = vec![0.0; scores.len()];
    for (row_in, row_out) in scores.chunks_exact(n).zip(out.chunks_exact_mut(n)) {
        let max = row_in.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        if max == f32::NEG_INFINITY {
            continue;
        }
        let mut sum = 0.0;
        for (o, &s) in row_out.iter_mut().zip(row_in) {
            *o = (s - max).exp();
            sum += *o;
        }
        for o in row_out.iter_mut() {
            *o /= sum;
        }
    }
    out
}

/// Each head's weighted sum of values, written side by side: `out[T×d]` with
/// head h in columns h·d_head.. (the A·V step of shaders/attention_rows.wgsl and
/// shaders/flash_attention.wgsl).
/// `weights` is `[H×T×T]`, `qkv` the fused `[T×3d]` projection.
pub fn weighted_sum(weights: &[f32], qkv: &[f32], t: usize, n_head: usize, d_head: usize) -> Vec<f32> {
    let d = n_head * d_head;
    count_flops(2 * n_head * t * t * d_head);
    let mut out = vec![0.0; t * d];
    for h in 0..n_head {
        for i in 0..t {
            let w_row = &weights[(h * t + i) * t..][..t];
            let o = &mut out[i * d + h * d_head..][..d_head];
            for (j, &w) in w_row.iter().enumerate() {
                let v = &qkv[j * 3 * d + 2 * d + h * d_head..][..d_head];
                for c in 0..d_head {
                    o[c] += w * v[c];
                }
            }
        }
    }
    out
}

/// The MLP non-linearity, in place.
pub fn activate(x: &mut [f32], activation: Activation) {
    match activation {
        Activation::GeluTanh => {
            const C: f32 = 0.797_884_6; // √(2/π)
            for v in x.iter_mut() {
                *v = 0.5 * *v * (1.0 + (C * (*v + 0.044_715 * *v * *v * *v)).tanh());
            }
        }
        Activation::Gelu => {
            for v in x.iter_mut() {
                *v = 0.5 * *v * (1.0 + libm::erff(*v / std::f32::consts::SQRT_2));
            }
        }
        Activation::Relu => x.iter_mut().for_each(|v| *v = v.max(0.0)),
        Activation::Silu => x.iter_mut().for_each(|v| *v /= 1.0 + (-*v).exp()),
    }
}

/// `a + b`, elementwise (the residual connection).
pub fn add(a: &[f32], b: &[f32]) -> Vec<f32> {
    a.iter().zip(b).map(|(x, y)| x + y).collect()
}

/// `logits[T×V] = x[T×d] · wteᵀ` (the tied LM head; wte is `[V×d]`).
pub fn lm_head(x: &[f32], wte: &[f32], t: usize, d: usize, vocab: usize) -> Vec<f32> {
    count_flops(2 * t * d * vocab);
    let mut logits = vec![0.0; t * vocab];
    for i in 0..t {
        let row = &x[i * d..][..d];
        for (v, out) in logits[i * vocab..][..vocab].iter_mut().enumerate() {
            *out = row.iter().zip(&wte[v * d..][..d]).map(|(a, b)| a * b).sum();
        }
    }
    logits
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn softmax_of_fully_masked_row_is_zero_not_nan() {
        let out = softmax_rows(&[f32::NEG_INFINITY; 3], 3);
        assert_eq!(out, vec![0.0; 3]);
    }

    #[test]
    fn softmax_is_stable_for_large_scores() {
        let out = softmax_rows(&[1000.0, 1000.0, f32::NEG_INFINITY], 3);
        assert_eq!(out, vec![0.5, 0.5, 0.0]);
    }

    #[test]
    fn matmul_bias_matches_hand_computation() {
        // [1 2] · [[1 0 2] [0 1 3]] + [1 1 1] = [2 3 9]
        let y = matmul_bias(&[1.0, 2.0], &[1.0, 0.0, 2.0, 0.0, 1.0, 3.0], &[1.0; 3], 1, 2, 3);
        assert_eq!(y, vec![2.0, 3.0, 9.0]);
    }

    #[test]
    fn gelu_forms_agree_closely_and_relu_clips() {
        let xs = [-3.0, -1.0, -0.1, 0.0, 0.5, 2.0];
        let (mut tanh, mut erf, mut relu) = (xs.to_vec(), xs.to_vec(), xs.to_vec());
        activate(&mut tanh, Activation::GeluTanh);
        activate(&mut erf, Activation::Gelu);
        activate(&mut relu, Activation::Relu);
        for ((a, b), x) in tanh.iter().zip(&erf).zip(xs) {
            assert!((a - b).abs() < 1e-3, "gelu({x}): tanh {a} vs erf {b}");
        }
        assert!((erf[4] - 0.345_731_3).abs() < 1e-6, "gelu(0.5) = {}", erf[4]);
        assert_eq!(relu, vec![0.0, 0.0, 0.0, 0.0, 0.5, 2.0]);
    }

    #[test]
    fn weighted_sum_picks_values_by_weight() {
        // T=2, one head of width 1: V = [10, 20]; row 1 weights [0.25, 0.75] → 17.5.
        let qkv = [0.0, 0.0, 10.0, 0.0, 0.0, 20.0];
        let out = weighted_sum(&[1.0, 0.0, 0.25, 0.75], &qkv, 2, 1, 1);
        assert_eq!(out, vec![10.0, 17.5]);
    }

    #[test]
    fn rmsnorm_gives_unit_root_mean_square() {
        let y = rmsnorm(&[3.0, -4.0], &[1.0, 2.0], 2, 0.0);
        // rms = √12.5; gains 1 and 2.
        let rms = 12.5f32.sqrt();
        assert!((y[0] - 3.0 / rms).abs() < 1e-6 && (y[1] + 8.0 / rms).abs() < 1e-6, "{y:?}");
    }

    #[test]
    fn rope_rotates_pairs_half_a_head_apart_by_position() {
        // One head of width 4: pairs (0, 2) and (1, 3), frequencies 1 and 0.5.
        let mut x = [1.0, 1.0, 0.0, 0.0, /* row 1 */ 1.0, 1.0, 0.0, 0.0];
        rope(&mut x, 2, 4, 1, 4, 0, &[1.0, 0.5]);
        assert_eq!(&x[..4], &[1.0, 1.0, 0.0, 0.0], "position 0 is not rotated");
        let want = [1f32.cos(), 0.5f32.cos(), 1f32.sin(), 0.5f32.sin()];
        assert!(x[4..].iter().zip(want).all(|(a, b)| (a - b).abs() < 1e-6), "{x:?}");
        // A rotation keeps the length, and dot products depend on the offset only.
        let (mut a, mut b) = ([0.3, -0.7, 0.2, 0.9], [0.5, 0.1, -0.4, 0.8]);
        let dot = |a: &[f32], b: &[f32]| a.iter().zip(b).map(|(x, y)| x * y).sum::<f32>();
        let (mut a2, mut b2) = (a, b);
        rope(&mut a, 1, 4, 1, 4, 5, &[1.0, 0.1]);
        rope(&mut b, 1, 4, 1, 4, 3, &[1.0, 0.1]);
        rope(&mut a2, 1, 4, 1, 4, 12, &[1.0, 0.1]);
        rope(&mut b2, 1, 4, 1, 4, 10, &[1.0, 0.1]);
        assert!((dot(&a, &b) - dot(&a2, &b2)).abs() < 1e-5);
    }

    #[test]
    fn swiglu_gates_up_by_silu_of_gate() {
        let y = swiglu(&[0.0, 2.0, /* up */ 5.0, 3.0], 2);
        let silu2 = 2.0 / (1.0 + (-2.0f32).exp());
        assert_eq!(y, vec![0.0, silu2 * 3.0]);
    }

    #[test]
    fn layernorm_output_has_zero_mean_unit_variance() {
        let y = layernorm(&[1.0, 2.0, 3.0, 4.0], &[1.0; 4], &[0.0; 4], 4, 0.0);
        let mean: f32 = y.iter().sum::<f32>() / 4.0;
        let var: f32 = y.iter().map(|v| v * v).sum::<f32>() / 4.0;
        assert!(mean.abs() < 1e-6 && (var - 1.0).abs() < 1e-5);
    }
}
