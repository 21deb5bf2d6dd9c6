//! Our CPU forward against an independent implementation: Hugging Face
//! `transformers` (PyTorch, eager attention) on a random GPT-2 written by
//! tools/make_golden.py into tests/fixtures/.
#![cfg(not(target_arch = "wasm32"))]

#[path = "common/golden.rs"]
mod golden;

use attnscope::engine::{forward_cpu, Mask, Trace};
use attnscope::model::{Half, Matrix, ModelConfig, Token, Weights};
use golden::{fixture, Case, Reference};

fn load(dir: &str) -> (ModelConfig, Weights) {
    let config = ModelConfig::from_json(&std::fs::read(fixture(dir).join("config.json")).unwrap()).unwrap();
    let weights =
        Weights::from_safetensors(&std::fs::read(fixture(dir).join("model.safetensors")).unwrap(), &config).unwrap();
    (config, weights)
}

fn reference() -> Reference {
    golden::reference("gpt2-tiny")
}

fn run(config: &ModelConfig, weights: &Weights, ids: &[u32]) -> Trace {
    let tokens = ids.iter().map(|&id| Token { id, text: String::new(), start: 0, end: 0 }).collect();
    forward_cpu(config, weights, tokens, Mask::Causal).unwrap()
}

fn max_logit_error(trace: &Trace, case: &Case) -> f32 {
    let mut worst = 0.0f32;
    for (i, row) in case.logits.iter().enumerate() {
        for (v, &want) in row.iter().enumerate() {
            worst = worst.max((trace.logits.at(i, v) - want).abs());
        }
    }
    worst
}

#[test]
fn logits_and_attention_match_transformers_within_1e_4() {
    let (config, weights) = load("gpt2-tiny");
    let reference = reference();
    assert_eq!(reference.cases.iter().map(|c| c.ids.len()).max(), Some(config.n_positions), "a full-context case");
    for case in &reference.cases {
        let trace = run(&config, &weights, &case.ids);
        let t = case.ids.len();
        let err = max_logit_error(&trace, case);
        assert!(err <= 1e-4, "T={t}: max logit error {err}");
        for (l, layer) in case.attentions.iter().enumerate() {
            for (h, head) in layer.iter().enumerate() {
                let ours = &trace.layers[l].heads()[h].weights();
                for (i, row) in head.iter().enumerate() {
                    for (j, &want) in row.iter().enumerate() {
                        let got = ours.at(i, j);
                        assert!((got - want).abs() <= 1e-4, "T={t} layer {l} head {h} [{i}][{j}]: {got} vs {want}");
                    }
                }
            }
        }
    }
}

#[test]
fn the_reference_is_not_trivial() {
    // Peaked attention and spread logits, so agreement above means something.
    let reference = reference();
    let case = reference.cases.iter().find(|c| c.ids.len() == 23).unwrap();
    let max_weight = case.attentions[1].iter().flat_map(|h| h[22].iter().copied()).fold(0.0f32, f32::max);
    assert!(max_weight > 0.3, "some head attends sharply (max weight {max_weight})");
    let row = &case.logits[22];
    let spread = row.iter().copied().fold(f32::MIN, f32::max) - row.iter().copied().fold(f32::MAX, f32::min);
    assert!(spread > 5.0, "logits spread over {spread}");
}

#[test]
fn f16_and_bf16_checkpoints_match_within_their_precision() {
    let (config, f32_weights) = load("gpt2-tiny");
    let reference = reference();
    let case = reference.cases.iter().find(|c| c.ids.len() == 23).unwrap();
    // bf16 keeps 8 bits of mantissa, f16 11: weights round to 2^-8 and 2^-11 relative.
    for (dir, format, weight_tol, logit_tol) in
        [("gpt2-tiny-f16", Half::F16, 1.0 / 2048.0, 0.05), ("gpt2-tiny-bf16", Half::Bf16, 1.0 / 256.0, 0.4)]
    {
        let (_, weights) = load(dir);
        // The matrices and the token table stay 16-bit in memory.
        let matrices = weights.blocks.iter().flat_map(|b| b.matrices()).chain([&weights.wte]);
        assert!(matrices.into_iter().all(|m| m.format() == Some(format)), "{dir}");
        assert!(
            weights.bytes() < f32_weights.bytes() * 6 / 10,
            "{dir}: {} of {}",
            weights.bytes(),
            f32_weights.bytes()
        );
        let wide = weights.blocks[1].mlp_fc_w.to_f32();
        for (a, b) in wide.iter().zip(f32_weights.blocks[1].mlp_fc_w.to_f32().iter()) {
            assert!((a - b).abs() <= b.abs() * weight_tol + 1e-7, "{dir}: weight {a} vs f32 {b}");
        }
        let trace = run(&config, &weights, &case.ids);
        let err = max_logit_error(&trace, case);
        assert!(err <= logit_tol, "{dir}: max logit error {err} > {logit_tol}");
        assert!(err > 0.0, "{dir}: rounding must show somewhere");
        // The same values widened to f32 before the run give the same trace:
        // the kernels' 16-bit path reads exactly the checkpoint's values.
        let widened = widened(&weights);
        let wide_trace = run(&config, &widened, &case.ids);
        let diff =
            trace.logits.data.iter().zip(&wide_trace.logits.data).map(|(a, b)| (a - b).abs()).fold(0.0, f32::max);
        assert!(diff <= 1e-5, "{dir}: 16-bit kernels vs the same weights in f32: {diff}");
    }
}

/// `weights` with every matrix widened to f32.
fn widened(weights: &Weights) -> Weights {
    let wide = |m: &Matrix| Matrix::f32(&m.shape, m.to_f32().into_owned());
    let mut out = weights.clone();
    for b in &mut out.blocks {
        for m in [&mut b.attn_qkv_w, &mut b.attn_proj_w, &mut b.mlp_fc_w, &mut b.mlp_proj_w] {
            *m = wide(m);
        }
    }
    out.wte = wide(&weights.wte);
    out.lm_head = weights.lm_head.as_ref().map(wide);
    out
}
