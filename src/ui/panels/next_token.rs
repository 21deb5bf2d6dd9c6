//! The next-token distribution: the 10 most likely tokens after the last one
//! with their probabilities (ranked on the GPU by top_k.wgsl), and the
//! temperature slider that reshapes it (re-running only that kernel).

use leptos::prelude::*;

use super::Terms;

use crate::render::text::visible;
use crate::ui::backend::{spawn_latest, Backend};
use crate::ui::state::{NextToken, PageState};
use crate::ui::web::present;

#[component]
pub fn NextTokenPanel() -> impl IntoView {
    let state = PageState::from_context();
    let backend = Backend::from_context();
    let (s, outputs) = (state.selection, state.outputs);

    // Read the top tokens after each run and at each temperature.
    Effect::new(move |_| {
        outputs.runs.track();
        let temperature = s.temperature.get();
        if outputs.shown_tokens.get_untracked() == 0 {
            return outputs.next.set(Vec::new());
        }
        spawn_latest(
            "next tokens",
            move || (outputs.runs.get(), s.temperature.get()),
            backend.top_k(temperature),
            move |top| outputs.next.set(top.into_iter().map(|(id, text, prob)| NextToken { id, text, prob }).collect()),
        );
    });

    // The list's rows stay in the page from run to run: each follows its rank's token, and only
    // what changed (a word, a bar's width, a percentage) touches the page per keystroke (rebuilt
    // whole, ten rows' every attribute was set again each run).
    let count = Memo::new(move |_| outputs.next.with(Vec::len));
    let top = Memo::new(move |_| outputs.next.with(|n| n.first().map_or(1.0, |n| n.prob).max(1e-9)));
    let row = move |i: usize| {
        let token = Memo::new(move |_| outputs.next.with(|n| n.get(i).cloned()));
        let field = move |f: fn(&NextToken) -> String| move || token.with(|t| t.as_ref().map(f).unwrap_or_default());
        view! {
            <li class="next-item" title=field(|n| format!("id {}", n.id))
                class:picked=move || present::picked(state) == Some(i)>
                <span class="next-text">{field(|n| visible(&n.text))}</span>
                <span class="next-bar"><span class="next-fill"
                    style:width=move || format!("{:.1}%", 100.0 * token.with(|t| t.as_ref().map_or(0.0, |n| n.prob)) / top.get())>
                </span></span>
                <span class="next-prob">{field(|n| format!("{:.1}%", 100.0 * n.prob))}</span>
            </li>
        }
    };
    let next_tokens = move || {
        if count.get() == 0 {
            return view! { <p class="hint">"Type something to see what the model expects next."</p> }.into_any();
        }
        view! { <ol class="next-list"><For each=move || 0..count.get() key=|i| *i children=row /></ol> }.into_any()
    };

    view! {
        <section class="panel next-panel">
            <h2 class="panel-heading nav-target" tabindex="-1">"Next token"</h2>
            <p class="formula">"softmax(logits / temperature) after the last token: the model's own distribution."</p>
            <div class="temperature">
                <label for="temperature">{move || format!("Temperature {:.2}", s.temperature.get())}</label>
                <input id="temperature" type="range" min="0" max="2" step="0.05"
                    prop:value=move || s.temperature.get().to_string()
                    on:input=move |ev| {
                        if let Ok(t) = event_target_value(&ev).parse::<f32>() {
                            s.temperature.set(t);
                        }
                    } />
                <span class="hint">{move || if s.temperature.get() == 0.0 { "greedy: always the top token" } else { "low: sharper · high: flatter" }}</span>
            </div>
            {next_tokens}
            <Terms keys=crate::glossary::panel::NEXT_TOKEN.to_vec() />
        </section>
    }
}
