//! The model view: every layer × head's softmax weights as small maps, drawn
//! in one render pass from the GPU buffers (or painted from the CPU trace);
//! click one to open it in the stage heatmap.

use leptos::prelude::*;

use super::Terms;

use crate::render::layout::{grid_cell_at, GridShape};
use crate::ui::backend::{Backend, CanvasPair};
use crate::ui::state::PageState;
use crate::ui::web::dom::{self, device_pixel_ratio, event_canvas};
use crate::ui::web::visible::on_screen;

#[component]
pub fn ModelGridPanel() -> impl IntoView {
    let state = PageState::from_context();
    let backend = Backend::from_context();
    let s = state.selection;
    let gpu_ref = NodeRef::<leptos::html::Canvas>::new();
    let cpu_ref = NodeRef::<leptos::html::Canvas>::new();
    let redraw = move || {
        let (Some(gpu), Some(cpu)) = (gpu_ref.get_untracked(), cpu_ref.get_untracked()) else { return };
        let selected = (s.layer.get_untracked(), s.head.get_untracked());
        if let Err(e) = backend.draw_grid(&CanvasPair { gpu, cpu }, selected) {
            log::warn!("model view: {e}");
        }
    };
    // Drawn only while on screen: a keystroke does not pay for a grid scrolled away.
    let panel = NodeRef::<leptos::html::Section>::new();
    let on_view = on_screen(panel);
    Effect::new(move |_| {
        state.outputs.runs.track();
        backend.resized.track();
        state.status.on_gpu.track();
        s.layer.track();
        s.head.track();
        if on_view.get() && gpu_ref.get().is_some() && cpu_ref.get().is_some() {
            redraw();
        }
    });
    let _ = window_event_listener(leptos::ev::resize, move |_| redraw());

    let on_click = move |ev: web_sys::MouseEvent| {
        let Some(canvas) = event_canvas(&ev) else { return };
        let dpr = device_pixel_ratio();
        let size = (canvas.width(), canvas.height());
        let (x, y) = ((ev.offset_x() as f64 * dpr) as f32, (ev.offset_y() as f64 * dpr) as f32);
        if let Some((layer, head)) = grid_cell_at(size, state.grid_shape(), (x, y)) {
            s.layer.set(layer);
            s.head.set(head);
        }
    };
    // The keyboard: arrows choose the layer (↑↓) and head (←→); Enter opens it in the attention heatmap.
    let on_key = move |ev: web_sys::KeyboardEvent| {
        let (n_layer, n_head, _, _) = state.shape();
        if n_layer == 0 || n_head == 0 {
            return;
        }
        let (layer, head) = (s.layer.get_untracked(), s.head.get_untracked());
        match ev.key().as_str() {
            "ArrowUp" => s.layer.set(layer.saturating_sub(1)),
            "ArrowDown" => s.layer.set((layer + 1).min(n_layer - 1)),
            "ArrowLeft" => s.head.set(head.saturating_sub(1)),
            "ArrowRight" => s.head.set((head + 1).min(n_head - 1)),
            "Home" => s.head.set(0),
            "End" => s.head.set(n_head - 1),
            "Enter" | " " => dom::jump_to(".attention-panel"),
            _ => return,
        }
        ev.prevent_default();
    };
    let canvas = move |node_ref: NodeRef<leptos::html::Canvas>, gpu: bool| {
        view! {
            // As wide as the model has heads and as tall as it has layers: no empty rows.
            <canvas node_ref=node_ref class="grid-canvas"
                style:aspect-ratio=move || format!("{}", state.grid_shape().aspect())
                class:off=move || state.status.on_gpu.get() != gpu
                tabindex=move || if state.status.on_gpu.get() == gpu { "0" } else { "-1" }
                aria-label=move || format!(
                    "Attention weights of every layer (rows) and head (columns). Layer {}, head {} is open: \
                     arrow keys choose another, Enter shows it in the attention heatmap.",
                    s.layer.get(),
                    s.head.get()
                )
                on:click=on_click on:keydown=on_key></canvas>
        }
    };

    view! {
        <section class="panel model-panel" node_ref=panel>
            <h2 class="panel-heading nav-target" tabindex="-1">"Every layer and head"</h2>
            <p class="formula">"Attention weights A of each head (columns, H0 →) in each layer (rows, L0 ↓). Click one, or focus the \
                grid and use the arrow keys, to open it."</p>
            {move || grouping_note(state.grid_shape())}
            <div class="grid-frame"
                style:max-width=move || format!("calc(2.2rem + min(420px, {:.3} * 1000px))", state.grid_shape().aspect())>
                <div class="grid-heads" aria-hidden="true">{move || head_labels(state.grid_shape())}</div>
                <div class="grid-layers" aria-hidden="true">{move || layer_labels(state.grid_shape())}</div>
                <div class="grid-wrap">{canvas(gpu_ref, true)}{canvas(cpu_ref, false)}<super::FinderOverlay on_view=on_view /></div>
            </div>
            <super::FinderLegend />
            <p class="hint">{move || format!("Open: layer {}, head {} (framed).", s.layer.get(), s.head.get())}</p>
            <Terms keys=crate::glossary::panel::MODEL_GRID.to_vec() />
        </section>
    }
}

/// A line naming the KV groups when heads share them.
fn grouping_note(shape: GridShape) -> Option<impl IntoView> {
    shape.grouped().then(|| {
        let groups = shape.heads / shape.kv_group;
        let spans: Vec<String> =
            (0..groups).map(|g| format!("H{}–{}", g * shape.kv_group, (g + 1) * shape.kv_group - 1)).collect();
        view! {
            <p class="hint grid-groups-note">{format!(
                "{} query heads on {groups} KV heads: the heads of one group ({}) share K and V and sit together.",
                shape.heads,
                spans.join(" · "),
            )}</p>
        }
    })
}

/// Head labels over the columns, thinned to every 4th past 16 heads (and a band per KV group when heads are grouped).
fn head_labels(shape: GridShape) -> impl IntoView {
    let cols = shape.column_fractions();
    let bands = shape.grouped().then(|| {
        (0..shape.heads / shape.kv_group)
            .map(|g| {
                let (first, last) = (cols[g * shape.kv_group], cols[(g + 1) * shape.kv_group - 1]);
                view! {
                    <span class="grid-band" style:left=format!("{:.3}%", first.0 * 100.0)
                        style:width=format!("{:.3}%", (last.0 + last.1 - first.0) * 100.0)>{format!("KV {g}")}</span>
                }
            })
            .collect_view()
    });
    let step = if shape.heads > 16 { 4 } else { 1 };
    let heads = cols
        .iter()
        .enumerate()
        .filter(|&(h, _)| h % step == 0)
        .map(|(h, &(left, width))| {
            view! {
                <span class="grid-label" style:left=format!("{:.3}%", (left + width / 2.0) * 100.0)>{format!("H{h}")}</span>
            }
        })
        .collect_view();
    view! { <div class="grid-bands">{bands}</div><div class="grid-head-row">{heads}</div> }
}

/// Layer labels beside the rows, thinned to every 5th when rows are many (the first and last always).
fn layer_labels(shape: GridShape) -> impl IntoView {
    let step = if shape.layers > 16 { 5 } else { 1 };
    shape
        .row_fractions()
        .into_iter()
        .enumerate()
        .filter(|&(l, _)| l % step == 0 || l + 1 == shape.layers)
        .map(|(l, (top, height))| {
            view! {
                <span class="grid-label" style:top=format!("{:.3}%", (top + height / 2.0) * 100.0)>{format!("L{l}")}</span>
            }
        })
        .collect_view()
}
