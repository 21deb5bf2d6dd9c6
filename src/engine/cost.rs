//! The cost model: FLOPs per stage, bytes of the attention matrices and of
//! the KV cache, as functions of the config and the context length T, for
//! both families (grouped KV heads shrink the K/V projections and the cache;
//! SwiGLU has three MLP products instead of two).
//! One multiply-add counts as 2 FLOPs; f32 storage (4 bytes a value).

use serde::Serialize;

use crate::model::ModelConfig;

#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct ForwardCost {
    pub t: usize,
    /// Q, K, V projections of all layers: 2·T·d·(q_dim + 2·kv_dim) per layer (3d in GPT-2).
    pub qkv_flops: u64,
    /// Q·Kᵀ of all heads and layers: 2·T²·q_dim per layer (grows with T²).
    pub scores_flops: u64,
    /// A·V: 2·T²·q_dim per layer (grows with T²).
    pub weighted_sum_flops: u64,
    /// Attention output projection: 2·T·q_dim·d per layer.
    pub attn_proj_flops: u64,
    /// MLP: 2·T·d·n_inner twice per layer (n_inner = 4d in GPT-2), three
    /// times with SwiGLU (gate, up, down).
    pub mlp_flops: u64,
    /// LM head: 2·T·d·vocab.
    pub lm_head_flops: u64,
    /// Entries of every attention matrix of one stage: T²·heads·layers.
    pub attention_entries: u64,
    /// Bytes to hold one stage's attention matrices (scores or weights) for all heads and layers.
    pub attention_bytes: u64,
    /// Bytes of K and V for one token across all layers: 2·kv_dim·layers·4
    /// (kv_dim = n_kv_head·d_head; d in GPT-2).
    pub kv_bytes_per_token: u64,
    /// The same with one KV head per query head (full multi-head attention):
    /// what grouped heads save is this over `kv_bytes_per_token`.
    pub kv_bytes_per_token_full_mha: u64,
    /// KV cache for T tokens.
    pub kv_bytes: u64,
}

impl ForwardCost {
    /// FLOPs that grow with T² (scores and A·V).
    pub fn attention_flops(&self) -> u64 {
        self.scores_flops + self.weighted_sum_flops
    }

    /// FLOPs that grow with T (projections and MLP, without the LM head).
    pub fn linear_flops(&self) -> u64 {
        self.qkv_flops + self.attn_proj_flops + self.mlp_flops
    }

    pub fn total_flops(&self) -> u64 {
        self.attention_flops() + self.linear_flops() + self.lm_head_flops
    }
}

/// The config's widths as u64: (d, layers, heads, vocab, n_inner, q_dim,
/// qkv_dim, kv_dim, MLP products per layer).
fn widths(config: &ModelConfig) -> [u64; 9] {
    let mlp_products = if config.architecture.is_llama_family() { 3 } else { 2 };
    [
        config.n_embd,
        config.n_layer,
        config.n_head,
        config.vocab_size,
        config.n_inner,
        config.q_dim(),
        config.qkv_dim(),
        config.kv_dim(),
        mlp_products,
    ]
    .map(|x| x as u64)
}

/// Costs of a full forward pass over T tokens.
pub fn forward_cost(config: &ModelConfig, t: usize) -> ForwardCost {
    let t64 = t as u64;
    let [d, l, h, v, m, q, qkv, kv, mlp] = widths(config);
    let attention_entries = t64 * t64 * h * l;
    let kv_bytes_per_token = 2 * kv * l * 4;
    ForwardCost {
        t,
        qkv_flops: 2 * t64 * d * qkv * l,
        scores_flops: 2 * t64 * t64 * q * l,
        weighted_sum_flops: 2 * t64 * t64 * q * l,
        attn_proj_flops: 2 * t64 * q * d * l,
        mlp_flops: mlp * 2 * t64 * d * m * l,
        lm_head_flops: 2 * t64 * d * v,
        attention_entries,
        attention_bytes: attention_entries * 4,
        kv_bytes_per_token,
        kv_bytes_per_token_full_mha: 2 * q * l * 4,
        kv_bytes: kv_bytes_per_token * t64,
    }
}

/// Costs of one generation step with a KV cache: the token at position
/// `t − 1` read as one row, attending over `t` cached keys (and its logits
/// only). Without a cache the same step is a full `forward_cost(config, t)`.
pub fn step_cost(config: &ModelConfig, t: usize) -> ForwardCost {
    let t64 = t as u64;
    let [d, l, h, v, m, q, qkv, kv, mlp] = widths(config);
    let kv_bytes_per_token = 2 * kv * l * 4;
    ForwardCost {
        t,
        qkv_flops: 2 * d * qkv * l,
        scores_flops: 2 * t64 * q * l,
        weighted_sum_flops: 2 * t64 * q * l,
        attn_proj_flops: 2 * q * d * l,
        mlp_flops: mlp * 2 * d * m * l,
        lm_head_flops: 2 * d * v,
        attention_entries: t64 * h * l,
        attention_bytes: t64 * h * l * 4,
        kv_bytes_per_token,
        kv_bytes_per_token_full_mha: 2 * q * l * 4,
        kv_bytes: kv_bytes_per_token * t64,
    }
}

/// The smallest T at which attention's T² FLOPs reach the per-token linear FLOPs
/// (4·T·d² vs 24·T·d² per layer: T = 6·d).
pub fn quadratic_crossover(config: &ModelConfig) -> usize {
    (1..=1 << 24)
        .find(|&t| {
            let c = forward_cost(config, t);
            c.attention_flops() >= c.linear_flops()
        })
        .unwrap_or(usize::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gpt2_small() -> ModelConfig {
        ModelConfig::gpt2_small()
    }

    #[test]
    fn kv_cache_of_gpt2_small_is_36_kib_per_token_in_f32() {
        // 2 (K and V) · 768 · 12 layers · 4 bytes = 73,728 bytes.
        assert_eq!(forward_cost(&gpt2_small(), 1).kv_bytes_per_token, 73_728);
        assert_eq!(forward_cost(&gpt2_small(), 100).kv_bytes, 7_372_800);
    }

    #[test]
    fn attention_grows_with_the_square_of_t_and_crosses_at_six_d() {
        let c = gpt2_small();
        let (a, b) = (forward_cost(&c, 100), forward_cost(&c, 200));
        assert_eq!(b.attention_flops(), 4 * a.attention_flops());
        assert_eq!(b.linear_flops(), 2 * a.linear_flops());
        assert_eq!(quadratic_crossover(&c), 6 * 768);
    }

    #[test]
    fn grouped_heads_shrink_the_kv_cache_by_the_group() {
        // SmolLM2-135M: 30 layers, 9 query heads over 3 KV heads of 64.
        let c = ModelConfig::llama((30, 9, 3, 64), 576, 1536, 8192, 49152);
        let cost = forward_cost(&c, 1);
        assert_eq!(cost.kv_bytes_per_token, 2 * 3 * 64 * 30 * 4);
        assert_eq!(cost.kv_bytes_per_token_full_mha, 3 * cost.kv_bytes_per_token);
        assert_eq!(forward_cost(&gpt2_small(), 1).kv_bytes_per_token_full_mha, 73_728);
        // Three MLP products of 576×1536 per layer and token.
        assert_eq!(cost.mlp_flops, 3 * 2 * 576 * 1536 * 30);
    }
}
