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
    #[error("config.json: unknown activation_function `{0}` (expected gelu_new, gelu_pytorch_tanh, gelu or relu)")]
    UnknownActivation(String),
    #[error("model.safetensors is truncated or corrupt: {0}")]
    Safetensors(String),
    #[error("model.safetensors has no tensor `{0}`")]
    MissingTensor(String),
    #[error("tensor `{name}` has shape {found:?}, but config.json implies {expected:?}")]
    TensorShape { name: String, expected: Vec<usize>, found: Vec<usize> },
    #[error("tensor `{name}` has dtype {dtype}; only F32, F16 and BF16 are supported")]
    TensorDtype { name: String, dtype: String },
    #[error("tokenizer.json could not be loaded: {0}")]
    Tokenizer(String),
    #[error("the tokenizer has {tokenizer} tokens but the model's vocab_size is {model}")]
    TokenizerVocab { tokenizer: usize, model: usize },
}
