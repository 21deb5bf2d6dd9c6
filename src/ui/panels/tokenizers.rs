//! The tokenizer panel: the same sentence in eleven languages and scripts
//! (and the page's own text) through several real tokenizers shipped in
//! `www/tokenizers/`, with tokens per character and per word and the ratio to
//! English: the "fertility gap". A cell opens its tokens; pieces of a
//! character show as bytes. Loaded on request (a few MB).

use std::rc::Rc;

use leptos::prelude::*;

use super::Terms;
use leptos::task::spawn_local;
use serde::Deserialize;

use crate::model::fertility::{fertility, gap, Fertility};
use crate::model::TextTokenizer;
use crate::render::text::visible;
use crate::ui::state::PageState;
use crate::ui::web::dom::yield_to_browser;
use crate::ui::web::fetch::{fetch_bytes, FetchError};

#[derive(Debug, Clone, Deserialize)]
struct Entry {
    id: String,
    name: String,
    kind: String,
    vocab_size: usize,
    path: String,
}

#[derive(Debug, Clone, Deserialize)]
struct Sample {
    id: String,
    language: String,
    text: String,
}

struct Loaded {
    tokenizers: Vec<(Entry, TextTokenizer)>,
    samples: Vec<Sample>,
    /// The English sample under each tokenizer (the gap's denominator), in `tokenizers` order.
    english: Vec<Fertility>,
    /// Every sample under every tokenizer, computed as they load.
    sample_cells: Vec<Cell>,
}

/// One row of cells: `text` under every tokenizer, against the English sample.
fn row_cells(tokenizers: &[(Entry, TextTokenizer)], english: &[Fertility], id: &str, text: &str) -> Vec<Cell> {
    tokenizers
        .iter()
        .zip(english)
        .map(|((entry, tok), en)| {
            let tokens = tok.encode(text).unwrap_or_default();
            let f = fertility(tokens.len(), text);
            let unknown = tokens.iter().filter(|t| tok.id_to_text(t.id) == "[UNK]").count();
            Cell { sample: id.to_owned(), tokenizer: entry.id.clone(), fertility: f, gap: gap(&f, en), unknown }
        })
        .collect()
}

/// The page's own text, as a row.
const YOURS: &str = "yours";

#[derive(Debug, thiserror::Error)]
enum LoadError {
    #[error(transparent)]
    Fetch(#[from] FetchError),
    #[error("{file}: {source}")]
    Json { file: &'static str, source: serde_json::Error },
    #[error("{path}: {source}")]
    Tokenizer { path: String, source: crate::model::ModelError },
}

async fn load() -> Result<Loaded, LoadError> {
    let json = |file: &'static str| move |source| LoadError::Json { file, source };
    let index: Vec<Entry> =
        serde_json::from_slice(&fetch_bytes("tokenizers/index.json").await?).map_err(json("index.json"))?;
    let samples: Vec<Sample> =
        serde_json::from_slice(&fetch_bytes("tokenizers/samples.json").await?).map_err(json("samples.json"))?;
    let mut tokenizers = Vec::new();
    for entry in index {
        let bytes = fetch_bytes(&entry.path).await?;
        // In parts, each in a task of its own (a real tokenizer read whole was a task of
        // 115–127 ms). Not a `Pacer`: it would put the BPE model's one long call (~30 ms)
        // after a slice of short steps, as it cannot see it coming (72 ms seen in CI).
        let tokenizer = TextTokenizer::from_json_paced(&bytes, yield_to_browser)
            .await
            .map_err(|source| LoadError::Tokenizer { path: entry.path.clone(), source })?;
        tokenizers.push((entry, tokenizer));
    }
    let en = samples.iter().find(|s| s.id == "en").map(|s| s.text.clone()).unwrap_or_default();
    let english = tokenizers
        .iter()
        .map(|(_, tok)| fertility(tok.encode(&en).map(|v| v.len()).unwrap_or(0), &en))
        .collect::<Vec<_>>();
    // A sample's row per task, then the table in a task of its own.
    let mut sample_cells = Vec::new();
    for sample in &samples {
        yield_to_browser().await;
        sample_cells.extend(row_cells(&tokenizers, &english, &sample.id, &sample.text));
    }
    yield_to_browser().await;
    Ok(Loaded { tokenizers, samples, english, sample_cells })
}

#[derive(Debug, Clone, PartialEq)]
struct Cell {
    sample: String,
    tokenizer: String,
    fertility: Fertility,
    gap: f64,
    unknown: usize,
}

#[component]
pub fn TokenizersPanel() -> impl IntoView {
    let state = PageState::from_context();
    let loaded = StoredValue::new_local(None::<Rc<Loaded>>);
    let ready = RwSignal::new(false);
    let loading = RwSignal::new(false);
    let error = RwSignal::new(None::<String>);
    let selected = RwSignal::new(("hi".to_owned(), "gpt2".to_owned()));

    let start = move || {
        if loading.get_untracked() || ready.get_untracked() {
            return;
        }
        loading.set(true);
        spawn_local(async move {
            match load().await {
                Ok(l) => {
                    loaded.set_value(Some(Rc::new(l)));
                    ready.set(true);
                }
                Err(e) => error.set(Some(format!("The tokenizers could not be loaded: {e}"))),
            }
            loading.set(false);
        });
    };

    // The samples once (computed as they loaded); the page's text again as it changes (a
    // keystroke costs one row, not the table).
    let sample_cells = Memo::new(move |_| {
        if !ready.get() {
            return Vec::new();
        }
        loaded.get_value().map_or_else(Vec::new, |l| l.sample_cells.clone())
    });
    let your_cells = Memo::new(move |_| {
        let text = state.selection.text.get();
        if !ready.get() {
            return Vec::new();
        }
        let Some(l) = loaded.get_value() else { return Vec::new() };
        row_cells(&l.tokenizers, &l.english, YOURS, &text)
    });
    let table = move || {
        let mut cells = sample_cells.get();
        cells.extend(your_cells.get());
        cells
    };

    let view_table = move || {
        if !ready.get() {
            return None;
        }
        let l = loaded.get_value()?;
        let cells = table();
        let mut rows: Vec<(String, String)> = l.samples.iter().map(|s| (s.id.clone(), s.language.clone())).collect();
        rows.push((YOURS.into(), "Your text".into()));
        let heads = l
            .tokenizers
            .iter()
            .map(|(e, _)| {
                let title = format!("{}: {}, {} tokens", e.name, e.kind, e.vocab_size);
                view! { <th title=title>{e.name.clone()}</th> }
            })
            .collect_view();
        let ids: Vec<String> = l.tokenizers.iter().map(|(e, _)| e.id.clone()).collect();
        let body = rows
            .into_iter()
            .map(|(sample, language)| {
                let tds = ids
                    .iter()
                    .map(|tid| {
                        let cell = cells.iter().find(|c| c.sample == sample && &c.tokenizer == tid).cloned();
                        let (sample, tid) = (sample.clone(), tid.clone());
                        let key = (sample.clone(), tid.clone());
                        let is_selected = Signal::derive(move || selected.get() == key);
                        cell.map(|c| {
                            let f = c.fertility;
                            let title = format!(
                                "{} tokens for {} characters and {} words: {:.2} tokens per character, {:.2} per word; \
                                 {:.2}× the English sentence{}",
                                f.tokens,
                                f.chars,
                                f.words,
                                f.tokens_per_char,
                                f.tokens_per_word,
                                c.gap,
                                if c.unknown > 0 { format!("; {} unknown ([UNK]) tokens", c.unknown) } else { String::new() }
                            );
                            let hot = c.gap >= 1.5;
                            let (tid_attr, sample_attr) = (tid.clone(), sample.clone());
                            view! {
                                <td class="fert-cell" class:hot=hot class:selected=is_selected
                                    data-tokenizer=tid_attr data-sample=sample_attr data-gap=format!("{:.3}", c.gap)
                                    data-tokens=f.tokens>
                                    // A button, so the keyboard reaches every cell (Tab, then Enter).
                                    <button class="fert-pick" title=title aria-pressed=move || is_selected.get().to_string()
                                        on:click=move |_| selected.set((sample.clone(), tid.clone()))>
                                        <span class="fert-tokens">{f.tokens}</span>
                                        <span class="fert-gap">{if c.gap.is_finite() { format!("{:.2}×", c.gap) } else { "–".into() }}</span>
                                        {(c.unknown > 0).then(|| view! { <span class="fert-unk">{format!("{} UNK", c.unknown)}</span> })}
                                    </button>
                                </td>
                            }
                        })
                    })
                    .collect_view();
                view! { <tr><th class="fert-lang" scope="row">{language}</th>{tds}</tr> }
            })
            .collect_view();
        Some(view! {
            // Focusable, so the keyboard can scroll it sideways on a narrow screen.
            <div class="fert-wrap scroll-x" tabindex="0" role="region" aria-label="Tokens per text and tokenizer (scrolls sideways)">
                <table class="fert-table" data-testid="fertility-table">
                    <thead><tr><th scope="col">"text"</th>{heads}</tr></thead>
                    <tbody>{body}</tbody>
                </table>
            </div>
        })
    };

    // The selected cell's tokens.
    let pieces = move || {
        if !ready.get() {
            return None;
        }
        let l = loaded.get_value()?;
        let (sample, tid) = selected.get();
        let text = if sample == YOURS {
            state.selection.text.get()
        } else {
            l.samples.iter().find(|s| s.id == sample)?.text.clone()
        };
        let (entry, tok) = l.tokenizers.iter().find(|(e, _)| e.id == tid)?;
        let tokens = tok.encode(&text).ok()?;
        let chips = tokens
            .iter()
            .map(|t| {
                let piece = tok.piece(t.id);
                let bytes = matches!(piece, crate::model::Piece::Bytes(_));
                let label = if bytes { piece.label() } else { visible(&piece.label()) };
                view! {
                    <li class="chip" class:bytes=bytes title=format!("id {}", t.id)>
                        <span class="chip-text">{label}</span>
                    </li>
                }
            })
            .collect_view();
        let language = if sample == YOURS {
            "your text".to_owned()
        } else {
            l.samples.iter().find(|s| s.id == sample).map(|s| s.language.clone()).unwrap_or_default()
        };
        Some(view! {
            <p class="hint" data-testid="fert-selected">{format!("{} under {}: {} tokens", language, entry.name, tokens.len())}</p>
            <ol class="tokens fert-pieces">{chips}</ol>
        })
    };

    view! {
        <section class="panel tokenizer-panel" aria-label="Tokenizers">
            <h2 class="panel-heading nav-target" tabindex="-1">"Tokenizers"</h2>
            <p class="lead">"The same sentence, different bills."</p>
            <p class="formula">"Models read tokens, not characters, and are priced and limited in tokens. Tokenizers \
                learn their pieces mostly from English, so the same sentence in another script is cut into many more \
                tokens: it costs more, fills the context sooner and leaves the model less to see. Each cell: tokens, \
                and how many times the English sentence's count."</p>
            {move || (!ready.get()).then(|| view! {
                <button class="seg fert-load" disabled=move || loading.get() on:click=move |_| start()>
                    {move || if loading.get() { "Loading the tokenizers…" } else { "Compare 4 real tokenizers (about 4 MB)" }}
                </button>
            })}
            {move || error.get().map(|e| view! { <p class="input-error" role="alert">{e}</p> })}
            {view_table}
            {pieces}
            {move || ready.get().then(|| view! {
                <p class="hint">"‹E0 A4› is a token holding only part of a character (its UTF-8 bytes): byte-level \
                    tokenizers never fail on a script, they fall back to bytes. [UNK] is a WordPiece tokenizer giving \
                    up on a character it has never seen — fewer tokens, but the text is lost. Edit the text box to add \
                    your own row."</p>
            })}
            <Terms keys=crate::glossary::panel::TOKENIZERS.to_vec() />
        </section>
    }
}
