//! The shipped tokenizers (www/tokenizers/index.json): the Rust `tokenizers`
//! crate, as the app builds it (fancy-regex, no onig), gives the ids that the
//! Python `tokenizers` library gave for every sample
//! (tests/fixtures/tokenizers/ids.json, written by tools/make_tokenizers.py),
//! and the fertility gaps the lesson shows.
#![cfg(not(target_arch = "wasm32"))]

use std::collections::BTreeMap;
use std::path::PathBuf;

use attnscope::model::fertility::{fertility, gap, Fertility};
use serde::Deserialize;
use tokenizers::Tokenizer;

#[derive(Deserialize)]
struct Entry {
    id: String,
    name: String,
    vocab_size: usize,
    path: String,
}

#[derive(Deserialize)]
struct Sample {
    id: String,
    language: String,
    text: String,
}

#[derive(Deserialize)]
struct Fixture {
    tokenizers_version: String,
    cases: Vec<Case>,
}

#[derive(Deserialize)]
struct Case {
    tokenizer: String,
    sample: String,
    text: String,
    ids: Vec<u32>,
    tokens: Vec<String>,
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn read_json<T: serde::de::DeserializeOwned>(path: &str) -> T {
    let text = std::fs::read_to_string(root().join(path)).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn index() -> Vec<Entry> {
    read_json("www/tokenizers/index.json")
}

fn samples() -> Vec<Sample> {
    read_json("www/tokenizers/samples.json")
}

fn load(entry: &Entry) -> Tokenizer {
    let path = root().join("www").join(&entry.path);
    Tokenizer::from_file(&path).unwrap_or_else(|e| panic!("tokenizer {} ({}): {e}", entry.id, path.display()))
}

fn ids(tokenizer: &Tokenizer, text: &str) -> Vec<u32> {
    tokenizer.encode(text, false).expect("encodes").get_ids().to_vec()
}

#[test]
fn samples_are_the_eleven_of_the_lesson() {
    let samples = samples();
    let ids: Vec<&str> = samples.iter().map(|s| s.id.as_str()).collect();
    assert_eq!(ids, ["en", "de", "ru", "el", "ar", "hi", "zh", "ja", "ko", "emoji", "code"]);
    assert!(samples.iter().all(|s| !s.text.trim().is_empty() && !s.language.is_empty()));
}

#[test]
fn index_lists_the_default_model_and_the_shipped_tokenizers() {
    let index = index();
    let ids: Vec<&str> = index.iter().map(|e| e.id.as_str()).collect();
    assert_eq!(ids, ["default", "gpt2", "smollm2", "minilm"]);
    for entry in &index {
        let tokenizer = load(entry);
        assert_eq!(tokenizer.get_vocab_size(true), entry.vocab_size, "vocabulary size of {}", entry.name);
        let bytes = std::fs::metadata(root().join("www").join(&entry.path)).expect("exists").len();
        assert!(bytes < 3_500_000, "{}: {bytes} bytes", entry.path);
    }
}

#[test]
fn gpt2_says_hello_world_as_openai_does() {
    let gpt2 = index().into_iter().find(|e| e.id == "gpt2").expect("gpt2 in the index");
    assert_eq!(ids(&load(&gpt2), "Hello world"), [15496, 995]);
}

#[test]
fn rust_ids_equal_python_ids_for_every_tokenizer_and_sample() {
    let fixture: Fixture = read_json("tests/fixtures/tokenizers/ids.json");
    let samples = samples();
    let regenerate = "if a tokenizer or sample changed, rerun tools/make_tokenizers.py";
    let index = index();
    for entry in &index {
        for sample in &samples {
            let case =
                fixture.cases.iter().find(|c| c.tokenizer == entry.id && c.sample == sample.id).unwrap_or_else(|| {
                    panic!("no fixture for tokenizer {} sample {} ({regenerate})", entry.id, sample.id)
                });
            assert_eq!(case.text, sample.text, "fixture text of sample {} ({regenerate})", sample.id);
        }
    }
    let tokenizers: BTreeMap<&str, Tokenizer> = index.iter().map(|e| (e.id.as_str(), load(e))).collect();
    for case in &fixture.cases {
        let tokenizer = tokenizers.get(case.tokenizer.as_str()).expect("fixture tokenizer in the index");
        let encoding = tokenizer.encode(case.text.as_str(), false).expect("encodes");
        for (at, (rust, python)) in encoding.get_ids().iter().zip(&case.ids).enumerate() {
            assert_eq!(
                rust,
                python,
                "tokenizer {} sample {}: token {at} is {rust} ({:?}) in Rust, {python} ({:?}) in Python tokenizers {} ({regenerate})",
                case.tokenizer,
                case.sample,
                encoding.get_tokens()[at],
                case.tokens[at],
                fixture.tokenizers_version,
            );
        }
        assert_eq!(
            encoding.get_ids().len(),
            case.ids.len(),
            "tokenizer {} sample {}: {} tokens in Rust, {} in Python",
            case.tokenizer,
            case.sample,
            encoding.get_ids().len(),
            case.ids.len(),
        );
        assert_eq!(encoding.get_tokens(), case.tokens, "token strings of {} / {}", case.tokenizer, case.sample);
    }
}

#[test]
fn fertility_gaps() {
    let samples = samples();
    let english = samples.iter().find(|s| s.id == "en").expect("an English sample");
    let mut gaps: BTreeMap<(String, String), f64> = BTreeMap::new();
    let mut table = String::from("| sample | words | chars |");
    let index = index();
    for entry in &index {
        table += &format!(" {} tokens (gap) |", entry.id);
    }
    table += "\n|---|---|---|";
    table += &"---|".repeat(index.len());
    let tokenizers: Vec<Tokenizer> = index.iter().map(load).collect();
    let english_f: Vec<Fertility> =
        tokenizers.iter().map(|t| fertility(ids(t, &english.text).len(), &english.text)).collect();
    for sample in &samples {
        let plain = fertility(0, &sample.text);
        table += &format!("\n| {} | {} | {} |", sample.language, plain.words, plain.chars);
        for ((entry, tokenizer), en) in index.iter().zip(&tokenizers).zip(&english_f) {
            let encoding = tokenizer.encode(sample.text.as_str(), false).expect("encodes");
            let unknown = encoding.get_tokens().iter().filter(|t| t.as_str() == "[UNK]").count();
            let f = fertility(encoding.get_ids().len(), &sample.text);
            let g = gap(&f, en);
            gaps.insert((entry.id.clone(), sample.id.clone()), g);
            let unknown = if unknown > 0 { format!(", {unknown} [UNK]") } else { String::new() };
            table += &format!(" {} ({g:.2}{unknown}) |", f.tokens);
        }
    }
    eprintln!("Tokens per sample and gap vs English (same tokenizer, same sentence):\n{table}");
    for language in ["hi", "ar"] {
        let g = gaps[&("gpt2".to_owned(), language.to_owned())];
        assert!(g > 1.5, "GPT-2 costs {g:.2}x English's tokens on {language}; expected > 1.5");
    }
}
