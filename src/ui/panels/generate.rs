//! Generation: sample one token at a time from the model's own distribution
//! (temperature, top-k, top-p, seed: `engine::sampling`, the CLI's rules),
//! append it, and show what the step cost with the KV cache against a full
//! re-run, the cache growing per layer and head, and the same prompt under
//! other seeds side by side with the token where they branch.

use leptos::prelude::*;

use super::Terms;
use leptos::task::spawn_local;

use crate::engine::cost::{forward_cost, step_cost};
use crate::engine::kv_cache::generate_cached;
use crate::engine::sampling::{try_sample, Rng, SamplingParams};
use crate::engine::AttentionStage;
use crate::model::Token;
use crate::render::plot::short;
use crate::render::text::{bytes, percent, visible};
use crate::ui::backend::{spawn_latest, Backend};
use crate::ui::state::{GenStep, PageState, Phase, View};
use crate::ui::web::dom::sleep_ms;
use crate::ui::web::visible::{on_screen, while_on_screen};

/// How many tokens "Generate 10" and the seed comparison produce.
const BATCH: usize = 10;

fn params(state: PageState) -> SamplingParams {
    let s = state.selection;
    SamplingParams {
        temperature: s.temperature.get_untracked(),
        top_k: s.top_k.get_untracked(),
        top_p: s.top_p.get_untracked(),
        seed: s.seed.get_untracked(),
    }
}

/// A continuation under another seed, for the side-by-side comparison.
#[derive(Debug, Clone, PartialEq)]
struct Branch {
    seed: u64,
    tokens: Vec<(String, f64)>,
}

#[component]
pub fn GeneratePanel() -> impl IntoView {
    let state = PageState::from_context();
    let backend = Backend::from_context();
    let (s, outputs, generation) = (state.selection, state.outputs, state.generation);
    // The sampler's random stream, restarted from the seed whenever the continuation is cleared.
    let rng = StoredValue::new(Rng::new(0));
    let busy = RwSignal::new(false);
    let note = RwSignal::new(None::<String>);
    let speed = RwSignal::new(2u32);
    let branches = RwSignal::new(Vec::<Branch>::new());
    // Nothing to generate from until the model is in.
    let loading = move || state.status.phase.get() != Phase::Ready;
    // A new prompt: the compared continuations were of the old one.
    Effect::new(move |_| {
        s.text.track();
        branches.set(Vec::new());
    });

    // The newest token's query row: its softmax weights over every cached key, for the selected layer and head.
    let new_row = RwSignal::new(None::<(usize, usize, u64, Vec<f32>)>);
    Effect::new(move |_| {
        let run = outputs.runs.get();
        let (layer, head) = (s.layer.get(), s.head.get());
        if generation.steps.with(|g| g.is_empty()) {
            new_row.set(None);
            return;
        }
        let view = View { stage: AttentionStage::Weights, layer, head };
        let last = backend.shown().saturating_sub(1);
        spawn_latest(
            "generated row",
            move || outputs.runs.get(),
            backend.read_row(view, last),
            move |row| new_row.set(Some((layer, head, run, row))),
        );
    });

    // One step: the model's distribution after the last token → a sampled token, appended.
    let step = move || async move {
        let Some(host) = backend.host() else { return false };
        if generation.steps.with_untracked(Vec::is_empty) {
            rng.set_value(Rng::new(s.seed.get_untracked()));
        }
        backend.compute(state); // the run for the prompt and every token generated so far
        backend.settled().await; // a large model on the CPU runs in steps
        if state.status.input_error.get_untracked().is_some() {
            return false;
        }
        let expected = outputs.tokens.with_untracked(Vec::len);
        if expected >= host.model.config.n_positions {
            note.set(Some(format!("The context is full ({expected} tokens): generation stops here.")));
            return false;
        }
        let logits = match backend.last_logits().await {
            Ok(l) => l,
            Err(e) => {
                note.set(Some(format!("Could not read the logits: {e}")));
                return false;
            }
        };
        if backend.shown() != expected || outputs.tokens.with_untracked(Vec::len) != expected {
            return false; // the text changed while reading
        }
        let mut r = rng.get_value();
        let sampled = match try_sample(&logits, &params(state), &mut r) {
            Ok(sampled) => sampled,
            Err(e) => {
                note.set(Some(format!("Generation stopped: {e}")));
                return false;
            }
        };
        rng.set_value(r);
        let text = host.model.tokenizer.decode(&[sampled.id]);
        let token = Token { id: sampled.id, text, start: 0, end: 0 };
        generation.steps.update(|g| g.push(GenStep { token, prob: sampled.prob, prob_kept: sampled.prob_kept }));
        // Focus the new token's query row: what it attends to over every cached key.
        state.focus.cell.set(Some((expected, if s.stage.get_untracked().square() { expected } else { 0 })));
        state.focus.locked.set(true);
        note.set(None);
        true
    };
    let run_steps = move |n: usize| {
        if busy.get_untracked() {
            return;
        }
        busy.set(true);
        spawn_local(async move {
            for _ in 0..n {
                if !step().await {
                    break;
                }
            }
            backend.compute(state);
            busy.set(false);
        });
    };
    let play = move || {
        if generation.playing.get_untracked() {
            generation.playing.set(false);
            return;
        }
        generation.playing.set(true);
        spawn_local(async move {
            while generation.playing.get_untracked() {
                if !busy.get_untracked() {
                    busy.set(true);
                    let ok = step().await;
                    backend.compute(state);
                    busy.set(false);
                    if !ok {
                        break;
                    }
                }
                sleep_ms((1000 / speed.get_untracked().max(1)) as i32).await;
            }
            generation.playing.set(false);
        });
    };
    let clear = move || {
        generation.playing.set(false);
        generation.steps.set(Vec::new());
        branches.set(Vec::new());
        note.set(None);
    };
    let run_again = move || {
        let n = generation.steps.with_untracked(Vec::len).max(BATCH);
        clear();
        run_steps(n);
    };
    // The same prompt under three seeds (the CPU reference with its KV cache: no drawing needed).
    let compare = move || {
        let Some(host) = backend.host() else { return };
        let prompt = state.prompt_tokens();
        if prompt.is_empty() {
            return;
        }
        let base = params(state);
        let mut out = Vec::new();
        // Wrapping: a link may carry the largest seed.
        for seed in (0..3).map(|i| base.seed.wrapping_add(i)) {
            let p = SamplingParams { seed, ..base };
            match generate_cached(&host.model, prompt.clone(), BATCH, &p, s.mask.get_untracked()) {
                Ok(g) => out
                    .push(Branch { seed, tokens: g.steps.iter().map(|s| (s.text.clone(), s.sampled.prob)).collect() }),
                Err(e) => {
                    note.set(Some(e.to_string()));
                    return;
                }
            }
        }
        branches.set(out);
    };

    // The work of the last step, with the cache and without.
    let cost_line = move || {
        let c = state.status.config.get()?;
        let t = outputs.shown_tokens.get();
        (t > 0).then(|| {
            let with = step_cost(&c, t).total_flops();
            let without = forward_cost(&c, t).total_flops();
            format!(
                "Reading token {t} costs {} FLOP with the KV cache (one new row: its Q, K, V, {t} scores, its MLP) \
                 against {} FLOP for a full re-run of all {t} tokens: {:.0}× less.",
                short(with as f64),
                short(without as f64),
                without as f64 / with.max(1) as f64
            )
        })
    };
    // The KV cache: 2 (K and V) × T × d_head × 4 bytes per head and layer. The table is built
    // when the model changes; a keystroke updates its numbers in place (rebuilt whole, SmolLM2's
    // 30 × 9 cells set every title again at each token), and only while the panel is on screen:
    // off screen, its ~600 texts and titles per keystroke cost SmolLM2's page ~8 ms of style and
    // layout.
    let panel = NodeRef::<leptos::html::Section>::new();
    let kv_t = while_on_screen(on_screen(panel), move || outputs.shown_tokens.get() as u64);
    let kv_table = move || {
        let c = state.status.config.get()?;
        let d = c.d_head() as u64;
        let per_head = move || 2 * kv_t.get() * d * 4;
        let heads = c.n_head as u64;
        let total = {
            let c = c.clone();
            move || forward_cost(&c, kv_t.get() as usize).kv_bytes
        };
        let caption = {
            let total = total.clone();
            move || format!("KV cache after {} tokens: {}", kv_t.get(), bytes(total()))
        };
        Some(view! {
            <table class="kv-table" data-testid="kv-table">
                <caption>{caption}</caption>
                <thead><tr><th scope="col">"layer"</th>
                    {(0..c.n_head).map(|h| view! { <th>{format!("H{h}")}</th> }).collect_view()}
                    <th>"layer"</th></tr></thead>
                <tbody>
                    {(0..c.n_layer).map(|l| view! {
                        <tr><th>{format!("L{l}")}</th>
                            {(0..c.n_head).map(|h| view! {
                                <td title=move || format!("layer {l}, head {h}: K and V, {} tokens × {d} values × 2 × 4 bytes", kv_t.get())>
                                    {move || per_head().to_string()}</td>
                            }).collect_view()}
                            <td>{move || (per_head() * heads).to_string()}</td></tr>
                    }).collect_view()}
                </tbody>
                <tfoot><tr><th colspan=c.n_head + 1>"total (bytes)"</th>
                    <td data-testid="kv-total">{move || total().to_string()}</td></tr></tfoot>
            </table>
        })
    };
    let continuation = move || {
        let generated = generation.steps.get();
        let n = generated.len();
        generated
            .into_iter()
            .enumerate()
            .map(|(i, g)| {
                let title = format!(
                    "step {}: id {}, p = {} (within the kept set {})",
                    i + 1,
                    g.token.id,
                    percent(g.prob),
                    percent(g.prob_kept)
                );
                view! { <span class="gen-token" class:last=i + 1 == n title=title>{visible(&g.token.text)}</span> }
            })
            .collect_view()
    };
    let last_line = move || {
        let g = generation.steps.get();
        let last = g.last()?;
        Some(format!(
            "Step {}: “{}” had p = {}{}.",
            g.len(),
            visible(&last.token.text),
            percent(last.prob),
            if (last.prob_kept - last.prob).abs() > 1e-9 {
                format!(" ({} within the top-k/top-p set it was drawn from)", percent(last.prob_kept))
            } else {
                String::new()
            }
        ))
    };
    let branch_rows = move || {
        let rows = branches.get();
        let first = rows.first().cloned();
        rows.into_iter()
            .map(|b| {
                let split = first.as_ref().and_then(|f| f.tokens.iter().zip(&b.tokens).position(|(a, c)| a.0 != c.0));
                let cells = b
                    .tokens
                    .iter()
                    .enumerate()
                    .map(|(i, (text, p))| {
                        let branch = split == Some(i);
                        view! {
                            <span class="gen-token" class:branch=branch title=format!("p = {}", percent(*p))>
                                {visible(text)}
                                {branch.then(|| view! { <sup>{percent(*p)}</sup> })}
                            </span>
                        }
                    })
                    .collect_view();
                view! { <div class="branch-row"><span class="branch-seed">{format!("seed {}", b.seed)}</span>{cells}</div> }
            })
            .collect_view()
    };

    view! {
        <section class="panel generate-panel" aria-label="Generate" node_ref=panel>
            <h2 class="panel-heading nav-target" tabindex="-1">"Generate"</h2>
            <p class="formula">"Each step draws one token from the model's distribution and appends it. Its query \
                attends over every cached key, so with a KV cache a step costs one new row; the cache grows by one \
                token per step, in every layer and head."</p>
            <div class="gen-controls">
                <button class="seg gen-step" title="Generate one token" disabled=move || busy.get() || loading()
                    on:click=move |_| run_steps(1)>"Step ›"</button>
                <button class="seg gen-play" disabled=loading on:click=move |_| play()>
                    {move || if generation.playing.get() { "Pause ❚❚" } else { "Play ▶" }}</button>
                <select class="gen-speed" aria-label="Speed" on:change=move |ev| {
                    if let Ok(v) = event_target_value(&ev).parse::<u32>() { speed.set(v) }
                }>
                    <option value="1">"1 token/s"</option>
                    <option value="2" selected>"2 tokens/s"</option>
                    <option value="5">"5 tokens/s"</option>
                </select>
                <button class="seg gen-ten" disabled=move || busy.get() || loading() on:click=move |_| run_steps(BATCH)>"Generate 10"</button>
                <button class="seg gen-again" title="Clear and generate again with the same seed"
                    disabled=move || busy.get() || loading() on:click=move |_| run_again()>"Run again"</button>
                <button class="seg gen-clear" on:click=move |_| clear()>"Clear"</button>
            </div>
            <div class="gen-sampling">
                <label class="inline">"top-k"
                    <input class="gen-topk" type="number" min="0" step="1" placeholder="off"
                        prop:value=move || s.top_k.get().map(|k| k.to_string()).unwrap_or_default()
                        on:change=move |ev| s.top_k.set(event_target_value(&ev).parse::<usize>().ok().filter(|&k| k > 0)) />
                </label>
                <label class="inline">{move || format!("top-p {}", s.top_p.get().map_or("off".to_owned(), |p| format!("{p:.2}")))}
                    <input class="gen-topp" type="range" min="0.05" max="1" step="0.05"
                        prop:value=move || s.top_p.get().unwrap_or(1.0).to_string()
                        on:input=move |ev| s.top_p.set(event_target_value(&ev).parse::<f32>().ok().filter(|&p| p < 1.0)) />
                </label>
                <label class="inline">"seed"
                    <input class="gen-seed" type="number" min="0" step="1"
                        prop:value=move || s.seed.get().to_string()
                        on:change=move |ev| {
                            if let Ok(v) = event_target_value(&ev).parse::<u64>() { s.seed.set(v) }
                        } />
                </label>
                <button class="seg gen-new-seed" title="A new seed" on:click=move |_| s.seed.update(|s| *s += 1)>"Next seed"</button>
            </div>
            <p class="hint" data-testid="gen-determinism">{move || if s.temperature.get() == 0.0 {
                "Temperature 0 is greedy: always the most likely token, so every seed gives the same text.".to_owned()
            } else {
                format!("Temperature {:.2}: the same seed gives the same text every time; another seed, another text.", s.temperature.get())
            }}</p>
            <p class="gen-text" data-testid="gen-text">
                <span class="gen-prompt">{move || {
                    let g = generation.steps.get().len();
                    let t = outputs.tokens.get();
                    t[..t.len().saturating_sub(g)].iter().map(|t| t.text.clone()).collect::<String>()
                }}</span>
                {continuation}
            </p>
            <p class="hint" data-testid="gen-last">{last_line}</p>
            {move || new_row.get().map(|(layer, head, _, weights)| {
                let tokens = outputs.tokens.get();
                let top = weights.iter().copied().fold(0.0f32, f32::max).max(1e-6);
                view! {
                    <div class="new-row" data-testid="gen-new-row">
                        <span class="control-label">{format!("The new token attends (layer {layer}, head {head}):")}</span>
                        <div class="new-row-keys">
                            {weights.iter().enumerate().map(|(j, &w)| {
                                let text = tokens.get(j).map(|t| visible(&t.text)).unwrap_or_default();
                                let alpha = format!("{:.3}", (w / top).clamp(0.0, 1.0));
                                let title = format!("key {j} “{text}”: weight {w:.4}");
                                view! {
                                    <span class="new-row-key" title=title
                                        style=format!("--w: {alpha}")>{text}</span>
                                }
                            }).collect_view()}
                        </div>
                    </div>
                }
            })}
            <p class="hint" data-testid="gen-cost">{cost_line}</p>
            {move || note.get().map(|n| view! { <p class="input-error" role="status">{n}</p> })}
            {kv_table}
            <div class="gen-compare">
                <button class="seg gen-compare-button" disabled=loading on:click=move |_| compare()
                    title="The same prompt under this seed and the next two">"Compare 3 seeds"</button>
                <div class="branches" data-testid="branches">{branch_rows}</div>
                {move || branches.with(|b| !b.is_empty()).then(|| view! {
                    <p class="hint" data-testid="branches-key">"Each row continues the prompt under one seed. A \
                        framed token is where that row first differs from the first seed's; the number above it is \
                        the probability the model gave that token."</p>
                })}
            </div>
            <Terms keys=crate::glossary::panel::GENERATE.to_vec() />
        </section>
    }
}
