//! Both matmul kernels with 16-bit weights (shaders/matmul_weights_16.wgsl:
//! IEEE half or bfloat16 packed two per u32, widened as they are read)
//! against the CPU reference on the same values in f32, on shapes that take
//! the vec4 and the scalar loads, the transposed and the plain layout, with
//! half subnormals; the token gather from a 16-bit table (embed.wgsl with
//! embed_table_16.wgsl); and which format a weight matrix is packed in.
#![cfg(not(target_arch = "wasm32"))]

mod common;

use attnscope::engine::ops;
use attnscope::gpu::{half_format, pack_half, EmbedParams, Half, Kernel, MatmulFusion, MatmulParams};
use common::kernels::{read, run};
use common::{assert_close, gpu, Lcg};
use wgpu::util::DeviceExt;

#[path = "common/buffers.rs"]
mod buffers;
use buffers::{output, upload};

fn round(values: &[f32], format: Half) -> Vec<f32> {
    values
        .iter()
        .map(|&v| match format {
            Half::F16 => half::f16::from_f32(v).to_f32(),
            Half::Bf16 => half::bf16::from_f32(v).to_f32(),
        })
        .collect()
}

#[test]
fn sixteen_bit_weights_give_the_f32_products_of_the_same_values() {
    let ctx = gpu();
    let mut rng = Lcg(21);
    for format in [Half::F16, Half::Bf16] {
        for (m, k, n, transposed) in
            [(1, 8, 4, false), (3, 13, 7, false), (70, 64, 68, false), (2, 576, 40, true), (33, 20, 9, true)]
        {
            let x = rng.vec(m * k, 1.0);
            let mut w = round(&rng.vec(k * n, 0.5), format);
            if format == Half::F16 {
                w[0] = 3.0e-6; // a half subnormal (below 6.1e-5)
                w[1] = -4.5e-7;
                w = round(&w, format);
            }
            match format {
                Half::Bf16 => assert_eq!(half_format(&w), Some(Half::Bf16)),
                Half::F16 => assert!(half_format(&w).is_some(), "every value is a half"),
            }
            let w_kn: Vec<f32> =
                if transposed { (0..k * n).map(|i| w[(i % n) * k + i / n]).collect() } else { w.clone() };
            let want = ops::matmul_bias(&x, &w_kn, &vec![0.0; n], m, k, n);
            let packed = pack_half(&w, format);
            let wb = ctx.device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
                label: None,
                contents: bytemuck::cast_slice(&packed),
                usage: wgpu::BufferUsages::STORAGE,
            });
            let (xb, dummy, dummy_out) = (upload(ctx, &x), upload(ctx, &[0.0; 4]), output(ctx, 4));
            for kernel in [Kernel::MatmulBias16, Kernel::MatmulSkinny16] {
                if kernel == Kernel::MatmulSkinny16 && m > 16 {
                    continue;
                }
                let fusion = MatmulFusion { w16: Some(format), transposed, ..Default::default() };
                let params = MatmulParams::new((m, k, n), fusion);
                assert_eq!(params.kernel() == Kernel::MatmulSkinny16, m <= 16, "the 16-bit pipelines are picked");
                let yb = output(ctx, m * n);
                run(
                    kernel,
                    &params,
                    &[&xb, &wb, &dummy, &yb, &dummy, &dummy, &dummy_out, &dummy_out],
                    params.workgroups_for(kernel),
                );
                assert_close(
                    &read(&yb, 0, m * n),
                    &want,
                    &format!("{kernel:?} {format:?} {m}×{k}×{n} transposed={transposed}"),
                );
            }
        }
    }
}

#[test]
fn weights_are_packed_only_when_every_value_fits() {
    let subnormal = half::f16::from_bits(50).to_f32(); // 50 · 2^−24
    assert_eq!(half_format(&[0.5, -2.0, subnormal, 0.1f32]), None, "0.1 is not a half");
    assert_eq!(half_format(&[0.5, -2.0, subnormal, 0.099_975_586]), Some(Half::F16), "a half subnormal is exact");
    assert_eq!(half_format(&[1.0, half::bf16::from_f32(0.1).to_f32()]), Some(Half::Bf16));
    assert_eq!(half_format(&[0.1]), None, "0.1 is neither");
    assert_eq!(half_format(&[1e6, 0.1]), None);
    let packed = pack_half(&[1.0, -2.0, 0.5], Half::F16);
    assert_eq!(packed.len(), 4, "padded to 16 bytes");
    assert_eq!(packed[0], 0x3c00 | 0xc000 << 16);
    assert_eq!(packed[1], 0x3800);
}

#[test]
fn the_token_gather_reads_a_16_bit_table() {
    let ctx = gpu();
    let mut rng = Lcg(22);
    let (vocab, d, ids) = (7, 6, [3u32, 0, 6, 6, 1]);
    for (format, code) in [(Half::F16, 1), (Half::Bf16, 2)] {
        let (wte, wpe) = (round(&rng.vec(vocab * d, 1.0), format), rng.vec(ids.len() * d, 1.0));
        let packed = pack_half(&wte, format);
        let init = |contents: &[u8]| {
            ctx.device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
                label: None,
                contents,
                usage: wgpu::BufferUsages::STORAGE,
            })
        };
        let (idb, teb) = (init(bytemuck::cast_slice(&ids)), init(bytemuck::cast_slice(&packed)));
        let (peb, xb) = (upload(ctx, &wpe), output(ctx, ids.len() * d));
        let ep = EmbedParams { m: 5, d: d as u32, row0: 0, v0: 0, vn: vocab as u32, positions: 1, half: code, _pad: 0 };
        run(Kernel::Embed16, &ep, &[&idb, &teb, &peb, &xb], ep.workgroups());
        assert_close(&read(&xb, 0, ids.len() * d), &ops::embed(&ids, &wte, &wpe, d), &format!("embed {format:?}"));
    }
}
