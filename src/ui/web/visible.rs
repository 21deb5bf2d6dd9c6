//! Whether a panel is on screen, so that per keystroke only what can be seen
//! is computed and drawn; a panel scrolled into view catches up at once.

use leptos::prelude::*;
use wasm_bindgen::closure::Closure;
use wasm_bindgen::JsCast;

/// How far outside the window a panel still counts as on screen (CSS pixels):
/// it is ready by the time a scroll brings it in.
const MARGIN_PX: u32 = 200;

/// A signal that follows whether the element behind `node` is on screen:
/// laid out (not `display: none`) and within [`MARGIN_PX`] of the window.
/// An `IntersectionObserver` tells, after the browser's own layout, so asking
/// never forces one (a per-run `getBoundingClientRect` did, once per panel).
/// True until the observer first reports.
pub fn on_screen<E>(node: NodeRef<E>) -> Signal<bool>
where
    E: leptos::html::ElementType,
    E::Output: JsCast + Clone + 'static,
{
    let visible = RwSignal::new(true);
    let on_change = Closure::<dyn FnMut(js_sys::Array)>::new(move |entries: js_sys::Array| {
        // The last entry is the element's newest state.
        let Some(entry) = entries.iter().rev().find_map(|e| e.dyn_into::<web_sys::IntersectionObserverEntry>().ok())
        else {
            return;
        };
        let now = entry.is_intersecting() && entry.bounding_client_rect().width() > 0.0;
        if now != visible.get_untracked() {
            visible.set(now);
        }
    });
    let options = web_sys::IntersectionObserverInit::new();
    options.set_root_margin(&format!("{MARGIN_PX}px"));
    let observer = web_sys::IntersectionObserver::new_with_options(on_change.as_ref().unchecked_ref(), &options).ok();
    let observer = StoredValue::new_local(observer);
    let on_change = StoredValue::new_local(Some(on_change));
    Effect::new(move |_| {
        let Some(el) = node.get() else { return };
        let Ok(el) = el.dyn_into::<web_sys::Element>() else { return };
        observer.with_value(|o| {
            if let Some(o) = o {
                o.disconnect();
                o.observe(&el);
            }
        });
    });
    on_cleanup(move || {
        observer.with_value(|o| {
            if let Some(o) = o {
                o.disconnect();
            }
        });
        on_change.set_value(None);
    });
    visible.into()
}

/// `value()` while `on_view` is true; off screen, the value it had last, so
/// a panel nobody sees does not rebuild its words per keystroke (it catches
/// up when it comes back).
pub fn while_on_screen<T>(on_view: Signal<bool>, value: impl Fn() -> T + Send + Sync + 'static) -> Memo<T>
where
    T: Clone + PartialEq + Send + Sync + 'static,
{
    Memo::new(move |last: Option<&T>| match (on_view.get(), last) {
        (false, Some(last)) => last.clone(),
        _ => value(),
    })
}
