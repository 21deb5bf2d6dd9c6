//! The glossary: every symbol and term on the page in one sentence
//! (`crate::glossary`), and `Terms`, the line of links each panel puts under
//! its text so a word is one click (or Enter) from its meaning.

use leptos::prelude::*;

use crate::glossary::{lookup, ENTRIES};
use crate::ui::web::dom;

/// Links to the glossary entries `keys`, under a panel's text. Buttons, not
/// `#anchors`: the address's fragment holds the page's state.
#[component]
pub fn Terms(#[prop(into)] keys: Signal<Vec<&'static str>>) -> impl IntoView {
    // One Tab stop for the line; ←/→ move between its terms.
    let current = RwSignal::new(0usize);
    view! {
        <p class="terms" role="group" aria-label="Terms (arrow keys move between them)"
            on:keydown=move |ev| if let Some(i) = dom::roving_key(&ev, ".term") { current.set(i) }>
            <span class="terms-label">"Terms: "</span>
            {move || keys.get().into_iter().filter_map(lookup).enumerate().map(|(i, entry)| {
                let key = entry.key;
                view! {
                    <button class="term" data-term=key title=entry.meaning
                        tabindex=move || if current.get() == i { "0" } else { "-1" }
                        on:focus=move |_| current.set(i)
                        on:click=move |_| dom::jump_to(&format!("#gl-{key}"))>{entry.term}</button>
                }
            }).collect_view()}
        </p>
    }
}

#[component]
pub fn GlossaryPanel() -> impl IntoView {
    view! {
        <section class="panel glossary-panel" aria-labelledby="glossary-heading">
            <h2 class="panel-heading nav-target" id="glossary-heading" tabindex="-1">"Glossary"</h2>
            <p class="formula">"Every symbol and term on this page, in the order the computation meets them. \
                The “Terms” line under each panel links here."</p>
            <dl class="glossary">
                {ENTRIES.iter().map(|entry| view! {
                    <div class="gl-entry" id=format!("gl-{}", entry.key)>
                        <dt class="nav-target" tabindex="-1">{entry.term}</dt>
                        <dd>{entry.meaning}</dd>
                    </div>
                }).collect_view()}
            </dl>
        </section>
    }
}
