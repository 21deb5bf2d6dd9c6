//! The model view: every layer × head's softmax weights as small maps, drawn
//! in one render pass from the GPU buffers (or painted from the CPU trace);
//! click one to open it in the stage heatmap.

use leptos::prelude::*;

use crate::render::layout::grid_cell_at;
use crate::ui::backend::{Backend, CanvasPair};
use crate::ui::state::PageState;
use crate::ui::web::dom::{device_pixel_ratio, event_canvas};

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
    Effect::new(move |_| {
        state.outputs.runs.track();
        state.status.on_gpu.track();
        s.layer.track();
        s.head.track();
        if gpu_ref.get().is_some() && cpu_ref.get().is_some() {
            redraw();
        }
    });
    let _ = window_event_listener(leptos::ev::resize, move |_| redraw());

    let on_click = move |ev: web_sys::MouseEvent| {
        let Some(canvas) = event_canvas(&ev) else { return };
        let dpr = device_pixel_ratio();
        let size = (canvas.width(), canvas.height());
        let (x, y) = ((ev.offset_x() as f64 * dpr) as f32, (ev.offset_y() as f64 * dpr) as f32);
        let (n_layer, n_head, _, _) = state.shape();
        if let Some((layer, head)) = grid_cell_at(size, n_layer, n_head, (x, y)) {
            s.layer.set(layer);
            s.head.set(head);
        }
    };
    let canvas = move |node_ref: NodeRef<leptos::html::Canvas>, gpu: bool| {
        view! {
            // As wide as the model has heads and as tall as it has layers: no empty rows.
            <canvas node_ref=node_ref class="grid-canvas"
                style:aspect-ratio=move || match state.shape() {
                    (0, ..) | (_, 0, ..) => "4 / 3".to_owned(),
                    (layers, heads, ..) => format!("{heads} / {layers}"),
                }
                class:off=move || state.status.on_gpu.get() != gpu
                aria-label="Softmax weights of every layer (rows) and head (columns); click one to select it"
                on:click=on_click></canvas>
        }
    };

    view! {
        <section class="panel model-panel">
            <h2 class="panel-heading nav-target" tabindex="-1">"Every layer and head"</h2>
            <p class="formula">"Softmax weights of each head (columns, H0 →) in each layer (rows, L0 ↓). Click one to open it."</p>
            <div class="grid-wrap">{canvas(gpu_ref, true)}{canvas(cpu_ref, false)}</div>
            <p class="hint">{move || format!("Open: layer {}, head {} (framed).", s.layer.get(), s.head.get())}</p>
        </section>
    }
}
