//! Head ablation and activation patching on the CPU reference: the forward
//! re-run with chosen heads' outputs (their A·V rows, before the output
//! projection) replaced by zeros, by their mean over the positions of the
//! clean run, or by the same head's output on a second prompt of the same
//! length. Only the layers from the first intervened one on are re-run: the
//! earlier layers, and the first intervened layer's attention (its input is
//! unchanged), are the clean trace's. [`sweep`] ablates every head in turn.

use std::ops::ControlFlow;

use serde::Serialize;
use thiserror::Error;

use super::block_steps::BlockSteps;
use super::cost::forward_cost;
use super::forward::{attention_cpu, block_tail, layer_trace, logits, logits_paced, norm};
use super::{EngineError, HeadTrace, LayerTrace, Matrix, Trace};
use crate::model::{ModelConfig, Weights};

/// What a head's output is replaced by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Replacement {
    /// Zeros (zero ablation).
    Zero,
    /// The head's output on the clean run averaged over positions, the same
    /// vector at every position (mean ablation).
    Mean,
    /// The head's output on the source prompt, position by position (patching).
    Patch,
}

/// One head of one layer (both from 0) and what replaces its output.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Intervention {
    pub layer: usize,
    pub head: usize,
    pub kind: Replacement,
}

#[derive(Debug, Error)]
pub enum InterveneError {
    #[error("there is no head {layer}.{head}: this model has {n_layer} layers of {n_head} heads, numbered from 0")]
    NoSuchHead { layer: usize, head: usize, n_layer: usize, n_head: usize },
    #[error("`{0}` is not a head: write LAYER.HEAD, as 1.3")]
    BadHeadName(String),
    #[error("patching head {layer}.{head} needs a second prompt to take its output from")]
    NoSource { layer: usize, head: usize },
    #[error("patching needs two prompts of the same length in tokens; these have {clean} and {other}")]
    LengthMismatch { clean: usize, other: usize },
    #[error("the trace does not fit this model (its layers, heads or width differ)")]
    TraceMismatch,
    #[error("position {position} is outside the text ({tokens} tokens)")]
    NoSuchPosition { position: usize, tokens: usize },
    #[error("this trace keeps the logits after its last position ({last}) alone, not after position {position}")]
    NoLogitsRow { position: usize, last: usize },
    /// A paced computation's pause said to stop (the page no longer wants the result).
    #[error("stopped: a newer run or request replaced this one")]
    Stopped,
    #[error(transparent)]
    Engine(#[from] EngineError),
}

/// Parses `L.H` (layer and head from 0) into `(layer, head)`.
pub fn parse_head(text: &str) -> Result<(usize, usize), InterveneError> {
    let bad = || InterveneError::BadHeadName(text.to_string());
    let (layer, head) = text.trim().split_once('.').ok_or_else(bad)?;
    Ok((layer.parse().map_err(|_| bad())?, head.parse().map_err(|_| bad())?))
}

/// The result of [`intervene`].
#[derive(Debug, Clone)]
pub struct Intervened {
    /// The whole trace of the intervened run. An intervened head keeps its
    /// attention pattern; its `output` is what replaced it.
    pub trace: Trace,
    /// The first layer re-run (`n_layer` when nothing was replaced).
    pub first_layer: usize,
    /// FLOPs of the re-run (as [`forward_cost`] counts them) and of a full forward.
    pub flops: u64,
    pub full_flops: u64,
}

/// Checks that `trace` has the shape of a run of this model.
pub(super) fn check_trace(config: &ModelConfig, trace: &Trace) -> Result<(), InterveneError> {
    let t = trace.tokens.len();
    let fits = t > 0
        && trace.layers.len() == config.n_layer
        && trace.embeddings.rows == t
        && trace.embeddings.cols == config.n_embd
        && (trace.logits.rows == t || trace.logits.rows == 1)
        && trace.logits.cols == config.vocab_size
        && trace.layers.iter().all(|l| {
            l.attn_out.rows == t
                && l.heads().len() == config.n_head
                && l.heads().iter().all(|h| h.output.rows == t && h.output.cols == config.d_head())
        });
    fits.then_some(()).ok_or(InterveneError::TraceMismatch)
}

/// Checks a head's indices against the config.
pub fn check_head(config: &ModelConfig, layer: usize, head: usize) -> Result<(), InterveneError> {
    if layer < config.n_layer && head < config.n_head {
        return Ok(());
    }
    Err(InterveneError::NoSuchHead { layer, head, n_layer: config.n_layer, n_head: config.n_head })
}

/// The output `[T×d_head]` that replaces head `iv` of the clean run.
fn replacement(clean: &Trace, source: Option<&Trace>, iv: &Intervention) -> Result<Matrix, InterveneError> {
    let output = &clean.layers[iv.layer].heads()[iv.head].output;
    Ok(match iv.kind {
        Replacement::Zero => Matrix::zeros(output.rows, output.cols),
        Replacement::Mean => {
            let mut mean = vec![0.0f32; output.cols];
            for r in 0..output.rows {
                mean.iter_mut().zip(output.row(r)).for_each(|(m, v)| *m += v);
            }
            mean.iter_mut().for_each(|m| *m /= output.rows as f32);
            Matrix::from_vec(output.rows, output.cols, mean.repeat(output.rows))
        }
        Replacement::Patch => {
            let source = source.ok_or(InterveneError::NoSource { layer: iv.layer, head: iv.head })?;
            source.layers[iv.layer].heads()[iv.head].output.clone()
        }
    })
}

/// The heads' outputs side by side, `[T×q_dim]` (head h in columns h·d_head..).
pub(super) fn concat_outputs(heads: &[HeadTrace], t: usize) -> Vec<f32> {
    let mut concat = Vec::with_capacity(t * heads.iter().map(|h| h.output.cols).sum::<usize>());
    for r in 0..t {
        for head in heads {
            concat.extend_from_slice(head.output.row(r));
        }
    }
    concat
}

/// FLOPs of a re-run from `first` on T tokens: the tail (output projection
/// and MLP) of layer `first`, every later layer whole, and the LM head on
/// `logit_rows` rows (T, or the last alone).
pub fn rerun_flops(config: &ModelConfig, t: usize, first: usize, logit_rows: usize) -> u64 {
    let c = forward_cost(config, t);
    let layers = config.n_layer as u64;
    if first as u64 >= layers {
        return 0;
    }
    let attention = (c.qkv_flops + c.scores_flops + c.weighted_sum_flops) / layers;
    let tail = (c.attn_proj_flops + c.mlp_flops) / layers;
    let later = layers - first as u64 - 1;
    tail + later * (attention + tail) + c.lm_head_flops / t.max(1) as u64 * logit_rows.min(t) as u64
}

/// Re-runs the forward of `clean` (a trace of this model) with the heads of
/// `interventions` replaced; `source` is the second prompt's trace that
/// `Patch` reads (same length). Mean ablation averages the clean run's
/// output. A head named twice takes its last replacement.
pub fn intervene(
    config: &ModelConfig,
    weights: &Weights,
    clean: &Trace,
    source: Option<&Trace>,
    interventions: &[Intervention],
) -> Result<Intervened, InterveneError> {
    let whole = u64::MAX;
    crate::pace::at_once(intervene_paced(config, weights, clean, source, interventions, whole, crate::pace::go_on))
}

/// [`intervene`] a layer at a time, awaiting `pause` after each step of
/// about `flops` of a re-run layer (a piece of a product's columns, or of
/// attention's query rows: [`BlockSteps`]) and each piece of the LM head
/// (the page gives the thread back there on a large model); [`InterveneError::Stopped`] as soon
/// as a pause says to stop (a newer run or request made the result
/// unwanted).
pub async fn intervene_paced(
    config: &ModelConfig,
    weights: &Weights,
    clean: &Trace,
    source: Option<&Trace>,
    interventions: &[Intervention],
    flops: u64,
    mut pause: impl AsyncFnMut() -> ControlFlow<()>,
) -> Result<Intervened, InterveneError> {
    check_trace(config, clean)?;
    let t = clean.tokens.len();
    if let Some(source) = source {
        check_trace(config, source)?;
        if source.tokens.len() != t {
            return Err(InterveneError::LengthMismatch { clean: t, other: source.tokens.len() });
        }
    }
    for iv in interventions {
        check_head(config, iv.layer, iv.head)?;
        if iv.kind == Replacement::Patch && source.is_none() {
            return Err(InterveneError::NoSource { layer: iv.layer, head: iv.head });
        }
    }
    let full_flops = forward_cost(config, t).total_flops();
    let Some(first) = interventions.iter().map(|iv| iv.layer).min() else {
        return Ok(Intervened { trace: clean.clone(), first_layer: config.n_layer, flops: 0, full_flops });
    };
    // The re-run layers keep each head's T×T weights, and their norms,
    // stream and MLP hidden layer, as the clean run did.
    let keep = clean.layers.iter().all(LayerTrace::keeps_weights);
    let keep_stages = clean.layers.iter().all(LayerTrace::keeps_stages);
    let mut layers = clean.layers[..first].to_vec();
    let mut x = clean.stream_rows(2 * first, 0..t).ok_or(InterveneError::TraceMismatch)?.into_owned();
    for (l, block) in weights.blocks.iter().enumerate().skip(first) {
        // The first re-run layer reads the clean stream: its attention is the clean one.
        let mut attention = if l == first {
            clean.layers[l].attention.clone()
        } else {
            let half = BlockSteps::attention_half(config, block, x.clone(), clean.mask, flops);
            let half = half.keeping_weights(keep).keeping_stages(keep_stages);
            half.paced(&mut pause).await.ok_or(InterveneError::Stopped)?.into_attention().0
        };
        for iv in interventions.iter().filter(|iv| iv.layer == l) {
            attention.heads[iv.head].output = replacement(clean, source, iv)?;
        }
        let concat = concat_outputs(&attention.heads, t);
        let tail = BlockSteps::tail(config, block, x.clone(), concat, flops).paced(&mut pause).await;
        let tail = tail.ok_or(InterveneError::Stopped)?.into_tail();
        x = tail.resid_post.clone();
        layers.push(layer_trace(config, t, attention, tail, keep_stages));
    }
    let ln_f = norm(config, &x, &weights.ln_f_g, &weights.ln_f_b);
    let d = config.n_embd;
    // Every position's logits, or the last's alone, as the clean run kept them.
    let rows = clean.logits.rows;
    let logits = logits_paced(config, weights, &ln_f[(t - rows) * d..], &mut pause).await;
    let trace = Trace {
        tokens: clean.tokens.clone(),
        mask: clean.mask,
        embeddings: clean.embeddings.clone(),
        layers,
        ln_f: Matrix::from_vec(t, d, ln_f),
        logits: Matrix::from_vec(rows, config.vocab_size, logits.ok_or(InterveneError::Stopped)?),
    };
    Ok(Intervened { trace, first_layer: first, flops: rerun_flops(config, t, first, rows), full_flops })
}

/// FLOPs of [`last_row_logits`] from `first` on T tokens: as [`rerun_flops`],
/// but the last layer's tail and the LM head on one row.
pub fn last_row_flops(config: &ModelConfig, t: usize, first: usize) -> u64 {
    let c = forward_cost(config, t);
    let (layers, t) = (config.n_layer, t.max(1) as u64);
    let attention = (c.qkv_flops + c.scores_flops + c.weighted_sum_flops) / layers as u64;
    let tail = (c.attn_proj_flops + c.mlp_flops) / layers as u64;
    let per_layer = |l: usize| if l + 1 == layers { tail / t } else { tail } + if l == first { 0 } else { attention };
    (first..layers).map(per_layer).sum::<u64>() + c.lm_head_flops / t
}

/// The logits after the last position of a run with `interventions`
/// (non-empty, checked by the caller): what the sweep needs. The layers
/// before the first intervened one are the clean run's, and the last
/// layer's tail and the LM head work row by row, so they run on the last
/// row alone.
pub fn last_row_logits(
    config: &ModelConfig,
    weights: &Weights,
    clean: &Trace,
    source: Option<&Trace>,
    interventions: &[Intervention],
) -> Result<Vec<f32>, InterveneError> {
    crate::pace::at_once(last_row_logits_paced(config, weights, clean, source, interventions, crate::pace::go_on))
}

/// [`last_row_logits`] awaiting `pause` after each re-run layer;
/// [`InterveneError::Stopped`] when a pause says to stop.
pub async fn last_row_logits_paced(
    config: &ModelConfig,
    weights: &Weights,
    clean: &Trace,
    source: Option<&Trace>,
    interventions: &[Intervention],
    mut pause: impl AsyncFnMut() -> ControlFlow<()>,
) -> Result<Vec<f32>, InterveneError> {
    let (t, d, q_dim) = (clean.tokens.len(), config.n_embd, config.q_dim());
    let first = interventions.iter().map(|iv| iv.layer).min().unwrap_or(config.n_layer);
    let entering = clean.stream_rows(2 * first.min(config.n_layer), 0..t);
    let mut x = entering.ok_or(InterveneError::TraceMismatch)?.into_owned();
    for (l, block) in weights.blocks.iter().enumerate().skip(first) {
        let computed;
        let heads = if l == first {
            clean.layers[l].heads()
        } else {
            computed = attention_cpu(config, block, &x, clean.mask).0;
            &computed.heads
        };
        let mut concat = concat_outputs(heads, t);
        for iv in interventions.iter().filter(|iv| iv.layer == l) {
            let out = replacement(clean, source, iv)?;
            let d_head = out.cols;
            for r in 0..t {
                concat[r * q_dim + iv.head * d_head..][..d_head].copy_from_slice(out.row(r));
            }
        }
        x = if l + 1 == config.n_layer {
            block_tail(config, block, &x[(t - 1) * d..], &concat[(t - 1) * q_dim..]).resid_post
        } else {
            block_tail(config, block, &x, &concat).resid_post
        };
        if pause().await.is_break() {
            return Err(InterveneError::Stopped);
        }
    }
    let ln_f = norm(config, &x[x.len() - d..], &weights.ln_f_g, &weights.ln_f_b);
    Ok(logits(config, weights, &ln_f))
}

/// The clean run's most likely next token after the last position.
pub fn top_next_token(trace: &Trace) -> u32 {
    super::residual::top_indices(trace.last_logits(), 1).first().map_or(0, |&(id, _)| id as u32)
}

/// Every head replaced in turn: the change in one token's logit after the last position.
#[derive(Debug, Clone, Serialize)]
pub struct Sweep {
    pub kind: Replacement,
    pub token: u32,
    /// The token's logit and probability on the clean run.
    pub clean_logit: f32,
    pub clean_prob: f32,
    /// `[layer][head]`: intervened logit − clean logit.
    pub delta_logit: Vec<Vec<f32>>,
    /// `[layer][head]`: the token's probability with that head replaced.
    pub prob: Vec<Vec<f32>>,
    /// FLOPs of all the re-runs (each from its head's layer, the last layer's
    /// tail and the LM head on the last row only), and of as many full forwards.
    pub flops: u64,
    pub full_flops: u64,
}

/// Softmax probability of `id` in a logits row (computed in f64).
pub fn probability(row: &[f32], id: u32) -> f32 {
    let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
    let sum: f64 = row.iter().map(|&l| (l as f64 - max).exp()).sum();
    row.get(id as usize).map_or(0.0, |&l| ((l as f64 - max).exp() / sum) as f32)
}

/// Replaces every head in turn by `kind` (`Patch` reads `source`) and
/// measures `token`'s logit after the last position (by default the clean
/// run's top-1 next token).
pub fn sweep(
    config: &ModelConfig,
    weights: &Weights,
    clean: &Trace,
    source: Option<&Trace>,
    kind: Replacement,
    token: Option<u32>,
) -> Result<Sweep, InterveneError> {
    check_trace(config, clean)?;
    if let Some(source) = source {
        check_trace(config, source)?;
        if source.tokens.len() != clean.tokens.len() {
            return Err(InterveneError::LengthMismatch { clean: clean.tokens.len(), other: source.tokens.len() });
        }
    }
    if kind == Replacement::Patch && source.is_none() {
        return Err(InterveneError::NoSource { layer: 0, head: 0 });
    }
    let token = token.unwrap_or_else(|| top_next_token(clean));
    if token as usize >= config.vocab_size {
        return Err(EngineError::IdOutOfVocab { id: token, vocab: config.vocab_size }.into());
    }
    let clean_row = clean.last_logits();
    let clean_logit = clean_row[token as usize];
    let (mut delta_logit, mut prob) = (Vec::new(), Vec::new());
    let (mut flops, mut full_flops) = (0, 0);
    for layer in 0..config.n_layer {
        let (mut deltas, mut probs) = (Vec::new(), Vec::new());
        for head in 0..config.n_head {
            let row = last_row_logits(config, weights, clean, source, &[Intervention { layer, head, kind }])?;
            deltas.push(row[token as usize] - clean_logit);
            probs.push(probability(&row, token));
            flops += last_row_flops(config, clean.tokens.len(), layer);
            full_flops += forward_cost(config, clean.tokens.len()).total_flops();
        }
        delta_logit.push(deltas);
        prob.push(probs);
    }
    let clean_prob = probability(clean_row, token);
    Ok(Sweep { kind, token, clean_logit, clean_prob, delta_logit, prob, flops, full_flops })
}

#[cfg(test)]
#[path = "intervene_tests.rs"]
mod tests;
