//! The logit lens and direct contributions, from a trace of the CPU engine.
//!
//! Lens: the residual stream after the embeddings and after each attention
//! and MLP sublayer, put through the final norm and the LM head as if the
//! model stopped there, with its top tokens per position.
//!
//! Direct contributions: the final residual at a position is the sum of the
//! embeddings, each head's output through its slice of the output projection
//! (`out_h · W_o[h]`), each layer's attention output bias, and each MLP's
//! output (its bias included). The final norm is linearized at the final
//! residual: its per-position factor `s` (1/√(var + ε) for LayerNorm,
//! 1/√(mean(x²) + ε) for RMSNorm) is computed once from the final residual
//! and held fixed, so the norm is the linear map `c ↦ s·g ⊙ P(c)` plus its
//! shift `b`, where P subtracts the mean of c's entries (LayerNorm) or is
//! the identity (RMSNorm). A term's contribution to a token's logit is that
//! map applied to the term, dotted with the token's row of the LM head.
//! Because the centring is linear and `s` is the one the model used, the
//! contributions plus the shift's term sum to the logit exactly (up to
//! rounding); what the linearization leaves out is only how each term would
//! have changed `s` on its own.

use std::ops::{ControlFlow, Range};

use serde::Serialize;

use super::forward::{logits_paced, norm};
use super::intervene::{check_trace, InterveneError};
use super::residual::{residual_point_name, residual_points, top_indices};
use super::{EngineError, Trace};
use crate::model::{ModelConfig, Weights};

/// One token of a lens row: its id, text, probability and logit.
#[derive(Debug, Clone, Serialize)]
pub struct LensToken {
    pub id: u32,
    pub text: String,
    pub prob: f32,
    pub logit: f32,
}

/// The lens at one point of the residual stream, at a run of positions.
#[derive(Debug, Clone, Serialize)]
pub struct LensPoint {
    /// "embeddings", "L0 + attention", "L0 + MLP", …
    pub name: String,
    /// The position of `top`'s first entry.
    pub first: usize,
    /// Per position from `first` on, the top tokens, most likely first.
    pub top: Vec<Vec<LensToken>>,
}

/// The probabilities of `top`'s entries under the softmax of their logits
/// `row`: `e^(l − max) / Σ e^(l − max)`, the sum over the whole row in one
/// vectorised pass (eight f32 partial sums, added in f64), so no row of
/// probabilities is allocated for the k that are shown.
fn top_probabilities(row: &[f32], top: &[(usize, f32)]) -> Vec<f32> {
    use crate::engine::kernels::exp;
    const LANES: usize = 8;
    let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let mut acc = [0.0f32; LANES];
    let chunks = row.chunks_exact(LANES);
    let tail: f64 = chunks.remainder().iter().map(|&l| exp(l - max) as f64).sum();
    for x in chunks {
        for l in 0..LANES {
            acc[l] += exp(x[l] - max);
        }
    }
    let sum = acc.iter().map(|&a| a as f64).sum::<f64>() + tail;
    top.iter().map(|&(_, l)| (exp(l - max) as f64 / sum) as f32).collect()
}

/// The lens after the embeddings and after each sublayer (`2·n_layer + 1`
/// points) at every position, `k` tokens per position; `name(id)` gives a
/// token's text.
pub fn logit_lens(
    config: &ModelConfig,
    weights: &Weights,
    trace: &Trace,
    k: usize,
    name: &dyn Fn(u32) -> String,
) -> Result<Vec<LensPoint>, InterveneError> {
    let positions = 0..trace.tokens.len();
    (0..residual_points(config.n_layer))
        .map(|point| {
            let one = lens_point(config, weights, trace, point, positions.clone(), k, name, crate::pace::go_on);
            crate::pace::at_once(one)
        })
        .collect()
}

/// The lens at one point of the residual stream (0: after the embeddings,
/// then after each layer's attention and MLP) at `positions`, awaiting
/// `pause` after each piece of the LM head (a row of a large vocabulary's
/// head); [`InterveneError::Stopped`] when a pause says to stop.
#[allow(clippy::too_many_arguments)]
pub async fn lens_point(
    config: &ModelConfig,
    weights: &Weights,
    trace: &Trace,
    point: usize,
    positions: Range<usize>,
    k: usize,
    name: &dyn Fn(u32) -> String,
    mut pause: impl AsyncFnMut() -> ControlFlow<()>,
) -> Result<LensPoint, InterveneError> {
    check_trace(config, trace)?;
    let t = trace.tokens.len();
    if positions.start > positions.end || positions.end > t {
        return Err(InterveneError::NoSuchPosition { position: positions.end.max(positions.start), tokens: t });
    }
    let rows = trace.stream_rows(point, positions.clone()).ok_or(InterveneError::TraceMismatch)?;
    let ln_f = norm(config, &rows, &weights.ln_f_g, &weights.ln_f_b);
    let all = logits_paced(config, weights, &ln_f, &mut pause).await.ok_or(InterveneError::Stopped)?;
    // Each position's selection and softmax is a pass over the vocabulary.
    let mut top = Vec::with_capacity(positions.len());
    for row in all.chunks_exact(config.vocab_size) {
        if pause().await.is_break() {
            return Err(InterveneError::Stopped);
        }
        let best = top_indices(row, k);
        let probs = top_probabilities(row, &best);
        top.push(
            best.iter()
                .zip(probs)
                .map(|(&(id, logit), prob)| LensToken { id: id as u32, text: name(id as u32), prob, logit })
                .collect(),
        );
    }
    Ok(LensPoint { name: residual_point_name(point), first: positions.start, top })
}

/// Each term's direct contribution to one token's logit at one position
/// (see the module's header for the linearization).
#[derive(Debug, Clone, Serialize)]
pub struct DirectContributions {
    pub token: u32,
    pub position: usize,
    /// The model's logit for the token there.
    pub logit: f32,
    /// The final norm's factor `s` at this position, from the final residual.
    pub norm_scale: f32,
    /// `[layer][head]`: `out_h · W_o[h]` through the linearized norm.
    pub heads: Vec<Vec<f32>>,
    /// Per layer: the attention output projection's bias.
    pub attn_bias: Vec<f32>,
    /// Per layer: the MLP's output (its bias included).
    pub mlp: Vec<f32>,
    /// The token embedding's row (and, with learned positions, the position's).
    pub token_embedding: f32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub position_embedding: Option<f32>,
    /// The final norm's shift `b` dotted with the token's LM-head row (0 for RMSNorm).
    pub norm_shift: f32,
}

impl DirectContributions {
    /// The sum of every term: the logit, up to rounding.
    pub fn total(&self) -> f32 {
        let heads: f32 = self.heads.iter().flatten().sum();
        let rest: f32 = self.attn_bias.iter().chain(&self.mlp).sum();
        heads + rest + self.token_embedding + self.position_embedding.unwrap_or(0.0) + self.norm_shift
    }
}

/// The direct contributions to `token`'s logit at `position` of `trace`.
pub fn direct_contributions(
    config: &ModelConfig,
    weights: &Weights,
    trace: &Trace,
    position: usize,
    token: u32,
) -> Result<DirectContributions, InterveneError> {
    check_trace(config, trace)?;
    let (t, d, d_head) = (trace.tokens.len(), config.n_embd, config.d_head());
    if position >= t {
        return Err(InterveneError::NoSuchPosition { position, tokens: t });
    }
    if token as usize >= config.vocab_size {
        return Err(EngineError::IdOutOfVocab { id: token, vocab: config.vocab_size }.into());
    }
    let logits = trace.logits_at(position).ok_or(InterveneError::NoLogitsRow { position, last: t - 1 })?;
    let centred = !config.architecture.is_llama_family();
    let last = trace.stream_rows(2 * trace.layers.len(), position..position + 1);
    let x: &[f32] = &last.ok_or(InterveneError::TraceMismatch)?;
    let mean = if centred { x.iter().map(|&v| v as f64).sum::<f64>() / d as f64 } else { 0.0 };
    let spread = x.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / d as f64;
    let scale = 1.0 / (spread + config.layer_norm_epsilon as f64).sqrt();
    // w = s·g ⊙ u (u the token's LM-head row): a term c contributes w·P(c).
    let unembed = weights.head().row(token as usize);
    let unembed = &unembed[..d];
    let w: Vec<f64> = (0..d).map(|j| scale * weights.ln_f_g.data[j] as f64 * unembed[j] as f64).collect();
    let w_sum: f64 = w.iter().sum();
    let project = |c: &[f32]| -> f32 {
        let dot: f64 = c.iter().zip(&w).map(|(&v, &w)| v as f64 * w).sum();
        let c_mean = if centred { c.iter().map(|&v| v as f64).sum::<f64>() / d as f64 } else { 0.0 };
        (dot - c_mean * w_sum) as f32
    };
    let mut heads = Vec::with_capacity(config.n_layer);
    for (layer, block) in trace.layers.iter().zip(&weights.blocks) {
        let row: Vec<f32> = layer
            .heads()
            .iter()
            .enumerate()
            .map(|(h, head)| {
                // out_h · W_o[h]: W_o is [q_dim × d], head h's rows h·d_head..
                let mut c = vec![0.0f32; d];
                for (i, &o) in head.output.row(position).iter().enumerate() {
                    let w_row = block.attn_proj_w.row(h * d_head + i);
                    c.iter_mut().zip(&w_row[..d]).for_each(|(c, &w)| *c += o * w);
                }
                project(&c)
            })
            .collect();
        heads.push(row);
    }
    let id = trace.tokens[position].id as usize;
    let token_row = weights.wte.row(id);
    let token_row = &token_row[..d];
    let position_embedding = weights.wpe.as_ref().map(|wpe| project(&wpe.data[position * d..][..d]));
    // RMSNorm has no shift (the forward ignores its bias).
    let shift = |(&b, &u): (&f32, &f32)| b as f64 * u as f64;
    let norm_shift = if centred { weights.ln_f_b.data.iter().zip(unembed).map(shift).sum::<f64>() as f32 } else { 0.0 };
    Ok(DirectContributions {
        token,
        position,
        logit: logits[token as usize],
        norm_scale: scale as f32,
        heads,
        attn_bias: weights.blocks.iter().map(|b| project(&b.attn_proj_b.data)).collect(),
        mlp: trace.layers.iter().map(|l| project(l.mlp_out.row(position))).collect(),
        token_embedding: project(token_row),
        position_embedding,
        norm_shift,
    })
}

#[cfg(test)]
#[path = "lens_tests.rs"]
mod tests;
