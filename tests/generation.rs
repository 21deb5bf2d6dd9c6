//! Generation with the KV cache against full re-runs, on the shipped default
//! model: the same tokens (greedy and seeded sampling), the same logits, and
//! a seed that reproduces its continuation while another seed changes it.
#![cfg(not(target_arch = "wasm32"))]

use std::path::PathBuf;

use attnscope::engine::generate::generate;
use attnscope::engine::kv_cache::{generate_cached, KvCache};
use attnscope::engine::sampling::SamplingParams;
use attnscope::engine::{forward_cpu, EngineError, Mask};
use attnscope::model::Model;

fn model() -> Model {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("www/models/default");
    Model::load_dir(&dir).expect("the shipped default model loads")
}

fn ids(g: &attnscope::engine::generate::Generation) -> Vec<u32> {
    g.steps.iter().map(|s| s.sampled.id).collect()
}

#[test]
fn cached_generation_equals_full_reruns_token_for_token() {
    let model = model();
    let prompt = model.tokenizer.encode("It is a truth universally acknowledged").unwrap();
    for params in [
        SamplingParams { temperature: 0.0, ..Default::default() },
        SamplingParams { temperature: 0.9, top_k: Some(40), top_p: Some(0.95), seed: 11 },
        SamplingParams { temperature: 1.2, top_k: None, top_p: None, seed: 5 },
    ] {
        let full = generate(&model, prompt.clone(), 16, &params, Mask::Causal).unwrap();
        let cached = generate_cached(&model, prompt.clone(), 16, &params, Mask::Causal).unwrap();
        assert_eq!(ids(&cached), ids(&full), "{params:?}");
        assert_eq!(cached.steps.len(), 16);
        for (a, b) in cached.steps.iter().zip(&full.steps) {
            assert!((a.sampled.prob - b.sampled.prob).abs() < 1e-5, "{params:?}: {a:?} vs {b:?}");
        }
    }
}

#[test]
fn cached_logits_equal_full_logits_at_every_step() {
    let model = model();
    let (config, weights) = (&model.config, &model.weights);
    let tokens = model.tokenizer.encode("Mr. Darcy bowed, and Elizabeth said nothing.").unwrap();
    let prefix = 3;
    let trace = forward_cpu(config, weights, tokens[..prefix].to_vec(), Mask::Causal).unwrap();
    let mut cache = KvCache::from_trace(config, &trace);
    for p in prefix..tokens.len() {
        let step = cache.step(config, weights, tokens[p].id, Mask::Causal).unwrap();
        let full = forward_cpu(config, weights, tokens[..=p].to_vec(), Mask::Causal).unwrap();
        let diff = step.logits.iter().zip(full.logits.row(p)).map(|(a, b)| (a - b).abs()).fold(0.0, f32::max);
        assert!(diff <= 1e-4, "position {p}: {diff}");
    }
}

#[test]
fn a_seed_reproduces_its_continuation_and_another_seed_changes_it() {
    let model = model();
    let prompt = model.tokenizer.encode("Elizabeth was").unwrap();
    let run = |seed| {
        let params = SamplingParams { temperature: 1.0, top_k: None, top_p: None, seed };
        ids(&generate_cached(&model, prompt.clone(), 10, &params, Mask::Causal).unwrap())
    };
    assert_eq!(run(1), run(1));
    assert_ne!(run(1), run(2));
}

#[test]
fn generation_stops_at_the_context_limit() {
    let model = model();
    let limit = model.config.n_positions;
    let prompt: Vec<_> = model.tokenizer.encode(&"the ".repeat(limit)).unwrap().into_iter().take(limit - 3).collect();
    let params = SamplingParams { temperature: 0.0, ..Default::default() };
    let full = generate(&model, prompt.clone(), 10, &params, Mask::Causal).unwrap();
    let cached = generate_cached(&model, prompt, 10, &params, Mask::Causal).unwrap();
    assert_eq!((cached.steps.len(), cached.hit_context_limit), (3, true));
    assert_eq!((full.steps.len(), full.hit_context_limit), (3, true));
    assert_eq!(ids(&cached), ids(&full));
}

/// `--steps 18446744073709551615` panicked ("capacity overflow") and
/// `--steps 1000000000` aborted on a 48 GB allocation: the step count
/// reserved memory before it met the context.
#[test]
fn any_step_count_is_bounded_by_the_context_before_allocating() {
    let model = model();
    let prompt = model.tokenizer.encode("It was").unwrap();
    let params = SamplingParams { temperature: 0.0, ..Default::default() };
    let left = model.config.n_positions - prompt.len();
    for steps in [usize::MAX, 1_000_000_000] {
        let cached = generate_cached(&model, prompt.clone(), steps, &params, Mask::Causal).unwrap();
        assert_eq!((cached.steps.len(), cached.hit_context_limit), (left, true), "{steps}");
    }
    let full = generate(&model, prompt.clone(), usize::MAX, &params, Mask::Causal).unwrap();
    assert_eq!((full.steps.len(), full.hit_context_limit), (left, true));
}

/// NaN in a weight made every step pick the last token id with probability `null`.
#[test]
fn generation_refuses_a_distribution_that_is_not_finite() {
    let mut model = model();
    model.weights.ln_f_g.data[0] = f32::NAN;
    let prompt = model.tokenizer.encode("It was").unwrap();
    for params in [SamplingParams::default(), SamplingParams { temperature: 0.0, ..Default::default() }] {
        let err = generate_cached(&model, prompt.clone(), 4, &params, Mask::Causal).unwrap_err();
        assert!(matches!(err, EngineError::Sampling(_)), "{err}");
        let err = generate(&model, prompt.clone(), 4, &params, Mask::Causal).unwrap_err();
        assert!(matches!(err, EngineError::Sampling(_)), "{err}");
    }
}
