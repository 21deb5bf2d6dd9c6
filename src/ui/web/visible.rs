//! Whether a panel is on screen, so that per keystroke only what can be seen
//! is computed and drawn; a panel scrolled into view catches up at once.

use leptos::prelude::*;
use wasm_bindgen::JsCast;

/// How far outside the window a panel still counts as on screen (CSS pixels):
/// it is ready by the time a scroll brings it in.
const MARGIN_PX: f64 = 200.0;

/// Whether `element` is on screen now: laid out (not `display: none`) and
/// within [`MARGIN_PX`] of the window.
fn shows(element: &web_sys::Element) -> bool {
    let Some(window) = web_sys::window() else { return true };
    let height = window.inner_height().ok().and_then(|h| h.as_f64()).unwrap_or(f64::INFINITY);
    let rect = element.get_bounding_client_rect();
    rect.width() > 0.0 && rect.top() < height + MARGIN_PX && rect.bottom() > -MARGIN_PX
}

/// A signal that follows whether the element behind `node` is on screen,
/// checked on scroll and resize, and after whatever `recheck` tracks changes
/// (the panel shown in presenter mode, a new run that may have moved the
/// page's content). True until the element is mounted.
pub fn on_screen<E>(node: NodeRef<E>, recheck: impl Fn() + 'static) -> Signal<bool>
where
    E: leptos::html::ElementType,
    E::Output: JsCast + Clone + 'static,
{
    let visible = RwSignal::new(true);
    let check = move || {
        let Some(el) = node.get_untracked() else { return };
        let Ok(el) = el.dyn_into::<web_sys::Element>() else { return };
        let now = shows(&el);
        if now != visible.get_untracked() {
            visible.set(now);
        }
    };
    Effect::new(move |_| {
        recheck();
        if node.get().is_some() {
            // After layout: the panel's place is known once the frame is drawn.
            request_animation_frame(check);
        }
    });
    let scroll = window_event_listener(leptos::ev::scroll, move |_| check());
    let resize = window_event_listener(leptos::ev::resize, move |_| check());
    on_cleanup(move || {
        scroll.remove();
        resize.remove();
    });
    visible.into()
}
