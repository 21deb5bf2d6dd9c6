//! "Which heads matter" through WebGPU in headless Chromium (SwiftShader)
//! against the engine compiled to wasm: the head finder's templates and a
//! painted pattern, the logit lens, direct contributions, an intervention
//! and a sweep, on a GPT-2 and a grouped-KV Llama of random weights. The
//! native tests (tests/gpu_head_finder.rs, gpu_lens.rs, gpu_intervene.rs)
//! cover more shapes; shapes here are small because SwiftShader is a CPU
//! emulation. Tolerance: 1e-4 absolute (`close::BROWSER`) on every number.
#![cfg(target_arch = "wasm32")]

use attnscope::engine::head_finder::{painted_scores, template_scores, PaintedPattern};
use attnscope::engine::init::random_weights;
use attnscope::engine::intervene::{intervene, sweep, Intervention, Replacement};
use attnscope::engine::lens::{direct_contributions, logit_lens};
use attnscope::engine::{forward_cpu, Mask};
use attnscope::gpu::{GpuContext, GpuForward, GpuWeights, RunOptions};
use attnscope::model::{ModelConfig, Token};
use wasm_bindgen_test::*;

#[path = "common/close.rs"]
#[allow(dead_code)]
mod close;

wasm_bindgen_test_configure!(run_in_browser);

const TOL: f64 = 1e-4;

fn assert_close(actual: &[f32], expected: &[f32], what: &str) {
    close::assert_within(actual, expected, close::BROWSER, what);
}

fn near(a: f64, b: f64, what: &str) {
    assert!((a - b).abs() <= TOL, "{what}: GPU {a}, CPU {b}");
}

fn tokens(ids: &[u32]) -> Vec<Token> {
    ids.iter().map(|&id| Token { id, text: String::new(), start: 0, end: 0 }).collect()
}

fn name(id: u32) -> String {
    format!("t{id}")
}

async fn check(ctx: &GpuContext, config: &ModelConfig, what: &str) {
    let weights = random_weights(config, 7);
    let upload = || GpuWeights::upload(ctx, config, &weights).unwrap();
    let mut fwd = GpuForward::with_weights(ctx, config, upload()).unwrap();
    let mut src = GpuForward::with_weights(ctx, config, upload()).unwrap();
    // A repeated sequence (induction) of 10 tokens.
    let ids: Vec<u32> = [3u32, 17, 9, 25, 1].iter().chain(&[3, 17, 9, 25, 1]).copied().collect();
    let source_ids: Vec<u32> = ids.iter().map(|&id| (id * 7 + 2) % config.vocab_size as u32).collect();
    let clean = forward_cpu(config, &weights, tokens(&ids), Mask::Causal).unwrap();
    let source = forward_cpu(config, &weights, tokens(&source_ids), Mask::Causal).unwrap();
    src.run(ctx, &source_ids, RunOptions::fast(Mask::Causal)).unwrap();
    fwd.run(ctx, &ids, RunOptions { mask: Mask::Causal, trace: true, all_logits: true }).unwrap();

    let got = fwd.template_scores(ctx, Some(9)).await.unwrap();
    for (g, c) in got.iter().zip(template_scores(&clean, Some(9))) {
        let w = |s: &str| format!("{what} head {}.{} {s}", c.layer, c.head);
        near(g.previous_token, c.previous_token, &w("previous"));
        near(g.first_token, c.first_token, &w("first"));
        near(g.self_token, c.self_token, &w("self"));
        near(g.entropy, c.entropy, &w("entropy"));
        near(g.induction.unwrap(), c.induction.unwrap(), &w("induction"));
        near(g.to_token.unwrap(), c.to_token.unwrap(), &w("to token"));
    }
    let pattern = PaintedPattern::new(3, vec![1.0, 0.0, 0.0, 0.5, 1.0, 0.0, 0.0, 2.0, 1.0]).unwrap();
    let painted = fwd.painted_scores(ctx, &pattern).await.unwrap();
    for (i, (g, c)) in painted.iter().zip(painted_scores(&clean, &pattern)).enumerate() {
        near(*g, c, &format!("{what} painted head {i}"));
    }

    let lens = fwd.logit_lens(ctx, 3, &name).await.unwrap();
    for (g, c) in lens.iter().zip(logit_lens(config, &weights, &clean, 3, &name).unwrap()) {
        for (pos, (gr, cr)) in g.top.iter().zip(&c.top).enumerate() {
            let probs = |r: &[attnscope::engine::lens::LensToken]| r.iter().map(|x| x.prob).collect::<Vec<_>>();
            assert_close(&probs(gr), &probs(cr), &format!("{what} lens {} position {pos}", c.name));
        }
    }
    let g = fwd.direct_contributions(ctx, &weights, 9, 4).await.unwrap();
    let c = direct_contributions(config, &weights, &clean, 9, 4).unwrap();
    for l in 0..config.n_layer {
        assert_close(&g.heads[l], &c.heads[l], &format!("{what} contributions of layer {l}'s heads"));
    }
    assert_close(&g.mlp, &c.mlp, &format!("{what} MLP contributions"));
    assert_close(&[g.logit, g.total()], &[c.logit, c.logit], &format!("{what} logit and the terms' sum"));

    let set = [
        Intervention { layer: 0, head: 1, kind: Replacement::Patch },
        Intervention { layer: 1, head: 0, kind: Replacement::Mean },
    ];
    let cpu = intervene(config, &weights, &clean, Some(&source), &set).unwrap();
    let stats = fwd.intervene(ctx, &set, Some(&src)).unwrap();
    assert_eq!(stats.reused_layers, 0);
    let trace = fwd.read_trace(ctx, tokens(&ids)).await.unwrap();
    assert_close(&trace.logits.data, &cpu.trace.logits.data, &format!("{what} intervened logits"));
    let cpu = sweep(config, &weights, &clean, None, Replacement::Zero, None).unwrap();
    let got = fwd.sweep(ctx, Replacement::Zero, None, None).await.unwrap();
    assert_eq!(got.token, cpu.token);
    for l in 0..config.n_layer {
        assert_close(&got.delta_logit[l], &cpu.delta_logit[l], &format!("{what} sweep Δlogit layer {l}"));
    }
    assert_eq!(ctx.fault(), None);
}

#[wasm_bindgen_test]
async fn which_heads_matter_on_the_gpu_equals_the_engine_in_the_browser() {
    let ctx = match GpuContext::new().await {
        Ok(ctx) => ctx,
        Err(e) => panic!("no WebGPU adapter in this browser: {e}. Chromium needs the flags in webdriver.json."),
    };
    check(&ctx, &ModelConfig::gpt2(2, 3, 24, 32, 40), "gpt2").await;
    check(&ctx, &ModelConfig::llama((2, 4, 2, 8), 24, 40, 32, 40), "llama").await;
}
