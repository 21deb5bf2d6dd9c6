//! The Leptos app (wasm32 only). It shows what the engine computes and does
//! no math of its own. The house, and the rules that keep it standing:
//!
//! ```text
//! ui/
//!   state.rs       the page's state as plain structs of signals with methods
//!                  (selection = what a link holds; focus; status; outputs;
//!                  telemetry; generation). Imports no panel, backend or page.
//!   backend/       the one `Backend` handle (GPU or CPU) given through context,
//!     mod.rs       its typed errors, `compute` and `spawn_latest` ("latest run wins")
//!     gpu.rs       WebGPU: the forward pass, canvas surfaces, draws, reads
//!     cpu.rs       the CPU reference in wasm and its 2D painting
//!     timer.rs     a forward pass of its own for the cost panel's timings
//!     inspect.rs   "which heads matter": finder scores, lens, contributions,
//!                  ablation/patching (applied to the run on screen), sweep,
//!                  diff, asked the same of both engines
//!     questions.rs those answers from a CPU trace (plain functions)
//!     gpu_heads.rs the GPU's finder scores, lens and contributions
//!     gpu_intervene.rs  the GPU's ablation, patching, sweep and diff (in place
//!                  on the resident run; second prompts on a second forward)
//!   page.rs        provides state and backend, loads the model, runs the newest
//!                  text once a frame, lays out the bars, banners and columns
//!   panels/        one file per panel; each takes state and backend from
//!                  context and never imports the page
//!   models/        choosing another model: plan, ask, download, switch the
//!                  backend's Host (the chooser in the top bar and its bar)
//!   web/           the browser: link state (share), query string, presenter
//!                  wiring, export, fetch, model files (models), DOM helpers,
//!                  the test hook
//! ```
//!
//! - Only `backend/` touches wgpu; panels ask it questions and draw through it.
//! - No global holds the backend or the state: both are passed through Leptos
//!   context (`PageState::from_context`, `Backend::from_context`) or as arguments.
//! - A result read asynchronously is applied through `backend::spawn_latest`,
//!   which drops it if a newer run or another view made it stale.
//! - Arithmetic that can be tested without a browser lives outside `ui`:
//!   layout in `render::layout`, label text in `render::text`, links in
//!   `crate::share`, slides in `crate::present`, figures in `render::export`.

mod backend;
mod models;
mod page;
mod panels;
mod state;
mod web;

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
    leptos::mount::mount_to_body(page::Page);
}
