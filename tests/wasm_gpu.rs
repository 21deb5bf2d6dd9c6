//! The WGSL kernels and the attention layer run through WebGPU in headless
//! Chromium (SwiftShader), checked against the CPU reference compiled to wasm.
//! Run by tools/test.sh with wasm-bindgen-test-runner; shapes are small
//! because SwiftShader is a CPU emulation.
#![cfg(target_arch = "wasm32")]

use attnscope::engine::{forward_cpu, ops, Mask};
use attnscope::gpu::{read_f32, trace_attention_gpu, GpuAttention, GpuContext, Kernels};
use attnscope::model::Model;
use wasm_bindgen_test::*;
use wgpu::util::DeviceExt;

#[path = "common/buffers.rs"]
mod buffers;
use buffers::{output, upload};

wasm_bindgen_test_configure!(run_in_browser);

/// Deterministic pseudo-random values in [-scale, scale).
fn values(len: usize, seed: u32, scale: f32) -> Vec<f32> {
    let mut s = seed.wrapping_mul(2654435761).wrapping_add(1);
    (0..len)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 17;
            s ^= s << 5;
            (s as f32 / u32::MAX as f32 * 2.0 - 1.0) * scale
        })
        .collect()
}

fn assert_close(actual: &[f32], expected: &[f32], what: &str) {
    assert_eq!(actual.len(), expected.len(), "{what}: length");
    for (i, (&a, &e)) in actual.iter().zip(expected).enumerate() {
        if e.is_infinite() {
            assert_eq!(a, e, "{what}[{i}] masked");
        } else {
            assert!((a - e).abs() <= 1e-4, "{what}[{i}]: WebGPU {a}, CPU {e}");
        }
    }
}

async fn context() -> GpuContext {
    match GpuContext::new().await {
        Ok(ctx) => ctx,
        Err(e) => panic!("no WebGPU adapter in this browser: {e}. Chromium needs the flags in webdriver.json."),
    }
}

#[wasm_bindgen_test]
async fn every_kernel_matches_the_cpu_reference_through_webgpu() {
    let ctx = context().await;
    let k = ctx.checked(|| Ok(Kernels::new(&ctx))).await.expect("all kernels compile in the browser");

    // matmul_bias on an odd shape (not a multiple of the 8×8 workgroup).
    let (m, kk, n) = (7, 13, 11);
    let (x, w, b) = (values(m * kk, 1, 2.0), values(kk * n, 2, 2.0), values(n, 3, 1.0));
    let (xb, wb, bb, yb) = (upload(&ctx, &x), upload(&ctx, &w), upload(&ctx, &b), output(&ctx, m * n));
    // layernorm, 5 rows of 33.
    let g = values(33, 4, 1.5);
    let (lx, lb) = (values(5 * 33, 5, 3.0), values(33, 6, 0.5));
    let (lxb, lgb, lbb, lyb) = (upload(&ctx, &lx), upload(&ctx, &g), upload(&ctx, &lb), output(&ctx, 5 * 33));
    // embed: T=6, d=10, vocab 9.
    let ids = [3u32, 0, 8, 8, 1, 5];
    let (wte, wpe) = (values(9 * 10, 7, 1.0), values(6 * 10, 8, 1.0));
    let ids_buf = ctx.device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
        label: None,
        contents: bytemuck::cast_slice(&ids),
        usage: wgpu::BufferUsages::STORAGE,
    });
    let (teb, peb, eb) = (upload(&ctx, &wte), upload(&ctx, &wpe), output(&ctx, 6 * 10));
    // scores: T=9, 2 heads of 16, causal; then softmax of the masked scores.
    let (t, h, dh) = (9, 2, 16);
    let qkv = values(t * 3 * h * dh, 9, 0.5);
    let (qb, rawb, maskb, softb) =
        (upload(&ctx, &qkv), output(&ctx, h * t * t), output(&ctx, h * t * t), output(&ctx, h * t * t));

    let mut enc = ctx.device.create_command_encoder(&Default::default());
    k.matmul_bias(&ctx, &mut enc, &xb, &wb, &bb, &yb, (m, kk, n)).unwrap();
    k.layernorm(&ctx, &mut enc, &lxb, &lgb, &lbb, &lyb, 5, 33, 1e-5).unwrap();
    k.embed(&ctx, &mut enc, &ids_buf, &teb, &peb, &eb, 6, 10).unwrap();
    k.attn_scores(&ctx, &mut enc, &qb, &rawb, &maskb, (t, h, dh), Mask::Causal).unwrap();
    k.softmax_rows(&ctx, &mut enc, &maskb, &softb, h * t, t).unwrap();
    ctx.queue.submit([enc.finish()]);

    assert_close(&read_f32(&ctx, &yb, 0, m * n).await.unwrap(), &ops::matmul_bias(&x, &w, &b, m, kk, n), "matmul_bias");
    assert_close(&read_f32(&ctx, &lyb, 0, 5 * 33).await.unwrap(), &ops::layernorm(&lx, &g, &lb, 33, 1e-5), "layernorm");
    assert_close(&read_f32(&ctx, &eb, 0, 60).await.unwrap(), &ops::embed(&ids, &wte, &wpe, 10), "embed");
    let (raw_cpu, masked_cpu) = ops::attention_scores(&qkv, t, h, dh, Mask::Causal);
    assert_close(&read_f32(&ctx, &rawb, 0, h * t * t).await.unwrap(), &raw_cpu, "scores raw");
    assert_close(&read_f32(&ctx, &maskb, 0, h * t * t).await.unwrap(), &masked_cpu, "scores masked");
    assert_close(&read_f32(&ctx, &softb, 0, h * t * t).await.unwrap(), &ops::softmax_rows(&masked_cpu, t), "softmax");
    assert_eq!(ctx.fault(), None);
}

#[wasm_bindgen_test]
async fn attention_layer_on_the_placeholder_model_matches_the_cpu_in_the_browser() {
    let model = Model::from_bytes(
        "placeholder",
        include_bytes!("fixtures/placeholder/config.json"),
        include_bytes!("fixtures/placeholder/model.safetensors"),
        include_bytes!("fixtures/placeholder/tokenizer.json"),
    )
    .unwrap();
    let ctx = context().await;
    let mut attn = GpuAttention::new(&ctx, &model).unwrap();
    for (text, mask) in [("Now is the winter", Mask::Causal), ("of our discontent", Mask::Window(2))] {
        let tokens = model.tokenizer.encode(text).unwrap();
        let ids: Vec<u32> = tokens.iter().map(|t| t.id).collect();
        let cpu = forward_cpu(&model.config, &model.weights, tokens, mask).unwrap();
        let gpu = trace_attention_gpu(&ctx, &mut attn, &ids, mask).await.unwrap();
        for (hg, hc) in gpu.heads.iter().zip(cpu.layers[0].heads()) {
            assert_close(&hg.weights.data, &hc.weights.data, &format!("weights {text:?}"));
            assert_close(&hg.scores_masked.data, &hc.scores_masked.data, &format!("masked scores {text:?}"));
            assert_close(&hg.output.data, &hc.output.data, &format!("W·V {text:?}"));
        }
    }
}
