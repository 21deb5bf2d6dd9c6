//! Generation: sample one token at a time and append it (full re-run per step;
//! the KV cache arrives with the GPU backend's prefix reuse).

use serde::Serialize;

use super::sampling::{try_sample, Rng, Sampled, SamplingParams};
use super::{forward_cpu, EngineError, Mask};
use crate::model::{Model, Token};

#[derive(Debug, Clone, Serialize)]
pub struct Generation {
    pub prompt: Vec<Token>,
    /// Each generated token with the probability it had.
    pub steps: Vec<GeneratedToken>,
    /// True when generation stopped because the context was full.
    pub hit_context_limit: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct GeneratedToken {
    pub text: String,
    #[serde(flatten)]
    pub sampled: Sampled,
}

impl Generation {
    /// The generated continuation as text.
    pub fn continuation(&self, model: &Model) -> String {
        let ids: Vec<u32> = self.steps.iter().map(|s| s.sampled.id).collect();
        model.tokenizer.decode(&ids)
    }
}

/// How many of `steps` fit in the context after `prompt_len` tokens: the
/// bound on what a generation may allocate, whatever `steps` says.
pub fn steps_that_fit(config: &crate::model::ModelConfig, prompt_len: usize, steps: usize) -> usize {
    steps.min(config.n_positions.saturating_sub(prompt_len))
}

/// Samples up to `steps` tokens after `prompt` with `params`.
pub fn generate(
    model: &Model,
    prompt: Vec<Token>,
    steps: usize,
    params: &SamplingParams,
    mask: Mask,
) -> Result<Generation, EngineError> {
    let mut rng = Rng::new(params.seed);
    let mut tokens = prompt.clone();
    let mut out = Vec::with_capacity(steps_that_fit(&model.config, prompt.len(), steps));
    let limit = model.config.n_positions;
    let mut hit_context_limit = false;
    for _ in 0..steps {
        if tokens.len() >= limit {
            hit_context_limit = true;
            break;
        }
        let trace = forward_cpu(&model.config, &model.weights, tokens.clone(), mask)?;
        let last = trace.logits.row(trace.logits.rows - 1);
        let sampled = try_sample(last, params, &mut rng)?;
        let text = model.tokenizer.decode(&[sampled.id]);
        tokens.push(Token { id: sampled.id, text: text.clone(), start: 0, end: 0 });
        out.push(GeneratedToken { text, sampled });
    }
    Ok(Generation { prompt, steps: out, hit_context_limit })
}
