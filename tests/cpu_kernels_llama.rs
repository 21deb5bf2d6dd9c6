//! The Llama family's fast CPU kernels equal their plain-loop references on
//! random shapes: RMSNorm, SwiGLU and SiLU (`engine::kernels` against
//! `engine::ops`), and grouped-query attention, checked against full
//! multi-head attention on K and V repeated per query head (what
//! `transformers`' `repeat_kv` does), through the plain-loop reference.
//! Runs natively; the same file builds for wasm.
//!
//! Tolerance as in tests/cpu_kernels.rs: 1e−5·(1 + Σ|terms|), reordered
//! float sums and the vectorised exp (within 2 ulp of std's).

#[path = "common/cpu.rs"]
mod cpu;

use attnscope::engine::kernels::{self, AttentionRows, QkvRows};
use attnscope::engine::sampling::Rng;
use attnscope::engine::{ops, Mask};
use attnscope::model::Activation;
use cpu::{pick, values, Scores};

#[cfg(target_arch = "wasm32")]
use wasm_bindgen_test::wasm_bindgen_test as test;
#[cfg(target_arch = "wasm32")]
wasm_bindgen_test::wasm_bindgen_test_configure!(run_in_browser);

const TOL: f32 = 1e-5;

fn assert_close(got: &[f32], want: &[f32], scale: f32, what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        assert!((g - w).abs() <= TOL * (1.0 + scale + w.abs()), "{what}[{i}]: {g} vs reference {w}");
    }
}

#[test]
fn rmsnorm_equals_the_reference_on_random_shapes() {
    let mut rng = Rng::new(41);
    for _ in 0..60 {
        let (rows, d) = (pick(&mut rng, 1, 9), pick(&mut rng, 1, 700));
        let (x, gain) = (values(&mut rng, rows * d, 3.0), values(&mut rng, d, 2.0));
        let eps = [1e-5, 1e-6, 0.1][pick(&mut rng, 0, 2)];
        let what = format!("{rows}×{d} ε={eps}");
        assert_close(&kernels::rmsnorm(&x, &gain, d, eps), &ops::rmsnorm(&x, &gain, d, eps), 1.0, &what);
    }
}

#[test]
fn swiglu_and_silu_equal_the_reference_on_random_shapes() {
    let mut rng = Rng::new(42);
    for _ in 0..60 {
        let (rows, m) = (pick(&mut rng, 1, 7), pick(&mut rng, 1, 600));
        let gate_up = values(&mut rng, rows * 2 * m, 12.0);
        let want = ops::swiglu(&gate_up, m);
        assert_close(&kernels::swiglu(&gate_up, m), &want, 1.0, &format!("swiglu {rows}×{m}"));
        let (mut fast, mut reference) = (gate_up.clone(), gate_up);
        kernels::activate(&mut fast, Activation::Silu);
        ops::activate(&mut reference, Activation::Silu);
        assert_close(&fast, &reference, 1.0, &format!("silu {rows}×{m}"));
    }
}

/// `qkv` with `n_kv` KV heads rewritten with one K and V per query head
/// (KV head g repeated `group` times), as full multi-head attention reads it.
fn repeat_kv(qkv: &[f32], t: usize, (n_head, n_kv, d_head): (usize, usize, usize)) -> Vec<f32> {
    let (q_dim, kv_dim, group) = (n_head * d_head, n_kv * d_head, n_head / n_kv);
    let width = q_dim + 2 * kv_dim;
    let mut out = Vec::with_capacity(t * 3 * q_dim);
    for row in qkv.chunks_exact(width).take(t) {
        out.extend_from_slice(&row[..q_dim]);
        for part in [&row[q_dim..q_dim + kv_dim], &row[q_dim + kv_dim..]] {
            for h in 0..n_head {
                out.extend_from_slice(&part[h / group * d_head..][..d_head]);
            }
        }
    }
    out
}

#[test]
fn grouped_attention_equals_full_attention_on_repeated_kv_heads() {
    let mut rng = Rng::new(43);
    for case in 0..50 {
        let n_kv = pick(&mut rng, 1, 3);
        let group = [1, 2, 3, 9][pick(&mut rng, 0, 3)];
        let n_head = n_kv * group;
        let (t, d_head) = (pick(&mut rng, 1, 30), [2, 8, 16, 64][pick(&mut rng, 0, 3)]);
        let mask = if case % 3 == 2 { Mask::Window(pick(&mut rng, 1, 5) as u32) } else { Mask::Causal };
        let row0 = pick(&mut rng, 0, t - 1);
        let (q_dim, kv_dim) = (n_head * d_head, n_kv * d_head);
        let qkv = values(&mut rng, t * (q_dim + 2 * kv_dim), 1.0);
        let shape = AttentionRows { row0, m: t - row0, t, n_head, d_head, mask };
        let qkv_rows = QkvRows::fused_grouped(&qkv, q_dim, kv_dim, group);
        let Scores { raw, weights, out, .. } = Scores::run(&shape, &qkv_rows, t, q_dim);
        let full = repeat_kv(&qkv, t, (n_head, n_kv, d_head));
        let (raw_ref, masked_ref) = ops::attention_scores(&full, t, n_head, d_head, mask);
        let weights_ref = ops::softmax_rows(&masked_ref, t);
        let out_ref = ops::weighted_sum(&weights_ref, &full, t, n_head, d_head);
        let what = format!("T={t} rows {row0}.. H={n_head} over {n_kv} d_head={d_head} {mask:?}");
        for h in 0..n_head {
            for i in row0..t {
                let at = (h * t + i) * t;
                let scale = d_head as f32;
                assert_close(&raw[at..at + t], &raw_ref[at..at + t], scale, &format!("raw h{h} row {i} {what}"));
                assert_close(&weights[at..at + t], &weights_ref[at..at + t], 0.0, &format!("w h{h} row {i} {what}"));
            }
        }
        assert_close(&out[row0 * q_dim..], &out_ref[row0 * q_dim..], 1.0, &format!("A·V {what}"));
    }
}
