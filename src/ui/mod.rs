//! The Leptos app (wasm32 only). It orchestrates the engine and the renderer
//! and shows what they produce; it does no math of its own.

mod app;
mod block_view;
mod chart;
mod cost_view;
mod dilution_view;
mod export;
mod fetch;
mod generate_view;
mod head_view;
mod host;
mod present;
mod test_hook;
mod tokenizer_view;
mod url;

/// Spaces, newlines and tabs made visible in token chips, labels and exports.
pub(crate) fn visible(text: &str) -> String {
    text.chars()
        .map(|c| match c {
            ' ' => '·',
            '\n' => '↵',
            '\t' => '⇥',
            c => c,
        })
        .collect()
}

/// The canvas a mouse event was dispatched to: each map has a WebGPU and a 2D
/// canvas, and a handler serves both.
pub(crate) fn event_canvas(ev: &web_sys::MouseEvent) -> Option<web_sys::HtmlCanvasElement> {
    use wasm_bindgen::JsCast;
    ev.current_target()?.dyn_into::<web_sys::HtmlCanvasElement>().ok()
}

/// Milliseconds on the page's clock (`performance.now()`).
pub(crate) fn now_ms() -> f64 {
    web_sys::window().and_then(|w| w.performance()).map_or(0.0, |p| p.now())
}

/// Resolves after `ms` milliseconds (a timer), letting the page paint between steps.
pub(crate) async fn sleep_ms(ms: i32) {
    let promise = js_sys::Promise::new(&mut |resolve, _| {
        if let Some(w) = web_sys::window() {
            let _ = w.set_timeout_with_callback_and_timeout_and_arguments_0(&resolve, ms);
        }
    });
    let _ = wasm_bindgen_futures::JsFuture::from(promise).await;
}

/// Forwards `log` records to the browser console.
struct ConsoleLogger;

impl log::Log for ConsoleLogger {
    fn enabled(&self, metadata: &log::Metadata) -> bool {
        metadata.level() <= log::Level::Info
    }

    fn log(&self, record: &log::Record) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let line = wasm_bindgen::JsValue::from_str(&format!("attnscope: {}", record.args()));
        match record.level() {
            log::Level::Error => web_sys::console::error_1(&line),
            log::Level::Warn => web_sys::console::warn_1(&line),
            _ => web_sys::console::log_1(&line),
        }
    }

    fn flush(&self) {}
}

static LOGGER: ConsoleLogger = ConsoleLogger;

/// Entry point called by the `attnscope-web` binary.
pub fn start() {
    console_error_panic_hook::set_once();
    if log::set_logger(&LOGGER).is_ok() {
        log::set_max_level(log::LevelFilter::Info);
    }
    leptos::mount::mount_to_body(app::App);
}
