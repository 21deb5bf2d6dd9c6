//! Ablation and patching: heads chosen in a layer × head grid are zeroed,
//! replaced by their mean, or patched from a second prompt of the same
//! length; the forward re-runs from the first affected layer (the earlier
//! ones reused, counted) and the next-token distribution and the followed
//! token's logit are shown against the clean run. By default every panel
//! then shows the intervened run (the backend keeps it on screen:
//! `Backend::apply_intervention`); a switch puts the clean run back on
//! screen. "Sweep" ablates every head in turn on the clean run (yielding to
//! the browser between layers on the GPU, heads on the CPU) into a Δlogit
//! map, exportable as PNG, SVG or CSV.

use leptos::prelude::*;
use leptos::task::spawn_local;

use super::lens::signed_colour;
use crate::engine::intervene::Replacement;
use crate::engine::Matrix;
use crate::inspect::toggle_head;
use crate::render::export::Figure;
use crate::render::text::visible;
use crate::render::ColourMap;
use crate::ui::backend::Backend;
use crate::ui::state::PageState;
use crate::ui::web::dom::yield_to_browser;
use crate::ui::web::export::{save_png, save_text, ExportError};

/// A finished or running sweep.
#[derive(Debug, Clone, PartialEq)]
struct SweepMap {
    run: u64,
    mode: Replacement,
    token: u32,
    /// `[layer][head]`, filled as the sweep goes.
    delta: Vec<Vec<Option<f32>>>,
    done: usize,
    total: usize,
}

fn mode_label(mode: Replacement) -> &'static str {
    match mode {
        Replacement::Zero => "Zero",
        Replacement::Mean => "Mean",
        Replacement::Patch => "Patch from a second prompt",
    }
}

#[component]
pub fn AblationPanel() -> impl IntoView {
    let state = PageState::from_context();
    let backend = Backend::from_context();
    let (outputs, h) = (state.outputs, state.selection.heads);
    let outcome = outputs.intervention;
    let sweep = RwSignal::new(None::<SweepMap>);
    let sweep_note = RwSignal::new(None::<String>);

    // A change of heads, mode, second prompt, followed token or "show in
    // every panel" applies again to the run on screen (each run applies it
    // itself); not on the first pass, which the page's first run covers.
    Effect::new(move |first: Option<()>| {
        h.ablated.track();
        h.mode.track();
        h.source.track();
        h.chosen.track();
        h.show.track();
        if first.is_some() {
            untrack(|| backend.reapply(state));
        }
    });

    let head_grid = move || {
        let (n_layer, n_head, _, _) = state.shape();
        (0..n_layer)
            .map(|l| {
                let cells = (0..n_head)
                    .map(|hd| {
                        let on = move || h.ablated.with(|a| a.binary_search(&(l, hd)).is_ok());
                        view! {
                            <button class="seg ablate-head" data-layer=l data-head=hd class:active=on
                                aria-pressed=move || on().to_string()
                                aria-label=format!("H{hd} of layer {l}")
                                on:click=move |_| h.ablated.update(|a| toggle_head(a, (l, hd)))>{format!("H{hd}")}</button>
                        }
                    })
                    .collect_view();
                view! { <div class="ablate-row"><span class="ablate-layer">{format!("L{l}")}</span>{cells}</div> }
            })
            .collect_view()
    };

    let source_note = move || {
        if h.mode.get() != Replacement::Patch {
            return None;
        }
        let host = backend.host()?;
        let source = h.source.get();
        let clean = state.prompt_tokens().len();
        let n = host.tokenize(&source).map(|t| t.len()).unwrap_or(0);
        Some(if source.is_empty() {
            format!("Type a second prompt of {clean} tokens (the same count as the text).")
        } else if n != clean {
            format!("The second prompt has {n} tokens and the text {clean}: patching needs the same count.")
        } else {
            format!("{n} tokens, as the text: each patched head takes its output on this prompt, position by position.")
        })
    };

    let result = move || {
        if h.ablated.with(Vec::is_empty) {
            return None;
        }
        let r = outcome.get()?;
        let o = match r {
            Ok(o) => o,
            Err(e) => return Some(view! { <p class="hint error" data-testid="ablation-error">{e}</p> }.into_any()),
        };
        let token = backend.host().map_or_else(String::new, |h| h.model.tokenizer.decode(&[o.token]));
        let saved = 1.0 - o.flops as f64 / o.full_flops.max(1) as f64;
        let top = o
            .top
            .iter()
            .map(|(id, text, p)| {
                view! { <li class:picked=*id == o.token><span class="next-text">{visible(text)}</span>
                <span class="next-prob">{format!("{:.1}%", 100.0 * p)}</span></li> }
            })
            .collect_view();
        Some(
            view! {
                <div class="ablation-result" data-testid="ablation-result" data-prob=o.prob data-clean-prob=o.clean_prob
                    data-delta=o.logit - o.clean_logit data-reused=o.first_layer
                    data-heads=crate::inspect::format_heads(&o.heads)>
                    <p>{format!("“{}”: probability {:.2}% → {:.2}%, logit {:.3} → {:.3} (Δ {:+.3}).", visible(&token),
                        100.0 * o.clean_prob, 100.0 * o.prob, o.clean_logit, o.logit, o.logit - o.clean_logit)}</p>
                    <p class="hint">{format!("Reused {} of {} layers; re-ran {} of {} FLOPs ({:.0}% saved).",
                        o.first_layer, o.n_layer, crate::render::text::grouped(o.flops),
                        crate::render::text::grouped(o.full_flops), 100.0 * saved)}</p>
                    <p class="control-label">"Next token with these heads replaced"</p>
                    <ol class="next-list ablated-next">{top}</ol>
                </div>
            }
            .into_any(),
        )
    };

    let run_sweep = move |_| {
        let (n_layer, n_head, _, _) = untrack(|| state.shape());
        let (mode, source, chosen) = (h.mode.get_untracked(), h.source.get_untracked(), h.chosen.get_untracked());
        let source = Some(source).filter(|s| !s.is_empty());
        let run = outputs.runs.get_untracked();
        // The sweep measures the clean run of this text: it stops if the text (or the model) changes.
        let ids = move || outputs.tokens.with_untracked(|t| t.iter().map(|t| t.id).collect::<Vec<_>>());
        let (swept, host) = (ids(), backend.host().map(|h| std::rc::Rc::as_ptr(&h)));
        let changed = move || ids() != swept || backend.host().map(|h| std::rc::Rc::as_ptr(&h)) != host;
        spawn_local(async move {
            let token = match chosen {
                Some(t) => t,
                None => match backend.clean_top_next().await {
                    Ok(t) => t,
                    Err(e) => return sweep_note.set(Some(e.to_string())),
                },
            };
            let total = n_layer * n_head;
            sweep_note.set(None);
            sweep.set(Some(SweepMap { run, mode, token, delta: vec![vec![None; n_head]; n_layer], done: 0, total }));
            for l in 0..n_layer {
                let mut hd = 0;
                while hd < n_head {
                    yield_to_browser().await;
                    if changed() {
                        return sweep_note.set(Some("The text changed: the sweep stopped. Run it again.".into()));
                    }
                    let cells = match backend.sweep_step((l, hd), mode, source.clone(), token).await {
                        Ok(cells) if !cells.is_empty() => cells,
                        Ok(_) => return sweep_note.set(Some("The sweep stopped: no head was measured".into())),
                        Err(e) => return sweep_note.set(Some(format!("The sweep stopped: {e}"))),
                    };
                    sweep.update(|m| {
                        if let Some(m) = m {
                            for cell in cells.iter().take(n_head - hd) {
                                m.delta[l][hd] = Some(cell.delta_logit);
                                m.done += 1;
                                hd += 1;
                            }
                        }
                    });
                }
            }
        });
    };

    let sweep_view = move || {
        let m = sweep.get()?;
        let span = m.delta.iter().flatten().flatten().fold(0.0f32, |a, v| a.max(v.abs()));
        let n_head = m.delta.first().map_or(0, Vec::len);
        let token = backend.host().map_or_else(String::new, |h| h.model.tokenizer.decode(&[m.token]));
        let cols = (0..n_head).map(|hd| view! { <th scope="col">{format!("H{hd}")}</th> }).collect_view();
        let rows = m
            .delta
            .iter()
            .enumerate()
            .map(|(l, row)| {
                let cells = row
                    .iter()
                    .enumerate()
                    .map(|(hd, v)| match v {
                        Some(v) => view! { <td class="sweep-cell" data-layer=l data-head=hd data-value=*v
                            style:background=signed_colour(*v, span) title=format!("L{l} H{hd}: Δlogit {v:+.4}")><span class="cell-num">{format!("{v:+.2}")}</span></td> }.into_any(),
                        None => view! { <td class="sweep-cell pending">"…"</td> }.into_any(),
                    })
                    .collect_view();
                view! { <tr><th scope="row">{format!("L{l}")}</th>{cells}</tr> }
            })
            .collect_view();
        let finished = m.done == m.total;
        Some(view! {
            <progress class="sweep-progress" max=m.total value=m.done aria-label="Sweep progress"></progress>
            <p class="hint" data-testid="sweep-status" data-done=m.done data-total=m.total>
                {format!("{} of {} heads · {} ablation · Δlogit of “{}”", m.done, m.total, mode_label(m.mode).to_lowercase(), visible(&token))}</p>
            <div class="table-scroll scroll-x" tabindex="0" role="region" aria-label="Sweep: Δlogit by layer and head">
            <table class="contrib-table sweep-table" data-testid="sweep-table"><thead><tr><th scope="col">"layer"</th>{cols}</tr></thead>
                <tbody>{rows}</tbody></table>
            </div>
            {finished.then(|| view! { <SweepExport map=m.clone() token=token.clone() /> })}
        })
    };

    view! {
        <section class="panel ablation-panel">
            <h2 class="panel-heading nav-target" tabindex="-1">"Ablation and patching"</h2>
            <p class="formula">"Replace heads' outputs and re-run the model from the first layer touched: which heads \
                does this prediction need?"</p>
            <div class="ablate-modes" role="group" aria-label="Replace the chosen heads' outputs by">
                {[Replacement::Zero, Replacement::Mean, Replacement::Patch].into_iter().map(|m| view! {
                    <button class="seg ablate-mode" data-mode=crate::inspect::mode_key(m)
                        class:active=move || h.mode.get() == m aria-pressed=move || (h.mode.get() == m).to_string()
                        on:click=move |_| h.mode.set(m)>{mode_label(m)}</button>
                }).collect_view()}
            </div>
            {move || (h.mode.get() == Replacement::Patch).then(|| view! {
                <label class="control-label" for="patch-source">"Second prompt (the heads' outputs come from it)"</label>
                <input id="patch-source" class="patch-source" type="text" prop:value=move || h.source.get()
                    on:input=move |ev| h.source.set(event_target_value(&ev)) />
            })}
            <p class="hint" data-testid="patch-note">{source_note}</p>
            <div class="ablate-grid" role="group" aria-label="Heads to replace (toggle)">{head_grid}</div>
            <div class="ablate-tools">
                <button class="seg" on:click=move |_| h.ablated.set(Vec::new())>"Clear"</button>
                <button class="seg sweep-button" on:click=run_sweep>"Sweep every head"</button>
            </div>
            <div class="ablate-show" role="group" aria-label="What every panel shows">
                <span class="control-label">"Every panel shows"</span>
                <button class="seg ablate-show-choice" data-show="ablated" class:active=move || h.show.get()
                    aria-pressed=move || h.show.get().to_string()
                    on:click=move |_| h.show.set(true)>"the run with these heads replaced"</button>
                <button class="seg ablate-show-choice" data-show="clean" class:active=move || !h.show.get()
                    aria-pressed=move || (!h.show.get()).to_string()
                    on:click=move |_| h.show.set(false)>"the clean run"</button>
            </div>
            {move || h.ablated.with(Vec::is_empty).then(|| view! {
                <p class="hint">"Choose heads above to see the prediction without them: every stage, map and number \
                    of the page then shows that run (the layers before the first one chosen are unchanged)."</p>
            })}
            {result}
            {move || sweep_note.get().map(|n| view! { <p class="hint">{n}</p> })}
            {sweep_view}
        </section>
    }
}

/// The sweep's map as a figure: PNG, SVG or CSV.
#[component]
fn SweepExport(map: SweepMap, token: String) -> impl IntoView {
    let state = PageState::from_context();
    let note = RwSignal::new(None::<String>);
    let map = StoredValue::new(map);
    let token = StoredValue::new(token);
    let save = move |format: &'static str| {
        spawn_local(async move {
            let (m, token) = (map.get_value(), token.get_value());
            let (rows, cols) = (m.delta.len(), m.delta.first().map_or(0, Vec::len));
            let values = Matrix::from_vec(rows, cols, m.delta.iter().flatten().map(|v| v.unwrap_or(0.0)).collect());
            let span = values.data.iter().fold(0.0f32, |a, v| a.max(v.abs())).max(1e-6);
            let figure = Figure {
                title: format!(
                    "Δlogit of “{}” with each head {}-ablated",
                    visible(&token),
                    crate::inspect::mode_key(m.mode)
                ),
                caption: format!("text: {}", state.selection.text.get_untracked().chars().take(60).collect::<String>()),
                values: &values,
                masked: None,
                colour_map: ColourMap::Diverging,
                range: (-span, span),
                row_labels: (0..rows).map(|l| format!("L{l}")).collect(),
                col_labels: (0..cols).map(|hd| format!("H{hd}")).collect(),
            };
            let name = format!("attnscope-sweep-{}.{format}", crate::inspect::mode_key(m.mode));
            let saved: Result<(), ExportError> = match format {
                "png" => save_png(&figure.svg(), &name).await,
                "svg" => save_text(&figure.svg(), "image/svg+xml", &name),
                _ => save_text(&figure.csv(), "text/csv", &name),
            };
            note.set(Some(match saved {
                Ok(()) => format!("Saved {name}"),
                Err(e) => format!("Export failed: {e}"),
            }));
        })
    };
    view! {
        <div class="export" role="group" aria-label="Export the sweep">
            <span class="control-label">"Export"</span>
            <button class="seg sweep-export" data-export="png" on:click=move |_| save("png")>"PNG ×2"</button>
            <button class="seg sweep-export" data-export="svg" on:click=move |_| save("svg")>"SVG"</button>
            <button class="seg sweep-export" data-export="csv" on:click=move |_| save("csv")>"CSV"</button>
            <span class="hint" data-testid="sweep-export-note">{move || note.get()}</span>
        </div>
    }
}
