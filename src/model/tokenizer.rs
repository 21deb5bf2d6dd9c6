//! `TextTokenizer`: a `tokenizers` tokenizer that reports ids with byte spans.
//!
//! Bounded on both sides: a text longer than [`MAX_TEXT_BYTES`] is refused
//! before it is tokenized, and a `tokenizer.json` whose normalizer and
//! pre-tokenizer could blow a text up by more than [`MAX_EXPANSION`] bytes
//! per byte is refused when loaded (a chain of `Replace` normalizers can
//! double a text twenty times over), so tokenizing costs memory in proportion
//! to the text.

use serde::Serialize;
use serde_json::Value;

use super::tokenizer_json::BpeOptions;
use super::ModelError;

/// The longest text (UTF-8 bytes) the app and the CLI tokenize: far more than
/// any model's context holds (tokens cover a few bytes each), small enough to
/// tokenize in milliseconds.
pub const MAX_TEXT_BYTES: usize = 32 * 1024;

/// The most a tokenizer's normalizer and pre-tokenizer together may multiply
/// a text's length by (BERT's normalizer is at most 16, GPT-2's byte level 2).
pub const MAX_EXPANSION: u64 = 32;

/// The most bytes a normalizer may add regardless of the text (a prepended `▁`).
pub const MAX_ADDED_BYTES: u64 = 1024;

/// An upper bound on what a text transformation makes of `n` bytes:
/// at most `per_byte · n + extra` bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Growth {
    per_byte: u64,
    extra: u64,
}

impl Growth {
    const SAME: Growth = Growth { per_byte: 1, extra: 0 };

    fn times(per_byte: u64) -> Self {
        Growth { per_byte, extra: 0 }
    }

    /// `self` then `next`.
    fn then(self, next: Growth) -> Growth {
        Growth {
            per_byte: self.per_byte.saturating_mul(next.per_byte),
            extra: next.per_byte.saturating_mul(self.extra).saturating_add(next.extra),
        }
    }
}

fn str_len(value: &Value, key: &str) -> u64 {
    value.get(key).and_then(Value::as_str).map_or(0, |s| s.len() as u64)
}

/// The growth bound of a `normalizer` entry of `tokenizer.json`; `Err` names
/// a normalizer whose growth is not known.
fn normalizer_growth(value: &Value) -> Result<Growth, String> {
    if value.is_null() {
        return Ok(Growth::SAME);
    }
    let kind = value.get("type").and_then(Value::as_str).unwrap_or("");
    Ok(match kind {
        "Strip" | "StripAccents" | "Nmt" => Growth::SAME,
        // Canonical decomposition: at most 3 bytes per byte (U+0390); compatibility: 11 (U+FDFA).
        "NFC" | "NFD" => Growth::times(4),
        "NFKC" | "NFKD" => Growth::times(12),
        "Lowercase" => Growth::times(2),
        "ByteLevel" => Growth::times(2),
        // Spaces around CJK (×2), accents stripped through NFD (×4), lower case (×2).
        "BertNormalizer" => Growth::times(16),
        "Prepend" => Growth { per_byte: 1, extra: str_len(value, "prepend") },
        "Replace" => {
            let content = str_len(value, "content");
            match value.get("pattern").and_then(|p| p.get("String")).and_then(Value::as_str) {
                Some(pattern) if !pattern.is_empty() => Growth::times(content.div_ceil(pattern.len() as u64).max(1)),
                // A regex may match the empty string: content between every two bytes.
                _ => Growth { per_byte: content + 1, extra: content },
            }
        }
        "Sequence" => {
            let parts = value.get("normalizers").and_then(Value::as_array).ok_or("a Sequence without normalizers")?;
            parts.iter().try_fold(Growth::SAME, |g, part| Ok::<_, String>(g.then(normalizer_growth(part)?)))?
        }
        other => return Err(format!("normalizer `{other}`")),
    })
}

/// The growth bound of a `pre_tokenizer` entry.
fn pre_tokenizer_growth(value: &Value) -> Result<Growth, String> {
    if value.is_null() {
        return Ok(Growth::SAME);
    }
    let kind = value.get("type").and_then(Value::as_str).unwrap_or("");
    Ok(match kind {
        "BertPreTokenizer" | "CharDelimiterSplit" | "Whitespace" | "WhitespaceSplit" | "Split" | "Punctuation"
        | "Digits" | "UnicodeScripts" | "FixedLength" => Growth::SAME,
        "ByteLevel" => Growth::times(2),
        // Each space becomes the replacement character (at most 4 bytes), and one may be prepended.
        "Metaspace" => Growth { per_byte: 4, extra: 4 },
        "Sequence" => {
            let parts =
                value.get("pretokenizers").and_then(Value::as_array).ok_or("a Sequence without pretokenizers")?;
            parts.iter().try_fold(Growth::SAME, |g, part| Ok::<_, String>(g.then(pre_tokenizer_growth(part)?)))?
        }
        other => return Err(format!("pre-tokenizer `{other}`")),
    })
}

/// Refuses a `tokenizer.json` whose text transformations could grow a text
/// past [`MAX_EXPANSION`]·n + [`MAX_ADDED_BYTES`] bytes.
fn check_growth(json: &[u8]) -> Result<(), ModelError> {
    /// The two fields the bound reads; serde skips the rest (the vocabulary
    /// and merges) without building them (read as a `Value`, a WordPiece
    /// document's whole tree was half of its load).
    #[derive(serde::Deserialize)]
    struct Text {
        #[serde(default)]
        normalizer: Value,
        #[serde(default)]
        pre_tokenizer: Value,
    }
    let text: Text = serde_json::from_slice(json).map_err(|e| ModelError::Tokenizer(e.to_string()))?;
    let growth = normalizer_growth(&text.normalizer)
        .and_then(|n| Ok(n.then(pre_tokenizer_growth(&text.pre_tokenizer)?)))
        .map_err(|what| ModelError::Tokenizer(format!("{what}: its effect on text length is not known")))?;
    if growth.per_byte > MAX_EXPANSION || growth.extra > MAX_ADDED_BYTES {
        return Err(ModelError::TokenizerExpands { per_byte: growth.per_byte, limit: MAX_EXPANSION });
    }
    Ok(())
}

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

/// [`TextTokenizer::from_bpe_parts`]'s build.
fn bpe_parts_build(parts: BpeParts<'_>) -> Result<BpeBuild, ModelError> {
    let vocab = parts.tokens.iter().enumerate().map(|(id, &token)| (token.to_owned(), id as u32)).collect();
    let options = BpeOptions {
        continuing_subword_prefix: Some(String::new()),
        end_of_word_suffix: Some(String::new()),
        ..BpeOptions::default()
    };
    let special = parts.special.iter().filter_map(|&id| parts.tokens.get(id as usize));
    let special = special.map(|&t| tokenizers::AddedToken::from(t.to_owned(), true)).collect();
    BpeBuild::new(parts.shell, vocab, parts.merges, options, special, true)
}

/// A document's build from its parts (`None`: read it whole instead).
fn json_build(parts: super::tokenizer_json::JsonParts<'_>, vocab: Vec<(String, u32)>) -> Option<BpeBuild> {
    let merges = parts.merges()?;
    BpeBuild::new(&parts.shell, vocab, merges, parts.options, parts.added, false).ok()
}

pub struct TextTokenizer {
    inner: tokenizers::Tokenizer,
}

/// Tokens put in the vocabulary map between two pauses of
/// [`TextTokenizer::from_bpe_parts_paced`] and [`TextTokenizer::from_json_paced`].
const VOCAB_PIECE: usize = 8192;

fn tokenizer_error(e: tokenizers::Error) -> ModelError {
    ModelError::Tokenizer(e.to_string())
}

/// A byte-pair tokenizer built in steps, so that the page can pause between
/// them: the vocabulary map a piece of [`VOCAB_PIECE`] tokens per step, then
/// the BPE model (one call into `tokenizers`, ~30 ms for SmolLM2 in the
/// page), then the added tokens. Not generic, so the wasm holds one copy
/// whatever pauses it ([`BpeBuild::run`] is the small generic part).
struct BpeBuild {
    /// The shell: everything but the model and its added tokens.
    inner: tokenizers::Tokenizer,
    vocab: std::vec::IntoIter<(String, u32)>,
    map: tokenizers::models::bpe::Vocab,
    merges: Vec<(String, String)>,
    options: BpeOptions,
    added: Vec<tokenizers::AddedToken>,
    /// Whether `added` goes in as special tokens (GGUF's control tokens) or
    /// as a document's `added_tokens`, each with its own flags.
    special: bool,
}

impl BpeBuild {
    fn new(
        shell: &[u8],
        vocab: Vec<(String, u32)>,
        merges: Vec<(String, String)>,
        options: BpeOptions,
        added: Vec<tokenizers::AddedToken>,
        special: bool,
    ) -> Result<Self, ModelError> {
        check_growth(shell)?;
        let inner = tokenizers::Tokenizer::from_bytes(shell).map_err(tokenizer_error)?;
        let mut map = tokenizers::models::bpe::Vocab::default();
        map.reserve(vocab.len());
        Ok(Self { inner, vocab: vocab.into_iter(), map, merges, options, added, special })
    }

    /// One piece of the vocabulary map; false once the map is whole.
    fn map_piece(&mut self) -> bool {
        if self.vocab.len() == 0 {
            return false;
        }
        self.map.extend(self.vocab.by_ref().take(VOCAB_PIECE));
        true
    }

    /// The BPE model from the whole map, in the shell, with the added tokens.
    fn finish(self) -> Result<TextTokenizer, ModelError> {
        let o = self.options;
        let mut builder = tokenizers::models::bpe::BPE::builder().vocab_and_merges(self.map, self.merges);
        if let Some(p) = o.dropout {
            builder = builder.dropout(p);
        }
        if let Some(unk) = o.unk_token {
            builder = builder.unk_token(unk);
        }
        if let Some(prefix) = o.continuing_subword_prefix {
            builder = builder.continuing_subword_prefix(prefix);
        }
        if let Some(suffix) = o.end_of_word_suffix {
            builder = builder.end_of_word_suffix(suffix);
        }
        if let Some(fuse) = o.fuse_unk {
            builder = builder.fuse_unk(fuse);
        }
        if let Some(fallback) = o.byte_fallback {
            builder = builder.byte_fallback(fallback);
        }
        if let Some(ignore) = o.ignore_merges {
            builder = builder.ignore_merges(ignore);
        }
        let mut inner = self.inner;
        inner.with_model(builder.build().map_err(tokenizer_error)?);
        if self.special {
            inner.add_special_tokens(self.added).map_err(tokenizer_error)?;
        } else {
            inner.add_tokens(self.added).map_err(tokenizer_error)?;
        }
        Ok(TextTokenizer { inner })
    }

    /// The map's pieces and then the model, awaiting `pause` before each.
    async fn run(mut self, pause: &mut impl AsyncFnMut()) -> Result<TextTokenizer, ModelError> {
        loop {
            pause().await;
            if !self.map_piece() {
                return self.finish();
            }
        }
    }
}

/// A byte-level BPE tokenizer in parts: what [`TextTokenizer::from_bpe_parts`] builds from.
pub struct BpeParts<'a> {
    /// A `tokenizer.json` document whose model is a BPE without vocabulary or
    /// merges (and no added tokens): the normalizer, pre-tokenizer,
    /// post-processor and decoder.
    pub shell: &'a [u8],
    /// The vocabulary, in id order.
    pub tokens: &'a [&'a str],
    pub merges: Vec<(String, String)>,
    /// Ids of the tokens that are special (never split, never normalised).
    pub special: Vec<u32>,
}

impl TextTokenizer {
    /// The tokenizer `parts` describe: the same as parsing the whole
    /// document (the shell with the vocabulary, merges and special tokens
    /// written in), without writing the vocabulary and merges as JSON and
    /// parsing them back (for SmolLM2's 49,152 tokens and 48,900 merges,
    /// ~115 ms natively that way, a long task in the page).
    pub fn from_bpe_parts(parts: BpeParts<'_>) -> Result<Self, ModelError> {
        crate::pace::at_once(Self::from_bpe_parts_paced(parts, async || {}))
    }

    /// [`Self::from_bpe_parts`], awaiting `pause` between its parts: the
    /// shell, the vocabulary map (a piece of [`VOCAB_PIECE`] tokens at a
    /// time), the BPE model (one call into `tokenizers`, ~30 ms for
    /// SmolLM2 in the page) and the special tokens.
    pub async fn from_bpe_parts_paced(parts: BpeParts<'_>, mut pause: impl AsyncFnMut()) -> Result<Self, ModelError> {
        let build = bpe_parts_build(parts)?;
        build.run(&mut pause).await
    }

    /// [`Self::from_bytes`], awaiting `pause` between parts of the work
    /// when `json` is a byte-pair document (see `tokenizer_json`): its
    /// vocabulary and merges read on their own, the vocabulary map built a
    /// piece at a time, then the BPE model. Any other document, or one whose
    /// parts do not read cleanly, is read whole (its result or error is
    /// `tokenizers`' own).
    pub async fn from_json_paced(json: &[u8], mut pause: impl AsyncFnMut()) -> Result<Self, ModelError> {
        let Some(parts) = super::tokenizer_json::split(json) else { return Self::from_bytes(json) };
        pause().await;
        let Some(vocab) = parts.vocab() else { return Self::from_bytes(json) };
        pause().await;
        let Some(build) = json_build(parts, vocab) else { return Self::from_bytes(json) };
        build.run(&mut pause).await.or_else(|_| Self::from_bytes(json))
    }

    pub fn from_bytes(json: &[u8]) -> Result<Self, ModelError> {
        check_growth(json)?;
        let inner = tokenizers::Tokenizer::from_bytes(json).map_err(tokenizer_error)?;
        Ok(Self { inner })
    }

    /// A tokenizer that knows no text, for a checkpoint saved without
    /// `tokenizer.json`: every id shows as `<id>`, and `encode` refuses text.
    pub fn ids_only() -> Result<Self, ModelError> {
        Self::from_bytes(
            br#"{"version":"1.0","truncation":null,"padding":null,"added_tokens":[],"normalizer":null,
            "pre_tokenizer":null,"post_processor":null,"decoder":null,
            "model":{"type":"WordLevel","vocab":{},"unk_token":"<unk>"}}"#,
        )
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

    /// The ids of a text of any length, up to `max_tokens` of them: the text
    /// is tokenized in pieces of at most [`MAX_TEXT_BYTES`], cut after a line
    /// where one ends in the piece (else at a character boundary), so memory
    /// stays bounded however long the text (a held-out file, say).
    pub fn encode_ids_in_pieces(&self, text: &str, max_tokens: usize) -> Result<Vec<u32>, ModelError> {
        let mut ids = Vec::new();
        let mut rest = text;
        while !rest.is_empty() && ids.len() < max_tokens {
            // Pieces about as long as the tokens still wanted need (a token is a few bytes), within the bound.
            let wanted = (max_tokens - ids.len()).saturating_mul(4).max(1024);
            let mut cut = rest.len().min(MAX_TEXT_BYTES).min(wanted);
            while !rest.is_char_boundary(cut) {
                cut -= 1;
            }
            if cut < rest.len() {
                if let Some(line_end) = rest[..cut].rfind('\n') {
                    cut = line_end + 1;
                }
            }
            let (piece, after) = rest.split_at(cut);
            ids.extend(self.encode(piece)?.iter().map(|t| t.id).take(max_tokens - ids.len()));
            rest = after;
        }
        Ok(ids)
    }

    /// Splits `text` into tokens. A token whose span does not fall on character
    /// boundaries (byte-level BPE can split a character) shows its bytes (`‹E0 A4›`).
    /// A text over [`MAX_TEXT_BYTES`] is refused before it is tokenized.
    pub fn encode(&self, text: &str) -> Result<Vec<Token>, ModelError> {
        if text.len() > MAX_TEXT_BYTES {
            return Err(ModelError::TextTooLong { bytes: text.len(), limit: MAX_TEXT_BYTES });
        }
        let encoding = self.inner.encode(text, false).map_err(tokenizer_error)?;
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

    fn tokenizer_json(normalizer: &str, pre_tokenizer: &str) -> String {
        format!(
            r#"{{"version":"1.0","truncation":null,"padding":null,"added_tokens":[],"normalizer":{normalizer},
            "pre_tokenizer":{pre_tokenizer},"post_processor":null,"decoder":null,
            "model":{{"type":"WordLevel","vocab":{{"a":0,"[UNK]":1}},"unk_token":"[UNK]"}}}}"#
        )
    }

    /// Twenty `Replace` steps doubling each `a`: 2 KB of text took 3.45 GB.
    #[test]
    fn a_normalizer_that_multiplies_text_is_refused_at_load() {
        let double = r#"{"type":"Replace","pattern":{"String":"a"},"content":"aa"}"#;
        let chain = format!(r#"{{"type":"Sequence","normalizers":[{}]}}"#, vec![double; 20].join(","));
        let err = TextTokenizer::from_bytes(tokenizer_json(&chain, "null").as_bytes()).err();
        assert!(matches!(err, Some(ModelError::TokenizerExpands { per_byte: 1_048_576, .. })), "{err:?}");
        let regex = r#"{"type":"Replace","pattern":{"Regex":""},"content":"0123456789012345678901234567890123"}"#;
        assert!(TextTokenizer::from_bytes(tokenizer_json(regex, "null").as_bytes()).is_err(), "empty regex matches");
        let bytes = [r#"{"type":"ByteLevel","add_prefix_space":false,"trim_offsets":true,"use_regex":true}"#; 6];
        let pre = format!(r#"{{"type":"Sequence","pretokenizers":[{}]}}"#, bytes.join(","));
        assert!(TextTokenizer::from_bytes(tokenizer_json("null", &pre).as_bytes()).is_err(), "2^6 through bytes");
        // Real ones: Llama's Prepend + Replace, BERT's normalizer.
        let llama = r#"{"type":"Sequence","normalizers":[{"type":"Prepend","prepend":"▁"},
            {"type":"Replace","pattern":{"String":" "},"content":"▁"}]}"#;
        assert!(TextTokenizer::from_bytes(tokenizer_json(llama, "null").as_bytes()).is_ok());
        let bert = r#"{"type":"BertNormalizer","clean_text":true,"handle_chinese_chars":true,
            "strip_accents":null,"lowercase":true}"#;
        assert!(TextTokenizer::from_bytes(tokenizer_json(bert, r#"{"type":"BertPreTokenizer"}"#).as_bytes()).is_ok());
    }

    #[test]
    fn a_text_over_the_bound_is_refused_before_tokenizing() {
        let tok = TextTokenizer::from_bytes(tokenizer_json("null", r#"{"type":"Whitespace"}"#).as_bytes()).unwrap();
        assert_eq!(tok.encode(&"a ".repeat(MAX_TEXT_BYTES / 2)).unwrap().len(), MAX_TEXT_BYTES / 2);
        let err = tok.encode(&"a".repeat(MAX_TEXT_BYTES + 1)).unwrap_err();
        assert!(matches!(err, ModelError::TextTooLong { bytes, .. } if bytes == MAX_TEXT_BYTES + 1), "{err}");
    }

    #[test]
    fn long_texts_are_tokenized_in_bounded_pieces_cut_after_lines() {
        let tok = TextTokenizer::from_bytes(tokenizer_json("null", r#"{"type":"Whitespace"}"#).as_bytes()).unwrap();
        let text = "a a\n".repeat(MAX_TEXT_BYTES); // 4 × the bound
        let ids = tok.encode_ids_in_pieces(&text, usize::MAX).unwrap();
        assert_eq!(ids.len(), 2 * MAX_TEXT_BYTES);
        assert_eq!(tok.encode_ids_in_pieces(&text, 5).unwrap().len(), 5);
        let one_line = "é".repeat(MAX_TEXT_BYTES); // no newline, 2-byte characters
        assert!(tok.encode_ids_in_pieces(&one_line, usize::MAX).is_ok());
    }

    #[test]
    fn byte_pieces_show_as_hex() {
        assert_eq!(Piece::Bytes(vec![0xE0, 0xA4]).label(), "‹E0 A4›");
        assert_eq!(Piece::Text("cat".into()).label(), "cat");
    }
}
