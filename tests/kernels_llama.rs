//! The Llama family's GPU kernels against the CPU reference (`engine::ops`),
//! through wgpu on whatever adapter is present (lavapipe in CI): RMSNorm in
//! both matmul kernels' prologue and in layernorm.wgsl, the token gather
//! without positions (embed.wgsl), RoPE (rope.wgsl, with the trace's
//! pre-rotation copy) and SwiGLU (the gated matmul pipelines), on odd shapes.
#![cfg(not(target_arch = "wasm32"))]

mod common;

use attnscope::engine::ops;
use attnscope::gpu::{pack_half, EmbedParams, Half, Kernel, LayernormParams, MatmulFusion, MatmulParams, RopeParams};
use attnscope::model::Activation;
use common::close::{Tolerance, KERNEL};
use common::kernels::{read, run};
use common::{assert_close, assert_within, gpu, Lcg};

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

/// The gated matmul pipelines (SwiGLU in the gate|up projection's epilogue)
/// against `ops::swiglu` of the plain reference projection: both kernels,
/// f32 and both 16-bit formats, RMSNorm and bias fused, the scalar and the
/// vec4 tile loads (hidden widths not a multiple of 4 and multiples of it),
/// more than one tile of rows and columns, and `w` read transposed.
#[test]
fn gated_matmul_equals_swiglu_of_the_projection() {
    let ctx = gpu();
    let mut rng = Lcg(14);
    let formats = [None, Some(Half::Bf16), Some(Half::F16)];
    // (first row, rows, K, hidden N, transposed)
    let shapes = [
        (0, 1, 8, 5, false),
        (2, 3, 33, 17, false),
        (0, 70, 64, 36, false),
        (1, 5, 576, 160, false),
        (0, 9, 12, 40, true),
    ];
    for ((row0, m, k, n, transposed), format) in shapes.into_iter().flat_map(|s| formats.map(|f| (s, f))) {
        let rows = row0 + m;
        let x = rng.vec(rows * k, 2.0);
        let round = |v: f32| match format {
            None => v,
            Some(Half::F16) => half::f16::from_f32(v).to_f32(),
            Some(Half::Bf16) => half::bf16::from_f32(v).to_f32(),
        };
        // w_kn: [K × 2N], gate columns then up columns, as the weights load; scaled
        // like a trained projection so |y| stays O(1), where the 1e-4 absolute bound holds.
        let w_kn: Vec<f32> = rng.vec(k * 2 * n, 0.1).into_iter().map(round).collect();
        let w = if transposed { (0..2 * n * k).map(|i| w_kn[(i % k) * 2 * n + i / k]).collect() } else { w_kn.clone() };
        let bias = rng.vec(2 * n, 0.5);
        let mut ln = rng.vec(k, 1.0);
        ln.extend(vec![0.0; k]);
        let normed = ops::rmsnorm(&x[row0 * k..], &ln[..k], k, 1e-5);
        let want = ops::swiglu(&ops::matmul_bias(&normed, &w_kn, &bias, m, k, 2 * n), n);
        let wb = match format {
            None => upload(ctx, &w),
            Some(half) => {
                use wgpu::util::DeviceExt;
                ctx.device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
                    label: None,
                    contents: bytemuck::cast_slice(&pack_half(&w, half)),
                    usage: wgpu::BufferUsages::STORAGE,
                })
            }
        };
        let (xb, bb, lb) = (upload(ctx, &x), upload(ctx, &bias), upload(ctx, &ln));
        let (dummy, dummy_out) = (upload(ctx, &[0.0; 4]), output(ctx, 4));
        let fusion = MatmulFusion {
            layernorm: Some(1e-5),
            rms: true,
            w16: format,
            transposed,
            bias: true,
            activation: Some(Activation::Silu),
            gated: true,
            ..Default::default()
        };
        let params = MatmulParams::new((m, k, n), fusion).rows_from(row0, row0);
        let (tiled, skinny) = match format {
            None => (Kernel::MatmulBiasGated, Kernel::MatmulSkinnyGated),
            Some(_) => (Kernel::MatmulBiasGated16, Kernel::MatmulSkinnyGated16),
        };
        assert_eq!(params.kernel(), if m <= 16 { skinny } else { tiled }, "the gated pipelines are picked");
        for kernel in [tiled, skinny] {
            if kernel == skinny && m > 16 {
                continue;
            }
            let yb = output(ctx, rows * n);
            run(
                kernel,
                &params,
                &[&xb, &wb, &bb, &yb, &dummy, &lb, &dummy_out, &dummy_out],
                params.workgroups_for(kernel),
            );
            let what = format!("{kernel:?} {format:?} rows {row0}+{m}, {k}×2·{n} transposed={transposed}");
            assert_within(&read(&yb, row0 * n, m * n), &want, GATED, &what);
        }
    }
}

/// The gated output is the product of two sums, each within [`KERNEL`] of
/// its twin's (another summation order), so its relative error bound is
/// twice KERNEL's (seen: 1.25e-5 at K = 576).
const GATED: Tolerance = Tolerance { abs: KERNEL.abs, rel: Some(2e-5) };
