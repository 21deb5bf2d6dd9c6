//! The text box and its tokens: every keystroke is tokenized and run (the
//! page's compute effect); each token chip shows its text, id and byte span,
//! and hovering one lights its row (and column) in the stage heatmap.

use leptos::prelude::*;

use super::Terms;

use crate::render::layout::{chip_runs, chip_window, ChipRun, ALL_CHIPS};
use crate::render::text::visible;
use crate::ui::state::{PageState, Phase};
use crate::ui::web::dom::now_ms;

#[component]
pub fn InputPanel() -> impl IntoView {
    let state = PageState::from_context();
    let (s, focus) = (state.selection, state.focus);

    // Where a long text's strip centres its window of chips (render::layout::chip_window).
    let window = StoredValue::new(None::<usize>);
    // Keyed by place and token: a keystroke re-creates only the chips that changed (usually the last).
    // A run of tokens a long text leaves out comes as an item of its own ([`gap`]).
    let chip = move |(i, token): (usize, crate::model::Token)| {
        let is_gap = token.id == GAP;
        let highlighted = move || {
            let square = s.stage.get().square();
            !is_gap && focus.cell.get().is_some_and(|(r, c)| r == i || (square && c == i))
        };
        let title = if is_gap {
            format!(
                "Tokens {}–{} are not drawn as chips (thousands of them took the browser ~100 ms to lay out \
                 at every change): the heatmap has every token; hover a row of it to see its chip here.",
                token.start,
                token.end - 1
            )
        } else {
            format!("token {i}: id {}, bytes {}..{}", token.id, token.start, token.end)
        };
        view! {
            <li class="chip" class:chip-gap=is_gap class:highlighted=highlighted title=title
                on:mouseenter=move |_| {
                    if !is_gap && !focus.locked.get_untracked() {
                        let col = if s.stage.get_untracked().square() { i } else { 0 };
                        focus.cell.set(Some((i, col)));
                    }
                }>
                <span class="chip-text">{visible(&token.text)}</span>
                <span class="chip-id">
                    {if is_gap { format!("{} tokens", token.end - token.start) } else { token.id.to_string() }}
                </span>
            </li>
        }
    };

    view! {
        <section class="panel input-panel">
            <label for="text-input">"Text"</label>
            <textarea id="text-input" class="nav-target" rows="3" spellcheck="false"
                prop:value=move || s.text.get()
                on:input=move |ev| {
                    state.telemetry.latency_ms.set(None);
                    state.telemetry.input_at.set(Some(now_ms()));
                    // A new prompt: what was generated after the old one goes.
                    if state.generation.playing.get_untracked() {
                        state.generation.playing.set(false);
                    }
                    if !state.generation.steps.with_untracked(Vec::is_empty) {
                        state.generation.steps.set(Vec::new());
                    }
                    s.text.set(event_target_value(&ev));
                }></textarea>
            <div class="hint" data-testid="token-count">
                {move || match state.status.phase.get() {
                    Phase::Ready => {
                        let (shown, total) = (state.outputs.tokens.with(Vec::len), state.status.text_tokens.get());
                        if total > shown { format!("{shown} of {total} tokens") } else { format!("{shown} tokens") }
                    }
                    Phase::Loading => "Loading the model…".to_owned(),
                    Phase::Failed(_) => "The model could not be loaded".to_owned(),
                }}
                {move || {
                    let n = state.shape().3;
                    (n > 0).then(|| format!(" · context holds {n}"))
                }}
            </div>
            {move || state.status.working.get().then(|| view! {
                <div class="working" role="status" data-testid="working">
                    <span class="spinner" aria-hidden="true"></span>
                    {move || match state.status.steps.get() {
                        // A large model on the CPU, a long run: blocks, then pieces of the LM head.
                        Some((done, of)) => format!(" working… step {done} of {of} (keep typing)"),
                        None => " working…".to_owned(),
                    }}
                </div>
            })}
            {move || state.status.input_error.get().map(|e| view! { <div class="input-error" role="alert">{e}</div> })}
            <ol class="tokens" aria-label="Tokens">
                <For each=move || state.outputs.tokens.with(|tokens| {
                        // A long text's strip reads the hovered row only to open a window on it,
                        // and copies only the tokens it shows.
                        let n = tokens.len();
                        let hovered = (n > ALL_CHIPS).then(|| focus.cell.get().map(|(r, _)| r)).flatten();
                        let centre = chip_window(n, hovered, window.get_value().filter(|&c| c < n));
                        window.set_value(centre);
                        let mut items = Vec::new();
                        for run in chip_runs(n, centre) {
                            match run {
                                ChipRun::Chips(range) => {
                                    let shown = tokens.get(range.clone()).unwrap_or_default();
                                    items.extend(range.zip(shown.iter().cloned()));
                                }
                                ChipRun::Gap(range) => items.push(gap(range)),
                            }
                        }
                        items
                    })
                    key=|(i, t)| (*i, t.id, t.start, t.end, t.text.clone())
                    children=chip />
            </ol>
            <Terms keys=crate::glossary::panel::INPUT.to_vec() />
        </section>
    }
}

/// The id a strip item of tokens left out carries (no vocabulary is that large).
const GAP: u32 = u32::MAX;

/// The strip's item for tokens `range` (never empty) left out, at the place
/// of the first; its span is the range.
fn gap(range: std::ops::Range<usize>) -> (usize, crate::model::Token) {
    (range.start, crate::model::Token { id: GAP, text: "…".to_owned(), start: range.start, end: range.end })
}
