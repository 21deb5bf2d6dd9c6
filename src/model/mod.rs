//! Model files: `config.json`, safetensors weights (GPT-2's names, or
//! Hugging Face Llama/Qwen2 names, one file or shards) and `tokenizer.json`;
//! or one GGUF file holding all three (`gguf`, `gguf_model`).
//!
//! Everything here validates what it reads and reports problems as
//! [`ModelError`], naming the file, tensor or shape at fault.

pub mod compact_vocab;
mod config;
mod config_llama;
mod error;
pub mod fertility;
pub mod file_bytes;
pub mod gguf;
mod gguf_model;
mod gguf_quant;
#[cfg(test)]
mod gguf_writer;
pub mod local_files;
mod matrix;
pub mod plan;
mod safetensors_file;
pub mod shards;
pub mod shuffle;
pub mod source;
mod tokenizer;
mod tokenizer_json;
mod weights;

pub use config::{Activation, Architecture, Llama3Scaling, ModelConfig};
pub use error::ModelError;
pub use matrix::{Half, Matrix, Values, ValuesRef};
pub use tokenizer::{BpeParts, Piece, TextTokenizer, Token, MAX_TEXT_BYTES};
pub use weights::{BlockWeights, Gpt2Weights, Tensor, Weights};

/// A loaded model: its configuration, weights and tokenizer, plus a display name.
pub struct Model {
    pub name: String,
    pub config: ModelConfig,
    pub weights: Weights,
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
        Self::from_shards(name, config_json, &[safetensors], tokenizer_json)
    }

    /// [`Model::from_bytes`] for a checkpoint split over several safetensors files.
    pub fn from_shards<F: file_bytes::FileBytes + ?Sized>(
        name: &str,
        config_json: &[u8],
        shards: &[&F],
        tokenizer_json: &[u8],
    ) -> Result<Self, ModelError> {
        crate::pace::at_once(Self::from_shards_paced(name, config_json, shards, tokenizer_json, async || {}))
    }

    /// [`Model::from_shards`] a block of weights at a time, awaiting `pause`
    /// between the parts (the page gives the thread back there). The shards
    /// are read by range: each tensor straight into its matrix.
    pub async fn from_shards_paced<F: file_bytes::FileBytes + ?Sized>(
        name: &str,
        config_json: &[u8],
        shards: &[&F],
        tokenizer_json: &[u8],
        mut pause: impl AsyncFnMut(),
    ) -> Result<Self, ModelError> {
        let shards: Vec<&dyn file_bytes::FileBytes> = shards.iter().map(|s| s as &dyn file_bytes::FileBytes).collect();
        Self::from_shards_erased(name, config_json, &shards, tokenizer_json, &mut pause).await
    }

    /// [`Model::from_shards_paced`] with the file and pause types erased: compiled once.
    async fn from_shards_erased(
        name: &str,
        config_json: &[u8],
        shards: &[&dyn file_bytes::FileBytes],
        tokenizer_json: &[u8],
        pause: &mut dyn crate::pace::Pause,
    ) -> Result<Self, ModelError> {
        let mut pause = async || pause.pause().await;
        let config = ModelConfig::from_json(config_json)?;
        let weights = Weights::from_shards_paced(shards, &config, &mut pause).await?;
        pause().await;
        let tokenizer = TextTokenizer::from_json_paced(tokenizer_json, &mut pause).await?;
        Self::new(name, config, weights, tokenizer)
    }

    /// Puts the parts together, checking the tokenizer fits the vocabulary.
    pub fn new(
        name: &str,
        config: ModelConfig,
        weights: Weights,
        tokenizer: TextTokenizer,
    ) -> Result<Self, ModelError> {
        if tokenizer.vocab_size() > config.vocab_size {
            return Err(ModelError::TokenizerVocab { tokenizer: tokenizer.vocab_size(), model: config.vocab_size });
        }
        Ok(Self { name: name.to_owned(), config, weights, tokenizer })
    }

    /// Loads a model from a GGUF file (a path ending in `.gguf`, or any file)
    /// or from a directory ([`Model::load_dir`]).
    #[cfg(not(target_arch = "wasm32"))]
    pub fn load(path: &std::path::Path) -> Result<Self, ModelError> {
        if path.is_file() || path.extension().is_some_and(|e| e == "gguf") {
            let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "model".into());
            return Self::from_gguf(&name, &read_file(path)?);
        }
        Self::load_dir(path)
    }

    /// Loads `config.json`, the weights (`model.safetensors`, or the shards
    /// `model.safetensors.index.json` names) and `tokenizer.json` from a directory.
    #[cfg(not(target_arch = "wasm32"))]
    pub fn load_dir(dir: &std::path::Path) -> Result<Self, ModelError> {
        let (name, config, weights) = Self::load_dir_weights(dir)?;
        let tokenizer = TextTokenizer::from_bytes(&read_file(&dir.join("tokenizer.json"))?)?;
        Self::new(&name, config, weights, tokenizer)
    }

    /// The name, config and weights of a model directory.
    #[cfg(not(target_arch = "wasm32"))]
    fn load_dir_weights(dir: &std::path::Path) -> Result<(String, ModelConfig, Weights), ModelError> {
        let name = dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "model".into());
        let config = ModelConfig::from_json(&read_file(&dir.join("config.json"))?)?;
        let single = dir.join("model.safetensors");
        let index = dir.join(shards::INDEX);
        let files = if !single.exists() && index.exists() {
            shards::files(&read_file(&index)?)?
                .iter()
                .map(|f| read_file(&dir.join(f)))
                .collect::<Result<Vec<_>, _>>()?
        } else {
            vec![read_file(&single)?]
        };
        let slices: Vec<&[u8]> = files.iter().map(Vec::as_slice).collect();
        let weights = Weights::from_shards(&slices, &config)?;
        Ok((name, config, weights))
    }

    /// Like [`Model::load`], but a directory without `tokenizer.json` (as
    /// `save_pretrained` writes a model alone) loads with
    /// [`TextTokenizer::ids_only`]: enough to run given token ids. The flag
    /// says whether the tokenizer was there (a GGUF file always has one).
    #[cfg(not(target_arch = "wasm32"))]
    pub fn load_dir_tokenizer_optional(dir: &std::path::Path) -> Result<(Self, bool), ModelError> {
        if dir.is_file() {
            return Ok((Self::load(dir)?, true));
        }
        if dir.join("tokenizer.json").exists() {
            return Ok((Self::load_dir(dir)?, true));
        }
        let (name, config, weights) = Self::load_dir_weights(dir)?;
        Ok((Self { name, config, weights, tokenizer: TextTokenizer::ids_only()? }, false))
    }
}

#[cfg(not(target_arch = "wasm32"))]
fn read_file(path: &std::path::Path) -> Result<Vec<u8>, ModelError> {
    std::fs::read(path).map_err(|source| ModelError::Io { path: path.display().to_string(), source })
}
