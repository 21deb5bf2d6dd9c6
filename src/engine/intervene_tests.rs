//! Interventions against an independent recomputation (the full forward
//! with the heads' outputs replaced, no reuse), on the tiny fixtures of both
//! families and on the shipped default model's induction heads.

use std::path::PathBuf;

use super::*;
use crate::engine::analysis::induction_test;
use crate::engine::forward::embed;
use crate::engine::sampling::Rng;
use crate::engine::{ops, Mask};
use crate::model::{Model, Token};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub(super) fn fixture(dir: &str) -> Model {
    let (model, _) = Model::load_dir_tokenizer_optional(&root().join("tests/fixtures").join(dir)).unwrap();
    model
}

fn ids_trace(model: &Model, ids: &[u32]) -> Trace {
    let tokens = ids.iter().map(|&id| Token { id, text: String::new(), start: 0, end: 0 }).collect();
    crate::engine::forward_cpu(&model.config, &model.weights, tokens, Mask::Causal).unwrap()
}

/// The full forward on `ids` from the embeddings, with each intervened head's
/// output replaced by `replace(layer, head, clean output)`: no reuse.
fn recompute(model: &Model, ids: &[u32], replace: &dyn Fn(usize, usize) -> Option<Matrix>) -> (Vec<f32>, Vec<f32>) {
    let (config, weights) = (&model.config, &model.weights);
    let (t, d_head) = (ids.len(), config.d_head());
    let mut x = embed(config, weights, ids, 0);
    for (l, block) in weights.blocks.iter().enumerate() {
        let (_, mut concat) = attention_cpu(config, block, &x, Mask::Causal);
        let width = config.q_dim();
        for h in 0..config.n_head {
            if let Some(out) = replace(l, h) {
                for r in 0..t {
                    concat[r * width + h * d_head..][..d_head].copy_from_slice(out.row(r));
                }
            }
        }
        x = block_tail(config, block, &x, &concat).resid_post;
    }
    let ln_f = norm(config, &x, &weights.ln_f_g, &weights.ln_f_b);
    (logits(config, weights, &ln_f), x)
}

fn max_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
}

#[test]
fn intervened_runs_equal_a_full_recomputation_on_both_families() {
    for dir in ["gpt2-tiny", "llama-tiny"] {
        let model = fixture(dir);
        let vocab = model.config.vocab_size as u32;
        let ids: Vec<u32> = (0..9).map(|i| (i * 37 + 5) % vocab).collect();
        let source_ids: Vec<u32> = (0..9).map(|i| (i * 11 + 2) % vocab).collect();
        let (clean, source) = (ids_trace(&model, &ids), ids_trace(&model, &source_ids));
        let cases: [&[Intervention]; 4] = [
            &[Intervention { layer: 1, head: 2, kind: Replacement::Zero }],
            &[
                Intervention { layer: 0, head: 1, kind: Replacement::Mean },
                Intervention { layer: 1, head: 3, kind: Replacement::Zero },
            ],
            &[Intervention { layer: 0, head: 0, kind: Replacement::Patch }],
            &[
                Intervention { layer: 1, head: 0, kind: Replacement::Patch },
                Intervention { layer: 1, head: 1, kind: Replacement::Mean },
            ],
        ];
        for interventions in cases {
            let run = intervene(&model.config, &model.weights, &clean, Some(&source), interventions).unwrap();
            let replace = |l: usize, h: usize| {
                let iv = interventions.iter().find(|iv| iv.layer == l && iv.head == h)?;
                let clean_out = &clean.layers[l].heads()[h].output;
                Some(match iv.kind {
                    Replacement::Zero => Matrix::zeros(clean_out.rows, clean_out.cols),
                    Replacement::Patch => source.layers[l].heads()[h].output.clone(),
                    Replacement::Mean => {
                        let n = clean_out.rows as f32;
                        let mean: Vec<f32> = (0..clean_out.cols)
                            .map(|c| (0..clean_out.rows).map(|r| clean_out.at(r, c)).sum::<f32>() / n)
                            .collect();
                        Matrix::from_vec(clean_out.rows, clean_out.cols, mean.repeat(clean_out.rows))
                    }
                })
            };
            let (want_logits, want_x) = recompute(&model, &ids, &replace);
            let last = run.trace.layers.last().unwrap();
            let what = format!("{dir} {interventions:?}");
            assert!(max_diff(&run.trace.logits.data, &want_logits) <= 1e-5, "{what}: logits");
            assert!(max_diff(&last.resid_post.as_ref().unwrap().data, &want_x) <= 1e-5, "{what}: final residual");
            assert!(max_diff(&run.trace.logits.data, &clean.logits.data) > 1e-4, "{what} changes the logits");
            let first = interventions.iter().map(|iv| iv.layer).min().unwrap();
            assert_eq!(run.first_layer, first);
            assert_eq!(run.trace.layers[..first].len(), first);
        }
    }
}

#[test]
fn a_rerun_costs_what_the_kernels_count_and_less_than_a_full_forward() {
    for dir in ["gpt2-tiny", "llama-tiny"] {
        let model = fixture(dir);
        let clean = ids_trace(&model, &[3, 1, 4, 1, 5, 9, 2, 6]);
        for layer in 0..model.config.n_layer {
            ops::take_flops();
            let ivs = [Intervention { layer, head: 1, kind: Replacement::Zero }];
            let run = intervene(&model.config, &model.weights, &clean, None, &ivs).unwrap();
            assert_eq!(ops::take_flops(), run.flops, "{dir} layer {layer}");
            assert!(run.flops < run.full_flops, "{dir} layer {layer}: {} vs {}", run.flops, run.full_flops);
        }
        let nothing = intervene(&model.config, &model.weights, &clean, None, &[]).unwrap();
        assert_eq!((nothing.flops, nothing.trace.logits), (0, clean.logits));
    }
}

#[test]
fn bad_heads_lengths_and_missing_sources_are_errors() {
    let model = fixture("gpt2-tiny");
    let (config, weights) = (&model.config, &model.weights);
    let clean = ids_trace(&model, &[1, 2, 3, 4]);
    let short = ids_trace(&model, &[1, 2, 3]);
    let zero = |layer, head| [Intervention { layer, head, kind: Replacement::Zero }];
    let patch = [Intervention { layer: 0, head: 0, kind: Replacement::Patch }];
    assert!(matches!(intervene(config, weights, &clean, None, &zero(2, 0)), Err(InterveneError::NoSuchHead { .. })));
    assert!(matches!(intervene(config, weights, &clean, None, &zero(0, 4)), Err(InterveneError::NoSuchHead { .. })));
    assert!(matches!(intervene(config, weights, &clean, None, &patch), Err(InterveneError::NoSource { .. })));
    let mismatch = intervene(config, weights, &clean, Some(&short), &patch);
    assert!(matches!(mismatch, Err(InterveneError::LengthMismatch { clean: 4, other: 3 })));
    let other = fixture("llama-tiny");
    let foreign = ids_trace(&other, &[1, 2, 3, 4]);
    let wrong_model = intervene(config, weights, &clean, Some(&foreign), &patch);
    assert!(matches!(wrong_model, Err(InterveneError::TraceMismatch)), "a llama-tiny trace patched into gpt2-tiny");
    assert_eq!(parse_head(" 1.3").unwrap(), (1, 3));
    for bad in ["1", "a.b", "1.", "-1.2", ""] {
        assert!(matches!(parse_head(bad), Err(InterveneError::BadHeadName(_))), "{bad}");
    }
    let sweep_bad = sweep(config, weights, &clean, None, Replacement::Zero, Some(100_000));
    assert!(matches!(sweep_bad, Err(InterveneError::Engine(EngineError::IdOutOfVocab { .. }))));
}

#[test]
fn the_sweep_grid_is_each_head_replaced_alone() {
    let model = fixture("llama-tiny");
    let clean = ids_trace(&model, &[7, 8, 9, 10, 11, 12]);
    let grid = sweep(&model.config, &model.weights, &clean, None, Replacement::Mean, None).unwrap();
    assert_eq!(grid.token, top_next_token(&clean));
    assert_eq!((grid.delta_logit.len(), grid.delta_logit[0].len()), (2, 4));
    let one = [Intervention { layer: 1, head: 2, kind: Replacement::Mean }];
    let run = intervene(&model.config, &model.weights, &clean, None, &one).unwrap();
    let logit = run.trace.logits.row(5)[grid.token as usize];
    assert!((grid.delta_logit[1][2] - (logit - grid.clean_logit)).abs() <= 1e-5);
    assert!(grid.flops < grid.full_flops);
}

#[test]
fn the_sweep_equals_full_interventions_and_costs_what_the_kernels_count() {
    for dir in ["gpt2-tiny", "llama-tiny"] {
        let model = fixture(dir);
        let (config, weights) = (&model.config, &model.weights);
        let (clean, source) = (ids_trace(&model, &[5, 6, 7, 8, 9, 10, 11]), ids_trace(&model, &[9, 3, 7, 1, 2, 4, 6]));
        for kind in [Replacement::Zero, Replacement::Mean, Replacement::Patch] {
            ops::take_flops();
            let grid = sweep(config, weights, &clean, Some(&source), kind, Some(3)).unwrap();
            assert_eq!(ops::take_flops(), grid.flops, "{dir} {kind:?}");
            for layer in 0..config.n_layer {
                for head in 0..config.n_head {
                    let ivs = [Intervention { layer, head, kind }];
                    let run = intervene(config, weights, &clean, Some(&source), &ivs).unwrap();
                    let want = run.trace.logits.at(6, 3) - clean.logits.at(6, 3);
                    let got = grid.delta_logit[layer][head];
                    assert!((got - want).abs() <= 1e-5, "{dir} {kind:?} {layer}.{head}: {got} vs {want}");
                }
            }
        }
    }
}

/// Mean probability of the repeated token over the second copy of a
/// sequence shown twice (`length` tokens each).
fn repeat_probability(trace: &Trace, ids: &[u32], length: usize) -> f32 {
    let probs: Vec<f32> = (length..2 * length - 1).map(|i| probability(trace.logits.row(i), ids[i + 1])).collect();
    probs.iter().sum::<f32>() / probs.len() as f32
}

#[test]
fn ablating_the_default_models_induction_heads_lowers_the_repeat_probability() {
    let model = Model::load_dir(&root().join("www/models/default")).unwrap();
    let report = induction_test(&model, 30, 4, 0).unwrap();
    let heads: Vec<_> = report.heads.iter().filter(|h| h.induction >= 0.3).collect();
    assert!(!heads.is_empty(), "the default model has induction heads");
    let length = 30;
    let mut rng = Rng::new(7);
    let half: Vec<u32> = (0..length).map(|_| (rng.next_u64() % model.config.vocab_size as u64) as u32).collect();
    let ids: Vec<u32> = half.iter().chain(&half).copied().collect();
    let clean = ids_trace(&model, &ids);
    for kind in [Replacement::Zero, Replacement::Mean] {
        let ivs: Vec<_> = heads.iter().map(|h| Intervention { layer: h.layer, head: h.head, kind }).collect();
        let run = intervene(&model.config, &model.weights, &clean, None, &ivs).unwrap();
        let (before, after) = (repeat_probability(&clean, &ids, length), repeat_probability(&run.trace, &ids, length));
        eprintln!("{kind:?} ablation of {} induction heads: repeat probability {before:.3} → {after:.3}", ivs.len());
        assert!(after < 0.5 * before, "{kind:?}: {before:.3} → {after:.3}");
    }
}

/// Paced (as the page runs it on a large model): a pause after each re-run
/// layer and each piece of the LM head, and the same run as at once.
#[test]
fn a_paced_intervention_pauses_per_rerun_layer_and_equals_the_run_at_once() {
    let model = fixture("llama-tiny");
    let (config, weights) = (&model.config, &model.weights);
    let clean = ids_trace(&model, &[3, 9, 27, 81, 3, 9]);
    let ivs = [Intervention { layer: 0, head: 1, kind: Replacement::Mean }];
    let whole = intervene(config, weights, &clean, None, &ivs).unwrap();
    let mut pauses = 0;
    let count = async || {
        pauses += 1;
        ControlFlow::Continue(())
    };
    let paced = crate::pace::at_once(intervene_paced(config, weights, &clean, None, &ivs, u64::MAX, count)).unwrap();
    // The first re-run layer's tail (its attention is the clean run's: projection, MLP in,
    // MLP out), each later layer's attention (projection, attention) and tail, then the LM
    // head (one piece at this size).
    let rerun = config.n_layer - whole.first_layer;
    assert_eq!(pauses, 3 + 5 * (rerun - 1) + 1);
    assert_eq!(paced.trace.logits, whole.trace.logits);
    assert_eq!((paced.first_layer, paced.flops), (whole.first_layer, whole.flops));
    // Steps of about 2,000 FLOPs: 16 columns of a product or one query row at a time,
    // many more pauses, the same run within rounding.
    let mut pauses = 0;
    let count = async || {
        pauses += 1;
        ControlFlow::Continue(())
    };
    let small = crate::pace::at_once(intervene_paced(config, weights, &clean, None, &ivs, 2_000, count)).unwrap();
    assert!(pauses > 3 * (3 + 5 * (rerun - 1) + 1), "{pauses} pauses");
    assert!(rerun >= 2, "the attention re-run in pieces is exercised");
    for (a, b) in small.trace.logits.data.iter().zip(&whole.trace.logits.data) {
        assert!((a - b).abs() <= 1e-5 * (1.0 + b.abs()), "{a} vs {b}");
    }
    // A pause that says stop ends it there, with nothing made.
    let mut pauses = 0;
    let stop_at_second = async || {
        pauses += 1;
        if pauses == 2 {
            ControlFlow::Break(())
        } else {
            ControlFlow::Continue(())
        }
    };
    let stopped = crate::pace::at_once(intervene_paced(config, weights, &clean, None, &ivs, 2_000, stop_at_second));
    assert!(matches!(stopped, Err(InterveneError::Stopped)), "{stopped:?}");
    assert_eq!(pauses, 2);
}

/// A clean run that keeps its last logits row alone (the page's) gives an
/// intervened run that does too: its row is the one an intervention on the
/// whole trace gives, its other stages the same, its FLOPs without the LM
/// head on the other rows; a sweep and the lens read the same last row.
#[test]
fn an_intervention_on_a_trace_with_the_last_logits_row_alone() {
    for dir in ["gpt2-tiny", "llama-tiny"] {
        let model = fixture(dir);
        let (config, weights) = (&model.config, &model.weights);
        let vocab = config.vocab_size as u32;
        let ids: Vec<u32> = (0..7).map(|i| (i * 29 + 3) % vocab).collect();
        let clean = ids_trace(&model, &ids);
        let tokens = clean.tokens.clone();
        let run = crate::engine::stepwise::TraceRun::new(config, weights, None, tokens, Mask::Causal).unwrap();
        let last_alone = run.every_logits(false).finish();
        assert_eq!(last_alone.logits.rows, 1, "{dir}");
        let ivs = [Intervention { layer: 0, head: 1, kind: Replacement::Zero }];
        let (whole, alone) = (
            intervene(config, weights, &clean, None, &ivs).unwrap(),
            intervene(config, weights, &last_alone, None, &ivs).unwrap(),
        );
        assert_eq!(alone.trace.logits.rows, 1, "{dir}: as the clean run kept them");
        assert!(max_diff(alone.trace.last_logits(), whole.trace.last_logits()) <= 1e-5, "{dir}");
        assert_eq!(alone.trace.layers[1].mlp_out, whole.trace.layers[1].mlp_out, "{dir}");
        let head_rows = forward_cost(config, 7).lm_head_flops / 7 * 6;
        assert_eq!(alone.flops + head_rows, whole.flops, "{dir}");
        assert!(alone.trace.logits_at(5).is_none() && whole.trace.logits_at(5).is_some(), "{dir}");
        let (a, b) = (
            sweep(config, weights, &last_alone, None, Replacement::Mean, None).unwrap(),
            sweep(config, weights, &clean, None, Replacement::Mean, None).unwrap(),
        );
        // (The LM head on one row may round otherwise than on seven.)
        assert_eq!(a.token, b.token, "{dir}");
        assert!((a.clean_logit - b.clean_logit).abs() <= 1e-5, "{dir}");
        let token = a.token;
        let lens = |t: &Trace, p| crate::engine::lens::direct_contributions(config, weights, t, p, token);
        assert!((lens(&last_alone, 6).unwrap().logit - lens(&clean, 6).unwrap().logit).abs() <= 1e-5, "{dir}");
        assert!(matches!(lens(&last_alone, 5), Err(InterveneError::NoLogitsRow { position: 5, last: 6 })), "{dir}");
    }
}
