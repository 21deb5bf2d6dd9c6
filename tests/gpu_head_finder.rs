//! The head finder on the GPU (shaders/head_scores.wgsl through
//! `GpuForward::template_scores` and `painted_scores`) against its CPU twin,
//! `engine::head_finder`, on random GPT-2 and Llama shapes (grouped KV heads
//! included), every mask, texts with repeats (induction) and a chosen token.
//!
//! Tolerance 1e-4 absolute on every score, against the CPU twin run both on
//! the CPU reference's trace (the numbers the page promises) and on the GPU
//! run's own weights read back (the kernel alone: it sums in f32 where the
//! twin sums in f64).
#![cfg(not(target_arch = "wasm32"))]

mod common;

use std::path::PathBuf;

use attnscope::engine::head_finder::{painted_scores, template_scores, PaintedPattern, TemplateScores};
use attnscope::engine::init::random_weights;
use attnscope::engine::{forward_cpu, Mask};
use attnscope::gpu::{GpuForward, GpuWeights, RunOptions};
use attnscope::model::{Model, ModelConfig, Token, Weights};
use common::{gpu, Lcg};

const TOL: f64 = 1e-4;

fn tokens(ids: &[u32]) -> Vec<Token> {
    ids.iter().map(|&id| Token { id, text: String::new(), start: 0, end: 0 }).collect()
}

/// A random half of `t / 2` ids (from a small vocabulary, so some repeat
/// within it too), repeated: the second copy is where induction heads fire.
fn repeated_ids(t: usize, vocab: usize, rng: &mut Lcg) -> Vec<u32> {
    let half: Vec<u32> = (0..t.div_ceil(2)).map(|_| ((rng.next_f32() + 1.0) * 0.5 * vocab as f32) as u32).collect();
    half.iter().chain(&half).take(t).map(|&id| id.min(vocab as u32 - 1)).collect()
}

fn option_close(got: Option<f64>, want: Option<f64>, what: &str) {
    match (got, want) {
        (Some(g), Some(w)) => assert!((g - w).abs() <= TOL, "{what}: GPU {g}, CPU {w}"),
        (None, None) => {}
        _ => panic!("{what}: GPU {got:?}, CPU {want:?}"),
    }
}

fn scores_close(gpu: &[TemplateScores], cpu: &[TemplateScores], what: &str) {
    assert_eq!(gpu.len(), cpu.len(), "{what}: heads");
    for (g, c) in gpu.iter().zip(cpu) {
        let w = |name: &str| format!("{what} head {}.{} {name}", c.layer, c.head);
        assert_eq!((g.layer, g.head), (c.layer, c.head), "{}", w("order"));
        for (name, a, b) in [
            ("previous", g.previous_token, c.previous_token),
            ("first", g.first_token, c.first_token),
            ("self", g.self_token, c.self_token),
            ("entropy", g.entropy, c.entropy),
        ] {
            assert!((a - b).abs() <= TOL, "{}: GPU {a}, CPU {b}", w(name));
        }
        option_close(g.induction, c.induction, &w("induction"));
        option_close(g.to_token, c.to_token, &w("to_token"));
    }
}

fn painted_close(gpu: &[f64], cpu: &[f64], what: &str) {
    assert_eq!(gpu.len(), cpu.len(), "{what}: heads");
    for (i, (g, c)) in gpu.iter().zip(cpu).enumerate() {
        assert!((g - c).abs() <= TOL, "{what} head {i}: GPU {g}, CPU {c}");
    }
}

/// A random pattern of side `n` with about a third of its cells zero.
fn random_pattern(n: usize, rng: &mut Lcg) -> PaintedPattern {
    let cells = (0..n * n).map(|_| rng.next_f32().max(-0.3) + 0.3).collect();
    PaintedPattern::new(n, cells).unwrap()
}

/// Every template and a few painted patterns on `config` at each length and
/// mask, the GPU against the CPU twin.
fn check(config: &ModelConfig, weights: &Weights, lengths: &[usize], masks: &[Mask], seed: u64, what: &str) {
    let ctx = gpu();
    let gw = GpuWeights::upload(ctx, config, weights).unwrap();
    let mut fwd = GpuForward::with_weights(ctx, config, gw).unwrap();
    let mut rng = Lcg(seed);
    for &t in lengths {
        let ids = repeated_ids(t, config.vocab_size, &mut rng);
        let patterns = [random_pattern(1 + t % 5, &mut rng), random_pattern(16, &mut rng)];
        for &mask in masks {
            let what = format!("{what} T={t} {mask:?}");
            let cpu = forward_cpu(config, weights, tokens(&ids), mask).unwrap();
            let read_back = pollster::block_on(fwd.trace(ctx, tokens(&ids), mask, false)).unwrap();
            // A token of the text (its last), and one it does not hold.
            for token in [None, Some(ids[t - 1]), Some(config.vocab_size as u32 + 3)] {
                let got = pollster::block_on(fwd.template_scores(ctx, token)).unwrap();
                scores_close(&got, &template_scores(&read_back, token), &format!("{what} token {token:?} kernel"));
                scores_close(&got, &template_scores(&cpu, token), &format!("{what} token {token:?} vs CPU"));
            }
            for (k, pattern) in patterns.iter().enumerate() {
                let got = pollster::block_on(fwd.painted_scores(ctx, pattern)).unwrap();
                painted_close(&got, &painted_scores(&cpu, pattern), &format!("{what} pattern {k} vs CPU"));
                painted_close(&got, &painted_scores(&read_back, pattern), &format!("{what} pattern {k} kernel"));
            }
        }
    }
}

#[test]
fn gpu_template_and_painted_scores_equal_the_cpu_on_random_gpt2_shapes() {
    // Odd widths, 1 to 5 heads, T from 1 past the 64 rows a workgroup strides over.
    for (n_layer, n_head, n_embd, seed) in [(1, 1, 8, 1), (2, 3, 12, 2), (3, 5, 40, 3)] {
        let config = ModelConfig::gpt2(n_layer, n_head, n_embd, 128, 37);
        let weights = random_weights(&config, seed);
        let masks = [Mask::Causal, Mask::Bidirectional, Mask::Window(3)];
        check(&config, &weights, &[1, 2, 9, 70], &masks, seed, &format!("gpt2 {n_layer}×{n_head}×{n_embd}"));
    }
}

#[test]
fn gpu_template_and_painted_scores_equal_the_cpu_on_llama_shapes_with_grouped_kv() {
    // (query heads, KV heads, head width): KV ratios 1, 3 and 2.
    for (n_head, n_kv, d_head) in [(2, 2, 16), (3, 1, 32), (4, 2, 8)] {
        let config = ModelConfig::llama((2, n_head, n_kv, d_head), 24, 40, 96, 41);
        let weights = random_weights(&config, n_head as u64);
        let what = format!("llama {n_head} heads over {n_kv}");
        check(&config, &weights, &[1, 17, 65], &[Mask::Causal, Mask::Window(4)], 7 + n_head as u64, &what);
    }
}

/// The page's longest text (2,048 tokens): 32 blocks of rows summed apart.
/// One workgroup per head striding over every row ran t²/64 loop iterations
/// per invocation, past the 65,535 after which lavapipe silently ends loops
/// (`GpuContext::loop_limit`): its entropy and painted scores came back short.
#[test]
fn gpu_template_and_painted_scores_equal_the_cpu_on_the_pages_longest_text() {
    let config = ModelConfig::gpt2(1, 2, 16, 2048, 37);
    let weights = random_weights(&config, 5);
    check(&config, &weights, &[2048], &[Mask::Causal, Mask::Window(300)], 5, "gpt2 1×2×16");
}

fn fixture(dir: &str) -> (ModelConfig, Weights) {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(dir);
    let model = Model::load_dir_tokenizer_optional(&path).unwrap().0;
    (model.config, model.weights)
}

#[test]
fn gpu_head_scores_equal_the_cpu_on_the_gpt2_and_llama_fixtures() {
    // gpt2-tiny (Hugging Face's numbers), llama-tiny (4 query heads over 2 KV
    // heads, llama3 RoPE), qwen2-tiny (biases).
    for (dir, seed) in
        [("tests/fixtures/gpt2-tiny", 11), ("tests/fixtures/llama-tiny", 12), ("tests/fixtures/qwen2-tiny", 13)]
    {
        let (config, weights) = fixture(dir);
        check(&config, &weights, &[6, 40], &[Mask::Causal], seed, dir);
    }
}

/// The shipped default model on a repeated random sequence: its induction
/// heads stand out on the GPU as on the CPU (the numbers `attnscope eval`
/// reports), equal within 1e-4.
#[test]
fn the_default_models_induction_heads_stand_out_on_the_gpu() {
    let (config, weights) = fixture("www/models/default");
    let mut rng = Lcg(5);
    let half: Vec<u32> =
        (0..40).map(|_| ((rng.next_f32() + 1.0) * 0.5 * (config.vocab_size - 1) as f32) as u32).collect();
    let ids: Vec<u32> = half.iter().chain(&half).copied().collect();
    let ctx = gpu();
    let mut fwd = GpuForward::with_weights(ctx, &config, GpuWeights::upload(ctx, &config, &weights).unwrap()).unwrap();
    fwd.run(ctx, &ids, RunOptions::traced(Mask::Causal)).unwrap();
    let got = pollster::block_on(fwd.template_scores(ctx, Some(ids[0]))).unwrap();
    let cpu = forward_cpu(&config, &weights, tokens(&ids), Mask::Causal).unwrap();
    scores_close(&got, &template_scores(&cpu, Some(ids[0])), "default model");
    assert!(got.iter().any(|s| s.induction.unwrap() >= 0.3), "an induction head stands out: {got:?}");
}

#[test]
fn gpu_head_scores_refuse_an_untraced_run() {
    let ctx = gpu();
    let config = ModelConfig::gpt2(1, 2, 8, 16, 11);
    let weights = random_weights(&config, 1);
    let mut fwd = GpuForward::with_weights(ctx, &config, GpuWeights::upload(ctx, &config, &weights).unwrap()).unwrap();
    assert!(fwd.begin_template_scores(ctx, None).is_err(), "before any run");
    fwd.run(ctx, &[1, 2, 3], RunOptions::fast(Mask::Causal)).unwrap();
    assert!(fwd.begin_template_scores(ctx, None).is_err(), "a run without the weights");
    let pattern = PaintedPattern::new(2, vec![1.0; 4]).unwrap();
    assert!(fwd.begin_painted_scores(ctx, &pattern).is_err());
}
