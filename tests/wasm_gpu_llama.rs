//! The Llama family's GPU forward through WebGPU in headless Chromium
//! (SwiftShader) against the CPU reference compiled to wasm: RMSNorm, RoPE,
//! grouped KV heads, SwiGLU, and 16-bit (bf16) weights widened in the
//! shaders; prefix (KV) reuse. Run by tools/test.sh with
//! wasm-bindgen-test-runner; shapes are small because SwiftShader is a CPU
//! emulation.
#![cfg(target_arch = "wasm32")]

use attnscope::engine::init::random_weights;
use attnscope::engine::{forward_cpu, Mask};
use attnscope::gpu::{GpuContext, GpuForward, GpuWeights, Half, RunOptions};
use attnscope::model::{ModelConfig, Token};
use wasm_bindgen_test::*;

#[path = "common/close.rs"]
#[allow(dead_code)]
mod close;

wasm_bindgen_test_configure!(run_in_browser);

fn assert_close(actual: &[f32], expected: &[f32], what: &str) {
    close::assert_within(actual, expected, close::BROWSER, what);
}

fn tokens(ids: &[u32]) -> Vec<Token> {
    ids.iter().map(|&id| Token { id, text: String::new(), start: 0, end: 0 }).collect()
}

#[wasm_bindgen_test]
async fn a_grouped_llama_with_bf16_weights_matches_the_cpu_in_the_browser() {
    let ctx = match GpuContext::new().await {
        Ok(ctx) => ctx,
        Err(e) => panic!("no WebGPU adapter in this browser: {e}. Chromium needs the flags in webdriver.json."),
    };
    // 6 query heads over 2 KV heads of 16, SwiGLU 40 wide, an untied head.
    let config = ModelConfig::llama((2, 6, 2, 16), 32, 40, 32, 50);
    // Every matrix and table rounded to bf16 and kept 16-bit, as a bf16
    // checkpoint loads: the GPU takes them as they are, the CPU reference
    // widens them as it reads.
    let weights = random_weights(&config, 3).rounded(Half::Bf16);
    let gw = GpuWeights::upload(&ctx, &config, &weights).unwrap();
    assert_eq!(gw.blocks[0].qkv_w.format, Some(Half::Bf16));
    let mut fwd = GpuForward::with_weights(&ctx, &config, gw).unwrap();
    let ids: Vec<u32> = (0..11).map(|i| (i * 17 + 3) % 50).collect();
    for mask in [Mask::Causal, Mask::Window(3)] {
        let cpu = forward_cpu(&config, &weights, tokens(&ids), mask).unwrap();
        let gpu = fwd.trace(&ctx, tokens(&ids), mask, true).await.unwrap();
        for (lg, lc) in gpu.layers.iter().zip(&cpu.layers) {
            for (hg, hc) in lg.heads().iter().zip(lc.heads()) {
                assert_eq!(hg.kv_head, hc.kv_head);
                assert_close(&hg.q.data, &hc.q.data, &format!("q after RoPE {mask:?}"));
                assert_close(
                    &hg.weights().to_matrix().data,
                    &hc.weights().to_matrix().data,
                    &format!("weights {mask:?}"),
                );
                assert_close(&hg.output.data, &hc.output.data, &format!("A·V {mask:?}"));
            }
            assert_close(
                &lg.mlp_hidden.as_ref().unwrap().data,
                &lc.mlp_hidden.as_ref().unwrap().data,
                &format!("SwiGLU {mask:?}"),
            );
        }
        assert_close(&gpu.logits.data, &cpu.logits.data, &format!("logits {mask:?}"));
    }
    // One more token reuses the cached prefix (K after RoPE) and gives the CPU's logits.
    fwd.run(&ctx, &ids[..10], RunOptions::fast(Mask::Causal)).unwrap();
    assert_eq!(fwd.run(&ctx, &ids, RunOptions::fast(Mask::Causal)).unwrap().reused_prefix, 10);
    let cached = fwd.begin_read_last_logits(&ctx).unwrap().finish(&ctx).await.unwrap();
    let cpu = forward_cpu(&config, &weights, tokens(&ids), Mask::Causal).unwrap();
    assert_close(&cached[..50], cpu.logits.row(10), "logits with the KV cache");
    assert_eq!(ctx.fault(), None);
}
