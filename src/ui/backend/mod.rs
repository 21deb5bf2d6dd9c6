//! The backend the page computes and draws with, behind one handle given to
//! every panel through Leptos context ([`Backend`]): the GPU forward pass with
//! its canvas surfaces where WebGPU works (`gpu`), otherwise, or after the GPU
//! is lost, the CPU reference compiled to wasm with 2D painting (`cpu`). The
//! page asks the same questions of both. Only this module touches wgpu.
//!
//! Errors are typed ([`BackendError`]) so a caller can tell a lost device
//! (fall back to the CPU) from bad input (say so) from work a newer run made
//! stale (drop it); [`spawn_latest`] is the one place that drops stale results.

mod cpu;
mod gpu;
mod gpu_heads;
mod gpu_intervene;
mod inspect;
mod questions;
mod timer;

use std::cell::RefCell;
use std::future::Future;
use std::rc::Rc;

use leptos::prelude::*;
use leptos::task::spawn_local;
use thiserror::Error;

use self::cpu::CpuBackend;
use self::gpu::GpuBackend;
pub use self::questions::{FinderQuery, InterventionOutcome, PromptDiff};
pub use self::timer::ForwardTimer;
use super::state::{set_changed, Keystroke, PageState, View};
use super::web::canvas_size::CanvasSizes;
use super::web::dom::{after_this_frame, now_ms, sleep_ms, yield_to_browser};
use super::web::fetch::{fetch_bytes, fetch_with_progress, FetchError};
use super::web::query;
use crate::engine::cost::step_cost;
use crate::engine::stepwise::TraceRun;
use crate::engine::{EngineError, Mask, Matrix, TraceKeeps};
use crate::gpu::GpuError;
use crate::model::{compact_vocab, shuffle, Model, ModelConfig, ModelError, Token};
use crate::render::layout::{GridShape, MapWindow};

/// Where the page fetches the default model from (Trunk copies www/models to models/).
pub const MODEL_DIR: &str = "models/default";
pub const MODEL_NAME: &str = "default";
/// How many next tokens the page lists.
pub const TOP_K: usize = 10;
/// On the CPU, a model whose one new row costs more floating-point
/// operations than this (about 10M parameters) runs in steps
/// ([`Backend::compute`]): a keystroke on a 135M-parameter model costs ~270
/// MFLOP and, with the page's reaction, held the thread 60–110 ms. The
/// built-in model (about 2 MFLOP a row, 10 ms for its whole context) never does.
const STEPPED_ROW_FLOPS: f64 = 20e6;
/// A run in steps gives the thread back once a slice of steps took this long
/// (ms): the pacer's slice, well under the 50 ms after which a task delays
/// input noticeably, leaving room for the page's own reaction to the run.
const SLICE_MS: f64 = super::web::dom::Pacer::SLICE_MS;

/// How often the working sign of a run in steps says how far it is (ms),
/// the first time this long after the run began: a keystroke's run on a
/// large model (~150 ms) shows the sign alone, a pasted text's the steps.
const PROGRESS_MS: f64 = 250.0;

#[derive(Debug, Error)]
pub enum BackendError {
    /// The GPU faulted or was lost: the page carries on with the CPU.
    #[error("the GPU failed: {0}")]
    DeviceLost(String),
    /// WebGPU could not be opened here (no API, no adapter, a canvas refused it).
    #[error("{0}")]
    NoGpu(String),
    /// The text cannot be run as it is.
    #[error("{0}")]
    Input(String),
    /// A newer run or another view made this work stale.
    #[error("superseded by newer work")]
    Superseded,
    /// Nothing has run yet, or the model is not loaded.
    #[error("{0}")]
    NotReady(&'static str),
    /// The GPU is in the middle of other work (a re-entrant call).
    #[error("the GPU is busy")]
    Busy,
    #[error("the model could not be fetched: {0}")]
    Fetch(#[from] FetchError),
    #[error("the model could not be loaded: {0}")]
    Model(#[from] ModelError),
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error(transparent)]
    Gpu(GpuError),
}

impl From<GpuError> for BackendError {
    fn from(e: GpuError) -> Self {
        match e {
            GpuError::Lost(_) | GpuError::Validation(_) | GpuError::Device(_) | GpuError::Readback(_) => {
                BackendError::DeviceLost(e.to_string())
            }
            GpuError::TooLarge { .. } | GpuError::OverBudget { .. } | GpuError::TooManyWorkgroups { .. } => {
                BackendError::Input(e.to_string())
            }
            GpuError::Engine(e) => BackendError::Engine(e),
            other => BackendError::Gpu(other),
        }
    }
}

/// A map's canvas element (its WebGPU one or its 2D one).
type Canvas = web_sys::HtmlCanvasElement;
/// A cell of a map: (row, column).
pub type MapCell = (usize, usize);
/// What a draw returns.
type Drawn = Result<(), BackendError>;

/// A canvas to draw on and its size in device pixels.
#[derive(Clone, Copy)]
struct Target<'a> {
    canvas: &'a Canvas,
    size: (u32, u32),
}

impl std::ops::Deref for Target<'_> {
    type Target = Canvas;
    fn deref(&self) -> &Canvas {
        self.canvas
    }
}

/// The canvases the backend draws maps on; each has a WebGPU and a 2D element.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MapCanvas {
    /// The stage heatmap.
    Stage,
    /// The model view: every layer × head.
    Grid,
    /// The block view: residual norms and one token's strips.
    Block,
}

/// A map's two canvases: the one WebGPU draws on and the one the CPU paints.
#[derive(Clone)]
pub struct CanvasPair {
    pub gpu: Canvas,
    pub cpu: Canvas,
}

enum Engine {
    Gpu(Box<GpuBackend>),
    Cpu(CpuBackend),
}

/// The model and the engine running it.
pub struct Host {
    pub model: Model,
    engine: RefCell<Rc<Engine>>,
    /// Why the page runs on the CPU, if it does.
    gpu_error: RefCell<Option<String>>,
}

/// Time the backend spent drawing and reading since a keystroke's run began
/// (ms on the page's clock): the keystroke's breakdown adds it up.
#[derive(Debug, Clone, Copy, Default)]
struct Spent {
    draws: f64,
    reads: f64,
}

/// The handle panels use: `Copy`, empty until the model is loaded.
#[derive(Clone, Copy)]
pub struct Backend {
    host: StoredValue<Option<Rc<Host>>, LocalStorage>,
    spent: StoredValue<Spent, LocalStorage>,
    /// The maps' canvas sizes, observed rather than read per draw (made on first use).
    sizes: StoredValue<Option<Rc<CanvasSizes>>, LocalStorage>,
    /// Bumped when a map's canvas changed size: the maps redraw.
    pub resized: RwSignal<u64>,
    /// Bumped by every run: a run in steps that sees it change is dropped.
    epoch: StoredValue<u64, LocalStorage>,
    /// The epoch of the run in steps under way, if any.
    stepping: StoredValue<Option<u64>, LocalStorage>,
    /// Counts interventions applied: an outcome read back for an older one is dropped.
    applied: StoredValue<u64, LocalStorage>,
    /// The intervention being applied in paces on the CPU (a large model), if any.
    applying: StoredValue<Option<u64>, LocalStorage>,
    /// Times a run in steps has given the thread back to the browser (the test hook's `yields`).
    yields: StoredValue<u64, LocalStorage>,
}

/// Marks a run in steps over when dropped (however its task ends).
struct Stepping(Backend, u64);

impl Drop for Stepping {
    fn drop(&mut self) {
        let Stepping(backend, epoch) = *self;
        if backend.stepping.try_get_value() == Some(Some(epoch)) {
            backend.stepping.try_set_value(None);
        }
    }
}

impl Default for Backend {
    fn default() -> Self {
        Self {
            host: StoredValue::new_local(None),
            spent: StoredValue::new_local(Spent::default()),
            sizes: StoredValue::new_local(None),
            resized: RwSignal::new(0),
            epoch: StoredValue::new_local(0),
            stepping: StoredValue::new_local(None),
            applied: StoredValue::new_local(0),
            applying: StoredValue::new_local(None),
            yields: StoredValue::new_local(0),
        }
    }
}

impl Backend {
    /// The backend from context (an empty one if none was provided, which
    /// answers every question with [`BackendError::NotReady`]).
    pub fn from_context() -> Self {
        use_context::<Backend>().unwrap_or_default()
    }

    pub fn host(self) -> Option<Rc<Host>> {
        self.host.get_value()
    }

    fn ready(self) -> Result<Rc<Host>, BackendError> {
        self.host().ok_or(BackendError::NotReady("the model is not loaded yet"))
    }

    /// Fetches the default model and opens WebGPU (or, failing that, the CPU
    /// reference); the model is required, the GPU is not.
    /// `progress(bytes so far, total)` follows the weights' download (total 0 when unknown).
    pub async fn load(self, progress: impl Fn(f64, f64) + 'static) -> Result<Rc<Host>, BackendError> {
        let config = fetch_bytes(&format!("{MODEL_DIR}/config.json")).await?;
        // The weights' shuffled copy: the same bytes, regrouped so they gzip smaller.
        let shuffled = fetch_with_progress(&format!("{MODEL_DIR}/{}", shuffle::FILE_NAME), progress).await?;
        let weights = shuffle::unshuffle(&shuffled)?;
        drop(shuffled);
        // The tokenizer's compact copy: its vocabulary rebuilt from the merges.
        let tokenizer = fetch_bytes(&format!("{MODEL_DIR}/{}", compact_vocab::FILE_NAME)).await?;
        let tokenizer = compact_vocab::expand(&tokenizer)?;
        let model = Model::from_bytes(MODEL_NAME, &config, &weights, &tokenizer)?;
        self.replace(model).await
    }

    /// Runs `model` from now on, in place of the one loaded (if any): a new
    /// engine (WebGPU, else the CPU reference) and a new [`Host`]; every
    /// question asked after this is answered by the new model. The caller
    /// tells the page (its shape, labels) and runs it again.
    pub async fn replace(self, model: Model) -> Result<Rc<Host>, BackendError> {
        let (engine, gpu_error) = match GpuBackend::open(&model).await {
            Ok(gpu) => (Engine::Gpu(Box::new(gpu)), None),
            Err(e) => (Engine::Cpu(CpuBackend::default()), Some(e.to_string())),
        };
        let host = Rc::new(Host { model, engine: RefCell::new(Rc::new(engine)), gpu_error: RefCell::new(gpu_error) });
        self.host.set_value(Some(host.clone()));
        Ok(host)
    }

    /// What the device allows a model: the GPU's storage binding (none on
    /// the CPU) and wasm32's 4 GiB; the test hook can lower them
    /// (`crate::ui::web::models::set_limits`).
    pub fn device_limits(self) -> crate::model::plan::Limits {
        let mut limits = crate::model::plan::Limits { max_binding: u64::MAX, ..Default::default() };
        if let Some(Engine::Gpu(gpu)) = self.host().as_deref().map(|h| h.engine()).as_deref() {
            limits.max_binding = gpu.ctx.device.limits().max_storage_buffer_binding_size;
        }
        super::web::models::limits(limits)
    }

    /// Whether the page computes on the GPU.
    pub fn on_gpu(self) -> bool {
        self.host().is_some_and(|h| h.on_gpu())
    }

    /// Bytes read back from the GPU so far (0 on the CPU).
    pub fn bytes_read_back(self) -> u64 {
        self.host().map_or(0, |h| match &*h.engine() {
            Engine::Gpu(gpu) => gpu.ctx.bytes_read_back(),
            Engine::Cpu(_) => 0,
        })
    }

    /// Times a run in steps has given the thread back to the browser.
    pub fn yields(self) -> u64 {
        self.yields.get_value()
    }

    /// Whether the GPU holds one block's T×T matrices at a time for the
    /// shown run (`gpu::one_block`); false on the CPU.
    pub fn one_block(self) -> bool {
        self.host().is_some_and(|h| match &*h.engine() {
            Engine::Gpu(gpu) => gpu.forward().is_ok_and(|f| f.one_block()),
            Engine::Cpu(_) => false,
        })
    }

    /// On the CPU, whether the shown run keeps each head's T×T weights
    /// ([`cpu_keeps_weights`]; else they are computed when read); `None`
    /// on the GPU.
    pub fn cpu_weights_kept(self) -> Option<bool> {
        self.host().and_then(|h| match &*h.engine() {
            Engine::Gpu(_) => None,
            Engine::Cpu(cpu) => Some(cpu.weights_kept()),
        })
    }

    /// Tokens the heatmaps show.
    pub fn shown(self) -> usize {
        self.host().map_or(0, |h| h.shown())
    }

    /// Tokenizes the latest text, appends the generated tokens, and runs the
    /// model on them; a GPU fault moves the page to the CPU and runs again.
    /// A large run on the CPU goes in steps between which the page keeps
    /// handling input ([`Backend::settled`] waits for it); any later run
    /// supersedes it.
    pub fn compute(self, state: PageState) {
        let Some(host) = self.host() else { return };
        let epoch = self.epoch.get_value() + 1;
        self.epoch.set_value(epoch);
        let status = state.status;
        set_changed(status.steps, None);
        let text = state.selection.text.get_untracked();
        // A keystroke's run is timed part by part (the test hook's `keystroke`).
        let input_at = state.telemetry.input_at.get_untracked();
        let started = now_ms();
        self.spent.set_value(Spent::default());
        let mut tokens = match host.tokenize(&text) {
            Ok(tokens) => tokens,
            Err(e) => return status.input_error.set(Some(e.to_string())),
        };
        tokens.extend(state.generation.steps.get_untracked().into_iter().map(|g| g.token));
        // Past the context the model reads the beginning: so does the page, and says so. On the
        // CPU, past the tokens whose every stage fits in the page's memory, the same.
        let (total, context, limit) = (tokens.len(), host.model.config.n_positions, host.token_limit());
        tokens.truncate(limit);
        let message = || {
            if limit >= context {
                return format!(
                    "The text is {total} tokens long, but this model's context holds at most {limit}: it reads the \
                     first {limit} and the page shows those. Shorten the text to see the rest."
                );
            }
            if limit == MAX_TEXT_TOKENS {
                return format!(
                    "The text is {total} tokens long. The page reads at most {MAX_TEXT_TOKENS} tokens of a text \
                     (this model's context holds {context}): it runs the first {MAX_TEXT_TOKENS}. Shorten the text \
                     to see the rest."
                );
            }
            let size = crate::render::text::size_text;
            match host.matrix_budget() {
                Some(budget) => format!(
                    "The text is {total} tokens long. On the GPU the page keeps a run's T×T matrices (raw scores, \
                     masked scores, weights), for a long text one block's at a time, and for this model one \
                     block's fit at most {limit} tokens ({} for the three, at most {} in all and {} a buffer on \
                     this GPU): it runs the first {limit}. Shorten the text to see the rest.",
                    size(3 * crate::gpu::block_bytes(&host.model.config, limit)),
                    size(budget),
                    size(host.max_binding().unwrap_or(u64::MAX))
                ),
                None => format!(
                    "The text is {total} tokens long. On the CPU the page keeps every per-token stage of every \
                     head of a run in memory (the T×T maps are computed when shown), and for this model that fits \
                     for at most {limit} tokens ({} each run): it runs the first {limit}. Shorten the text to see \
                     the rest, or use a browser with WebGPU.",
                    size(crate::engine::trace_bytes(&host.model.config, limit, TraceKeeps::LEAST))
                ),
            }
        };
        set_changed(status.input_error, (total > limit).then(message));
        set_changed(status.text_tokens, total);
        let mask = state.selection.mask.get_untracked();
        let tokenized = now_ms();
        let timing = input_at.map(|at| Keystroke {
            frame_wait: started - at,
            tokenize: tokenized - started,
            ..Keystroke::default()
        });
        if let Engine::Cpu(_) = &*host.engine() {
            if !tokens.is_empty() && runs_in_steps(&host.model.config, tokens.len()) {
                return self.run_in_steps(state, host.clone(), tokens, mask, (epoch, timing));
            }
        }
        let result = host.run(&tokens, mask);
        if let Err(BackendError::DeviceLost(e)) = &result {
            // A GPU fault or loss: carry on with the CPU reference, without a reload (and
            // within the CPU's token limit).
            host.fall_back_to_cpu(format!("the GPU failed ({e})"));
            self.show_backend(state);
            return self.compute(state);
        }
        if result.is_ok() {
            self.apply_intervention(state, &host);
        }
        let forward = now_ms() - tokenized;
        self.show_run(state, &host, tokens, result, timing.map(|k| Keystroke { forward, ..k }));
    }

    /// Runs `tokens` on the CPU a [`TraceRun`] step at a time, giving the
    /// thread back to the browser whenever a slice of steps took
    /// [`SLICE_MS`], so no task blocks typing for long; dropped at the first
    /// slice after a newer run began. The last argument: this run's epoch
    /// and the keystroke's breakdown so far.
    fn run_in_steps(
        self,
        state: PageState,
        host: Rc<Host>,
        tokens: Vec<Token>,
        mask: Mask,
        (epoch, timing): (u64, Option<Keystroke>),
    ) {
        let status = state.status;
        let engine = host.engine();
        self.stepping.set_value(Some(epoch));
        spawn_local(async move {
            // However the task ends, `settled` stops waiting for it.
            let _stepping = Stepping(self, epoch);
            let Engine::Cpu(cpu) = &*engine else { return };
            let stale = || self.epoch.get_value() != epoch || !Rc::ptr_eq(&host.engine(), &engine);
            // The steps start in a task of their own: what asked for the run (a new model's
            // panels built, a pasted text's token chips) may already have filled this one.
            yield_to_browser().await;
            if stale() {
                return;
            }
            let prev = cpu.last();
            // The run's setup (the new rows' embeddings) is the engine's time too.
            let (mut busy, mut slice, mut longest) = (0.0, now_ms(), 0.0f64);
            // When the working sign last said how far the run is (never yet: its start).
            let mut told = slice;
            let mut run = match stepped_run(&host.model, prev.as_deref(), tokens.clone(), mask) {
                Ok(run) => run,
                Err(e) => return self.show_run(state, &host, tokens, Err(e.into()), None),
            };
            while !run.is_done() {
                let before = now_ms();
                run.step();
                let now = now_ms();
                // Yield when the next step, if it takes as long as the longest so far, would end
                // past the slice (steps differ: a block's last rows attend to the most keys; with
                // the last step's time alone, a 30 ms step after a 12 ms one made a 50 ms task).
                longest = longest.max(now - before);
                if now - slice + longest >= SLICE_MS {
                    busy += now - slice;
                    // The steps done, every PROGRESS_MS of a long run: set at every slice, the
                    // text relaid and repainted the page in each frame between slices (~6 ms
                    // a frame, ~18 ms of a 145 ms keystroke on SmolLM2 at T = 506).
                    if now - told >= PROGRESS_MS {
                        told = now;
                        status.steps.set(Some(run.progress()));
                    }
                    set_changed(status.working, true);
                    self.yields.set_value(self.yields.get_value() + 1);
                    yield_to_browser().await;
                    if stale() {
                        return;
                    }
                    slice = now_ms();
                }
            }
            let last_slice = now_ms() - slice;
            busy += last_slice;
            if last_slice > SLICE_MS / 2.0 {
                // The page's reaction to the run (panels, draws) gets a task of its own.
                yield_to_browser().await;
                if stale() {
                    return;
                }
            }
            slice = now_ms();
            let trace = run.finish();
            drop(prev);
            cpu.show(Rc::new(trace));
            self.apply_intervention(state, &host);
            busy += now_ms() - slice;
            status.steps.set(None);
            status.working.set(false);
            // The keystroke's forward is the time the steps held the thread.
            self.show_run(state, &host, tokens, Ok(()), timing.map(|k| Keystroke { forward: busy, ..k }));
        });
    }

    /// Resolves once no run in steps, and no intervention applied in
    /// paces, is under way (at once after any other run).
    pub async fn settled(self) {
        let busy =
            || self.stepping.try_get_value().flatten().is_some() || self.applying.try_get_value().flatten().is_some();
        while busy() {
            sleep_ms(4).await;
        }
    }

    /// Puts a finished run on the page: its tokens, the run count, the
    /// focus kept inside the maps, and the keystroke's breakdown (`keystroke`
    /// with its tokenize and forward parts).
    fn show_run(
        self,
        state: PageState,
        host: &Host,
        tokens: Vec<Token>,
        result: Result<(), BackendError>,
        keystroke: Option<Keystroke>,
    ) {
        let (status, outputs) = (state.status, state.outputs);
        outputs.tokens.set(tokens);
        match result {
            Ok(()) => {
                set_changed(outputs.shown_tokens, host.shown());
                state.keep_focus_inside(state.dims(state.selection.stage.get_untracked()));
                let telemetry = state.telemetry;
                let input_at = telemetry.input_at.get_untracked();
                if let Some(at) = input_at {
                    telemetry.input_at.set(None);
                    telemetry.timed_run.set(Some((outputs.runs.get_untracked() + 1, at)));
                }
                outputs.runs.update(|r| *r += 1);
                if let (Some(at), Some(keystroke)) = (input_at, keystroke) {
                    self.time_keystroke(state, at, Keystroke { run: outputs.runs.get_untracked(), ..keystroke });
                }
            }
            Err(e) => status.input_error.set(Some(e.to_string())),
        }
    }

    /// Finishes a keystroke's breakdown: once every panel has reacted to the
    /// run and the frame showing it is done (the first task after it) the
    /// draws and reads are added up, and once the GPU has finished what they
    /// submitted the total is taken.
    fn time_keystroke(self, state: PageState, at: f64, keystroke: Keystroke) {
        let telemetry = state.telemetry;
        after_this_frame(move || {
            let spent = self.spent.get_value();
            let keystroke = Keystroke { draws: spent.draws, reads: spent.reads, ..keystroke };
            self.when_drawn(move || {
                let total = now_ms() - at;
                let parts =
                    keystroke.frame_wait + keystroke.tokenize + keystroke.forward + keystroke.draws + keystroke.reads;
                telemetry.keystroke.set(Some(Keystroke { total, other: (total - parts).max(0.0), ..keystroke }));
            });
        });
    }

    /// Puts the backend in use and why (if on the CPU) into the page's status.
    pub fn show_backend(self, state: PageState) {
        let Some(host) = self.host() else { return };
        let status = state.status;
        status.backend_label.set(host.backend_label());
        let error = host.gpu_error.borrow().clone();
        status.on_gpu.set(error.is_none() && host.on_gpu());
        status.gpu_error.set(error);
    }

    /// Opens WebGPU again (after a loss, or when the user asks): on success
    /// the page computes and draws on the GPU again.
    pub async fn restore_gpu(self, state: PageState) -> Result<(), BackendError> {
        let host = self.ready()?;
        let gpu = GpuBackend::open(&host.model).await?;
        *host.engine.borrow_mut() = Rc::new(Engine::Gpu(Box::new(gpu)));
        *host.gpu_error.borrow_mut() = None;
        self.show_backend(state);
        self.compute(state);
        Ok(())
    }

    /// Destroys the GPU device, as a driver reset or a lost GPU would (the
    /// test hook's `loseGpu()`, to check that the page recovers).
    pub fn lose_gpu(self) {
        if let Some(host) = self.host() {
            if let Engine::Gpu(gpu) = &*host.engine() {
                gpu.ctx.device.destroy();
            }
        }
    }

    /// Draws with the engine in use: `gpu` on the map's WebGPU canvas, `cpu` on its 2D one.
    fn draw(
        self,
        canvases: &CanvasPair,
        gpu: impl FnOnce(&GpuBackend, Target<'_>) -> Drawn,
        cpu: impl FnOnce(&CpuBackend, Target<'_>) -> Drawn,
    ) -> Drawn {
        let engine = self.ready()?.engine();
        let started = now_ms();
        let drawn = match &*engine {
            Engine::Gpu(g) => gpu(g, self.target(&canvases.gpu)),
            Engine::Cpu(c) => cpu(c, self.target(&canvases.cpu)),
        };
        self.spent.update_value(|s| s.draws += now_ms() - started);
        drawn
    }

    /// Draws `window` of one stage's matrix for one head (the whole map when it covers it), the
    /// focused cell lit; the colours span the whole matrix's range either way.
    pub fn draw_stage(self, canvases: &CanvasPair, view: View, hover: Option<MapCell>, window: MapWindow) -> Drawn {
        self.draw(
            canvases,
            |g, on| g.draw_stage(on, view, hover, window),
            |c, on| c.draw_stage(on, view, hover, window),
        )
    }

    /// Draws every layer × head's softmax weights as small maps (the model
    /// view), the `selected` (layer, head) framed.
    pub fn draw_grid(self, canvases: &CanvasPair, selected: (usize, usize)) -> Drawn {
        let c = &self.ready()?.model.config;
        let shape = GridShape { layers: c.n_layer, heads: c.n_head, kv_group: c.kv_group() };
        self.draw(canvases, |g, on| g.draw_grid(on, shape, selected), |c, on| c.draw_grid(on, shape, selected))
    }

    /// Draws the block view for `token` in `layer`: every token's residual
    /// norm through the stream, then the token's ln_1 input and output and
    /// its MLP activations, in the `render::layout::BLOCK_TILES` of the canvas.
    pub fn draw_block(self, canvases: &CanvasPair, layer: usize, token: usize, hover: Option<MapCell>) -> Drawn {
        let host = self.ready()?;
        self.draw(
            canvases,
            |g, on| g.draw_block(on, layer, token, hover),
            |c, on| c.draw_block(on, &host.model, layer, token, hover),
        )
    }

    /// Calls `f` once what was drawn so far is on screen: when the GPU has
    /// finished the submitted work, or at once on the CPU.
    pub fn when_drawn(self, f: impl FnOnce() + Send + 'static) {
        match self.host().as_deref().map(|h| h.engine()) {
            Some(engine) => match &*engine {
                Engine::Gpu(gpu) => gpu.ctx.queue.on_submitted_work_done(f),
                Engine::Cpu(_) => f(),
            },
            None => f(),
        }
    }

    /// Asks the engine in use (`gpu` or `cpu`); a value read from an engine
    /// that was replaced meanwhile is [`BackendError::Superseded`].
    async fn ask<T>(
        self,
        gpu: impl AsyncFnOnce(&GpuBackend) -> Result<T, BackendError>,
        cpu: impl FnOnce(&CpuBackend) -> Result<T, BackendError>,
    ) -> Result<T, BackendError> {
        let host = self.ready()?;
        let engine = host.engine();
        let started = now_ms();
        let value = match &*engine {
            Engine::Gpu(g) => gpu(g).await,
            Engine::Cpu(c) => cpu(c),
        };
        self.spent.update_value(|s| s.reads += now_ms() - started);
        host.unless_replaced(&engine, value)
    }

    /// One cell's value, as the stage shows it (4 bytes read back on the GPU).
    pub async fn read_cell(self, view: View, row: usize, col: usize) -> Result<f32, BackendError> {
        self.ask(async |g| g.read_cell(view, row, col).await, |c| c.read_cell(view, row, col)).await
    }

    /// [min, max] of the stage matrix the heatmap's colour map spans (8 bytes read back on the GPU).
    pub async fn read_range(self, view: View) -> Result<(f32, f32), BackendError> {
        if !view.stage.signed() {
            return Ok((0.0, 1.0));
        }
        self.ask(async |g| g.read_range(view).await, |c| c.read_range(view)).await
    }

    /// The whole stage matrix.
    /// On the CPU, the view's matrix where the trace computes it (the
    /// scores; the weights of a trace that keeps none) and it costs over
    /// [`PACED_MAP_MACS`]: computed a piece of rows at a time, the thread
    /// given back between pieces, and kept for the draw (`drawn`) or the
    /// read that follows. A map of SmolLM2 at T = 2,048 is 268 million
    /// multiply-adds: drawn at once, a task of ~270 ms. `Ok(false)` when
    /// there was nothing to compute.
    /// Whether [`compute_map`](Self::compute_map) has a map to compute for `view` now.
    pub fn map_to_compute(self, view: View) -> bool {
        let Some(host) = self.host() else { return false };
        matches!(&*host.engine(), Engine::Cpu(cpu) if cpu.computes(view, PACED_MAP_MACS).is_some())
    }

    pub async fn compute_map(self, view: View, drawn: bool) -> Result<bool, BackendError> {
        let engine = self.ready()?.engine();
        let Engine::Cpu(cpu) = &*engine else { return Ok(false) };
        let Some(trace) = cpu.computes(view, PACED_MAP_MACS) else { return Ok(false) };
        let head = cpu::head_of(&trace, view)?;
        let (t, d_head) = (head.tokens(), head.q.cols.max(1));
        let piece = usize::try_from(PIECE_MACS / (t * d_head).max(1) as u64).unwrap_or(usize::MAX).max(1);
        let mut values = Vec::with_capacity(t * t);
        let mut pacer = super::web::dom::Pacer::new();
        for start in (0..t).step_by(piece) {
            let rows = view.stage.matrix_rows(head, start..(start + piece).min(t));
            values.extend(rows.ok_or_else(|| BackendError::Input(format!("rows {start}.. are not in the map")))?);
            pacer.pause().await;
        }
        let cols = values.len() / t.max(1);
        cpu.store_computed(&trace, view, drawn, Matrix::from_vec(t, cols, values));
        Ok(true)
    }

    pub async fn read_matrix(self, view: View) -> Result<Matrix, BackendError> {
        self.ask(async |g| g.read_matrix(view).await, |c| c.read_matrix(view)).await
    }

    /// Row `row` of the view's matrix (one row read back on the GPU).
    pub async fn read_row(self, view: View, row: usize) -> Result<Vec<f32>, BackendError> {
        self.ask(async |g| g.read_row(view, row).await, |c| c.read_row(view, row)).await
    }

    /// The last position's logits (vocab values), for sampling.
    pub async fn last_logits(self) -> Result<Vec<f32>, BackendError> {
        let vocab = self.ready()?.model.config.vocab_size;
        self.ask(async |g| g.last_logits(vocab).await, |c| c.last_logits()).await
    }

    /// The most likely next tokens after the last one with their
    /// probabilities at `temperature`, and their text.
    pub async fn top_k(self, temperature: f32) -> Result<Vec<(u32, String, f64)>, BackendError> {
        let host = self.ready()?;
        let top = self.ask(async |g| g.top_k(temperature).await, |c| c.top_k(temperature)).await?;
        let tok = &host.model.tokenizer;
        Ok(top.into_iter().map(|(id, p)| (id, tok.decode(&[id]), p)).collect())
    }

    /// On the CPU, the residual norms of a long run's trace (every token at
    /// every point of the stream, summed from the layers' outputs where the
    /// trace keeps no stream: SmolLM2 at T = 2,048 walks 72 million values,
    /// a task of ~100 ms at once): computed a piece of tokens at a time,
    /// the thread given back between pieces, and kept for the reads and
    /// draws of that trace.
    /// Whether [`compute_norms`](Self::compute_norms) has norms to compute now.
    pub fn norms_to_compute(self) -> bool {
        let Some(host) = self.host() else { return false };
        matches!(&*host.engine(), Engine::Cpu(cpu) if cpu.norms_to_compute(PACED_STREAM_VALUES).is_some())
    }

    pub async fn compute_norms(self) -> Result<(), BackendError> {
        let engine = self.ready()?.engine();
        let Engine::Cpu(cpu) = &*engine else { return Ok(()) };
        let Some(trace) = cpu.norms_to_compute(PACED_STREAM_VALUES) else { return Ok(()) };
        let (t, d) = (trace.tokens.len(), trace.embeddings.cols.max(1));
        let points = crate::engine::residual::residual_points(trace.layers.len());
        let piece = (PIECE_MACS as usize / (points * d)).max(1);
        let mut norms = vec![0.0; points * t];
        let mut pacer = super::web::dom::Pacer::new();
        for start in (0..t).step_by(piece) {
            let rows = start..(start + piece).min(t);
            let walked = trace.walk_stream(rows.clone(), points - 1, |point, x| {
                let at = point * t + rows.start;
                norms[at..at + rows.len()].copy_from_slice(&crate::engine::residual::row_norms(x, d));
            });
            if !walked {
                return Err(BackendError::Input("the residual stream is not in the trace".into()));
            }
            pacer.pause().await;
        }
        cpu.store_norms(&trace, Matrix::from_vec(points, t, norms));
        Ok(())
    }

    /// One token's residual norm at one point of the stream (4 bytes on the GPU).
    pub async fn read_norm(self, point: usize, token: usize) -> Result<f32, BackendError> {
        self.compute_norms().await?;
        let stride = self.ready()?.model.config.n_positions;
        self.ask(async |g| g.read_norm(stride, point, token).await, |c| c.read_norm(point, token)).await
    }

    /// Every token's residual norm at every point of the stream (points × T,
    /// row-major), as the block view last drew them.
    pub async fn read_norms(self) -> Result<Vec<f32>, BackendError> {
        self.compute_norms().await?;
        let stride = self.ready()?.model.config.n_positions;
        self.ask(async |g| g.read_norms(stride).await, |c| c.read_norms()).await
    }

    /// The `k` most active MLP neurons of `token` in `layer` (reads its n_inner activations).
    pub async fn mlp_top(self, layer: usize, token: usize, k: usize) -> Result<Vec<(usize, f32)>, BackendError> {
        let host = self.ready()?;
        let row = self.ask(async |g| g.mlp_row(layer, token).await, |c| c.mlp_row(&host.model, layer, token)).await?;
        Ok(crate::engine::residual::top_indices(&row, k))
    }

    /// A forward pass of its own for timing (the cost panel): the page's run
    /// and its buffers stay as they are.
    pub fn forward_timer(self) -> Result<ForwardTimer, BackendError> {
        let host = self.ready()?;
        let engine = host.engine();
        ForwardTimer::new(host.clone(), &engine)
    }
}

impl Host {
    fn engine(&self) -> Rc<Engine> {
        self.engine.borrow().clone()
    }

    /// `value`, unless the engine it came from was replaced while it was read
    /// (a GPU lost and left for the CPU): then it belongs to no run on screen.
    fn unless_replaced<T>(&self, engine: &Rc<Engine>, value: Result<T, BackendError>) -> Result<T, BackendError> {
        if Rc::ptr_eq(&self.engine(), engine) {
            value
        } else {
            Err(BackendError::Superseded)
        }
    }

    /// Whether the page computes on the GPU.
    pub fn on_gpu(&self) -> bool {
        matches!(*self.engine(), Engine::Gpu(_))
    }

    /// The GPU's largest storage binding (less through the test hook); none on the CPU.
    fn max_binding(&self) -> Option<u64> {
        match &*self.engine() {
            Engine::Gpu(gpu) => Some(gpu.max_binding()),
            Engine::Cpu(_) => None,
        }
    }

    /// "default · 2 layers × 4 heads, d=128, context 128, trained on Austen and Shakespeare".
    pub fn model_label(&self) -> String {
        let c = &self.model.config;
        let trained = if self.model.name == MODEL_NAME { ", trained on Austen and Shakespeare" } else { "" };
        format!(
            "{} · {} layers × {} heads, d={}, context {}{trained}",
            self.model.name, c.n_layer, c.n_head, c.n_embd, c.n_positions
        )
    }

    /// "WebGPU · adapter" or "CPU reference (wasm)".
    pub fn backend_label(&self) -> String {
        match &*self.engine() {
            Engine::Gpu(gpu) => format!("WebGPU · {}", gpu.ctx.adapter_name()),
            Engine::Cpu(_) => "CPU reference (wasm)".into(),
        }
    }

    /// The most tokens a run may have: the model's context, at most
    /// [`MAX_TEXT_TOKENS`]; on the CPU no more than [`cpu_token_limit`], on
    /// the GPU no more than one block's T×T matrices hold
    /// ([`crate::gpu::matrix_caps`]).
    pub fn token_limit(&self) -> usize {
        let context = self.model.config.n_positions.min(MAX_TEXT_TOKENS);
        match &*self.engine() {
            Engine::Cpu(_) => context.min(cpu_token_limit(&self.model)),
            Engine::Gpu(gpu) => {
                let caps = crate::gpu::matrix_caps(&self.model.config, gpu.max_binding(), gpu.matrix_budget());
                context.min(caps.block).max(1)
            }
        }
    }

    /// The GPU's matrix budget (None on the CPU).
    fn matrix_budget(&self) -> Option<u64> {
        match &*self.engine() {
            Engine::Gpu(gpu) => Some(gpu.matrix_budget()),
            Engine::Cpu(_) => None,
        }
    }

    /// Leaves a GPU that faulted or was lost for the CPU backend: the page
    /// keeps working without a reload, and says why.
    fn fall_back_to_cpu(&self, why: String) {
        log::error!("switching to the CPU backend: {why}");
        *self.engine.borrow_mut() = Rc::new(Engine::Cpu(CpuBackend::default()));
        *self.gpu_error.borrow_mut() = Some(why);
    }

    /// The text's tokens, all of them (the tokenizer bounds the text's size).
    pub fn tokenize(&self, text: &str) -> Result<Vec<Token>, BackendError> {
        self.model.tokenizer.encode(text).map_err(|e| BackendError::Input(e.to_string()))
    }

    /// Runs the whole forward pass (every stage kept) on `tokens`.
    fn run(&self, tokens: &[Token], mask: Mask) -> Result<(), BackendError> {
        match &*self.engine() {
            Engine::Gpu(gpu) => gpu.run(&tokens.iter().map(|t| t.id).collect::<Vec<_>>(), mask),
            Engine::Cpu(cpu) => cpu.run(&self.model, tokens, mask),
        }
    }

    /// Tokens the heatmaps show.
    fn shown(&self) -> usize {
        match &*self.engine() {
            Engine::Gpu(gpu) => gpu.shown(),
            Engine::Cpu(cpu) => cpu.shown(),
        }
    }
}

/// The most tokens of a text the page reads, whatever the model's context:
/// a long context's dilution and sinks are plain by then, and one block's
/// T×T matrices stay within a GPU buffer (SmolLM2-135M: 151 MB each).
pub const MAX_TEXT_TOKENS: usize = 2048;

/// Whole traces the CPU may hold at once: the run shown, the one extending
/// it, an intervened copy and a second prompt's (the diff, a patch's source).
const CPU_TRACES: u64 = 4;

/// WebAssembly memory left for everything but the weights and the traces.
const WASM_MARGIN: u64 = 256 << 20;

/// The most tokens a CPU run may have in this page: [`CPU_TRACES`] whole
/// traces ([`crate::engine::trace_bytes`] of the page's runs: every
/// per-token stage of every head, each layer's attention and MLP outputs;
/// the T×T weights ([`cpu_keeps_weights`]), the norms, residual stream and
/// MLP hidden layer computed when read; the last position's logits alone)
/// beside the model's weights within the WebAssembly memory the page
/// allows (4 GiB, or what the test hook set); at least one. GPT-2 small's
/// whole context (1,024), SmolLM2-135M's GGUF (f32 once read) past the
/// page's 2,048 tokens (~2,068; 808 when the trace kept every stage and
/// every logits row, 528 with the weights too); the default model's whole
/// context.
pub fn cpu_token_limit(model: &Model) -> usize {
    crate::engine::most_traced_tokens(&model.config, cpu_trace_budget(model), TraceKeeps::LEAST).max(1)
}

/// Whether a CPU run of `t` tokens keeps each head's T×T weights: while a
/// whole trace with them fits one of the [`CPU_TRACES`]. Past that it keeps
/// each row's softmax max and sum, and a weight is computed when read from
/// Q, K and them, bit for bit the same (`HeadTrace::weight`): a map costs
/// T²·d_head multiply-adds then, a hovered cell d_head.
pub fn cpu_keeps_weights(model: &Model, t: usize) -> bool {
    let keeps = TraceKeeps { weights: true, ..TraceKeeps::LEAST };
    crate::engine::trace_bytes(&model.config, t, keeps) <= cpu_trace_budget(model)
}

/// A CPU run of the page on `tokens` after `prev` (the rows they share
/// kept), keeping the weights as [`cpu_keeps_weights`] says and the last
/// position's logits alone (the page reads no other row: sampling, the
/// next-token panel, the lens and the interventions all read the last).
pub(crate) fn cpu_run<'a>(
    model: &'a Model,
    prev: Option<&'a crate::engine::Trace>,
    tokens: Vec<Token>,
    mask: Mask,
) -> Result<TraceRun<'a>, EngineError> {
    let keep = cpu_keeps_weights(model, tokens.len());
    let run = TraceRun::new(&model.config, &model.weights, prev, tokens, mask)?;
    Ok(run.keeping_weights(keep).every_logits(false).keeping_stages(false))
}

/// Multiply-adds past which the CPU computes a map a piece of rows at a
/// time ([`Backend::compute_map`]): ~10 ms of this machine's wasm. Below,
/// a draw computes it at once (a keystroke's map then costs no extra task).
const PACED_MAP_MACS: u64 = 1 << 24;

/// Values of the residual stream (points × T × d) past which the CPU sums
/// and measures it a piece of tokens at a time ([`Backend::compute_norms`]).
const PACED_STREAM_VALUES: u64 = 1 << 24;

/// Multiply-adds of one piece of a map computed in pieces.
const PIECE_MACS: u64 = 1 << 22;

/// The bytes one of the [`CPU_TRACES`] whole traces may take.
pub fn cpu_trace_budget(model: &Model) -> u64 {
    let wasm = super::web::models::limits(crate::model::plan::Limits::default()).wasm_memory;
    wasm.saturating_sub(model.weights.bytes()).saturating_sub(WASM_MARGIN) / CPU_TRACES
}

/// Whether the CPU runs a text of `t` tokens in steps: when one new row
/// costs over [`STEPPED_ROW_FLOPS`] (the cost model's KV-cache step).
/// Every long question on such a model (an ablation, the lens, a sweep) is
/// paced too.
pub(crate) fn runs_in_steps(c: &ModelConfig, t: usize) -> bool {
    step_cost(c, t).total_flops() as f64 > STEPPED_ROW_FLOPS
}

/// About the work of one step of a run in steps (~20 ms of this machine's
/// wasm): a piece of a block's product's columns or of its attention's
/// query rows (`engine::block_steps`), or the LM head on every new row for
/// a piece of the vocabulary, of about this many FLOPs; an intervention's
/// re-run layers go in the same steps. Before, a
/// step was a whole block on every new row and an LM head piece as large:
/// SmolLM2's first run of 267 tokens left tasks of 65–100 ms. (The LM head
/// then went a few rows per step, each reading the whole 113 MB table:
/// ~31 ms a step, 2.8 s for those 267 rows.)
pub(crate) const STEP_FLOPS: u64 = 200_000_000;

/// A run in steps on `tokens` after `prev` ([`cpu_run`]), its steps sized
/// for the page's slices ([`STEP_FLOPS`]).
fn stepped_run<'a>(
    model: &'a Model,
    prev: Option<&'a crate::engine::Trace>,
    tokens: Vec<Token>,
    mask: Mask,
) -> Result<TraceRun<'a>, EngineError> {
    Ok(cpu_run(model, prev, tokens, mask)?.head_flops(STEP_FLOPS).block_flops(STEP_FLOPS))
}

/// A forward of `tokens` after `prev` in steps ([`stepped_run`]), awaiting
/// `pause` after each; superseded when a pause says to stop.
pub(crate) async fn run_paced(
    model: &Model,
    prev: Option<&crate::engine::Trace>,
    tokens: Vec<Token>,
    mask: Mask,
    pause: &mut impl AsyncFnMut() -> std::ops::ControlFlow<()>,
) -> Result<crate::engine::Trace, BackendError> {
    pace_run(stepped_run(model, prev, tokens, mask)?, pause).await
}

/// Takes `run`'s steps, awaiting `pause` after each; superseded when a
/// pause says to stop.
pub(crate) async fn pace_run(
    mut run: TraceRun<'_>,
    pause: &mut impl AsyncFnMut() -> std::ops::ControlFlow<()>,
) -> Result<crate::engine::Trace, BackendError> {
    while !run.is_done() {
        run.step();
        if pause().await.is_break() {
            return Err(BackendError::Superseded);
        }
    }
    Ok(run.finish())
}

/// Runs `work` and hands its result to `apply` only if `current()` still
/// returns what it returned when the work started: a newer run, another view
/// or another selection supersedes it, and its result is dropped. Other
/// errors are logged as `what`. The one "is this still current?" of the page.
pub fn spawn_latest<K, T, W>(
    what: &'static str,
    current: impl Fn() -> K + 'static,
    work: W,
    apply: impl FnOnce(T) + 'static,
) where
    K: PartialEq + 'static,
    T: 'static,
    W: Future<Output = Result<T, BackendError>> + 'static,
{
    let started = untrack(&current);
    spawn_local(async move {
        let result = work.await;
        if untrack(&current) != started {
            return;
        }
        match result {
            Ok(value) => apply(value),
            Err(BackendError::Superseded) => {}
            Err(e) => log::warn!("{what}: {e}"),
        }
    });
}

/// Whether WebGPU may be tried here: the browser exposes it and the address
/// does not ask for the CPU (`?backend=cpu`).
fn gpu_allowed() -> Result<(), BackendError> {
    if query::current().cpu_backend {
        return Err(BackendError::NoGpu("the address asks for the CPU backend (?backend=cpu)".into()));
    }
    let has_webgpu = web_sys::window()
        .and_then(|w| js_sys::Reflect::get(&w.navigator(), &wasm_bindgen::JsValue::from_str("gpu")).ok())
        .is_some_and(|gpu| !gpu.is_undefined() && !gpu.is_null());
    if !has_webgpu {
        return Err(BackendError::NoGpu("this browser does not expose WebGPU (navigator.gpu is missing)".into()));
    }
    Ok(())
}

/// The device-pixel size of a canvas's box.
impl Backend {
    /// `canvas`'s CSS size in whole pixels, without a layout once it is known
    /// (see [`CanvasSizes`]).
    pub fn css_size(self, canvas: &Canvas) -> (i32, i32) {
        let sizes = match self.sizes.get_value() {
            Some(sizes) => sizes,
            None => {
                let resized = self.resized;
                let sizes = Rc::new(CanvasSizes::new(move || resized.update(|n| *n += 1)));
                self.sizes.set_value(Some(sizes.clone()));
                sizes
            }
        };
        sizes.css(canvas)
    }

    fn target(self, canvas: &Canvas) -> Target<'_> {
        let size = crate::render::layout::pixel_size(self.css_size(canvas), super::web::dom::device_pixel_ratio());
        Target { canvas, size }
    }
}
