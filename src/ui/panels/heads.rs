//! The head view (after BertViz): each query token on the left joined to the
//! key tokens it attends to on the right, line width ∝ softmax weight, one
//! colour per head, for one or several heads of the selected layer. The
//! weights are the model's own, read back for the heads on screen.

use leptos::prelude::*;

use super::Terms;

use crate::engine::AttentionStage;
use crate::render::plot::{head_colour, head_dash};
use crate::render::text::visible;
use crate::ui::backend::{spawn_latest, Backend, BackendError};
use crate::ui::state::{PageState, View};
use crate::ui::web::dom::Pacer;
use crate::ui::web::visible::on_screen;

/// Lines thinner than this weight are not drawn (they would be invisible).
const MIN_WEIGHT: f32 = 0.02;
const ROW_H: f64 = 18.0;
const WIDTH: f64 = 320.0;
const LABEL_W: f64 = 96.0;
/// About how many rows the scroll box shows at once (its CSS max-height / ROW_H at full width).
const SCROLL_ROWS: usize = 16;

/// One head's weights for the head view, from the run they belong to.
#[derive(Debug, Clone, PartialEq)]
pub struct HeadWeights {
    pub layer: usize,
    pub head: usize,
    pub run: u64,
    pub t: usize,
    pub weights: Vec<f32>,
}

#[component]
pub fn HeadsPanel() -> impl IntoView {
    let state = PageState::from_context();
    let backend = Backend::from_context();
    let (runs, layer) = (state.outputs.runs, state.selection.layer);
    // The heads of the selected layer the view draws (all of them, until the
    // learner turns some off), and their weights.
    let view_heads = RwSignal::new(Vec::<usize>::new());
    let view_weights = RwSignal::new(Vec::<HeadWeights>::new());
    Effect::new(move |_| {
        let n_head = state.shape().1;
        view_heads.set((0..n_head).collect());
    });
    let scroller = NodeRef::<leptos::html::Div>::new();

    // Reads the weights of the heads the view shows (T×T floats each), while it is on screen.
    let panel = NodeRef::<leptos::html::Section>::new();
    let on_view = on_screen(panel);
    Effect::new(move |_| {
        if !on_view.get() {
            return;
        }
        let (run, layer, heads) = (runs.get(), layer.get(), view_heads.get());
        if untrack(|| backend.shown()) == 0 {
            return view_weights.set(Vec::new());
        }
        let read = async move {
            let mut out = Vec::with_capacity(heads.len());
            // On the CPU a trace past its budget computes each head's weights
            // (T²·d_head multiply-adds): the thread goes back between slices.
            let mut pacer = Pacer::new();
            for head in heads {
                let view = View { stage: AttentionStage::Weights, layer, head };
                // (A long text's map computed a piece of rows at a time first.)
                backend.compute_map(view, false).await?;
                let m = backend.read_matrix(view).await?;
                out.push(HeadWeights { layer, head, run, t: m.rows, weights: m.data.into_vec() });
                pacer.pause().await;
            }
            Ok::<_, BackendError>(out)
        };
        // The heads shown are part of the key: a read for the heads before a
        // toggle, finishing after the one for the heads after it, is dropped.
        spawn_latest(
            "head view",
            move || (runs.get(), state.selection.layer.get(), view_heads.get()),
            read,
            move |w| view_weights.set(w),
        );
    });

    let toggles = move || {
        (0..state.shape().1)
            .map(|h| {
                let on = move || view_heads.get().contains(&h);
                view! {
                    <button class="seg view-head" class:active=on aria-pressed=move || on().to_string()
                        style:border-color=head_colour(h)
                        style:border-style=head_dash(h).map(|_| "dashed")
                        on:click=move |_| view_heads.update(|hs| {
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

    // How many rows the drawing has: the current run's weights for the tokens
    // on screen (0 while there is nothing to draw). Only the current run's
    // weights count: a view scrolled away reads again when it comes back.
    let rows = Memo::new(move |_| {
        let run = runs.get();
        let t = view_weights.with(|ws| ws.iter().find(|w| w.run == run).map_or(0, |w| w.t));
        if state.outputs.tokens.with(Vec::len) == t {
            t
        } else {
            0
        }
    });
    // The query token whose lines alone are shown, if any.
    let focus = Memo::new(move |_| state.focus.cell.get().map(|(r, _)| r).filter(|&r| r < rows.get()));
    let y = |i: usize| i as f64 * ROW_H + ROW_H / 2.0 + 2.0;
    let (x0, x1) = (LABEL_W, WIDTH - LABEL_W);
    let lines = move || {
        let (t, focus, run) = (rows.get(), focus.get(), runs.get());
        view_weights.with(|data| {
            data.iter()
                .filter(|hw| hw.run == run && hw.t == t)
                .flat_map(|hw| {
                    let (head, colour, dash) = (hw.head, head_colour(hw.head), head_dash(hw.head));
                    (0..t).flat_map(move |i| (0..t).map(move |j| (head, colour, dash, i, j, hw.weights[i * t + j])))
                })
                .filter(|&(.., i, _, w)| w >= MIN_WEIGHT && focus.is_none_or(|f| f == i))
                .map(|(head, colour, dash, i, j, w)| {
                    view! {
                        <line x1=x0 y1=y(i) x2=x1 y2=y(j) stroke=colour stroke-dasharray=dash
                            stroke-width=format!("{:.2}", 0.5 + 5.0 * w)
                            stroke-opacity=format!("{:.2}", 0.15 + 0.75 * w)>
                            <title>{format!("H{head}: {w:.4}")}</title>
                        </line>
                    }
                })
                .collect_view()
        })
    };
    let labels = move || {
        state
            .outputs
            .tokens
            .get()
            .iter()
            .enumerate()
            .map(|(i, tok)| {
                let text = visible(&tok.text);
                view! {
                    <text x=x0 - 6.0 y=y(i) class="hv-label" class:active=move || focus.get() == Some(i)
                        text-anchor="end" dominant-baseline="middle"
                        on:mouseenter=move |_| if !state.focus.locked.get_untracked() { state.focus.cell.set(Some((i, i))) }>
                        {text.clone()}
                    </text>
                    <text x=x1 + 6.0 y=y(i) class="hv-label" dominant-baseline="middle">{text}</text>
                }
            })
            .collect_view()
    };
    // The keyboard: ↑/↓ pick the query token whose lines are shown, Home/End the first/last, Esc all.
    let on_key = move |ev: web_sys::KeyboardEvent| {
        let t = rows.get_untracked();
        if t == 0 {
            return;
        }
        let now = focus.get_untracked();
        let next = match ev.key().as_str() {
            "ArrowDown" => Some(now.map_or(0, |r| (r + 1).min(t - 1))),
            "ArrowUp" => Some(now.map_or(t - 1, |r| r.saturating_sub(1))),
            "Home" => Some(0),
            "End" => Some(t - 1),
            "Escape" => None,
            _ => return,
        };
        ev.prevent_default();
        state.focus.cell.set(next.map(|r| (r, r)));
        if let (Some(r), Some(div)) = (next, scroller.get_untracked()) {
            // Keep the picked row in view inside the scroll box.
            let scale = f64::from(div.client_width()) / WIDTH;
            let (top, bottom) = ((y(r) - ROW_H) * scale, (y(r) + ROW_H) * scale);
            let (view_top, view_h) = (f64::from(div.scroll_top()), f64::from(div.client_height()));
            if top < view_top {
                div.set_scroll_top(top as i32);
            } else if bottom > view_top + view_h {
                div.set_scroll_top((bottom - view_h) as i32);
            }
        }
    };
    let described = move || match focus.get() {
        Some(r) => format!(
            "Showing the lines of query token {r}, “{}”. Arrow keys pick another token, Escape shows all.",
            state.outputs.tokens.with(|tokens| tokens.get(r).map(|tok| visible(&tok.text)).unwrap_or_default())
        ),
        None => "Lines from each query token (left) to the keys it attends to (right). Arrow keys pick one token."
            .to_owned(),
    };
    // The <svg> is built once per appearance and kept while the focused token
    // or the weights change: its attributes and children are reactive. (Built
    // again on each change, as it once was, it lost the keyboard focus: with
    // Leptos's erase_components a rebuilt element's attributes are removed and
    // set again, tabindex included, and Chrome blurs an element that stops
    // being focusable.)
    let drawn = Memo::new(move |_| rows.get() > 0);
    let svg = move || {
        if !drawn.get() {
            return view! { <p class="hint">"Type something to see where each token looks."</p> }.into_any();
        }
        view! {
            <svg class="head-view-svg" viewBox=move || format!("0 0 {WIDTH} {}", rows.get() as f64 * ROW_H + 4.0)
                width="100%" role="img" tabindex="0" aria-label=described on:keydown=on_key
                on:mouseleave=move |_| if !state.focus.locked.get_untracked() { state.focus.cell.set(None) }>
                <g class="hv-lines">{lines}</g>
                {labels}
            </svg>
        }
        .into_any()
    };

    view! {
        <section class="panel head-view-panel" node_ref=panel>
            <h2 class="panel-heading nav-target" tabindex="-1">"Head view"</h2>
            <p class="formula">"Each token (left) joined to the tokens it attends to (right) in every head of the layer, one colour per head (dashed past the eighth); \
                line width is the attention weight A. Point at a token, or focus the drawing and use ↑/↓, to see only its lines."</p>
            <div class="control"><span class="control-label">{move || format!("Layer {} heads", layer.get())}</span>
                <div class="segs" role="group" aria-label="Heads in the head view">{toggles}</div></div>
            <div class="head-view-scroll" node_ref=scroller>{svg}</div>
            {move || {
                let t = state.outputs.tokens.with(Vec::len);
                (t > SCROLL_ROWS).then(|| view! {
                    <p class="hint scroll-hint">{format!("{t} tokens: scroll inside the drawing to see them all.")}</p>
                })
            }}
            <Terms keys=crate::glossary::panel::HEAD_VIEW.to_vec() />
        </section>
    }
}
