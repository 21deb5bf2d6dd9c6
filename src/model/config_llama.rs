//! The Llama family's `config.json` (`model_type` `llama` and `qwen2`), in
//! both the `transformers` 4 form (`rope_theta`, `rope_scaling`, as the hub's
//! files have it) and the 5 form (`rope_parameters`, as `save_pretrained`
//! writes it now).

use serde_json::{Map, Value};

use super::config::{epsilon, size, MAX_EMBD, MAX_HEADS, MAX_INNER, MAX_LAYERS, MAX_POSITIONS, MAX_VOCAB};
use super::{Activation, Architecture, Llama3Scaling, ModelConfig, ModelError};

/// The widest head accepted (Llama and Qwen use 64 or 128).
pub const MAX_HEAD_DIM: usize = 1024;

/// The `rope_type` values that load, for error messages.
pub const SUPPORTED_ROPE: &str = "default (none) or llama3";

fn bool_key(value: &Value, key: &'static str, default: bool) -> Result<bool, ModelError> {
    match value.get(key) {
        None | Some(Value::Null) => Ok(default),
        Some(Value::Bool(b)) => Ok(*b),
        Some(v) => Err(ModelError::ConfigKey { key, problem: format!("must be true or false, found {v}") }),
    }
}

/// A positive finite number, or `default` when absent.
fn positive(map: &Map<String, Value>, key: &'static str, default: Option<f32>) -> Result<f32, ModelError> {
    match (map.get(key), default) {
        (None | Some(Value::Null), Some(d)) => Ok(d),
        (None | Some(Value::Null), None) => Err(ModelError::ConfigKey { key, problem: "is missing".into() }),
        (Some(v), _) => match v.as_f64().map(|x| x as f32) {
            Some(x) if x.is_finite() && x > 0.0 => Ok(x),
            _ => Err(ModelError::ConfigKey { key, problem: format!("must be a positive number, found {v}") }),
        },
    }
}

/// RoPE's θ and scaling from `rope_parameters` (transformers 5) or
/// `rope_theta` + `rope_scaling` (transformers 4).
fn rope(value: &Value) -> Result<(f32, Option<Llama3Scaling>), ModelError> {
    let empty = Map::new();
    let object = |key: &'static str| -> Result<Option<&Map<String, Value>>, ModelError> {
        match value.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Object(map)) => Ok(Some(map)),
            Some(v) => Err(ModelError::ConfigKey { key, problem: format!("must be an object, found {v}") }),
        }
    };
    let parameters = object("rope_parameters")?;
    let theta = match parameters {
        Some(p) if p.contains_key("rope_theta") => positive(p, "rope_theta", None)?,
        _ => positive(value.as_object().unwrap_or(&empty), "rope_theta", Some(10_000.0))?,
    };
    let Some(scaling) = parameters.or(object("rope_scaling")?) else { return Ok((theta, None)) };
    let kind = scaling.get("rope_type").or_else(|| scaling.get("type"));
    match kind.and_then(Value::as_str) {
        None | Some("default") if kind.is_none_or(Value::is_string) => Ok((theta, None)),
        Some("llama3") => {
            let original = match scaling.get("original_max_position_embeddings").and_then(Value::as_u64) {
                Some(n) if n > 0 && n <= MAX_POSITIONS as u64 => n as usize,
                _ => {
                    return Err(ModelError::ConfigKey {
                        key: "original_max_position_embeddings",
                        problem: format!("must be an integer in 1..={MAX_POSITIONS} in rope_scaling"),
                    })
                }
            };
            let s = Llama3Scaling {
                factor: positive(scaling, "factor", None)?,
                low_freq_factor: positive(scaling, "low_freq_factor", None)?,
                high_freq_factor: positive(scaling, "high_freq_factor", None)?,
                original_max_position_embeddings: original,
            };
            if s.high_freq_factor <= s.low_freq_factor {
                return Err(ModelError::ConfigKey {
                    key: "high_freq_factor",
                    problem: format!("({}) must be above low_freq_factor ({})", s.high_freq_factor, s.low_freq_factor),
                });
            }
            Ok((theta, Some(s)))
        }
        _ => Err(ModelError::UnsupportedRope(kind.map_or_else(|| "null".into(), |k| k.to_string()))),
    }
}

/// Parses a Llama-family `config.json` (`model_type` already read).
pub(super) fn from_json(value: &Value, architecture: Architecture) -> Result<ModelConfig, ModelError> {
    let size = |key: &'static str, max: usize| size(value, key, max);
    let n_embd = size("hidden_size", MAX_EMBD)?;
    let n_head = size("num_attention_heads", MAX_HEADS)?;
    let n_kv_head = match value.get("num_key_value_heads") {
        None | Some(Value::Null) => n_head,
        Some(_) => size("num_key_value_heads", MAX_HEADS)?,
    };
    if !n_head.is_multiple_of(n_kv_head) {
        return Err(ModelError::ConfigKey {
            key: "num_key_value_heads",
            problem: format!("({n_kv_head}) must divide num_attention_heads ({n_head})"),
        });
    }
    let head_dim = match value.get("head_dim") {
        None | Some(Value::Null) => {
            if !n_embd.is_multiple_of(n_head) {
                return Err(ModelError::ConfigKey {
                    key: "num_attention_heads",
                    problem: format!("({n_head}) must divide hidden_size ({n_embd}) when head_dim is absent"),
                });
            }
            n_embd / n_head
        }
        Some(_) => size("head_dim", MAX_HEAD_DIM)?,
    };
    if !head_dim.is_multiple_of(2) {
        return Err(ModelError::ConfigKey { key: "head_dim", problem: format!("({head_dim}) must be even for RoPE") });
    }
    match value.get("hidden_act") {
        None | Some(Value::Null) => {}
        Some(Value::String(name)) if name == "silu" || name == "swish" => {}
        Some(v) => {
            return Err(ModelError::ConfigKey { key: "hidden_act", problem: format!("must be \"silu\", found {v}") })
        }
    }
    if bool_key(value, "use_sliding_window", false)? {
        return Err(ModelError::ConfigKey {
            key: "use_sliding_window",
            problem: "is true: sliding-window layers are not supported".into(),
        });
    }
    let (rope_theta, rope_scaling) = rope(value)?;
    let attention_bias = bool_key(value, "attention_bias", false)?;
    Ok(ModelConfig {
        architecture,
        n_layer: size("num_hidden_layers", MAX_LAYERS)?,
        n_head,
        n_kv_head,
        head_dim,
        n_embd,
        n_positions: size("max_position_embeddings", MAX_POSITIONS)?,
        vocab_size: size("vocab_size", MAX_VOCAB)?,
        n_inner: size("intermediate_size", MAX_INNER)?,
        layer_norm_epsilon: epsilon(value, "rms_norm_eps")?,
        activation_function: Activation::Silu,
        rope_theta: Some(rope_theta),
        rope_scaling,
        rope_freq_factors: None,
        tie_word_embeddings: bool_key(value, "tie_word_embeddings", false)?,
        qkv_bias: attention_bias || architecture == Architecture::Qwen2,
        o_bias: attention_bias,
        mlp_bias: bool_key(value, "mlp_bias", false)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// SmolLM2-135M's config.json (the hub's, transformers 4 form).
    pub(crate) const SMOLLM2: &str = r#"{"architectures": ["LlamaForCausalLM"], "attention_bias": false,
        "bos_token_id": 0, "eos_token_id": 0, "hidden_act": "silu", "hidden_size": 576,
        "initializer_range": 0.041666666666666664, "intermediate_size": 1536, "max_position_embeddings": 8192,
        "mlp_bias": false, "model_type": "llama", "num_attention_heads": 9, "num_hidden_layers": 30,
        "num_key_value_heads": 3, "pretraining_tp": 1, "rms_norm_eps": 1e-05, "rope_scaling": null,
        "rope_theta": 100000, "tie_word_embeddings": true, "torch_dtype": "bfloat16", "vocab_size": 49152}"#;

    fn parse(json: &str) -> Result<ModelConfig, ModelError> {
        ModelConfig::from_json(json.as_bytes())
    }

    #[test]
    fn smollm2_parses_with_grouped_heads() {
        let c = parse(SMOLLM2).unwrap();
        assert_eq!(c.architecture, Architecture::Llama);
        assert_eq!((c.n_layer, c.n_head, c.n_kv_head, c.head_dim, c.kv_group()), (30, 9, 3, 64, 3));
        assert_eq!((c.n_inner, c.n_positions, c.vocab_size), (1536, 8192, 49152));
        assert_eq!(c.rope_theta, Some(100_000.0));
        assert!(c.tie_word_embeddings && !c.qkv_bias && !c.o_bias && !c.mlp_bias);
        assert_eq!(c.rope_inv_freq().len(), 32);
        assert_eq!(c.rope_inv_freq()[0], 1.0);
    }

    #[test]
    fn smollm2_shape_for_benchmarks_is_its_config() {
        assert_eq!(ModelConfig::smollm2_135m(), parse(SMOLLM2).unwrap());
    }

    #[test]
    fn transformers_5_rope_parameters_and_llama3_scaling() {
        let json = SMOLLM2.replace(
            r#""rope_scaling": null,
        "rope_theta": 100000,"#,
            r#""rope_parameters": {"rope_type": "llama3", "rope_theta": 500000.0, "factor": 32.0,
            "low_freq_factor": 1.0, "high_freq_factor": 4.0, "original_max_position_embeddings": 8192},"#,
        );
        let c = parse(&json).unwrap();
        assert_eq!(c.rope_theta, Some(500_000.0));
        let s = c.rope_scaling.unwrap();
        assert_eq!((s.factor, s.original_max_position_embeddings), (32.0, 8192));
        // High frequencies keep their value, the lowest are divided by the factor.
        let (plain, scaled) = (ModelConfig { rope_scaling: None, ..c.clone() }.rope_inv_freq(), c.rope_inv_freq());
        assert_eq!(scaled[0], plain[0]);
        assert_eq!(scaled[31], plain[31] / 32.0);
        let json = SMOLLM2.replace(r#""rope_scaling": null"#, r#""rope_scaling": {"type": "default"}"#);
        assert_eq!(parse(&json).unwrap().rope_scaling, None);
    }

    #[test]
    fn qwen2_has_qkv_biases() {
        let c = parse(&SMOLLM2.replace("\"llama\"", "\"qwen2\"")).unwrap();
        assert_eq!(c.architecture, Architecture::Qwen2);
        assert!(c.qkv_bias && !c.o_bias);
    }

    #[test]
    fn unsupported_types_are_named_with_what_is_supported() {
        let err = parse(&SMOLLM2.replace("\"llama\"", "\"mistral\"")).unwrap_err();
        assert_eq!(
            err.to_string(),
            "config.json: model_type `mistral` is not supported (supported: gpt2, llama, qwen2)"
        );
        let json =
            SMOLLM2.replace(r#""rope_scaling": null"#, r#""rope_scaling": {"rope_type": "yarn", "factor": 4.0}"#);
        let err = parse(&json).unwrap_err();
        assert_eq!(
            err.to_string(),
            "config.json: rope_scaling type \"yarn\" is not supported (supported: default (none) or llama3)"
        );
        let err = parse(&SMOLLM2.replace("\"silu\"", "\"gelu\"")).unwrap_err();
        assert!(err.to_string().contains("`hidden_act` must be \"silu\""), "{err}");
    }

    #[test]
    fn bad_sizes_are_named() {
        let err = parse(&SMOLLM2.replace("\"num_key_value_heads\": 3", "\"num_key_value_heads\": 2")).unwrap_err();
        assert!(err.to_string().contains("must divide num_attention_heads (9)"), "{err}");
        let err = parse(&SMOLLM2.replace("\"num_key_value_heads\": 3", "\"num_key_value_heads\": 0")).unwrap_err();
        assert!(err.to_string().contains("`num_key_value_heads` must be a positive integer"), "{err}");
        let err = parse(&SMOLLM2.replace("\"hidden_size\": 576", "\"hidden_size\": 1e300")).unwrap_err();
        assert!(err.to_string().contains("`hidden_size`"), "{err}");
        let err = parse(&SMOLLM2.replace("\"rope_theta\": 100000", "\"rope_theta\": -1")).unwrap_err();
        assert!(err.to_string().contains("`rope_theta` must be a positive number"), "{err}");
        let json = SMOLLM2.replace("\"rms_norm_eps\": 1e-05", "\"rms_norm_eps\": 0");
        assert!(parse(&json).unwrap_err().to_string().contains("rms_norm_eps"));
        let json = SMOLLM2.replace("\"hidden_size\": 576", "\"hidden_size\": 577");
        assert!(parse(&json).unwrap_err().to_string().contains("must divide hidden_size"));
        let json = SMOLLM2.replace("\"hidden_size\": 576", "\"hidden_size\": 576, \"head_dim\": 33");
        assert!(parse(&json).unwrap_err().to_string().contains("must be even"));
    }
}
