//! The block view: the stack of blocks editing one shared residual stream.
//! Every token's ‖x‖ after the embeddings and after each attention and MLP
//! half of every block, then, for one token (the focused row, else the last)
//! in the selected layer, its vector going into ln_1, coming out of it, and
//! its MLP activations with the most active neurons.

use leptos::prelude::*;

use crate::engine::residual::{residual_point_name, residual_points};
use crate::render::layout::{block_norm_cell_at, BLOCK_TILES};
use crate::render::text::visible;
use crate::ui::backend::{spawn_latest, Backend, CanvasPair};
use crate::ui::state::PageState;
use crate::ui::web::dom::event_canvas;

/// How many of the token's MLP neurons are listed.
const TOP_NEURONS: usize = 8;

/// A value read for the block view, with the run it came from.
#[derive(Debug, Clone, PartialEq)]
pub struct BlockReadout {
    pub run: u64,
    pub layer: usize,
    pub token: usize,
    pub neurons: Vec<(usize, f32)>,
}

/// The token the strips show: the focused row, else the last token.
pub fn block_token(state: PageState) -> Option<usize> {
    let t = state.outputs.shown_tokens.get();
    (t > 0).then(|| state.focus.cell.get().map_or(t - 1, |(r, _)| r.min(t - 1)))
}

#[component]
pub fn BlockPanel() -> impl IntoView {
    let state = PageState::from_context();
    let backend = Backend::from_context();
    let (runs, layer) = (state.outputs.runs, state.selection.layer);
    let gpu_ref = NodeRef::<leptos::html::Canvas>::new();
    let cpu_ref = NodeRef::<leptos::html::Canvas>::new();
    let norm_hover = RwSignal::new(None::<(usize, usize)>);
    let readout = RwSignal::new(None::<BlockReadout>);
    let norm_value = RwSignal::new(None::<(usize, usize, f32)>);

    // The token changes far less often than the focused cell: only then redraw and re-read.
    let token = Memo::new(move |_| block_token(state));
    Effect::new(move |_| {
        runs.track();
        state.status.on_gpu.track();
        let (layer, hover) = (layer.get(), norm_hover.get());
        let (Some(gpu), Some(cpu), Some(token)) = (gpu_ref.get(), cpu_ref.get(), token.get()) else { return };
        if let Err(e) = backend.draw_block(&CanvasPair { gpu, cpu }, layer, token, hover) {
            log::warn!("block view: {e}");
        }
    });
    // The token's most active neurons: its n_inner activations read once per run, layer and token.
    Effect::new(move |_| {
        let run = runs.get();
        let layer = layer.get();
        let Some(token) = token.get() else { return };
        spawn_latest(
            "block view",
            move || (runs.get(), state.selection.layer.get()),
            backend.mlp_top(layer, token, TOP_NEURONS),
            move |neurons| readout.set(Some(BlockReadout { run, layer, token, neurons })),
        );
    });
    // A hovered norm: 4 bytes.
    Effect::new(move |_| {
        runs.track();
        let Some((point, tok)) = norm_hover.get() else { return norm_value.set(None) };
        spawn_latest(
            "block view",
            move || (runs.get(), norm_hover.get()),
            backend.read_norm(point, tok),
            move |v| norm_value.set(Some((point, tok, v))),
        );
    });

    let on_move = move |ev: web_sys::MouseEvent| {
        let Some(canvas) = event_canvas(&ev) else { return };
        let (w, h) = (canvas.client_width() as f32, canvas.client_height() as f32);
        let t = state.outputs.shown_tokens.get_untracked();
        let points = residual_points(untrack(|| state.shape().0));
        let at = (ev.offset_x() as f32 / w.max(1.0), ev.offset_y() as f32 / h.max(1.0));
        let cell = block_norm_cell_at(points, t, at);
        if cell != norm_hover.get_untracked() {
            norm_hover.set(cell);
        }
    };

    let canvas = move |node_ref: NodeRef<leptos::html::Canvas>, gpu: bool| {
        view! {
            <canvas node_ref=node_ref class="block-canvas" class:off=move || state.status.on_gpu.get() != gpu
                aria-label="Residual norms of every token through the blocks, then the focused token's layernorm input, output and MLP activations"
                on:mousemove=on_move on:mouseleave=move |_| norm_hover.set(None)></canvas>
        }
    };

    let point_labels = move || {
        (0..residual_points(state.shape().0)).map(|p| view! { <span>{residual_point_name(p)}</span> }).collect_view()
    };
    let token_text = move |i: usize| state.outputs.tokens.get().get(i).map(|t| visible(&t.text)).unwrap_or_default();
    let describe = move || {
        let r = readout.get()?;
        let norm = norm_value.get().map(|(p, tok, v)| {
            format!("‖x‖ of “{}” (token {tok}) after {} = {v:.4}", token_text(tok), residual_point_name(p))
        });
        let neurons = r.neurons.iter().map(|(i, v)| format!("#{i} {v:.3}")).collect::<Vec<_>>().join(" · ");
        Some(view! {
            <div class="block-readout" data-testid="block-readout">
                <div>{norm.unwrap_or_else(|| "Hover the norms map to read a value.".into())}</div>
                <div>{format!("Most active MLP neurons of “{}” in layer {}: {neurons}", token_text(r.token), r.layer)}</div>
            </div>
        })
    };

    view! {
        <section class="panel block-panel">
            <h2 class="panel-heading nav-target" tabindex="-1">"Residual stream"</h2>
            <p class="formula">
                "x ← x + attention(ln₁(x)); x ← x + MLP(ln₂(x)): every block adds to one shared stream. "
                "Top: each token's ‖x‖ (columns) after each step (rows). Below, for "
                {move || block_token(state).map(|t| format!("“{}” (token {t})", token_text(t))).unwrap_or_default()}
                {move || format!(" in layer {}: ", layer.get())}
                "its vector into ln₁, out of it (mean 0, variance 1, then scaled), and its MLP activations. "
                "Focus a heatmap row to pick the token."
            </p>
            <div class="block-wrap">
                <div class="block-labels">
                    <div class="point-labels" style:height=format!("{}%", BLOCK_TILES[0][3] * 100.0)>{point_labels}</div>
                    <span class="strip-label" style:top=format!("{}%", (BLOCK_TILES[1][1] + BLOCK_TILES[1][3] / 2.0) * 100.0)>"into ln₁"</span>
                    <span class="strip-label" style:top=format!("{}%", (BLOCK_TILES[2][1] + BLOCK_TILES[2][3] / 2.0) * 100.0)>"ln₁ out"</span>
                    <span class="strip-label" style:top=format!("{}%", (BLOCK_TILES[3][1] + BLOCK_TILES[3][3] / 2.0) * 100.0)>"MLP"</span>
                </div>
                {canvas(gpu_ref, true)}
                {canvas(cpu_ref, false)}
            </div>
            {describe}
        </section>
    }
}
