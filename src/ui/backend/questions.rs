//! "Which heads matter here?" answered from a CPU trace of the engine: the
//! head finder's scores, the logit lens, direct contributions, an ablation or
//! patch re-run, one head of a sweep and the two-prompt diff; and the parts
//! both engines share (checking a request, a patch's source, an outcome from
//! two logit rows, a diff from its stages and logits). The CPU backend asks
//! them of its own trace; the GPU backend computes with its kernels
//! (`gpu_heads`, `gpu_intervene`) and shares the rest. Plain functions.

use std::ops::{ControlFlow, Range};

use serde::Serialize;

use super::BackendError;
use crate::engine::head_finder::{painted_score_weights, PaintedPattern, Templates};
use crate::engine::intervene::{self, InterveneError, Intervention, Replacement};
use crate::engine::lens::{self, DirectContributions, LensPoint};
use crate::engine::rank::{self, Direction};
use crate::engine::residual::residual_points;
use crate::engine::{sampling, Matrix, Trace};
use crate::inspect::{PaintGrid, Template};
use crate::model::{Model, Token};
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
    /// The heads replaced (sorted), and how.
    pub heads: Vec<(usize, usize)>,
    #[serde(skip)]
    pub mode: Replacement,
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

/// An engine question's error: a paced one stopped by its pause was superseded.
fn asked(e: InterveneError) -> BackendError {
    match e {
        InterveneError::Stopped => BackendError::Superseded,
        e => input(e),
    }
}

/// Multiply-adds of one piece of a head's weights computed between pauses
/// (SmolLM2's map at T = 2,048 is 268 million: at once, a task of ~270 ms).
const MAP_PIECE_MACS: usize = 1 << 22;

/// Every head's score, layer by layer (`layer · n_head + head`), a head at
/// a time, awaiting `pause` after each (a head whose weights the trace
/// computes when read costs T²·d_head multiply-adds, SmolLM2's 270 heads
/// at 2,048 tokens 268 million each: computed a piece of rows at a time,
/// awaiting `pause` between pieces too); superseded when a pause says to
/// stop.
pub async fn head_scores_paced(
    trace: &Trace,
    query: &FinderQuery,
    mut pause: impl AsyncFnMut() -> ControlFlow<()>,
) -> Result<Vec<Option<f64>>, BackendError> {
    let scoring = query.scoring();
    let templates = matches!(scoring, Scoring::Template(_)).then(|| Templates::new(trace, query.token_x));
    let mut scores = Vec::new();
    for (layer, l) in trace.layers.iter().enumerate() {
        for (head, h) in l.heads().iter().enumerate() {
            // A head whose weights the trace computes: a piece of rows at a time, pausing between.
            let t = h.tokens();
            let w = match &h.kept_weights {
                Some(w) => std::borrow::Cow::Borrowed(w),
                None => {
                    let piece = (MAP_PIECE_MACS / (t * h.q.cols).max(1)).max(1);
                    let mut values = Vec::with_capacity(t * t);
                    for start in (0..t).step_by(piece) {
                        values.extend(h.weight_rows(start..(start + piece).min(t)));
                        if pause().await.is_break() {
                            return Err(BackendError::Superseded);
                        }
                    }
                    std::borrow::Cow::Owned(crate::engine::SquareMatrix::from_vec(t, values))
                }
            };
            scores.push(match (&scoring, &templates) {
                (Scoring::Painted(pattern), _) => Some(painted_score_weights(h, &w, pattern)),
                (Scoring::Template(tp), Some(templates)) => tp.pick(&templates.score_weights(layer, head, h, &w)),
                _ => None,
            });
            if pause().await.is_break() {
                return Err(BackendError::Superseded);
            }
        }
    }
    Ok(scores)
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

/// The logit lens at every point of the stream, `k` tokens per position at `positions`.
pub fn logit_lens(
    model: &Model,
    trace: &Trace,
    k: usize,
    positions: Range<usize>,
) -> Result<Vec<LensPoint>, BackendError> {
    (0..residual_points(model.config.n_layer))
        .map(|point| crate::pace::at_once(lens_point(model, trace, point, positions.clone(), k, crate::pace::go_on)))
        .collect()
}

/// The logit lens at one point of the stream, awaiting `pause` after each
/// piece of the LM head.
pub async fn lens_point(
    model: &Model,
    trace: &Trace,
    point: usize,
    positions: Range<usize>,
    k: usize,
    pause: impl AsyncFnMut() -> ControlFlow<()>,
) -> Result<LensPoint, BackendError> {
    let name = |id: u32| model.tokenizer.decode(&[id]);
    lens::lens_point(&model.config, &model.weights, trace, point, positions, k, &name, pause).await.map_err(asked)
}

/// Each head's and MLP's direct contribution to `token`'s logit after the last position.
pub fn contributions(model: &Model, trace: &Trace, token: u32) -> Result<DirectContributions, BackendError> {
    let last = trace.tokens.len().checked_sub(1).ok_or(BackendError::NotReady("nothing has run yet"))?;
    lens::direct_contributions(&model.config, &model.weights, trace, last, token).map_err(input)
}

/// The request's heads as interventions, checked against the model.
pub fn interventions(model: &Model, req: &InterventionRequest) -> Result<Vec<Intervention>, BackendError> {
    req.heads
        .iter()
        .map(|&(layer, head)| {
            intervene::check_head(&model.config, layer, head).map_err(input)?;
            Ok(Intervention { layer, head, kind: req.mode })
        })
        .collect()
}

/// The second prompt a patch reads, tokenized: it must have `clean_len` tokens.
pub fn patch_source(
    model: &Model,
    req: &InterventionRequest,
    clean_len: usize,
) -> Result<Option<Vec<Token>>, BackendError> {
    match (req.mode, req.source.as_deref()) {
        (Replacement::Patch, Some(text)) if !text.is_empty() => {
            let tokens = model.tokenizer.encode(text).map_err(input)?;
            if tokens.len() != clean_len {
                return Err(input(intervene::InterveneError::LengthMismatch { clean: clean_len, other: tokens.len() }));
            }
            Ok(Some(tokens))
        }
        (Replacement::Patch, _) => {
            Err(input("patching needs a second prompt: type one with the same number of tokens"))
        }
        _ => Ok(None),
    }
}

/// The re-run's work, for the outcome: its first layer and FLOPs against a full forward.
#[derive(Debug, Clone, Copy)]
pub struct RerunCost {
    pub first_layer: usize,
    pub flops: u64,
    pub full_flops: u64,
}

/// What an intervention did to the next token, from the last position's
/// logits before (`clean_row`) and after (`row`); the request's token is
/// followed, by default the clean run's top-1.
pub fn outcome(
    model: &Model,
    req: &InterventionRequest,
    clean_row: &[f32],
    row: &[f32],
    cost: RerunCost,
) -> Result<InterventionOutcome, BackendError> {
    let token = req
        .token
        .unwrap_or_else(|| crate::engine::residual::top_indices(clean_row, 1).first().map_or(0, |&(id, _)| id as u32));
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
        heads: req.heads.clone(),
        mode: req.mode,
        first_layer: cost.first_layer,
        n_layer: model.config.n_layer,
        flops: cost.flops,
        full_flops: cost.full_flops,
    })
}

/// Re-runs `clean` with the request's heads replaced, from the first of
/// their layers on: what it did to the next token, and the re-run's trace.
pub fn intervene(
    model: &Model,
    clean: &Trace,
    req: &InterventionRequest,
) -> Result<(InterventionOutcome, Trace), BackendError> {
    crate::pace::at_once(intervene_paced(model, clean, req, u64::MAX, crate::pace::go_on))
}

/// [`intervene`] a step of about `flops` of a re-run layer (and the patch
/// source's run a step) at a time, awaiting `pause` between them;
/// superseded when a pause says to stop.
pub async fn intervene_paced(
    model: &Model,
    clean: &Trace,
    req: &InterventionRequest,
    flops: u64,
    mut pause: impl AsyncFnMut() -> ControlFlow<()>,
) -> Result<(InterventionOutcome, Trace), BackendError> {
    let (config, weights) = (&model.config, &model.weights);
    let ivs = interventions(model, req)?;
    let source = match patch_source(model, req, clean.tokens.len())? {
        Some(tokens) => Some(super::run_paced(model, None, tokens, clean.mask, &mut pause).await?),
        None => None,
    };
    let run = intervene::intervene_paced(config, weights, clean, source.as_ref(), &ivs, flops, &mut pause)
        .await
        .map_err(asked)?;
    if clean.tokens.is_empty() {
        return Err(BackendError::NotReady("nothing has run yet"));
    }
    let cost = RerunCost { first_layer: run.first_layer, flops: run.flops, full_flops: run.full_flops };
    Ok((outcome(model, req, clean.last_logits(), run.trace.last_logits(), cost)?, run.trace))
}

/// One head of a sweep: `(layer, head)` replaced by `mode` alone, a layer
/// (and the patch source's run a step) at a time, awaiting `pause` between
/// them (`pace::go_on` and `pace::at_once` take it at once); superseded
/// when a pause says to stop.
pub async fn sweep_head_paced(
    model: &Model,
    clean: &Trace,
    head: (usize, usize),
    mode: Replacement,
    source: Option<&str>,
    token: u32,
    mut pause: impl AsyncFnMut() -> ControlFlow<()>,
) -> Result<SweepCell, BackendError> {
    let (config, weights) = (&model.config, &model.weights);
    intervene::check_head(config, head.0, head.1).map_err(input)?;
    let req = InterventionRequest { heads: vec![head], mode, source: source.map(str::to_owned), token: Some(token) };
    let source = match patch_source(model, &req, clean.tokens.len())? {
        Some(tokens) => Some(super::run_paced(model, None, tokens, clean.mask, &mut pause).await?),
        None => None,
    };
    let iv = [Intervention { layer: head.0, head: head.1, kind: mode }];
    let row = intervene::last_row_logits_paced(config, weights, clean, source.as_ref(), &iv, &mut pause)
        .await
        .map_err(asked)?;
    let clean_row = clean.last_logits();
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

/// Prompt A (the page's run, `trace`) against prompt `b` at `view`; when A
/// is shown with heads replaced (`shown`), B is run with the same heads replaced.
pub fn diff(
    model: &Model,
    trace: &Trace,
    b: &str,
    view: View,
    shown: Option<&InterventionRequest>,
) -> Result<PromptDiff, BackendError> {
    let tokens = model.tokenizer.encode(b).map_err(input)?;
    if tokens.is_empty() {
        return Err(input("type a second prompt to compare with"));
    }
    let limit = super::cpu_token_limit(model);
    if tokens.len() > limit {
        return Err(input(format!(
            "prompt B is {} tokens long, but on the CPU the page runs at most {limit} tokens of this model (every \
             per-token stage of a run is kept in memory): shorten it",
            tokens.len()
        )));
    }
    let mut other = super::cpu_run(model, None, tokens, trace.mask)?.finish();
    if let Some(req) = shown {
        other =
            intervene(model, &other, req).map_err(|e| input(format!("prompt B with the same heads replaced: {e}")))?.1;
    }
    let head = |t: &Trace| -> Result<Matrix, BackendError> {
        let h = t
            .layers
            .get(view.layer)
            .and_then(|l| l.heads().get(view.head))
            .ok_or_else(|| input(format!("layer {}, head {} is not in the model", view.layer, view.head)))?;
        Ok(view.stage.matrix(h).into_owned())
    };
    let stages = if other.tokens.len() == trace.tokens.len() { Some((head(trace)?, head(&other)?)) } else { None };
    let last = |t: &Trace| t.last_logits().to_vec();
    let texts = |t: &Trace| t.tokens.iter().map(|t| t.text.clone()).collect();
    Ok(diff_of(model, stages, texts(trace), texts(&other), &last(trace), &last(&other)))
}

/// The diff from its parts: the stage on A and B (same length only), the
/// prompts' token texts and their last positions' logits.
pub fn diff_of(
    model: &Model,
    stages: Option<(Matrix, Matrix)>,
    a_tokens: Vec<String>,
    b_tokens: Vec<String>,
    a_logits: &[f32],
    b_logits: &[f32],
) -> PromptDiff {
    let (pa, pb) = (sampling::probabilities(a_logits, 1.0), sampling::probabilities(b_logits, 1.0));
    let mut ids: Vec<u32> = sampling::candidates(&pa, Some(6), None)
        .into_iter()
        .chain(sampling::candidates(&pb, Some(6), None))
        .map(|(id, _)| id)
        .collect();
    ids.sort_unstable();
    ids.dedup();
    let p = |probs: &[f64], id: u32| probs.get(id as usize).map_or(0.0, |&v| v as f32);
    let next: Vec<(u32, String, f32, f32)> =
        ids.into_iter().map(|id| (id, model.tokenizer.decode(&[id]), p(&pa, id), p(&pb, id))).collect();
    let next = rank::sorted(next, |x| (x.3 - x.2).abs() as f64, Direction::Descending);
    PromptDiff { stages, a_tokens, b_tokens, next }
}
