//! The CPU forward pass: the source of truth for every number the app shows,
//! filling a `Trace` of every stage. One pass for both families: GPT-2
//! (learned positions, LayerNorm, GELU MLP) and Llama (RoPE on Q and K,
//! RMSNorm, SwiGLU, grouped KV heads), told apart by a few `match`es on the
//! config. It runs the fast `kernels`, each tested
//! against its plain-loop reference in `ops`.

use std::ops::ControlFlow;

use thiserror::Error;

use super::kernels;
use super::{ops, AttentionTrace, LayerTrace, Mask, Matrix, Trace};
use crate::model::{BlockWeights, Model, ModelConfig, ModelError, Tensor, Token, Weights};

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

/// The residual stream entering layer 0 for `ids` at positions `row0..`:
/// token rows plus learned positions (GPT-2), or token rows alone (RoPE
/// models rotate Q and K instead). Ids must be checked.
pub(super) fn embed(config: &ModelConfig, weights: &Weights, ids: &[u32], row0: usize) -> Vec<f32> {
    let d = config.n_embd;
    let table = weights.wte.values();
    let mut x = vec![0.0; ids.len() * d];
    for (row, &id) in x.chunks_exact_mut(d.max(1)).zip(ids) {
        table.slice(id as usize * d..(id as usize + 1) * d).widen_into(row);
    }
    if let Some(wpe) = &weights.wpe {
        // As ops::embed_from: the token's row plus its position's.
        for (t, row) in x.chunks_exact_mut(d.max(1)).enumerate() {
            for (v, &p) in row.iter_mut().zip(&wpe.data[(row0 + t) * d..][..d]) {
                *v += p;
            }
        }
    }
    x
}

/// A block's norm: LayerNorm (GPT-2) or RMSNorm (the Llama family, which has no bias).
pub(super) fn norm(config: &ModelConfig, x: &[f32], gain: &Tensor, bias: &Tensor) -> Vec<f32> {
    let (d, eps) = (config.n_embd, config.layer_norm_epsilon);
    if config.architecture.is_llama_family() {
        kernels::rmsnorm(x, &gain.data, d, eps)
    } else {
        kernels::layernorm(x, &gain.data, &bias.data, d, eps)
    }
}

/// The fused Q, K, V projection of normed rows at positions `row0..`, with
/// RoPE applied to the Q and K columns when the model has it. With `keep`,
/// also the Q and K columns before the rotation (`[rows × (q_dim + kv_dim)]`).
pub(super) fn project_qkv(
    config: &ModelConfig,
    block: &BlockWeights,
    ln_1: &[f32],
    row0: usize,
    keep: bool,
) -> (Vec<f32>, Option<Vec<f32>>) {
    let (d, width) = (config.n_embd, config.qkv_dim());
    let rows = ln_1.len() / d;
    let mut qkv = kernels::matmul_bias(ln_1, &block.attn_qkv_w, &block.attn_qkv_b.data, rows, d, width);
    if config.rope_theta.is_none() {
        return (qkv, None);
    }
    let qk = config.q_dim() + config.kv_dim();
    let pre = keep.then(|| qkv.chunks_exact(width).flat_map(|row| row[..qk].iter().copied()).collect());
    let heads = config.n_head + config.n_kv_head;
    ops::rope(&mut qkv, rows, width, heads, config.d_head(), row0, &config.rope_inv_freq());
    (qkv, pre)
}

/// The LM head on normed rows: `[rows × vocab]`.
pub(super) fn logits(config: &ModelConfig, weights: &Weights, ln_f: &[f32]) -> Vec<f32> {
    let d = config.n_embd;
    kernels::lm_head(ln_f, weights.head(), ln_f.len() / d, d, config.vocab_size)
}

/// FLOPs of one piece of an LM head computed in pieces (one row through
/// SmolLM2's 49,152 × 576 head; the default model's whole head up to 64
/// rows).
const HEAD_PIECE_FLOPS: u64 = 1 << 26;

/// Values of an LM head's output zeroed between two pauses (8 MB).
const ZEROED_PIECE: usize = 1 << 21;

/// Vocabulary entries in one piece of an LM head over `rows` rows of width
/// `d`, of about `flops`: a multiple of 16 (the kernels' tiles are 4 and 8
/// columns wide), at least 16, at most the whole `vocab`.
pub(super) fn head_piece_columns(rows: usize, d: usize, vocab: usize, flops: u64) -> usize {
    let per_column = 2 * (rows as u64) * (d as u64);
    let cols = usize::try_from(flops / per_column.max(1)).unwrap_or(usize::MAX);
    cols.max(16).checked_next_multiple_of(16).unwrap_or(usize::MAX).min(vocab.max(1))
}

/// [`logits`] in pieces of columns (vocabulary entries) of about
/// [`HEAD_PIECE_FLOPS`] each, every row at once (each entry of the table is
/// read once, not once per piece of rows), awaiting `pause` after each
/// piece; `None` as soon as a pause says to stop.
pub(super) async fn logits_paced(
    config: &ModelConfig,
    weights: &Weights,
    ln_f: &[f32],
    pause: &mut impl AsyncFnMut() -> ControlFlow<()>,
) -> Option<Vec<f32>> {
    let (d, vocab) = (config.n_embd, config.vocab_size);
    let rows = ln_f.len() / d.max(1);
    let width = head_piece_columns(rows, d, vocab, HEAD_PIECE_FLOPS);
    // Zeroed in pieces (at once, 267 rows of SmolLM2 were one task of ~100 ms).
    let mut all = Vec::with_capacity(rows * vocab);
    while all.len() < rows * vocab {
        all.resize(all.len().saturating_add(ZEROED_PIECE).min(rows * vocab), 0.0);
        if all.len() < rows * vocab && pause().await.is_break() {
            return None;
        }
    }
    for start in (0..vocab).step_by(width) {
        let cols = start..(start + width).min(vocab);
        kernels::lm_head_columns(ln_f, weights.head(), (rows, d, vocab), cols, &mut all);
        if pause().await.is_break() {
            return None;
        }
    }
    Some(all)
}

/// Columns of query head h, its KV head's key and value, in the fused
/// projection's rows, and of its Q and K before RoPE (`pre`).
pub(super) struct HeadColumns {
    pub q: usize,
    pub k: usize,
    pub v: usize,
    pub kv_head: usize,
}

impl HeadColumns {
    pub fn of(config: &ModelConfig, h: usize) -> Self {
        let (d_head, q_dim, kv_dim) = (config.d_head(), config.q_dim(), config.kv_dim());
        let kv_head = h / config.kv_group().max(1);
        Self { q: h * d_head, k: q_dim + kv_head * d_head, v: q_dim + kv_dim + kv_head * d_head, kv_head }
    }
}

/// The attention half of one block on the residual stream `x[T×d]`:
/// the first norm, the fused QKV projection (and RoPE), scores, mask,
/// softmax and A·V per head. Returns the trace and the concatenated head
/// outputs `[T×q_dim]`.
pub fn attention_cpu(config: &ModelConfig, block: &BlockWeights, x: &[f32], mask: Mask) -> (AttentionTrace, Vec<f32>) {
    super::block_steps::BlockSteps::attention_half(config, block, x.to_vec(), mask, u64::MAX).into_attention()
}

/// The rest of a block after its heads, row by row: the projection and
/// residual, the second norm, the MLP and residual.
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
/// pass, prefix reuse (`extend`) and the KV cache. The MLP is GPT-2's
/// (activation of one projection) or SwiGLU (silu(gate)·up, one fused
/// gate|up product).
pub(super) fn block_tail(config: &ModelConfig, block: &BlockWeights, x: &[f32], concat: &[f32]) -> BlockTail {
    let (d, m, q_dim) = (config.n_embd, config.n_inner, config.q_dim());
    let rows = x.len() / d;
    let attn_out = kernels::matmul_bias(concat, &block.attn_proj_w, &block.attn_proj_b.data, rows, q_dim, d);
    let resid_mid = kernels::add(x, &attn_out);
    let ln_2 = norm(config, &resid_mid, &block.ln_2_g, &block.ln_2_b);
    let mlp_hidden = mlp_hidden(config, block, &ln_2);
    let mlp_out = kernels::matmul_bias(&mlp_hidden, &block.mlp_proj_w, &block.mlp_proj_b.data, rows, m, d);
    let resid_post = kernels::add(&resid_mid, &mlp_out);
    BlockTail { attn_out, resid_mid, ln_2, mlp_hidden, mlp_out, resid_post }
}

/// The MLP's hidden layer on rows of its norm `ln_2` (`[n × d]`): the
/// first product, then the activation (GPT-2) or silu(gate)·up (the Llama
/// family), `[n × n_inner]`.
pub(super) fn mlp_hidden(config: &ModelConfig, block: &BlockWeights, ln_2: &[f32]) -> Vec<f32> {
    let (d, m) = (config.n_embd, config.n_inner);
    let rows = ln_2.len() / d.max(1);
    if config.architecture.is_llama_family() {
        let gate_up = kernels::matmul_bias(ln_2, &block.mlp_fc_w, &block.mlp_fc_b.data, rows, d, 2 * m);
        kernels::swiglu(&gate_up, m)
    } else {
        let mut hidden = kernels::matmul_bias(ln_2, &block.mlp_fc_w, &block.mlp_fc_b.data, rows, d, m);
        kernels::activate(&mut hidden, config.activation_function);
        hidden
    }
}

/// A layer's trace of T rows from its attention half and its tail, its
/// norms, stream and MLP hidden layer kept or not (`keep_stages`: then
/// computed when read, `Trace::stream_rows`).
pub(super) fn layer_trace(
    config: &ModelConfig,
    t: usize,
    mut attention: AttentionTrace,
    tail: BlockTail,
    keep_stages: bool,
) -> LayerTrace {
    let d = config.n_embd;
    let kept = |cols: usize, values: Vec<f32>| keep_stages.then(|| Matrix::from_vec(t, cols, values));
    if !keep_stages {
        attention.ln_1 = None;
    }
    LayerTrace {
        attention,
        attn_out: Matrix::from_vec(t, d, tail.attn_out),
        resid_mid: kept(d, tail.resid_mid),
        ln_2: kept(d, tail.ln_2),
        mlp_hidden: kept(config.n_inner, tail.mlp_hidden),
        mlp_out: Matrix::from_vec(t, d, tail.mlp_out),
        resid_post: kept(d, tail.resid_post),
    }
}

/// The whole forward pass on `tokens`, keeping every intermediate (a
/// [`TraceRun`](super::stepwise::TraceRun) taken to its end at once).
pub fn forward_cpu(
    config: &ModelConfig,
    weights: &Weights,
    tokens: Vec<Token>,
    mask: Mask,
) -> Result<Trace, EngineError> {
    Ok(super::stepwise::TraceRun::new(config, weights, None, tokens, mask)?.finish())
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
