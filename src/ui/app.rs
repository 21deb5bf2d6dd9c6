//! The page: text box, token chips, and one head's attention weights drawn
//! from the GPU buffer, with hover readout of the exact value.

use leptos::prelude::*;
use leptos::task::spawn_local;

use super::host::{self, host};
use super::test_hook;
use crate::engine::Mask;
use crate::model::Token;

#[derive(Debug, Clone, PartialEq)]
pub enum Phase {
    Loading,
    Ready,
    Failed(String),
}

/// Everything the page shows, as signals; `Copy`, so handlers and the test hook share it.
#[derive(Clone, Copy)]
pub struct AppState {
    pub phase: RwSignal<Phase>,
    pub text: RwSignal<String>,
    pub tokens: RwSignal<Vec<Token>>,
    pub input_error: RwSignal<Option<String>>,
    pub head: RwSignal<usize>,
    pub n_head: RwSignal<usize>,
    pub n_positions: RwSignal<usize>,
    /// Why the GPU path is unavailable, if it is.
    pub gpu_error: RwSignal<Option<String>>,
    pub backend: RwSignal<String>,
    /// Which model is loaded, in words.
    pub model_label: RwSignal<String>,
    /// Tokens the GPU holds results for (differs from `tokens` when the last run failed).
    pub gpu_tokens: RwSignal<usize>,
    /// Completed GPU runs and heatmap draws.
    pub runs: RwSignal<u64>,
    pub renders: RwSignal<u64>,
    /// Hovered or keyboard-focused cell (query row, key column).
    pub hover: RwSignal<Option<(usize, usize)>>,
    /// The value read back for the hovered cell.
    pub hover_value: RwSignal<Option<CellValue>>,
}

/// One cell's value as read back from the GPU, with what it belongs to.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CellValue {
    pub head: usize,
    pub row: usize,
    pub col: usize,
    /// The GPU run it was read from.
    pub run: u64,
    pub value: f32,
}

const START_TEXT: &str = "The cat sat on the mat because it was tired.";

/// Spaces, newlines and tabs made visible in token chips and labels.
fn visible(text: &str) -> String {
    text.chars()
        .map(|c| match c {
            ' ' => '·',
            '\n' => '↵',
            '\t' => '⇥',
            c => c,
        })
        .collect()
}

fn label_font_px(t: usize) -> Option<u32> {
    match t {
        0..=12 => Some(13),
        13..=24 => Some(11),
        25..=48 => Some(8),
        _ => None,
    }
}

impl AppState {
    fn new() -> Self {
        Self {
            phase: RwSignal::new(Phase::Loading),
            text: RwSignal::new(START_TEXT.to_owned()),
            tokens: RwSignal::new(Vec::new()),
            input_error: RwSignal::new(None),
            head: RwSignal::new(0),
            n_head: RwSignal::new(0),
            n_positions: RwSignal::new(0),
            gpu_error: RwSignal::new(None),
            backend: RwSignal::new("loading…".into()),
            model_label: RwSignal::new("loading…".into()),
            gpu_tokens: RwSignal::new(0),
            runs: RwSignal::new(0),
            renders: RwSignal::new(0),
            hover: RwSignal::new(None),
            hover_value: RwSignal::new(None),
        }
    }

    /// Tokenizes the text and runs the GPU layer on it.
    fn compute(self, text: &str) {
        let Some(host) = host() else { return };
        let tokens = match host.tokenize(text) {
            Ok(tokens) => tokens,
            Err(message) => {
                self.input_error.set(Some(message));
                return;
            }
        };
        self.input_error.set(None);
        let ids: Vec<u32> = tokens.iter().map(|t| t.id).collect();
        self.tokens.set(tokens);
        if let Ok(gpu) = &host.gpu {
            match gpu.run(&ids, Mask::Causal) {
                Ok(()) => {
                    self.gpu_tokens.set(ids.len());
                    self.runs.update(|r| *r += 1);
                    let hover = self.hover.get_untracked().filter(|&(r, c)| r < ids.len() && c < ids.len());
                    self.hover.set(hover);
                }
                Err(message) => self.input_error.set(Some(message)),
            }
        }
    }

    fn draw(self, canvas: &web_sys::HtmlCanvasElement) {
        let Some(host) = host() else { return };
        if let Ok(gpu) = &host.gpu {
            gpu.draw(canvas, self.head.get_untracked(), self.hover.get_untracked());
            self.renders.update(|r| *r += 1);
        }
    }

    /// Reads the hovered cell's weight back from the GPU (4 bytes).
    fn read_hovered(self) {
        let Some(host) = host() else { return };
        let Some((row, col)) = self.hover.get_untracked() else { return };
        let (head, run) = (self.head.get_untracked(), self.runs.get_untracked());
        let Ok(gpu) = &host.gpu else { return };
        let pending = match gpu.begin_read_weight(head, row, col) {
            Ok(pending) => pending,
            Err(message) => return log::warn!("hover read: {message}"),
        };
        spawn_local(async move {
            let Ok(gpu) = &host.gpu else { return };
            match pending.finish(&gpu.ctx).await {
                Ok(values) => {
                    // Drop values that a newer run or another head made stale.
                    if self.runs.get_untracked() == run && self.head.get_untracked() == head {
                        if let Some(&value) = values.first() {
                            self.hover_value.set(Some(CellValue { head, row, col, run, value }));
                        }
                    }
                }
                Err(e) => log::warn!("hover read: {e}"),
            }
        });
    }
}

#[component]
pub fn App() -> impl IntoView {
    let state = AppState::new();
    test_hook::install(state);
    let canvas_ref = NodeRef::<leptos::html::Canvas>::new();

    // Load the model and open the GPU once the canvas exists.
    Effect::new(move |started: Option<bool>| {
        if started == Some(true) {
            return true;
        }
        let Some(canvas) = canvas_ref.get() else { return false };
        spawn_local(async move {
            match host::install(canvas).await {
                Ok(host) => {
                    state.model_label.set(host.model_label());
                    state.n_head.set(host.model.config.n_head);
                    state.n_positions.set(host.model.config.n_positions);
                    match &host.gpu {
                        Ok(gpu) => state.backend.set(format!("WebGPU · {}", gpu.ctx.adapter_name())),
                        Err(e) => {
                            state.backend.set("no GPU".into());
                            state.gpu_error.set(Some(e.clone()));
                        }
                    }
                    state.phase.set(Phase::Ready);
                }
                Err(e) => state.phase.set(Phase::Failed(e)),
            }
        });
        true
    });

    // Recompute on every keystroke once the model is ready.
    Effect::new(move |_| {
        let text = state.text.get();
        if state.phase.get() == Phase::Ready {
            state.compute(&text);
        }
    });

    // Redraw when the run, head or hovered cell changes; read the hovered value.
    Effect::new(move |_| {
        state.runs.track();
        state.head.track();
        state.hover.track();
        if let Some(canvas) = canvas_ref.get() {
            state.draw(&canvas);
            state.read_hovered();
        }
    });

    // Redraw at the new size when the window is resized.
    let on_resize = move || {
        if let Some(canvas) = canvas_ref.get_untracked() {
            state.draw(&canvas);
        }
    };
    let _ = leptos::prelude::window_event_listener(leptos::ev::resize, move |_| on_resize());

    let cell_at = move |x: f64, y: f64, canvas: &web_sys::HtmlCanvasElement| {
        let t = state.gpu_tokens.get_untracked();
        let (w, h) = (canvas.client_width() as f64, canvas.client_height() as f64);
        if t == 0 || w <= 0.0 || h <= 0.0 || x < 0.0 || y < 0.0 {
            return None;
        }
        let col = ((x / w) * t as f64) as usize;
        let row = ((y / h) * t as f64) as usize;
        (row < t && col < t).then_some((row, col))
    };
    let on_move = move |ev: web_sys::MouseEvent| {
        let Some(canvas) = canvas_ref.get_untracked() else { return };
        let cell = cell_at(ev.offset_x() as f64, ev.offset_y() as f64, &canvas);
        if cell != state.hover.get_untracked() {
            state.hover.set(cell);
        }
    };
    let on_key = move |ev: web_sys::KeyboardEvent| {
        let t = state.gpu_tokens.get_untracked();
        if t == 0 {
            return;
        }
        let (row, col) = state.hover.get_untracked().unwrap_or((0, 0));
        let (row, col) = match ev.key().as_str() {
            "ArrowUp" => (row.saturating_sub(1), col),
            "ArrowDown" => ((row + 1).min(t - 1), col),
            "ArrowLeft" => (row, col.saturating_sub(1)),
            "ArrowRight" => (row, (col + 1).min(t - 1)),
            "Escape" => {
                state.hover.set(None);
                return;
            }
            _ => return,
        };
        ev.prevent_default();
        state.hover.set(Some((row, col)));
    };

    let token_chips = move || {
        state
            .tokens
            .get()
            .into_iter()
            .enumerate()
            .map(|(i, token)| {
                let highlighted = move || state.hover.get().is_some_and(|(r, c)| r == i || c == i);
                let title = format!("token {i}: id {}, bytes {}..{}", token.id, token.start, token.end);
                view! {
                    <li class="chip" class:highlighted=highlighted title=title>
                        <span class="chip-text">{visible(&token.text)}</span>
                        <span class="chip-id">{token.id}</span>
                    </li>
                }
            })
            .collect_view()
    };

    let labels = move |axis: &'static str| {
        move || {
            let tokens = state.tokens.get();
            let t = state.gpu_tokens.get();
            let font = label_font_px(t);
            let shown: Vec<Token> = if tokens.len() == t { tokens } else { Vec::new() };
            let items = shown
                .into_iter()
                .enumerate()
                .map(|(i, token)| {
                    let active =
                        move || state.hover.get().is_some_and(|(r, c)| if axis == "row" { r == i } else { c == i });
                    view! { <span class="label" class:active=active>{visible(&token.text)}</span> }
                })
                .collect_view();
            view! {
                <div class=format!("labels {axis}-labels") class:hidden=font.is_none()
                    style:font-size=font.map(|px| format!("{px}px")).unwrap_or_default()>
                    {items}
                </div>
            }
        }
    };

    let readout = move || {
        let tokens = state.tokens.get();
        let token_text = |i: usize| tokens.get(i).map(|t| visible(&t.text)).unwrap_or_default();
        match (state.hover.get(), state.hover_value.get()) {
            (Some((row, col)), Some(CellValue { head, row: r, col: c, run, value }))
                if (r, c) == (row, col) && head == state.head.get() && run == state.runs.get() =>
            {
                let what = if col > row { " (masked: a future token)" } else { "" };
                format!(
                    "query “{}” (row {row}) → key “{}” (column {col}): weight {value:.6}{what}",
                    token_text(row),
                    token_text(col)
                )
            }
            (Some((row, col)), _) => format!("query row {row}, key column {col}: reading…"),
            (None, _) => "Hover a cell, or focus the map and use the arrow keys, to read its exact weight.".into(),
        }
    };

    let head_buttons = move || {
        (0..state.n_head.get())
            .map(|h| {
                view! {
                    <button class="head-button" class:active=move || state.head.get() == h
                        aria-pressed=move || (state.head.get() == h).to_string()
                        on:click=move |_| state.head.set(h)>{format!("Head {h}")}</button>
                }
            })
            .collect_view()
    };

    view! {
        <div class="app">
            <header class="topbar">
                <h1>"attnscope"</h1>
                <span class="badge" title="The weights the page runs">"Model: " {move || state.model_label.get()}</span>
                <span class="badge backend" data-testid="backend">{move || state.backend.get()}</span>
            </header>
            {move || match state.phase.get() {
                Phase::Loading => Some(view! { <div class="banner info">"Loading the model…"</div> }.into_any()),
                Phase::Failed(e) => Some(view! {
                    <div class="banner error" role="alert">"The model could not be loaded: " {e}</div>
                }.into_any()),
                Phase::Ready => None,
            }}
            {move || state.gpu_error.get().map(|e| view! {
                <div class="banner error" role="alert" data-testid="no-webgpu">
                    <strong>"WebGPU is not available, so attention cannot be computed in this browser yet. "</strong>
                    "Use a browser with WebGPU enabled (Chrome or Edge 113+, or Firefox/Safari with WebGPU turned on). "
                    "Tokenization still works below; a CPU fallback is coming. "
                    <span class="detail">"(" {e} ")"</span>
                </div>
            })}
            <main>
                <section class="panel input-panel">
                    <label for="text-input">"Text"</label>
                    <textarea id="text-input" rows="3" spellcheck="false"
                        prop:value=move || state.text.get()
                        on:input=move |ev| state.text.set(event_target_value(&ev))></textarea>
                    <div class="hint">
                        {move || format!("{} tokens", state.tokens.get().len())}
                        {move || (state.n_positions.get() > 0).then(|| format!(" · context holds {}", state.n_positions.get()))}
                    </div>
                    {move || state.input_error.get().map(|e| view! { <div class="input-error" role="alert">{e}</div> })}
                    <ol class="tokens" aria-label="Tokens">{token_chips}</ol>
                </section>
                <section class="panel attention-panel">
                    <div class="panel-head">
                        <h2>"Attention weights · layer 0"</h2>
                        <div class="heads" role="group" aria-label="Attention head">{head_buttons}</div>
                    </div>
                    <p class="formula">
                        "softmax(Q·Kᵀ / √d" <sub>"head"</sub> " + causal mask): each row is a query token, "
                        "each column a key token it may attend to; every row sums to 1."
                    </p>
                    <div class="heatmap">
                        <div class="corner"></div>
                        {labels("col")}
                        {labels("row")}
                        <canvas node_ref=canvas_ref class="heatmap-canvas" tabindex="0"
                            aria-label="Attention weights heatmap; use the arrow keys to read cells"
                            on:mousemove=on_move
                            on:mouseleave=move |_| state.hover.set(None)
                            on:keydown=on_key></canvas>
                        {move || state.gpu_error.get().map(|_| view! {
                            <div class="heatmap-overlay">"The heatmap needs WebGPU, which this browser does not offer."</div>
                        })}
                    </div>
                    <div class="readout" aria-live="polite" data-testid="readout">{readout}</div>
                    <div class="legend">
                        <span>"0"</span><span class="ramp" aria-hidden="true"></span><span>"1"</span>
                        <span class="swatch masked" aria-hidden="true"></span><span>"masked (future token)"</span>
                    </div>
                </section>
            </main>
        </div>
    }
}
