//! The one error type of model loading.

use thiserror::Error;

#[derive(Debug, Error)]
pub enum ModelError {
    #[error("cannot read {path}: {source}")]
    Io { path: String, source: std::io::Error },
    #[error("config.json is not valid JSON: {0}")]
    ConfigJson(String),
    #[error("config.json: key `{key}` {problem}")]
    ConfigKey { key: &'static str, problem: String },
    #[error(
        "config.json: unknown activation_function `{0}` (expected gelu_new, gelu_pytorch_tanh, gelu, relu or silu)"
    )]
    UnknownActivation(String),
    #[error("config.json: model_type `{0}` is not supported (supported: {supported})", supported = super::Architecture::SUPPORTED)]
    UnsupportedModelType(String),
    #[error("config.json: rope_scaling type {0} is not supported (supported: {supported})", supported = super::config_llama::SUPPORTED_ROPE)]
    UnsupportedRope(String),
    #[error("model.safetensors is truncated or corrupt: {0}")]
    Safetensors(String),
    #[error("model.safetensors is truncated or corrupt: its header claims {bytes} bytes; at most {limit} are read")]
    SafetensorsHeader { bytes: u64, limit: u64 },
    #[error("model.safetensors lists more than {limit} tensors")]
    TooManyTensors { limit: usize },
    #[error("tensor `{name}` holds {value} at index {index}: every weight must be a finite number")]
    NonFiniteWeight { name: String, index: usize, value: f32 },
    #[error("model.safetensors has no tensor `{0}`")]
    MissingTensor(String),
    #[error("tensor `{name}` has shape {found:?}, but config.json implies {expected:?}")]
    TensorShape { name: String, expected: Vec<usize>, found: Vec<usize> },
    #[error("tensor `{name}` has dtype {dtype}; only F32, F16 and BF16 are supported")]
    TensorDtype { name: String, dtype: String },
    #[error("model.safetensors.index.json: {0}")]
    ShardIndex(String),
    #[error(transparent)]
    Gguf(#[from] super::gguf::GgufError),
    #[error("tokenizer.json could not be loaded: {0}")]
    Tokenizer(String),
    #[error("tokenizer.json could make a text up to {per_byte} times longer before tokenizing (at most {limit} is accepted)")]
    TokenizerExpands { per_byte: u64, limit: u64 },
    #[error("the text is {bytes} bytes long; at most {limit} are tokenized")]
    TextTooLong { bytes: usize, limit: usize },
    #[error("the tokenizer has {tokenizer} tokens but the model's vocab_size is {model}")]
    TokenizerVocab { tokenizer: usize, model: usize },
}
