//! A byte-pair `tokenizer.json` split into parts, so that the page can build
//! it with pauses between them ([`TextTokenizer::from_json_paced`]).
//!
//! `tokenizers` reads a whole document in one call: for GPT-2's and
//! SmolLM2's (50,257 and 49,152 tokens, ~50,000 merges each) that was one
//! main-thread task of 115–127 ms in the page, when the tokenizer panel
//! loads and when a hub model opens (issue 15). Here the document is read as
//! raw JSON at the top level, and the model's `vocab` and `merges` are parsed
//! on their own into plain lists; the rest (normalizer, pre-tokenizer,
//! post-processor, decoder, the model's options) stays a small "shell" that
//! `tokenizers` reads as usual. [`split`] says `None` for anything but a BPE
//! model whose parts read cleanly, and the caller reads the document whole,
//! so an unusual or broken document gets `tokenizers`' own result or error.
//!
//! [`TextTokenizer::from_json_paced`]: super::TextTokenizer::from_json_paced

use std::collections::BTreeMap;
use std::fmt;

use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;
use serde_json::value::RawValue;

/// A BPE model's options, as `tokenizers` reads them (absent: its default).
#[derive(Debug, Default, Deserialize)]
pub struct BpeOptions {
    pub dropout: Option<f32>,
    pub unk_token: Option<String>,
    pub continuing_subword_prefix: Option<String>,
    pub end_of_word_suffix: Option<String>,
    pub fuse_unk: Option<bool>,
    pub byte_fallback: Option<bool>,
    pub ignore_merges: Option<bool>,
}

/// A document's parts: what is cheap to read at once, and the raw vocabulary
/// and merges to parse as steps of their own.
pub struct JsonParts<'a> {
    /// The document with no added tokens and an empty vocabulary and merges.
    pub shell: Vec<u8>,
    pub options: BpeOptions,
    /// `added_tokens`, in the document's order.
    pub added: Vec<tokenizers::AddedToken>,
    vocab: &'a RawValue,
    merges: &'a RawValue,
}

/// One entry of `added_tokens` (its id is where the vocabulary puts it).
#[derive(Deserialize)]
struct AddedWithId {
    #[allow(dead_code)]
    id: u32,
    #[serde(flatten)]
    token: tokenizers::AddedToken,
}

/// `json`'s parts if it is a BPE document whose parts read cleanly. (Read
/// with `from_slice` throughout, as the rest of the app is: a second reader
/// type would add its own copy of serde_json's parser to the wasm.)
pub fn split(json: &[u8]) -> Option<JsonParts<'_>> {
    let top: BTreeMap<String, &RawValue> = serde_json::from_slice(json).ok()?;
    let mut model: BTreeMap<String, &RawValue> = serde_json::from_slice(top.get("model")?.get().as_bytes()).ok()?;
    let kind: String = serde_json::from_slice(model.get("type")?.get().as_bytes()).ok()?;
    if kind != "BPE" {
        return None;
    }
    let (vocab, merges) = (model.remove("vocab")?, model.remove("merges")?);
    let options: BpeOptions = serde_json::from_slice(&serde_json::to_vec(&model).ok()?).ok()?;
    let added = match top.get("added_tokens") {
        Some(raw) => serde_json::from_slice::<Vec<AddedWithId>>(raw.get().as_bytes())
            .ok()?
            .into_iter()
            .map(|a| a.token)
            .collect(),
        None => Vec::new(),
    };
    let (empty_map, empty_list) = (RawValue::from_string("{}".into()).ok()?, RawValue::from_string("[]".into()).ok()?);
    let mut shell_model: BTreeMap<&str, &RawValue> = model.iter().map(|(k, v)| (k.as_str(), *v)).collect();
    shell_model.insert("vocab", &empty_map);
    shell_model.insert("merges", &empty_list);
    let shell_model = RawValue::from_string(String::from_utf8(serde_json::to_vec(&shell_model).ok()?).ok()?).ok()?;
    let mut shell: BTreeMap<&str, &RawValue> = top.iter().map(|(k, v)| (k.as_str(), *v)).collect();
    shell.insert("model", &shell_model);
    shell.insert("added_tokens", &empty_list);
    let shell = serde_json::to_vec(&shell).ok()?;
    Some(JsonParts { shell, options, added, vocab, merges })
}

impl JsonParts<'_> {
    /// The vocabulary's (token, id) pairs, in the document's order.
    pub fn vocab(&self) -> Option<Vec<(String, u32)>> {
        serde_json::from_slice::<Entries>(self.vocab.get().as_bytes()).ok().map(|e| e.0)
    }

    /// The merges, read as `tokenizers` reads them: all pairs `[a, b]`, or
    /// all strings `"a b"` (lines starting `#version` skipped).
    pub fn merges(&self) -> Option<Vec<(String, String)>> {
        let merges: Vec<Merge> = serde_json::from_slice(self.merges.get().as_bytes()).ok()?;
        let pairs = merges.iter().all(|m| matches!(m, Merge::Pair(..)));
        let lines = merges.iter().all(|m| matches!(m, Merge::Line(_)));
        if !pairs && !lines {
            return None;
        }
        merges
            .into_iter()
            .filter(|m| !matches!(m, Merge::Line(l) if l.starts_with("#version")))
            .map(|m| match m {
                Merge::Pair(a, b) => Some((a, b)),
                Merge::Line(line) => {
                    let mut parts = line.split(' ');
                    let (a, b) = (parts.next()?, parts.next()?);
                    parts.next().is_none().then(|| (a.to_owned(), b.to_owned()))
                }
            })
            .collect()
    }
}

/// A JSON object's entries as a list (no map built: the BPE model builds its own).
struct Entries(Vec<(String, u32)>);

impl<'de> Deserialize<'de> for Entries {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visit;
        impl<'de> Visitor<'de> for Visit {
            type Value = Entries;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an object of token: id")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Entries, A::Error> {
                let mut entries = Vec::with_capacity(map.size_hint().unwrap_or(0));
                while let Some(entry) = map.next_entry::<String, u32>()? {
                    entries.push(entry);
                }
                Ok(Entries(entries))
            }
        }
        d.deserialize_map(Visit)
    }
}

/// One merge: `["a", "b"]` or `"a b"`.
enum Merge {
    Pair(String, String),
    Line(String),
}

impl<'de> Deserialize<'de> for Merge {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visit;
        impl<'de> Visitor<'de> for Visit {
            type Value = Merge;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a merge: [\"a\", \"b\"] or \"a b\"")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Merge, E> {
                Ok(Merge::Line(v.to_owned()))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Merge, E> {
                Ok(Merge::Line(v))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Merge, A::Error> {
                let a: String = seq.next_element()?.ok_or_else(|| de::Error::invalid_length(0, &self))?;
                let b: String = seq.next_element()?.ok_or_else(|| de::Error::invalid_length(1, &self))?;
                if seq.next_element::<de::IgnoredAny>()?.is_some() {
                    return Err(de::Error::invalid_length(3, &self));
                }
                Ok(Merge::Pair(a, b))
            }
        }
        d.deserialize_any(Visit)
    }
}

#[cfg(test)]
mod tests {
    use super::super::TextTokenizer;
    use super::*;

    const TEXTS: &[&str] = &[
        "The capital of France is Paris.",
        "  leading spaces, tabs\tand\nnewlines  ",
        "naïve 猫 — 12345 नमस्ते دنيا",
        "<|endoftext|>text after a special<|im_start|>user<|im_end|>",
        "",
    ];

    /// Read in parts and whole, `json` makes the same tokenizer: ids, spans,
    /// vocabulary and decoding (or the same error).
    fn same_as_whole(json: &[u8]) -> usize {
        let whole = TextTokenizer::from_bytes(json);
        let mut pauses = 0;
        let parts = crate::pace::at_once(TextTokenizer::from_json_paced(json, async || pauses += 1));
        match (whole, parts) {
            (Ok(whole), Ok(parts)) => {
                assert_eq!(parts.vocab_size(), whole.vocab_size());
                for text in TEXTS {
                    let ids = whole.encode(text).unwrap();
                    assert_eq!(parts.encode(text).unwrap(), ids, "{text:?}");
                    let ids: Vec<u32> = ids.iter().map(|t| t.id).collect();
                    assert_eq!(parts.decode(&ids), whole.decode(&ids));
                }
                for id in 0..whole.vocab_size() as u32 + 2 {
                    assert_eq!(parts.id_to_text(id), whole.id_to_text(id));
                }
            }
            (Err(whole), Err(parts)) => assert_eq!(parts.to_string(), whole.to_string()),
            (whole, parts) => panic!("whole: {:?}, in parts: {:?}", whole.err(), parts.err()),
        }
        pauses
    }

    fn read(path: &str) -> Vec<u8> {
        std::fs::read(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(path)).unwrap()
    }

    #[test]
    fn shipped_tokenizers_read_in_parts_equal_read_whole() {
        for path in [
            "www/tokenizers/gpt2/tokenizer.json",
            "www/tokenizers/smollm2/tokenizer.json",
            "www/models/default/tokenizer.json",
        ] {
            let json = read(path);
            assert!(split(&json).is_some(), "{path} is read in parts");
            let t0 = std::time::Instant::now();
            TextTokenizer::from_bytes(&json).unwrap();
            let t1 = std::time::Instant::now();
            crate::pace::at_once(TextTokenizer::from_json_paced(&json, async || {})).unwrap();
            println!("{path}: whole {:?}, in parts {:?}", t1 - t0, t1.elapsed());
            let pauses = same_as_whole(&json);
            assert!(pauses >= 4, "{path}: {pauses} pauses");
        }
        // WordPiece is read whole.
        let minilm = read("www/tokenizers/minilm/tokenizer.json");
        assert!(split(&minilm).is_none());
        assert_eq!(same_as_whole(&minilm), 0);
    }

    fn doc(model: serde_json::Value, added: serde_json::Value) -> Vec<u8> {
        serde_json::to_vec(&serde_json::json!({
            "version": "1.0", "truncation": null, "padding": null, "added_tokens": added, "normalizer": null,
            "pre_tokenizer": {"type": "Whitespace"}, "post_processor": null, "decoder": null, "model": model,
        }))
        .unwrap()
    }

    #[test]
    fn options_merge_forms_added_tokens_and_bad_documents_match_the_whole_read() {
        let vocab = serde_json::json!({"<unk>": 0, "a": 1, "b": 2, "##b": 3, "ab": 4, "a##b": 5, "c": 6});
        let added = serde_json::json!([
            {"id": 7, "content": "[X]", "single_word": false, "lstrip": true, "rstrip": false, "normalized": false, "special": true},
            {"id": 9, "content": "zz", "single_word": true, "lstrip": false, "rstrip": false, "normalized": true, "special": false},
        ]);
        let model = |merges: serde_json::Value, extra: serde_json::Value| {
            let mut m = serde_json::json!({"type": "BPE", "vocab": vocab, "merges": merges});
            for (k, v) in extra.as_object().unwrap() {
                m[k] = v.clone();
            }
            m
        };
        let cases = [
            // Pairs and lines, a `#version` line, options that change encoding.
            doc(model(serde_json::json!([["a", "b"]]), serde_json::json!({})), added.clone()),
            doc(
                model(serde_json::json!(["#version: 0.2", "a b"]), serde_json::json!({"unk_token": "<unk>"})),
                added.clone(),
            ),
            doc(
                model(
                    serde_json::json!([["a", "##b"]]),
                    serde_json::json!({"continuing_subword_prefix": "##", "unk_token": "<unk>", "fuse_unk": true}),
                ),
                serde_json::json!([]),
            ),
            doc(
                model(serde_json::json!([]), serde_json::json!({"ignore_merges": true, "dropout": null})),
                added.clone(),
            ),
            // Broken: a line of three parts, mixed forms, a merge of an unknown token, a vocabulary
            // that is not an object, a wrong type: the same error as the whole read.
            doc(model(serde_json::json!(["a b c"]), serde_json::json!({})), added.clone()),
            doc(model(serde_json::json!(["a b", ["a", "b"]]), serde_json::json!({})), added.clone()),
            doc(model(serde_json::json!([["a", "q"]]), serde_json::json!({})), added.clone()),
            doc(serde_json::json!({"type": "BPE", "vocab": [1, 2], "merges": []}), added.clone()),
            doc(serde_json::json!({"type": "BPE", "vocab": {"a": "one"}, "merges": []}), added.clone()),
            b"{\"model\": {\"type\": \"BPE\", \"vocab\": {}, \"merges\": []}".to_vec(),
            doc(model(serde_json::json!([]), serde_json::json!({})), serde_json::json!(null)),
        ];
        for json in cases {
            same_as_whole(&json);
        }
    }
}
