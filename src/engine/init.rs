//! Seeded random weights of any shape and either family: for tests and for
//! benchmarks at real model shapes (GPT-2 small) without shipping their weights.

use super::sampling::Rng;
use crate::model::{BlockWeights, ModelConfig, Tensor, Weights};

/// Normal(0, std²) values by Box–Muller from the seeded generator; norm
/// gains 1 and biases 0, as a freshly initialised GPT-2. For the Llama
/// family the layout of [`Weights`]: fused Q|K|V and gate|up, no positions,
/// an untied head unless the config ties it.
pub fn random_weights(config: &ModelConfig, seed: u64) -> Weights {
    let mut rng = Rng::new(seed);
    let mut normal = |shape: &[usize], std: f32| {
        let len = shape.iter().product();
        let data = (0..len)
            .map(|_| {
                let (u1, u2) = (rng.next_f64().max(1e-300), rng.next_f64());
                ((-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()) as f32 * std
            })
            .collect();
        Tensor { shape: shape.to_vec(), data }
    };
    let fill =
        |shape: &[usize], value: f32| Tensor { shape: shape.to_vec(), data: vec![value; shape.iter().product()] };
    let (d, v, p, m) = (config.n_embd, config.vocab_size, config.n_positions, config.n_inner);
    let (q, qkv) = (config.q_dim(), config.qkv_dim());
    let fc = if config.architecture.is_llama_family() { 2 * m } else { m };
    let blocks = (0..config.n_layer)
        .map(|_| BlockWeights {
            ln_1_g: fill(&[d], 1.0),
            ln_1_b: fill(&[d], 0.0),
            attn_qkv_w: normal(&[d, qkv], 0.02).into(),
            attn_qkv_b: fill(&[qkv], 0.0),
            attn_proj_w: normal(&[q, d], 0.02).into(),
            attn_proj_b: fill(&[d], 0.0),
            ln_2_g: fill(&[d], 1.0),
            ln_2_b: fill(&[d], 0.0),
            mlp_fc_w: normal(&[d, fc], 0.02).into(),
            mlp_fc_b: fill(&[fc], 0.0),
            mlp_proj_w: normal(&[m, d], 0.02).into(),
            mlp_proj_b: fill(&[d], 0.0),
        })
        .collect();
    let wte = normal(&[v, d], 0.02).into();
    let wpe = (!config.architecture.is_llama_family()).then(|| normal(&[p, d], 0.01));
    let lm_head = (!config.tie_word_embeddings).then(|| normal(&[v, d], 0.02).into());
    Weights { wte, wpe, blocks, ln_f_g: fill(&[d], 1.0), ln_f_b: fill(&[d], 0.0), lm_head }
}
