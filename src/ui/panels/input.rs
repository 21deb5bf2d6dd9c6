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
    let chip = move |(i, token): (usize, crate::model::Token)| {
        let highlighted = move || {
            let square = s.stage.get().square();
            focus.cell.get().is_some_and(|(r, c)| r == i || (square && c == i))
        };
        let title = format!("token {i}: id {}, bytes {}..{}", token.id, token.start, token.end);
        view! {
            <li class="chip" class:highlighted=highlighted title=title
                on:mouseenter=move |_| {
                    if !focus.locked.get_untracked() {
                        let col = if s.stage.get_untracked().square() { i } else { 0 };
                        focus.cell.set(Some((i, col)));
                    }
                }>
                <span class="chip-text">{visible(&token.text)}</span>
                <span class="chip-id">{token.id}</span>
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
                <For each=move || {
                        let tokens = state.outputs.tokens.get();
                        // A long text's strip reads the hovered row only to open a window on it.
                        let n = tokens.len();
                        let hovered = (n > ALL_CHIPS).then(|| focus.cell.get().map(|(r, _)| r)).flatten();
                        let centre = chip_window(n, hovered, window.get_value().filter(|&c| c < n));
                        window.set_value(centre);
                        let mut tokens = tokens.into_iter().enumerate();
                        chip_runs(n, centre)
                            .into_iter()
                            .flat_map(|run| match run {
                                ChipRun::Chips(range) => {
                                    tokens.by_ref().skip_while(|(i, _)| *i < range.start).take(range.len())
                                        .map(Strip::Chip).collect::<Vec<_>>()
                                }
                                ChipRun::Gap(range) => vec![Strip::Gap(range)],
                            })
                            .collect::<Vec<_>>()
                    }
                    key=|item| match item {
                        Strip::Chip((i, t)) => (*i, t.id, t.start, t.end, t.text.clone()),
                        Strip::Gap(range) => (range.start, u32::MAX, range.end, 0, String::new()),
                    }
                    children=move |item| match item {
                        Strip::Chip(token) => chip(token).into_any(),
                        Strip::Gap(range) => view! {
                            <li class="chip-gap" data-testid="chip-gap"
                                title="Not drawn as chips: a strip of thousands of them took the browser ~100 ms to lay out at every change. The heatmap has every token; hover a row of it to see its chip here.">
                                {format!("… {} tokens ({}–{}) …", range.len(), range.start, range.end - 1)}
                            </li>
                        }.into_any(),
                    } />
            </ol>
            <Terms keys=crate::glossary::panel::INPUT.to_vec() />
        </section>
    }
}

/// One item of the strip: a token (its place and itself) or a run left out.
#[derive(Clone)]
enum Strip {
    Chip((usize, crate::model::Token)),
    Gap(std::ops::Range<usize>),
}
