//! The page's state in the address (`#text=…&layer=…`, see `crate::share`):
//! read once at start and on `hashchange`, written back (with
//! `history.replaceState`, so typing does not flood the history) whenever the
//! state changes; the Share button copies the link.

use leptos::prelude::*;

use crate::engine::Mask;
use crate::share::ShareState;
use crate::ui::state::{PageState, Phase, Theme};

fn location_hash() -> String {
    web_sys::window().and_then(|w| w.location().hash().ok()).unwrap_or_default()
}

/// The state a link of the current screen restores.
pub fn current(state: PageState) -> ShareState {
    let (s, focus) = (state.selection, state.focus);
    let locked = focus.locked.get();
    ShareState {
        text: Some(s.text.get()),
        model: state.status.model_key.get(),
        layer: Some(s.layer.get()),
        head: Some(s.head.get()),
        stage: Some(s.stage.get()),
        mask: Some(s.mask.get()),
        // Only a locked cell is part of the link: hovering would rewrite it at every move.
        focus: if locked { focus.cell.get() } else { None },
        locked,
        temperature: Some(s.temperature.get()),
        theme: Some(s.theme.get().key().to_owned()),
        panel: Some(s.panel.get()),
        present: s.present.get(),
        seed: Some(s.seed.get()),
        top_k: s.top_k.get(),
        top_p: s.top_p.get(),
        heads: heads_link(state),
        rejected: Vec::new(),
    }
}

/// Applies a link's fields to the page; says which were not understood, and
/// which layer or head the loaded model lacks.
pub fn apply(state: PageState, link: &ShareState) {
    let s = state.selection;
    if let Some(text) = &link.text {
        s.text.set(text.clone());
    }
    if let Some(l) = link.layer {
        s.layer.set(l);
    }
    if let Some(h) = link.head {
        s.head.set(h);
    }
    if let Some(stage) = link.stage {
        s.stage.set(stage);
    }
    if let Some(m) = link.mask {
        if let Mask::Window(w) = m {
            s.window.set(w);
        }
        s.mask.set(m);
    }
    if let Some(cell) = link.focus {
        state.focus.cell.set(Some(cell));
        state.focus.locked.set(link.locked);
    }
    if let Some(t) = link.temperature {
        s.temperature.set(t);
    }
    if let Some(p) = link.panel {
        s.panel.set(p);
    }
    s.present.set(link.present);
    if let Some(seed) = link.seed {
        s.seed.set(seed);
    }
    s.top_k.set(link.top_k);
    s.top_p.set(link.top_p);
    if let Some(theme) = link.theme.as_deref() {
        s.theme.set(Theme::parse(theme));
    }
    let notes: Vec<String> = link.rejected.iter().map(|r| format!("“{r}”")).collect();
    // Another model than the loaded one: the page plans it and asks before downloading (ui::models).
    if let Some(m) = link.model.as_deref().filter(|&m| Some(m) != state.status.model_key.get_untracked().as_deref()) {
        state.status.model_request.set(Some(m.to_owned()));
    }
    state.status.link_note.set((!notes.is_empty()).then(|| {
        format!("This link asked for {} which the page cannot show; the rest is restored.", notes.join(", "))
    }));
    apply_heads(state, &link.heads);
    // Once a model is loaded, a link naming a layer or head it lacks shows the nearest (before, the load does).
    if let Some(note) = state.fit_selection_to_model() {
        state.add_link_note(note);
    }
}

/// The "which heads matter" fields of a link: only what differs from the page's defaults.
fn heads_link(state: PageState) -> crate::share::HeadsLink {
    let h = state.selection.heads;
    let template = h.template.get();
    let mode = h.mode.get();
    crate::share::HeadsLink {
        template: (template != Default::default()).then_some(template),
        token_x: h.token_x.get(),
        paint: Some(h.paint.get()).filter(|&p| p != crate::inspect::PaintGrid::default()),
        ablated: Some(h.ablated.get()),
        mode: (mode != crate::engine::intervene::Replacement::Zero).then_some(mode),
        source: Some(h.source.get()),
        chosen: h.chosen.get(),
        prompt_b: Some(h.prompt_b.get()),
        show_ablated: (!h.show.get()).then_some(false),
    }
}

/// Applies a link's "which heads matter" fields (heads the loaded model lacks
/// are dropped, and said so, when the model is known).
fn apply_heads(state: PageState, link: &crate::share::HeadsLink) {
    let h = state.selection.heads;
    h.template.set(link.template.unwrap_or_default());
    if link.template.is_some() {
        state.outputs.finder_on.set(true);
    }
    h.token_x.set(link.token_x);
    h.paint.set(link.paint.unwrap_or_default());
    h.mode.set(link.mode.unwrap_or(crate::engine::intervene::Replacement::Zero));
    h.source.set(link.source.clone().unwrap_or_default());
    h.chosen.set(link.chosen);
    h.prompt_b.set(link.prompt_b.clone().unwrap_or_default());
    h.show.set(link.show_ablated.unwrap_or(true));
    let mut heads = link.ablated.clone().unwrap_or_default();
    let (n_layer, n_head, _, _) = untrack(|| state.shape());
    if n_layer > 0 {
        let before = heads.len();
        heads.retain(|&(l, hd)| l < n_layer && hd < n_head);
        if heads.len() < before {
            state.add_link_note(format!(
                "This link ablates heads this model lacks ({n_layer} layers of {n_head} heads); they were left out."
            ));
        }
    }
    h.ablated.set(heads);
}

/// Reads the address now and whenever its fragment changes, and keeps it
/// up to date with the page.
/// How long the page stays still before the address follows it.
const WRITE_AFTER: std::time::Duration = std::time::Duration::from_millis(200);

pub fn install(state: PageState) {
    let initial = location_hash();
    if !initial.trim_start_matches('#').is_empty() {
        apply(state, &ShareState::parse(&initial));
    }
    let written = StoredValue::new(initial);
    // Written once the page has been still for WRITE_AFTER (a keystroke does
    // not pay for a history entry update); the Share button reads the state itself.
    let changes = StoredValue::new(0u64);
    Effect::new(move |_| {
        let fragment = format!("#{}", current(state).format());
        if state.status.phase.get() != Phase::Ready {
            return;
        }
        // Counted even when back at the address's state: a write pending for a state in between
        // (A → B → A within WRITE_AFTER) is dropped, not left to overwrite A's.
        changes.update_value(|n| *n += 1);
        if written.get_value() == fragment {
            return;
        }
        let this = changes.get_value();
        set_timeout(
            move || {
                if changes.get_value() != this || written.get_value() == fragment {
                    return;
                }
                written.set_value(fragment.clone());
                if let Some(history) = web_sys::window().and_then(|w| w.history().ok()) {
                    let _ = history.replace_state_with_url(&wasm_bindgen::JsValue::NULL, "", Some(&fragment));
                }
            },
            WRITE_AFTER,
        );
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
pub fn full_page_link(state: PageState) -> String {
    let Some(location) = web_sys::window().map(|w| w.location()) else { return String::new() };
    let base = format!("{}{}", location.origin().unwrap_or_default(), location.pathname().unwrap_or_default());
    format!("{base}#{}", current(state).format())
}

/// Copies the link of the current screen; says whether it worked.
pub fn share(state: PageState) {
    let Some(window) = web_sys::window() else { return };
    let location = window.location();
    let here = location.href().unwrap_or_default();
    let base = here.split('#').next().unwrap_or_default();
    let href = format!("{base}#{}", current(state).format());
    let clipboard = window.navigator().clipboard();
    let promise = clipboard.write_text(&href);
    leptos::task::spawn_local(async move {
        let copied = wasm_bindgen_futures::JsFuture::from(promise).await.is_ok();
        state.status.link_note.set(Some(if copied {
            "Link copied: it opens this exact screen.".to_owned()
        } else {
            format!("Copy this link to share this exact screen: {href}")
        }));
    });
}
