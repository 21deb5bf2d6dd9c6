//! The cost model: FLOPs per stage, bytes of the attention matrices and of
//! the KV cache, as functions of the config and the context length T.
//! One multiply-add counts as 2 FLOPs; f32 storage (4 bytes a value).

use serde::Serialize;

use crate::model::ModelConfig;

#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct ForwardCost {
    pub t: usize,
    /// Q, K, V projections of all layers: 2·T·d·3d per layer.
    pub qkv_flops: u64,
    /// Q·Kᵀ of all heads and layers: 2·T²·d per layer (grows with T²).
    pub scores_flops: u64,
    /// W·V: 2·T²·d per layer (grows with T²).
    pub weighted_sum_flops: u64,
    /// Attention output projection: 2·T·d² per layer.
    pub attn_proj_flops: u64,
    /// MLP: 2·T·d·n_inner twice per layer (n_inner = 4d in GPT-2).
    pub mlp_flops: u64,
    /// Tied LM head: 2·T·d·vocab.
    pub lm_head_flops: u64,
    /// Entries of every attention matrix of one stage: T²·heads·layers.
    pub attention_entries: u64,
    /// Bytes to hold one stage's attention matrices (scores or weights) for all heads and layers.
    pub attention_bytes: u64,
    /// Bytes of K and V for one token across all layers: 2·d·layers·4.
    pub kv_bytes_per_token: u64,
    /// KV cache for T tokens.
    pub kv_bytes: u64,
}

impl ForwardCost {
    /// FLOPs that grow with T² (scores and W·V).
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

/// Costs of a full forward pass over T tokens.
pub fn forward_cost(config: &ModelConfig, t: usize) -> ForwardCost {
    let (t64, d, l) = (t as u64, config.n_embd as u64, config.n_layer as u64);
    let (h, v, m) = (config.n_head as u64, config.vocab_size as u64, config.n_inner as u64);
    let attention_entries = t64 * t64 * h * l;
    let kv_bytes_per_token = 2 * d * l * 4;
    ForwardCost {
        t,
        qkv_flops: 2 * t64 * d * 3 * d * l,
        scores_flops: 2 * t64 * t64 * d * l,
        weighted_sum_flops: 2 * t64 * t64 * d * l,
        attn_proj_flops: 2 * t64 * d * d * l,
        mlp_flops: 2 * 2 * t64 * d * m * l,
        lm_head_flops: 2 * t64 * d * v,
        attention_entries,
        attention_bytes: attention_entries * 4,
        kv_bytes_per_token,
        kv_bytes: kv_bytes_per_token * t64,
    }
}

/// Costs of one generation step with a KV cache: the token at position
/// `t − 1` read as one row, attending over `t` cached keys (and its logits
/// only). Without a cache the same step is a full `forward_cost(config, t)`.
pub fn step_cost(config: &ModelConfig, t: usize) -> ForwardCost {
    let (t64, d, l) = (t as u64, config.n_embd as u64, config.n_layer as u64);
    let (h, v, m) = (config.n_head as u64, config.vocab_size as u64, config.n_inner as u64);
    let kv_bytes_per_token = 2 * d * l * 4;
    ForwardCost {
        t,
        qkv_flops: 2 * d * 3 * d * l,
        scores_flops: 2 * t64 * d * l,
        weighted_sum_flops: 2 * t64 * d * l,
        attn_proj_flops: 2 * d * d * l,
        mlp_flops: 2 * 2 * d * m * l,
        lm_head_flops: 2 * d * v,
        attention_entries: t64 * h * l,
        attention_bytes: t64 * h * l * 4,
        kv_bytes_per_token,
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
}
