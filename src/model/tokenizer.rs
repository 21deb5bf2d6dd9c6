//! `TextTokenizer`: a `tokenizers` tokenizer that reports ids with byte spans.

use serde::Serialize;

use super::ModelError;

/// One token of the input: its id, the text it covers and that text's byte span.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Token {
    pub id: u32,
    pub text: String,
    pub start: usize,
    pub end: usize,
}

pub struct TextTokenizer {
    inner: tokenizers::Tokenizer,
}

impl TextTokenizer {
    pub fn from_bytes(json: &[u8]) -> Result<Self, ModelError> {
        let inner = tokenizers::Tokenizer::from_bytes(json).map_err(|e| ModelError::Tokenizer(e.to_string()))?;
        Ok(Self { inner })
    }

    pub fn vocab_size(&self) -> usize {
        self.inner.get_vocab_size(true)
    }

    /// The vocabulary string of `id` (e.g. `Ġcat` for byte-level BPE), or `<id>` if unknown.
    pub fn id_to_text(&self, id: u32) -> String {
        self.inner.id_to_token(id).unwrap_or_else(|| format!("<{id}>"))
    }

    /// The text of `ids` (byte-level BPE pieces joined back into UTF-8; lossy
    /// where ids end inside a character).
    pub fn decode(&self, ids: &[u32]) -> String {
        self.inner.decode(ids, false).unwrap_or_else(|_| ids.iter().map(|&id| self.id_to_text(id)).collect())
    }

    /// Splits `text` into tokens. A token whose span does not fall on character
    /// boundaries (byte-level BPE can split a character) shows its vocabulary string.
    pub fn encode(&self, text: &str) -> Result<Vec<Token>, ModelError> {
        let encoding = self.inner.encode(text, false).map_err(|e| ModelError::Tokenizer(e.to_string()))?;
        Ok(encoding
            .get_ids()
            .iter()
            .zip(encoding.get_offsets())
            .zip(encoding.get_tokens())
            .map(|((&id, &(start, end)), piece)| Token {
                id,
                text: text.get(start..end).map(str::to_owned).unwrap_or_else(|| piece.clone()),
                start,
                end,
            })
            .collect())
    }
}
