//! The CPU forward pass: the source of truth for every number the app shows,
//! filling a `Trace` of every stage. It runs the fast `kernels`, each tested
//! against its plain-loop reference in `ops`.

use thiserror::Error;

use super::kernels::{self, AttentionOut, AttentionRows, QkvRows};
use super::{AttentionTrace, HeadTrace, LayerTrace, Mask, Matrix, Trace};
use crate::model::{BlockWeights, Gpt2Weights, Model, ModelConfig, ModelError, Token};

#[derive(Debug, Error)]
pub enum EngineError {
    #[error("the text is {tokens} tokens long, but this model's context holds at most {limit}; shorten it")]
    TooLong { tokens: usize, limit: usize },
    #[error("token id {id} is outside the vocabulary (size {vocab})")]
    IdOutOfVocab { id: u32, vocab: usize },
    #[error("there is no text to run: give at least one token")]
    Empty,
    #[error("a KV cache only works with a causal (or sliding-window) mask: with a bidirectional one, every new token would change the earlier tokens' keys and values")]
    CacheNeedsCausalMask,
    #[error("cannot sample the next token: {0}")]
    Sampling(#[from] super::sampling::SamplingError),
    #[error("{what} needs a context of at least {needed} tokens; this model's holds {limit}")]
    ContextTooShort { what: &'static str, needed: usize, limit: usize },
    #[error("there is too little to evaluate: {found} tokens (or sequences) where at least {needed} are needed")]
    TextTooShort { needed: usize, found: usize },
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

fn square(all: &[f32], t: usize, h: usize) -> Matrix {
    Matrix::from_vec(t, t, all[h * t * t..(h + 1) * t * t].to_vec())
}

/// The attention half of one block on the residual stream `x[T×d]`:
/// ln_1, the fused QKV projection, scores, mask, softmax and W·V per head.
/// Returns the trace and the concatenated head outputs `[T×d]`.
pub fn attention_cpu(config: &ModelConfig, block: &BlockWeights, x: &[f32], mask: Mask) -> (AttentionTrace, Vec<f32>) {
    let (d, n_head, d_head) = (config.n_embd, config.n_head, config.d_head());
    let t = x.len() / d;
    let ln_1 = kernels::layernorm(x, &block.ln_1_g.data, &block.ln_1_b.data, d, config.layer_norm_epsilon);
    let qkv = kernels::matmul_bias(&ln_1, &block.attn_qkv_w.data, &block.attn_qkv_b.data, t, d, 3 * d);
    let shape = AttentionRows { row0: 0, m: t, t, n_head, d_head, mask };
    let AttentionOut { raw, masked, weights, out: concat } =
        kernels::attention_rows_owned(&shape, &QkvRows::fused(&qkv, d));
    let scale = 1.0 / (d_head as f32).sqrt();
    let heads = (0..n_head)
        .map(|h| {
            let scores_raw = square(&raw, t, h);
            HeadTrace {
                q: Matrix::from_columns(&qkv, t, 3 * d, h * d_head, d_head),
                k: Matrix::from_columns(&qkv, t, 3 * d, d + h * d_head, d_head),
                v: Matrix::from_columns(&qkv, t, 3 * d, 2 * d + h * d_head, d_head),
                scores_scaled: Matrix::from_vec(t, t, scores_raw.data.iter().map(|s| s * scale).collect()),
                scores_raw,
                scores_masked: square(&masked, t, h),
                weights: square(&weights, t, h),
                output: Matrix::from_columns(&concat, t, d, h * d_head, d_head),
            }
        })
        .collect();
    (AttentionTrace { ln_1: Matrix::from_vec(t, d, ln_1), heads }, concat)
}

/// The rest of a block after its heads, row by row: the projection and
/// residual, ln_2, the MLP and residual.
pub(super) struct BlockTail {
    pub attn_out: Vec<f32>,
    pub resid_mid: Vec<f32>,
    pub ln_2: Vec<f32>,
    pub mlp_hidden: Vec<f32>,
    pub mlp_out: Vec<f32>,
    pub resid_post: Vec<f32>,
}

/// [`BlockTail`] for rows `x` of the residual stream entering `block` and the
/// heads' concatenated outputs `concat` for the same rows. Shared by the full
/// pass, prefix reuse (`extend`) and the KV cache.
pub(super) fn block_tail(config: &ModelConfig, block: &BlockWeights, x: &[f32], concat: &[f32]) -> BlockTail {
    let (d, m) = (config.n_embd, config.n_inner);
    let rows = x.len() / d;
    let attn_out = kernels::matmul_bias(concat, &block.attn_proj_w.data, &block.attn_proj_b.data, rows, d, d);
    let resid_mid = kernels::add(x, &attn_out);
    let ln_2 = kernels::layernorm(&resid_mid, &block.ln_2_g.data, &block.ln_2_b.data, d, config.layer_norm_epsilon);
    let mut mlp_hidden = kernels::matmul_bias(&ln_2, &block.mlp_fc_w.data, &block.mlp_fc_b.data, rows, d, m);
    kernels::activate(&mut mlp_hidden, config.activation_function);
    let mlp_out = kernels::matmul_bias(&mlp_hidden, &block.mlp_proj_w.data, &block.mlp_proj_b.data, rows, m, d);
    let resid_post = kernels::add(&resid_mid, &mlp_out);
    BlockTail { attn_out, resid_mid, ln_2, mlp_hidden, mlp_out, resid_post }
}

/// The whole forward pass on `tokens`, keeping every intermediate.
pub fn forward_cpu(
    config: &ModelConfig,
    weights: &Gpt2Weights,
    tokens: Vec<Token>,
    mask: Mask,
) -> Result<Trace, EngineError> {
    let ids: Vec<u32> = tokens.iter().map(|t| t.id).collect();
    check_ids(config, &ids)?;
    if ids.is_empty() {
        return Err(EngineError::Empty);
    }
    let (t, d, eps) = (ids.len(), config.n_embd, config.layer_norm_epsilon);
    let embeddings = super::ops::embed(&ids, &weights.wte.data, &weights.wpe.data, d);
    let mut x = embeddings.clone();
    let mut layers = Vec::with_capacity(weights.blocks.len());
    for block in &weights.blocks {
        let (attention, concat) = attention_cpu(config, block, &x, mask);
        let tail = block_tail(config, block, &x, &concat);
        x = tail.resid_post.clone();
        layers.push(LayerTrace {
            attention,
            attn_out: Matrix::from_vec(t, d, tail.attn_out),
            resid_mid: Matrix::from_vec(t, d, tail.resid_mid),
            ln_2: Matrix::from_vec(t, d, tail.ln_2),
            mlp_hidden: Matrix::from_vec(t, config.n_inner, tail.mlp_hidden),
            mlp_out: Matrix::from_vec(t, d, tail.mlp_out),
            resid_post: Matrix::from_vec(t, d, tail.resid_post),
        });
    }
    let ln_f = kernels::layernorm(&x, &weights.ln_f_g.data, &weights.ln_f_b.data, d, eps);
    let logits = kernels::lm_head(&ln_f, &weights.wte.data, t, d, config.vocab_size);
    Ok(Trace {
        tokens,
        mask,
        embeddings: Matrix::from_vec(t, d, embeddings),
        layers,
        ln_f: Matrix::from_vec(t, d, ln_f),
        logits: Matrix::from_vec(t, config.vocab_size, logits),
    })
}

impl Model {
    /// Tokenizes `text` and runs the CPU forward pass on it.
    pub fn trace_text(&self, text: &str, mask: Mask) -> Result<Trace, EngineError> {
        let tokens = self.tokenizer.encode(text)?;
        forward_cpu(&self.config, &self.weights, tokens, mask)
    }

    /// Runs the CPU forward pass on `ids` (tokens without text).
    pub fn trace_ids(&self, ids: &[u32], mask: Mask) -> Result<Trace, EngineError> {
        let tokens =
            ids.iter().map(|&id| Token { id, text: self.tokenizer.id_to_text(id), start: 0, end: 0 }).collect();
        forward_cpu(&self.config, &self.weights, tokens, mask)
    }
}
