//! Presenter mode: the forward pass as slides (`crate::present`), one panel
//! at a time in large type on a high-contrast theme, full screen on request.
//! Keys (and a clicker's PageUp/PageDown): → Space PageDown next, ← PageUp
//! Backspace back, Home/End, ↑↓ move the focused token, M toggles the mask,
//! F full screen, Esc leaves. A spot follows the pointer for the room.

use leptos::prelude::*;

use crate::engine::Mask;
use crate::present::{draw, slides, Slide};
use crate::render::layout::move_row;
use crate::render::text::visible;
use crate::share::Panel;
use crate::ui::state::PageState;

/// The slides for the loaded model, with the diff's when there is a prompt B.
fn all_slides(state: PageState) -> Vec<Slide> {
    slides(state.shape().0.max(1), state.selection.heads.prompt_b.with(|b| !b.is_empty()))
}

fn script(state: PageState) -> Vec<Slide> {
    untrack(|| all_slides(state))
}

/// The slide shown, if presenting.
pub fn current_slide(state: PageState) -> Option<(usize, Slide, usize)> {
    let i = state.selection.present.get()?;
    let all = all_slides(state);
    let i = i.min(all.len() - 1);
    Some((i, all[i], all.len()))
}

/// The next-token list's entry the sample slide draws (seeded), if on it.
pub fn picked(state: PageState) -> Option<usize> {
    let (_, slide, _) = current_slide(state)?;
    if slide != Slide::Sample {
        return None;
    }
    let top: Vec<(u32, f64)> = state.outputs.next.get().iter().map(|n| (n.id, n.prob)).collect();
    draw(&top, state.selection.temperature.get(), state.selection.seed.get())
}

pub fn enter(state: PageState) {
    if state.selection.present.get_untracked().is_none() {
        let focused = web_sys::window()
            .and_then(|w| w.document())
            .and_then(|d| d.active_element())
            .and_then(|e| wasm_bindgen::JsCast::dyn_into::<web_sys::HtmlElement>(e).ok());
        // The button that was pressed is about to be hidden with the page's
        // chrome: until the bar's › takes the focus (next frame), a Space or
        // Enter on it would press that hidden button, not step the slides.
        if let Some(el) = &focused {
            let _ = el.blur();
        }
        state.focus.before_present.set_value(Some((state.selection.mask.get_untracked(), focused)));
        state.selection.present.set(Some(0));
        // The slide's own controls take the focus, so Enter and Space press them.
        request_animation_frame(|| super::dom::focus(".present-controls .present-next"));
    }
    full_screen(true);
}

/// Leaves presenter mode: the page comes back with the mask it had and the
/// focus where it was when presenting began.
pub fn exit(state: PageState) {
    state.selection.present.set(None);
    state.selection.panel.set(Panel::Stage);
    full_screen(false);
    if let Some((mask, focused)) = state.focus.before_present.try_update_value(Option::take).flatten() {
        state.selection.mask.set(mask);
        request_animation_frame(move || {
            if let Some(el) = focused.filter(|e| e.is_connected()) {
                let _ = el.focus();
            }
        });
    }
}

fn full_screen(on: bool) {
    let Some(document) = web_sys::window().and_then(|w| w.document()) else { return };
    let is_on = document.fullscreen_element().is_some();
    if on && !is_on {
        if let Some(root) = document.document_element() {
            // Refused without a user gesture (a restored link): the F key or the button asks again.
            let _ = root.request_fullscreen();
        }
    } else if !on && is_on {
        document.exit_fullscreen();
    }
}

fn go(state: PageState, to: usize) {
    let last = script(state).len() - 1;
    state.selection.present.set(Some(to.min(last)));
}

fn step(state: PageState, by: isize) {
    let at = state.selection.present.get_untracked().unwrap_or(0) as isize;
    go(state, (at + by).max(0) as usize);
}

/// Moves the focused token (the query row) by `by`, locked so the pointer does not move it.
fn move_token(state: PageState, by: isize) {
    let t = state.outputs.shown_tokens.get_untracked();
    let Some(row) = move_row(state.focus.cell.get_untracked().map(|(r, _)| r), by, t) else { return };
    let col = if state.selection.stage.get_untracked().square() { row } else { 0 };
    state.focus.cell.set(Some((row, col)));
    state.focus.locked.set(true);
}

fn toggle_mask(state: PageState) {
    let s = state.selection;
    s.mask.set(match s.mask.get_untracked() {
        Mask::Causal => Mask::Bidirectional,
        Mask::Bidirectional => Mask::Window(s.window.get_untracked()),
        Mask::Window(_) => Mask::Causal,
    });
}

fn mask_label(mask: Mask) -> String {
    match mask {
        Mask::Causal => "causal".into(),
        Mask::Bidirectional => "bidirectional".into(),
        Mask::Window(w) => format!("window of {w}"),
    }
}

/// Wires the keys and keeps the page on the slide's panel, layer and stage.
pub fn install(state: PageState) {
    Effect::new(move |_| {
        let Some((_, slide, _)) = current_slide(state) else { return };
        state.selection.panel.set(slide.panel());
        if let Some(layer) = slide.layer() {
            state.selection.layer.set(layer);
        }
        match slide {
            Slide::Attention { stage, .. } => state.select_stage(stage),
            // The diff compares the attention weights of the layer and head shown last.
            Slide::Diff => state.select_stage(crate::engine::AttentionStage::Weights),
            _ => {}
        }
    });
    let _ = window_event_listener(leptos::ev::keydown, move |ev| {
        let target = ev.target().and_then(|t| wasm_bindgen::JsCast::dyn_into::<web_sys::Element>(t).ok());
        let tag = target.as_ref().map(|e| e.tag_name()).unwrap_or_default();
        let typing = matches!(tag.as_str(), "TEXTAREA" | "INPUT" | "SELECT");
        // Enter and Space on a focused button or link press it, as everywhere else.
        let pressing = matches!(tag.as_str(), "BUTTON" | "A" | "SUMMARY") && matches!(ev.key().as_str(), "Enter" | " ");
        if typing || pressing || ev.ctrl_key() || ev.meta_key() || ev.alt_key() {
            return;
        }
        if state.selection.present.get_untracked().is_none() {
            if ev.key() == "p" && !state.embed {
                ev.prevent_default();
                enter(state);
            }
            return;
        }
        let handled = match ev.key().as_str() {
            "ArrowRight" | "PageDown" | "Enter" => {
                step(state, 1);
                true
            }
            " " => {
                step(state, if ev.shift_key() { -1 } else { 1 });
                true
            }
            "ArrowLeft" | "PageUp" | "Backspace" => {
                step(state, -1);
                true
            }
            "Home" => {
                go(state, 0);
                true
            }
            "End" => {
                go(state, usize::MAX);
                true
            }
            "ArrowUp" => {
                move_token(state, -1);
                true
            }
            "ArrowDown" => {
                move_token(state, 1);
                true
            }
            "m" | "M" => {
                toggle_mask(state);
                true
            }
            "f" | "F" => {
                let on = web_sys::window().and_then(|w| w.document()).is_some_and(|d| d.fullscreen_element().is_some());
                full_screen(!on);
                true
            }
            "Escape" => {
                exit(state);
                true
            }
            _ => false,
        };
        if handled {
            ev.prevent_default();
            ev.stop_propagation();
        }
    });
}

/// The bar above the slide: where we are, the slide's title and caption, and the controls.
#[component]
pub fn PresenterBar() -> impl IntoView {
    let state = PageState::from_context();
    let spot = RwSignal::new(None::<(i32, i32)>);
    let _ = window_event_listener(leptos::ev::mousemove, move |ev| {
        if state.selection.present.get_untracked().is_some() {
            spot.set(Some((ev.client_x(), ev.client_y())));
        }
    });
    let sample_line = move || {
        let i = picked(state)?;
        let next = state.outputs.next.get();
        let n = next.get(i)?;
        let t = state.selection.temperature.get();
        Some(if t == 0.0 {
            format!(
                "Temperature 0: the most likely token, “{}” ({:.1} %), every time.",
                visible(&n.text),
                100.0 * n.prob
            )
        } else {
            format!(
                "Drawn with seed {} at temperature {t:.2} from the {} most likely: “{}” (p = {:.1} %).",
                state.selection.seed.get(),
                next.len(),
                visible(&n.text),
                100.0 * n.prob
            )
        })
    };
    // Built once per presentation: stepping changes its words and buttons'
    // states, not the buttons themselves, so a focused button keeps the focus.
    let presenting = Memo::new(move |_| state.selection.present.get().is_some());
    let at = move || current_slide(state).map_or((0, 1), |(i, _, n)| (i, n));
    let slide = move || current_slide(state).map(|(_, slide, _)| slide);
    move || {
        presenting.get().then(|| {
            view! {
                <section class="present-bar" data-testid="present-bar" aria-label="Presenter">
                    <div class="present-head">
                        <span class="present-count" data-testid="present-count">
                            {move || { let (i, n) = at(); format!("{} / {n}", i + 1) }}</span>
                        <h1 class="present-title" data-testid="present-title">
                            {move || slide().map(|s| s.title(state.selection.head.get())).unwrap_or_default()}</h1>
                        <span class="present-controls">
                            <button class="seg present-back" aria-label="Previous step (←)" on:click=move |_| step(state, -1)
                                disabled=move || at().0 == 0>"‹"</button>
                            <button class="seg present-next" aria-label="Next step (→)" on:click=move |_| step(state, 1)
                                disabled=move || { let (i, n) = at(); i + 1 == n }>"›"</button>
                            <button class="seg" title="Toggle the mask (M)" on:click=move |_| toggle_mask(state)>
                                {move || format!("Mask: {}", mask_label(state.selection.mask.get()))}</button>
                            <button class="seg" title="Full screen (F)" on:click=move |_| full_screen(true)>"Full screen"</button>
                            <button class="seg" title="Leave presenter mode (Esc)" on:click=move |_| exit(state)>"Exit"</button>
                        </span>
                    </div>
                    <p class="present-caption" data-testid="present-caption">
                        {move || slide().map(|s| s.caption()).unwrap_or_default()}</p>
                    {move || sample_line().map(|line| view! { <p class="present-sample" data-testid="present-sample">{line}</p> })}
                    <p class="present-keys">"→ Space PgDn: next · ← PgUp: back · ↑ ↓: focused token · M: mask · F: full screen · Esc: exit"</p>
                </section>
                {move || spot.get().map(|(x, y)| view! {
                    <div class="pointer-spot" aria-hidden="true" style:left=format!("{x}px") style:top=format!("{y}px")></div>
                })}
            }
        })
    }
}
