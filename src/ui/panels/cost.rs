//! The cost panel: for the loaded model, against the context length T on
//! log axes (the current T marked): the attention matrices' entries, the
//! attention FLOPs (T²) against the MLP and projections (T) with the point
//! where the square overtakes, the KV cache, and the forward pass timed live
//! on this device at a few T.

use leptos::prelude::*;

use super::Terms;
use leptos::task::spawn_local;

use super::chart::{LogChart, Marker, Series};
use crate::engine::cost::{forward_cost, quadratic_crossover};
use crate::engine::rank::{self, Direction};
use crate::model::Token;
use crate::render::plot::short;
use crate::render::text::bytes;
use crate::ui::backend::Backend;
use crate::ui::state::{PageState, Phase};
use crate::ui::web::dom::sleep_ms;
use crate::ui::web::visible::on_screen;

/// Context lengths the curves run through: powers of two up to 64k.
fn lengths() -> Vec<usize> {
    (0..=16).map(|e| 1usize << e).collect()
}

/// `f` at every context length of the curves, as chart points.
fn curve(f: impl Fn(usize) -> u64) -> Vec<(f64, f64)> {
    lengths().into_iter().map(|t| (t as f64, f(t) as f64)).collect()
}

/// One measured context length: the median of its runs.
#[derive(Debug, Clone, PartialEq)]
struct Timing {
    t: usize,
    ms: f64,
}

#[component]
pub fn CostPanel() -> impl IntoView {
    let state = PageState::from_context();
    let backend = Backend::from_context();
    // The charts follow the text only while on screen (they are redrawn per keystroke otherwise);
    // the numbers in words always do.
    let panel = NodeRef::<leptos::html::Section>::new();
    let on_view = on_screen(panel);
    let shown = Memo::new(move |last: Option<&usize>| match (on_view.get(), last) {
        (false, Some(&t)) => t,
        _ => state.outputs.shown_tokens.get(),
    });
    let timings = RwSignal::new(Vec::<Timing>::new());
    let progress = RwSignal::new(None::<(usize, usize)>);
    let error = RwSignal::new(None::<String>);

    let flops = Signal::derive(move || {
        let Some(c) = state.status.config.get() else { return Vec::new() };
        vec![
            Series {
                name: "attention (Q·Kᵀ and A·V): ∝ T²".into(),
                colour: "#D55E00",
                points: curve(|t| forward_cost(&c, t).attention_flops()),
                unit: "FLOPs",
            },
            Series {
                name: "MLP and projections: ∝ T".into(),
                colour: "#0072B2",
                points: curve(|t| forward_cost(&c, t).linear_flops()),
                unit: "FLOPs",
            },
        ]
    });
    let memory = Signal::derive(move || {
        let Some(c) = state.status.config.get() else { return Vec::new() };
        let grouped = c.n_kv_head < c.n_head;
        let mut series = vec![
            Series {
                name: "attention weights, all heads and layers (T²·heads·layers × 4 B)".into(),
                colour: "#CC79A7",
                points: curve(|t| forward_cost(&c, t).attention_bytes),
                unit: "bytes",
            },
            Series {
                name: if grouped {
                    format!(
                        "KV cache, {} grouped KV heads (2·{}·d_head·layers × 4 B per token)",
                        c.n_kv_head, c.n_kv_head
                    )
                } else {
                    "KV cache (2·d·layers × 4 B per token)".to_owned()
                },
                colour: "#009E73",
                points: curve(|t| forward_cost(&c, t).kv_bytes),
                unit: "bytes",
            },
        ];
        if grouped {
            series.push(Series {
                name: format!("KV cache if every one of the {} heads had its own K and V (full multi-head)", c.n_head),
                colour: "#56B4E9",
                points: curve(|t| forward_cost(&c, t).kv_bytes_per_token_full_mha * t as u64),
                unit: "bytes",
            });
        }
        series
    });
    let markers = Signal::derive(move || {
        let Some(c) = state.status.config.get() else { return Vec::new() };
        let t = shown.get().max(1);
        vec![
            Marker { x: t as f64, label: format!("now: T = {t}") },
            Marker { x: quadratic_crossover(&c) as f64, label: format!("T² overtakes: {}", quadratic_crossover(&c)) },
            Marker { x: c.n_positions as f64, label: format!("context {}", c.n_positions) },
        ]
    });
    let measured = Signal::derive(move || {
        let t = timings.get();
        if t.is_empty() {
            return Vec::new();
        }
        vec![Series {
            name: format!("forward pass on this device ({})", state.status.backend_label.get()),
            colour: "#E69F00",
            points: t.iter().map(|m| (m.t as f64, m.ms)).collect(),
            unit: "ms",
        }]
    });
    let measured_markers = Signal::derive(Vec::new);

    // Times the whole forward pass (and reading its logits back) at a few T,
    // on a forward pass of its own: the page's run stays as it is.
    let measure = move || {
        let Some(host) = backend.host() else { return };
        if progress.get_untracked().is_some() {
            return;
        }
        let timer = match backend.forward_timer() {
            Ok(timer) => timer,
            Err(e) => return error.set(Some(format!("The measurement could not start: {e}"))),
        };
        // Within the context and the tokens a whole traced run may have in this page (`Host::token_limit`).
        let limit = host.token_limit();
        let ts: Vec<usize> =
            [8usize, 16, 32, 64, 128, 256, 512, 1024, 2048].into_iter().filter(|&t| t <= limit).collect();
        const REPEATS: usize = 3;
        let total = ts.len() * REPEATS;
        progress.set(Some((0, total)));
        timings.set(Vec::new());
        error.set(None);
        let mask = state.selection.mask.get_untracked();
        let vocab = host.model.config.vocab_size as u32;
        spawn_local(async move {
            let mut done = 0;
            for &t in &ts {
                let mut runs = Vec::new();
                for rep in 0..REPEATS {
                    let tokens: Vec<Token> = (0..t)
                        .map(|i| Token {
                            id: ((i as u32 * 31 + rep as u32 * 7 + t as u32) % vocab.max(1)),
                            text: String::new(),
                            start: 0,
                            end: 0,
                        })
                        .collect();
                    match timer.run(&tokens, mask).await {
                        Ok(ms) => runs.push(ms),
                        Err(e) => {
                            error.set(Some(format!("The measurement stopped at T = {t}: {e}")));
                            progress.set(None);
                            return;
                        }
                    }
                    done += 1;
                    progress.set(Some((done, total)));
                    // Let the page paint the progress bar.
                    sleep_ms(0).await;
                }
                let median = rank::order(&runs, Direction::Ascending).get(runs.len() / 2).map_or(0.0, |&i| runs[i]);
                timings.update(|v| v.push(Timing { t, ms: median }));
            }
            progress.set(None);
        });
    };

    let summary = move || {
        let c = state.status.config.get()?;
        let t = state.outputs.shown_tokens.get().max(1);
        let now = forward_cost(&c, t);
        let double = forward_cost(&c, 2 * t);
        Some(format!(
            "At T = {t}: {} attention-matrix entries per stage ({} layers × {} heads × {t}²), {} FLOPs of attention \
             against {} FLOPs in the MLP and projections, a KV cache of {}. Doubling the text to {} multiplies \
             attention by {:.1} but the rest by {:.1}.",
            short(now.attention_entries as f64),
            c.n_layer,
            c.n_head,
            short(now.attention_flops() as f64),
            short(now.linear_flops() as f64),
            bytes(now.kv_bytes),
            2 * t,
            double.attention_flops() as f64 / now.attention_flops().max(1) as f64,
            double.linear_flops() as f64 / now.linear_flops().max(1) as f64,
        ))
    };

    // Grouped KV heads: what the shared K and V save against full multi-head attention.
    let kv_saving = move || {
        let c = state.status.config.get()?;
        (c.n_kv_head < c.n_head).then(|| {
            let t = state.outputs.shown_tokens.get().max(1);
            let now = forward_cost(&c, t);
            let full = now.kv_bytes_per_token_full_mha * t as u64;
            let context = forward_cost(&c, c.n_positions);
            format!(
                "Grouped KV heads: {} query heads share {} KV heads ({} each), so the KV cache is {:.1}× smaller than \
                 full multi-head attention: {} instead of {} at T = {t}, {} instead of {} at the full context of {}.",
                c.n_head,
                c.n_kv_head,
                c.kv_group(),
                full as f64 / now.kv_bytes.max(1) as f64,
                bytes(now.kv_bytes),
                bytes(full),
                bytes(context.kv_bytes),
                bytes(context.kv_bytes_per_token_full_mha * c.n_positions as u64),
                c.n_positions,
            )
        })
    };

    view! {
        <section class="panel cost-panel" aria-label="Cost against context length" node_ref=panel>
            <h2 class="panel-heading nav-target" tabindex="-1">"Cost"</h2>
            <p class="lead">"It grows with the square of the text."</p>
            <p class="formula">"Attention compares every token with every other, so its work and its weight matrices \
                grow with T², while the MLP and the projections grow with T. For short texts the MLP dominates; past \
                T ≈ 6·d the square takes over. The KV cache grows by a fixed amount per token and is held until the \
                end. Log axes: a line twice as steep grows with the square. Point at or tap a point for its value, or focus a chart and use the arrow keys."</p>
            <p class="hint" data-testid="cost-summary">{summary}</p>
            {move || kv_saving().map(|line| view! { <p class="hint" data-testid="cost-kv-saving">{line}</p> })}
            <LogChart series=flops markers=markers x_label="context length T (tokens)" y_label="FLOPs per forward pass" testid="cost-flops" />
            <LogChart series=memory markers=markers x_label="context length T (tokens)" y_label="bytes" testid="cost-memory" />
            <div class="measure">
                <button class="seg measure-button"
                    disabled=move || progress.get().is_some() || state.status.phase.get() != Phase::Ready on:click=move |_| measure()>
                    "Measure the forward pass on this device"</button>
                {move || progress.get().map(|(k, n)| view! {
                    <progress class="measure-progress" max=n value=k></progress>
                    <span class="hint">{format!("{k} / {n} runs")}</span>
                })}
            </div>
            {move || error.get().map(|e| view! { <p class="input-error" role="alert">{e}</p> })}
            {move || (!timings.get().is_empty()).then(|| {
                let t = timings.get();
                let base = t.first().map_or(1.0, |m| m.ms.max(1e-6));
                view! {
                    <LogChart series=measured markers=measured_markers x_label="context length T (tokens)" y_label="milliseconds" testid="cost-measured" />
                    <table class="kv-table" data-testid="cost-timings">
                        <thead><tr><th>"T"</th><th>"ms (median of 3)"</th><th>{format!("× T = {}", t[0].t)}</th></tr></thead>
                        <tbody>{t.iter().map(|m| view! {
                            <tr><td>{m.t}</td><td>{format!("{:.1}", m.ms)}</td><td>{format!("{:.2}", m.ms / base)}</td></tr>
                        }).collect_view()}</tbody>
                    </table>
                    <p class="hint">"Measured now, on this device and backend: the whole forward pass with every \
                        stage kept, plus reading the logits back. Small T is dominated by fixed costs (dispatches, \
                        synchronisation), so the curve bends upwards only as T grows."</p>
                }
            })}
            <Terms keys=crate::glossary::panel::COST.to_vec() />
        </section>
    }
}
