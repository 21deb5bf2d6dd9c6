//! The fuzz targets: each takes arbitrary bytes, feeds them to one of the
//! places where outside data enters attnscope, and checks what must hold for
//! every input (beyond "no panic"). Shared by the CI driver (`tests/fuzz.rs`,
//! corpus replay plus mutations under `cargo test`, stable Rust) and the
//! coverage-guided AFL binaries (`fuzz/src/bin/*.rs`, `cargo afl`).
//!
//! Seed inputs live in `fuzz/corpus/<target>/`; `fuzz/README.md` has the commands.

use std::sync::OnceLock;

use attnscope::engine::{forward_cpu, Mask};
use attnscope::escape;
use attnscope::model::{Model, ModelConfig, ModelError, TextTokenizer, Token, Weights, MAX_TEXT_BYTES};
use attnscope::share::{self, ShareState, MAX_REJECTED, MAX_REJECTED_CHARS};

/// A target: its name (its corpus folder) and the function.
pub type Target = (&'static str, fn(&[u8]));

pub const TARGETS: [Target; 5] = [
    ("loader", loader),
    ("gguf", gguf),
    ("tokenizer", tokenizer),
    ("share_parse", share_parse),
    ("escape", escape_formats),
];

/// A GGUF file (`Model::from_gguf`: the reader, dequantization, the config,
/// names and tokenizer from the metadata). Whatever loads must have a config
/// of bounded, divisible sizes, finite weights, a tokenizer within the
/// vocabulary, and run a forward pass when small.
pub fn gguf(data: &[u8]) {
    let Ok(model) = Model::from_gguf("fuzz", data) else { return };
    let c = &model.config;
    assert!(c.n_head.is_multiple_of(c.n_kv_head) && c.d_head() > 0 && c.d_head().is_multiple_of(2));
    assert!(model.tokenizer.vocab_size() <= c.vocab_size);
    let w = &model.weights;
    assert!(w.all_finite(), "a loaded weight is not finite");
    if c.n_embd * c.vocab_size <= 1 << 16 && c.n_layer <= 4 {
        let ids = [0, (c.vocab_size - 1) as u32];
        let t = ids.len().min(c.n_positions);
        let tokens: Vec<Token> =
            ids[..t].iter().map(|&id| Token { id, text: String::new(), start: 0, end: 0 }).collect();
        let trace = forward_cpu(c, w, tokens, Mask::Causal);
        assert!(trace.is_ok(), "{:?}", trace.err());
    }
}

/// The safetensors + config loader. Layout: 2 bytes (little-endian) giving
/// the config's length, the `config.json` bytes, then the safetensors bytes.
/// The safetensors part is also read under a fixed tiny config, so the
/// weights parser is exercised even when the config is refused. Whatever
/// loads must hold only finite weights and run a forward pass.
pub fn loader(data: &[u8]) {
    let (config_json, weights) = match data {
        [a, b, rest @ ..] => rest.split_at((u16::from_le_bytes([*a, *b]) as usize).min(rest.len())),
        _ => (&[][..], data),
    };
    let tiny = ModelConfig::from_json(
        br#"{"n_layer":1,"n_head":1,"n_embd":4,"n_positions":4,"vocab_size":8,"model_type":"gpt2"}"#,
    )
    .expect("the fixed tiny config is valid");
    let mut configs = vec![tiny];
    if let Ok(config) = ModelConfig::from_json(config_json) {
        assert!(config.layer_norm_epsilon.is_normal() && config.layer_norm_epsilon > 0.0);
        assert!(config.n_head.is_multiple_of(config.n_kv_head) && config.d_head() > 0 && config.n_inner > 0);
        configs.push(config);
    }
    for config in configs {
        match Weights::from_safetensors(weights, &config) {
            Ok(w) => {
                assert!(w.all_finite(), "a loaded weight is not finite");
                assert_eq!(w.blocks.len(), config.n_layer);
                // Small enough to run: the numbers must come out (finite or not), never a panic.
                if config.n_embd * config.vocab_size <= 1 << 16 && config.n_layer <= 4 {
                    let ids = [0, (config.vocab_size - 1) as u32];
                    let tokens: Vec<Token> =
                        ids.iter().map(|&id| Token { id, text: String::new(), start: 0, end: 0 }).collect();
                    let t = tokens.len().min(config.n_positions);
                    let trace = forward_cpu(&config, &w, tokens[..t].to_vec(), Mask::Causal);
                    assert!(trace.is_ok(), "{:?}", trace.err());
                }
            }
            Err(ModelError::Io { .. }) => panic!("no file is read here"),
            Err(_) => {}
        }
    }
}

/// Loads what the targets keep for the whole run (the shipped tokenizers),
/// so that it does not count as one input's memory.
pub fn warm_up() {
    let _ = tokenizers();
}

/// The shipped tokenizers (GPT-2 byte-level BPE, SmolLM2, MiniLM's WordPiece).
fn tokenizers() -> &'static [TextTokenizer] {
    static TOKENIZERS: OnceLock<Vec<TextTokenizer>> = OnceLock::new();
    TOKENIZERS.get_or_init(|| {
        ["gpt2", "smollm2", "minilm"]
            .iter()
            .map(|name| {
                // The repository root: this crate's, or the parent of fuzz/ for the AFL crate.
                let here = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
                let root = if here.join("www").is_dir() { here } else { here.parent().unwrap_or(here) };
                let path = root.join(format!("www/tokenizers/{name}/tokenizer.json"));
                let json = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
                TextTokenizer::from_bytes(&json).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
            })
            .collect()
    })
}

/// The tokenizer wrapper. The first byte picks a tokenizer (and how often to
/// repeat the text, to reach past the byte bound); the rest is the text, as
/// lossy UTF-8. Spans must lie in the text, in order; a text over the bound
/// must be refused; decoding and the in-pieces encoding must not panic.
pub fn tokenizer(data: &[u8]) {
    let Some((&pick, rest)) = data.split_first() else { return };
    let tokenizers = tokenizers();
    let tok = &tokenizers[pick as usize % tokenizers.len()];
    // A first byte of 0xF0 or more repeats the text, up to about twice the byte bound.
    let text = String::from_utf8_lossy(rest);
    let reps = if pick >= 0xF0 {
        (2 * MAX_TEXT_BYTES / text.len().max(1)).clamp(1, 1 + (pick as usize & 0xF) * 512)
    } else {
        1
    };
    let text = text.repeat(reps);
    match tok.encode(&text) {
        Ok(tokens) => {
            assert!(text.len() <= MAX_TEXT_BYTES);
            let mut previous_start = 0;
            for t in &tokens {
                assert!(t.start <= t.end && t.end <= text.len(), "span {}..{} of {} bytes", t.start, t.end, text.len());
                assert!(t.start >= previous_start, "spans go backwards");
                previous_start = t.start;
            }
            let ids: Vec<u32> = tokens.iter().map(|t| t.id).collect();
            let _ = tok.decode(&ids);
            for &id in ids.iter().take(8) {
                let _ = tok.piece(id).label();
            }
        }
        Err(ModelError::TextTooLong { bytes, limit }) => assert!(bytes > limit && bytes == text.len()),
        Err(e) => panic!("a text the tokenizer could not encode: {e}"),
    }
    let ids = tok.encode_ids_in_pieces(&text, 512).expect("any text encodes in pieces");
    assert!(ids.len() <= 512);
}

/// The link parser. Parsing never fails and stays bounded; what it
/// understood formats to a link that parses back to the same state.
pub fn share_parse(data: &[u8]) {
    let fragment = String::from_utf8_lossy(data);
    let state = ShareState::parse(&fragment);
    assert!(state.rejected.len() <= MAX_REJECTED);
    assert!(state.rejected.iter().all(|r| r.chars().count() <= MAX_REJECTED_CHARS));
    assert!(state.text.as_ref().is_none_or(|t| t.len() <= MAX_TEXT_BYTES));
    let link = state.format();
    assert!(link.bytes().all(|b| b.is_ascii_graphic()), "{link}");
    let again = ShareState::parse(&link);
    assert!(again.rejected.is_empty(), "{link} → {:?}", again.rejected);
    // The stage heatmap is the default panel: a link leaves `view=` out for it.
    let panel = state.panel.filter(|&p| p != share::Panel::Stage);
    assert_eq!(ShareState { rejected: Vec::new(), panel, ..state }, again, "{link}");
}

/// What an XML parser reads back from escaped text (content or attribute):
/// the text with each character XML forbids as U+FFFD.
fn xml_reads_back(text: &str) -> String {
    text.chars()
        .map(|c| match c {
            '\t' | '\n' | '\r' => c,
            c if (c as u32) < 0x20 || c == '\u{FFFE}' || c == '\u{FFFF}' => '\u{FFFD}',
            c => c,
        })
        .collect()
}

/// The escaping functions: XML output parses and reads back as the text (as
/// far as XML can hold it), CSV cells are quoted and never formulas, URL
/// components are unreserved ASCII and decode back.
pub fn escape_formats(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let xml = escape::xml(&text);
    let doc = format!("<a t=\"{xml}\" u='{xml}'>{xml}</a>");
    let parsed = roxmltree::Document::parse(&doc).unwrap_or_else(|e| panic!("not well-formed ({e}): {doc:?}"));
    let root = parsed.root_element();
    let expected = xml_reads_back(&text);
    assert_eq!(root.text().unwrap_or(""), expected);
    assert_eq!((root.attribute("t"), root.attribute("u")), (Some(&*expected), Some(&*expected)));

    let cell = escape::csv_cell(&text);
    let inner = cell.strip_prefix('"').and_then(|c| c.strip_suffix('"')).expect("a quoted cell");
    assert!(!inner.replace("\"\"", "").contains('"'), "a lone quote inside {cell:?}");
    assert!(!inner.starts_with(['=', '+', '-', '@', '\t', '\r']), "a formula: {cell:?}");
    let unquoted = inner.replace("\"\"", "\"");
    assert!(unquoted == *text || unquoted.strip_prefix('\'') == Some(&*text));

    let url = escape::url_component(&text);
    assert!(url.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.~%".contains(&b)), "{url}");
    assert_eq!(share::decode(&url), text);
}
