//! Every WGSL kernel against its CPU reference (engine::ops) on random shapes,
//! through wgpu on whatever adapter is present (lavapipe in CI).
#![cfg(not(target_arch = "wasm32"))]

mod common;

use attnscope::engine::{ops, Mask};
use attnscope::gpu::{read_f32, GpuContext, Kernels};
use common::{assert_close, gpu};
use proptest::prelude::*;
use wgpu::util::DeviceExt;

#[path = "common/buffers.rs"]
mod buffers;
use buffers::{output, upload};

fn kernels() -> &'static Kernels {
    static K: std::sync::OnceLock<Kernels> = std::sync::OnceLock::new();
    K.get_or_init(|| Kernels::new(gpu()))
}

fn submit_and_read(
    ctx: &GpuContext,
    encode: impl FnOnce(&mut wgpu::CommandEncoder),
    out: &wgpu::Buffer,
    len: usize,
) -> Vec<f32> {
    let mut enc = ctx.device.create_command_encoder(&Default::default());
    encode(&mut enc);
    ctx.queue.submit([enc.finish()]);
    let values = pollster::block_on(read_f32(ctx, out, 0, len)).expect("readback");
    assert_eq!(ctx.fault(), None, "the GPU reported an error");
    values
}

fn vector(len: usize, scale: f32) -> impl Strategy<Value = Vec<f32>> {
    prop::collection::vec(-scale..scale, len)
}

fn mask_strategy() -> impl Strategy<Value = Mask> {
    prop_oneof![Just(Mask::Causal), Just(Mask::Bidirectional), (1u32..6).prop_map(Mask::Window)]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn matmul_bias_matches_cpu((m, k, n, x, w, b) in (1usize..140, 1usize..70, 1usize..140).prop_flat_map(|(m, k, n)| {
        (Just(m), Just(k), Just(n), vector(m * k, 2.0), vector(k * n, 2.0), vector(n, 1.0))
    })) {
        let ctx = gpu();
        let (xb, wb, bb, yb) = (upload(ctx, &x), upload(ctx, &w), upload(ctx, &b), output(ctx, m * n));
        let got = submit_and_read(ctx, |enc| {
            kernels().matmul_bias(ctx, enc, &xb, &wb, &bb, &yb, (m, k, n)).unwrap();
        }, &yb, m * n);
        assert_close(&got, &ops::matmul_bias(&x, &w, &b, m, k, n), &format!("matmul {m}x{k}x{n}"));
    }

    #[test]
    fn layernorm_matches_cpu((rows, d, x, g, b) in (1usize..40, 1usize..130).prop_flat_map(|(rows, d)| {
        (Just(rows), Just(d), vector(rows * d, 3.0), vector(d, 1.5), vector(d, 0.5))
    })) {
        let ctx = gpu();
        let (xb, gb, bb, yb) = (upload(ctx, &x), upload(ctx, &g), upload(ctx, &b), output(ctx, rows * d));
        let got = submit_and_read(ctx, |enc| {
            kernels().layernorm(ctx, enc, &xb, &gb, &bb, &yb, rows, d, 1e-5).unwrap();
        }, &yb, rows * d);
        assert_close(&got, &ops::layernorm(&x, &g, &b, d, 1e-5), &format!("layernorm {rows}x{d}"));
    }

    #[test]
    fn embed_matches_cpu((vocab, d, t, wte, wpe, ids) in (1usize..50, 1usize..70, 1usize..40).prop_flat_map(|(v, d, t)| {
        (Just(v), Just(d), Just(t), vector(v * d, 1.0), vector(t * d, 1.0), prop::collection::vec(0..v as u32, t))
    })) {
        let ctx = gpu();
        let ids_buf = ctx.device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
            label: None, contents: bytemuck::cast_slice(&ids), usage: wgpu::BufferUsages::STORAGE,
        });
        let (teb, peb, xb) = (upload(ctx, &wte), upload(ctx, &wpe), output(ctx, t * d));
        let got = submit_and_read(ctx, |enc| {
            kernels().embed(ctx, enc, &ids_buf, &teb, &peb, &xb, t, d).unwrap();
        }, &xb, t * d);
        prop_assert_eq!(vocab > 0, true);
        assert_close(&got, &ops::embed(&ids, &wte, &wpe, d), &format!("embed T={t} d={d}"));
    }

    #[test]
    fn attention_scores_match_cpu((t, n_head, d_head, mask, qkv) in
        (1usize..80, 1usize..4, prop::sample::select(vec![8usize, 16, 64, 80]), mask_strategy())
            .prop_flat_map(|(t, h, dh, mask)| (Just(t), Just(h), Just(dh), Just(mask), vector(t * 3 * h * dh, 0.5)))
    ) {
        let ctx = gpu();
        let len = n_head * t * t;
        let (qb, rawb, maskedb) = (upload(ctx, &qkv), output(ctx, len), output(ctx, len));
        let mut enc = ctx.device.create_command_encoder(&Default::default());
        kernels().attn_scores(ctx, &mut enc, &qb, &rawb, &maskedb, (t, n_head, d_head), mask).unwrap();
        ctx.queue.submit([enc.finish()]);
        let raw = pollster::block_on(read_f32(ctx, &rawb, 0, len)).unwrap();
        let masked = pollster::block_on(read_f32(ctx, &maskedb, 0, len)).unwrap();
        let (raw_cpu, masked_cpu) = ops::attention_scores(&qkv, t, n_head, d_head, mask);
        let what = format!("scores T={t} H={n_head} d_head={d_head} {mask:?}");
        assert_close(&raw, &raw_cpu, &format!("raw {what}"));
        assert_close(&masked, &masked_cpu, &format!("masked {what}"));
    }

    #[test]
    fn weighted_sum_matches_cpu((t, n_head, d_head, weights, qkv) in
        (1usize..80, 1usize..4, prop::sample::select(vec![8usize, 16, 64, 80]))
            .prop_flat_map(|(t, h, dh)| (Just(t), Just(h), Just(dh), vector(h * t * t, 1.0), vector(t * 3 * h * dh, 1.0)))
    ) {
        let ctx = gpu();
        let d = n_head * d_head;
        let (wb, qb, ob) = (upload(ctx, &weights), upload(ctx, &qkv), output(ctx, t * d));
        let got = submit_and_read(ctx, |enc| {
            kernels().weighted_sum(ctx, enc, &wb, &qb, &ob, (t, n_head, d_head)).unwrap();
        }, &ob, t * d);
        assert_close(&got, &ops::weighted_sum(&weights, &qkv, t, n_head, d_head), &format!("W·V T={t} H={n_head} d_head={d_head}"));
    }

    #[test]
    fn softmax_rows_match_cpu((rows, n, scores) in (1usize..60, 1usize..90).prop_flat_map(|(rows, n)| {
        // About one entry in four masked, so some rows are fully masked.
        (Just(rows), Just(n), prop::collection::vec(prop_oneof![3 => -20.0f32..20.0, 1 => Just(f32::NEG_INFINITY)], rows * n))
    })) {
        let ctx = gpu();
        let (sb, wb) = (upload(ctx, &scores), output(ctx, rows * n));
        let got = submit_and_read(ctx, |enc| {
            kernels().softmax_rows(ctx, enc, &sb, &wb, rows, n).unwrap();
        }, &wb, rows * n);
        prop_assert!(got.iter().all(|w| w.is_finite()), "no NaN or ∞ in weights");
        assert_close(&got, &ops::softmax_rows(&scores, n), &format!("softmax {rows}x{n}"));
    }
}

#[test]
fn softmax_of_large_scores_is_stable_on_gpu() {
    let ctx = gpu();
    let scores = [1000.0, 1000.0, f32::NEG_INFINITY, -1000.0];
    let (sb, wb) = (upload(ctx, &scores), output(ctx, 4));
    let got = submit_and_read(ctx, |enc| kernels().softmax_rows(ctx, enc, &sb, &wb, 1, 4).unwrap(), &wb, 4);
    assert_close(&got, &[0.5, 0.5, 0.0, 0.0], "softmax of ±1000");
}

#[test]
fn too_many_workgroups_is_an_error_not_a_crash() {
    let ctx = gpu();
    let limit = ctx.device.limits().max_compute_workgroups_per_dimension as usize;
    let (a, b) = (output(ctx, 1), output(ctx, 1));
    let mut enc = ctx.device.create_command_encoder(&Default::default());
    let rows = (limit + 1) * 64;
    let err = kernels().softmax_rows(ctx, &mut enc, &a, &b, rows, 1).unwrap_err();
    assert!(err.to_string().contains("workgroups"), "{err}");
}
