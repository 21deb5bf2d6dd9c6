//! The CPU reference of one attention layer, producing its `LayerTrace`.

use thiserror::Error;

use super::{ops, HeadTrace, LayerTrace, Mask, Matrix, Trace};
use crate::model::{Model, ModelConfig, ModelError, Token};

#[derive(Debug, Error)]
pub enum EngineError {
    #[error("the text is {tokens} tokens long, but this model's context holds at most {limit}; shorten it")]
    TooLong { tokens: usize, limit: usize },
    #[error("token id {id} is outside the vocabulary (size {vocab})")]
    IdOutOfVocab { id: u32, vocab: usize },
    #[error("layer {layer} does not exist (the model has {n_layer})")]
    NoSuchLayer { layer: usize, n_layer: usize },
    #[error(transparent)]
    Model(#[from] ModelError),
}

/// Checks ids against the config before any kernel or loop indexes with them.
pub fn check_ids(config: &ModelConfig, ids: &[u32]) -> Result<(), EngineError> {
    if ids.len() > config.n_positions {
        return Err(EngineError::TooLong { tokens: ids.len(), limit: config.n_positions });
    }
    match ids.iter().find(|&&id| id as usize >= config.vocab_size) {
        Some(&id) => Err(EngineError::IdOutOfVocab { id, vocab: config.vocab_size }),
        None => Ok(()),
    }
}

/// Runs the first layer's attention on `tokens` (the walking skeleton's slice
/// of the forward pass): embed, ln_1, QKV projection, scores, mask, softmax.
pub fn attention_layer_cpu(model: &Model, tokens: Vec<Token>, mask: Mask) -> Result<Trace, EngineError> {
    let config = &model.config;
    let ids: Vec<u32> = tokens.iter().map(|t| t.id).collect();
    check_ids(config, &ids)?;
    let block = model.weights.blocks.first().ok_or(EngineError::NoSuchLayer { layer: 0, n_layer: 0 })?;
    let (t, d, n_head, d_head) = (ids.len(), config.n_embd, config.n_head, config.d_head());

    let x = ops::embed(&ids, &model.weights.wte.data, &model.weights.wpe.data, d);
    let ln_1 = ops::layernorm(&x, &block.ln_1_g.data, &block.ln_1_b.data, d, config.layer_norm_epsilon);
    let qkv = ops::matmul_bias(&ln_1, &block.attn_qkv_w.data, &block.attn_qkv_b.data, t, d, 3 * d);
    let (raw, masked) = ops::attention_scores(&qkv, t, n_head, d_head, mask);
    let weights = ops::softmax_rows(&masked, t.max(1));
    let scale = 1.0 / (d_head as f32).sqrt();

    let slice_cols = |offset: usize| {
        let mut m = Matrix::zeros(t, d_head);
        for i in 0..t {
            m.data[i * d_head..][..d_head].copy_from_slice(&qkv[i * 3 * d + offset..][..d_head]);
        }
        m
    };
    let square = |all: &[f32], h: usize| Matrix::from_vec(t, t, all[h * t * t..(h + 1) * t * t].to_vec());
    let heads = (0..n_head)
        .map(|h| {
            let scores_raw = square(&raw, h);
            let scores_scaled = Matrix::from_vec(t, t, scores_raw.data.iter().map(|s| s * scale).collect());
            HeadTrace {
                q: slice_cols(h * d_head),
                k: slice_cols(d + h * d_head),
                v: slice_cols(2 * d + h * d_head),
                scores_raw,
                scores_scaled,
                scores_masked: square(&masked, h),
                weights: square(&weights, h),
            }
        })
        .collect();
    Ok(Trace { tokens, layers: vec![LayerTrace { ln_1: Matrix::from_vec(t, d, ln_1), heads }] })
}
