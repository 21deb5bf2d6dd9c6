//! What trained heads do, measured on the engine's own traces: loss on
//! held-out text, previous-token and first-token (sink) attention, and the
//! induction test on a repeated random sequence.

use serde::Serialize;

use super::sampling::Rng;
use super::{forward_cpu, EngineError, Mask, Trace};
use crate::model::{Model, Token};

fn tokens_of(ids: &[u32]) -> Vec<Token> {
    ids.iter().map(|&id| Token { id, text: String::new(), start: 0, end: 0 }).collect()
}

/// −log p(target) under the logits row, in nats, computed in f64.
fn nll(logits: &[f32], target: u32) -> f64 {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
    let log_sum = logits.iter().map(|&l| (l as f64 - max).exp()).sum::<f64>().ln() + max;
    log_sum - logits[target as usize] as f64
}

/// Per-position next-token losses of one trace: entry i is −log p(ids[i+1] | ids[..=i]),
/// NaN where the trace holds no logits row (one with the last row alone).
pub fn position_losses(trace: &Trace) -> Vec<f64> {
    let loss = |i: usize| trace.logits_at(i).map_or(f64::NAN, |row| nll(row, trace.tokens[i + 1].id));
    (0..trace.tokens.len().saturating_sub(1)).map(loss).collect()
}

/// The smallest context the evaluation works in: the induction test shows a
/// random sequence of at least 2 tokens twice (a 1-token sequence has no
/// "token after its first occurrence" to attend to).
pub const MIN_EVAL_CONTEXT: usize = 4;

/// The longest window [`mean_loss`] and [`attention_scores_by_head`] run:
/// their traces keep a T×T matrix per head, so a long context (8192 for
/// SmolLM2, 270 heads) would need tens of gigabytes; 256 tokens keep a
/// whole trace of SmolLM2 near 350 MB (`engine::trace_bytes`).
pub const MAX_EVAL_WINDOW: usize = 256;

/// The window the evaluation cuts text into: the context, at most [`MAX_EVAL_WINDOW`].
pub fn eval_window(model: &Model) -> usize {
    model.config.n_positions.min(MAX_EVAL_WINDOW)
}

/// Refuses a model whose context is too short for [`mean_loss`] and
/// [`induction_test`], saying why, before any work is done.
pub fn check_eval_context(model: &Model) -> Result<(), EngineError> {
    if model.config.n_positions < MIN_EVAL_CONTEXT {
        return Err(EngineError::ContextTooShort {
            what: "the evaluation (its induction test shows 2 random tokens twice)",
            needed: MIN_EVAL_CONTEXT,
            limit: model.config.n_positions,
        });
    }
    Ok(())
}

/// Mean next-token loss (nats) over `ids`, cut into non-overlapping windows
/// of the model's context (at most [`MAX_EVAL_WINDOW`]); returns (mean loss, tokens predicted). An error,
/// not NaN, when nothing can be predicted.
pub fn mean_loss(model: &Model, ids: &[u32]) -> Result<(f64, usize), EngineError> {
    if model.config.n_positions < 2 {
        return Err(EngineError::ContextTooShort {
            what: "a loss (a token and the next one)",
            needed: 2,
            limit: model.config.n_positions,
        });
    }
    if ids.len() < 2 {
        return Err(EngineError::TextTooShort { needed: 2, found: ids.len() });
    }
    let (mut total, mut count) = (0.0, 0);
    for window in ids.chunks(eval_window(model)).filter(|w| w.len() > 1) {
        let trace = forward_cpu(&model.config, &model.weights, tokens_of(window), Mask::Causal)?;
        let losses = position_losses(&trace);
        total += losses.iter().sum::<f64>();
        count += losses.len();
    }
    Ok((if count > 0 { total / count as f64 } else { f64::NAN }, count))
}

/// How one head attends, averaged over query positions.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct HeadScore {
    pub layer: usize,
    pub head: usize,
    /// Mean weight on the previous token (queries i ≥ 1 → key i − 1).
    pub previous_token: f64,
    /// Mean weight on the first token (queries i ≥ 1 → key 0): the attention sink.
    pub first_token: f64,
    /// Mean weight from each token of the second copy to the token after its
    /// earlier occurrence (only set by [`induction_test`]).
    pub induction: f64,
}

/// Previous-token and first-token scores of every head over `ids` (windows
/// of the context, at most [`MAX_EVAL_WINDOW`]).
pub fn attention_scores_by_head(model: &Model, ids: &[u32]) -> Result<Vec<HeadScore>, EngineError> {
    let (layers, heads) = (model.config.n_layer, model.config.n_head);
    let mut sums = vec![(0.0, 0.0); layers * heads];
    let mut count = 0usize;
    for window in ids.chunks(eval_window(model)).filter(|w| w.len() > 1) {
        let trace = forward_cpu(&model.config, &model.weights, tokens_of(window), Mask::Causal)?;
        for (l, layer) in trace.layers.iter().enumerate() {
            for (h, head) in layer.heads().iter().enumerate() {
                let s = &mut sums[l * heads + h];
                for i in 1..window.len() {
                    s.0 += head.weight(i, i - 1) as f64;
                    s.1 += head.weight(i, 0) as f64;
                }
            }
        }
        count += window.len() - 1;
    }
    Ok((0..layers * heads)
        .map(|k| HeadScore {
            layer: k / heads,
            head: k % heads,
            previous_token: sums[k].0 / count.max(1) as f64,
            first_token: sums[k].1 / count.max(1) as f64,
            induction: 0.0,
        })
        .collect())
}

/// Mean softmax weight that the queries after `key` give to it, per
/// layer and head (`[layer · heads + head]`): how much later text still attends
/// to one token (an instruction, say). NaN for every head when no query comes after it.
pub fn attention_to(trace: &Trace, key: usize) -> Vec<f64> {
    let t = trace.tokens.len();
    trace
        .layers
        .iter()
        .flat_map(|layer| layer.heads().iter())
        .map(|head| {
            let later = key + 1..t;
            if later.is_empty() {
                return f64::NAN;
            }
            later.clone().map(|q| head.weight(q, key) as f64).sum::<f64>() / later.len() as f64
        })
        .collect()
}

/// Mean weight on the first token from every later query, per layer and
/// head: the "attention sink" most trained heads park unused weight on.
pub fn first_token_weights(trace: &Trace) -> Vec<f64> {
    attention_to(trace, 0)
}

#[derive(Debug, Clone, Serialize)]
pub struct InductionReport {
    /// Length of the random sequence (it is shown twice).
    pub length: usize,
    pub sequences: usize,
    /// Mean loss (nats) on the first copy's tokens and on the second copy's.
    pub loss_first_copy: f64,
    pub loss_second_copy: f64,
    pub heads: Vec<HeadScore>,
}

/// Sequences of `length` random tokens shown twice: a head that looks from
/// each token of the second copy to the token after its first occurrence is
/// an induction head, and the model predicts the second copy far better.
pub fn induction_test(
    model: &Model,
    length: usize,
    sequences: usize,
    seed: u64,
) -> Result<InductionReport, EngineError> {
    if length < 2 {
        return Err(EngineError::ContextTooShort {
            what: "the induction test (a random sequence of at least 2 tokens, shown twice)",
            needed: 4,
            limit: model.config.n_positions,
        });
    }
    if sequences == 0 {
        return Err(EngineError::TextTooShort { needed: 1, found: 0 });
    }
    let (layers, heads) = (model.config.n_layer, model.config.n_head);
    let mut rng = Rng::new(seed);
    let mut scores = vec![0.0; layers * heads];
    let (mut first, mut second) = (0.0, 0.0);
    let vocab = model.config.vocab_size as u64;
    for _ in 0..sequences {
        let half: Vec<u32> = (0..length).map(|_| (rng.next_u64() % vocab) as u32).collect();
        let ids: Vec<u32> = half.iter().chain(&half).copied().collect();
        let trace = forward_cpu(&model.config, &model.weights, tokens_of(&ids), Mask::Causal)?;
        let losses = position_losses(&trace);
        // losses[i] predicts ids[i + 1]: the first copy's tokens 1..length, the second copy's length+1..2·length.
        first += losses[..length - 1].iter().sum::<f64>() / (length - 1) as f64;
        second += losses[length..].iter().sum::<f64>() / (length - 1) as f64;
        for (l, layer) in trace.layers.iter().enumerate() {
            for (h, head) in layer.heads().iter().enumerate() {
                let mut s = 0.0;
                for i in 0..length - 1 {
                    s += head.weight(length + i, i + 1) as f64;
                }
                scores[l * heads + h] += s / (length - 1) as f64;
            }
        }
    }
    let n = sequences.max(1) as f64;
    Ok(InductionReport {
        length,
        sequences,
        loss_first_copy: first / n,
        loss_second_copy: second / n,
        heads: (0..layers * heads)
            .map(|k| HeadScore {
                layer: k / heads,
                head: k % heads,
                previous_token: 0.0,
                first_token: 0.0,
                induction: scores[k] / n,
            })
            .collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::init::random_weights;
    use crate::model::ModelConfig;

    #[test]
    fn attention_to_a_key_averages_the_later_queries() {
        let config = ModelConfig::tiny(2, 3, 12, 16, 20);
        let w = random_weights(&config, 2);
        let trace = forward_cpu(&config, &w, tokens_of(&[1, 5, 9, 2, 7]), Mask::Causal).unwrap();
        let to_1 = attention_to(&trace, 1);
        assert_eq!(to_1.len(), 6);
        let head = &trace.layers[1].heads()[2];
        let want = (2..5).map(|q| head.weight(q, 1) as f64).sum::<f64>() / 3.0;
        assert!((to_1[5] - want).abs() < 1e-12);
        assert!(attention_to(&trace, 4).iter().all(|v| v.is_nan()), "nothing after the last token");
        // The sink score is the same as attention_scores_by_head's first-token score on one window.
        let sink = first_token_weights(&trace);
        assert!(sink.iter().all(|&v| (0.0..=1.0).contains(&v)));
    }
}
