//! The head finder: every layer × head scored against a template (previous
//! token, induction, first-token sink, self, broad, attends to a chosen
//! token, or a pattern painted on an 8 × 8 grid) on the current text,
//! ranked, and shown on the model grid ([`FinderOverlay`]); re-scored after
//! each run while the panel or the grid is on screen.

use leptos::prelude::*;

use crate::inspect::{rank, PaintGrid, RankedHead, Template, PAINT_SIDE};
use crate::render::raster::viridis;
use crate::render::text::visible;
use crate::ui::backend::{spawn_latest, Backend, FinderQuery};
use crate::ui::state::{HeadScores, PageState};
use crate::ui::web::dom;
use crate::ui::web::visible::{on_screen, while_on_screen};

/// Heads the ranked list shows, and heads labelled on the grid.
const LISTED: usize = 8;
const LABELLED: usize = 3;

/// `#rrggbb` of a score in [0, 1] on the sequential map.
pub fn score_colour(score: f64) -> String {
    let c = viridis(score.clamp(0.0, 1.0) as f32);
    let b = |v: f32| (v.clamp(0.0, 1.0) * 255.0).round() as u8;
    format!("#{:02x}{:02x}{:02x}", b(c[0]), b(c[1]), b(c[2]))
}

#[component]
pub fn HeadFinderPanel() -> impl IntoView {
    let state = PageState::from_context();
    let backend = Backend::from_context();
    let (s, outputs) = (state.selection, state.outputs);
    let h = s.heads;
    let panel = NodeRef::<leptos::html::Section>::new();
    let on_view = on_screen(panel);

    // Scored after each run and choice, only while someone can see the scores.
    Effect::new(move |_| {
        let runs = outputs.runs.get();
        let query = FinderQuery { template: h.template.get(), token_x: h.token_x.get(), paint: h.paint.get() };
        // The grid asks for scores only once the finder is in use (a template chosen, or a link's).
        if !(on_view.get() || (outputs.finder_on.get() && outputs.grid_on_screen.get())) {
            return;
        }
        if outputs.shown_tokens.get_untracked() == 0 {
            return outputs.head_scores.set(None);
        }
        spawn_latest(
            "head finder",
            move || (outputs.runs.get(), h.template.get(), h.token_x.get(), h.paint.get()),
            backend.head_scores(query),
            move |scores| outputs.head_scores.set(Some(HeadScores { run: runs, template: query.template, scores })),
        );
    });

    let picker = move || {
        Template::ALL
            .into_iter()
            .map(|t| {
                view! {
                    <button class="seg finder-template" data-template=t.key()
                        class:active=move || h.template.get() == t
                        aria-pressed=move || (h.template.get() == t).to_string()
                        on:click=move |_| {
                            h.template.set(t);
                            state.outputs.finder_on.set(true);
                        }>{t.label()}</button>
                }
            })
            .collect_view()
    };

    view! {
        <section class="panel finder-panel" node_ref=panel>
            <h2 class="panel-heading nav-target" tabindex="-1">"Head finder"</h2>
            <p class="formula">"Score every head's attention on this text against a pattern, rank the heads, and \
                outline them on the model grid. Re-ranked as you type."</p>
            <div class="finder-templates" role="group" aria-label="Template">{picker}</div>
            <p class="hint finder-describe">{move || format!("{}: {}.", h.template.get().label(), h.template.get().describe())}</p>
            {move || match h.template.get() {
                Template::ToToken => Some(view! { <TokenChips on_view=on_view /> }.into_any()),
                Template::Painted => Some(view! { <PaintEditor /> }.into_any()),
                _ => None,
            }}
            <RankedList />
        </section>
    }
}

/// The text's distinct tokens as chips: the one chosen is the "attends to token X" template's token.
#[component]
fn TokenChips(on_view: Signal<bool>) -> impl IntoView {
    let state = PageState::from_context();
    let h = state.selection.heads;
    let tokens = while_on_screen(on_view, move || state.outputs.tokens.get());
    let chips = move || {
        let mut seen = std::collections::HashSet::new();
        let tokens = tokens.get();
        tokens
            .into_iter()
            .filter(|t| seen.insert(t.id))
            .map(|t| {
                let id = t.id;
                view! {
                    <button class="seg token-chip" data-token-id=id
                        class:active=move || h.token_x.get() == Some(id)
                        aria-pressed=move || (h.token_x.get() == Some(id)).to_string()
                        on:click=move |_| h.token_x.set(Some(id))>{visible(&t.text)}</button>
                }
            })
            .collect_view()
    };
    view! {
        <div class="finder-tokens" role="group" aria-label="The token heads should attend to">{chips}</div>
        <p class="hint">{move || match h.token_x.get() {
            Some(id) => format!("Scoring attention to token id {id}."),
            None => "Pick a token of the text.".to_owned(),
        }}</p>
    }
}

/// The 8 × 8 grid a pattern is painted on: click or drag (mouse, pen or
/// touch) to paint; arrow keys move, Space or Enter toggles.
#[component]
fn PaintEditor() -> impl IntoView {
    let state = PageState::from_context();
    let h = state.selection.heads;
    let cursor = RwSignal::new((0usize, 0usize));
    // While a pointer is down: the value it paints (the first cell's opposite).
    let painting = RwSignal::new(None::<bool>);
    let paint = move |(r, c): (usize, usize), on: bool| {
        if h.paint.with_untracked(|g| g.get(r, c)) != on {
            h.paint.update(|g| g.set(r, c, on));
        }
    };
    let on_key = move |ev: web_sys::KeyboardEvent| {
        let (r, c) = cursor.get_untracked();
        let last = PAINT_SIDE - 1;
        let next = match ev.key().as_str() {
            "ArrowUp" => (r.saturating_sub(1), c),
            "ArrowDown" => ((r + 1).min(last), c),
            "ArrowLeft" => (r, c.saturating_sub(1)),
            "ArrowRight" => (r, (c + 1).min(last)),
            " " | "Enter" => {
                h.paint.update(|g| g.toggle(r, c));
                ev.prevent_default();
                return;
            }
            _ => return,
        };
        ev.prevent_default();
        cursor.set(next);
        dom::focus(&format!(".paint-cell[data-cell=\"{}-{}\"]", next.0, next.1));
    };
    let cells = (0..PAINT_SIDE * PAINT_SIDE)
        .map(|i| {
            let at = (i / PAINT_SIDE, i % PAINT_SIDE);
            let on = move || h.paint.with(|g| g.get(at.0, at.1));
            view! {
                <button class="paint-cell" data-cell=format!("{}-{}", at.0, at.1)
                    class:on=on
                    aria-pressed=move || on().to_string()
                    aria-label=format!("query {} of {PAINT_SIDE}, key {} of {PAINT_SIDE}", at.0 + 1, at.1 + 1)
                    tabindex=move || if cursor.get() == at { "0" } else { "-1" }
                    on:focus=move |_| cursor.set(at)
                    on:pointerdown=move |ev: web_sys::PointerEvent| {
                        ev.prevent_default();
                        let value = !on();
                        painting.set(Some(value));
                        cursor.set(at);
                        paint(at, value);
                        // Touch keeps the pointer on the first cell unless released.
                        if let Some(el) = ev.target().and_then(|t| wasm_bindgen::JsCast::dyn_into::<web_sys::Element>(t).ok()) {
                            let _ = el.release_pointer_capture(ev.pointer_id());
                        }
                    }
                    on:pointerenter=move |_| if let Some(value) = painting.get_untracked() { paint(at, value) }
                    on:click=move |ev: web_sys::MouseEvent| {
                        // A keyboard "click" (detail 0) toggles; a pointer already painted.
                        if ev.detail() == 0 {
                            h.paint.update(|g| g.toggle(at.0, at.1));
                        }
                    }></button>
            }
        })
        .collect_view();
    let released = window_event_listener(leptos::ev::pointerup, move |_| painting.set(None));
    on_cleanup(move || released.remove());
    view! {
        <div class="paint-wrap">
            <div class="paint-grid" role="group" aria-label="Paint a pattern: rows are queries, columns keys, both \
                stretched over the text. Arrow keys move, Space toggles." on:keydown=on_key>{cells}</div>
            <div class="paint-tools">
                <button class="seg" on:click=move |_| h.paint.set(PaintGrid::empty())>"Clear"</button>
                <button class="seg" on:click=move |_| h.paint.set(PaintGrid::default())>"Reset: previous-token diagonal"</button>
                <span class="hint">{move || format!("{} cells painted", h.paint.with(PaintGrid::count))}</span>
            </div>
        </div>
    }
}

/// The best-matching heads, best first; a click opens one in the attention panel.
#[component]
fn RankedList() -> impl IntoView {
    let state = PageState::from_context();
    let s = state.selection;
    let list = move || {
        let (_, n_head, _, _) = state.shape();
        let Some(scores) = state.outputs.head_scores.get() else {
            return view! { <p class="hint">"Scores appear once the model has run."</p> }.into_any();
        };
        let ranked = rank(&scores.scores, n_head, LISTED);
        if ranked.is_empty() {
            let why = match scores.template {
                Template::Induction => "No token repeats in this text, so no head can show induction: repeat a \
                                        phrase (e.g. type a sequence twice)."
                    .to_owned(),
                Template::ToToken => "Pick a token above; heads are scored on the queries that can see it.".to_owned(),
                _ => "No head has a score on this text.".to_owned(),
            };
            return view! { <p class="hint finder-empty">{why}</p> }.into_any();
        }
        // Scored for another template until the new scores arrive: dimmed and busy, never
        // shown as the new template's ranking.
        let stale = scores.template != s.heads.template.get();
        view! {
            <ol class="finder-list" data-testid="finder-list" data-template=scores.template.key()
                aria-busy=if stale { "true" } else { "false" }>
                {ranked.into_iter().map(|RankedHead { layer, head, score }| view! {
                    <li>
                        <button class="finder-head" data-layer=layer data-head=head data-score=score
                            title="Open this head in the attention panel"
                            on:click=move |_| {
                                s.layer.set(layer);
                                s.head.set(head);
                                dom::jump_to(".attention-panel");
                            }>
                            <span class="finder-swatch" style:background=score_colour(score)></span>
                            <span class="finder-name">{format!("L{layer} H{head}")}</span>
                            <span class="finder-score">{format!("{score:.3}")}</span>
                        </button>
                    </li>
                }).collect_view()}
            </ol>
        }
        .into_any()
    };
    view! { <div class="finder-ranked">{list}</div> }
}

/// The finder's scores drawn over the model grid: each head outlined in its
/// score's colour, the best [`LABELLED`] numbered, and a legend below.
/// `on_view` is whether the grid is on screen (then the finder keeps scoring).
#[component]
pub fn FinderOverlay(on_view: Signal<bool>) -> impl IntoView {
    let state = PageState::from_context();
    let outputs = state.outputs;
    Effect::new(move |_| {
        let v = on_view.get();
        if outputs.grid_on_screen.get_untracked() != v {
            outputs.grid_on_screen.set(v);
        }
    });
    let cells = move || {
        if !outputs.finder_on.get() {
            return None;
        }
        let shape = state.grid_shape();
        let scores = outputs.head_scores.get()?;
        let ranked = rank(&scores.scores, shape.heads, LABELLED);
        let (rows, cols) = (shape.row_fractions(), shape.column_fractions());
        Some(
            scores
                .scores
                .iter()
                .enumerate()
                .filter_map(|(i, score)| {
                    let (layer, head) = (i / shape.heads.max(1), i % shape.heads.max(1));
                    let (&(top, height), &(left, width)) = (rows.get(layer)?, cols.get(head)?);
                    let place = ranked.iter().position(|r| (r.layer, r.head) == (layer, head));
                    let colour = score.map_or("transparent".to_owned(), score_colour);
                    Some(view! {
                        <div class="finder-cell" class:top=place.is_some()
                            style:left=format!("{:.3}%", left * 100.0) style:top=format!("{:.3}%", top * 100.0)
                            style:width=format!("{:.3}%", width * 100.0) style:height=format!("{:.3}%", height * 100.0)
                            style:border-color=colour>
                            {place.map(|p| view! { <span class="finder-rank">{format!("#{}", p + 1)}</span> })}
                        </div>
                    })
                })
                .collect_view(),
        )
    };
    view! { <div class="finder-overlay" aria-hidden="true">{cells}</div> }
}

/// The legend under the model grid while the finder colours it.
#[component]
pub fn FinderLegend() -> impl IntoView {
    let state = PageState::from_context();
    move || {
        state.outputs.head_scores.get().filter(|_| state.outputs.finder_on.get()).map(|scores| {
            view! {
                <p class="hint finder-legend" data-testid="finder-legend">
                    <span>{format!("Outline: {} score", scores.template.label().to_lowercase())}</span>
                    <span class="finder-scale">"0 "<span class="finder-gradient" aria-hidden="true"></span>" 1"</span>
                    <span>"· #1–#3 the best heads (Head finder panel)"</span>
                </p>
            }
        })
    }
}
