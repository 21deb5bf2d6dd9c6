//! The block view: the stack of blocks editing one shared residual stream.
//! Every token's ‖x‖ after the embeddings and after each attention and MLP
//! half of every block, then, for one token (the focused row, else the last)
//! in the selected layer, its vector going into ln_1, coming out of it, and
//! its MLP activations with the most active neurons.

use leptos::prelude::*;
use leptos::task::spawn_local;

use super::app::AppState;
use super::host::{host, BLOCK_PANELS};
use super::{event_canvas, visible};
use crate::engine::residual::{residual_point_name, residual_points};

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
pub fn block_token(state: AppState) -> Option<usize> {
    let t = state.shown_tokens.get();
    (t > 0).then(|| state.hover.get().map_or(t - 1, |(r, _)| r.min(t - 1)))
}

#[component]
pub fn BlockView(
    state: AppState,
    gpu_ref: NodeRef<leptos::html::Canvas>,
    cpu_ref: NodeRef<leptos::html::Canvas>,
) -> impl IntoView {
    let norm_hover = RwSignal::new(None::<(usize, usize)>);
    let readout = RwSignal::new(None::<BlockReadout>);
    let norm_value = RwSignal::new(None::<(usize, usize, f32)>);

    // The token changes far less often than the focused cell: only then redraw and re-read.
    let token = Memo::new(move |_| block_token(state));
    Effect::new(move |_| {
        state.runs.track();
        let layer = state.layer.get();
        let hover = norm_hover.get();
        let canvas = if state.on_gpu.get() { gpu_ref.get() } else { cpu_ref.get() };
        if let (Some(canvas), Some(host), Some(token)) = (canvas, host(), token.get()) {
            host.draw_block(&canvas, layer, token, hover);
        }
    });
    // The token's most active neurons: its n_inner activations read once per run, layer and token.
    Effect::new(move |_| {
        state.runs.track();
        let layer = state.layer.get();
        let (Some(host), Some(token)) = (host(), token.get()) else { return };
        let run = state.runs.get_untracked();
        spawn_local(async move {
            match host.mlp_top(layer, token, TOP_NEURONS).await {
                Ok(neurons) if state.runs.get_untracked() == run && state.layer.get_untracked() == layer => {
                    readout.set(Some(BlockReadout { run, layer, token, neurons }));
                }
                Ok(_) => {}
                Err(e) => log::warn!("block view: {e}"),
            }
        });
    });
    // A hovered norm: 4 bytes.
    Effect::new(move |_| {
        state.runs.track();
        let Some((point, tok)) = norm_hover.get() else { return norm_value.set(None) };
        let Some(host) = host() else { return };
        spawn_local(async move {
            match host.read_norm(point, tok).await {
                Ok(v) if norm_hover.get_untracked() == Some((point, tok)) => norm_value.set(Some((point, tok, v))),
                Ok(_) => {}
                Err(e) => log::warn!("block view: {e}"),
            }
        });
    });

    let on_move = move |ev: web_sys::MouseEvent| {
        let Some(canvas) = event_canvas(&ev) else { return };
        let (w, h) = (canvas.client_width() as f32, canvas.client_height() as f32);
        let t = state.shown_tokens.get_untracked();
        let points = residual_points(state.n_layer.get_untracked());
        let [_, _, pw, ph] = BLOCK_PANELS[0];
        let (x, y) = (ev.offset_x() as f32 / w.max(1.0), ev.offset_y() as f32 / h.max(1.0));
        let cell = (t > 0 && x < pw && y < ph)
            .then(|| (((y / ph) * points as f32) as usize, ((x / pw) * t as f32) as usize))
            .filter(|&(p, c)| p < points && c < t);
        if cell != norm_hover.get_untracked() {
            norm_hover.set(cell);
        }
    };

    let canvas = move |node_ref: NodeRef<leptos::html::Canvas>, gpu: bool| {
        view! {
            <canvas node_ref=node_ref class="block-canvas" class:off=move || state.on_gpu.get() != gpu
                aria-label="Residual norms of every token through the blocks, then the focused token's layernorm input, output and MLP activations"
                on:mousemove=on_move on:mouseleave=move |_| norm_hover.set(None)></canvas>
        }
    };

    let point_labels = move || {
        (0..residual_points(state.n_layer.get()))
            .map(|p| view! { <span>{residual_point_name(p)}</span> })
            .collect_view()
    };
    let token_text = move |i: usize| state.tokens.get().get(i).map(|t| visible(&t.text)).unwrap_or_default();
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
            <h2>"The residual stream"</h2>
            <p class="formula">
                "x ← x + attention(ln₁(x)); x ← x + MLP(ln₂(x)): every block adds to one shared stream. "
                "Top: each token's ‖x‖ (columns) after each step (rows). Below, for "
                {move || block_token(state).map(|t| format!("“{}” (token {t})", token_text(t))).unwrap_or_default()}
                {move || format!(" in layer {}: ", state.layer.get())}
                "its vector into ln₁, out of it (mean 0, variance 1, then scaled), and its MLP activations. "
                "Focus a heatmap row to pick the token."
            </p>
            <div class="block-wrap">
                <div class="block-labels">
                    <div class="point-labels" style:height=format!("{}%", BLOCK_PANELS[0][3] * 100.0)>{point_labels}</div>
                    <span class="strip-label" style:top=format!("{}%", (BLOCK_PANELS[1][1] + BLOCK_PANELS[1][3] / 2.0) * 100.0)>"into ln₁"</span>
                    <span class="strip-label" style:top=format!("{}%", (BLOCK_PANELS[2][1] + BLOCK_PANELS[2][3] / 2.0) * 100.0)>"ln₁ out"</span>
                    <span class="strip-label" style:top=format!("{}%", (BLOCK_PANELS[3][1] + BLOCK_PANELS[3][3] / 2.0) * 100.0)>"MLP"</span>
                </div>
                {canvas(gpu_ref, true)}
                {canvas(cpu_ref, false)}
            </div>
            {describe}
        </section>
    }
}
