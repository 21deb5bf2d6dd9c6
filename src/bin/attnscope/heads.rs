//! `attnscope lens`, `ablate` and `patch`: which heads matter for the next
//! token, as JSON (the engine's `lens` and `intervene` modules).

use std::path::PathBuf;

use attnscope::engine::head_finder::TemplateScores;
use attnscope::engine::intervene::{
    check_head, intervene, parse_head, probability, sweep, top_next_token, Intervention, Replacement,
};
use attnscope::engine::lens::{direct_contributions, logit_lens};
use attnscope::engine::residual::top_indices;
use attnscope::engine::{forward_cpu, Mask, Trace};
use attnscope::model::{Model, Token};
use clap::{Args, ValueEnum};
use serde_json::{json, Value};

use crate::cli::DEFAULT_MODEL;

/// Zero or mean ablation.
#[derive(Clone, Copy, PartialEq, ValueEnum)]
pub enum AblateMode {
    Zero,
    Mean,
}

/// The logit lens (the residual after each sublayer through the final norm and LM head, top
/// tokens per position) and each head's and MLP's direct contribution to a token's logit, as JSON.
#[derive(Args)]
pub struct LensArgs {
    #[arg(long, default_value = DEFAULT_MODEL)]
    pub model: PathBuf,
    #[arg(long, conflicts_with = "ids", required_unless_present = "ids")]
    pub text: Option<String>,
    #[arg(long, value_delimiter = ',')]
    pub ids: Option<Vec<u32>>,
    /// Top tokens per position and point.
    #[arg(long, default_value_t = 5)]
    pub k: usize,
    /// Position (from 0) of the direct contributions; default the last.
    #[arg(long)]
    pub position: Option<usize>,
    /// Token id whose logit is decomposed; default the top-1 there.
    #[arg(long)]
    pub token: Option<u32>,
}

/// Zero- or mean-ablate heads and print the change in a token's next-token logit as JSON;
/// with --sweep, every head alone (a layer × head grid).
#[derive(Args)]
pub struct AblateArgs {
    #[arg(long, default_value = DEFAULT_MODEL)]
    pub model: PathBuf,
    #[arg(long, conflicts_with = "ids", required_unless_present = "ids")]
    pub text: Option<String>,
    #[arg(long, value_delimiter = ',')]
    pub ids: Option<Vec<u32>>,
    /// Heads as LAYER.HEAD (from 0), comma separated.
    #[arg(long, value_delimiter = ',', required_unless_present = "sweep")]
    pub heads: Vec<String>,
    #[arg(long, value_enum, default_value = "zero")]
    pub mode: AblateMode,
    /// Ablate every head in turn instead.
    #[arg(long)]
    pub sweep: bool,
    /// Token id whose logit after the last position is measured; default the clean top-1.
    #[arg(long)]
    pub token: Option<u32>,
    /// Also print the intervened run's whole trace (as `attnscope trace` prints a run) under "trace".
    #[arg(long, conflicts_with = "sweep")]
    pub trace: bool,
}

/// Patch heads' outputs from a second prompt of the same length (in tokens) and print the
/// change in a token's next-token logit as JSON; with --sweep, every head alone.
#[derive(Args)]
pub struct PatchArgs {
    #[arg(long, default_value = DEFAULT_MODEL)]
    pub model: PathBuf,
    /// The clean prompt.
    #[arg(long, conflicts_with = "ids", required_unless_present = "ids")]
    pub text: Option<String>,
    /// The clean prompt as token ids, comma separated.
    #[arg(long, value_delimiter = ',')]
    pub ids: Option<Vec<u32>>,
    /// The prompt the heads' outputs are taken from.
    #[arg(long, conflicts_with = "source_ids", required_unless_present = "source_ids")]
    pub source: Option<String>,
    /// The source prompt as token ids.
    #[arg(long, value_delimiter = ',')]
    pub source_ids: Option<Vec<u32>>,
    #[arg(long, value_delimiter = ',', required_unless_present = "sweep")]
    pub heads: Vec<String>,
    #[arg(long)]
    pub sweep: bool,
    #[arg(long)]
    pub token: Option<u32>,
    /// Also print the intervened run's whole trace (as `attnscope trace` prints a run) under "trace".
    #[arg(long, conflicts_with = "sweep")]
    pub trace: bool,
}

/// The most tokens a lens row may list.
pub const MAX_TOP: usize = 100;

fn trace_of(model: &Model, tokens: Vec<Token>) -> Result<Trace, String> {
    forward_cpu(&model.config, &model.weights, tokens, Mask::Causal).map_err(|e| e.to_string())
}

fn token_json(model: &Model, id: u32) -> Value {
    json!({"id": id, "text": model.tokenizer.id_to_text(id)})
}

/// `--heads 0.1,1.3` as `(layer, head)` pairs checked against the model.
fn heads_of(model: &Model, names: &[String]) -> Result<Vec<(usize, usize)>, String> {
    names
        .iter()
        .map(|name| {
            let (layer, head) = parse_head(name).map_err(|e| e.to_string())?;
            check_head(&model.config, layer, head).map_err(|e| e.to_string())?;
            Ok((layer, head))
        })
        .collect()
}

/// `attnscope lens`: the lens at every residual point and the direct
/// contributions to `token`'s logit at `position` (defaults: the last
/// position, its top-1 next token).
pub fn lens(
    model: &Model,
    tokens: Vec<Token>,
    k: usize,
    position: Option<usize>,
    token: Option<u32>,
) -> Result<Value, String> {
    if !(1..=MAX_TOP).contains(&k) {
        return Err(format!("--k must be between 1 and {MAX_TOP}, not {k}"));
    }
    let trace = trace_of(model, tokens)?;
    let position = position.unwrap_or(trace.tokens.len() - 1);
    let row = trace.logits.row(position.min(trace.tokens.len() - 1));
    let token = token.unwrap_or_else(|| top_indices(row, 1).first().map_or(0, |&(id, _)| id as u32));
    let name = |id: u32| model.tokenizer.id_to_text(id);
    let (config, weights) = (&model.config, &model.weights);
    let direct = direct_contributions(config, weights, &trace, position, token).map_err(|e| e.to_string())?;
    let points = logit_lens(config, weights, &trace, k, &name).map_err(|e| e.to_string())?;
    Ok(json!({
        "model": model.name, "tokens": trace.tokens, "token": token_json(model, token),
        "lens": points, "direct": direct,
    }))
}

/// `attnscope ablate` and `attnscope patch`: the heads replaced together
/// (or, with `sweep`, every head alone) and the change in `token`'s logit
/// after the last position (default: the clean run's top-1 next token).
/// What `ablate` and `patch` print besides the change in the token's logit.
#[derive(Debug, Clone, Copy)]
pub struct Asked {
    /// Every head alone instead (a layer × head grid).
    pub sweep: bool,
    /// The token followed (default: the clean top-1).
    pub token: Option<u32>,
    /// The intervened run's whole trace.
    pub trace: bool,
}

pub fn intervene_json(
    model: &Model,
    tokens: Vec<Token>,
    source: Option<Vec<Token>>,
    kind: Replacement,
    heads: &[String],
    asked: Asked,
) -> Result<Value, String> {
    let Asked { sweep: do_sweep, token, trace: with_trace } = asked;
    let heads = heads_of(model, heads)?;
    if !do_sweep && heads.is_empty() {
        return Err("give --heads L.H,… (layers and heads from 0) or --sweep".into());
    }
    let clean = trace_of(model, tokens)?;
    let source = match source {
        Some(tokens) => Some(trace_of(model, tokens)?),
        None => None,
    };
    let (config, weights) = (&model.config, &model.weights);
    let token = token.unwrap_or_else(|| top_next_token(&clean));
    if token as usize >= config.vocab_size {
        return Err(format!("--token {token} is outside the vocabulary (size {})", config.vocab_size));
    }
    let mut value = json!({
        "model": model.name, "mode": kind, "tokens": clean.tokens, "token": token_json(model, token),
    });
    if let Some(source) = &source {
        value["source_tokens"] = json!(source.tokens);
    }
    if do_sweep {
        let grid = sweep(config, weights, &clean, source.as_ref(), kind, Some(token)).map_err(|e| e.to_string())?;
        value["sweep"] = json!(grid);
        return Ok(value);
    }
    let ivs: Vec<Intervention> = heads.iter().map(|&(layer, head)| Intervention { layer, head, kind }).collect();
    let run = intervene(config, weights, &clean, source.as_ref(), &ivs).map_err(|e| e.to_string())?;
    let (before, after) = (clean.last_logits(), run.trace.last_logits());
    let top = |row: &[f32]| -> Vec<Value> {
        top_indices(row, 5)
            .into_iter()
            .map(|(id, _)| json!({"id": id, "text": model.tokenizer.id_to_text(id as u32), "prob": probability(row, id as u32)}))
            .collect()
    };
    let at = token as usize;
    value["heads"] = json!(heads.iter().map(|(l, h)| format!("{l}.{h}")).collect::<Vec<_>>());
    value["clean"] = json!({"logit": before[at], "prob": probability(before, token), "top": top(before)});
    value["intervened"] = json!({"logit": after[at], "prob": probability(after, token), "top": top(after)});
    value["delta_logit"] = json!(after[at] - before[at]);
    value["first_layer"] = json!(run.first_layer);
    value["flops"] = json!(run.flops);
    value["full_flops"] = json!(run.full_flops);
    if with_trace {
        value["trace"] = serde_json::to_value(&run.trace).map_err(|e| e.to_string())?;
    }
    Ok(value)
}

/// `eval`'s table of the head finder's scores on the text's first `tokens` tokens.
pub fn finder_table(scores: &[TemplateScores], tokens: usize) -> Vec<String> {
    let cell = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.3}"));
    let mut lines = vec![
        format!("head finder on the text's first {tokens} tokens (mean weights; entropy over ln(keys)):"),
        "layer head  previous  first  self  induction  entropy  to-token".to_string(),
    ];
    lines.extend(scores.iter().map(|h| {
        format!(
            "{:>5} {:>4}  {:>8.3}  {:>5.3}  {:>4.3}  {:>9}  {:>7.3}  {:>8}",
            h.layer,
            h.head,
            h.previous_token,
            h.first_token,
            h.self_token,
            cell(h.induction),
            h.entropy,
            cell(h.to_token)
        )
    }));
    lines
}
