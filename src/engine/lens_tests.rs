//! The lens against the plain-loop reference, and direct contributions
//! summing to the logit, on both families' tiny fixtures and the default model.

use std::path::PathBuf;

use super::*;
use crate::engine::{forward_cpu, ops, Mask};
use crate::model::{Model, Token};

fn fixture(dir: &str) -> Model {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let path = if dir == "default" { root.join("www/models/default") } else { root.join("tests/fixtures").join(dir) };
    Model::load_dir_tokenizer_optional(&path).unwrap().0
}

fn ids_trace(model: &Model, ids: &[u32]) -> Trace {
    let tokens = ids.iter().map(|&id| Token { id, text: String::new(), start: 0, end: 0 }).collect();
    forward_cpu(&model.config, &model.weights, tokens, Mask::Causal).unwrap()
}

fn ids(model: &Model, t: u32) -> Vec<u32> {
    (0..t).map(|i| (i * 53 + 7) % model.config.vocab_size as u32).collect()
}

#[test]
fn direct_contributions_sum_to_the_logit_for_layernorm_and_rmsnorm() {
    for dir in ["gpt2-tiny", "llama-tiny", "llama-tiny-mha", "default"] {
        let model = fixture(dir);
        let trace = ids_trace(&model, &ids(&model, 11));
        for position in [0, 5, 10] {
            for token in [0, 3, 41] {
                let c = direct_contributions(&model.config, &model.weights, &trace, position, token).unwrap();
                let (total, logit) = (c.total(), trace.logits.at(position, token as usize));
                assert!((total - logit).abs() <= 1e-4, "{dir} position {position} token {token}: {total} vs {logit}");
                assert_eq!(c.position_embedding.is_some(), dir == "gpt2-tiny" || dir == "default");
                assert_eq!((c.heads.len(), c.heads[0].len()), (model.config.n_layer, model.config.n_head));
            }
        }
    }
}

#[test]
fn the_lens_is_the_final_norm_and_head_applied_to_each_residual_point() {
    for dir in ["gpt2-tiny", "llama-tiny"] {
        let model = fixture(dir);
        let (config, weights) = (&model.config, &model.weights);
        let trace = ids_trace(&model, &ids(&model, 7));
        let lens = logit_lens(config, weights, &trace, 5, &|id| format!("<{id}>")).unwrap();
        assert_eq!(lens.len(), 2 * config.n_layer + 1);
        assert_eq!(lens[1].name, "L0 + attention");
        let (d, vocab) = (config.n_embd, config.vocab_size);
        let eps = config.layer_norm_epsilon;
        for (point, stream) in [(1, &trace.layers[0].resid_mid), (4, &trace.layers[1].resid_post)] {
            let stream = stream.as_ref().unwrap();
            // The plain-loop reference: the final norm, then the LM head.
            let normed = if config.architecture.is_llama_family() {
                ops::rmsnorm(&stream.data, &weights.ln_f_g.data, d, eps)
            } else {
                ops::layernorm(&stream.data, &weights.ln_f_g.data, &weights.ln_f_b.data, d, eps)
            };
            let want = ops::lm_head(&normed, &weights.head().to_f32(), stream.rows, d, vocab);
            for (r, top) in lens[point].top.iter().enumerate() {
                assert_eq!(top.len(), 5);
                let row = &want[r * vocab..][..vocab];
                let best = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
                assert!((top[0].logit - best).abs() <= 1e-4, "{dir} point {point} row {r}");
                assert!((top[0].logit - row[top[0].id as usize]).abs() <= 1e-4);
                assert!(top.windows(2).all(|w| w[0].prob >= w[1].prob));
                assert_eq!(top[0].text, format!("<{}>", top[0].id));
            }
        }
        // The last point is the model's own output.
        let last = lens.last().unwrap();
        for (r, top) in last.top.iter().enumerate() {
            assert!(
                (top[0].logit - trace.logits.row(r).iter().copied().fold(f32::NEG_INFINITY, f32::max)).abs() <= 1e-5
            );
        }
    }
}

#[test]
fn bad_positions_and_tokens_are_errors() {
    let model = fixture("gpt2-tiny");
    let trace = ids_trace(&model, &[1, 2, 3]);
    let at = |p, t| direct_contributions(&model.config, &model.weights, &trace, p, t);
    assert!(matches!(at(3, 0), Err(InterveneError::NoSuchPosition { position: 3, tokens: 3 })));
    assert!(matches!(at(0, 512), Err(InterveneError::Engine(EngineError::IdOutOfVocab { .. }))));
}

/// The page reads the lens a point at a time at the positions it shows,
/// paced: the same rows as the whole lens, a pause per piece of the LM head,
/// and a pause that says stop ends it.
#[test]
fn a_lens_point_at_some_positions_is_those_rows_of_the_whole_lens() {
    let model = fixture("gpt2-tiny");
    let (config, weights) = (&model.config, &model.weights);
    let trace = ids_trace(&model, &ids(&model, 9));
    let name = |id: u32| format!("<{id}>");
    let whole = logit_lens(config, weights, &trace, 3, &name).unwrap();
    assert!(whole.iter().all(|p| p.first == 0 && p.top.len() == 9));
    for point in [0, 3, whole.len() - 1] {
        let mut pauses = 0;
        let count = async || {
            pauses += 1;
            ControlFlow::Continue(())
        };
        let some = crate::pace::at_once(lens_point(config, weights, &trace, point, 4..9, 3, &name, count)).unwrap();
        assert!(pauses >= 1);
        assert_eq!((some.name.as_str(), some.first, some.top.len()), (whole[point].name.as_str(), 4, 5));
        for (got, want) in some.top.iter().zip(&whole[point].top[4..]) {
            let ids = |row: &[LensToken]| row.iter().map(|t| (t.id, t.logit)).collect::<Vec<_>>();
            assert_eq!(ids(got), ids(want), "point {point}");
        }
    }
    let stop = async || ControlFlow::Break(());
    let stopped = crate::pace::at_once(lens_point(config, weights, &trace, 1, 0..9, 3, &name, stop));
    assert!(matches!(stopped, Err(InterveneError::Stopped)));
    for bad in [(5..12), (0..10)] {
        let r = crate::pace::at_once(lens_point(config, weights, &trace, 1, bad, 3, &name, crate::pace::go_on));
        assert!(matches!(r, Err(InterveneError::NoSuchPosition { .. })));
    }
}
