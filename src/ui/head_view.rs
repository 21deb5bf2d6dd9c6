//! The head view (after BertViz): each query token on the left joined to the
//! key tokens it attends to on the right, line width ∝ softmax weight, one
//! colour per head, for one or several heads of the selected layer. The
//! weights are the model's own, read back for the heads on screen.

use leptos::prelude::*;
use leptos::task::spawn_local;

use super::app::AppState;
use super::host::{host, View};
use super::visible;
use crate::engine::AttentionStage;

/// Okabe–Ito: distinguishable with every common colour-vision deficiency.
const HEAD_COLOURS: [&str; 8] =
    ["#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#999999"];

/// Lines thinner than this weight are not drawn (they would be invisible).
const MIN_WEIGHT: f32 = 0.02;
const ROW_H: f64 = 18.0;
const WIDTH: f64 = 320.0;
const LABEL_W: f64 = 96.0;

pub fn head_colour(head: usize) -> &'static str {
    HEAD_COLOURS[head % HEAD_COLOURS.len()]
}

/// One head's weights for the head view, from the run they belong to.
#[derive(Debug, Clone, PartialEq)]
pub struct HeadWeights {
    pub layer: usize,
    pub head: usize,
    pub run: u64,
    pub t: usize,
    pub weights: Vec<f32>,
}

/// Reads the weights of the heads the view shows (T×T floats each).
pub fn read_heads(state: AppState) {
    let Some(host) = host() else { return };
    let (layer, run) = (state.layer.get_untracked(), state.runs.get_untracked());
    let heads = state.view_heads.get_untracked();
    if host.shown() == 0 {
        state.view_weights.set(Vec::new());
        return;
    }
    spawn_local(async move {
        let mut out = Vec::with_capacity(heads.len());
        for head in heads {
            let view = View { stage: AttentionStage::Weights, layer, head };
            match host.read_matrix(view).await {
                Ok((t, _, weights)) => out.push(HeadWeights { layer, head, run, t, weights }),
                Err(e) => return log::warn!("head view: {e}"),
            }
        }
        // A newer run or another layer made these stale: drop them.
        if state.runs.get_untracked() == run && state.layer.get_untracked() == layer {
            state.view_weights.set(out);
        }
    });
}

#[component]
pub fn HeadView(state: AppState) -> impl IntoView {
    Effect::new(move |_| {
        state.runs.track();
        state.layer.track();
        state.view_heads.track();
        read_heads(state);
    });

    let toggles = move || {
        (0..state.n_head.get())
            .map(|h| {
                let on = move || state.view_heads.get().contains(&h);
                view! {
                    <button class="seg view-head" class:active=on aria-pressed=move || on().to_string()
                        style:border-color=head_colour(h)
                        on:click=move |_| state.view_heads.update(|hs| {
                            if let Some(i) = hs.iter().position(|&x| x == h) {
                                if hs.len() > 1 { hs.remove(i); }
                            } else {
                                hs.push(h);
                                hs.sort_unstable();
                            }
                        })>
                        <span class="dot" style:background=head_colour(h)></span>{format!("H{h}")}
                    </button>
                }
            })
            .collect_view()
    };

    let svg = move || {
        let data = state.view_weights.get();
        let tokens = state.tokens.get();
        let t = data.first().map_or(0, |d| d.t);
        if t == 0 || tokens.len() != t {
            return view! { <p class="hint">"Type something to see where each token looks."</p> }.into_any();
        }
        let focus = state.hover.get().map(|(r, _)| r).filter(|&r| r < t);
        let height = t as f64 * ROW_H + 4.0;
        let (x0, x1) = (LABEL_W, WIDTH - LABEL_W);
        let y = |i: usize| i as f64 * ROW_H + ROW_H / 2.0 + 2.0;
        let lines = data
            .iter()
            .flat_map(|hw| {
                let colour = head_colour(hw.head);
                (0..t).flat_map(move |i| {
                    (0..t).filter_map(move |j| {
                        let w = hw.weights[i * t + j];
                        if w < MIN_WEIGHT || focus.is_some_and(|f| f != i) {
                            return None;
                        }
                        Some(view! {
                            <line x1=x0 y1=y(i) x2=x1 y2=y(j) stroke=colour
                                stroke-width=format!("{:.2}", 0.5 + 5.0 * w)
                                stroke-opacity=format!("{:.2}", 0.15 + 0.75 * w)>
                                <title>{format!("H{}: {:.4}", hw.head, w)}</title>
                            </line>
                        })
                    })
                })
            })
            .collect_view();
        let labels = tokens
            .iter()
            .enumerate()
            .map(|(i, tok)| {
                let text = visible(&tok.text);
                let active = focus == Some(i);
                view! {
                    <text x=x0 - 6.0 y=y(i) class="hv-label" class:active=active text-anchor="end"
                        dominant-baseline="middle"
                        on:mouseenter=move |_| if !state.locked.get_untracked() { state.hover.set(Some((i, i))) }>
                        {text.clone()}
                    </text>
                    <text x=x1 + 6.0 y=y(i) class="hv-label" dominant-baseline="middle">{text}</text>
                }
            })
            .collect_view();
        view! {
            <svg class="head-view-svg" viewBox=format!("0 0 {WIDTH} {height}") width="100%"
                role="img" aria-label="Lines from each query token (left) to the keys it attends to (right)"
                on:mouseleave=move |_| if !state.locked.get_untracked() { state.hover.set(None) }>
                <g class="hv-lines">{lines}</g>
                {labels}
            </svg>
        }
        .into_any()
    };

    view! {
        <section class="panel head-view-panel">
            <h2>"Head view"</h2>
            <p class="formula">"Each token (left) joined to the tokens it attends to (right); line width is the softmax weight. Hover a token to see only its lines."</p>
            <div class="control"><span class="control-label">{move || format!("Layer {} heads", state.layer.get())}</span>
                <div class="segs" role="group" aria-label="Heads in the head view">{toggles}</div></div>
            <div class="head-view-scroll">{svg}</div>
        </section>
    }
}
