//! The attention panel: layer, head and mask choices, the stage stepper for
//! the selected head, and the stage's heatmap drawn from the backend's own
//! numbers (hover to read a cell, click or Enter to lock it), with its axis
//! labels, readout, colour legend and export buttons.

use leptos::prelude::*;

use super::Terms;
use leptos::task::spawn_local;

use super::zoom::{zoom_by, ZoomBar, STEP};
use crate::engine::{AttentionStage, Mask};
use crate::render::layout::{cell_at, label_font_px, move_cell, LabelSizes, MapWindow};

/// Narrower than this (CSS pixels) is a phone: its labels stay at 11 px or hide.
const NARROW_PX: f64 = 700.0;
use crate::render::text::visible;
use crate::ui::backend::{spawn_latest, Backend, CanvasPair};
use crate::ui::state::{CellValue, Legend, PageState};
use crate::ui::web::dom::{self, event_canvas, now_ms};
use crate::ui::web::export::{self, Format};

#[component]
pub fn AttentionPanel() -> impl IntoView {
    let state = PageState::from_context();
    let backend = Backend::from_context();
    let (s, focus, outputs) = (state.selection, state.focus, state.outputs);
    let gpu_ref = NodeRef::<leptos::html::Canvas>::new();
    let cpu_ref = NodeRef::<leptos::html::Canvas>::new();
    let canvases = move || Some(CanvasPair { gpu: gpu_ref.get_untracked()?, cpu: cpu_ref.get_untracked()? });

    // The map's width in CSS pixels, which sizes its axis labels.
    let map_px = RwSignal::new(0.0f64);
    // The zoomed part of the map (`None`: all of it); cells keep the whole map's coordinates.
    let zoom = RwSignal::new(None::<MapWindow>);
    let window = move || {
        let dims = state.dims(s.stage.get());
        zoom.get().map_or(MapWindow::full(dims), |w| w.clamped(dims))
    };
    // A drag in progress: where it started (CSS pixels) and the window then; whether it moved.
    let drag = StoredValue::new(None::<((i32, i32), MapWindow)>);
    let dragged = StoredValue::new(false);
    // A large map the CPU computes (the scores; the weights of a long text's trace): computed a piece
    // of rows at a time first, then drawn (`computed` bumped). The run and view it is computing for.
    let computed = RwSignal::new(0u32);
    let computing = StoredValue::new(None::<(u64, crate::ui::state::View)>);
    // Draws the stage heatmap, times the input that led to it, and reads its colour range.
    let draw = move || {
        let Some(canvases) = canvases() else { return };
        let view = state.view_untracked();
        if backend.map_to_compute(view) {
            let key = (outputs.runs.get_untracked(), view);
            if computing.get_value() != Some(key) {
                computing.set_value(Some(key));
                spawn_latest(
                    "stage map",
                    move || (outputs.runs.get(), state.view()),
                    backend.compute_map(view, true),
                    move |_| {
                        computing.set_value(None);
                        computed.update(|c| *c += 1);
                    },
                );
            }
            return;
        }
        if let Err(e) = backend.draw_stage(&canvases, view, focus.cell.get_untracked(), untrack(window)) {
            return log::warn!("stage heatmap: {e}");
        }
        let shown = if state.status.on_gpu.get_untracked() { &canvases.gpu } else { &canvases.cpu };
        let px = f64::from(backend.css_size(shown).0);
        if px > 0.0 && (px - map_px.get_untracked()).abs() >= 1.0 {
            map_px.set(px);
        }
        state.telemetry.renders.update(|r| *r += 1);
        let telemetry = state.telemetry;
        if let Some((for_run, at)) = telemetry.timed_run.get_untracked() {
            if for_run == outputs.runs.get_untracked() {
                // Input event → the GPU has finished the run and this draw of it.
                telemetry.timed_run.set(None);
                let latency = telemetry.latency_ms;
                backend.when_drawn(move || latency.set(Some(now_ms() - at)));
            }
        }
        // The range changes with the run and the view, not with the focused cell: read it once for them.
        let run = outputs.runs.get_untracked();
        if outputs.legend.get_untracked().is_some_and(|l| (l.run, l.view) == (run, view)) {
            return;
        }
        spawn_latest(
            "legend",
            move || (outputs.runs.get(), state.view()),
            backend.read_range(view),
            move |(lo, hi)| outputs.legend.set(Some(Legend { view, run, lo, hi })),
        );
    };
    // Reads the focused cell's value back (4 bytes on the GPU).
    let read_focused = move || {
        let Some((row, col)) = focus.cell.get_untracked() else { return };
        let (view, run) = (state.view_untracked(), outputs.runs.get_untracked());
        spawn_latest(
            "hover read",
            move || (outputs.runs.get(), state.view()),
            backend.read_cell(view, row, col),
            move |value| outputs.hover_value.set(Some(CellValue { view, row, col, run, value })),
        );
    };
    // Redraw when the run, view, backend or focused cell changes, and read what it shows.
    Effect::new(move |_| {
        outputs.runs.track();
        backend.resized.track();
        focus.cell.track();
        zoom.track();
        state.status.on_gpu.track();
        computed.track();
        let _ = state.view();
        if gpu_ref.get().is_some() && cpu_ref.get().is_some() {
            draw();
            read_focused();
        }
    });
    let _ = window_event_listener(leptos::ev::resize, move |_| draw());

    let at_pointer = move |ev: &web_sys::MouseEvent| {
        let canvas = event_canvas(ev)?;
        let css = (canvas.client_width() as f64, canvas.client_height() as f64);
        let w = untrack(window);
        cell_at((w.rows, w.cols), css, (ev.offset_x() as f64, ev.offset_y() as f64)).map(|c| w.to_map(c))
    };
    let on_move = move |ev: web_sys::MouseEvent| {
        // A drag with the button down moves a zoomed window by whole cells.
        if let (Some(((x0, y0), from)), true) = (drag.get_value(), ev.buttons() & 1 == 1) {
            let Some(canvas) = event_canvas(&ev) else { return };
            let (cw, ch) = (
                f64::from(canvas.client_width()) / from.cols.max(1) as f64,
                f64::from(canvas.client_height()) / from.rows.max(1) as f64,
            );
            let by = (
                -((f64::from(ev.client_y() - y0) / ch.max(1e-6)).round() as isize),
                -((f64::from(ev.client_x() - x0) / cw.max(1e-6)).round() as isize),
            );
            if by != (0, 0) {
                dragged.set_value(true);
                zoom.set(Some(from.panned(state.dims(s.stage.get_untracked()), by)));
            }
            return;
        }
        if focus.locked.get_untracked() {
            return;
        }
        let cell = at_pointer(&ev);
        if cell != focus.cell.get_untracked() {
            focus.cell.set(cell);
        }
    };
    let on_down = move |ev: web_sys::MouseEvent| {
        dragged.set_value(false);
        drag.set_value(zoom.get_untracked().map(|w| ((ev.client_x(), ev.client_y()), w)));
    };
    // Ctrl (or ⌘) + wheel zooms about the cell under the pointer; the plain wheel scrolls the page.
    let on_wheel = move |ev: web_sys::WheelEvent| {
        if !(ev.ctrl_key() || ev.meta_key()) || ev.delta_y() == 0.0 {
            return;
        }
        ev.prevent_default();
        let factor = if ev.delta_y() < 0.0 { 1.25 } else { 0.8 };
        let anchor = at_pointer(&ev);
        zoom.set(zoom_by(zoom.get_untracked(), state.dims(s.stage.get_untracked()), factor, anchor));
    };
    let on_click = move |ev: web_sys::MouseEvent| {
        drag.set_value(None);
        if dragged.get_value() {
            dragged.set_value(false);
            return; // the end of a drag, not a click on a cell
        }
        let cell = at_pointer(&ev);
        if focus.locked.get_untracked() && cell == focus.cell.get_untracked() {
            focus.locked.set(false);
        } else if cell.is_some() {
            focus.cell.set(cell);
            focus.locked.set(true);
        }
    };
    let on_key = move |ev: web_sys::KeyboardEvent| {
        if s.present.get_untracked().is_some() {
            return; // presenter mode's keys (web::present)
        }
        let dims = state.dims(s.stage.get_untracked());
        if dims.0 == 0 || dims.1 == 0 {
            return;
        }
        match ev.key().as_str() {
            "Enter" | " " => {
                ev.prevent_default();
                focus.locked.update(|l| *l = !*l && focus.cell.get_untracked().is_some());
            }
            "Escape" => {
                focus.locked.set(false);
                focus.cell.set(None);
            }
            "+" | "=" | "-" | "0" => {
                ev.prevent_default();
                let factor = match ev.key().as_str() {
                    "+" | "=" => STEP,
                    "-" => 1.0 / STEP,
                    _ => 0.0,
                };
                let next =
                    (factor > 0.0).then(|| zoom_by(zoom.get_untracked(), dims, factor, focus.cell.get_untracked()));
                zoom.set(next.flatten());
            }
            key => {
                if let Some(cell) = move_cell(focus.cell.get_untracked(), key, dims) {
                    ev.prevent_default();
                    focus.cell.set(Some(cell));
                    // The window follows the focused cell.
                    if let Some(w) = zoom.get_untracked() {
                        zoom.set(Some(w.clamped(dims).following(dims, cell)));
                    }
                }
            }
        }
    };

    let labels = move |axis: &'static str| {
        // The window's labels along this axis and their type size (`None`:
        // too small to read, so none are made). A keystroke that adds a
        // token makes one label, not the whole axis again.
        let shown = Memo::new(move |_| {
            let tokens = outputs.tokens.get();
            let t = outputs.shown_tokens.get();
            let stage = s.stage.get();
            // Only the window's rows or columns: zooming in makes room for them.
            let w = window();
            let (first, count) = if axis == "row" { (w.row0, w.rows) } else { (w.col0, w.cols) };
            let texts: Vec<String> = if tokens.len() != t {
                Vec::new()
            } else if axis == "row" || stage.square() {
                tokens.iter().skip(first).take(count).map(|tok| visible(&tok.text)).collect()
            } else {
                (first..first + count).map(|j| j.to_string()).collect()
            };
            let sizes = if s.present.get().is_some() {
                LabelSizes::PRESENT
            } else {
                LabelSizes::page(
                    web_sys::window()
                        .and_then(|w| w.inner_width().ok())
                        .and_then(|w| w.as_f64())
                        .is_some_and(|w| w < NARROW_PX),
                )
            };
            let font = label_font_px(texts.len(), map_px.get(), sizes);
            let items: Vec<(usize, String)> = if font.is_some() {
                texts.into_iter().enumerate().map(|(i, text)| (i + first, text)).collect()
            } else {
                Vec::new()
            };
            (items, font)
        });
        let label = move |(i, text): (usize, String)| {
            let active = move || focus.cell.get().is_some_and(|(r, c)| if axis == "row" { r == i } else { c == i });
            view! { <span class="label" class:active=active>{text}</span> }
        };
        view! {
            <div class=format!("labels {axis}-labels") class:hidden=move || shown.with(|(_, font)| font.is_none())
                style:font-size=move || shown.with(|(_, font)| font.map(|px| format!("{px}px")).unwrap_or_default())>
                <For each=move || shown.with(|(items, _)| items.clone()) key=|item| item.clone() children=label />
            </div>
        }
    };

    let readout = move || {
        let tokens = outputs.tokens.get();
        let token_text = |i: usize| tokens.get(i).map(|t| visible(&t.text)).unwrap_or_default();
        let view = state.view();
        match (focus.cell.get(), outputs.hover_value.get()) {
            (Some((row, col)), Some(v))
                if (v.row, v.col) == (row, col) && v.view == view && v.run == outputs.runs.get() =>
            {
                let value = if v.value == f32::NEG_INFINITY { "−∞".to_owned() } else { format!("{:.6}", v.value) };
                if view.stage.square() {
                    let what = if !s.mask.get().allows(row, col) { " (masked)" } else { "" };
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
            (None, _) => "Point at or tap a cell to read its exact value; click to lock it. Or focus the map and use \
                          the arrow keys (Enter locks)."
                .into(),
        }
    };

    // The readout floats next to the focused cell (pointer, keyboard or presenter), so the
    // value is where the eye is; the line under the map says the same for screen readers.
    let tip = move || {
        let (row, col) = window().to_local(focus.cell.get()?)?;
        outputs.runs.track();
        let w = window();
        let (rows, cols) = (w.rows, w.cols);
        let canvas = if state.status.on_gpu.get() { gpu_ref.get() } else { cpu_ref.get() }?;
        let rect = canvas.get_bounding_client_rect();
        let window = web_sys::window()?;
        let (sx, sy) = (window.scroll_x().ok()?, window.scroll_y().ok()?);
        let (vw, vh) = (window.inner_width().ok()?.as_f64()?, window.inner_height().ok()?.as_f64()?);
        if rows == 0 || cols == 0 || rect.width() <= 0.0 || row >= rows || col >= cols {
            return None;
        }
        let (cw, ch) = (rect.width() / cols as f64, rect.height() / rows as f64);
        let x = rect.left() + (col as f64 + 0.5) * cw;
        // Below the cell, or above it near the bottom of the window.
        let above = rect.top() + (row + 1) as f64 * ch + 90.0 > vh;
        let y = if above { rect.top() + row as f64 * ch - 6.0 } else { rect.top() + (row + 1) as f64 * ch + 6.0 };
        let left = (x - 40.0).min(vw - 330.0).max(4.0) + sx;
        Some(view! {
            <div class="readout-tip" class:above=above role="tooltip" data-testid="readout-tip" aria-hidden="true"
                style:left=format!("{left:.0}px") style:top=format!("{:.0}px", y + sy)>{readout}</div>
        })
    };

    let legend = move || {
        let view = state.view();
        let (lo, hi) = match outputs.legend.get() {
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

    let head_buttons = move || index_buttons("head-button", "H", state.shape().1, s.head);
    let layer_buttons = move || index_buttons("layer-button", "L", state.shape().0, s.layer);
    let stage_buttons = move || {
        state
            .stages()
            .iter()
            .copied()
            .enumerate()
            .map(|(i, stage)| {
                view! {
                    <button class="seg stage-button" class:active=move || s.stage.get() == stage
                        data-stage=stage.key()
                        aria-pressed=move || (s.stage.get() == stage).to_string()
                        on:click=move |_| state.select_stage(stage)>
                        <span class="step-no">{i + 1}</span>{stage.title()}
                    </button>
                }
            })
            .collect_view()
    };
    // The arrow keys step the stage and the focus follows it to its button.
    // On a phone the stages are one row that scrolls sideways: keep the current one in view.
    let stages_ref = NodeRef::<leptos::html::Div>::new();
    Effect::new(move |_| {
        let stage = s.stage.get();
        let Some(row) = stages_ref.get() else { return };
        if row.scroll_width() <= row.client_width() {
            return;
        }
        let button = row
            .query_selector(&format!(".stage-button[data-stage={}]", stage.key()))
            .ok()
            .flatten()
            .and_then(|b| wasm_bindgen::JsCast::dyn_into::<web_sys::HtmlElement>(b).ok());
        if let Some(b) = button {
            row.set_scroll_left(b.offset_left() - row.offset_left() - (row.client_width() - b.offset_width()) / 2);
        }
    });
    let on_stage_key = move |ev: web_sys::KeyboardEvent| {
        let by = match ev.key().as_str() {
            "ArrowLeft" => -1,
            "ArrowRight" => 1,
            _ => return,
        };
        ev.prevent_default();
        state.step_stage(by);
        dom::focus(&format!(".stage-button[data-stage={}]", s.stage.get_untracked().key()));
    };
    let mask_kind = move || match s.mask.get() {
        Mask::Causal => "causal",
        Mask::Bidirectional => "bidirectional",
        Mask::Window(_) => "window",
    };
    let mask_button = move |kind: &'static str, label: &'static str| {
        view! {
            <button class="seg mask-button" data-mask=kind class:active=move || mask_kind() == kind
                aria-pressed=move || (mask_kind() == kind).to_string()
                on:click=move |_| s.mask.set(match kind {
                    "causal" => Mask::Causal,
                    "bidirectional" => Mask::Bidirectional,
                    _ => Mask::Window(s.window.get_untracked()),
                })>{label}</button>
        }
    };
    // Whether the window slider shows. A memo: the slider sets the mask on
    // every step of a drag, and the slider is built again only when the kind
    // of mask changes (rebuilt, the erased element's attributes are removed
    // and set again, `type` among them, which ends the drag).
    let windowed = Memo::new(move |_| matches!(s.mask.get(), Mask::Window(_)));
    let stage_canvas = move |node_ref: NodeRef<leptos::html::Canvas>, gpu: bool| {
        view! {
            <canvas node_ref=node_ref class="heatmap-canvas" tabindex="0"
                class:locked=move || focus.locked.get()
                class:off=move || state.status.on_gpu.get() != gpu
                aria-hidden=move || (state.status.on_gpu.get() != gpu).to_string()
                aria-label="Heatmap of the selected stage; arrow keys move the focused cell, Enter locks it"
                on:mousemove=on_move
                on:mousedown=on_down
                on:wheel=on_wheel
                on:click=on_click
                on:mouseleave=move |_| {
                    if !focus.locked.get_untracked() {
                        focus.cell.set(None);
                    }
                }
                on:keydown=on_key></canvas>
        }
    };

    view! {
        <section class="panel attention-panel">
            <h2 class="panel-heading nav-target" tabindex="-1">"Attention"</h2>
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
                    {move || windowed.get().then(|| view! {
                        <input class="window-slider" type="range" min="1" max="16" step="1" aria-label="Window width"
                            prop:value=move || s.window.get().to_string()
                            on:input=move |ev| {
                                if let Ok(w) = event_target_value(&ev).parse::<u32>() {
                                    s.window.set(w.max(1));
                                    s.mask.set(Mask::Window(w.max(1)));
                                }
                            } />
                        <span class="hint">{move || format!("width {}", s.window.get())}</span>
                    })}
                </div>
            </div>
            <p class="mask-note">{move || s.mask.get().explain()}</p>
            <div class="stepper">
                <button class="nav" aria-label="Previous stage" on:click=move |_| state.step_stage(-1)
                    disabled=move || state.stages().first() == Some(&s.stage.get())>"‹"</button>
                <div class="segs stages scroll-x" role="group" aria-label="Attention stage (arrow keys step)" on:keydown=on_stage_key
                    node_ref=stages_ref>
                    {stage_buttons}
                </div>
                <button class="nav" aria-label="Next stage" on:click=move |_| state.step_stage(1)
                    disabled=move || state.stages().last() == Some(&s.stage.get())>"›"</button>
            </div>
            <h2 class="stage-title">
                {move || format!("{} · layer {} · head {}", s.stage.get().title(), s.layer.get(), s.head.get())}
            </h2>
            <p class="formula" data-testid="caption">{move || s.stage.get().caption()}</p>
            {move || shared_kv_note(state)}
            {move || rope_note(state)}
            <Terms keys=Signal::derive(move || {
                let mut keys = crate::glossary::stage_terms(s.stage.get()).to_vec();
                keys.extend(crate::glossary::panel::ATTENTION.iter().filter(|k| !keys.contains(k)).collect::<Vec<_>>());
                keys
            }) />
            <div class="heatmap" class:wide=move || !s.stage.get().square()>
                <div class="corner"></div>
                {labels("col")}
                {labels("row")}
                {stage_canvas(gpu_ref, true)}
                {stage_canvas(cpu_ref, false)}
            </div>
            <ZoomBar zoom=zoom dims=Signal::derive(move || state.dims(s.stage.get())) anchor=focus.cell />
            {tip}
            <div class="readout" aria-live="polite" data-testid="readout">
                {readout}
                {move || focus.locked.get().then(|| view! {
                    <button class="unlock" on:click=move |_| focus.locked.set(false)>"Unlock"</button>
                })}
            </div>
            <div class="export" role="group" aria-label="Export this view">
                <span class="control-label">"Export"</span>
                {Format::ALL.into_iter().map(|f| view! {
                    <button class="seg export-button" data-export=f.label().split(' ').next().unwrap_or_default().to_lowercase()
                        on:click=move |_| spawn_local(async move {
                            let note = match export::export(state, backend, f).await {
                                Ok(name) => format!("Saved {name}"),
                                Err(e) => format!("Export failed: {e}"),
                            };
                            state.status.export_note.set(Some(note));
                        })>{f.label()}</button>
                }).collect_view()}
                <span class="hint" data-testid="export-note">{move || state.status.export_note.get()}</span>
            </div>
            <div class="legend">
                {legend}
                {move || s.stage.get().shows_mask().then(|| view! {
                    <span class="swatch masked" aria-hidden="true"></span><span>"masked"</span>
                })}
            </div>
        </section>
    }
}

/// On the K and V stages of a model with grouped KV heads: which query heads
/// read the same K and V as the one shown.
fn shared_kv_note(state: PageState) -> Option<impl IntoView> {
    let s = state.selection;
    let stage = s.stage.get();
    if !matches!(stage, AttentionStage::K | AttentionStage::KPreRope | AttentionStage::V) {
        return None;
    }
    let (n_head, n_kv_head) = state.status.config.with(|c| c.as_ref().map_or((0, 0), |c| (c.n_head, c.n_kv_head)));
    let head = s.head.get();
    let (first, last) = crate::engine::kv_sharers(n_head, n_kv_head, head)?;
    let group = n_head / n_kv_head.max(1);
    Some(view! {
        <p class="formula kv-shared" data-testid="kv-shared">{format!(
            "KV head {}, shared by query heads {first}–{last}: grouped-query attention keeps one {} for every {group} query heads.",
            head / group.max(1),
            if stage == AttentionStage::V { "V" } else { "K" },
        )}</p>
    })
}

/// On a RoPE model's Q and K: what is shown is after the rotation (the stages before it show it undone).
fn rope_note(state: PageState) -> Option<impl IntoView> {
    let stage = state.selection.stage.get();
    let rope = state.status.config.with(|c| c.as_ref().is_some_and(|c| c.rope_theta.is_some()));
    let words = match stage {
        AttentionStage::Q | AttentionStage::K if rope => {
            "After RoPE: each row turned by its position, pair by pair; this is what Q·Kᵀ multiplies."
        }
        AttentionStage::QPreRope | AttentionStage::KPreRope if !rope => {
            "This model learns its positions (added to the embeddings), so nothing is rotated: before is after."
        }
        _ => return None,
    };
    Some(view! { <p class="formula rope-note" data-testid="rope-note">{words}</p> })
}

/// One button per index `0..n` (layers or heads, labelled `prefix` + index), the `selected` one pressed.
fn index_buttons(class: &'static str, prefix: &'static str, n: usize, selected: RwSignal<usize>) -> impl IntoView {
    (0..n)
        .map(|i| {
            view! {
                <button class=format!("seg {class}") class:active=move || selected.get() == i
                    aria-pressed=move || (selected.get() == i).to_string()
                    on:click=move |_| selected.set(i)>{format!("{prefix}{i}")}</button>
            }
        })
        .collect_view()
}
