//! The golden fixtures: tiny random checkpoints in tests/fixtures/ with the
//! logits and attention weights Hugging Face `transformers` computed for
//! them (tools/make_golden.py, tools/make_golden_llama.py), as the golden
//! tests read them.
#![allow(dead_code)]

use std::path::PathBuf;

use serde::Deserialize;

/// A fixture's `reference.json`.
#[derive(Deserialize)]
pub struct Reference {
    pub cases: Vec<Case>,
}

/// One input and what `transformers` computed for it.
#[derive(Deserialize)]
pub struct Case {
    pub ids: Vec<u32>,
    /// [T][vocab]
    pub logits: Vec<Vec<f32>>,
    /// [layer][head][T][T], or [layer][head][T][i + 1] (each row's causal part).
    pub attentions: Vec<Vec<Vec<Vec<f32>>>>,
}

/// tests/fixtures/`dir`.
pub fn fixture(dir: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(dir)
}

/// tests/fixtures/`dir`/reference.json.
pub fn reference(dir: &str) -> Reference {
    let path = fixture(dir).join("reference.json");
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_slice(&bytes).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}
