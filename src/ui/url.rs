//! The page's state in the address (`#text=…&layer=…`, see `crate::share`):
//! read once at start and on `hashchange`, written back (with
//! `history.replaceState`, so typing does not flood the history) whenever the
//! state changes; the Share button copies the link.

use leptos::prelude::*;

use super::app::AppState;
use super::host::MODEL_NAME;
use crate::engine::Mask;
use crate::share::ShareState;

fn location_hash() -> String {
    web_sys::window().and_then(|w| w.location().hash().ok()).unwrap_or_default()
}

/// The state a link of the current screen restores.
pub fn current(state: AppState) -> ShareState {
    let locked = state.locked.get();
    ShareState {
        text: Some(state.text.get()),
        model: Some(MODEL_NAME.to_owned()),
        layer: Some(state.layer.get()),
        head: Some(state.head.get()),
        stage: Some(state.stage.get()),
        mask: Some(state.mask.get()),
        // Only a locked cell is part of the link: hovering would rewrite it at every move.
        focus: if locked { state.hover.get() } else { None },
        locked,
        temperature: Some(state.temperature.get()),
        theme: Some(state.theme.get().to_owned()),
        panel: Some(state.panel.get()),
        present: state.present.get(),
        seed: Some(state.seed.get()),
        top_k: state.top_k.get(),
        top_p: state.top_p.get(),
        rejected: Vec::new(),
    }
}

/// Applies a link's fields to the page; says which were not understood.
pub fn apply(state: AppState, link: &ShareState) {
    if let Some(text) = &link.text {
        state.text.set(text.clone());
    }
    if let Some(l) = link.layer {
        state.layer.set(l);
    }
    if let Some(h) = link.head {
        state.head.set(h);
    }
    if let Some(s) = link.stage {
        state.stage.set(s);
    }
    if let Some(m) = link.mask {
        if let Mask::Window(w) = m {
            state.window.set(w);
        }
        state.mask.set(m);
    }
    if let Some(cell) = link.focus {
        state.hover.set(Some(cell));
        state.locked.set(link.locked);
    }
    if let Some(t) = link.temperature {
        state.temperature.set(t);
    }
    if let Some(p) = link.panel {
        state.panel.set(p);
    }
    state.present.set(link.present);
    if let Some(seed) = link.seed {
        state.seed.set(seed);
    }
    state.top_k.set(link.top_k);
    state.top_p.set(link.top_p);
    match link.theme.as_deref() {
        Some("dark") => state.theme.set("dark"),
        Some("light") => state.theme.set("light"),
        Some(_) => state.theme.set("auto"),
        None => {}
    }
    let mut notes: Vec<String> = link.rejected.iter().map(|r| format!("“{r}”")).collect();
    if let Some(m) = link.model.as_deref().filter(|&m| m != MODEL_NAME) {
        notes.push(format!("model “{m}” (this page has only “{MODEL_NAME}”)"));
    }
    state.link_note.set((!notes.is_empty()).then(|| {
        format!("This link asked for {} which the page cannot show; the rest is restored.", notes.join(", "))
    }));
}

/// Reads the address now and whenever its fragment changes, and keeps it
/// up to date with the page.
pub fn install(state: AppState) {
    let initial = location_hash();
    if !initial.trim_start_matches('#').is_empty() {
        apply(state, &ShareState::parse(&initial));
    }
    let written = StoredValue::new(initial);
    Effect::new(move |_| {
        let fragment = format!("#{}", current(state).format());
        if state.phase.get() != super::app::Phase::Ready || written.get_value() == fragment {
            return;
        }
        written.set_value(fragment.clone());
        if let Some(history) = web_sys::window().and_then(|w| w.history().ok()) {
            let _ = history.replace_state_with_url(&wasm_bindgen::JsValue::NULL, "", Some(&fragment));
        }
    });
    let _ = window_event_listener(leptos::ev::hashchange, move |_| {
        let hash = location_hash();
        if hash != written.get_value() {
            written.set_value(hash.clone());
            apply(state, &ShareState::parse(&hash));
        }
    });
}

/// The full page (not embed mode) showing the current screen, for an
/// embedded widget's "open in attnscope" link.
pub fn full_page_link(state: AppState) -> String {
    let Some(location) = web_sys::window().map(|w| w.location()) else { return String::new() };
    let base = format!("{}{}", location.origin().unwrap_or_default(), location.pathname().unwrap_or_default());
    format!("{base}#{}", current(state).format())
}

/// Copies the link of the current screen; says whether it worked.
pub fn share(state: AppState) {
    let Some(window) = web_sys::window() else { return };
    let href = window.location().href().unwrap_or_default();
    let clipboard = window.navigator().clipboard();
    let promise = clipboard.write_text(&href);
    leptos::task::spawn_local(async move {
        let copied = wasm_bindgen_futures::JsFuture::from(promise).await.is_ok();
        state.link_note.set(Some(if copied {
            "Link copied: it opens this exact screen.".to_owned()
        } else {
            format!("Copy this link to share this exact screen: {href}")
        }));
    });
}
