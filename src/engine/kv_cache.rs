//! Generation with a KV cache on the CPU reference: the keys and values of
//! every token already read are kept per layer, so each new token costs one
//! row (its Q, K, V, one row of scores over the cached keys, its MLP) instead
//! of a forward pass over the whole text. `generate_cached` must equal
//! `generate::generate` (full re-runs) token for token.

use serde::Serialize;

use super::forward::{block_tail, embed, logits, norm, project_qkv};
use super::generate::{steps_that_fit, GeneratedToken, Generation};
use super::kernels::{self, AttentionOut, AttentionRows, QkvRows};
use super::sampling::{try_sample, Rng, SamplingParams};
use super::{forward_cpu, EngineError, Mask, Trace};
use crate::model::{Model, ModelConfig, Token, Weights};

/// Keys and values of the first `len` tokens, per layer, `[len × kv_dim]`
/// each: one entry per KV head (KV head g in columns g·d_head..), so grouped
/// heads cache n_head / n_kv_head times less than full multi-head. Keys are
/// kept after RoPE.
#[derive(Debug, Clone)]
pub struct KvCache {
    /// Width of one cached row: n_kv_head·d_head.
    d: usize,
    len: usize,
    keys: Vec<Vec<f32>>,
    values: Vec<Vec<f32>>,
}

/// What one cached step computed, for the stepper.
#[derive(Debug, Clone, Serialize)]
pub struct Step {
    /// Position of the token this step read.
    pub position: usize,
    /// Its logits (the next-token distribution before softmax).
    pub logits: Vec<f32>,
    /// The new query row's softmax weights over every cached key, `[layer][head][position + 1]`.
    pub weights: Vec<Vec<Vec<f32>>>,
}

impl KvCache {
    pub fn new(config: &ModelConfig) -> Self {
        Self {
            d: config.kv_dim(),
            len: 0,
            keys: vec![Vec::new(); config.n_layer],
            values: vec![Vec::new(); config.n_layer],
        }
    }

    /// The cache a full forward pass leaves: every token's K and V, from its trace.
    pub fn from_trace(config: &ModelConfig, trace: &Trace) -> Self {
        let mut cache = Self::new(config);
        let t = trace.tokens.len();
        let d_head = config.d_head();
        for (l, layer) in trace.layers.iter().enumerate() {
            let (mut k, mut v) = (vec![0.0; t * cache.d], vec![0.0; t * cache.d]);
            // The first query head of each group holds its KV head's K and V.
            for (g, head) in layer.attention.heads.iter().step_by(config.kv_group().max(1)).enumerate() {
                for i in 0..t {
                    k[i * cache.d + g * d_head..][..d_head].copy_from_slice(head.k.row(i));
                    v[i * cache.d + g * d_head..][..d_head].copy_from_slice(head.v.row(i));
                }
            }
            cache.keys[l] = k;
            cache.values[l] = v;
        }
        cache.len = t;
        cache
    }

    /// Tokens cached.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Bytes held (f32 K and V of every layer): `cost::forward_cost(config, len).kv_bytes`.
    pub fn bytes(&self) -> u64 {
        self.keys.iter().chain(&self.values).map(|v| v.len() as u64 * 4).sum()
    }

    /// Reads token `id` at the next position: one row through every layer,
    /// attending over the cache, which grows by one.
    pub fn step(&mut self, config: &ModelConfig, weights: &Weights, id: u32, mask: Mask) -> Result<Step, EngineError> {
        if mask == Mask::Bidirectional {
            return Err(EngineError::CacheNeedsCausalMask);
        }
        let p = self.len;
        if p >= config.n_positions {
            return Err(EngineError::TooLong { tokens: p + 1, limit: config.n_positions });
        }
        if id as usize >= config.vocab_size {
            return Err(EngineError::IdOutOfVocab { id, vocab: config.vocab_size });
        }
        let (kv_dim, n_head, d_head) = (self.d, config.n_head, config.d_head());
        let (q_dim, width, group) = (config.q_dim(), config.qkv_dim(), config.kv_group().max(1));
        let mut x = embed(config, weights, &[id], p);
        let mut all_weights = Vec::with_capacity(weights.blocks.len());
        for (l, block) in weights.blocks.iter().enumerate() {
            let ln_1 = norm(config, &x, &block.ln_1_g, &block.ln_1_b);
            let (qkv, _) = project_qkv(config, block, &ln_1, p, false);
            self.keys[l].extend_from_slice(&qkv[q_dim..q_dim + kv_dim]);
            self.values[l].extend_from_slice(&qkv[q_dim + kv_dim..width]);
            // One query row (position p) over the p + 1 cached keys.
            let shape = AttentionRows { row0: p, m: 1, t: p + 1, n_head, d_head, mask };
            let qkv_rows = QkvRows {
                q: &qkv,
                q_row0: p,
                q_stride: width,
                k: &self.keys[l],
                v: &self.values[l],
                kv_stride: kv_dim,
                group,
            };
            let AttentionOut { weights: w, out: concat, .. } = kernels::attention_rows_owned(&shape, &qkv_rows);
            let head_weights = w.chunks_exact(p + 1).map(<[f32]>::to_vec).collect();
            x = block_tail(config, block, &x, &concat).resid_post;
            all_weights.push(head_weights);
        }
        self.len = p + 1;
        let ln_f = norm(config, &x, &weights.ln_f_g, &weights.ln_f_b);
        Ok(Step { position: p, logits: logits(config, weights, &ln_f), weights: all_weights })
    }
}

/// Samples up to `steps` tokens after `prompt` like [`super::generate::generate`],
/// but reads the prompt once and then each new token as one cached row.
pub fn generate_cached(
    model: &Model,
    prompt: Vec<Token>,
    steps: usize,
    params: &SamplingParams,
    mask: Mask,
) -> Result<Generation, EngineError> {
    if mask == Mask::Bidirectional {
        return Err(EngineError::CacheNeedsCausalMask);
    }
    let (config, weights) = (&model.config, &model.weights);
    let mut rng = Rng::new(params.seed);
    let trace = forward_cpu(config, weights, prompt.clone(), mask)?;
    let mut cache = KvCache::from_trace(config, &trace);
    let mut logits = trace.logits.row(trace.logits.rows - 1).to_vec();
    let mut out = Vec::with_capacity(steps_that_fit(config, prompt.len(), steps));
    let mut hit_context_limit = false;
    for _ in 0..steps {
        if cache.len() >= config.n_positions {
            hit_context_limit = true;
            break;
        }
        let sampled = try_sample(&logits, params, &mut rng)?;
        let text = model.tokenizer.decode(&[sampled.id]);
        out.push(GeneratedToken { text, sampled });
        if out.len() == steps || cache.len() + 1 >= config.n_positions {
            hit_context_limit = out.len() < steps;
            break;
        }
        logits = cache.step(config, weights, sampled.id, mask)?.logits;
    }
    Ok(Generation { prompt, steps: out, hit_context_limit })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::cost::{forward_cost, step_cost};
    use crate::engine::init::random_weights;

    fn config(n_layer: usize, n_head: usize, d: usize) -> ModelConfig {
        ModelConfig::tiny(n_layer, n_head, d, 24, 50)
    }

    fn tokens(ids: &[u32]) -> Vec<Token> {
        ids.iter().map(|&id| Token { id, text: String::new(), start: 0, end: 0 }).collect()
    }

    #[test]
    fn cached_steps_equal_full_runs_in_logits_and_weights() {
        let llama = ModelConfig::llama((2, 6, 2, 4), 16, 24, 24, 50);
        let mha = ModelConfig::llama((2, 3, 3, 6), 16, 24, 24, 50);
        for (cfg, mask) in [
            (config(2, 2, 16), Mask::Causal),
            (config(3, 4, 32), Mask::Window(3)),
            (llama.clone(), Mask::Causal),
            (llama, Mask::Window(4)),
            (mha, Mask::Causal),
        ] {
            let w = random_weights(&cfg, 7);
            let ids: Vec<u32> = (0..12).map(|i| (i * 7 + 3) % 50).collect();
            let prefix = 5;
            let trace = forward_cpu(&cfg, &w, tokens(&ids[..prefix]), mask).unwrap();
            let mut cache = KvCache::from_trace(&cfg, &trace);
            for p in prefix..ids.len() {
                let step = cache.step(&cfg, &w, ids[p], mask).unwrap();
                let full = forward_cpu(&cfg, &w, tokens(&ids[..=p]), mask).unwrap();
                let diff = step.logits.iter().zip(full.logits.row(p)).map(|(a, b)| (a - b).abs()).fold(0.0, f32::max);
                assert!(diff <= 1e-4, "position {p}: logits differ by {diff}");
                for (l, layer) in full.layers.iter().enumerate() {
                    for (h, head) in layer.attention.heads.iter().enumerate() {
                        let row = &head.weight_row(p)[..=p];
                        let got = &step.weights[l][h];
                        assert!(row.iter().zip(got).all(|(a, b)| (a - b).abs() <= 1e-5), "weights L{l}H{h} row {p}");
                    }
                }
                assert_eq!(cache.len(), p + 1);
                assert_eq!(cache.bytes(), forward_cost(&cfg, p + 1).kv_bytes, "cache size is the cost model's");
            }
        }
    }

    #[test]
    fn cache_from_steps_alone_equals_cache_from_a_trace() {
        let cfg = config(2, 2, 16);
        let w = random_weights(&cfg, 3);
        let ids = [4, 9, 1, 33, 2];
        let mut stepped = KvCache::new(&cfg);
        for &id in &ids {
            stepped.step(&cfg, &w, id, Mask::Causal).unwrap();
        }
        let traced = KvCache::from_trace(&cfg, &forward_cpu(&cfg, &w, tokens(&ids), Mask::Causal).unwrap());
        for l in 0..2 {
            let diff = stepped.keys[l].iter().zip(&traced.keys[l]).map(|(a, b)| (a - b).abs()).fold(0.0, f32::max);
            assert!(diff <= 1e-5 && stepped.keys[l].len() == traced.keys[l].len(), "layer {l}: {diff}");
        }
    }

    #[test]
    fn counted_flops_equal_the_cost_model() {
        use crate::engine::ops;
        for cfg in [config(2, 4, 32), ModelConfig::llama((2, 6, 2, 4), 16, 24, 24, 50)] {
            let w = random_weights(&cfg, 1);
            let ids: Vec<u32> = (0..9).collect();
            ops::take_flops();
            let trace = forward_cpu(&cfg, &w, tokens(&ids), Mask::Causal).unwrap();
            assert_eq!(ops::take_flops(), forward_cost(&cfg, 9).total_flops(), "full forward");
            let mut cache = KvCache::from_trace(&cfg, &trace);
            ops::take_flops();
            cache.step(&cfg, &w, 3, Mask::Causal).unwrap();
            assert_eq!(ops::take_flops(), step_cost(&cfg, 10).total_flops(), "one cached step");
        }
    }

    #[test]
    fn bad_steps_are_errors() {
        let cfg = config(1, 1, 8);
        let w = random_weights(&cfg, 1);
        let mut cache = KvCache::new(&cfg);
        assert!(matches!(cache.step(&cfg, &w, 1, Mask::Bidirectional), Err(EngineError::CacheNeedsCausalMask)));
        assert!(matches!(cache.step(&cfg, &w, 50, Mask::Causal), Err(EngineError::IdOutOfVocab { .. })));
        for _ in 0..24 {
            cache.step(&cfg, &w, 1, Mask::Causal).unwrap();
        }
        assert!(matches!(cache.step(&cfg, &w, 1, Mask::Causal), Err(EngineError::TooLong { .. })));
    }
}
