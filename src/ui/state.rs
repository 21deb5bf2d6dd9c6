//! The page's state, apart from any view: what the link holds (the
//! selection), the focused cell, the model and backend as shown (status),
//! what the last run produced (outputs), timings (telemetry) and the
//! generated continuation. Plain structs of signals with methods; every panel
//! takes a [`PageState`] from context. This module imports no panel, no
//! backend and no page.

use leptos::prelude::*;

use crate::engine::intervene::Replacement;
use crate::engine::{AttentionStage, Mask};
use crate::inspect::{PaintGrid, Template};
use crate::model::{ModelConfig, Token};
use crate::render::layout::GridShape;
use crate::render::ColourMap;
use crate::share::Panel;
use crate::ui::backend::InterventionOutcome;

/// Sets `signal` to `value` only if it differs, so that what watches it
/// wakes only for a real change (a keystroke sets many values that stay put).
pub fn set_changed<T: PartialEq + Send + Sync + 'static>(signal: RwSignal<T>, value: T) {
    signal.maybe_update(|v| {
        let changed = *v != value;
        if changed {
            *v = value;
        }
        changed
    });
}

/// The text the page opens with.
pub const START_TEXT: &str = "The cat sat on the mat because it was tired.";

/// Which matrix a heatmap shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct View {
    pub stage: AttentionStage,
    pub layer: usize,
    pub head: usize,
}

impl View {
    pub fn colour_map(self) -> ColourMap {
        if self.stage.signed() {
            ColourMap::Diverging
        } else {
            ColourMap::Sequential
        }
    }
}

/// The colour theme: the system's, or forced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Theme {
    Auto,
    Dark,
    Light,
}

impl Theme {
    pub fn key(self) -> &'static str {
        match self {
            Theme::Auto => "auto",
            Theme::Dark => "dark",
            Theme::Light => "light",
        }
    }

    /// A link's theme: `dark`, `light`, anything else the system's.
    pub fn parse(value: &str) -> Self {
        match value {
            "dark" => Theme::Dark,
            "light" => Theme::Light,
            _ => Theme::Auto,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Phase {
    Loading,
    Ready,
    Failed(String),
}

/// What a link restores: the text and every choice the learner made.
#[derive(Clone, Copy)]
pub struct Selection {
    pub text: RwSignal<String>,
    pub layer: RwSignal<usize>,
    pub head: RwSignal<usize>,
    pub stage: RwSignal<AttentionStage>,
    pub mask: RwSignal<Mask>,
    /// The sliding window's width, kept while another mask is chosen.
    pub window: RwSignal<u32>,
    pub temperature: RwSignal<f32>,
    /// Sampling: the seed, top-k and top-p (the temperature is `temperature`).
    pub seed: RwSignal<u64>,
    pub top_k: RwSignal<Option<usize>>,
    pub top_p: RwSignal<Option<f32>>,
    /// The part of the page a link names; an embedded widget shows only it.
    pub panel: RwSignal<Panel>,
    /// Presenter mode, at this slide (`crate::present`).
    pub present: RwSignal<Option<usize>>,
    pub theme: RwSignal<Theme>,
    /// Which heads matter: the finder's template, the ablation and the followed token.
    pub heads: HeadsChoice,
}

/// What a link holds of "which heads matter" (`crate::inspect`).
#[derive(Clone, Copy)]
pub struct HeadsChoice {
    pub template: RwSignal<Template>,
    /// The "attends to token X" template's token id.
    pub token_x: RwSignal<Option<u32>>,
    pub paint: RwSignal<PaintGrid>,
    /// The heads ablated or patched (sorted), and how.
    pub ablated: RwSignal<Vec<(usize, usize)>>,
    pub mode: RwSignal<Replacement>,
    /// The second prompt a patch reads.
    pub source: RwSignal<String>,
    /// The next token the lens, the contributions and the ablation follow (`None`: the top one).
    pub chosen: RwSignal<Option<u32>>,
    /// The two-prompt diff's prompt B.
    pub prompt_b: RwSignal<String>,
    /// Whether every panel shows the run with the ablated heads (else the clean run).
    pub show: RwSignal<bool>,
}

/// The head finder's scores of one run, for its panel and the model grid.
#[derive(Debug, Clone, PartialEq)]
pub struct HeadScores {
    pub run: u64,
    pub template: Template,
    /// `layer · n_head + head`; `None` where the template is undefined.
    pub scores: Vec<Option<f64>>,
}

/// The stage heatmap's hovered or keyboard-focused cell (row, column), and
/// whether a click locked it.
#[derive(Clone, Copy)]
pub struct Focus {
    pub cell: RwSignal<Option<(usize, usize)>>,
    pub locked: RwSignal<bool>,
    /// What leaving presenter mode restores: the mask and the element that
    /// had the keyboard focus when it was entered.
    pub before_present: StoredValue<Option<(Mask, Option<web_sys::HtmlElement>)>, LocalStorage>,
}

/// The model and the backend as the page shows them, and its messages.
#[derive(Clone, Copy)]
pub struct Status {
    pub phase: RwSignal<Phase>,
    /// The loaded model's shape.
    pub config: RwSignal<Option<ModelConfig>>,
    pub model_label: RwSignal<String>,
    pub backend_label: RwSignal<String>,
    /// Whether the GPU computes and draws. Each map has a WebGPU and a 2D
    /// canvas (a canvas that had a WebGPU context cannot give a 2D one), and
    /// the page shows the one in use.
    pub on_gpu: RwSignal<bool>,
    /// Why the page runs on the CPU instead of WebGPU, if it does.
    pub gpu_error: RwSignal<Option<String>>,
    /// Why the text could not be run (too long, untokenizable).
    pub input_error: RwSignal<Option<String>>,
    /// How many tokens the whole text is (more than are shown past the context).
    pub text_tokens: RwSignal<usize>,
    /// The model's download while it loads: (bytes so far, total; 0 when unknown).
    pub download: RwSignal<Option<(f64, f64)>>,
    /// A run is under way that will take longer than a frame.
    pub working: RwSignal<bool>,
    /// A run in steps (a large model on the CPU) is under way: steps taken, of how many.
    pub steps: RwSignal<Option<(usize, usize)>>,
    /// A message about the address: fields of a link that were ignored, or "Link copied".
    pub link_note: RwSignal<Option<String>>,
    /// What the last export saved, or why it failed.
    pub export_note: RwSignal<Option<String>>,
    /// The loaded model as a link names it (`model=`; `None` for the user's own files).
    pub model_key: RwSignal<Option<String>>,
    /// A model a link or an embed attribute names, not yet loaded (the page asks first).
    pub model_request: RwSignal<Option<String>>,
}

/// A value read back for one cell, with what it belongs to.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CellValue {
    pub view: View,
    pub row: usize,
    pub col: usize,
    /// The run it was read from.
    pub run: u64,
    pub value: f32,
}

/// The colour map's span for a view of a run.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Legend {
    pub view: View,
    pub run: u64,
    pub lo: f32,
    pub hi: f32,
}

/// One of the most likely next tokens.
#[derive(Debug, Clone, PartialEq)]
pub struct NextToken {
    pub id: u32,
    pub text: String,
    pub prob: f64,
}

/// What the last run produced, and what was read back from it.
#[derive(Clone, Copy)]
pub struct Outputs {
    /// The text's tokens and the generated ones after it.
    pub tokens: RwSignal<Vec<Token>>,
    /// Tokens the heatmaps show (differs from `tokens` when the last run failed).
    pub shown_tokens: RwSignal<usize>,
    /// Completed runs: a result read for run n is stale once this passes n.
    pub runs: RwSignal<u64>,
    pub hover_value: RwSignal<Option<CellValue>>,
    pub legend: RwSignal<Option<Legend>>,
    pub next: RwSignal<Vec<NextToken>>,
    /// The head finder's last scores.
    pub head_scores: RwSignal<Option<HeadScores>>,
    /// Whether the model grid is on screen (the finder scores heads for it too).
    pub grid_on_screen: RwSignal<bool>,
    /// Whether the finder is in use (a template chosen, or named by a link): then the grid shows its scores.
    pub finder_on: RwSignal<bool>,
    /// What the chosen ablation or patch did (`None`: no head chosen); the
    /// panels show that run when `heads.show`.
    pub intervention: RwSignal<Option<Result<InterventionOutcome, String>>>,
}

/// How long the page takes, for the test hook and the curious.
#[derive(Clone, Copy)]
pub struct Telemetry {
    /// Stage heatmap draws.
    pub renders: RwSignal<u64>,
    /// When the last input event arrived (ms on the page's clock).
    pub input_at: RwSignal<Option<f64>>,
    /// The run an input event started, and when that event came.
    pub timed_run: RwSignal<Option<(u64, f64)>>,
    /// Input event → its heatmap drawn (ms).
    pub latency_ms: RwSignal<Option<f64>>,
    /// The last keystroke's cost, part by part.
    pub keystroke: RwSignal<Option<Keystroke>>,
}

/// What one keystroke cost, part by part (ms on the page's clock), from its
/// input event until every panel on screen has reacted and the GPU (if any)
/// has finished drawing.
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Keystroke {
    /// The run it led to.
    pub run: u64,
    /// Input event → the frame that computed it (the page runs the newest text once a frame).
    pub frame_wait: f64,
    pub tokenize: f64,
    /// The forward pass (on the GPU: recording and submitting it).
    pub forward: f64,
    /// Drawing the maps on screen (stage heatmap, model grid, residual view).
    pub draws: f64,
    /// Values read back that finished in the same task (hover, legend, next tokens, head view, norms).
    pub reads: f64,
    /// The rest: the panels' own work, and waiting for the GPU to finish.
    pub other: f64,
    /// Input event → all of the above done.
    pub total: f64,
}

/// One generated token with the probability it had.
#[derive(Debug, Clone, PartialEq)]
pub struct GenStep {
    pub token: Token,
    /// Under softmax(logits / temperature).
    pub prob: f64,
    /// Within the top-k/top-p set it was drawn from.
    pub prob_kept: f64,
}

/// The continuation generated after the text (cleared when the text changes).
#[derive(Clone, Copy)]
pub struct Generation {
    pub steps: RwSignal<Vec<GenStep>>,
    pub playing: RwSignal<bool>,
}

/// Everything the page shows, as signals; `Copy`, so handlers, panels and
/// the test hook share it.
#[derive(Clone, Copy)]
pub struct PageState {
    pub selection: Selection,
    pub focus: Focus,
    pub status: Status,
    pub outputs: Outputs,
    pub telemetry: Telemetry,
    pub generation: Generation,
    /// Embed mode (`?embed=1`): one panel, sized to its frame, for a lesson page.
    pub embed: bool,
}

impl PageState {
    pub fn new(embed: bool) -> Self {
        Self {
            selection: Selection {
                text: RwSignal::new(START_TEXT.to_owned()),
                layer: RwSignal::new(0),
                head: RwSignal::new(0),
                stage: RwSignal::new(AttentionStage::Weights),
                mask: RwSignal::new(Mask::Causal),
                window: RwSignal::new(4),
                temperature: RwSignal::new(1.0),
                seed: RwSignal::new(0),
                top_k: RwSignal::new(None),
                top_p: RwSignal::new(None),
                panel: RwSignal::new(Panel::Stage),
                present: RwSignal::new(None),
                theme: RwSignal::new(Theme::Auto),
                heads: HeadsChoice {
                    template: RwSignal::new(Template::default()),
                    token_x: RwSignal::new(None),
                    paint: RwSignal::new(PaintGrid::default()),
                    ablated: RwSignal::new(Vec::new()),
                    mode: RwSignal::new(Replacement::Zero),
                    source: RwSignal::new(String::new()),
                    chosen: RwSignal::new(None),
                    prompt_b: RwSignal::new(String::new()),
                    show: RwSignal::new(true),
                },
            },
            focus: Focus {
                cell: RwSignal::new(None),
                locked: RwSignal::new(false),
                before_present: StoredValue::new_local(None),
            },
            status: Status {
                phase: RwSignal::new(Phase::Loading),
                config: RwSignal::new(None),
                model_label: RwSignal::new("loading…".into()),
                backend_label: RwSignal::new("loading…".into()),
                on_gpu: RwSignal::new(true),
                gpu_error: RwSignal::new(None),
                input_error: RwSignal::new(None),
                text_tokens: RwSignal::new(0),
                download: RwSignal::new(None),
                working: RwSignal::new(false),
                steps: RwSignal::new(None),
                link_note: RwSignal::new(None),
                export_note: RwSignal::new(None),
                model_key: RwSignal::new(Some("default".to_owned())),
                model_request: RwSignal::new(None),
            },
            outputs: Outputs {
                tokens: RwSignal::new(Vec::new()),
                shown_tokens: RwSignal::new(0),
                runs: RwSignal::new(0),
                hover_value: RwSignal::new(None),
                legend: RwSignal::new(None),
                next: RwSignal::new(Vec::new()),
                head_scores: RwSignal::new(None),
                grid_on_screen: RwSignal::new(false),
                finder_on: RwSignal::new(false),
                intervention: RwSignal::new(None),
            },
            telemetry: Telemetry {
                renders: RwSignal::new(0),
                input_at: RwSignal::new(None),
                timed_run: RwSignal::new(None),
                latency_ms: RwSignal::new(None),
                keystroke: RwSignal::new(None),
            },
            generation: Generation { steps: RwSignal::new(Vec::new()), playing: RwSignal::new(false) },
            embed,
        }
    }

    /// The page's state from context (a fresh one if none was provided, so a
    /// panel mounted alone still renders).
    pub fn from_context() -> Self {
        use_context::<PageState>().unwrap_or_else(|| PageState::new(false))
    }

    /// The matrix the stage heatmap shows.
    pub fn view(self) -> View {
        let s = self.selection;
        View { stage: s.stage.get(), layer: s.layer.get(), head: s.head.get() }
    }

    pub fn view_untracked(self) -> View {
        untrack(|| self.view())
    }

    /// The loaded model's (layers, heads, d_head, context), zeros before it loads.
    pub fn shape(self) -> (usize, usize, usize, usize) {
        self.status
            .config
            .with(|c| c.as_ref().map_or((0, 0, 0, 0), |c| (c.n_layer, c.n_head, c.d_head(), c.n_positions)))
    }

    /// The model grid's shape: layers × query heads, and the heads per KV head.
    pub fn grid_shape(self) -> GridShape {
        self.status.config.with(|c| {
            c.as_ref().map_or(GridShape { layers: 0, heads: 0, kv_group: 1 }, |c| GridShape {
                layers: c.n_layer,
                heads: c.n_head,
                kv_group: c.kv_group(),
            })
        })
    }

    /// Rows × columns of the stage heatmap for the shown tokens.
    pub fn dims(self, stage: AttentionStage) -> (usize, usize) {
        let t = self.outputs.shown_tokens.get_untracked();
        let d_head = untrack(|| self.shape().2);
        (t, if stage.square() { t } else { d_head })
    }

    /// Keeps the focused cell if it is inside `rows × cols`; otherwise drops it and unlocks.
    pub fn keep_focus_inside(self, (rows, cols): (usize, usize)) {
        let cell = self.focus.cell.get_untracked().filter(|&(r, c)| r < rows && c < cols);
        if cell.is_none() {
            set_changed(self.focus.locked, false);
        }
        // Every token chip and label watches the focused cell: a run that
        // leaves it as it was must not wake them.
        set_changed(self.focus.cell, cell);
    }

    pub fn select_stage(self, stage: AttentionStage) {
        if stage != self.selection.stage.get_untracked() {
            self.keep_focus_inside(self.dims(stage));
            self.selection.stage.set(stage);
        }
    }

    /// The loaded model's attention stages (Q and K before RoPE too, for RoPE models).
    pub fn stages(self) -> &'static [AttentionStage] {
        AttentionStage::all(self.status.config.with(|c| c.as_ref().is_some_and(|c| c.rope_theta.is_some())))
    }

    pub fn step_stage(self, by: isize) {
        let stages = untrack(|| self.stages());
        self.select_stage(self.selection.stage.get_untracked().step_in(stages, by));
    }

    /// Brings the layer and head inside the loaded model (a link may name
    /// ones it does not have) and says so; `None` when nothing changed.
    pub fn fit_selection_to_model(self) -> Option<String> {
        let (n_layer, n_head, _, _) = untrack(|| self.shape());
        if n_layer == 0 || n_head == 0 {
            return None;
        }
        let (l, h) = (self.selection.layer.get_untracked(), self.selection.head.get_untracked());
        if l < n_layer && h < n_head {
            return None;
        }
        self.selection.layer.set(l.min(n_layer - 1));
        self.selection.head.set(h.min(n_head - 1));
        Some(format!(
            "This link asked for layer {l}, head {h}; this model has {n_layer} layers of {n_head} heads, so the \
             nearest is shown."
        ))
    }

    /// Adds `message` to the note about the address.
    pub fn add_link_note(self, message: String) {
        self.status.link_note.update(|n| {
            *n = Some(match n.take() {
                Some(before) => format!("{before} {message}"),
                None => message,
            })
        });
    }

    /// The prompt's tokens: the tokens before the generated continuation.
    pub fn prompt_tokens(self) -> Vec<Token> {
        let generated = self.generation.steps.with_untracked(Vec::len);
        self.outputs.tokens.with_untracked(|t| t[..t.len().saturating_sub(generated)].to_vec())
    }
}
