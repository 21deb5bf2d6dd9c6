//! The learner's page: text and tokens, the attention stage stepper for one
//! layer and head (every stage drawn from the backend's own numbers, hover to
//! read a cell, click to lock it), the model view of every layer × head, the
//! mask toggle, and the next-token distribution with a temperature slider.

use std::cell::Cell;
use std::rc::Rc;

use leptos::prelude::*;
use leptos::task::spawn_local;

use super::block_view::BlockView;
use super::cost_view::CostView;
use super::dilution_view::DilutionView;
use super::export::{self, Format};
use super::generate_view::{GenStep, GenerateView};
use super::head_view::{HeadView, HeadWeights};
use super::host::{self, host, View};
use super::present::{self, PresenterBar};
use super::test_hook;
use super::tokenizer_view::TokenizerView;
use super::url;
use super::{event_canvas, now_ms, visible};
use crate::engine::{AttentionStage, Mask};
use crate::model::{ModelConfig, Token};
use crate::share::Panel;

#[derive(Debug, Clone, PartialEq)]
pub enum Phase {
    Loading,
    Ready,
    Failed(String),
}

/// A value read back for one cell, with what it belongs to.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CellValue {
    pub view: View,
    pub row: usize,
    pub col: usize,
    /// The run it was read from.
    pub run: u64,
    pub value: f32,
}

/// The colour map's span for a view of a run.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Legend {
    pub view: View,
    pub run: u64,
    pub lo: f32,
    pub hi: f32,
}

/// One of the most likely next tokens.
#[derive(Debug, Clone, PartialEq)]
pub struct NextToken {
    pub id: u32,
    pub text: String,
    pub prob: f64,
}

/// Everything the page shows, as signals; `Copy`, so handlers and the test hook share it.
#[derive(Clone, Copy)]
pub struct AppState {
    pub phase: RwSignal<Phase>,
    pub text: RwSignal<String>,
    pub tokens: RwSignal<Vec<Token>>,
    pub input_error: RwSignal<Option<String>>,
    pub layer: RwSignal<usize>,
    pub head: RwSignal<usize>,
    pub stage: RwSignal<AttentionStage>,
    pub mask: RwSignal<Mask>,
    /// The sliding window's width, kept while another mask is chosen.
    pub window: RwSignal<u32>,
    pub n_layer: RwSignal<usize>,
    pub n_head: RwSignal<usize>,
    pub d_head: RwSignal<usize>,
    pub n_positions: RwSignal<usize>,
    /// Why the page runs on the CPU instead of WebGPU, if it does.
    pub gpu_error: RwSignal<Option<String>>,
    pub backend: RwSignal<String>,
    /// Whether the GPU computes and draws. The page has a WebGPU and a 2D
    /// canvas for each map (a canvas that had a WebGPU context cannot give a
    /// 2D one), and shows the one in use.
    pub on_gpu: RwSignal<bool>,
    pub model_label: RwSignal<String>,
    /// Tokens the heatmaps show (differs from `tokens` when the last run failed).
    pub shown_tokens: RwSignal<usize>,
    /// Completed runs and stage heatmap draws.
    pub runs: RwSignal<u64>,
    pub renders: RwSignal<u64>,
    /// Hovered or keyboard-focused cell (row, column) of the stage heatmap.
    pub hover: RwSignal<Option<(usize, usize)>>,
    /// Whether a click locked the focused cell.
    pub locked: RwSignal<bool>,
    pub hover_value: RwSignal<Option<CellValue>>,
    pub legend: RwSignal<Option<Legend>>,
    pub temperature: RwSignal<f32>,
    pub next: RwSignal<Vec<NextToken>>,
    /// The heads of the selected layer the head view draws, and their weights.
    pub view_heads: RwSignal<Vec<usize>>,
    /// The colour theme: "auto" (the system's), "dark" or "light".
    pub theme: RwSignal<&'static str>,
    /// A message about the address: fields of a link that were ignored, or "Link copied".
    pub link_note: RwSignal<Option<String>>,
    /// What the last export saved, or why it failed.
    pub export_note: RwSignal<Option<String>>,
    pub view_weights: RwSignal<Vec<HeadWeights>>,
    /// When the last input event arrived and how long until its heatmap was drawn (ms).
    pub input_at: RwSignal<Option<f64>>,
    /// The run an input event started, and when that event came.
    pub timed_run: RwSignal<Option<(u64, f64)>>,
    pub latency_ms: RwSignal<Option<f64>>,
    /// The part of the page a link names; an embedded widget shows only it.
    pub panel: RwSignal<Panel>,
    /// Embed mode (`?embed=1`): one panel, sized to its frame, for a lesson page.
    pub embed: bool,
    /// Presenter mode, at this slide (`crate::present`).
    pub present: RwSignal<Option<usize>>,
    /// Sampling: the seed, top-k and top-p (the temperature is `temperature`).
    pub seed: RwSignal<u64>,
    pub top_k: RwSignal<Option<usize>>,
    pub top_p: RwSignal<Option<f32>>,
    /// Tokens generated after the text (cleared when the text changes).
    pub generated: RwSignal<Vec<GenStep>>,
    pub playing: RwSignal<bool>,
    /// The loaded model's shape.
    pub config: RwSignal<Option<ModelConfig>>,
}

/// Whether the address asks for embed mode (`?embed=1`).
fn embed_requested() -> bool {
    let search = web_sys::window().and_then(|w| w.location().search().ok()).unwrap_or_default();
    search.trim_start_matches('?').split('&').any(|p| p == "embed=1" || p == "embed")
}

const START_TEXT: &str = "The cat sat on the mat because it was tired.";

fn label_font_px(n: usize) -> Option<u32> {
    match n {
        0..=12 => Some(13),
        13..=24 => Some(11),
        25..=48 => Some(8),
        _ => None,
    }
}

/// A sentence on what the mask means.
fn mask_sentence(mask: Mask) -> String {
    match mask {
        Mask::Causal => "Causal (a decoder, like GPT): each token sees itself and the tokens before it, never later \
                         ones, so text can be generated left to right. This is how the model was trained."
            .into(),
        Mask::Bidirectional => "Bidirectional (an encoder, like BERT): every token sees every other, later ones \
                                included. This model was trained causally, so these numbers show the mechanism, not \
                                what it learned to do."
            .into(),
        Mask::Window(w) => format!(
            "Sliding window of {w} (Mistral, Longformer): each token sees only itself and the {} tokens before it, \
             so attention costs T·{w} instead of T².",
            w.saturating_sub(1)
        ),
    }
}

/// What an embedded widget shows, in a line.
fn embed_title(state: AppState) -> String {
    let (layer, head) = (state.layer.get(), state.head.get());
    match state.panel.get() {
        Panel::Stage => format!("{} · layer {layer} · head {head}", state.stage.get().title()),
        Panel::Heads => format!("Head view · layer {layer}"),
        Panel::Grid => "Softmax weights of every layer and head".to_owned(),
        Panel::Residual => format!("Residual stream · layer {layer}"),
        Panel::Tokens => "Tokens".to_owned(),
        Panel::Next => {
            let text = state.text.get();
            let short: String = text.chars().take(40).collect();
            let more = if text.chars().count() > 40 { "…" } else { "" };
            format!("Next token after “{short}{more}”")
        }
    }
}

impl AppState {
    fn new() -> Self {
        Self {
            phase: RwSignal::new(Phase::Loading),
            text: RwSignal::new(START_TEXT.to_owned()),
            tokens: RwSignal::new(Vec::new()),
            input_error: RwSignal::new(None),
            layer: RwSignal::new(0),
            head: RwSignal::new(0),
            stage: RwSignal::new(AttentionStage::Weights),
            mask: RwSignal::new(Mask::Causal),
            window: RwSignal::new(4),
            n_layer: RwSignal::new(0),
            n_head: RwSignal::new(0),
            d_head: RwSignal::new(0),
            n_positions: RwSignal::new(0),
            gpu_error: RwSignal::new(None),
            backend: RwSignal::new("loading…".into()),
            on_gpu: RwSignal::new(true),
            model_label: RwSignal::new("loading…".into()),
            shown_tokens: RwSignal::new(0),
            runs: RwSignal::new(0),
            renders: RwSignal::new(0),
            hover: RwSignal::new(None),
            locked: RwSignal::new(false),
            hover_value: RwSignal::new(None),
            legend: RwSignal::new(None),
            temperature: RwSignal::new(1.0),
            next: RwSignal::new(Vec::new()),
            view_heads: RwSignal::new(vec![0]),
            theme: RwSignal::new("auto"),
            link_note: RwSignal::new(None),
            export_note: RwSignal::new(None),
            view_weights: RwSignal::new(Vec::new()),
            input_at: RwSignal::new(None),
            timed_run: RwSignal::new(None),
            latency_ms: RwSignal::new(None),
            panel: RwSignal::new(Panel::Stage),
            embed: embed_requested(),
            present: RwSignal::new(None),
            seed: RwSignal::new(0),
            top_k: RwSignal::new(None),
            top_p: RwSignal::new(None),
            generated: RwSignal::new(Vec::new()),
            playing: RwSignal::new(false),
            config: RwSignal::new(None),
        }
    }

    /// The matrix the stage heatmap shows.
    pub fn view(self) -> View {
        View { stage: self.stage.get(), layer: self.layer.get(), head: self.head.get() }
    }

    pub fn view_untracked(self) -> View {
        View { stage: self.stage.get_untracked(), layer: self.layer.get_untracked(), head: self.head.get_untracked() }
    }

    /// Rows × columns of the stage heatmap for the shown tokens.
    fn dims(self, stage: AttentionStage) -> (usize, usize) {
        let t = self.shown_tokens.get_untracked();
        (t, if stage.square() { t } else { self.d_head.get_untracked() })
    }

    /// Tokenizes the latest text, appends the generated tokens, and runs the model on them.
    pub(super) fn compute(self) {
        let Some(host) = host() else { return };
        let text = self.text.get_untracked();
        let mut tokens = match host.tokenize(&text) {
            Ok(tokens) => tokens,
            Err(message) => {
                self.input_error.set(Some(message));
                return;
            }
        };
        tokens.extend(self.generated.get_untracked().into_iter().map(|g| g.token));
        self.input_error.set(None);
        let mask = self.mask.get_untracked();
        let mut result = host.run(&tokens, mask);
        if let Err(e) = &result {
            if host.on_gpu() {
                // A GPU fault or loss: carry on with the CPU reference, without a reload.
                host.fall_back_to_cpu(format!("the GPU failed ({e})"));
                self.gpu_error.set(host.gpu_error.borrow().clone());
                self.backend.set(host.backend_label());
                self.on_gpu.set(false);
                result = host.run(&tokens, mask);
            }
        }
        let n = tokens.len();
        self.tokens.set(tokens);
        match result {
            Ok(()) => {
                self.shown_tokens.set(host.shown());
                let (rows, cols) = self.dims(self.stage.get_untracked());
                let hover = self.hover.get_untracked().filter(|&(r, c)| r < rows && c < cols);
                if hover.is_none() {
                    self.locked.set(false);
                }
                self.hover.set(hover);
                if let Some(at) = self.input_at.get_untracked() {
                    self.input_at.set(None);
                    self.timed_run.set(Some((self.runs.get_untracked() + 1, at)));
                }
                self.runs.update(|r| *r += 1);
                debug_assert_eq!(host.shown(), n);
            }
            Err(message) => self.input_error.set(Some(message)),
        }
    }

    fn draw(self, canvas: &web_sys::HtmlCanvasElement) {
        let Some(host) = host() else { return };
        let view = self.view_untracked();
        host.draw_stage(canvas, view, self.hover.get_untracked());
        self.renders.update(|r| *r += 1);
        if let Some((for_run, at)) = self.timed_run.get_untracked() {
            if for_run == self.runs.get_untracked() {
                // Input event → the GPU has finished the run and this draw of it.
                self.timed_run.set(None);
                let latency = self.latency_ms;
                host.when_drawn(move || latency.set(Some(now_ms() - at)));
            }
        }
        let run = self.runs.get_untracked();
        spawn_local(async move {
            match host.read_range(view).await {
                Ok((lo, hi)) => {
                    if self.runs.get_untracked() == run && self.view_untracked() == view {
                        self.legend.set(Some(Legend { view, run, lo, hi }));
                    }
                }
                Err(e) => log::warn!("legend: {e}"),
            }
        });
    }

    /// Reads the hovered cell's value back (4 bytes on the GPU).
    fn read_hovered(self) {
        let Some(host) = host() else { return };
        let Some((row, col)) = self.hover.get_untracked() else { return };
        let (view, run) = (self.view_untracked(), self.runs.get_untracked());
        spawn_local(async move {
            match host.read_cell(view, row, col).await {
                // Drop values that a newer run or another view made stale.
                Ok(value) if self.runs.get_untracked() == run && self.view_untracked() == view => {
                    self.hover_value.set(Some(CellValue { view, row, col, run, value }));
                }
                Ok(_) => {}
                Err(e) => log::warn!("hover read: {e}"),
            }
        });
    }

    fn read_next(self) {
        let Some(host) = host() else { return };
        if self.shown_tokens.get_untracked() == 0 {
            self.next.set(Vec::new());
            return;
        }
        let (run, temperature) = (self.runs.get_untracked(), self.temperature.get_untracked());
        spawn_local(async move {
            match host.top_k(temperature).await {
                Ok(top) if self.runs.get_untracked() == run => {
                    let tok = &host.model.tokenizer;
                    self.next.set(
                        top.into_iter().map(|(id, prob)| NextToken { id, text: tok.decode(&[id]), prob }).collect(),
                    );
                }
                Ok(_) => {}
                Err(e) => log::warn!("next tokens: {e}"),
            }
        });
    }

    fn step_stage(self, by: isize) {
        let all = AttentionStage::ALL;
        let at = all.iter().position(|&s| s == self.stage.get_untracked()).unwrap_or(0) as isize;
        let next = (at + by).clamp(0, all.len() as isize - 1) as usize;
        self.select_stage(all[next]);
    }

    pub(super) fn select_stage(self, stage: AttentionStage) {
        if stage != self.stage.get_untracked() {
            let (rows, cols) = self.dims(stage);
            let hover = self.hover.get_untracked().filter(|&(r, c)| r < rows && c < cols);
            if hover.is_none() {
                self.locked.set(false);
            }
            self.hover.set(hover);
            self.stage.set(stage);
        }
    }
}

#[component]
pub fn App() -> impl IntoView {
    let state = AppState::new();
    test_hook::install(state);
    url::install(state);
    present::install(state);
    let stage_ref = NodeRef::<leptos::html::Canvas>::new();
    let grid_ref = NodeRef::<leptos::html::Canvas>::new();
    let stage_2d = NodeRef::<leptos::html::Canvas>::new();
    let grid_2d = NodeRef::<leptos::html::Canvas>::new();
    let block_ref = NodeRef::<leptos::html::Canvas>::new();
    let block_2d = NodeRef::<leptos::html::Canvas>::new();
    // The canvases the backend in use draws on.
    let stage_canvas_el = move || if state.on_gpu.get() { stage_ref.get() } else { stage_2d.get() };
    let grid_canvas_el = move || if state.on_gpu.get() { grid_ref.get() } else { grid_2d.get() };

    // Load the model and open the GPU once the canvases exist.
    Effect::new(move |started: Option<bool>| {
        if started == Some(true) {
            return true;
        }
        let (Some(stage), Some(grid), Some(block)) = (stage_ref.get(), grid_ref.get(), block_ref.get()) else {
            return false;
        };
        spawn_local(async move {
            match host::install(host::Canvases { stage, grid, block }).await {
                Ok(host) => {
                    let c = &host.model.config;
                    state.model_label.set(host.model_label());
                    state.n_layer.set(c.n_layer);
                    state.n_head.set(c.n_head);
                    state.d_head.set(c.d_head());
                    state.n_positions.set(c.n_positions);
                    state.config.set(Some(c.clone()));
                    // A link may name a layer or head this model does not have.
                    let (l, h) = (state.layer.get_untracked(), state.head.get_untracked());
                    if l >= c.n_layer || h >= c.n_head {
                        state.layer.set(l.min(c.n_layer - 1));
                        state.head.set(h.min(c.n_head - 1));
                        let msg = format!(
                            "This link asked for layer {l}, head {h}; this model has {} layers of {} heads, so the \
                             nearest is shown.",
                            c.n_layer, c.n_head
                        );
                        state.link_note.update(|n| {
                            *n = Some(match n.take() {
                                Some(before) => format!("{before} {msg}"),
                                None => msg,
                            })
                        });
                    }
                    state.backend.set(host.backend_label());
                    if let Some(e) = host.gpu_error.borrow().clone() {
                        state.gpu_error.set(Some(e));
                        state.on_gpu.set(false);
                    }
                    state.phase.set(Phase::Ready);
                }
                Err(e) => state.phase.set(Phase::Failed(e)),
            }
        });
        true
    });

    // Recompute at most once a frame, with the newest text: a keystroke never
    // waits behind the runs of older texts.
    // Back to WebGPU after a loss (or a first failure), on the same canvases.
    let retry_gpu = move || {
        let (Some(stage), Some(grid), Some(block)) =
            (stage_ref.get_untracked(), grid_ref.get_untracked(), block_ref.get_untracked())
        else {
            return;
        };
        let Some(host) = host() else { return };
        spawn_local(async move {
            match host.restore_gpu(host::Canvases { stage, grid, block }).await {
                Ok(()) => {
                    state.backend.set(host.backend_label());
                    state.gpu_error.set(None);
                    state.on_gpu.set(true);
                    state.compute();
                }
                Err(e) => state.gpu_error.set(Some(format!("WebGPU is still unavailable: {e}"))),
            }
        });
    };

    // The colour theme: the system's (auto), or forced dark or light.
    let theme = state.theme;
    Effect::new(move |_| {
        // Presenting: the high-contrast theme, whatever the page's.
        let t = if state.present.get().is_some() { "contrast" } else { theme.get() };
        if let Some(root) = web_sys::window().and_then(|w| w.document()).and_then(|d| d.document_element()) {
            let _ = if t == "auto" { root.remove_attribute("data-theme") } else { root.set_attribute("data-theme", t) };
        }
    });

    let scheduled = Rc::new(Cell::new(false));
    Effect::new(move |_| {
        state.text.track();
        state.mask.track();
        state.generated.track();
        if state.phase.get() != Phase::Ready || scheduled.get() {
            return;
        }
        scheduled.set(true);
        let scheduled = scheduled.clone();
        request_animation_frame(move || {
            scheduled.set(false);
            state.compute();
        });
    });

    // Redraw the stage heatmap when the run, view or focused cell changes, and read what it shows.
    Effect::new(move |_| {
        state.runs.track();
        state.hover.track();
        let _ = state.view();
        if let Some(canvas) = stage_canvas_el() {
            state.draw(&canvas);
            state.read_hovered();
        }
    });
    Effect::new(move |_| {
        state.runs.track();
        let selected = (state.layer.get(), state.head.get());
        if let (Some(canvas), Some(host)) = (grid_canvas_el(), host()) {
            host.draw_grid(&canvas, selected);
        }
    });
    Effect::new(move |_| {
        state.runs.track();
        state.temperature.track();
        state.read_next();
    });

    let on_resize = move || {
        if let (Some(canvas), Some(grid)) = (untrack(stage_canvas_el), untrack(grid_canvas_el)) {
            state.draw(&canvas);
            if let Some(host) = host() {
                host.draw_grid(&grid, (state.layer.get_untracked(), state.head.get_untracked()));
            }
        }
    };
    let _ = window_event_listener(leptos::ev::resize, move |_| on_resize());

    let cell_at = move |x: f64, y: f64, canvas: &web_sys::HtmlCanvasElement| {
        let (rows, cols) = state.dims(state.stage.get_untracked());
        let (w, h) = (canvas.client_width() as f64, canvas.client_height() as f64);
        if rows == 0 || cols == 0 || w <= 0.0 || h <= 0.0 || x < 0.0 || y < 0.0 {
            return None;
        }
        let (row, col) = (((y / h) * rows as f64) as usize, ((x / w) * cols as f64) as usize);
        (row < rows && col < cols).then_some((row, col))
    };
    let on_move = move |ev: web_sys::MouseEvent| {
        if state.locked.get_untracked() {
            return;
        }
        let Some(canvas) = event_canvas(&ev) else { return };
        let cell = cell_at(ev.offset_x() as f64, ev.offset_y() as f64, &canvas);
        if cell != state.hover.get_untracked() {
            state.hover.set(cell);
        }
    };
    let on_click = move |ev: web_sys::MouseEvent| {
        let Some(canvas) = event_canvas(&ev) else { return };
        let cell = cell_at(ev.offset_x() as f64, ev.offset_y() as f64, &canvas);
        if state.locked.get_untracked() && cell == state.hover.get_untracked() {
            state.locked.set(false);
        } else if cell.is_some() {
            state.hover.set(cell);
            state.locked.set(true);
        }
    };
    let on_key = move |ev: web_sys::KeyboardEvent| {
        if state.present.get_untracked().is_some() {
            return; // presenter mode's keys (present.rs)
        }
        let (rows, cols) = state.dims(state.stage.get_untracked());
        if rows == 0 || cols == 0 {
            return;
        }
        let (row, col) = state.hover.get_untracked().unwrap_or((0, 0));
        let (row, col) = match ev.key().as_str() {
            "ArrowUp" => (row.saturating_sub(1), col),
            "ArrowDown" => ((row + 1).min(rows - 1), col),
            "ArrowLeft" => (row, col.saturating_sub(1)),
            "ArrowRight" => (row, (col + 1).min(cols - 1)),
            "Enter" | " " => {
                ev.prevent_default();
                state.locked.update(|l| *l = !*l && state.hover.get_untracked().is_some());
                return;
            }
            "Escape" => {
                state.locked.set(false);
                state.hover.set(None);
                return;
            }
            _ => return,
        };
        ev.prevent_default();
        state.hover.set(Some((row, col)));
    };
    let on_grid_click = move |ev: web_sys::MouseEvent| {
        let Some(canvas) = event_canvas(&ev) else { return };
        let dpr = web_sys::window().map_or(1.0, |w| w.device_pixel_ratio());
        let size = (canvas.width(), canvas.height());
        let (x, y) = ((ev.offset_x() as f64 * dpr) as f32, (ev.offset_y() as f64 * dpr) as f32);
        let (n_layer, n_head) = (state.n_layer.get_untracked(), state.n_head.get_untracked());
        let cells = host::grid_cells(size, n_layer, n_head);
        if let Some(i) = cells.iter().position(|&[cx, cy, w, h]| x >= cx && x < cx + w && y >= cy && y < cy + h) {
            state.layer.set(i / n_head);
            state.head.set(i % n_head);
        }
    };

    let token_chips = move || {
        state
            .tokens
            .get()
            .into_iter()
            .enumerate()
            .map(|(i, token)| {
                let highlighted = move || {
                    let square = state.stage.get().square();
                    state.hover.get().is_some_and(|(r, c)| r == i || (square && c == i))
                };
                let title = format!("token {i}: id {}, bytes {}..{}", token.id, token.start, token.end);
                view! {
                    <li class="chip" class:highlighted=highlighted title=title
                        on:mouseenter=move |_| {
                            if !state.locked.get_untracked() {
                                let col = if state.stage.get_untracked().square() { i } else { 0 };
                                state.hover.set(Some((i, col)));
                            }
                        }>
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
            let t = state.shown_tokens.get();
            let stage = state.stage.get();
            let shown: Vec<String> = if tokens.len() != t {
                Vec::new()
            } else if axis == "row" || stage.square() {
                tokens.iter().map(|tok| visible(&tok.text)).collect()
            } else {
                (0..state.d_head.get()).map(|j| j.to_string()).collect()
            };
            let font = label_font_px(shown.len());
            let items = shown
                .into_iter()
                .enumerate()
                .map(|(i, text)| {
                    let active =
                        move || state.hover.get().is_some_and(|(r, c)| if axis == "row" { r == i } else { c == i });
                    view! { <span class="label" class:active=active>{text}</span> }
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
        let view = state.view();
        match (state.hover.get(), state.hover_value.get()) {
            (Some((row, col)), Some(v))
                if (v.row, v.col) == (row, col) && v.view == view && v.run == state.runs.get() =>
            {
                let value = if v.value == f32::NEG_INFINITY { "−∞".to_owned() } else { format!("{:.6}", v.value) };
                if view.stage.square() {
                    let what = if !state.mask.get().allows(row, col) { " (masked)" } else { "" };
                    format!(
                        "query “{}” (row {row}) → key “{}” (column {col}): {} = {value}{what}",
                        token_text(row),
                        token_text(col),
                        view.stage.title()
                    )
                } else {
                    format!(
                        "token “{}” (row {row}), dimension {col}: {} = {value}",
                        token_text(row),
                        view.stage.title()
                    )
                }
            }
            (Some((row, col)), _) => format!("row {row}, column {col}: reading…"),
            (None, _) => "Hover a cell to read its exact value; click to lock it. Or focus the map and use the arrow \
                          keys (Enter locks)."
                .into(),
        }
    };

    let legend = move || {
        let view = state.view();
        let (lo, hi) = match state.legend.get() {
            Some(l) if l.view == view => (l.lo, l.hi),
            _ => return view! { <span>"…"</span> }.into_any(),
        };
        if view.stage.signed() {
            let a = lo.abs().max(hi.abs());
            view! {
                <span>{format!("{:.3}", -a)}</span>
                <span class="ramp diverging" aria-hidden="true"></span>
                <span>{format!("+{a:.3}")}</span>
                <span class="range">{format!("(values {lo:.3} … {hi:.3})")}</span>
            }
            .into_any()
        } else {
            view! { <span>"0"</span><span class="ramp" aria-hidden="true"></span><span>"1"</span> }.into_any()
        }
    };

    let head_buttons = move || {
        (0..state.n_head.get())
            .map(|h| {
                view! {
                    <button class="seg head-button" class:active=move || state.head.get() == h
                        aria-pressed=move || (state.head.get() == h).to_string()
                        on:click=move |_| state.head.set(h)>{format!("H{h}")}</button>
                }
            })
            .collect_view()
    };
    let layer_buttons = move || {
        (0..state.n_layer.get())
            .map(|l| {
                view! {
                    <button class="seg layer-button" class:active=move || state.layer.get() == l
                        aria-pressed=move || (state.layer.get() == l).to_string()
                        on:click=move |_| state.layer.set(l)>{format!("L{l}")}</button>
                }
            })
            .collect_view()
    };
    let stage_buttons = move || {
        AttentionStage::ALL
            .into_iter()
            .enumerate()
            .map(|(i, s)| {
                view! {
                    <button class="seg stage-button" class:active=move || state.stage.get() == s
                        data-stage=s.key()
                        aria-pressed=move || (state.stage.get() == s).to_string()
                        on:click=move |_| state.select_stage(s)>
                        <span class="step-no">{i + 1}</span>{s.title()}
                    </button>
                }
            })
            .collect_view()
    };
    let on_stage_key = move |ev: web_sys::KeyboardEvent| match ev.key().as_str() {
        "ArrowLeft" => {
            ev.prevent_default();
            state.step_stage(-1);
        }
        "ArrowRight" => {
            ev.prevent_default();
            state.step_stage(1);
        }
        _ => {}
    };
    let mask_kind = move || match state.mask.get() {
        Mask::Causal => "causal",
        Mask::Bidirectional => "bidirectional",
        Mask::Window(_) => "window",
    };
    let mask_button = move |kind: &'static str, label: &'static str| {
        view! {
            <button class="seg mask-button" data-mask=kind class:active=move || mask_kind() == kind
                aria-pressed=move || (mask_kind() == kind).to_string()
                on:click=move |_| state.mask.set(match kind {
                    "causal" => Mask::Causal,
                    "bidirectional" => Mask::Bidirectional,
                    _ => Mask::Window(state.window.get_untracked()),
                })>{label}</button>
        }
    };

    let next_tokens = move || {
        let next = state.next.get();
        if next.is_empty() {
            return view! { <p class="hint">"Type something to see what the model expects next."</p> }.into_any();
        }
        let top = next.first().map_or(1.0, |n| n.prob).max(1e-9);
        view! {
            <ol class="next-list">
                {next.into_iter().enumerate().map(|(i, n)| {
                    let width = format!("{:.1}%", 100.0 * n.prob / top);
                    view! {
                        <li class="next-item" title=format!("id {}", n.id)
                            class:picked=move || present::picked(state) == Some(i)>
                            <span class="next-text">{visible(&n.text)}</span>
                            <span class="next-bar"><span class="next-fill" style:width=width></span></span>
                            <span class="next-prob">{format!("{:.1}%", 100.0 * n.prob)}</span>
                        </li>
                    }
                }).collect_view()}
            </ol>
        }
        .into_any()
    };

    let stage_canvas = move |node_ref: NodeRef<leptos::html::Canvas>, gpu: bool| {
        view! {
            <canvas node_ref=node_ref class="heatmap-canvas" tabindex="0"
                class:locked=move || state.locked.get()
                class:off=move || state.on_gpu.get() != gpu
                aria-hidden=move || (state.on_gpu.get() != gpu).to_string()
                aria-label="Heatmap of the selected stage; arrow keys move the focused cell, Enter locks it"
                on:mousemove=on_move
                on:click=on_click
                on:mouseleave=move |_| {
                    if !state.locked.get_untracked() {
                        state.hover.set(None);
                    }
                }
                on:keydown=on_key></canvas>
        }
    };
    let grid_canvas = move |node_ref: NodeRef<leptos::html::Canvas>, gpu: bool| {
        view! {
            <canvas node_ref=node_ref class="grid-canvas"
                class:off=move || state.on_gpu.get() != gpu
                aria-label="Softmax weights of every layer (rows) and head (columns); click one to select it"
                on:click=on_grid_click></canvas>
        }
    };

    view! {
        <div class="app" class:embed=state.embed class:present=move || state.present.get().is_some()
            class:one-panel=move || state.embed || state.present.get().is_some()
            data-panel=move || state.panel.get().key()>
            {state.embed.then(|| view! {
                <div class="embed-bar">
                    <span class="embed-title" data-testid="embed-title">{move || embed_title(state)}</span>
                    <a class="embed-open" target="_blank" rel="noopener" href=move || url::full_page_link(state)
                        title="Open this view in the full attnscope page">"open in attnscope ↗"</a>
                </div>
            })}
            <PresenterBar state=state />
            <header class="topbar">
                <h1>"attnscope"</h1>
                <span class="badge" title="The weights the page runs">"Model: " {move || state.model_label.get()}</span>
                <span class="badge backend" data-testid="backend">{move || state.backend.get()}</span>
                <button class="seg present-button" title="Presenter mode: full screen, large type, step through the computation (P)"
                    on:click=move |_| present::enter(state)>"Present"</button>
                <button class="seg share-button" title="Copy a link that opens this exact screen"
                    on:click=move |_| url::share(state)>"Share"</button>
                <button class="seg theme-button" title="Colour theme: follow the system, dark or light"
                    on:click=move |_| theme.update(|t| *t = match *t { "auto" => "dark", "dark" => "light", _ => "auto" })>
                    {move || format!("Theme: {}", theme.get())}
                </button>
            </header>
            <nav class="panel-nav" aria-label="Panels">
                {[
                    ("Attention", "attention-panel"),
                    ("Next token", "next-panel"),
                    ("Generate", "generate-panel"),
                    ("Heads", "head-view-panel"),
                    ("Residual stream", "block-panel"),
                    ("Tokenizers", "tokenizer-panel"),
                    ("Cost", "cost-panel"),
                    ("Dilution", "dilution-panel"),
                ].into_iter().map(|(label, class)| view! {
                    // Scrolls instead of an #anchor: the address's fragment holds the page's state.
                    <button class="nav-link" on:click=move |_| {
                        let el = web_sys::window()
                            .and_then(|w| w.document())
                            .and_then(|d| d.query_selector(&format!(".{class}")).ok().flatten());
                        if let Some(el) = el {
                            el.scroll_into_view();
                        }
                    }>{label}</button>
                }).collect_view()}
            </nav>
            {move || state.link_note.get().map(|note| view! {
                <div class="banner info link-note" role="status" data-testid="link-note">
                    {note}
                    " "
                    <button class="seg" on:click=move |_| state.link_note.set(None)>"OK"</button>
                </div>
            })}
            {move || match state.phase.get() {
                Phase::Loading => Some(view! { <div class="banner info">"Loading the model…"</div> }.into_any()),
                Phase::Failed(e) => Some(view! {
                    <div class="banner error" role="alert">"The model could not be loaded: " {e}</div>
                }.into_any()),
                Phase::Ready => None,
            }}
            {move || state.gpu_error.get().map(|e| view! {
                <div class="banner info" role="status" data-testid="cpu-fallback">
                    <strong>"Running on the CPU. "</strong>
                    "WebGPU is not available here, so the model runs as its CPU reference compiled to WebAssembly: "
                    "the same numbers, computed and drawn without the GPU (slower on long texts). "
                    <span class="detail">"(" {e} ")"</span>
                    " "
                    <button class="seg retry-gpu" on:click=move |_| retry_gpu()>"Try WebGPU again"</button>
                </div>
            })}
            <main>
                <div class="column">
                    <section class="panel input-panel">
                        <label for="text-input">"Text"</label>
                        <textarea id="text-input" rows="3" spellcheck="false"
                            prop:value=move || state.text.get()
                            on:input=move |ev| {
                                state.latency_ms.set(None);
                                state.input_at.set(Some(now_ms()));
                                // A new prompt: what was generated after the old one goes.
                                state.playing.set(false);
                                state.generated.set(Vec::new());
                                state.text.set(event_target_value(&ev));
                            }></textarea>
                        <div class="hint">
                            {move || format!("{} tokens", state.tokens.get().len())}
                            {move || (state.n_positions.get() > 0).then(|| format!(" · context holds {}", state.n_positions.get()))}
                        </div>
                        {move || state.input_error.get().map(|e| view! { <div class="input-error" role="alert">{e}</div> })}
                        <ol class="tokens" aria-label="Tokens">{token_chips}</ol>
                    </section>
                    <section class="panel next-panel">
                        <h2>"Next token"</h2>
                        <p class="formula">"softmax(logits / temperature) after the last token: the model's own distribution."</p>
                        <div class="temperature">
                            <label for="temperature">{move || format!("Temperature {:.2}", state.temperature.get())}</label>
                            <input id="temperature" type="range" min="0" max="2" step="0.05"
                                prop:value=move || state.temperature.get().to_string()
                                on:input=move |ev| {
                                    if let Ok(t) = event_target_value(&ev).parse::<f32>() {
                                        state.temperature.set(t);
                                    }
                                } />
                            <span class="hint">{move || if state.temperature.get() == 0.0 { "greedy: always the top token" } else { "low: sharper · high: flatter" }}</span>
                        </div>
                        {next_tokens}
                    </section>
                    <GenerateView state=state />
                    <HeadView state=state />
                    <section class="panel model-panel">
                        <h2>"Every layer and head"</h2>
                        <p class="formula">"Softmax weights of each head (columns, H0 →) in each layer (rows, L0 ↓). Click one to open it."</p>
                        <div class="grid-wrap">{grid_canvas(grid_ref, true)}{grid_canvas(grid_2d, false)}</div>
                        <p class="hint">{move || format!("Open: layer {}, head {} (framed).", state.layer.get(), state.head.get())}</p>
                    </section>
                </div>
                <div class="column wide-column">
                <section class="panel attention-panel">
                    <div class="controls">
                        <div class="control"><span class="control-label">"Layer"</span>
                            <div class="segs" role="group" aria-label="Layer">{layer_buttons}</div></div>
                        <div class="control"><span class="control-label">"Head"</span>
                            <div class="segs heads" role="group" aria-label="Attention head">{head_buttons}</div></div>
                        <div class="control"><span class="control-label">"Mask"</span>
                            <div class="segs" role="group" aria-label="Attention mask">
                                {mask_button("causal", "Causal")}
                                {mask_button("bidirectional", "Bidirectional")}
                                {mask_button("window", "Window")}
                            </div>
                            {move || matches!(state.mask.get(), Mask::Window(_)).then(|| view! {
                                <input class="window-slider" type="range" min="1" max="16" step="1" aria-label="Window width"
                                    prop:value=move || state.window.get().to_string()
                                    on:input=move |ev| {
                                        if let Ok(w) = event_target_value(&ev).parse::<u32>() {
                                            state.window.set(w.max(1));
                                            state.mask.set(Mask::Window(w.max(1)));
                                        }
                                    } />
                                <span class="hint">{move || format!("width {}", state.window.get())}</span>
                            })}
                        </div>
                    </div>
                    <p class="mask-note">{move || mask_sentence(state.mask.get())}</p>
                    <div class="stepper">
                        <button class="nav" aria-label="Previous stage" on:click=move |_| state.step_stage(-1)
                            disabled=move || state.stage.get() == AttentionStage::ALL[0]>"‹"</button>
                        <div class="segs stages" role="group" aria-label="Attention stage (arrow keys step)" on:keydown=on_stage_key>
                            {stage_buttons}
                        </div>
                        <button class="nav" aria-label="Next stage" on:click=move |_| state.step_stage(1)
                            disabled=move || state.stage.get() == AttentionStage::ALL[7]>"›"</button>
                    </div>
                    <h2 class="stage-title">
                        {move || format!("{} · layer {} · head {}", state.stage.get().title(), state.layer.get(), state.head.get())}
                    </h2>
                    <p class="formula" data-testid="caption">{move || state.stage.get().caption()}</p>
                    <div class="heatmap" class:wide=move || !state.stage.get().square()>
                        <div class="corner"></div>
                        {labels("col")}
                        {labels("row")}
                        {stage_canvas(stage_ref, true)}
                        {stage_canvas(stage_2d, false)}
                    </div>
                    <div class="readout" aria-live="polite" data-testid="readout">
                        {readout}
                        {move || state.locked.get().then(|| view! {
                            <button class="unlock" on:click=move |_| state.locked.set(false)>"Unlock"</button>
                        })}
                    </div>
                    <div class="export" role="group" aria-label="Export this view">
                        <span class="control-label">"Export"</span>
                        {Format::ALL.into_iter().map(|f| view! {
                            <button class="seg export-button" data-export=f.label().split(' ').next().unwrap_or_default().to_lowercase()
                                on:click=move |_| spawn_local(async move {
                                    match export::export(state, f).await {
                                        Ok(name) => state.export_note.set(Some(format!("Saved {name}"))),
                                        Err(e) => state.export_note.set(Some(format!("Export failed: {e}"))),
                                    }
                                })>{f.label()}</button>
                        }).collect_view()}
                        <span class="hint" data-testid="export-note">{move || state.export_note.get()}</span>
                    </div>
                    <div class="legend">
                        {legend}
                        {move || state.stage.get().shows_mask().then(|| view! {
                            <span class="swatch masked" aria-hidden="true"></span><span>"masked"</span>
                        })}
                    </div>
                </section>
                <BlockView state=state gpu_ref=block_ref cpu_ref=block_2d />
                <TokenizerView state=state />
                <CostView state=state />
                <DilutionView state=state />
                </div>
            </main>
        </div>
    }
}
