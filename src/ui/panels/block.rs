//! The block view: the stack of blocks editing one shared residual stream.
//! Every token's ‖x‖ after the embeddings and after each attention and MLP
//! half of every block, then, for one token (the focused row, else the last)
//! in the selected layer, its vector going into ln_1, coming out of it, and
//! its MLP activations with the most active neurons.

use leptos::prelude::*;

use super::Terms;

use crate::engine::residual::{residual_point_name, residual_points};
use crate::render::layout::{block_norm_cell_at, BLOCK_TILES};
use crate::render::text::visible;
use crate::ui::backend::{spawn_latest, Backend, CanvasPair};
use crate::ui::state::PageState;
use crate::ui::web::dom::event_canvas;
use crate::ui::web::visible::{on_screen, while_on_screen};

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

/// Most token labels under the norms map (the rest thin out).
const MAX_COLUMN_LABELS: usize = 16;

/// The token the strips show: the one pointed at (or picked by keyboard) in
/// the panel's own norms map, else the one clicked there, else the focused
/// heatmap row, else the last token.
fn block_token(state: PageState, hovered: Option<usize>, picked: Option<usize>) -> Option<usize> {
    let t = state.outputs.shown_tokens.get();
    let own = hovered.or(picked).filter(|&i| i < t);
    (t > 0).then(|| own.unwrap_or_else(|| state.focus.cell.get().map_or(t - 1, |(r, _)| r.min(t - 1))))
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
    // A token clicked in the norms map stays picked until another is.
    let picked = RwSignal::new(None::<usize>);
    // The colour scale of the norms map: its smallest and largest ‖x‖, per run.
    let norm_range = RwSignal::new(None::<(u64, f32, f32)>);
    // Bumped when the CPU has summed a long run's norms in pieces (`Backend::compute_norms`).
    let norms_ready = RwSignal::new(0u32);
    let summing = StoredValue::new(None::<u64>);

    // The token changes far less often than the pointer: only then redraw and re-read.
    let token = Memo::new(move |_| block_token(state, norm_hover.get().map(|(_, tok)| tok), picked.get()));
    // Drawn and read only while on screen.
    let panel = NodeRef::<leptos::html::Section>::new();
    let on_view = on_screen(panel);
    // The tokens its labels name, followed only while on screen.
    let tokens = while_on_screen(on_view, move || state.outputs.tokens.get());
    Effect::new(move |_| {
        if !on_view.get() {
            return;
        }
        let run = runs.get();
        state.status.on_gpu.track();
        backend.resized.track();
        let (layer, hover) = (layer.get(), norm_hover.get());
        let (Some(gpu), Some(cpu), Some(token)) = (gpu_ref.get(), cpu_ref.get(), token.get()) else { return };
        norms_ready.track();
        if backend.norms_to_compute() {
            // A long run's norms on the CPU: summed a piece of tokens at a time first (once per
            // run, however often the pointer moves meanwhile), then drawn.
            if summing.get_value() != Some(run) {
                summing.set_value(Some(run));
                let done = move |()| {
                    summing.set_value(None);
                    norms_ready.update(|n| *n += 1);
                };
                spawn_latest("block view norms", move || runs.get(), backend.compute_norms(), done);
            }
            return;
        }
        if let Err(e) = backend.draw_block(&CanvasPair { gpu, cpu }, layer, token, hover) {
            log::warn!("block view: {e}");
            return;
        }
        if norm_range.get_untracked().is_none_or(|(r, ..)| r != run) {
            // The norms the draw just computed, for the scale (points × T floats).
            spawn_latest(
                "block view",
                move || runs.get(),
                backend.read_norms(),
                move |norms: Vec<f32>| {
                    let (lo, hi) =
                        norms.iter().fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), &v| (lo.min(v), hi.max(v)));
                    norm_range.set(lo.is_finite().then_some((run, lo, hi)));
                },
            );
        }
    });
    // The token's most active neurons: its n_inner activations read once per run, layer and token.
    Effect::new(move |_| {
        if !on_view.get() {
            return;
        }
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

    // The keyboard: ←/→ pick the token (column), ↑/↓ the point of the stream (row); Esc lets go.
    let on_key = move |ev: web_sys::KeyboardEvent| {
        let t = state.outputs.shown_tokens.get_untracked();
        let points = residual_points(untrack(|| state.shape().0));
        if t == 0 || points == 0 {
            return;
        }
        let (p, tok) = norm_hover.get_untracked().unwrap_or((0, token.get_untracked().unwrap_or(0)));
        let next = match ev.key().as_str() {
            "ArrowLeft" => (p, tok.saturating_sub(1)),
            "ArrowRight" => (p, (tok + 1).min(t - 1)),
            "ArrowUp" => (p.saturating_sub(1), tok),
            "ArrowDown" => ((p + 1).min(points - 1), tok),
            "Home" => (p, 0),
            "End" => (p, t - 1),
            "Escape" => {
                norm_hover.set(None);
                return picked.set(None);
            }
            _ => return,
        };
        ev.prevent_default();
        picked.set(Some(next.1));
        norm_hover.set(Some(next));
    };
    let canvas = move |node_ref: NodeRef<leptos::html::Canvas>, gpu: bool| {
        view! {
            <canvas node_ref=node_ref class="block-canvas" class:off=move || state.status.on_gpu.get() != gpu
                tabindex=move || if state.status.on_gpu.get() == gpu { "0" } else { "-1" }
                aria-label="Residual norms of every token (columns) after each step (rows), then the picked token's \
                    norm input, output and MLP activations. Arrow keys move over the norms; the column picks the token."
                on:mousemove=on_move on:mouseleave=move |_| norm_hover.set(None)
                on:click=move |_| picked.set(norm_hover.get_untracked().map(|(_, tok)| tok))
                on:keydown=on_key on:blur=move |_| norm_hover.set(None)></canvas>
        }
    };
    // Token labels under the norms map's columns, thinned to about MAX_COLUMN_LABELS; the picked one lit.
    let column_labels = move || {
        let tokens = tokens.get();
        let t = tokens.len();
        let every = t.div_ceil(MAX_COLUMN_LABELS).max(1);
        let shown = token.get();
        let [x0, _, w, _] = BLOCK_TILES[0];
        tokens
            .iter()
            .enumerate()
            .filter(|(i, _)| i % every == 0 || Some(*i) == shown)
            .map(|(i, tok)| {
                // Centred under its column; near an edge, aligned to it so it never runs off the map.
                let at = i as f32 / t as f32;
                let (left, edge) = match at {
                    a if a < 0.1 => ((x0 + a * w) * 100.0, "start"),
                    a if a > 0.85 => ((x0 + (i as f32 + 1.0) / t as f32 * w) * 100.0, "end"),
                    _ => ((x0 + (i as f32 + 0.5) / t as f32 * w) * 100.0, "middle"),
                };
                // As wide as the columns between two labels, so neighbours never overlap (the lit one may).
                let room = (every as f32 / t as f32 * w * 100.0 - 0.5).max(0.5);
                let active = Some(i) == shown;
                view! {
                    <span class=format!("block-col {edge}") class:active=active style:left=format!("{left:.2}%")
                        style:max-width=(!active).then(|| format!("{room:.2}%"))
                        title=format!("token {i}")>{visible(&tok.text)}</span>
                }
            })
            .collect_view()
    };
    let scale = move || {
        let (_, lo, hi) = norm_range.get()?;
        Some(view! {
            <div class="legend block-legend" data-testid="block-legend">
                <span>"‖x‖ in the map:"</span>
                <span class="range">{format!("{lo:.2}")}</span>
                <span class="ramp" aria-hidden="true"></span>
                <span class="range">{format!("{hi:.2}")}</span>
                <span class="range">"· strips: −"</span>
                <span class="ramp diverging" aria-hidden="true"></span>
                <span>"+ (each to its own range)"</span>
            </div>
        })
    };

    let point_labels = move || {
        (0..residual_points(state.shape().0)).map(|p| view! { <span>{residual_point_name(p)}</span> }).collect_view()
    };
    let token_text = move |i: usize| tokens.with(|t| t.get(i).map(|t| visible(&t.text))).unwrap_or_default();
    let describe = move || {
        // Only the current run's numbers: a panel scrolled away reads again when it comes back.
        let r = readout.get().filter(|r| r.run == runs.get())?;
        let norm = norm_value.get().map(|(p, tok, v)| {
            format!("‖x‖ of “{}” (token {tok}) after {} = {v:.4}", token_text(tok), residual_point_name(p))
        });
        let neurons = r.neurons.iter().map(|(i, v)| format!("#{i} {v:.3}")).collect::<Vec<_>>().join(" · ");
        Some(view! {
            <div class="block-readout" data-testid="block-readout">
                <div>{norm.unwrap_or_else(|| "Point at the norms map (or focus it and use the arrow keys) to read a value.".into())}</div>
                <div>{format!("Most active MLP neurons of “{}” in layer {}: {neurons}", token_text(r.token), r.layer)}</div>
            </div>
        })
    };

    view! {
        <section class="panel block-panel" node_ref=panel>
            <h2 class="panel-heading nav-target" tabindex="-1">"Residual stream"</h2>
            <p class="formula">
                "x ← x + attention(ln₁(x)); x ← x + MLP(ln₂(x)): every block adds to one shared stream; "
                {move || format!("ln is {} here. ", norm_words(state).2)}
                "Top: each token's ‖x‖ (columns) after each step (rows). Below, for "
                {move || token.get().map(|t| format!("“{}” (token {t})", token_text(t))).unwrap_or_default()}
                {move || format!(" in layer {}: ", layer.get())}
                {move || format!("its vector into ln₁, out of it ({}), and its MLP activations ({}). ", norm_words(state).0, norm_words(state).1)}
                "Point at a column (or click it, or use the arrow keys) to pick the token."
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
                <div class="block-cols" aria-hidden="true"
                    style:top=format!("{}%", (BLOCK_TILES[0][1] + BLOCK_TILES[0][3]) * 100.0)
                    style:height=format!("{}%", (BLOCK_TILES[1][1] - BLOCK_TILES[0][1] - BLOCK_TILES[0][3]) * 100.0)>
                    {column_labels}
                </div>
            </div>
            {scale}
            {describe}
            <Terms keys=crate::glossary::panel::RESIDUAL.to_vec() />
        </section>
    }
}

/// How this model normalises and activates: (what ln₁ does, the MLP's activation, the norm's name).
fn norm_words(state: PageState) -> (&'static str, &'static str, &'static str) {
    let llama = state.status.config.with(|c| c.as_ref().is_some_and(|c| c.architecture.is_llama_family()));
    if llama {
        ("RMSNorm: divided by its root mean square, then scaled", "SwiGLU: silu(gate)·up", "RMSNorm")
    } else {
        ("LayerNorm: mean 0, variance 1, then scaled and shifted", "GELU", "LayerNorm")
    }
}
