//! `ModelConfig`: the `config.json` keys the engine needs, validated. The
//! architecture comes from `model_type`: `gpt2` (also when the key is
//! absent, as in older GPT-2 files) here, `llama` and `qwen2` in
//! [`super::config_llama`]. Both families fill the one struct; the fields a
//! family lacks take the value that makes the shared forward do the right
//! thing (GPT-2: `n_kv_head = n_head`, no RoPE).

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::ModelError;

/// The MLP's non-linearity, as named by `activation_function`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Activation {
    /// GPT-2's tanh approximation (`gelu_new`, `gelu_pytorch_tanh`).
    #[serde(rename = "gelu_new")]
    GeluTanh,
    /// The exact erf form (`gelu`).
    #[serde(rename = "gelu")]
    Gelu,
    #[serde(rename = "relu")]
    Relu,
    /// `x·σ(x)`: the gate of the Llama family's SwiGLU MLP (`hidden_act: silu`).
    #[serde(rename = "silu")]
    Silu,
}

impl Activation {
    fn parse(name: &str) -> Result<Self, ModelError> {
        match name {
            "gelu_new" | "gelu_pytorch_tanh" | "gelu_fast" => Ok(Self::GeluTanh),
            "gelu" => Ok(Self::Gelu),
            "relu" => Ok(Self::Relu),
            "silu" | "swish" => Ok(Self::Silu),
            other => Err(ModelError::UnknownActivation(other.to_owned())),
        }
    }
}

/// Which family of transformer, from `config.json`'s `model_type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Architecture {
    /// Learned positions, LayerNorm, GELU MLP, one K/V per head, tied head.
    Gpt2,
    /// RoPE, RMSNorm, SwiGLU MLP, grouped KV heads (SmolLM2, TinyLlama, Llama 3.2).
    Llama,
    /// Llama with biases on the Q, K and V projections (Qwen2, Qwen2.5).
    Qwen2,
}

impl Architecture {
    /// The `model_type` values that load, for error messages.
    pub const SUPPORTED: &'static str = "gpt2, llama, qwen2";

    /// The `model_type` name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Gpt2 => "gpt2",
            Self::Llama => "llama",
            Self::Qwen2 => "qwen2",
        }
    }

    /// RoPE, RMSNorm, SwiGLU and grouped KV heads instead of GPT-2's learned
    /// positions, LayerNorm and plain MLP.
    pub fn is_llama_family(self) -> bool {
        !matches!(self, Self::Gpt2)
    }
}

/// Llama 3's RoPE frequency scaling (`rope_scaling` / `rope_parameters` of
/// type `llama3`, as Llama 3.1 and 3.2 use it).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Llama3Scaling {
    pub factor: f32,
    pub low_freq_factor: f32,
    pub high_freq_factor: f32,
    pub original_max_position_embeddings: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ModelConfig {
    pub architecture: Architecture,
    pub n_layer: usize,
    /// Query heads.
    pub n_head: usize,
    /// Key/value heads (`num_key_value_heads`): query head h reads KV head
    /// h / (n_head / n_kv_head). Equal to `n_head` for GPT-2.
    pub n_kv_head: usize,
    /// Width of one head (`head_dim`; n_embd / n_head when absent).
    pub head_dim: usize,
    /// Width of the residual stream (`n_embd`, `hidden_size`).
    pub n_embd: usize,
    /// The context (`n_positions`, `max_position_embeddings`).
    pub n_positions: usize,
    pub vocab_size: usize,
    /// Width of the MLP's hidden layer (`n_inner`, 4·n_embd when absent or
    /// null; `intermediate_size`).
    pub n_inner: usize,
    /// LayerNorm's ε (GPT-2) or RMSNorm's (`rms_norm_eps`, the Llama family).
    pub layer_norm_epsilon: f32,
    /// GPT-2's MLP non-linearity, or the SwiGLU gate's (silu).
    pub activation_function: Activation,
    /// RoPE's base (`rope_theta`); `None` for learned positions (GPT-2).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rope_theta: Option<f32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rope_scaling: Option<Llama3Scaling>,
    /// Per dimension pair, what RoPE's frequency is divided by: how GGUF
    /// files carry Llama 3.1+'s scaling (the `rope_freqs.weight` tensor,
    /// llama.cpp's `freq_factors`), where a `config.json` has `rope_scaling`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rope_freq_factors: Option<Vec<f32>>,
    /// Whether the LM head is the token table (always for GPT-2).
    pub tie_word_embeddings: bool,
    /// Biases on Q, K, V (`attention_bias`, or always for qwen2) and on the
    /// output projection (`attention_bias` only). Absent biases load as zeros.
    pub qkv_bias: bool,
    pub o_bias: bool,
    /// Biases on the MLP's three projections (`mlp_bias`).
    pub mlp_bias: bool,
}

/// The largest value each size key may have: far past the models this app
/// can run (Llama 3's 128k context, Qwen2's 152k vocabulary), small enough
/// that the products the config forms (`3·n_embd`, `4·n_embd`) cannot
/// overflow. Products of two sizes (`vocab·n_embd`) are only ever formed
/// for tensors the file holds: safetensors checks each against its bytes.
pub const MAX_LAYERS: usize = 1024;
pub const MAX_HEADS: usize = 1024;
pub const MAX_EMBD: usize = 1 << 16;
pub const MAX_INNER: usize = 1 << 18;
pub const MAX_POSITIONS: usize = 1 << 18;
pub const MAX_VOCAB: usize = 1 << 22;

impl ModelConfig {
    /// GPT-2 small's shape (124M parameters), for benchmarks and cost figures.
    pub fn gpt2_small() -> Self {
        Self::gpt2(12, 12, 768, 1024, 50257)
    }

    /// SmolLM2-135M's shape (Llama family, 135M parameters, tied head, RoPE θ
    /// 100000, ε 1e-5, context 8192), for benchmarks; `config_llama`'s tests
    /// read the same numbers from its config.json.
    pub fn smollm2_135m() -> Self {
        let mut c = Self::llama((30, 9, 3, 64), 576, 1536, 8192, 49152);
        c.tie_word_embeddings = true;
        c.rope_theta = Some(100_000.0);
        c
    }

    /// A GPT-2 shape: MLP 4·d wide, GELU (tanh), ε 1e-5, biases everywhere.
    pub fn gpt2(n_layer: usize, n_head: usize, n_embd: usize, n_positions: usize, vocab_size: usize) -> Self {
        Self {
            architecture: Architecture::Gpt2,
            n_layer,
            n_head,
            n_kv_head: n_head,
            head_dim: n_embd / n_head.max(1),
            n_embd,
            n_positions,
            vocab_size,
            n_inner: 4 * n_embd,
            layer_norm_epsilon: 1e-5,
            activation_function: Activation::GeluTanh,
            rope_theta: None,
            rope_scaling: None,
            rope_freq_factors: None,
            tie_word_embeddings: true,
            qkv_bias: true,
            o_bias: true,
            mlp_bias: true,
        }
    }

    /// A Llama shape (`n_kv_head` KV heads of `head_dim`, SwiGLU `n_inner`
    /// wide, RoPE θ 10000, ε 1e-5, no biases, untied head): for tests and
    /// benchmarks with random weights.
    pub fn llama(
        (n_layer, n_head, n_kv_head, head_dim): (usize, usize, usize, usize),
        n_embd: usize,
        n_inner: usize,
        n_positions: usize,
        vocab_size: usize,
    ) -> Self {
        Self {
            architecture: Architecture::Llama,
            n_layer,
            n_head,
            n_kv_head,
            head_dim,
            n_embd,
            n_positions,
            vocab_size,
            n_inner,
            layer_norm_epsilon: 1e-5,
            activation_function: Activation::Silu,
            rope_theta: Some(10_000.0),
            rope_scaling: None,
            rope_freq_factors: None,
            tie_word_embeddings: false,
            qkv_bias: false,
            o_bias: false,
            mlp_bias: false,
        }
    }

    /// A small GPT-2 shape for unit tests: MLP 4·d wide, GELU (tanh).
    #[cfg(test)]
    pub(crate) fn tiny(n_layer: usize, n_head: usize, n_embd: usize, n_positions: usize, vocab_size: usize) -> Self {
        Self::gpt2(n_layer, n_head, n_embd, n_positions, vocab_size)
    }

    /// Width of one attention head.
    pub fn d_head(&self) -> usize {
        self.head_dim
    }

    /// Width of all query heads side by side (n_head·head_dim; n_embd for GPT-2).
    pub fn q_dim(&self) -> usize {
        self.n_head * self.head_dim
    }

    /// Width of all KV heads side by side (n_kv_head·head_dim).
    pub fn kv_dim(&self) -> usize {
        self.n_kv_head * self.head_dim
    }

    /// Width of the fused Q, K, V projection's output.
    pub fn qkv_dim(&self) -> usize {
        self.q_dim() + 2 * self.kv_dim()
    }

    /// Query heads per KV head.
    pub fn kv_group(&self) -> usize {
        self.n_head / self.n_kv_head.max(1)
    }

    /// RoPE's inverse frequency of each pair (head_dim / 2 of them), with
    /// Llama 3's scaling when the config has it (or the GGUF file's frequency factors); empty without RoPE. Computed
    /// as `transformers` does (`_compute_default_rope_parameters`,
    /// `_compute_llama3_parameters`), rounded to f32 as it keeps them.
    pub fn rope_inv_freq(&self) -> Vec<f32> {
        let Some(theta) = self.rope_theta else { return Vec::new() };
        let dim = self.head_dim;
        let base: Vec<f32> =
            (0..dim / 2).map(|i| 1.0 / (theta as f64).powf((2 * i) as f64 / dim as f64) as f32).collect();
        let base = match &self.rope_freq_factors {
            Some(factors) => base.iter().zip(factors).map(|(f, by)| f / by).collect(),
            None => base,
        };
        let Some(s) = self.rope_scaling else { return base };
        let old = s.original_max_position_embeddings as f32;
        let (low_wavelen, high_wavelen) = (old / s.low_freq_factor, old / s.high_freq_factor);
        base.into_iter()
            .map(|f| {
                let wavelen = std::f32::consts::TAU / f;
                if wavelen < high_wavelen {
                    f
                } else if wavelen > low_wavelen {
                    f / s.factor
                } else {
                    let smooth = (old / wavelen - s.low_freq_factor) / (s.high_freq_factor - s.low_freq_factor);
                    (1.0 - smooth) * f / s.factor + smooth * f
                }
            })
            .collect()
    }

    /// Parses and checks a Hugging Face `config.json` of a supported
    /// `model_type` (GPT-2 when the key is absent).
    pub fn from_json(bytes: &[u8]) -> Result<Self, ModelError> {
        let value: Value = serde_json::from_slice(bytes).map_err(|e| ModelError::ConfigJson(e.to_string()))?;
        match value.get("model_type") {
            None | Some(Value::Null) => Self::gpt2_from_json(&value),
            Some(Value::String(name)) => match name.as_str() {
                "gpt2" => Self::gpt2_from_json(&value),
                "llama" => super::config_llama::from_json(&value, Architecture::Llama),
                "qwen2" => super::config_llama::from_json(&value, Architecture::Qwen2),
                other => Err(ModelError::UnsupportedModelType(other.to_owned())),
            },
            Some(v) => {
                Err(ModelError::ConfigKey { key: "model_type", problem: format!("must be a string, found {v}") })
            }
        }
    }

    fn gpt2_from_json(value: &Value) -> Result<Self, ModelError> {
        let size = |key: &'static str, max: usize| size(value, key, max);
        let layer_norm_epsilon = epsilon(value, "layer_norm_epsilon")?;
        let activation_function = match value.get("activation_function") {
            None => Activation::GeluTanh,
            Some(Value::String(name)) => Activation::parse(name)?,
            Some(v) => {
                return Err(ModelError::ConfigKey {
                    key: "activation_function",
                    problem: format!("must be a string, found {v}"),
                })
            }
        };
        let (n_layer, n_head, n_embd) =
            (size("n_layer", MAX_LAYERS)?, size("n_head", MAX_HEADS)?, size("n_embd", MAX_EMBD)?);
        let n_inner = match value.get("n_inner") {
            // MAX_EMBD · 4 = MAX_INNER: checked anyway, so a change of bounds cannot overflow.
            None | Some(Value::Null) => n_embd.checked_mul(4).filter(|&m| m <= MAX_INNER).ok_or_else(|| {
                ModelError::ConfigKey { key: "n_inner", problem: format!("(4·n_embd) is above {MAX_INNER}") }
            })?,
            Some(_) => size("n_inner", MAX_INNER)?,
        };
        if !n_embd.is_multiple_of(n_head) {
            return Err(ModelError::ConfigKey {
                key: "n_head",
                problem: format!("({n_head}) must divide n_embd ({n_embd})"),
            });
        }
        Ok(Self {
            n_positions: size("n_positions", MAX_POSITIONS)?,
            vocab_size: size("vocab_size", MAX_VOCAB)?,
            n_inner,
            layer_norm_epsilon,
            activation_function,
            ..Self::gpt2(n_layer, n_head, n_embd, 1, 1)
        })
    }
}

/// A required positive size, bounded by `max` before anything multiplies it.
pub(super) fn size(value: &Value, key: &'static str, max: usize) -> Result<usize, ModelError> {
    match value.get(key) {
        None => Err(ModelError::ConfigKey { key, problem: "is missing".into() }),
        Some(v) => match v.as_u64() {
            Some(n) if n > 0 => usize::try_from(n)
                .ok()
                .filter(|&n| n <= max)
                .ok_or_else(|| ModelError::ConfigKey { key, problem: format!("({n}) is above {max}") }),
            _ => Err(ModelError::ConfigKey { key, problem: format!("must be a positive integer, found {v}") }),
        },
    }
}

/// A norm's ε (1e-5 when absent): a positive normal f32 below 1 (1e-300 is
/// positive as f64 but 0 as f32, and the norm would divide by zero).
pub(super) fn epsilon(value: &Value, key: &'static str) -> Result<f32, ModelError> {
    match value.get(key) {
        None => Ok(1e-5),
        Some(v) => match v.as_f64().map(|e| e as f32) {
            Some(e) if e.is_normal() && e > 0.0 && e < 1.0 => Ok(e),
            _ => Err(ModelError::ConfigKey {
                key,
                problem: format!("must be a number in (0, 1) that is a normal f32, found {v}"),
            }),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GPT2: &str = r#"{"n_layer": 2, "n_head": 4, "n_embd": 64, "n_positions": 64, "vocab_size": 512,
        "layer_norm_epsilon": 1e-5, "activation_function": "gelu_new", "model_type": "gpt2"}"#;

    #[test]
    fn parses_gpt2_keys_and_ignores_others() {
        let config = ModelConfig::from_json(GPT2.as_bytes()).unwrap();
        assert_eq!((config.n_layer, config.n_head, config.d_head()), (2, 4, 16));
        assert_eq!(config.activation_function, Activation::GeluTanh);
        assert_eq!(config.n_inner, 256, "n_inner defaults to 4·n_embd");
        let json = GPT2.replace("\"model_type\"", "\"n_inner\": 100, \"model_type\"");
        assert_eq!(ModelConfig::from_json(json.as_bytes()).unwrap().n_inner, 100);
    }

    #[test]
    fn unknown_activation_is_named() {
        let json = GPT2.replace("gelu_new", "mish");
        let err = ModelConfig::from_json(json.as_bytes()).unwrap_err();
        assert!(err.to_string().contains("unknown activation_function `mish`"), "{err}");
    }

    /// `n_embd` = 2^62 without `n_inner` overflowed `4·n_embd` (a panic in
    /// debug, a silent wrap in release); every size is bounded instead.
    #[test]
    fn huge_sizes_are_refused_before_any_arithmetic() {
        let json = GPT2.replace("\"n_embd\": 64", "\"n_embd\": 4611686018427387904");
        let err = ModelConfig::from_json(json.as_bytes()).unwrap_err();
        assert!(err.to_string().contains("`n_embd` (4611686018427387904) is above 65536"), "{err}");
        for (key, from) in [("n_layer", "2"), ("n_head", "4"), ("n_positions", "64"), ("vocab_size", "512")] {
            let json = GPT2.replace(&format!("\"{key}\": {from}"), &format!("\"{key}\": 18446744073709551615"));
            let err = ModelConfig::from_json(json.as_bytes()).unwrap_err();
            assert!(err.to_string().contains(&format!("`{key}`")), "{key}: {err}");
        }
    }

    /// 1e-300 is in (0, 1) as f64 but 0 in f32: LayerNorm would divide by zero.
    #[test]
    fn epsilon_must_be_a_positive_normal_f32() {
        for eps in ["1e-300", "1e-40", "0", "-1e-5", "1", "\"x\""] {
            let json = GPT2.replace("1e-5", eps);
            let err = ModelConfig::from_json(json.as_bytes()).unwrap_err();
            assert!(err.to_string().contains("layer_norm_epsilon"), "{eps}: {err}");
        }
        let json = GPT2.replace("1e-5", "1e-12");
        assert_eq!(ModelConfig::from_json(json.as_bytes()).unwrap().layer_norm_epsilon, 1e-12);
    }

    #[test]
    fn missing_and_bad_keys_are_named() {
        let err = ModelConfig::from_json(br#"{"n_layer": 2}"#).unwrap_err();
        assert!(err.to_string().contains("`n_head` is missing"), "{err}");
        let json = GPT2.replace("\"n_head\": 4", "\"n_head\": 5");
        let err = ModelConfig::from_json(json.as_bytes()).unwrap_err();
        assert!(err.to_string().contains("must divide n_embd"), "{err}");
        let err = ModelConfig::from_json(b"{not json").unwrap_err();
        assert!(err.to_string().contains("not valid JSON"), "{err}");
    }
}
