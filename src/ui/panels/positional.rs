//! The positional-encoding panel: how the loaded model tells positions
//! apart, from its own numbers (`engine::positional`). GPT-2's learned
//! positions: the cosine similarity of its position vectors as a map. RoPE
//! (the Llama family): each dimension pair's rotation as a wavelength chart,
//! and how q·k of one vector with itself falls as the two are rotated
//! further apart. The numbers are in tables too (and `attnscope positions`
//! prints the same).

use leptos::prelude::*;
use wasm_bindgen::{Clamped, JsCast};

use super::chart::{LogChart, Marker, Series};
use super::Terms;
use crate::engine::positional::{positions, Positions, DECAY_MAX, LEARNED_SHOWN};
use crate::engine::Matrix;
use crate::render::layout::{cell_at, move_cell, pixel_size};
use crate::render::raster::Raster;
use crate::render::ColourMap;
use crate::ui::backend::Backend;
use crate::ui::state::PageState;
use crate::ui::web::dom::device_pixel_ratio;

#[component]
pub fn PositionsPanel() -> impl IntoView {
    let state = PageState::from_context();
    let backend = Backend::from_context();
    // Computed once per loaded model, from the backend's copy of its weights.
    let numbers = Memo::new(move |_| {
        let config = state.status.config.get()?;
        let host = backend.host()?;
        Some(positions(&config, host.model.weights.wpe.as_ref(), LEARNED_SHOWN, DECAY_MAX))
    });
    view! {
        <section class="panel positions-panel" aria-label="Positional encoding">
            <h2 class="panel-heading nav-target" tabindex="-1">"Positions"</h2>
            {move || match numbers.get() {
                None => view! { <p class="hint">"Waiting for the model."</p> }.into_any(),
                Some(Positions::Learned { similarity }) => learned_ui(similarity).into_any(),
                Some(Positions::Rope { theta, inv_freq, wavelength, distances, decay }) => {
                    let (context, scaled) = state.status.config.with_untracked(|c| {
                        c.as_ref().map_or((0, false), |c| (c.n_positions, c.rope_scaling.is_some()))
                    });
                    let rope = Rope { theta, inv_freq, wavelength, distances, decay, context, scaled };
                    rope_ui(rope).into_any()
                }
            }}
            <Terms keys=crate::glossary::panel::POSITIONS.to_vec() />
        </section>
    }
}

/// GPT-2: the cosine similarity of every pair of the first positions' vectors, hover or arrow keys to read one.
fn learned_ui(similarity: Vec<Vec<f32>>) -> impl IntoView {
    let n = similarity.len();
    let matrix = Matrix::from_vec(n, n, similarity.iter().flatten().copied().collect());
    let canvas_ref = NodeRef::<leptos::html::Canvas>::new();
    let cell = RwSignal::new(None::<(usize, usize)>);
    let draw = {
        let matrix = matrix.clone();
        move || {
            let Some(canvas) = canvas_ref.get_untracked() else { return };
            let canvas: &web_sys::HtmlCanvasElement = &canvas;
            let css = (canvas.client_width(), canvas.client_height());
            let (w, h) = pixel_size(css, device_pixel_ratio());
            canvas.set_width(w);
            canvas.set_height(h);
            let raster = Raster {
                values: matrix.view(),
                masked: None,
                colour_map: ColourMap::Diverging,
                range: (-1.0, 1.0),
                width: w as usize,
                height: h as usize,
                hover: cell.get_untracked(),
            };
            let pixels = raster.pixels();
            let ctx = canvas
                .get_context("2d")
                .ok()
                .flatten()
                .and_then(|c| c.dyn_into::<web_sys::CanvasRenderingContext2d>().ok());
            let image = web_sys::ImageData::new_with_u8_clamped_array_and_sh(
                Clamped(crate::render::raster::as_bytes(&pixels)),
                w,
                h,
            );
            if let (Some(ctx), Ok(image)) = (ctx, image) {
                let _ = ctx.put_image_data(&image, 0.0, 0.0);
            }
        }
    };
    let draw_now = draw.clone();
    Effect::new(move |_| {
        cell.track();
        if canvas_ref.get().is_some() {
            draw_now();
        }
    });
    let resize = window_event_listener(leptos::ev::resize, move |_| draw());
    on_cleanup(move || resize.remove());
    let on_move = move |ev: web_sys::MouseEvent| {
        let Some(canvas) = canvas_ref.get_untracked() else { return };
        let css = (f64::from(canvas.client_width()), f64::from(canvas.client_height()));
        cell.set(cell_at((n, n), css, (f64::from(ev.offset_x()), f64::from(ev.offset_y()))));
    };
    let on_key = move |ev: web_sys::KeyboardEvent| {
        if let Some(next) = move_cell(cell.get_untracked(), &ev.key(), (n, n)) {
            ev.prevent_default();
            cell.set(Some(next));
        }
    };
    let readout = move || match cell.get() {
        Some((i, j)) => format!(
            "positions {i} and {j}: cosine similarity {:.6}",
            similarity.get(i).and_then(|r| r.get(j)).copied().unwrap_or(f32::NAN)
        ),
        None => "Point at the map (or focus it and use the arrow keys) to read a pair.".to_owned(),
    };
    view! {
        <p class="formula">"GPT-2 learns one vector per position and adds it to the token's embedding. Row i, column j: \
            the cosine similarity of the vectors of positions i and j (1 on the diagonal). A bright band along the \
            diagonal means nearby positions got similar vectors: the model learned a sense of distance."</p>
        <p class="hint">{format!("The first {n} positions; purple is −1, near-white 0, orange +1.")}</p>
        <canvas node_ref=canvas_ref class="positions-canvas" tabindex="0" data-testid="positions-map"
            aria-label=format!("Cosine similarity of the first {n} position vectors with each other. Arrow keys read a pair.")
            on:mousemove=on_move on:keydown=on_key on:mouseleave=move |_| cell.set(None)></canvas>
        <p class="readout" aria-live="polite" data-testid="positions-readout">{readout}</p>
    }
}

/// What the RoPE half of the panel shows: `engine::positional::Positions::Rope`, the context and
/// whether Llama 3's scaling changed the frequencies.
struct Rope {
    theta: f32,
    inv_freq: Vec<f32>,
    wavelength: Vec<f32>,
    distances: Vec<usize>,
    decay: Vec<f32>,
    context: usize,
    scaled: bool,
}

/// RoPE: the wavelength of each pair's rotation and the decay of q·R(m)q with distance.
fn rope_ui(rope: Rope) -> impl IntoView {
    let Rope { theta, inv_freq, wavelength, distances, decay, context, scaled } = rope;
    let pairs = inv_freq.len();
    let wave_series = {
        let points = wavelength.iter().enumerate().map(|(i, &w)| ((i + 1) as f64, f64::from(w))).collect();
        Signal::derive(move || {
            vec![Series {
                name: "wavelength of pair i: 2π / θᵢ".into(),
                colour: "#0072B2",
                points: Clone::clone(&points),
                unit: "tokens per turn",
            }]
        })
    };
    let wave_markers = Signal::derive(Vec::new);
    let decay_series = {
        // m = 0 (always 1) is off a log axis: the curve starts at m = 1.
        let points: Vec<(f64, f64)> =
            distances.iter().zip(&decay).filter(|(&m, _)| m > 0).map(|(&m, &v)| (m as f64, f64::from(v))).collect();
        Signal::derive(move || {
            vec![Series {
                name: "q·R(m)q ÷ q·q, q all ones".into(),
                colour: "#D55E00",
                points: Clone::clone(&points),
                unit: "",
            }]
        })
    };
    let decay_markers =
        Signal::derive(move || vec![Marker { x: context.max(1) as f64, label: format!("context {context}") }]);
    let beyond = wavelength.iter().filter(|&&w| w > context as f32).count();
    view! {
        <p class="formula">{format!(
            "RoPE rotates each of a head's {pairs} dimension pairs of Q and K by position · θᵢ, θᵢ = {theta}^(−2i/d_head){}. \
             Early pairs turn fast (they tell neighbours apart), late pairs slowly (they see far): {beyond} of the {pairs} \
             pairs never finish a turn within the context of {context}.",
            if scaled { ", then Llama 3's scaling slows the slow pairs further" } else { "" },
        )}</p>
        <LogChart series=wave_series markers=wave_markers x_label="dimension pair i + 1" y_label="tokens per full turn"
            x_name="pair" testid="positions-wavelength" />
        <p class="formula">"The same vector as query and key, m positions apart: q·k after the rotation, over q·q. \
            It starts at 1 and falls, with ripples, as the pairs drift out of phase: attention between distant tokens \
            has to come from the vectors themselves."</p>
        <LogChart series=decay_series markers=decay_markers x_label="distance m (tokens)" y_label="q·R(m)q ÷ q·q"
            linear_y=1.0 y_lo=-1.0 x_name="m" testid="positions-decay" />
        <details class="numbers">
            <summary>"The numbers"</summary>
            <table class="kv-table" data-testid="positions-freq">
                <thead><tr><th>"pair i"</th><th>"θᵢ (radians per token)"</th><th>"wavelength (tokens)"</th></tr></thead>
                <tbody>{inv_freq.iter().zip(&wavelength).enumerate().map(|(i, (f, w))| view! {
                    <tr><td>{i}</td><td>{format!("{f:.6e}")}</td><td>{format!("{w:.6e}")}</td></tr>
                }).collect_view()}</tbody>
            </table>
            <table class="kv-table" data-testid="positions-decay-table">
                <thead><tr><th>"distance m"</th><th>"q·R(m)q ÷ q·q"</th></tr></thead>
                <tbody>{distances.iter().zip(&decay).map(|(m, v)| view! {
                    <tr><td>{*m}</td><td>{format!("{v:.6}")}</td></tr>
                }).collect_view()}</tbody>
            </table>
        </details>
    }
}
