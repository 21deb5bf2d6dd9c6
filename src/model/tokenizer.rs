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

/// A token as shown: text, or raw bytes (a piece of a UTF-8 character).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum Piece {
    Text(String),
    Bytes(Vec<u8>),
}

impl Piece {
    /// Text as is; bytes as `‹E0 A4›`.
    pub fn label(&self) -> String {
        match self {
            Piece::Text(t) => t.clone(),
            Piece::Bytes(b) => format!("‹{}›", b.iter().map(|x| format!("{x:02X}")).collect::<Vec<_>>().join(" ")),
        }
    }
}

/// GPT-2's byte-level alphabet backwards: printable Latin-1 bytes stand for
/// themselves, the other 68 bytes (controls, space, 127–160, 173) for
/// U+0100 onwards in byte order. `None` for a character outside the alphabet.
fn byte_of_char(c: char) -> Option<u8> {
    let printable = |b: u32| (33..=126).contains(&b) || (161..=172).contains(&b) || (174..=255).contains(&b);
    let code = c as u32;
    if code < 256 {
        return printable(code).then_some(code as u8);
    }
    let n = code.checked_sub(256)? as usize;
    (0u32..256).filter(|&b| !printable(b)).nth(n).map(|b| b as u8)
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

    /// Whether the tokenizer works on bytes (GPT-2's byte-level BPE): every
    /// vocabulary string then spells bytes through GPT-2's byte↔character map.
    pub fn is_byte_level(&self) -> bool {
        matches!(self.inner.get_decoder(), Some(tokenizers::DecoderWrapper::ByteLevel(_)))
    }

    /// What token `id` stands for, to show it: its text, or its bytes when it
    /// holds part of a character (byte-level BPE splits non-Latin characters).
    pub fn piece(&self, id: u32) -> Piece {
        let vocab = self.id_to_text(id);
        if !self.is_byte_level() {
            return Piece::Text(vocab);
        }
        match vocab.chars().map(byte_of_char).collect::<Option<Vec<u8>>>() {
            Some(bytes) => match String::from_utf8(bytes) {
                Ok(text) => Piece::Text(text),
                Err(e) => Piece::Bytes(e.into_bytes()),
            },
            None => Piece::Text(vocab), // a special token such as <|endoftext|>
        }
    }

    /// Splits `text` into tokens. A token whose span does not fall on character
    /// boundaries (byte-level BPE can split a character) shows its bytes (`‹E0 A4›`).
    pub fn encode(&self, text: &str) -> Result<Vec<Token>, ModelError> {
        let encoding = self.inner.encode(text, false).map_err(|e| ModelError::Tokenizer(e.to_string()))?;
        Ok(encoding
            .get_ids()
            .iter()
            .zip(encoding.get_offsets())
            .zip(encoding.get_tokens())
            .map(|((&id, &(start, end)), piece)| Token {
                id,
                text: text.get(start..end).map(str::to_owned).unwrap_or_else(|| match self.piece(id) {
                    Piece::Bytes(b) => Piece::Bytes(b).label(),
                    Piece::Text(_) => piece.clone(),
                }),
                start,
                end,
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_byte_alphabet_round_trips_all_256_bytes() {
        let printable = |b: u32| (33..=126).contains(&b) || (161..=172).contains(&b) || (174..=255).contains(&b);
        let mut n = 0;
        for b in 0u32..256 {
            let c = if printable(b) {
                char::from_u32(b)
            } else {
                n += 1;
                char::from_u32(255 + n)
            };
            assert_eq!(c.and_then(byte_of_char), Some(b as u8), "byte {b}");
        }
        assert_eq!(byte_of_char('Ġ'), Some(b' '));
        assert_eq!(byte_of_char('中'), None);
    }

    #[test]
    fn byte_pieces_show_as_hex() {
        assert_eq!(Piece::Bytes(vec![0xE0, 0xA4]).label(), "‹E0 A4›");
        assert_eq!(Piece::Text("cat".into()).label(), "cat");
    }
}
