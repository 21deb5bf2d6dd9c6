//! Another model than the built-in one: chosen in the top bar (`chooser`),
//! named by a link's `model=` or an embed's `model` attribute, or given as
//! files. Each goes: plan (headers by Range requests, checked against the
//! device's limits) → ask when a link named it or it is large → download with
//! progress and Cancel (kept in Cache Storage) → build → the backend replaces
//! its Host → the page re-reads the model's shape and runs again. Until the
//! last step the current model keeps working; any failure leaves it in place
//! and says why.

pub mod chooser;
mod fetch_plan;

use std::rc::Rc;

use leptos::prelude::*;
use leptos::task::spawn_local;

use self::fetch_plan::{build_remote, plan_remote, LocalFiles, Planned};
use crate::model::plan::limits_text;
use crate::model::source::ModelSource;
use crate::model::Model;
use crate::ui::backend::{Backend, Host};
use crate::ui::state::{PageState, Phase};
use crate::ui::web::dom::{now_ms, Pacer};
use crate::ui::web::models::{self as store, FileProgress, KeptModel, LoadError};

/// A model the user clicked is downloaded without asking up to this size.
const ASK_ABOVE_BYTES: u64 = 50_000_000;

/// A download under way.
#[derive(Debug, Clone, PartialEq)]
pub struct Progress {
    pub name: String,
    pub done: f64,
    pub total: f64,
    pub started_ms: f64,
    pub files: Vec<FileProgress>,
}

/// A planned model waiting for the user's OK.
#[derive(Debug, Clone)]
pub struct Pending {
    pub planned: Planned,
    /// Named by a link or an embed attribute, not by a click.
    pub by_link: bool,
    /// What this device allows, in words.
    pub limits: String,
}

/// A line for the user: what happened, or why not.
#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    pub error: bool,
    pub text: String,
}

/// The chooser's state, given through context by the page.
#[derive(Clone, Copy)]
pub struct Models {
    /// The chooser's drawer is open.
    pub open: RwSignal<bool>,
    /// Planning (Range reads) is under way: what for.
    pub busy: RwSignal<Option<String>>,
    pub pending: RwSignal<Option<Pending>>,
    pub progress: RwSignal<Option<Progress>>,
    pub message: RwSignal<Option<Message>>,
    pub kept: RwSignal<Vec<KeptModel>>,
    /// This origin's storage: (used, quota, persisted).
    pub storage: RwSignal<(f64, f64, bool)>,
}

impl Models {
    pub fn new() -> Self {
        Self {
            open: RwSignal::new(false),
            busy: RwSignal::new(None),
            pending: RwSignal::new(None),
            progress: RwSignal::new(None),
            message: RwSignal::new(None),
            kept: RwSignal::new(Vec::new()),
            storage: RwSignal::new((0.0, 0.0, false)),
        }
    }

    pub fn from_context() -> Self {
        use_context::<Models>().unwrap_or_default()
    }

    fn say(self, error: bool, text: impl Into<String>) {
        self.message.set(Some(Message { error, text: text.into() }));
    }

    /// Whether a model is being planned or downloaded.
    pub fn working(self) -> bool {
        self.busy.get_untracked().is_some() || self.progress.get_untracked().is_some()
    }

    /// Reads the list of kept models and the storage estimate again.
    pub fn refresh_kept(self) {
        spawn_local(async move {
            self.kept.set(store::list().await);
            self.storage.set(store::estimate().await);
        });
    }
}

impl Default for Models {
    fn default() -> Self {
        Self::new()
    }
}

/// Shows a newly loaded model: its label and shape, a selection it has, no
/// continuation of the old model's tokens; then runs it on the text.
pub fn show_model(state: PageState, backend: Backend, host: &Host, key: Option<String>) {
    let status = state.status;
    status.model_label.set(host.model_label());
    status.config.set(Some(host.model.config.clone()));
    status.model_key.set(key);
    state.generation.playing.set(false);
    state.generation.steps.set(Vec::new());
    state.outputs.next.set(Vec::new());
    state.outputs.hover_value.set(None);
    state.outputs.legend.set(None);
    if let Some(note) = state.fit_selection_to_model() {
        state.add_link_note(note);
    }
    backend.show_backend(state);
    if status.phase.get_untracked() == Phase::Ready {
        backend.compute(state);
    } else {
        status.phase.set(Phase::Ready);
    }
}

/// Puts `model` in place of the current one and tells the page.
async fn switch_to(state: PageState, backend: Backend, model: Model, key: Option<String>) -> Result<(), LoadError> {
    let host: Rc<Host> = backend.replace(model).await.map_err(|e| LoadError::Backend(e.to_string()))?;
    show_model(state, backend, &host, key);
    Ok(())
}

fn current_name(state: PageState) -> String {
    state.status.model_label.get_untracked().split(" · ").next().unwrap_or("the current model").to_owned()
}

/// Opens `source`: the built-in model at once; another after planning it,
/// asking first when `by_link` or when it is large.
pub fn choose(state: PageState, backend: Backend, models: Models, source: ModelSource, by_link: bool) {
    if models.working() {
        return models.say(true, "Another model is being fetched: cancel it first.");
    }
    models.message.set(None);
    models.pending.set(None);
    if source == ModelSource::Default {
        spawn_local(async move {
            models.busy.set(Some("Opening the built-in model…".into()));
            let result = backend.load(|_, _| {}).await;
            models.busy.set(None);
            match result {
                Ok(host) => {
                    show_model(state, backend, &host, Some("default".into()));
                    models.say(false, "The built-in model is open.");
                }
                Err(e) => models.say(true, format!("The built-in model could not be opened: {e}")),
            }
        });
        return;
    }
    let name = source.display_name();
    spawn_local(async move {
        models.busy.set(Some(format!("Reading the size of {name}…")));
        let planned = plan_remote(&source).await;
        models.busy.set(None);
        let planned = match planned {
            Ok(p) => p,
            Err(e) => return models.say(true, refused_text(&name, &current_name(state), &e)),
        };
        let limits = backend.device_limits();
        if let Err(refusal) = planned.plan.check(&limits) {
            let e = LoadError::Refused(refusal);
            return models
                .say(true, format!("{} ({})", refused_text(&name, &current_name(state), &e), limits_text(&limits)));
        }
        let pending = Pending { planned, by_link, limits: limits_text(&limits) };
        // Kept on this device: nothing to download, nothing to ask.
        let large = pending.planned.plan.download_bytes > ASK_ABOVE_BYTES;
        if !pending.planned.kept && (by_link || large) {
            models.pending.set(Some(pending));
        } else {
            download(state, backend, models, pending);
        }
    });
}

fn refused_text(name: &str, current: &str, e: &LoadError) -> String {
    format!("{name} was not opened: {e}. {current} stays.")
}

/// Downloads a planned model and opens it.
pub fn download(state: PageState, backend: Backend, models: Models, pending: Pending) {
    models.pending.set(None);
    models.message.set(None);
    let planned = pending.planned;
    let name = planned.source.display_name();
    let total = planned.plan.download_bytes as f64;
    models.progress.set(Some(Progress {
        name: name.clone(),
        done: 0.0,
        total,
        started_ms: now_ms(),
        files: planned
            .files
            .iter()
            .map(|f| FileProgress { name: f.name.clone(), done: 0.0, size: f.size as f64 })
            .collect(),
    }));
    spawn_local(async move {
        let progress = models.progress;
        let fetched = store::download(&planned.key, &name, &planned.files, move |done, total, files| {
            progress.update(|p| {
                if let Some(p) = p {
                    (p.done, p.total, p.files) = (done, total.max(done), files);
                }
            })
        })
        .await;
        let result = match fetched {
            Ok(d) => match build_remote(&planned, &d.files).await {
                Ok(model) => switch_to(state, backend, model, planned.source.key()).await.map(|()| d),
                Err(e) => Err(e),
            },
            Err(e) => Err(e),
        };
        models.progress.set(None);
        if result.is_err() {
            // Files that do not make a model are not kept (a cancelled or failed download kept nothing).
            let _ = store::remove(&planned.key).await;
        }
        let current = current_name(state);
        match result {
            Ok(d) if d.kept => {
                let from = if d.network == 0 { " (from this device, no network)" } else { "" };
                models.say(false, format!("{name} is open{from}; it is kept on this device for next time."));
            }
            Ok(d) => models.say(false, format!("{name} is open for this visit only: {}.", d.note)),
            Err(LoadError::Cancelled) => {
                models.say(false, format!("The download of {name} was cancelled; nothing was kept. {current} stays."))
            }
            Err(e) => models.say(true, refused_text(&name, &current, &e)),
        }
        models.refresh_kept();
    });
}

/// Opens the user's own files (picker or drop).
pub fn open_files(state: PageState, backend: Backend, models: Models, files: Vec<web_sys::File>) {
    if models.working() {
        return models.say(true, "Another model is being fetched: cancel it first.");
    }
    models.message.set(None);
    models.pending.set(None);
    spawn_local(async move {
        models.busy.set(Some(format!("Reading {} file(s)…", files.len())));
        let result = async {
            let mut read = Vec::with_capacity(files.len());
            for f in &files {
                read.push((f.name(), store::file_bytes(f).await?));
            }
            let local = LocalFiles { files: read };
            let limits = backend.device_limits();
            local.plan()?.check(&limits)?;
            let mut pacer = Pacer::new();
            let model = local.build_paced(async || pacer.pause().await).await?;
            let name = local.display_name();
            switch_to(state, backend, model, None).await.map(|()| name)
        }
        .await;
        models.busy.set(None);
        match result {
            Ok(name) => models.say(false, format!("{name} is open (from your files; nothing was copied or kept).")),
            Err(e) => models.say(true, refused_text("Your files", &current_name(state), &e)),
        }
    });
}

/// Acts on a model a link or an embed attribute names, once the page is ready.
pub fn follow_link_requests(state: PageState, backend: Backend, models: Models) {
    Effect::new(move |_| {
        let Some(request) = state.status.model_request.get() else { return };
        if state.status.phase.get() != Phase::Ready {
            return;
        }
        state.status.model_request.set(None);
        match ModelSource::parse(&request) {
            Ok(source) if source.key() == state.status.model_key.get_untracked() => {}
            Ok(source) => untrack(|| choose(state, backend, models, source, true)),
            Err(e) => state.add_link_note(format!("This link's model could not be read: {e}")),
        }
    });
}
