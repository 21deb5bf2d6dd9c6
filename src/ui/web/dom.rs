//! Small DOM helpers shared by the page and its panels.

use std::ops::ControlFlow;

use wasm_bindgen::JsCast;

/// The canvas a mouse event was dispatched to: each map has a WebGPU and a 2D
/// canvas, and a handler serves both.
pub fn event_canvas(ev: &web_sys::MouseEvent) -> Option<web_sys::HtmlCanvasElement> {
    ev.current_target()?.dyn_into::<web_sys::HtmlCanvasElement>().ok()
}

/// Milliseconds on the page's clock (`performance.now()`).
pub fn now_ms() -> f64 {
    thread_local! {
        // Looked up once: a keystroke reads the clock a dozen times.
        static PERFORMANCE: Option<web_sys::Performance> = web_sys::window().and_then(|w| w.performance());
    }
    PERFORMANCE.with(|p| p.as_ref().map_or(0.0, |p| p.now()))
}

/// Runs `f` in a task of its own, ahead of the browser's ordinary tasks
/// where it can (`scheduler.postTask` at "user-blocking" priority), else in a
/// `setTimeout(0)`. Posted while the page reacts to a run, it runs right
/// after the frame that shows the result, before tasks the browser queued
/// meanwhile (a text box's `selectionchange`, messages).
pub fn after_this_frame(f: impl FnOnce() + 'static) {
    post_task(&wasm_bindgen::closure::Closure::once_into_js(f), "user-blocking");
}

/// Resolves in a task of its own, after the browser has handled the input
/// and rendering that waited (`scheduler.postTask` at "user-visible", else
/// a `setTimeout(0)`): a long computation awaits it between its slices.
pub async fn yield_to_browser() {
    let promise = js_sys::Promise::new(&mut |resolve, _| post_task(&resolve, "user-visible"));
    let _ = wasm_bindgen_futures::JsFuture::from(promise).await;
}

/// Paces long work on the main thread: `pause`, called after each piece of
/// the work, gives the thread back to the browser ([`yield_to_browser`])
/// when the next piece, if it takes as long as the longest one so far,
/// would end the slice past [`Pacer::SLICE_MS`]; so the work runs in slices
/// of about that length with input and frames between (pieces differ in
/// length: predicted from the last one alone, a long piece after a short
/// one doubled a slice).
pub struct Pacer {
    /// When the slice began, when the last piece ended, and the longest piece.
    since: f64,
    last: f64,
    longest: f64,
}

impl Pacer {
    /// The slice of work between two yields (ms); a long task is 50.
    pub const SLICE_MS: f64 = 20.0;

    pub fn new() -> Self {
        let now = now_ms();
        Self { since: now, last: now, longest: 0.0 }
    }

    pub async fn pause(&mut self) {
        let now = now_ms();
        self.longest = self.longest.max(now - self.last);
        self.last = now;
        if now - self.since + self.longest >= Self::SLICE_MS {
            yield_to_browser().await;
            self.since = now_ms();
            self.last = self.since;
        }
    }

    /// [`Self::pause`], then whether the work should go on: stop once
    /// `wanted()` says a newer run or request made its result unwanted.
    pub async fn pause_while(&mut self, wanted: impl Fn() -> bool) -> ControlFlow<()> {
        self.pause().await;
        if wanted() {
            ControlFlow::Continue(())
        } else {
            ControlFlow::Break(())
        }
    }
}

impl Default for Pacer {
    fn default() -> Self {
        Self::new()
    }
}

/// Calls `callback` in a new task: `scheduler.postTask` at `priority` where
/// the browser has it, else `setTimeout(0)`.
fn post_task(callback: &wasm_bindgen::JsValue, priority: &str) {
    let posted = web_sys::window().and_then(|w| {
        let scheduler = js_sys::Reflect::get(&w, &"scheduler".into()).ok().filter(|s| s.is_object())?;
        let post = js_sys::Reflect::get(&scheduler, &"postTask".into()).ok()?.dyn_into::<js_sys::Function>().ok()?;
        let options = js_sys::Object::new();
        js_sys::Reflect::set(&options, &"priority".into(), &priority.into()).ok()?;
        post.call2(&scheduler, callback, &options).ok()
    });
    if posted.is_none() {
        if let Some(w) = web_sys::window() {
            let _ = w.set_timeout_with_callback(callback.unchecked_ref());
        }
    }
}

/// Resolves after `ms` milliseconds (a timer), letting the page paint between steps.
pub async fn sleep_ms(ms: i32) {
    let promise = js_sys::Promise::new(&mut |resolve, _| {
        if let Some(w) = web_sys::window() {
            let _ = w.set_timeout_with_callback_and_timeout_and_arguments_0(&resolve, ms);
        }
    });
    let _ = wasm_bindgen_futures::JsFuture::from(promise).await;
}

/// The device pixels per CSS pixel.
pub fn device_pixel_ratio() -> f64 {
    web_sys::window().map_or(1.0, |w| w.device_pixel_ratio())
}

fn element(selector: &str) -> Option<web_sys::HtmlElement> {
    let el = web_sys::window()?.document()?.query_selector(selector).ok()??;
    el.dyn_into::<web_sys::HtmlElement>().ok()
}

/// Scrolls the first element matching `selector` into view and moves the
/// focus to the first `.nav-target` inside it (its heading), so the keyboard
/// continues from there.
pub fn jump_to(selector: &str) {
    let Some(panel) = element(selector) else { return };
    panel.scroll_into_view();
    let target =
        panel.query_selector(".nav-target").ok().flatten().and_then(|e| e.dyn_into::<web_sys::HtmlElement>().ok());
    if let Some(target) = target {
        let options = web_sys::FocusOptions::new();
        options.set_prevent_scroll(true);
        let _ = target.focus_with_options(&options);
    }
}

/// Moves the focus to the first element matching `selector`.
pub fn focus(selector: &str) {
    if let Some(el) = element(selector) {
        let _ = el.focus();
    }
}

/// Whether the system asks for a dark colour scheme.
pub fn system_prefers_dark() -> bool {
    web_sys::window()
        .and_then(|w| w.match_media("(prefers-color-scheme: dark)").ok().flatten())
        .is_some_and(|m| m.matches())
}

/// Sets `data-theme` on the root element (`None`: the system's theme).
pub fn set_theme_attribute(theme: Option<&str>) {
    if let Some(root) = web_sys::window().and_then(|w| w.document()).and_then(|d| d.document_element()) {
        let _ = match theme {
            Some(t) => root.set_attribute("data-theme", t),
            None => root.remove_attribute("data-theme"),
        };
    }
}

/// A JavaScript error's message.
pub fn js_message(value: &wasm_bindgen::JsValue) -> String {
    value
        .dyn_ref::<js_sys::Error>()
        .map(|e| String::from(e.message()))
        .or_else(|| value.as_string())
        .unwrap_or_else(|| format!("{value:?}"))
}

/// Arrow-key movement inside a group that is one Tab stop (the roving
/// tabindex pattern): ←/→ (and ↑/↓), Home and End move the focus among the
/// group's `items` (a selector inside the element the listener sits on) and
/// return the newly focused item's index, or `None` for any other key.
pub fn roving_key(ev: &web_sys::KeyboardEvent, items: &str) -> Option<usize> {
    let group = ev.current_target()?.dyn_into::<web_sys::Element>().ok()?;
    let list = group.query_selector_all(items).ok()?;
    let n = list.length() as usize;
    if n == 0 {
        return None;
    }
    let active = web_sys::window()?.document()?.active_element();
    let at = (0..n).find(|&i| {
        let item = list.item(i as u32);
        matches!((&item, &active), (Some(a), Some(b)) if a.is_same_node(Some(b)))
    });
    let next = match (ev.key().as_str(), at) {
        ("ArrowRight" | "ArrowDown", Some(i)) => (i + 1) % n,
        ("ArrowLeft" | "ArrowUp", Some(i)) => (i + n - 1) % n,
        ("Home", _) => 0,
        ("End", _) => n - 1,
        _ => return None,
    };
    ev.prevent_default();
    let item = list.item(next as u32)?.dyn_into::<web_sys::HtmlElement>().ok()?;
    let _ = item.focus();
    Some(next)
}
