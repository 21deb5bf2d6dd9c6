//! The model chooser: a button in the top bar, its drawer (presets, a hub id
//! or URL, "Open files…" and a drop zone, the models kept on this device) and
//! the bar that shows a plan to confirm, a download's progress, or what
//! happened.

use leptos::prelude::*;
use wasm_bindgen::JsCast;

use super::{choose, download, open_files, Models};
use crate::model::plan::{mb_text, size_text};
use crate::model::source::{ModelSource, PRESETS};
use crate::ui::backend::Backend;
use crate::ui::state::PageState;
use crate::ui::web::dom::now_ms;
use crate::ui::web::models as store;

fn files_of(list: Option<web_sys::FileList>) -> Vec<web_sys::File> {
    let Some(list) = list else { return Vec::new() };
    (0..list.length()).filter_map(|i| list.get(i)).collect()
}

/// The top bar's button that opens the drawer.
#[component]
pub fn ModelButton() -> impl IntoView {
    let models = Models::from_context();
    view! {
        <button class="seg model-button" data-testid="model-button"
            aria-expanded=move || models.open.get().to_string() aria-controls="model-drawer"
            title="Open another model: GPT-2, SmolLM2, any hub repo, a URL or your own files"
            on:click=move |_| {
                models.open.update(|o| *o = !*o);
                if models.open.get_untracked() {
                    models.refresh_kept();
                }
            }>"Change model"</button>
    }
}

/// The drawer under the top bar.
#[component]
pub fn ModelDrawer() -> impl IntoView {
    let (state, backend, models) = (PageState::from_context(), Backend::from_context(), Models::from_context());
    let typed = RwSignal::new(String::new());
    let typed_error = RwSignal::new(None::<String>);
    let dragging = RwSignal::new(false);
    let picker = NodeRef::<leptos::html::Input>::new();
    let open_typed = move || match ModelSource::parse(&typed.get_untracked()) {
        Ok(source) => {
            typed_error.set(None);
            models.open.set(false);
            choose(state, backend, models, source, false);
        }
        Err(e) => typed_error.set(Some(e.to_string())),
    };
    let kept_rows = move || {
        models
            .kept
            .get()
            .into_iter()
            .map(|m| {
                let key = m.key.clone();
                view! {
                    <li>
                        <span class="kept-name">{m.name.clone()}</span>
                        " · " {size_text(m.bytes as u64)} " "
                        <button class="seg" data-testid="kept-delete" on:click=move |_| {
                            let key = key.clone();
                            leptos::task::spawn_local(async move {
                                if let Err(e) = store::remove(&key).await {
                                    models.message.set(Some(super::Message { error: true, text: e.to_string() }));
                                }
                                models.refresh_kept();
                            });
                        }>"Delete"</button>
                    </li>
                }
            })
            .collect_view()
    };
    view! {
        <section id="model-drawer" class="model-drawer" class:off=move || !models.open.get()
            aria-label="Choose a model" data-testid="model-drawer">
            <div class="model-presets" role="group" aria-label="Models">
                {PRESETS.into_iter().map(|p| view! {
                    <button class="seg" data-testid=format!("preset-{}", p.key)
                        aria-pressed=move || (state.status.model_key.get().as_deref() == p.source().key().as_deref()).to_string()
                        on:click=move |_| { models.open.set(false); choose(state, backend, models, p.source(), false) }>{p.label}</button>
                }).collect_view()}
            </div>
            <form class="model-typed" on:submit=move |ev| { ev.prevent_default(); open_typed(); }>
                <label for="model-id">"Hub repo or URL"</label>
                <input id="model-id" type="text" spellcheck="false" autocomplete="off" data-testid="model-id"
                    placeholder="org/name, org/name@revision or https://…/model-folder"
                    prop:value=move || typed.get() on:input=move |ev| typed.set(event_target_value(&ev)) />
                <button class="seg" type="submit" data-testid="model-open">"Open"</button>
            </form>
            {move || typed_error.get().map(|e| view! { <p class="model-typed-error" role="alert">{e}</p> })}
            <div class="model-drop" class:dragging=move || dragging.get() data-testid="model-drop"
                on:dragover=move |ev| { ev.prevent_default(); dragging.set(true); }
                on:dragleave=move |_| dragging.set(false)
                on:drop=move |ev: web_sys::DragEvent| {
                    ev.prevent_default();
                    dragging.set(false);
                    let files = files_of(ev.data_transfer().and_then(|d| d.files()));
                    if !files.is_empty() {
                        models.open.set(false);
                        open_files(state, backend, models, files);
                    }
                }>
                <button class="seg" data-testid="model-files" on:click=move |_| {
                    if let Some(input) = picker.get() { input.click(); }
                }>"Open files…"</button>
                " or drop here " <code>"config.json"</code> " + " <code>"*.safetensors"</code> " (+ index) + "
                <code>"tokenizer.json"</code> ", or one " <code>".gguf"</code> "; they stay on your device."
                <input node_ref=picker type="file" multiple class="off" data-testid="model-picker"
                    accept=".json,.safetensors,.gguf"
                    on:change=move |ev| {
                        let input = ev.target().and_then(|t| t.dyn_into::<web_sys::HtmlInputElement>().ok());
                        let files = files_of(input.as_ref().and_then(|i| i.files()));
                        if let Some(i) = input { i.set_value(""); }
                        if !files.is_empty() {
                            models.open.set(false);
                            open_files(state, backend, models, files);
                        }
                    } />
            </div>
            <div class="model-kept" data-testid="model-kept">
                <h3>"Models on this device"</h3>
                {move || {
                    let (used, quota, persisted) = models.storage.get();
                    (quota > 0.0).then(|| format!(
                        "This site uses {} MB of {} MB{}.",
                        mb_text(used as u64), mb_text(quota as u64),
                        if persisted { " (kept until you delete it)" } else { " (the browser may clear it when space runs low)" }
                    ))
                }}
                <ul>{kept_rows}</ul>
                {move || models.kept.get().is_empty().then(|| view! { <p class="muted">"None yet."</p> })}
            </div>
        </section>
    }
}

/// "3.2 MB/s, about 12 s left".
fn rate_text(done: f64, total: f64, started_ms: f64) -> String {
    let seconds = ((now_ms() - started_ms) / 1000.0).max(0.001);
    let rate = done / seconds;
    if done <= 0.0 || rate <= 0.0 {
        return "starting…".into();
    }
    let left = ((total - done).max(0.0) / rate).ceil();
    format!("{:.1} MB/s, about {left:.0} s left", rate / 1e6)
}

/// Planning, the plan to confirm, the download, and the last message.
#[component]
pub fn ModelBar() -> impl IntoView {
    let (state, backend, models) = (PageState::from_context(), Backend::from_context(), Models::from_context());
    let downloading = Memo::new(move |_| models.progress.with(Option::is_some));
    view! {
        {move || models.busy.get().map(|b| view! {
            <div class="banner info" role="status" data-testid="model-busy">{b}</div>
        })}
        {move || models.pending.get().map(|p| {
            let name = p.planned.source.display_name();
            let ask = if p.by_link { "This link asks for the model " } else { "Open " };
            let confirm = p.clone();
            view! {
                <div class="banner info model-plan" role="alertdialog" aria-label="Download a model?" data-testid="model-plan">
                    <span>{ask} <strong>{name}</strong> "? " {p.planned.plan.summary()} "; " {p.limits.clone()} "."</span>
                    <button class="seg" data-testid="model-download"
                        on:click=move |_| download(state, backend, models, confirm.clone())>"Download"</button>
                    <button class="seg" data-testid="model-decline"
                        on:click=move |_| models.pending.set(None)>"Keep the current model"</button>
                </div>
            }
        })}
        // Built once per download, its figures updated in place: the Cancel button stays put (and focused).
        {move || downloading.get().then(|| {
            let get = move |f: fn(&super::Progress) -> f64| models.progress.with(|p| p.as_ref().map_or(0.0, f));
            let line = move || {
                let (done, total) = (get(|p| p.done), get(|p| p.total));
                let percent = if total > 0.0 { 100.0 * done / total } else { 0.0 };
                format!(
                    "{} of {} ({percent:.0} %), {}",
                    size_text(done as u64),
                    size_text(total as u64),
                    rate_text(done, total, get(|p| p.started_ms))
                )
            };
            let name = models.progress.with_untracked(|p| p.as_ref().map(|p| p.name.clone()).unwrap_or_default());
            view! {
                <div class="banner info model-progress" role="status" data-testid="model-progress">
                    <span>"Downloading " <strong>{name}</strong> ": " {line}</span>
                    <progress class="download" aria-label="Model download"
                        max=move || get(|p| p.total).max(1.0) value=move || get(|p| p.done)></progress>
                    <button class="seg" data-testid="model-cancel" on:click=move |_| store::cancel()>"Cancel"</button>
                    <details class="model-files">
                        <summary>"Files"</summary>
                        <ul>{move || models.progress.with(|p| p.as_ref().map(|p| p.files.iter().map(|f| view! {
                            <li>{format!("{}: {} of {}", f.name, size_text(f.done as u64), size_text(f.size as u64))}</li>
                        }).collect_view()))}</ul>
                    </details>
                </div>
            }
        })}
        {move || models.message.get().map(|m| view! {
            <div class="banner model-message" class:error=m.error class:info=!m.error
                role=if m.error { "alert" } else { "status" } data-testid="model-message">
                {m.text}
                " "
                <button class="seg" on:click=move |_| models.message.set(None)>"OK"</button>
            </div>
        })}
    }
}
