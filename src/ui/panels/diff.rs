//! The two-prompt diff: the page's text (A) against a second prompt (B) at
//! the shown stage of the selected layer and head, A − B drawn with the
//! diverging map (tokens aligned by position; both prompts need the same
//! token count), and how the next-token probabilities change from A to B.
//! Computed only while the panel is on screen.

use leptos::prelude::*;

use crate::engine::Matrix;
use crate::render::export::Figure;
use crate::render::text::visible;
use crate::render::ColourMap;
use crate::ui::backend::{spawn_latest, Backend, BackendError, PromptDiff};
use crate::ui::state::PageState;
use crate::ui::web::visible::on_screen;

/// A − B, −∞ where A is masked; the largest |difference| elsewhere.
fn difference(a: &Matrix, b: &Matrix) -> (Matrix, f32) {
    let data: Vec<f32> = a
        .data
        .iter()
        .zip(&b.data)
        .map(|(&x, &y)| if x == f32::NEG_INFINITY || y == f32::NEG_INFINITY { f32::NEG_INFINITY } else { x - y })
        .collect();
    let span = data.iter().filter(|v| v.is_finite()).fold(0.0f32, |m, v| m.max(v.abs()));
    (Matrix::from_vec(a.rows, a.cols, data), span)
}

/// "A-token/B-token" where they differ, the token where they agree.
fn aligned(a: &[String], b: &[String]) -> Vec<String> {
    a.iter().zip(b).map(|(x, y)| if x == y { visible(x) } else { format!("{}/{}", visible(x), visible(y)) }).collect()
}

#[component]
pub fn DiffPanel() -> impl IntoView {
    let state = PageState::from_context();
    let backend = Backend::from_context();
    let (outputs, h) = (state.outputs, state.selection.heads);
    let panel = NodeRef::<leptos::html::Section>::new();
    let on_view = on_screen(panel);
    let result = RwSignal::new(None::<Result<PromptDiff, String>>);

    Effect::new(move |_| {
        outputs.runs.track();
        let b = h.prompt_b.get();
        let view = state.view();
        if !on_view.get() || outputs.shown_tokens.get_untracked() == 0 || b.is_empty() {
            if result.with_untracked(Option::is_some) {
                result.set(None);
            }
            return;
        }
        let key = move || (outputs.runs.get(), h.prompt_b.get(), state.view());
        let work = backend.diff(b, view);
        spawn_latest("two-prompt diff", key, async move { Ok::<_, BackendError>(work.await) }, move |r| {
            result.set(Some(r.map_err(|e| e.to_string())))
        });
    });

    let body = move || {
        let d = match result.get()? {
            Ok(d) => d,
            Err(e) => return Some(view! { <p class="hint error">{e}</p> }.into_any()),
        };
        let view = state.view_untracked();
        let figure = match &d.stages {
            Some((a, b)) => {
                let (values, span) = difference(a, b);
                let labels = aligned(&d.a_tokens, &d.b_tokens);
                let cols = if view.stage.square() {
                    labels.clone()
                } else {
                    (0..values.cols).map(|j| format!("d{j}")).collect()
                };
                let svg = Figure {
                    title: format!("A − B · {} · layer {} · head {}", view.stage.title(), view.layer, view.head),
                    caption: format!("largest |A − B| = {span:.4}"),
                    values: &values,
                    masked: None,
                    colour_map: ColourMap::Diverging,
                    range: (-span.max(1e-6), span.max(1e-6)),
                    row_labels: labels,
                    col_labels: cols,
                }
                .svg();
                view! {
                    <div class="diff-figure scroll-x" tabindex="0" role="region" data-testid="diff-figure"
                        data-span=span aria-label=format!("A − B of {} in layer {}, head {}: largest difference {span:.4}",
                            view.stage.title(), view.layer, view.head)
                        inner_html=svg></div>
                }
                .into_any()
            }
            None => view! {
                <p class="hint" data-testid="diff-lengths">{format!(
                    "A has {} tokens and B {}: the stages are compared position by position, so they need the same \
                     count. The next-token change below needs no alignment.",
                    d.a_tokens.len(), d.b_tokens.len()
                )}</p>
            }
            .into_any(),
        };
        let rows = d
            .next
            .iter()
            .map(|(id, text, pa, pb)| {
                view! {
                    <tr data-token-id=*id data-pa=*pa data-pb=*pb><th scope="row">{visible(text)}</th>
                        <td>{format!("{:.2}%", 100.0 * pa)}</td><td>{format!("{:.2}%", 100.0 * pb)}</td>
                        <td>{format!("{:+.2}", 100.0 * (pb - pa))}</td></tr>
                }
            })
            .collect_view();
        Some(
            view! {
                {figure}
                <table class="contrib-table diff-next" data-testid="diff-next">
                    <thead><tr><th scope="col">"next token"</th><th scope="col">"after A"</th>
                        <th scope="col">"after B"</th><th scope="col">"B − A (points)"</th></tr></thead>
                    <tbody>{rows}</tbody>
                </table>
            }
            .into_any(),
        )
    };

    view! {
        <section class="panel diff-panel" node_ref=panel>
            <h2 class="panel-heading nav-target" tabindex="-1">"Two-prompt diff"</h2>
            <p class="formula">"The text (A) against a second prompt (B): the stage the attention panel shows, for its \
                layer and head, as A − B position by position, and how the next token changes."</p>
            <label class="control-label" for="diff-b">"Prompt B"</label>
            <input id="diff-b" class="patch-source" type="text" prop:value=move || h.prompt_b.get()
                on:input=move |ev| h.prompt_b.set(event_target_value(&ev)) />
            <p class="diff-prompts" data-testid="diff-prompts">
                <span>"A: “"{move || state.selection.text.get()}"”"</span>
                <span>"B: “"{move || h.prompt_b.get()}"”"</span>
            </p>
            {move || h.prompt_b.with(String::is_empty).then(|| view! {
                <p class="hint">"Type a second prompt, e.g. the text with one word changed."</p>
            })}
            {move || {
                let shown = h.show.get() && !h.ablated.with(Vec::is_empty) && !h.prompt_b.with(String::is_empty);
                let heads = outputs.intervention.with(|o| match o {
                    Some(Ok(o)) => Some(crate::inspect::heads_label(&o.heads)),
                    _ => None,
                });
                heads.filter(|_| shown).map(|heads| view! {
                    <p class="hint" data-testid="diff-intervened">{format!(
                        "The page shows {heads} replaced (ablation panel): A and B are both run with them replaced."
                    )}</p>
                })
            }}
            {body}
        </section>
    }
}
