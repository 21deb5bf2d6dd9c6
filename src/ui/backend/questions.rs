//! "Which heads matter here?" answered from a CPU trace of the engine: the
//! head finder's scores, the logit lens, direct contributions, an ablation or
//! patch re-run, and one head of a sweep. The CPU backend asks them of its
//! own trace; the GPU backend, until its kernels land, of a CPU trace of the
//! same tokens (`gpu_interim`). Plain functions of (model, trace).

use serde::Serialize;

use super::BackendError;
use crate::engine::head_finder::{painted_scores, template_scores, PaintedPattern};
use crate::engine::intervene::{self, Intervention, Replacement};
use crate::engine::lens::{self, DirectContributions, LensPoint};
use crate::engine::{forward_cpu, sampling, Matrix, Trace};
use crate::inspect::{PaintGrid, Template};
use crate::model::Model;
use crate::ui::state::View;

/// What the head finder scores heads by.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FinderQuery {
    pub template: Template,
    /// The "attends to token X" template's token.
    pub token_x: Option<u32>,
    pub paint: PaintGrid,
}

/// An ablation or patch of the page's run.
#[derive(Debug, Clone, PartialEq)]
pub struct InterventionRequest {
    pub heads: Vec<(usize, usize)>,
    pub mode: Replacement,
    /// The second prompt a patch reads (same token count).
    pub source: Option<String>,
    /// The token whose logit is followed (the clean run's top-1 when `None`).
    pub token: Option<u32>,
}

/// What an ablation or patch did to the next token.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct InterventionOutcome {
    pub token: u32,
    pub clean_logit: f32,
    pub clean_prob: f32,
    pub logit: f32,
    pub prob: f32,
    /// The most likely next tokens after the intervention: (id, text, probability).
    pub top: Vec<(u32, String, f32)>,
    /// The first layer re-run; the layers before it were reused.
    pub first_layer: usize,
    pub n_layer: usize,
    pub flops: u64,
    pub full_flops: u64,
}

/// One head of a sweep: the followed token's Δlogit and probability with it replaced.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct SweepCell {
    pub delta_logit: f32,
    pub prob: f32,
}

fn input(e: impl std::fmt::Display) -> BackendError {
    BackendError::Input(e.to_string())
}

/// Every head's score, layer by layer (`layer · n_head + head`).
pub fn head_scores(trace: &Trace, query: &FinderQuery) -> Vec<Option<f64>> {
    match query.scoring() {
        Scoring::Nothing => vec![None; trace.layers.iter().map(|l| l.heads().len()).sum()],
        Scoring::Painted(pattern) => painted_scores(trace, &pattern).into_iter().map(Some).collect(),
        Scoring::Template(t) => template_scores(trace, query.token_x).iter().map(|s| t.pick(s)).collect(),
    }
}

/// How a [`FinderQuery`] is scored, on either backend.
pub enum Scoring {
    /// No score is defined: "attends to token X" with no token chosen.
    Nothing,
    /// Overlap with the user's painted pattern.
    Painted(PaintedPattern),
    /// One of the template scores (computed together), picked.
    Template(Template),
}

impl FinderQuery {
    pub fn scoring(&self) -> Scoring {
        match self.template {
            Template::ToToken if self.token_x.is_none() => Scoring::Nothing,
            Template::Painted => Scoring::Painted(self.paint.pattern()),
            t => Scoring::Template(t),
        }
    }
}

/// The logit lens, `k` tokens per position.
pub fn logit_lens(model: &Model, trace: &Trace, k: usize) -> Result<Vec<LensPoint>, BackendError> {
    let name = |id: u32| model.tokenizer.decode(&[id]);
    lens::logit_lens(&model.config, &model.weights, trace, k, &name).map_err(input)
}

/// Each head's and MLP's direct contribution to `token`'s logit after the last position.
pub fn contributions(model: &Model, trace: &Trace, token: u32) -> Result<DirectContributions, BackendError> {
    let last = trace.tokens.len().checked_sub(1).ok_or(BackendError::NotReady("nothing has run yet"))?;
    lens::direct_contributions(&model.config, &model.weights, trace, last, token).map_err(input)
}

/// The trace of the second prompt, with `clean`'s mask; it must have as many tokens.
fn source_trace(model: &Model, clean: &Trace, source: &str) -> Result<Trace, BackendError> {
    let tokens = model.tokenizer.encode(source).map_err(input)?;
    if tokens.len() != clean.tokens.len() {
        return Err(input(intervene::InterveneError::LengthMismatch {
            clean: clean.tokens.len(),
            other: tokens.len(),
        }));
    }
    Ok(forward_cpu(&model.config, &model.weights, tokens, clean.mask)?)
}

/// The source trace a request needs (patching only).
fn source_for(
    model: &Model,
    clean: &Trace,
    mode: Replacement,
    source: Option<&str>,
) -> Result<Option<Trace>, BackendError> {
    match (mode, source) {
        (Replacement::Patch, Some(text)) if !text.is_empty() => Ok(Some(source_trace(model, clean, text)?)),
        (Replacement::Patch, _) => {
            Err(input("patching needs a second prompt: type one with the same number of tokens"))
        }
        _ => Ok(None),
    }
}

/// Re-runs `clean` with the request's heads replaced, from the first of their layers on.
pub fn intervene(model: &Model, clean: &Trace, req: &InterventionRequest) -> Result<InterventionOutcome, BackendError> {
    let (config, weights) = (&model.config, &model.weights);
    let source = source_for(model, clean, req.mode, req.source.as_deref())?;
    let ivs: Vec<Intervention> =
        req.heads.iter().map(|&(layer, head)| Intervention { layer, head, kind: req.mode }).collect();
    let run = intervene::intervene(config, weights, clean, source.as_ref(), &ivs).map_err(input)?;
    let token = req.token.unwrap_or_else(|| intervene::top_next_token(clean));
    let last = clean.tokens.len() - 1;
    let (clean_row, row) = (clean.logits.row(last), run.trace.logits.row(last));
    let at = |r: &[f32]| {
        r.get(token as usize).copied().ok_or_else(|| input(format!("token {token} is not in the vocabulary")))
    };
    let probs = sampling::probabilities(row, 1.0);
    let top = sampling::candidates(&probs, Some(super::TOP_K), None)
        .into_iter()
        .map(|(id, _)| (id, model.tokenizer.decode(&[id]), probs.get(id as usize).map_or(0.0, |&p| p as f32)))
        .collect();
    Ok(InterventionOutcome {
        token,
        clean_logit: at(clean_row)?,
        clean_prob: intervene::probability(clean_row, token),
        logit: at(row)?,
        prob: intervene::probability(row, token),
        top,
        first_layer: run.first_layer,
        n_layer: config.n_layer,
        flops: run.flops,
        full_flops: run.full_flops,
    })
}

/// One head of a sweep: `(layer, head)` replaced by `mode` alone.
pub fn sweep_head(
    model: &Model,
    clean: &Trace,
    head: (usize, usize),
    mode: Replacement,
    source: Option<&str>,
    token: u32,
) -> Result<SweepCell, BackendError> {
    let (config, weights) = (&model.config, &model.weights);
    intervene::check_head(config, head.0, head.1).map_err(input)?;
    let source = source_for(model, clean, mode, source)?;
    let iv = [Intervention { layer: head.0, head: head.1, kind: mode }];
    let row = intervene::last_row_logits(config, weights, clean, source.as_ref(), &iv).map_err(input)?;
    let clean_row = clean.logits.row(clean.tokens.len() - 1);
    let (Some(after), Some(before)) = (row.get(token as usize), clean_row.get(token as usize)) else {
        return Err(input(format!("token {token} is not in the vocabulary")));
    };
    Ok(SweepCell { delta_logit: after - before, prob: intervene::probability(&row, token) })
}

/// Two prompts compared: the shown stage of each (A − B drawn) and the
/// next-token probabilities after each.
#[derive(Debug, Clone, PartialEq)]
pub struct PromptDiff {
    /// The view's matrix on A and on B; `None` when the prompts' token counts differ.
    pub stages: Option<(Matrix, Matrix)>,
    pub a_tokens: Vec<String>,
    pub b_tokens: Vec<String>,
    /// Tokens likely after either prompt: (id, text, P after A, P after B), largest |change| first.
    pub next: Vec<(u32, String, f32, f32)>,
}

/// Prompt A (the page's run, `trace`) against prompt `b` at `view`.
pub fn diff(model: &Model, trace: &Trace, b: &str, view: View) -> Result<PromptDiff, BackendError> {
    let tokens = model.tokenizer.encode(b).map_err(input)?;
    if tokens.is_empty() {
        return Err(input("type a second prompt to compare with"));
    }
    let other = forward_cpu(&model.config, &model.weights, tokens, trace.mask)?;
    let head = |t: &Trace| -> Result<Matrix, BackendError> {
        let h = t
            .layers
            .get(view.layer)
            .and_then(|l| l.heads().get(view.head))
            .ok_or_else(|| input(format!("layer {}, head {} is not in the model", view.layer, view.head)))?;
        Ok(view.stage.matrix(h).clone())
    };
    let stages = if other.tokens.len() == trace.tokens.len() { Some((head(trace)?, head(&other)?)) } else { None };
    let last = |t: &Trace| sampling::probabilities(t.logits.row(t.tokens.len() - 1), 1.0);
    let (pa, pb) = (last(trace), last(&other));
    let mut ids: Vec<u32> = sampling::candidates(&pa, Some(6), None)
        .into_iter()
        .chain(sampling::candidates(&pb, Some(6), None))
        .map(|(id, _)| id)
        .collect();
    ids.sort_unstable();
    ids.dedup();
    let p = |probs: &[f64], id: u32| probs.get(id as usize).map_or(0.0, |&v| v as f32);
    let mut next: Vec<(u32, String, f32, f32)> =
        ids.into_iter().map(|id| (id, model.tokenizer.decode(&[id]), p(&pa, id), p(&pb, id))).collect();
    next.sort_by(|x, y| (y.3 - y.2).abs().total_cmp(&(x.3 - x.2).abs()));
    let texts = |t: &Trace| t.tokens.iter().map(|t| t.text.clone()).collect();
    Ok(PromptDiff { stages, a_tokens: texts(trace), b_tokens: texts(&other), next })
}
