//! The logit lens and direct contributions on the GPU
//! (`GpuForward::logit_lens`, `GpuForward::direct_contributions`) against
//! their CPU twins in `engine::lens`, on random GPT-2 and grouped-KV Llama
//! shapes, the fixtures (an untied head split over vocabulary chunks, a
//! 16-bit checkpoint) and the default model.
//!
//! Tolerances: probabilities within 1e-4 absolute (the page's promise); a
//! logit within 1e-4 + 1e-5·|logit| (the final norm and the LM head sum d
//! and then V terms in another order than the CPU, and the lens's early
//! points have logits of tens on the fixtures with wide weights). Ranks may
//! differ only between tokens whose CPU logits are that close.
#![cfg(not(target_arch = "wasm32"))]

mod common;

use std::path::PathBuf;

use attnscope::engine::init::random_weights;
use attnscope::engine::lens::{direct_contributions, logit_lens, LensPoint};
use attnscope::engine::{forward_cpu, Mask};
use attnscope::gpu::{GpuForward, GpuWeights, RunOptions};
use attnscope::model::{Model, ModelConfig, Token, Weights};
use common::gpu;

fn tokens(ids: &[u32]) -> Vec<Token> {
    ids.iter().map(|&id| Token { id, text: String::new(), start: 0, end: 0 }).collect()
}

fn ids(t: usize, vocab: usize, seed: usize) -> Vec<u32> {
    (0..t).map(|i| ((i * 7919 + seed * 131) % vocab) as u32).collect()
}

fn logit_tol(logit: f32) -> f32 {
    1e-4 + 1e-5 * logit.abs()
}

fn lens_close(gpu: &[LensPoint], cpu: &[LensPoint], what: &str) {
    assert_eq!(gpu.len(), cpu.len(), "{what}: points");
    for (g, c) in gpu.iter().zip(cpu) {
        assert_eq!(g.name, c.name, "{what}");
        assert_eq!(g.top.len(), c.top.len(), "{what} {}: positions", c.name);
        for (pos, (gr, cr)) in g.top.iter().zip(&c.top).enumerate() {
            assert_eq!(gr.len(), cr.len(), "{what} {} position {pos}: ranks", c.name);
            for (rank, (gt, ct)) in gr.iter().zip(cr).enumerate() {
                let w = format!("{what} {} position {pos} rank {rank}", c.name);
                assert!((gt.prob - ct.prob).abs() <= 1e-4, "{w}: prob GPU {}, CPU {}", gt.prob, ct.prob);
                assert!(
                    (gt.logit - ct.logit).abs() <= logit_tol(ct.logit),
                    "{w}: logit GPU {}, CPU {}",
                    gt.logit,
                    ct.logit
                );
                if gt.id != ct.id {
                    // A near-tie: the GPU's token is one the CPU ranks with a logit as close.
                    let twin = cr.iter().find(|x| x.id == gt.id);
                    let near = twin.is_some_and(|x| (x.logit - ct.logit).abs() <= 2.0 * logit_tol(ct.logit));
                    assert!(near, "{w}: GPU ranks {} ({}), CPU {} ({})", gt.id, gt.logit, ct.id, ct.logit);
                }
                assert_eq!(gt.text, format!("t{}", gt.id), "{w}: the text is name(id)");
            }
        }
    }
}

fn name(id: u32) -> String {
    format!("t{id}")
}

/// The lens (top 5) at every point and the contributions to a few tokens at
/// a few positions, GPU against CPU, after a traced and after a fast run.
fn check(config: &ModelConfig, weights: &Weights, gw: GpuWeights, t: usize, seed: usize, what: &str) {
    let ctx = gpu();
    let mut fwd = GpuForward::with_weights(ctx, config, gw).unwrap();
    let ids = ids(t, config.vocab_size, seed);
    let cpu = forward_cpu(config, weights, tokens(&ids), Mask::Causal).unwrap();
    let cpu_lens = logit_lens(config, weights, &cpu, 5, &name).unwrap();
    for opts in [RunOptions::traced(Mask::Causal), RunOptions::fast(Mask::Causal)] {
        let what = format!("{what} T={t} traced={}", opts.trace);
        fwd.clear_cache();
        fwd.run(ctx, &ids, opts).unwrap();
        let got = pollster::block_on(fwd.logit_lens(ctx, 5, &name)).unwrap();
        lens_close(&got, &cpu_lens, &what);
        // The page reads the last positions only: those rows of the whole lens.
        let from = t / 2;
        let read = fwd.begin_logit_lens(ctx, 5, from..t).unwrap();
        let some = pollster::block_on(read.finish(ctx, &name)).unwrap();
        assert!(some.iter().all(|p| p.first == from), "{what}: the first position");
        let tail: Vec<LensPoint> =
            cpu_lens.iter().map(|p| LensPoint { top: p.top[from..].to_vec(), first: from, ..p.clone() }).collect();
        lens_close(&some, &tail, &format!("{what} positions {from}.."));
        for position in [0, t / 2, t - 1] {
            for token in [0, ids[position], (config.vocab_size - 1) as u32] {
                let w = format!("{what} position {position} token {token}");
                let g = pollster::block_on(fwd.direct_contributions(ctx, weights, position, token)).unwrap();
                let c = direct_contributions(config, weights, &cpu, position, token).unwrap();
                let close = |a: f32, b: f32, name: &str| {
                    assert!((a - b).abs() <= logit_tol(b), "{w} {name}: GPU {a}, CPU {b}");
                };
                close(g.logit, c.logit, "logit");
                close(g.norm_scale, c.norm_scale, "norm scale");
                close(g.token_embedding, c.token_embedding, "token embedding");
                close(g.position_embedding.unwrap_or(0.0), c.position_embedding.unwrap_or(0.0), "position embedding");
                assert_eq!(g.position_embedding.is_some(), c.position_embedding.is_some(), "{w}");
                close(g.norm_shift, c.norm_shift, "norm shift");
                close(g.total(), g.logit, "the terms' sum against the logit");
                for l in 0..config.n_layer {
                    close(g.mlp[l], c.mlp[l], &format!("layer {l} MLP"));
                    close(g.attn_bias[l], c.attn_bias[l], &format!("layer {l} attention bias"));
                    for h in 0..config.n_head {
                        close(g.heads[l][h], c.heads[l][h], &format!("head {l}.{h}"));
                    }
                }
            }
        }
    }
    assert!(pollster::block_on(fwd.direct_contributions(ctx, weights, t, 0)).is_err(), "a position past the text");
    let past_vocab = config.vocab_size as u32;
    assert!(
        pollster::block_on(fwd.direct_contributions(ctx, weights, 0, past_vocab)).is_err(),
        "a token past the vocabulary"
    );
    assert!(pollster::block_on(fwd.logit_lens(ctx, 0, &name)).is_err(), "top-0");
    for bad in [t..t + 1, 0..t + 1, 0..0] {
        assert!(fwd.begin_logit_lens(ctx, 5, bad.clone()).is_err(), "positions {bad:?} of {t}");
    }
}

#[test]
fn gpu_lens_and_contributions_equal_the_cpu_on_random_shapes() {
    let ctx = gpu();
    for (n_layer, n_head, n_embd, t) in [(1, 1, 8, 1), (2, 3, 12, 7), (3, 5, 40, 70)] {
        let config = ModelConfig::gpt2(n_layer, n_head, n_embd, 128, 61);
        let weights = random_weights(&config, n_layer as u64);
        let gw = GpuWeights::upload(ctx, &config, &weights).unwrap();
        check(&config, &weights, gw, t, n_head, &format!("gpt2 {n_layer}×{n_head}×{n_embd}"));
    }
    for (n_head, n_kv, d_head, t) in [(3, 1, 16, 9), (4, 2, 8, 33)] {
        let config = ModelConfig::llama((2, n_head, n_kv, d_head), 24, 40, 96, 53);
        let weights = random_weights(&config, n_head as u64);
        let gw = GpuWeights::upload(ctx, &config, &weights).unwrap();
        check(&config, &weights, gw, t, n_kv, &format!("llama {n_head} heads over {n_kv}"));
    }
}

fn fixture(dir: &str) -> Model {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(dir);
    Model::load_dir_tokenizer_optional(&path).unwrap().0
}

#[test]
fn gpu_lens_and_contributions_equal_the_cpu_on_the_fixtures() {
    let ctx = gpu();
    for dir in [
        "tests/fixtures/gpt2-tiny",
        "tests/fixtures/gpt2-tiny-bf16",
        "tests/fixtures/llama-tiny",
        "tests/fixtures/qwen2-tiny",
        "www/models/default",
    ] {
        let model = fixture(dir);
        let (c, w) = (&model.config, &model.weights);
        // The head in chunks of at most 40 rows: the lens runs the LM head chunk by chunk.
        let gw = GpuWeights::upload_with_chunk_limit(ctx, c, w, 40 * c.n_embd as u64 * 4).unwrap();
        check(c, w, gw, 23, 3, dir);
    }
}
