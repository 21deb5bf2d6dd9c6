//! Model files: `config.json`, GPT-2-named safetensors weights and `tokenizer.json`.
//!
//! Everything here validates what it reads and reports problems as
//! [`ModelError`], naming the file, tensor or shape at fault.

mod config;
mod error;
pub mod fertility;
mod tokenizer;
mod weights;

pub use config::{Activation, ModelConfig};
pub use error::ModelError;
pub use tokenizer::{Piece, TextTokenizer, Token, MAX_TEXT_BYTES};
pub use weights::{BlockWeights, Gpt2Weights, Tensor};

/// A loaded model: its configuration, weights and tokenizer, plus a display name.
pub struct Model {
    pub name: String,
    pub config: ModelConfig,
    pub weights: Gpt2Weights,
    pub tokenizer: TextTokenizer,
}

impl Model {
    /// Builds a model from the bytes of its three files (as fetched in the browser).
    pub fn from_bytes(
        name: &str,
        config_json: &[u8],
        safetensors: &[u8],
        tokenizer_json: &[u8],
    ) -> Result<Self, ModelError> {
        let config = ModelConfig::from_json(config_json)?;
        let weights = Gpt2Weights::from_safetensors(safetensors, &config)?;
        let tokenizer = TextTokenizer::from_bytes(tokenizer_json)?;
        if tokenizer.vocab_size() > config.vocab_size {
            return Err(ModelError::TokenizerVocab { tokenizer: tokenizer.vocab_size(), model: config.vocab_size });
        }
        Ok(Self { name: name.to_owned(), config, weights, tokenizer })
    }

    /// Loads `config.json`, `model.safetensors` and `tokenizer.json` from a directory.
    #[cfg(not(target_arch = "wasm32"))]
    pub fn load_dir(dir: &std::path::Path) -> Result<Self, ModelError> {
        let read = |file: &str| {
            let path = dir.join(file);
            std::fs::read(&path).map_err(|source| ModelError::Io { path: path.display().to_string(), source })
        };
        let name = dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "model".into());
        Self::from_bytes(&name, &read("config.json")?, &read("model.safetensors")?, &read("tokenizer.json")?)
    }

    /// Like [`Model::load_dir`], but a directory without `tokenizer.json` (as
    /// `save_pretrained` writes a model alone) loads with
    /// [`TextTokenizer::ids_only`]: enough to run given token ids. The flag
    /// says whether the tokenizer was there.
    #[cfg(not(target_arch = "wasm32"))]
    pub fn load_dir_tokenizer_optional(dir: &std::path::Path) -> Result<(Self, bool), ModelError> {
        if dir.join("tokenizer.json").exists() {
            return Ok((Self::load_dir(dir)?, true));
        }
        let read = |file: &str| {
            let path = dir.join(file);
            std::fs::read(&path).map_err(|source| ModelError::Io { path: path.display().to_string(), source })
        };
        let name = dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "model".into());
        let config = ModelConfig::from_json(&read("config.json")?)?;
        let weights = Gpt2Weights::from_safetensors(&read("model.safetensors")?, &config)?;
        Ok((Self { name, config, weights, tokenizer: TextTokenizer::ids_only()? }, false))
    }
}
