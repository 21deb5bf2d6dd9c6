//! The logit lens and direct contributions: the residual stream after the
//! embeddings and after each attention and MLP sublayer read through the
//! final norm and the unembedding (top-1 per position, the top 5 on hover or
//! focus); and, for the followed next token, each head's and MLP's direct
//! contribution to its logit, as a layer × head grid (+ MLP) and a sorted
//! list. Computed after each run only while the panel is on screen.

use leptos::prelude::*;

use crate::engine::lens::{DirectContributions, LensPoint};
use crate::inspect::sorted_terms;
use crate::render::raster::diverging;
use crate::render::text::visible;
use crate::ui::backend::{spawn_latest, Backend, BackendError};
use crate::ui::state::PageState;
use crate::ui::web::visible::{on_screen, while_on_screen};

/// Tokens per position the lens reads, and positions the table shows (the last ones).
const LENS_K: usize = 5;
const LENS_POSITIONS: usize = 24;
/// Terms the sorted list shows.
const LISTED_TERMS: usize = 10;

/// `#rrggbb` of `v` on the diverging map spanning ±`span`.
pub fn signed_colour(v: f32, span: f32) -> String {
    let c = diverging(if span > 0.0 { v / span } else { 0.0 });
    let b = |v: f32| (v.clamp(0.0, 1.0) * 255.0).round() as u8;
    format!("#{:02x}{:02x}{:02x}", b(c[0]), b(c[1]), b(c[2]))
}

/// What the lens table shows: `n` of the `t` positions, fewer than the
/// table holds when the CPU could not afford more (`capped`).
fn positions_hint(n: usize, t: usize, capped: bool) -> String {
    match (n < t, capped) {
        (false, _) => format!("{t} positions."),
        (true, false) => format!("The last {n} of {t} positions."),
        (true, true) => format!(
            "The last {n} of {t} positions: on the CPU, each position of this model's lens is every point of \
             the stream through the whole unembedding, so the page reads only the last few."
        ),
    }
}

#[component]
pub fn LensPanel() -> impl IntoView {
    let state = PageState::from_context();
    let backend = Backend::from_context();
    let (outputs, h) = (state.outputs, state.selection.heads);
    let panel = NodeRef::<leptos::html::Section>::new();
    let on_view = on_screen(panel);
    let lens = RwSignal::new(None::<Vec<LensPoint>>);
    // A lens read in slices (a large model on the CPU): points done, of how many.
    let progress = RwSignal::new(None::<(usize, usize)>);
    let contributions = RwSignal::new(None::<DirectContributions>);
    let error = RwSignal::new(None::<String>);
    // The focused or hovered cell of the lens table: (point, position).
    let detail = RwSignal::new(None::<(usize, usize)>);
    // Off screen the tokens and next tokens hold still: a keystroke does not rebuild the tables.
    let tokens = while_on_screen(on_view, move || outputs.tokens.get());
    let next = while_on_screen(on_view, move || outputs.next.get());

    Effect::new(move |_| {
        outputs.runs.track();
        let chosen = h.chosen.get();
        if !on_view.get() || outputs.shown_tokens.get_untracked() == 0 {
            return;
        }
        let key = move || (outputs.runs.get(), h.chosen.get());
        progress.set(None);
        let started = untrack(key);
        let wanted = move || untrack(key) == started;
        let shown = move |done: usize, of: usize| progress.set((done < of).then_some((done, of)));
        let read = backend.logit_lens(LENS_K, backend.lens_positions(LENS_POSITIONS), wanted, shown);
        spawn_latest("logit lens", key, read, move |points| lens.set(Some(points)));
        let work = async move {
            let token = match chosen {
                Some(t) => t,
                None => backend.top_next().await?,
            };
            backend.contributions(token).await
        };
        spawn_latest("direct contributions", key, async move { Ok::<_, BackendError>(work.await) }, move |r| match r {
            Ok(c) => {
                error.set(None);
                contributions.set(Some(c));
            }
            Err(e) => {
                error.set(Some(e.to_string()));
                contributions.set(None);
            }
        });
    });

    let token_text =
        move |id: u32| backend.host().map_or_else(|| format!("#{id}"), |h| h.model.tokenizer.decode(&[id]));

    let table = move || {
        let points = lens.get()?;
        let tokens = tokens.get();
        let (from, n) = points.first().map_or((0, 0), |p| (p.first, p.top.len()));
        let t = tokens.len().max(from + n);
        let head = (from..from + n)
            .map(|j| view! { <th scope="col">{tokens.get(j).map_or(String::new(), |tk| visible(&tk.text))}</th> })
            .collect_view();
        let rows = points
            .iter()
            .enumerate()
            .map(|(p, point)| {
                let cells = (from..from + n)
                    .map(|j| {
                        let top = point.top.get(j - from).map_or(&[][..], Vec::as_slice);
                        let (text, prob, id) =
                            top.first().map_or((String::new(), 0.0, None), |x| (visible(&x.text), x.prob, Some(x.id)));
                        let all = top
                            .iter()
                            .map(|x| format!("{} {:.1}%", visible(&x.text), 100.0 * x.prob))
                            .collect::<Vec<_>>()
                            .join(", ");
                        let label = format!("{} at position {j}: {all}", point.name);
                        view! {
                            <td class="lens-cell" tabindex="0" title=all.clone() aria-label=label
                                data-point=p data-pos=j data-prob=prob data-id=id
                                style:background=format!("color-mix(in srgb, var(--accent) {:.0}%, transparent)", 60.0 * prob)
                                on:focus=move |_| detail.set(Some((p, j)))
                                on:mouseenter=move |_| detail.set(Some((p, j)))>
                                <span class="cell-num"><span class="lens-token">{text}</span>
                                <span class="lens-prob">{format!("{:.0}%", 100.0 * prob)}</span></span>
                            </td>
                        }
                    })
                    .collect_view();
                view! { <tr><th scope="row">{point.name.clone()}</th>{cells}</tr> }
            })
            .collect_view();
        Some(view! {
            <p class="hint" data-testid="lens-positions">{positions_hint(n, t, n < LENS_POSITIONS.min(t))}</p>
            <div class="lens-scroll scroll-x" role="region" aria-label="Logit lens: the top token after each sublayer at each position">
                <table class="lens-table" data-testid="lens-table">
                    <thead><tr><th scope="col">"after"</th>{head}</tr></thead>
                    <tbody>{rows}</tbody>
                </table>
            </div>
        })
    };
    let detail_line = move || {
        let (p, j) = detail.get()?;
        lens.with(|l| {
            let point = l.as_ref()?.get(p)?;
            let top = point.top.get(j.checked_sub(point.first)?)?;
            let list = top
                .iter()
                .map(|x| format!("{} {:.1}%", visible(&x.text), 100.0 * x.prob))
                .collect::<Vec<_>>()
                .join(" · ");
            Some(format!(
                "{} at position {j} (“{}”): {list}",
                point.name,
                tokens.with(|t| t.get(j).map_or(String::new(), |t| visible(&t.text)))
            ))
        })
    };

    let picker = move || {
        let listed = next.get();
        view! {
            <label class="control-label" for="lens-token">"Next token followed"</label>
            <select id="lens-token" class="lens-token-select"
                on:change=move |ev| h.chosen.set(event_target_value(&ev).parse::<u32>().ok())>
                <option value="" selected=move || h.chosen.get().is_none()>"the most likely"</option>
                {listed.into_iter().map(|n| {
                    let id = n.id;
                    view! { <option value=id.to_string() selected=move || h.chosen.get() == Some(id)>
                        {format!("{} ({:.1}%)", visible(&n.text), 100.0 * n.prob)}</option> }
                }).collect_view()}
                {move || h.chosen.get().filter(|id| !next.get().iter().any(|n| n.id == *id)).map(|id| view! {
                    <option value=id.to_string() selected=true>{format!("{} (id {id})", visible(&token_text(id)))}</option>
                })}
            </select>
        }
    };

    let contributions_view = move || {
        let c = contributions.get()?;
        let span = c.heads.iter().flatten().chain(&c.mlp).fold(0.0f32, |m, v| m.max(v.abs()));
        let n_head = c.heads.first().map_or(0, Vec::len);
        let head_cols = (0..n_head).map(|hd| view! { <th scope="col">{format!("H{hd}")}</th> }).collect_view();
        let rows = c
            .heads
            .iter()
            .enumerate()
            .map(|(l, heads)| {
                let cells = heads
                    .iter()
                    .enumerate()
                    .map(|(hd, &v)| view! {
                        <td class="contrib-cell" data-layer=l data-head=hd data-value=v
                            style:background=signed_colour(v, span) title=format!("L{l} H{hd}: {v:+.4}")>
                            <span class="cell-num">{format!("{v:+.2}")}</span></td>
                    })
                    .collect_view();
                let mlp = c.mlp[l];
                view! {
                    <tr><th scope="row">{format!("L{l}")}</th>{cells}
                        <td class="contrib-cell contrib-mlp" data-layer=l data-value=mlp
                            style:background=signed_colour(mlp, span) title=format!("L{l} MLP: {mlp:+.4}")><span class="cell-num">{format!("{mlp:+.2}")}</span></td></tr>
                }
            })
            .collect_view();
        let terms = sorted_terms(&c)
            .into_iter()
            .take(LISTED_TERMS)
            .map(|(name, v)| view! { <li><span class="contrib-name">{name}</span><span class="contrib-value">{format!("{v:+.3}")}</span></li> })
            .collect_view();
        let total = c.total();
        Some(view! {
            <p class="contrib-sum" data-testid="contrib-sum" data-total=total data-logit=c.logit data-token=c.token>
                {format!("Logit of “{}” after the last token: {:.4}. The sum of every term below (heads, MLPs, biases, \
                    embeddings, the norm's shift): {total:.4}.", visible(&token_text(c.token)), c.logit)}</p>
            <div class="table-scroll scroll-x" tabindex="0" role="region" aria-label="Direct contributions by layer and head">
            <table class="contrib-table" data-testid="contrib-table">
                <thead><tr><th scope="col">"layer"</th>{head_cols}<th scope="col">"MLP"</th></tr></thead>
                <tbody>{rows}</tbody>
            </table>
            </div>
            <p class="contrib-list-title">{format!("The {LISTED_TERMS} largest terms, by size:")}</p>
            <ol class="contrib-list">{terms}</ol>
        })
    };

    view! {
        <section class="panel lens-panel" node_ref=panel>
            <h2 class="panel-heading nav-target" tabindex="-1">"Logit lens"</h2>
            <p class="formula">"The residual stream after the embeddings and after each sublayer, put through the final \
                norm and the unembedding as if the model stopped there: its most likely token at each position."</p>
            {move || progress.get().map(|(done, of)| view! {
                <p class="hint lens-progress" data-testid="lens-progress" role="status">
                    {format!("Reading the lens through the unembedding: {done} of {of} points…")}
                    <progress max=of value=done></progress>
                </p>
            })}
            {table}
            <p class="hint lens-detail" aria-live="polite">{move || detail_line().unwrap_or_else(|| "Hover or focus a cell for its top 5.".to_owned())}</p>
            <h3>"Direct contributions"</h3>
            <div class="lens-picker">{picker}</div>
            <p class="formula">"Each head's and MLP's output read straight through the final norm and the unembedding. \
                The final norm is linearised at the final residual: its scale is the one the model used at this \
                position, held fixed, so the terms add up to the logit."</p>
            {move || error.get().map(|e| view! { <p class="hint error">{e}</p> })}
            {contributions_view}
        </section>
    }
}
