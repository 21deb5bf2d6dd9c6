//! The user's own files (a picker or a drop in the page), by name: one
//! `.gguf`, or `config.json` + `tokenizer.json` + the safetensors (one file,
//! or the shards `model.safetensors.index.json` names, or every
//! `*.safetensors` given, in name order). Planned from their own headers
//! before anything is built.

use thiserror::Error;

use super::file_bytes::{read_small, read_vec, FileBytes};
use super::plan::{header_length, FileHeader, Plan, PlanError, LENGTH_BYTES, MAX_SMALL_FILE_BYTES};
use super::{shards, Model, ModelError};

#[derive(Debug, Error)]
pub enum FilesError {
    #[error("no weights: give config.json, tokenizer.json and the .safetensors file(s), or one .gguf file")]
    NoWeights,
    #[error("{0} is missing: give it with the weights")]
    Missing(String),
    #[error("{0} is missing: the index names it")]
    MissingShard(String),
    #[error("{name} is {bytes} bytes; at most {limit} are read for it")]
    TooLarge { name: String, bytes: u64, limit: u64 },
    #[error("{0}")]
    Plan(#[from] PlanError),
    #[error("{0}")]
    Model(#[from] ModelError),
}

/// Files by name, as the page read them: bytes read by range
/// ([`FileBytes`]; in the page, outside WebAssembly memory), so the plan
/// is checked before any weight is read and each tensor goes straight into
/// its matrix.
pub struct LocalFiles<B = Vec<u8>> {
    pub files: Vec<(String, B)>,
}

fn is_gguf(name: &str) -> bool {
    name.to_ascii_lowercase().ends_with(".gguf")
}

impl<B: FileBytes> LocalFiles<B> {
    fn get(&self, name: &str) -> Option<&B> {
        self.files.iter().find(|(n, _)| n == name).map(|(_, b)| b)
    }

    /// A small file (config, tokenizer, index) whole, bounded by [`MAX_SMALL_FILE_BYTES`].
    fn small(&self, name: &str) -> Result<Option<Vec<u8>>, FilesError> {
        let Some(file) = self.get(name) else { return Ok(None) };
        let limit = MAX_SMALL_FILE_BYTES;
        let too_large = || FilesError::TooLarge { name: name.to_owned(), bytes: file.size(), limit };
        read_small(file, limit).map(Some).ok_or_else(too_large)
    }

    fn gguf(&self) -> Option<(&str, &B)> {
        self.files.iter().find(|(n, _)| is_gguf(n)).map(|(n, b)| (n.as_str(), b))
    }

    /// A name for the top bar: the GGUF file's, or "your files".
    pub fn display_name(&self) -> String {
        self.gguf().map_or_else(|| "your files".into(), |(n, _)| n.to_owned())
    }

    /// The weight files in order: the index's, or every `.safetensors` by name.
    fn weights(&self) -> Result<Vec<(&str, &B)>, FilesError> {
        let names: Vec<String> = match self.small(shards::INDEX)? {
            Some(index) => shards::files(&index)?,
            None => {
                let mut names: Vec<String> =
                    self.files.iter().map(|(n, _)| n.clone()).filter(|n| n.ends_with(".safetensors")).collect();
                names.sort();
                names
            }
        };
        if names.is_empty() {
            return Err(FilesError::NoWeights);
        }
        names
            .iter()
            .map(|n| {
                let (name, bytes) =
                    self.files.iter().find(|(f, _)| f == n).ok_or_else(|| FilesError::MissingShard(n.clone()))?;
                Ok((name.as_str(), bytes))
            })
            .collect()
    }

    /// What these files will cost, from their own headers.
    pub fn plan(&self) -> Result<Plan, FilesError> {
        if let Some((name, bytes)) = self.gguf() {
            return Ok(Plan::gguf(name, bytes.size()));
        }
        let mut headers = Vec::new();
        for (name, bytes) in self.weights()? {
            let size = bytes.size();
            let first = read_vec(bytes, 0, LENGTH_BYTES.min(size)).unwrap_or_default();
            // header_length bounds the length (4 MiB) before it is read.
            let length = header_length(name, &first)?;
            let wanted = LENGTH_BYTES.saturating_add(length);
            let truncated = || PlanError::Truncated { file: name.into(), size, wanted };
            let json = read_vec(bytes, LENGTH_BYTES, length).ok_or_else(truncated)?;
            headers.push(FileHeader::parse(name, &json, Some(size))?);
        }
        Ok(Plan::new(&headers, &[])?)
    }

    /// The model these files hold.
    pub fn build(&self) -> Result<Model, FilesError> {
        crate::pace::at_once(self.build_paced(async || {}))
    }

    /// [`LocalFiles::build`] a block of weights at a time, awaiting `pause` between the parts.
    pub async fn build_paced(&self, pause: impl AsyncFnMut()) -> Result<Model, FilesError> {
        let name = self.display_name();
        if let Some((_, bytes)) = self.gguf() {
            return Ok(Model::from_gguf_paced(&name, bytes, pause).await?);
        }
        let need = |n: &str| self.small(n)?.ok_or_else(|| FilesError::Missing(n.into()));
        let (config, tokenizer) = (need("config.json")?, need("tokenizer.json")?);
        let shards: Vec<&B> = self.weights()?.into_iter().map(|(_, b)| b).collect();
        Ok(Model::from_shards_paced(&name, &config, &shards, &tokenizer, pause).await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(dir: &str, names: &[&str]) -> Vec<(String, Vec<u8>)> {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        names.iter().map(|n| (n.to_string(), std::fs::read(root.join(dir).join(n)).unwrap())).collect()
    }

    /// A three-word tokenizer: within the tiny fixtures' vocabularies.
    const TOKENIZER: &str = r#"{"version": "1.0", "truncation": null, "padding": null, "added_tokens": [],
        "normalizer": null, "pre_tokenizer": {"type": "Whitespace"}, "post_processor": null, "decoder": null,
        "model": {"type": "WordLevel", "vocab": {"a": 0, "b": 1, "[UNK]": 2}, "unk_token": "[UNK]"}}"#;

    fn with_tokenizer(mut files: Vec<(String, Vec<u8>)>) -> LocalFiles {
        files.push(("tokenizer.json".into(), TOKENIZER.as_bytes().to_vec()));
        LocalFiles { files }
    }

    #[test]
    fn sharded_files_open_in_the_index_order_whatever_order_they_come_in() {
        let dir = "tests/fixtures/llama-tiny-mha";
        let mut names = vec!["model.safetensors.index.json", "config.json"];
        let shards: Vec<String> = (1..=6).rev().map(|i| format!("model-0000{i}-of-00006.safetensors")).collect();
        names.extend(shards.iter().map(String::as_str));
        let local = with_tokenizer(read(dir, &names));
        let plan = local.plan().unwrap();
        assert_eq!(plan.files.len(), 6);
        assert!(plan.files[0].0.starts_with("model-00001"));
        let model = local.build().unwrap();
        assert_eq!((model.name.as_str(), model.config.n_layer), ("your files", 2));
        // Without the index, the same shards in name order.
        let without: Vec<&str> = names.iter().copied().filter(|n| !n.ends_with(".json")).collect();
        let mut files = read(dir, &without);
        files.extend(read(dir, &["config.json"]));
        assert_eq!(with_tokenizer(files).build().unwrap().config.n_head, model.config.n_head);
    }

    #[test]
    fn missing_and_broken_files_say_which() {
        let dir = "tests/fixtures/llama-tiny";
        let only_config = LocalFiles { files: read(dir, &["config.json"]) };
        assert!(matches!(only_config.plan(), Err(FilesError::NoWeights)));
        let no_tokenizer = LocalFiles { files: read(dir, &["config.json", "model.safetensors"]) };
        assert!(no_tokenizer.plan().is_ok());
        let err = no_tokenizer.build().err().map(|e| e.to_string());
        assert_eq!(err.as_deref(), Some("tokenizer.json is missing: give it with the weights"));
        let mut cut = read(dir, &["config.json", "model.safetensors"]);
        let len = cut[1].1.len();
        cut[1].1.truncate(len / 2);
        let err = with_tokenizer(cut).plan().unwrap_err().to_string();
        assert!(err.contains("truncated"), "{err}");
        let index = br#"{"weight_map": {"a": "model-00001-of-00002.safetensors"}}"#.to_vec();
        let files = vec![(shards::INDEX.to_owned(), index)];
        let err = LocalFiles { files }.plan().unwrap_err().to_string();
        assert_eq!(err, "model-00001-of-00002.safetensors is missing: the index names it");
        let gguf = LocalFiles { files: vec![("m.GGUF".into(), b"not a gguf".to_vec())] };
        assert_eq!(gguf.display_name(), "m.GGUF");
        assert!(gguf.plan().is_ok(), "a GGUF file is planned from its size");
        assert!(matches!(gguf.build(), Err(FilesError::Model(_))));
    }
}
