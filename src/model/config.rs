//! `ModelConfig`: the GPT-2 `config.json` keys the engine needs, validated.

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
}

impl Activation {
    fn parse(name: &str) -> Result<Self, ModelError> {
        match name {
            "gelu_new" | "gelu_pytorch_tanh" | "gelu_fast" => Ok(Self::GeluTanh),
            "gelu" => Ok(Self::Gelu),
            "relu" => Ok(Self::Relu),
            other => Err(ModelError::UnknownActivation(other.to_owned())),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ModelConfig {
    pub n_layer: usize,
    pub n_head: usize,
    pub n_embd: usize,
    pub n_positions: usize,
    pub vocab_size: usize,
    /// Width of the MLP's hidden layer (`n_inner`; 4·n_embd when absent or null).
    pub n_inner: usize,
    pub layer_norm_epsilon: f32,
    pub activation_function: Activation,
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
        Self {
            n_layer: 12,
            n_head: 12,
            n_embd: 768,
            n_positions: 1024,
            vocab_size: 50257,
            n_inner: 3072,
            layer_norm_epsilon: 1e-5,
            activation_function: Activation::GeluTanh,
        }
    }

    /// A small GPT-2 shape for unit tests: MLP 4·d wide, GELU (tanh).
    #[cfg(test)]
    pub(crate) fn tiny(n_layer: usize, n_head: usize, n_embd: usize, n_positions: usize, vocab_size: usize) -> Self {
        Self {
            n_layer,
            n_head,
            n_embd,
            n_positions,
            vocab_size,
            n_inner: 4 * n_embd,
            layer_norm_epsilon: 1e-5,
            activation_function: Activation::GeluTanh,
        }
    }

    /// Width of one attention head.
    pub fn d_head(&self) -> usize {
        self.n_embd / self.n_head
    }

    /// Parses and checks a Hugging Face GPT-2 `config.json`.
    pub fn from_json(bytes: &[u8]) -> Result<Self, ModelError> {
        let value: Value = serde_json::from_slice(bytes).map_err(|e| ModelError::ConfigJson(e.to_string()))?;
        // Every size is bounded here, before anything multiplies it.
        let size = |key: &'static str, max: usize| -> Result<usize, ModelError> {
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
        };
        // A positive normal f32 below 1: 1e-300 is positive as f64 but 0 as f32.
        let layer_norm_epsilon = match value.get("layer_norm_epsilon") {
            None => 1e-5,
            Some(v) => match v.as_f64().map(|e| e as f32) {
                Some(e) if e.is_normal() && e > 0.0 && e < 1.0 => e,
                _ => {
                    return Err(ModelError::ConfigKey {
                        key: "layer_norm_epsilon",
                        problem: format!("must be a number in (0, 1) that is a normal f32, found {v}"),
                    })
                }
            },
        };
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
        let config = Self {
            n_layer,
            n_head,
            n_embd,
            n_positions: size("n_positions", MAX_POSITIONS)?,
            vocab_size: size("vocab_size", MAX_VOCAB)?,
            n_inner,
            layer_norm_epsilon,
            activation_function,
        };
        if !config.n_embd.is_multiple_of(config.n_head) {
            return Err(ModelError::ConfigKey {
                key: "n_head",
                problem: format!("({}) must divide n_embd ({})", config.n_head, config.n_embd),
            });
        }
        Ok(config)
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
        let json = GPT2.replace("gelu_new", "swish");
        let err = ModelConfig::from_json(json.as_bytes()).unwrap_err();
        assert!(err.to_string().contains("unknown activation_function `swish`"), "{err}");
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
