//! The Llama family's GPU kernels against the CPU reference (`engine::ops`),
//! through wgpu on whatever adapter is present (lavapipe in CI): RMSNorm in
//! both matmul kernels' prologue and in layernorm.wgsl, the token gather
//! without positions (embed.wgsl), RoPE (rope.wgsl, with the trace's
//! pre-rotation copy) and SwiGLU (swiglu.wgsl), on odd shapes.
#![cfg(not(target_arch = "wasm32"))]

mod common;

use attnscope::engine::ops;
use attnscope::gpu::{EmbedParams, Kernel, LayernormParams, MatmulFusion, MatmulParams, RopeParams, SwigluParams};
use common::kernels::{read, run};
use common::{assert_close, gpu, Lcg};

#[path = "common/buffers.rs"]
mod buffers;
use buffers::{output, upload};

#[test]
fn rmsnorm_prologue_of_both_matmuls_and_the_norm_kernel_equal_the_reference() {
    let ctx = gpu();
    let mut rng = Lcg(11);
    for (row0, m, k, n) in [(0, 1, 8, 5), (2, 3, 33, 17), (0, 70, 64, 65), (5, 4, 576, 40)] {
        let rows = row0 + m;
        let (x, w) = (rng.vec(rows * k, 2.0), rng.vec(k * n, 0.5));
        let mut ln = rng.vec(k, 1.0);
        ln.extend(vec![0.0; k]); // RMSNorm has no bias: zeros, as the weights load
        let normed = ops::rmsnorm(&x[row0 * k..], &ln[..k], k, 1e-5);
        let want = ops::matmul_bias(&normed, &w, &vec![0.0; n], m, k, n);
        let (xb, wb, lb) = (upload(ctx, &x), upload(ctx, &w), upload(ctx, &ln));
        let (dummy, dummy_out) = (upload(ctx, &[0.0; 4]), output(ctx, 4));
        for kernel in [Kernel::MatmulBias, Kernel::MatmulSkinny] {
            if kernel == Kernel::MatmulSkinny && m > 16 {
                continue;
            }
            let fusion = MatmulFusion { layernorm: Some(1e-5), rms: true, write_ln: true, ..Default::default() };
            let params = MatmulParams::new((m, k, n), fusion).rows_from(row0, 0);
            let (yb, lnb) = (output(ctx, m * n), output(ctx, rows * k));
            run(
                kernel,
                &params,
                &[&xb, &wb, &dummy, &yb, &dummy, &lb, &lnb, &dummy_out],
                params.workgroups_for(kernel),
            );
            let what = format!("{kernel:?} rows {row0}+{m}, {k}×{n}");
            assert_close(&read(&yb, 0, m * n), &want, &format!("y {what}"));
            assert_close(&read(&lnb, row0 * k, m * k), &normed, &format!("ln_out {what}"));
        }
        let lp = LayernormParams { rows: m as u32, d: k as u32, eps: 1e-5, row0: row0 as u32, rms: 1, _pad: [0; 3] };
        let yb = output(ctx, rows * k);
        run(Kernel::Layernorm, &lp, &[&xb, &lb, &yb], lp.workgroups());
        assert_close(&read(&yb, row0 * k, m * k), &normed, &format!("layernorm.wgsl rms rows {row0}+{m}, d={k}"));
    }
}

#[test]
fn token_rows_without_positions_equal_the_reference() {
    let ctx = gpu();
    let mut rng = Lcg(12);
    let (vocab, d, ids) = (9, 10, [3u32, 0, 8, 8, 1]);
    let wte = rng.vec(vocab * d, 1.0);
    let (idb, teb, peb, xb) = (ctx_ids(&ids), upload(ctx, &wte), upload(ctx, &[0.0; 4]), output(ctx, ids.len() * d));
    let ep = EmbedParams { m: 4, d: d as u32, row0: 1, v0: 0, vn: vocab as u32, positions: 0, half: 0, _pad: 0 };
    run(Kernel::Embed, &ep, &[&idb, &teb, &peb, &xb], ep.workgroups());
    let want = ops::embed_tokens(&ids[1..], &wte, d);
    assert_close(&read(&xb, d, 4 * d), &want, "embed without positions");
}

fn ctx_ids(ids: &[u32]) -> wgpu::Buffer {
    use wgpu::util::DeviceExt;
    gpu().device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
        label: None,
        contents: bytemuck::cast_slice(ids),
        usage: wgpu::BufferUsages::STORAGE,
    })
}

#[test]
fn rope_equals_the_reference_and_keeps_the_slices_before_it() {
    let ctx = gpu();
    let mut rng = Lcg(13);
    // (rows, first row, query heads, KV heads, d_head, θ)
    for (rows, row0, n_head, n_kv, d_head, theta) in
        [(1, 0, 1, 1, 2, 10.0), (7, 3, 9, 3, 64, 1e5), (5, 120, 4, 2, 128, 5e5)]
    {
        let stride = (n_head + 2 * n_kv) * d_head;
        let total = row0 + rows;
        let qkv = rng.vec(total * stride, 1.0);
        let inv_freq: Vec<f32> =
            (0..d_head / 2).map(|i| 1.0 / (theta as f32).powf((2 * i) as f32 / d_head as f32)).collect();
        let table = ops::rope_table(&inv_freq, total);
        let heads = n_head + n_kv;
        let mut want = qkv[row0 * stride..].to_vec();
        ops::rope(&mut want, rows, stride, heads, d_head, row0, &inv_freq);
        let (qb, tb, pb) = (upload(ctx, &qkv), upload(ctx, &table), output(ctx, total * heads * d_head));
        let params = RopeParams::new(rows, row0, stride, heads, d_head, true);
        run(Kernel::Rope, &params, &[&qb, &tb, &pb], params.workgroups());
        let what = format!("rows {row0}+{rows}, {n_head}+{n_kv} heads of {d_head}");
        assert_close(&read(&qb, row0 * stride, rows * stride), &want, &format!("rope {what}"));
        let pre: Vec<f32> = qkv[row0 * stride..].chunks(stride).flat_map(|r| r[..heads * d_head].to_vec()).collect();
        assert_close(&read(&pb, row0 * heads * d_head, rows * heads * d_head), &pre, &format!("pre {what}"));
    }
}

#[test]
fn swiglu_equals_the_reference() {
    let ctx = gpu();
    let mut rng = Lcg(14);
    for (rows, row0, m) in [(1, 0, 1), (3, 2, 37), (2, 0, 1536)] {
        let gate_up = rng.vec((row0 + rows) * 2 * m, 20.0);
        let want = ops::swiglu(&gate_up[row0 * 2 * m..], m);
        let (gb, ob) = (upload(ctx, &gate_up), output(ctx, (row0 + rows) * m));
        let params = SwigluParams { rows: rows as u32, m: m as u32, row0: row0 as u32, _pad: 0 };
        run(Kernel::Swiglu, &params, &[&gb, &ob], params.workgroups());
        assert_close(&read(&ob, row0 * m, rows * m), &want, &format!("swiglu rows {row0}+{rows}, m={m}"));
    }
}
