//! Head ablation and patching on the GPU (`GpuForward::intervene`,
//! `restore_clean`, `sweep`; shaders/replace_head.wgsl) against
//! `engine::intervene`, on random GPT-2 and grouped-KV Llama shapes and the
//! fixtures: the intervened run's every stage, the layers reused, the clean
//! run put back, and the sweep's Δlogit grid.
//!
//! Tolerance: 1e-4 absolute on every stage and logit (the whole forward's
//! bound, tests/gpu_forward.rs), and on every probability and Δlogit.
#![cfg(not(target_arch = "wasm32"))]

mod common;

use std::path::PathBuf;

use attnscope::engine::init::random_weights;
use attnscope::engine::intervene::{intervene, sweep, Intervention, Replacement};
use attnscope::engine::{forward_cpu, Mask, Matrix, Trace};
use attnscope::gpu::{GpuForward, GpuWeights, RunOptions};
use attnscope::model::{Model, ModelConfig, Token, Weights};
use common::{assert_close_abs, gpu};

const TOL: f32 = 1e-4;

fn tokens(ids: &[u32]) -> Vec<Token> {
    ids.iter().map(|&id| Token { id, text: String::new(), start: 0, end: 0 }).collect()
}

fn ids(t: usize, vocab: usize, seed: usize) -> Vec<u32> {
    (0..t).map(|i| ((i * 7919 + seed * 131) % vocab) as u32).collect()
}

fn close(a: &Matrix, b: &Matrix, what: &str) {
    assert_eq!((a.rows, a.cols), (b.rows, b.cols), "{what}: shape");
    assert_close_abs(&a.data, &b.data, TOL, what);
}

/// The stages an intervention changes, and the logits, within 1e-4.
fn traces_close(g: &Trace, c: &Trace, what: &str) {
    close(&g.embeddings, &c.embeddings, &format!("{what} embeddings"));
    for (l, (gl, cl)) in g.layers.iter().zip(&c.layers).enumerate() {
        for (h, (gh, ch)) in gl.heads().iter().zip(cl.heads()).enumerate() {
            close(&gh.weights().to_matrix(), &ch.weights().to_matrix(), &format!("{what} layer {l} head {h} weights"));
            close(&gh.output, &ch.output, &format!("{what} layer {l} head {h} output"));
        }
        close(&gl.attn_out, &cl.attn_out, &format!("{what} layer {l} attn_out"));
        close(gl.resid_mid.as_ref().unwrap(), cl.resid_mid.as_ref().unwrap(), &format!("{what} layer {l} resid_mid"));
        close(&gl.mlp_out, &cl.mlp_out, &format!("{what} layer {l} mlp_out"));
        close(
            gl.resid_post.as_ref().unwrap(),
            cl.resid_post.as_ref().unwrap(),
            &format!("{what} layer {l} resid_post"),
        );
    }
    close(&g.ln_f, &c.ln_f, &format!("{what} ln_f"));
    close(&g.logits, &c.logits, &format!("{what} logits"));
}

fn forward(config: &ModelConfig, weights: &Weights) -> GpuForward {
    let ctx = gpu();
    GpuForward::with_weights(ctx, config, GpuWeights::upload(ctx, config, weights).unwrap()).unwrap()
}

/// Interventions across layers (the last layer's heads, a head named twice)
/// and every sweep, GPU against CPU, at length `t`.
fn check(config: &ModelConfig, weights: &Weights, t: usize, seed: usize, what: &str) {
    let ctx = gpu();
    let (n_layer, n_head) = (config.n_layer, config.n_head);
    let clean_ids = ids(t, config.vocab_size, seed);
    let source_ids = ids(t, config.vocab_size, seed + 1);
    let clean = forward_cpu(config, weights, tokens(&clean_ids), Mask::Causal).unwrap();
    let source = forward_cpu(config, weights, tokens(&source_ids), Mask::Causal).unwrap();
    let mut fwd = forward(config, weights);
    let mut src = forward(config, weights);
    let opts = RunOptions { mask: Mask::Causal, trace: true, all_logits: true };
    src.run(ctx, &source_ids, RunOptions::fast(Mask::Causal)).unwrap();
    fwd.run(ctx, &clean_ids, opts).unwrap();

    let last = n_layer - 1;
    let sets: Vec<Vec<Intervention>> = vec![
        vec![Intervention { layer: last, head: n_head - 1, kind: Replacement::Zero }],
        vec![
            Intervention { layer: last, head: 0, kind: Replacement::Mean },
            Intervention { layer: 0, head: n_head / 2, kind: Replacement::Patch },
            Intervention { layer: 0, head: n_head / 2, kind: Replacement::Mean },
        ],
        vec![
            Intervention { layer: n_layer / 2, head: 0, kind: Replacement::Patch },
            Intervention { layer: last, head: n_head - 1, kind: Replacement::Zero },
        ],
        vec![],
    ];
    for set in &sets {
        let w = format!("{what} T={t} {set:?}");
        let cpu = intervene(config, weights, &clean, Some(&source), set).unwrap();
        let got = fwd.intervene(ctx, set, Some(&src)).unwrap();
        assert_eq!(got.first_layer, cpu.first_layer, "{w}");
        assert_eq!(got.reused_layers, cpu.first_layer.min(n_layer), "{w}");
        assert_eq!((got.flops, got.full_flops), (cpu.flops, cpu.full_flops), "{w}");
        assert_eq!(fwd.intervened(), (!set.is_empty()).then_some(cpu.first_layer), "{w}");
        let g = pollster::block_on(fwd.read_trace(ctx, tokens(&clean_ids))).unwrap();
        traces_close(&g, &cpu.trace, &w);
        // Not a vacuous check: the replaced heads move the logits (at T > 1:
        // the mean of one position is that position).
        let moved = g.logits.data.iter().zip(&clean.logits.data).map(|(a, b)| (a - b).abs()).fold(0.0, f32::max);
        if set.is_empty() || t > 1 {
            assert_eq!(moved > 10.0 * TOL, !set.is_empty(), "{w}: the logits moved by {moved}");
        }
    }
    // The clean run back, by restoring and by a new run (which restores it
    // first, then keeps its prefix): of the same text, and of one more token.
    fwd.intervene(ctx, &sets[1], Some(&src)).unwrap();
    assert_eq!(fwd.restore_clean(ctx).unwrap(), n_layer);
    traces_close(&pollster::block_on(fwd.read_trace(ctx, tokens(&clean_ids))).unwrap(), &clean, "restored");
    fwd.intervene(ctx, &sets[0], None).unwrap();
    let stats = fwd.run(ctx, &clean_ids, opts).unwrap();
    assert_eq!(stats.reused_prefix, t - 1, "the restored clean rows are kept");
    traces_close(&pollster::block_on(fwd.read_trace(ctx, tokens(&clean_ids))).unwrap(), &clean, "re-run");
    let longer: Vec<u32> = clean_ids.iter().copied().chain([1]).collect();
    if longer.len() <= config.n_positions {
        fwd.intervene(ctx, &sets[2], Some(&src)).unwrap();
        let stats = fwd.run(ctx, &longer, opts).unwrap();
        assert_eq!((stats.reused_prefix, fwd.intervened()), (t, None), "an append after an intervention");
        let cpu = forward_cpu(config, weights, tokens(&longer), Mask::Causal).unwrap();
        traces_close(&pollster::block_on(fwd.read_trace(ctx, tokens(&longer))).unwrap(), &cpu, "append");
        fwd.run(ctx, &clean_ids, opts).unwrap();
    }

    for kind in [Replacement::Zero, Replacement::Mean, Replacement::Patch] {
        for token in [None, Some(clean_ids[0])] {
            let w = format!("{what} T={t} sweep {kind:?} token {token:?}");
            let cpu = sweep(config, weights, &clean, Some(&source), kind, token).unwrap();
            let got = pollster::block_on(fwd.sweep(ctx, kind, token, Some(&src))).unwrap();
            assert_eq!(got.token, cpu.token, "{w}");
            assert!((got.clean_logit - cpu.clean_logit).abs() <= TOL, "{w}: clean logit");
            assert!((got.clean_prob - cpu.clean_prob).abs() <= TOL, "{w}: clean prob");
            assert_eq!(got.full_flops, cpu.full_flops, "{w}");
            for l in 0..n_layer {
                assert_close_abs(&got.delta_logit[l], &cpu.delta_logit[l], TOL, &format!("{w} layer {l} Δlogit"));
                assert_close_abs(&got.prob[l], &cpu.prob[l], TOL, &format!("{w} layer {l} prob"));
            }
            assert_eq!(fwd.intervened(), None, "{w}: the clean run is back");
            // One layer at a time (the page's progress): the same rows, the clean run back after each.
            for l in (0..n_layer).rev() {
                let read = fwd.begin_sweep_layers(ctx, kind, cpu.token, Some(&src), l..l + 1).unwrap();
                let one = pollster::block_on(read.finish(ctx)).unwrap();
                assert_eq!(one.delta_logit.len(), 1, "{w}: layer {l} alone");
                assert_close_abs(&one.delta_logit[0], &cpu.delta_logit[l], TOL, &format!("{w} layer {l} alone"));
                assert_close_abs(&one.prob[0], &cpu.prob[l], TOL, &format!("{w} layer {l} alone, prob"));
                assert!((one.clean_logit - cpu.clean_logit).abs() <= TOL, "{w}: layer {l} alone, clean logit");
            }
            assert!(fwd.begin_sweep_layers(ctx, kind, cpu.token, Some(&src), n_layer..n_layer + 1).is_err());
            let largest = got.delta_logit.iter().flatten().fold(0.0f32, |m, d| m.max(d.abs()));
            let identity = kind == Replacement::Mean && t == 1;
            assert!(identity || largest > 10.0 * TOL, "{w}: some head matters (largest |Δlogit| {largest})");
        }
    }
    traces_close(&pollster::block_on(fwd.read_trace(ctx, tokens(&clean_ids))).unwrap(), &clean, "after the sweeps");
    // A sweep while the buffers hold an intervened run starts from the clean run.
    fwd.intervene(ctx, &sets[1], Some(&src)).unwrap();
    let read = fwd.begin_sweep_layers(ctx, Replacement::Zero, clean_ids[0], None, 0..1).unwrap();
    let one = pollster::block_on(read.finish(ctx)).unwrap();
    let cpu = sweep(config, weights, &clean, None, Replacement::Zero, Some(clean_ids[0])).unwrap();
    assert_close_abs(&one.delta_logit[0], &cpu.delta_logit[0], TOL, &format!("{what}: a sweep after an intervention"));
    traces_close(
        &pollster::block_on(fwd.read_trace(ctx, tokens(&clean_ids))).unwrap(),
        &clean,
        "after a sweep of one layer",
    );
}

#[test]
fn gpu_interventions_and_sweeps_equal_the_cpu_on_random_shapes() {
    for (n_layer, n_head, n_embd, t) in [(1, 1, 8, 1), (2, 3, 12, 7), (3, 4, 40, 33)] {
        let config = ModelConfig::gpt2(n_layer, n_head, n_embd, 64, 45);
        let weights = random_weights(&config, n_layer as u64 + 10);
        check(&config, &weights, t, n_head, &format!("gpt2 {n_layer}×{n_head}×{n_embd}"));
    }
    for (n_head, n_kv, d_head, t) in [(3, 1, 16, 9), (4, 2, 8, 20)] {
        let config = ModelConfig::llama((2, n_head, n_kv, d_head), 24, 40, 64, 47);
        let weights = random_weights(&config, n_head as u64);
        check(&config, &weights, t, n_kv, &format!("llama {n_head} heads over {n_kv}"));
    }
}

#[test]
fn gpu_interventions_and_sweeps_equal_the_cpu_on_the_fixtures() {
    for dir in ["tests/fixtures/gpt2-tiny", "tests/fixtures/llama-tiny", "tests/fixtures/qwen2-tiny"] {
        let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(dir);
        let model = Model::load_dir_tokenizer_optional(&path).unwrap().0;
        check(&model.config, &model.weights, 12, 2, dir);
    }
}

#[test]
fn gpu_interventions_refuse_bad_heads_sources_and_lengths() {
    let ctx = gpu();
    let config = ModelConfig::gpt2(2, 2, 8, 16, 11);
    let weights = random_weights(&config, 1);
    let mut fwd = forward(&config, &weights);
    let zero = |layer, head| Intervention { layer, head, kind: Replacement::Zero };
    assert!(fwd.intervene(ctx, &[zero(0, 0)], None).is_err(), "before any run");
    fwd.run(ctx, &[1, 2, 3], RunOptions::fast(Mask::Causal)).unwrap();
    assert!(fwd.intervene(ctx, &[zero(2, 0)], None).is_err(), "no layer 2");
    assert!(fwd.intervene(ctx, &[zero(0, 2)], None).is_err(), "no head 2");
    let patch = Intervention { layer: 0, head: 0, kind: Replacement::Patch };
    assert!(fwd.intervene(ctx, &[patch], None).is_err(), "a patch without a source");
    let mut short = forward(&config, &weights);
    short.run(ctx, &[1, 2], RunOptions::fast(Mask::Causal)).unwrap();
    assert!(fwd.intervene(ctx, &[patch], Some(&short)).is_err(), "a source of another length");
    let mut ablated = forward(&config, &weights);
    ablated.run(ctx, &[4, 5, 6], RunOptions::fast(Mask::Causal)).unwrap();
    ablated.intervene(ctx, &[zero(1, 1)], None).unwrap();
    assert!(fwd.intervene(ctx, &[patch], Some(&ablated)).is_err(), "a source that is itself intervened");
    assert!(
        pollster::block_on(fwd.sweep(ctx, Replacement::Patch, None, None)).is_err(),
        "a patch sweep without a source"
    );
    assert!(
        pollster::block_on(fwd.sweep(ctx, Replacement::Zero, Some(11), None)).is_err(),
        "a token past the vocabulary"
    );
    assert_eq!(fwd.intervened(), None, "nothing was replaced");
}

/// After a fast run (flash attention, the last position's logits only) the
/// sweep measures the clean logits where that run left them, and an
/// intervention re-runs without a trace.
#[test]
fn a_sweep_and_an_intervention_after_a_fast_run_equal_the_cpu() {
    let ctx = gpu();
    let config = ModelConfig::gpt2(2, 3, 12, 32, 29);
    let weights = random_weights(&config, 4);
    let clean_ids = ids(6, config.vocab_size, 1);
    let clean = forward_cpu(&config, &weights, tokens(&clean_ids), Mask::Causal).unwrap();
    let mut fwd = forward(&config, &weights);
    fwd.run(ctx, &clean_ids, RunOptions::fast(Mask::Causal)).unwrap();
    let cpu = sweep(&config, &weights, &clean, None, Replacement::Mean, None).unwrap();
    let got =
        pollster::block_on(fwd.begin_sweep(ctx, Replacement::Mean, cpu.token, None).unwrap().finish(ctx)).unwrap();
    assert!((got.clean_logit - cpu.clean_logit).abs() <= TOL && (got.clean_prob - cpu.clean_prob).abs() <= TOL);
    for l in 0..config.n_layer {
        assert_close_abs(&got.delta_logit[l], &cpu.delta_logit[l], TOL, &format!("fast sweep layer {l}"));
        assert_close_abs(&got.prob[l], &cpu.prob[l], TOL, &format!("fast sweep layer {l} prob"));
    }
    let set = [Intervention { layer: 1, head: 2, kind: Replacement::Zero }];
    let cpu = intervene(&config, &weights, &clean, None, &set).unwrap();
    fwd.intervene(ctx, &set, None).unwrap();
    let last = pollster::block_on(fwd.begin_read_last_logits(ctx).unwrap().finish(ctx)).unwrap();
    assert_close_abs(&last[..config.vocab_size], cpu.trace.logits.row(5), TOL, "intervened last logits");
}
