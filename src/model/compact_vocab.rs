//! The default model's `tokenizer.json` as the page fetches it, without the
//! part of its vocabulary that follows from the rest (a first visit's bytes
//! are bounded: issue 19).
//!
//! A byte-level BPE trained by `tokenizers` numbers its vocabulary as: the
//! special tokens, then the 256 characters of the byte-level alphabet in
//! code-point order, then the result of each merge, in the merges' order. So
//! the vocabulary (22.7 kB of the default tokenizer's 37 kB gzipped) can be
//! rebuilt from the merges. [`compact`] keeps only the entries before the
//! alphabet and marks the model with [`REST`]; [`expand`] rebuilds the rest
//! and leaves a document without the mark as it is. `tests/default_model.rs`
//! checks that the shipped compact copy is the shipped tokenizer, compacted,
//! and that expanding it gives that tokenizer back.

use serde_json::{Map, Value};

use super::ModelError;

/// The compact copy of `tokenizer.json` that the page fetches for its default model.
pub const FILE_NAME: &str = "tokenizer.compact.json";

/// The key, in the document's `model`, that says the vocabulary goes on
/// past its listed entries with the byte-level alphabet and the merges.
const REST: &str = "vocab_rest";
const REST_RULE: &str = "byte-level alphabet in code-point order, then each merge's result";

/// `json` (a `tokenizer.json`) with only the entries of its vocabulary
/// that do not follow from the merges; an error if the rest does not.
pub fn compact(json: &[u8]) -> Result<Vec<u8>, ModelError> {
    let mut doc: Value = serde_json::from_slice(json).map_err(bad)?;
    let model = model_of(&mut doc)?;
    let vocab = model.get("vocab").and_then(Value::as_object).ok_or_else(|| invalid("model.vocab is not a map"))?;
    let merges = merge_results(model)?;
    let listed = vocab
        .len()
        .checked_sub(ALPHABET + merges.len())
        .ok_or_else(|| invalid("the vocabulary is smaller than the alphabet and the merges"))?;
    let mut kept = Map::new();
    for (token, id) in vocab {
        match id.as_u64().and_then(|id| usize::try_from(id).ok()) {
            Some(id) if id < listed => {
                kept.insert(token.clone(), Value::from(id));
            }
            _ => {}
        }
    }
    let mut rebuilt = kept.clone();
    extend(&mut rebuilt, merges)?;
    if &rebuilt != vocab {
        return Err(invalid("the vocabulary does not follow from the byte-level alphabet and the merges"));
    }
    model.insert("vocab".into(), Value::Object(kept));
    model.insert(REST.into(), Value::from(REST_RULE));
    serde_json::to_vec(&doc).map_err(bad)
}

/// `json` with its vocabulary whole again, if [`compact`] made it; any other
/// document as it is.
pub fn expand(json: &[u8]) -> Result<Vec<u8>, ModelError> {
    let mut doc: Value = serde_json::from_slice(json).map_err(bad)?;
    let model = model_of(&mut doc)?;
    match model.remove(REST) {
        None => return Ok(json.to_vec()),
        Some(rule) if rule == REST_RULE => {}
        Some(rule) => return Err(invalid(&format!("unknown {REST} {rule}"))),
    }
    let merges = merge_results(model)?;
    let vocab =
        model.get_mut("vocab").and_then(Value::as_object_mut).ok_or_else(|| invalid("model.vocab is not a map"))?;
    extend(vocab, merges)?;
    serde_json::to_vec(&doc).map_err(bad)
}

/// Characters in the byte-level alphabet.
const ALPHABET: usize = 256;

/// The byte-level alphabet (GPT-2's `bytes_to_unicode`): printable bytes as
/// themselves, the others as 256, 257, …, in code-point order.
fn alphabet() -> Vec<char> {
    let printable = |b: u32| (33..=126).contains(&b) || (161..=172).contains(&b) || (174..=255).contains(&b);
    let mut next = 256;
    let mut chars: Vec<char> = (0..256u32)
        .map(|b| {
            let c = if printable(b) {
                b
            } else {
                next += 1;
                next - 1
            };
            char::from_u32(c).unwrap_or(char::REPLACEMENT_CHARACTER)
        })
        .collect();
    chars.sort_unstable();
    chars
}

/// `vocab` (ids 0..n) followed by the alphabet and each merge's result;
/// an error if one is already in it.
fn extend(vocab: &mut Map<String, Value>, merges: Vec<String>) -> Result<(), ModelError> {
    let rest = alphabet().into_iter().map(String::from).chain(merges);
    for token in rest {
        let id = vocab.len();
        if vocab.insert(token, Value::from(id)).is_some() {
            return Err(invalid("a merge's result is already in the vocabulary"));
        }
    }
    Ok(())
}

/// Each merge's result (`"a b"` or `["a", "b"]` joined), in order.
fn merge_results(model: &Map<String, Value>) -> Result<Vec<String>, ModelError> {
    let merges = model.get("merges").and_then(Value::as_array).ok_or_else(|| invalid("model.merges is not a list"))?;
    merges
        .iter()
        .map(|merge| match merge {
            Value::String(pair) => pair.split_once(' ').map(|(a, b)| format!("{a}{b}")),
            Value::Array(pair) => match pair.as_slice() {
                [Value::String(a), Value::String(b)] => Some(format!("{a}{b}")),
                _ => None,
            },
            _ => None,
        })
        .collect::<Option<Vec<_>>>()
        .ok_or_else(|| invalid("a merge is not a pair of tokens"))
}

fn model_of(doc: &mut Value) -> Result<&mut Map<String, Value>, ModelError> {
    doc.get_mut("model").and_then(Value::as_object_mut).ok_or_else(|| invalid("it has no model"))
}

fn invalid(why: &str) -> ModelError {
    ModelError::Tokenizer(format!("the compact vocabulary: {why}"))
}

fn bad(e: serde_json::Error) -> ModelError {
    ModelError::Tokenizer(e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_alphabet_is_256_distinct_characters_in_order() {
        let a = alphabet();
        assert_eq!(a.len(), ALPHABET);
        assert!(a.windows(2).all(|w| w[0] < w[1]));
        assert_eq!((a[0], a[255]), ('!', '\u{143}'));
    }

    #[test]
    fn a_vocabulary_that_does_not_follow_is_refused_and_a_plain_document_left_as_it_is() {
        let doc =
            |vocab: &str, merges: &str| format!(r#"{{"model":{{"type":"BPE","vocab":{vocab},"merges":{merges}}}}}"#);
        let mut entries: Vec<String> = vec![r#""<s>":0"#.into()];
        entries.extend(alphabet().iter().enumerate().map(|(i, c)| format!("{:?}:{}", c.to_string(), i + 1)));
        entries.push(r#""ab":257"#.into());
        let good = doc(&format!("{{{}}}", entries.join(",")), r#"["a b"]"#);
        let compacted = compact(good.as_bytes()).unwrap();
        assert!(compacted.len() < good.len() / 4, "{} of {}", compacted.len(), good.len());
        let back: Value = serde_json::from_slice(&expand(&compacted).unwrap()).unwrap();
        assert_eq!(back, serde_json::from_str::<Value>(&good).unwrap());
        // The last merge's result under another id, then a merge that is not a pair.
        let moved = good.replace(r#""ab":257"#, r#""ba":257"#);
        assert!(compact(moved.as_bytes()).is_err());
        assert!(compact(good.replace(r#"["a b"]"#, r#"["ab"]"#).as_bytes()).is_err());
        assert_eq!(expand(good.as_bytes()).unwrap(), good.as_bytes(), "no mark: as it is");
        let marked = String::from_utf8(compacted).unwrap();
        assert!(expand(marked.replace(REST_RULE, "something else").as_bytes()).is_err());
        // A merge whose result is already listed.
        let twice = marked.replace(r#""<s>":0"#, r#""<s>":0,"ab":1"#);
        assert!(expand(twice.as_bytes()).is_err());
    }
}
