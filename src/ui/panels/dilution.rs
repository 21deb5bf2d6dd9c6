//! Dilution and sinks: mark one token (an instruction), append filler a
//! sentence at a time, and plot the weight the later tokens give it, per head
//! of the selected layer, against the context length; and how much weight
//! each head parks on the first token. Computed on the CPU reference
//! (`engine::analysis`), step by step, from the model's own traces.

use std::ops::ControlFlow;

use leptos::prelude::*;

use super::Terms;
use leptos::task::spawn_local;

use super::chart::{LogChart, Marker, Series, YFormat};
use crate::engine::analysis::{attention_to, first_token_weights};
use crate::engine::stepwise::TraceRun;
use crate::engine::{most_traced_tokens, trace_bytes, Mask, TraceKeeps};
use crate::render::plot::head_colour;
use crate::render::text::size_text;
use crate::render::text::visible;
use crate::ui::backend::{cpu_trace_budget, pace_run, runs_in_steps, Backend, BackendError, STEP_FLOPS};
use crate::ui::state::{PageState, Phase};
use crate::ui::web::dom::{sleep_ms, Pacer};
use crate::ui::web::visible::{on_screen, while_on_screen};

/// The most a trace of this panel may take (it keeps two, together within
/// the page's budget for a second prompt's trace): 256 MiB, 236 tokens of
/// SmolLM2-135M and 367 of GPT-2 small (its traces keep no T×T weights);
/// the default model's whole context.
const DILUTION_TRACE_BYTES: u64 = 256 << 20;

const FILLERS: [&str; 3] = [
    " It was a fine day, and nothing much happened in the village.",
    " The rain fell on the fields and the roads for many hours.",
    " She walked to the window, looked out, and sat down again.",
];

/// One context length: the weight every head gives the marked token, and the first-token weights.
#[derive(Debug, Clone, PartialEq)]
struct Point {
    t: usize,
    to_marked: Vec<f64>,
    sink: Vec<f64>,
}

#[component]
pub fn DilutionPanel() -> impl IntoView {
    let state = PageState::from_context();
    let backend = Backend::from_context();
    // The text's tokens for the chart's marker and the token list, followed only while the
    // panel is on screen.
    let panel = NodeRef::<leptos::html::Section>::new();
    let shown = while_on_screen(on_screen(panel), move || state.outputs.tokens.get());
    let marked = RwSignal::new(1usize);
    let filler = RwSignal::new(0usize);
    let points = RwSignal::new(Vec::<Point>::new());
    let running = RwSignal::new(false);
    let error = RwSignal::new(None::<String>);
    // Why the filler stopped before the context was full.
    let note = RwSignal::new(None::<String>);

    let run = move || {
        let Some(host) = backend.host() else { return };
        if running.get_untracked() {
            return;
        }
        running.set(true);
        points.set(Vec::new());
        error.set(None);
        note.set(None);
        let text = state.selection.text.get_untracked();
        let key = marked.get_untracked();
        let fill = FILLERS[filler.get_untracked() % FILLERS.len()];
        let mask = match state.selection.mask.get_untracked() {
            Mask::Bidirectional => Mask::Causal,
            m => m,
        };
        spawn_local(async move {
            let model = &host.model;
            let (config, weights) = (&model.config, &model.weights);
            // The panel keeps whole traces (the last length's and the next's): on a large model it
            // stops before they pass DILUTION_TRACE_BYTES each, and says so.
            let context = config.n_positions;
            let budget = DILUTION_TRACE_BYTES.min(cpu_trace_budget(model) / 2);
            let affordable = most_traced_tokens(config, budget, TraceKeeps::LEAST).max(2);
            let limit = context.min(affordable);
            let mut prev = None;
            // One pacer for the whole filling: the runs' slices and the reads after each run.
            let mut pacer = Pacer::new();
            for k in 0.. {
                let mut tokens = match model.tokenizer.encode(&format!("{text}{}", fill.repeat(k))) {
                    Ok(t) => t,
                    Err(e) => {
                        error.set(Some(e.to_string()));
                        break;
                    }
                };
                let full = tokens.len() >= limit;
                tokens.truncate(limit);
                if key + 1 >= tokens.len() {
                    error.set(Some("Mark a token before the last one.".into()));
                    break;
                }
                let t = tokens.len();
                // Each step appends filler: only its rows are computed (engine::extend). A large
                // model runs them a block at a time, giving the thread back between slices. The
                // panel reads a few weights of each head, computed when read (from Q, K and each
                // row's softmax): its traces keep none of the T×T matrices, nor any logits or
                // stage they can compute when read.
                let run = TraceRun::new(config, weights, prev.as_ref(), tokens, mask)
                    .map(|r| r.keeping_weights(false).every_logits(false).keeping_stages(false));
                let next = match run {
                    Err(e) => Err(BackendError::from(e)),
                    Ok(run) if runs_in_steps(config, t) => {
                        let mut pause = async || {
                            pacer.pause().await;
                            ControlFlow::Continue(())
                        };
                        pace_run(run.head_flops(STEP_FLOPS).block_flops(STEP_FLOPS), &mut pause).await
                    }
                    Ok(run) => Ok(run.finish()),
                };
                match next {
                    Ok(trace) => {
                        // The heads' few weights, computed when read: where the run went in
                        // slices, each reading is a slice of its own, apart from the run's end
                        // and the chart's update (all in one, tasks of 52–61 ms on SmolLM2 near
                        // 600 tokens); the pacer yields only where slices are long, so a small
                        // model's reads go on in the step's task as before.
                        pacer.pause().await;
                        let to_marked = attention_to(&trace, key);
                        pacer.pause().await;
                        let sink = first_token_weights(&trace);
                        pacer.pause().await;
                        points.update(|p| p.push(Point { t, to_marked, sink }));
                        prev = Some(trace);
                    }
                    Err(e) => {
                        error.set(Some(e.to_string()));
                        break;
                    }
                }
                if full {
                    if limit < context {
                        let size = size_text(trace_bytes(config, limit, TraceKeeps::LEAST));
                        note.set(Some(format!(
                            "Stopped at {limit} tokens, before this model's context ({context}) is full: the page \
                             computes this panel on the CPU, and a longer text's every per-token stage would \
                             take over {size}."
                        )));
                    }
                    break;
                }
                sleep_ms(0).await; // let the chart grow step by step
            }
            running.set(false);
        });
    };

    let series = Signal::derive(move || {
        let (Some(c), p) = (state.status.config.get(), points.get()) else { return Vec::new() };
        let layer = state.selection.layer.get().min(c.n_layer.saturating_sub(1));
        (0..c.n_head)
            .map(|h| Series {
                name: format!("L{layer} H{h}"),
                colour: head_colour(h),
                points: p.iter().map(|pt| (pt.t as f64, pt.to_marked[layer * c.n_head + h])).collect(),
                unit: "of the weight",
            })
            .collect()
    });
    let markers = Signal::derive(move || {
        let t = shown.get().len();
        (t > 0).then(|| Marker { x: t as f64, label: "your text".into() }).into_iter().collect::<Vec<_>>()
    });
    // Every token, while the panel is on screen (or within `on_screen`'s margin of it): a list
    // whose options change makes the browser measure all of them again, ~3–6 ms of layout per
    // keystroke for SmolLM2 at T = 506, seen or not. Keyed by position and text, so a keystroke
    // touches only the options it changed (the last one or two), not every option of the list.
    let token_options = move || {
        let options = move || shown.get().iter().map(|t| visible(&t.text)).enumerate().collect::<Vec<_>>();
        let option = move |(i, text): (usize, String)| {
            view! { <option value=i.to_string() selected=move || marked.get() == i>{format!("{i}: {text}")}</option> }
        };
        view! { <For each=options key=|o| o.clone() children=option /> }
    };
    // The first-token weight of every head, at the text as typed (the first point).
    let sinks = move || {
        let c = state.status.config.get()?;
        let p = points.get();
        let first = p.first()?;
        let rows = (0..c.n_layer)
            .map(|l| {
                let cells = (0..c.n_head)
                    .map(|h| {
                        let v = first.sink[l * c.n_head + h];
                        let width = format!("{:.0}%", 100.0 * v.clamp(0.0, 1.0));
                        view! {
                            <td title=format!("layer {l}, head {h}: {:.1} % of each later token's attention goes to the first token", 100.0 * v)
                                data-sink=format!("{v:.4}")>
                                <span class="sink-bar"><span class="sink-fill" style:width=width></span></span>
                                <span class="sink-value">{format!("{:.0}%", 100.0 * v)}</span>
                            </td>
                        }
                    })
                    .collect_view();
                view! { <tr><th>{format!("L{l}")}</th>{cells}</tr> }
            })
            .collect_view();
        Some(view! {
            <table class="kv-table sink-table" data-testid="sink-table">
                <caption>"Weight on the first token (attention sink), per head"</caption>
                <thead><tr><th scope="col">"layer"</th>{(0..c.n_head).map(|h| view! { <th>{format!("H{h}")}</th> }).collect_view()}</tr></thead>
                <tbody>{rows}</tbody>
            </table>
        })
    };
    let summary = move || {
        let c = state.status.config.get()?;
        let p = points.get();
        let (first, last) = (p.first()?, p.last()?);
        if p.len() < 2 {
            return None;
        }
        let layer = state.selection.layer.get().min(c.n_layer.saturating_sub(1));
        let best = (0..c.n_head)
            .max_by(|&a, &b| first.to_marked[layer * c.n_head + a].total_cmp(&first.to_marked[layer * c.n_head + b]))?;
        let (a, b) = (first.to_marked[layer * c.n_head + best], last.to_marked[layer * c.n_head + best]);
        Some(format!(
            "Layer {layer}, head {best} gave the marked token {:.1} % of later tokens' attention at T = {}; at T = {} \
             it gives {:.1} % ({:.1}× less).",
            100.0 * a,
            first.t,
            last.t,
            100.0 * b,
            a / b.max(1e-12)
        ))
    };

    view! {
        <section class="panel dilution-panel" aria-label="Attention dilution" node_ref=panel>
            <h2 class="panel-heading nav-target" tabindex="-1">"Dilution"</h2>
            <p class="lead">"Long contexts dilute attention."</p>
            <p class="formula">"Each row of attention weights sums to 1, so the more tokens there are, the less each \
                one can get. Mark a token (an instruction, say), append filler, and watch the weight later tokens \
                give it fall with the length, head by head of the selected layer. Many heads also park weight on \
                the first token whatever it is: an attention sink."</p>
            <div class="gen-sampling">
                <label class="inline">"Marked token"
                    <select class="dilution-token" on:change=move |ev| {
                        if let Ok(i) = event_target_value(&ev).parse::<usize>() { marked.set(i) }
                    }>{token_options}</select>
                </label>
                <label class="inline">"Filler"
                    <select class="dilution-filler" on:change=move |ev| {
                        if let Ok(i) = event_target_value(&ev).parse::<usize>() { filler.set(i) }
                    }>{FILLERS.iter().enumerate().map(|(i, f)| view! { <option value=i.to_string()>{f.trim().to_owned()}</option> }).collect_view()}</select>
                </label>
                <button class="seg dilution-run"
                    disabled=move || running.get() || state.status.phase.get() != Phase::Ready on:click=move |_| run()>
                    {move || if running.get() { "Appending…" } else { "Append filler until the context is full" }}</button>
            </div>
            {move || error.get().map(|e| view! { <p class="input-error" role="alert">{e}</p> })}
            {move || note.get().map(|n| view! { <p class="hint" data-testid="dilution-note">{n}</p> })}
            {move || (!points.get().is_empty()).then(|| view! {
                <LogChart series=series markers=markers x_label="context length T (tokens)"
                    y_label="mean weight on the marked token" linear_y=0.0 y_format=YFormat::Percent
                    x_max=state.status.config.get_untracked().map_or(1.0, |c| c.n_positions as f64)
                    testid="dilution-chart" />
            })}
            <p class="hint" data-testid="dilution-summary">{summary}</p>
            {sinks}
            <Terms keys=crate::glossary::panel::DILUTION.to_vec() />
        </section>
    }
}
