//! The page: it makes the state and the backend and gives them to every
//! panel through context, loads the model, runs the model on the newest text
//! at most once a frame, and lays out the top bar, the panel bar, the
//! banners and the two columns of panels.

use std::cell::Cell;
use std::rc::Rc;

use leptos::prelude::*;
use leptos::task::spawn_local;

use super::backend::{Backend, MODEL_NAME};
use super::models::chooser::{ModelBar, ModelButton, ModelDrawer};
use super::models::Models;
use super::panels::{
    AblationPanel, AttentionPanel, BlockPanel, CostPanel, DiffPanel, DilutionPanel, GeneratePanel, GlossaryPanel,
    HeadFinderPanel, HeadsPanel, InputPanel, LensPanel, ModelGridPanel, NextTokenPanel, PositionsPanel,
    TokenizersPanel,
};
use super::state::{PageState, Phase, Theme};
use super::web::present::{self, PresenterBar};
use super::web::{dom, query, share, test_hook};
use crate::share::Panel;

/// The panel bar, one entry per panel: the panel's heading (the entry's
/// label is the heading's text) and the class of the panel.
const PANEL_LINKS: [(&str, &str); 16] = [
    ("Text", "input-panel"),
    ("Attention", "attention-panel"),
    ("Next token", "next-panel"),
    ("Generate", "generate-panel"),
    ("Head view", "head-view-panel"),
    ("Every layer and head", "model-panel"),
    ("Head finder", "finder-panel"),
    ("Residual stream", "block-panel"),
    ("Positions", "positions-panel"),
    ("Tokenizers", "tokenizer-panel"),
    ("Cost", "cost-panel"),
    ("Dilution", "dilution-panel"),
    ("Logit lens", "lens-panel"),
    ("Ablation and patching", "ablation-panel"),
    ("Two-prompt diff", "diff-panel"),
    ("Glossary", "glossary-panel"),
];

/// A run slower than this (ms, about a frame) puts up the "working" sign before the next one.
const SLOW_RUN_MS: f64 = 16.0;

/// Whether the page is dark now: forced, or the system's when it follows it.
fn shows_dark(theme: Theme) -> bool {
    match theme {
        Theme::Dark => true,
        Theme::Light => false,
        Theme::Auto => dom::system_prefers_dark(),
    }
}

/// What an embedded widget shows, in a line.
fn embed_title(state: PageState) -> String {
    let s = state.selection;
    let (layer, head) = (s.layer.get(), s.head.get());
    match s.panel.get() {
        Panel::Stage => format!("{} · layer {layer} · head {head}", s.stage.get().title()),
        Panel::Heads => format!("Head view · layer {layer}"),
        Panel::Grid => "Softmax weights of every layer and head".to_owned(),
        Panel::Residual => format!("Residual stream · layer {layer}"),
        Panel::Tokens => "Tokens".to_owned(),
        Panel::Diff => format!("A − B · {} · layer {layer} · head {head}", s.stage.get().title()),
        Panel::Next => {
            let text = s.text.get();
            let short: String = text.chars().take(40).collect();
            let more = if text.chars().count() > 40 { "…" } else { "" };
            format!("Next token after “{short}{more}”")
        }
    }
}

/// The model's download: a bar with bytes and percent (a moving bar when the
/// size is unknown), then "starting" while the weights go to the backend.
#[component]
fn LoadingBanner() -> impl IntoView {
    let status = PageState::from_context().status;
    let line = move || match status.download.get() {
        None => "Loading the model…".to_owned(),
        Some((done, total)) if total > 0.0 && done >= total => {
            "Loading the model: preparing it for this device…".to_owned()
        }
        Some((done, total)) if total > 0.0 => format!(
            "Loading the model: {} of {} ({:.0} %)",
            crate::render::text::bytes(done as u64),
            crate::render::text::bytes(total as u64),
            100.0 * done / total
        ),
        Some((done, _)) => format!("Loading the model: {}", crate::render::text::bytes(done as u64)),
    };
    view! {
        <div class="banner info loading" role="status" data-testid="loading">
            <span>{line}</span>
            <progress class="download" aria-label="Model download"
                max=move || status.download.get().map_or(1.0, |(_, t)| if t > 0.0 { t } else { 1.0 })
                value=move || status.download.get().and_then(|(d, t)| (t > 0.0).then_some(d.min(t)))></progress>
        </div>
    }
}

/// Loads the model and opens the backend, then shows what it is.
fn load(state: PageState, backend: Backend) {
    spawn_local(async move {
        let download = state.status.download;
        match backend.load(move |done, total| download.set(Some((done, total)))).await {
            // A link may name a layer or head this model does not have: show_model says so.
            Ok(host) => super::models::show_model(state, backend, &host, Some(MODEL_NAME.to_owned())),
            Err(e) => state.status.phase.set(Phase::Failed(e.to_string())),
        }
    });
}

#[component]
pub fn Page() -> impl IntoView {
    let state = PageState::new(query::current().embed);
    let backend = Backend::default();
    provide_context(state);
    provide_context(backend);
    let models = Models::new();
    provide_context(models);
    super::models::follow_link_requests(state, backend, models);
    test_hook::install(state, backend);
    share::install(state);
    present::install(state);
    load(state, backend);
    let (s, status) = (state.selection, state.status);
    // The panel bar's entry that takes the Tab stop (the last one focused).
    let nav_at = RwSignal::new(0usize);

    // Recompute at most once a frame, with the newest text: a keystroke never
    // waits behind the runs of older texts.
    // When the last run took longer than a frame, a "working" sign goes up
    // first and the run waits until it is painted.
    let scheduled = Rc::new(Cell::new(false));
    let last_ms = Rc::new(Cell::new(0.0f64));
    Effect::new(move |_| {
        s.text.track();
        s.mask.track();
        state.generation.steps.track();
        if status.phase.get() != Phase::Ready || scheduled.get() {
            return;
        }
        scheduled.set(true);
        let slow = last_ms.get() > SLOW_RUN_MS;
        let (scheduled, last_ms) = (scheduled.clone(), last_ms.clone());
        let run = move || {
            scheduled.set(false);
            let started = dom::now_ms();
            backend.compute(state);
            last_ms.set(dom::now_ms() - started);
            status.working.set(false);
        };
        if slow {
            status.working.set(true);
            // This frame paints the sign; the run starts in the task after it.
            request_animation_frame(move || set_timeout(run, std::time::Duration::ZERO));
        } else {
            request_animation_frame(run);
        }
    });

    // The colour theme: the system's (auto), or forced dark or light; the
    // high-contrast one while presenting.
    Effect::new(move |_| {
        let theme = s.theme.get();
        dom::set_theme_attribute(match (s.present.get(), theme) {
            (Some(_), _) => Some("contrast"),
            (None, Theme::Auto) => None,
            (None, t) => Some(t.key()),
        });
    });

    // Back to WebGPU after a loss (or a first failure).
    let retry_gpu = move || {
        spawn_local(async move {
            if let Err(e) = backend.restore_gpu(state).await {
                status.gpu_error.set(Some(format!("WebGPU is still unavailable: {e}")));
            }
        });
    };

    view! {
        <div class="app" class:embed=state.embed class:present=move || s.present.get().is_some()
            class:one-panel=move || state.embed || s.present.get().is_some()
            data-panel=move || s.panel.get().key()>
            <button class="skip-link" on:click=move |_| dom::focus(".heatmap-canvas:not(.off)")>
                "Skip to the heatmap"</button>
            {state.embed.then(|| view! {
                <div class="embed-bar">
                    <span class="embed-title" data-testid="embed-title">{move || embed_title(state)}</span>
                    <a class="embed-open" target="_blank" rel="noopener" href=move || share::full_page_link(state)
                        title="Open this view in the full attnscope page">"open in attnscope ↗"</a>
                </div>
            })}
            <PresenterBar />
            <header class="topbar">
                <h1>"attnscope"</h1>
                <span class="badge" title=move || format!("The weights the page runs: {}", status.model_label.get())>
                    "Model: " {move || status.model_label.get()}</span>
                <span class="badge backend" data-testid="backend">{move || status.backend_label.get()}</span>
                <ModelButton />
                <button class="seg present-button" title="Presenter mode: full screen, large type, step through the computation (P)"
                    on:click=move |_| present::enter(state)>"Present"</button>
                <button class="seg share-button" title="Copy a link that opens this exact screen"
                    on:click=move |_| share::share(state)>"Share"</button>
                // Names what a click does: the other theme than the one shown.
                <button class="seg theme-button"
                    title=move || match s.theme.get() {
                        Theme::Auto => "Switch theme (the page now follows the system's)",
                        _ => "Switch theme",
                    }
                    on:click=move |_| s.theme.set(if shows_dark(s.theme.get_untracked()) { Theme::Light } else { Theme::Dark })>
                    {move || if shows_dark(s.theme.get()) { "Light theme" } else { "Dark theme" }}
                </button>
            </header>
            <ModelDrawer />
            <ModelBar />
            <nav class="panel-nav" aria-label="Panels (arrow keys move along the bar)"
                on:keydown=move |ev| if let Some(i) = dom::roving_key(&ev, ".nav-link") { nav_at.set(i) }>
                {PANEL_LINKS.into_iter().enumerate().map(|(i, (label, class))| view! {
                    // Scrolls to the panel and moves the focus to its heading (an #anchor would
                    // overwrite the address's fragment, which holds the page's state). The bar
                    // is one Tab stop; ←/→ move along it.
                    <button class="nav-link" tabindex=move || if nav_at.get() == i { "0" } else { "-1" }
                        on:focus=move |_| nav_at.set(i)
                        on:click=move |_| dom::jump_to(&format!(".{class}"))>{label}</button>
                }).collect_view()}
            </nav>
            {move || status.link_note.get().map(|note| view! {
                <div class="banner info link-note" role="status" data-testid="link-note">
                    {note}
                    " "
                    <button class="seg" on:click=move |_| status.link_note.set(None)>"OK"</button>
                </div>
            })}
            {move || match status.phase.get() {
                Phase::Loading => Some(view! { <LoadingBanner /> }.into_any()),
                Phase::Failed(e) => Some(view! {
                    <div class="banner error" role="alert">{e}</div>
                }.into_any()),
                Phase::Ready => None,
            }}
            {move || status.gpu_error.get().map(|e| view! {
                <div class="banner info" role="status" data-testid="cpu-fallback">
                    <strong>"Running on the CPU. "</strong>
                    "WebGPU is not available here, so the model runs as its CPU reference compiled to WebAssembly: "
                    "the same numbers, computed and drawn without the GPU (slower on long texts). "
                    <span class="detail">"(" {e} ")"</span>
                    " "
                    <button class="seg retry-gpu" on:click=move |_| retry_gpu()>"Try WebGPU again"</button>
                </div>
            })}
            <InterventionBanner />
            <main>
                <div class="column">
                    <InputPanel />
                    <NextTokenPanel />
                    <GeneratePanel />
                    <HeadsPanel />
                    <ModelGridPanel />
                    <HeadFinderPanel />
                </div>
                <div class="column wide-column">
                    <AttentionPanel />
                    <BlockPanel />
                    <PositionsPanel />
                    <TokenizersPanel />
                    <CostPanel />
                    <DilutionPanel />
                    <LensPanel />
                    <AblationPanel />
                    <DiffPanel />
                </div>
                <GlossaryPanel />
            </main>
        </div>
    }
}

/// Says, above every panel, that the page shows an ablated or patched run
/// (and which), with a way back to the clean run and to the panel that chose it.
#[component]
fn InterventionBanner() -> impl IntoView {
    let state = PageState::from_context();
    let h = state.selection.heads;
    let shown = move || {
        if !h.show.get() {
            return None;
        }
        let outcome = state.outputs.intervention.get()?.ok()?;
        let heads = crate::inspect::heads_label(&outcome.heads);
        let how = match outcome.mode {
            crate::engine::intervene::Replacement::Zero => "set to zero",
            crate::engine::intervene::Replacement::Mean => "replaced by their mean",
            crate::engine::intervene::Replacement::Patch => "patched from the second prompt",
        };
        Some(view! {
            <div class="banner info intervened" role="status" data-testid="intervened-banner"
                data-heads=outcome.heads.len() data-first-layer=outcome.first_layer>
                <strong>{format!("Every panel shows the run with {} {} {how}", if outcome.heads.len() == 1 { "head" } else { "heads" }, heads)}</strong>
                {match outcome.first_layer {
                    0 => " (every layer re-run). ".to_owned(),
                    1 => " (layer 0 unchanged). ".to_owned(),
                    n => format!(" (layers 0–{} unchanged). ", n - 1),
                }}
                <button class="seg show-clean" on:click=move |_| h.show.set(false)>"Show the clean run"</button>
                " "
                <button class="seg" on:click=move |_| dom::jump_to(".ablation-panel")>"Ablation panel"</button>
            </div>
        })
    };
    view! { {shown} }
}
