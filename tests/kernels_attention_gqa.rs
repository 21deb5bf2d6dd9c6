//! Grouped KV heads in the attention kernels (attention_rows.wgsl,
//! flash_attention.wgsl, flash_rows.wgsl): query head h reads KV head h / (n_head / n_kv_head)
//! from a fused projection Q (n_head·d_head) | K | V (n_kv_head·d_head each),
//! against the CPU twin with the same signature (engine::kernels::attention_rows
//! over `QkvRows::fused_grouped`, itself checked against full multi-head
//! attention on repeated KV heads in tests/cpu_kernels_llama.rs), on KV
//! ratios 1, 3 and 9 and head widths 64 and 128, through wgpu on whatever
//! adapter is present (lavapipe in CI).
#![cfg(not(target_arch = "wasm32"))]

mod common;

use attnscope::engine::kernels::{AttentionRows, QkvRows};
use attnscope::engine::Mask;
use attnscope::gpu::{AttentionShape, Kernel};
use common::cpu::Scores;
use common::kernels::{read, run};
use common::{assert_close, gpu, Lcg};

#[path = "common/buffers.rs"]
mod buffers;
use buffers::{output, upload};

/// (T, KV heads, query heads per KV head, d_head, first row, mask).
const CASES: [(usize, usize, usize, usize, usize, Mask); 6] = [
    (1, 1, 9, 64, 0, Mask::Causal),
    (13, 1, 3, 64, 5, Mask::Causal),
    (21, 3, 3, 64, 0, Mask::Window(4)),
    (9, 2, 1, 128, 3, Mask::Bidirectional),
    (17, 1, 9, 128, 16, Mask::Causal),
    (30, 2, 3, 128, 7, Mask::Causal),
];

#[test]
fn grouped_heads_in_both_attention_kernels_equal_the_cpu_twin() {
    let ctx = gpu();
    let mut rng = Lcg(7);
    for (t, n_kv_head, group, d_head, row0, mask) in CASES {
        let n_head = n_kv_head * group;
        let (q_dim, kv_dim) = (n_head * d_head, n_kv_head * d_head);
        let qkv = rng.vec(t * (q_dim + 2 * kv_dim), 0.5);
        let len = n_head * t * t;
        let rows = AttentionRows { row0, m: t - row0, t, n_head, d_head, mask };
        let qkv_rows = QkvRows::fused_grouped(&qkv, q_dim, kv_dim, group);
        let Scores { raw, masked, weights, out, .. } = Scores::run(&rows, &qkv_rows, t, q_dim);
        let what = format!("T={t} rows {row0}.. H={n_head} over {n_kv_head} d_head={d_head} {mask:?}");

        let shape = AttentionShape { m: t - row0, t, n_head, n_kv_head, d_head, row0, mask };
        let qb = upload(ctx, &qkv);
        let (rawb, maskedb, wb, ob) = (output(ctx, len), output(ctx, len), output(ctx, len), output(ctx, t * q_dim));
        run(
            Kernel::AttentionRows,
            &shape.rows_params(t).unwrap(),
            &[&qb, &rawb, &maskedb, &wb, &ob],
            shape.rows_workgroups(),
        );
        assert_close(&read(&rawb, 0, len), &raw, &format!("rows: raw {what}"));
        assert_close(&read(&maskedb, 0, len), &masked, &format!("rows: masked {what}"));
        assert_close(&read(&wb, 0, len), &weights, &format!("rows: weights {what}"));
        assert_close(&read(&ob, 0, t * q_dim), &out, &format!("rows: A·V {what}"));

        let fb = output(ctx, t * q_dim);
        run(Kernel::FlashAttention, &shape.flash_params().unwrap(), &[&qb, &fb], shape.flash_workgroups());
        let from = row0 * q_dim;
        assert_close(&read(&fb, from, t * q_dim - from), &out[from..], &format!("flash: A·V {what}"));

        let rb = output(ctx, t * q_dim);
        run(Kernel::FlashRows, &shape.flash_params().unwrap(), &[&qb, &rb], shape.flash_rows_workgroups());
        assert_close(&read(&rb, from, t * q_dim - from), &out[from..], &format!("flash_rows: A·V {what}"));
    }
}

#[test]
fn kv_heads_that_do_not_divide_the_query_heads_are_refused() {
    let shape = AttentionShape { m: 1, t: 4, n_head: 9, n_kv_head: 2, d_head: 64, row0: 0, mask: Mask::Causal };
    let err = shape.flash_params().unwrap_err().to_string();
    assert!(err.contains("9 query heads over 2 KV heads (they must divide them)"), "{err}");
    let shape = AttentionShape { n_kv_head: 0, ..shape };
    assert!(shape.rows_params(4).is_err());
}
