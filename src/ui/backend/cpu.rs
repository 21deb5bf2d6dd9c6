//! The CPU backend: the reference forward pass compiled to wasm
//! (`backend::cpu_run`: extended row by row as text is added, each head's
//! T×T weights kept while they fit, else computed when read), its trace
//! rasterised onto 2D canvases by `render::raster`, and reads straight from
//! the trace.

use std::cell::RefCell;
use std::ops::ControlFlow;
use std::rc::{Rc, Weak};

use wasm_bindgen::{Clamped, JsCast};

use super::questions::{self, InterventionOutcome, InterventionRequest};
use super::{BackendError, Drawn, MapCell, Target};
use crate::engine::residual::residual_norms;
use crate::engine::{sampling, HeadTrace, LayerTrace, Mask, Matrix, MatrixView, Trace};
use crate::model::{Model, Token};
use crate::render::layout::{grid_cells, place, to_fractions, GridShape, MapWindow, BLOCK_TILES};
use crate::render::raster::{as_bytes, sampled_cells, value_range, Hidden, Raster};
use crate::render::ColourMap;
use crate::ui::state::View;

const NO_TRACE: BackendError = BackendError::NotReady("nothing has run yet");

/// The CPU reference's last trace (shared with a run in steps that starts
/// from it), and the run the page shows in its place while heads are
/// ablated or patched (`apply`).
#[derive(Default)]
pub(super) struct CpuBackend {
    trace: RefCell<Option<Rc<Trace>>>,
    intervened: RefCell<Option<(Rc<Trace>, InterventionRequest)>>,
    /// The stage matrices last computed ([`Computed`]): the one a heatmap
    /// drew, and the one another read asked for (the head view reads every
    /// head's weights in turn, and would otherwise evict the map's).
    computed: RefCell<[Option<Computed>; 2]>,
    /// The residual norms of the trace on screen (weak, as [`Computed`]):
    /// every token at every point of the stream, which a trace that keeps
    /// no stream sums from the layers' outputs (SmolLM2 at T = 2,048: 72
    /// million adds and as many multiply-adds); the block view draws them
    /// and each hover reads one.
    norms: RefCell<Option<(Weak<Trace>, Rc<Matrix>)>>,
}

/// A stage matrix computed from a trace rather than read in place (the
/// raw, scaled or masked scores, and the weights of a trace that keeps
/// none: `AttentionStage::matrix`), for the trace on screen: a heatmap
/// redrawn as the pointer moves, its range and its rows read it again
/// without computing Q·Kᵀ again (T²·d_head multiply-adds: 67 million for a
/// head of GPT-2 small at T = 1,024).
struct Computed {
    /// The trace it came from (weak: it keeps no trace alive, and while
    /// the allocation lives no other trace can have its address).
    trace: Weak<Trace>,
    view: View,
    matrix: Rc<Matrix>,
}

/// One matrix to rasterise onto a 2D canvas.
struct Paint<'a> {
    values: MatrixView<'a>,
    masked: Option<Hidden<'a>>,
    colour_map: ColourMap,
    range: (f32, f32),
    /// x, y, width, height as fractions of the canvas.
    at: [f32; 4],
    hover: Option<MapCell>,
}

impl CpuBackend {
    pub fn run(&self, model: &Model, tokens: &[Token], mask: Mask) -> Drawn {
        let trace = if tokens.is_empty() {
            None
        } else {
            // Text typed, deleted or edited at the end, or generated: only the rows after the
            // beginning it shares with the last run are computed (engine::extend).
            let prev = self.last();
            Some(Rc::new(super::cpu_run(model, prev.as_deref(), tokens.to_vec(), mask)?.finish()))
        };
        self.show(trace);
        Ok(())
    }

    /// The last (clean) run's trace, to start a run in steps from (`Backend::compute`).
    pub fn last(&self) -> Option<Rc<Trace>> {
        self.trace.borrow().clone()
    }

    /// Shows `trace` (a new clean run) from now on.
    pub fn show(&self, trace: impl Into<Option<Rc<Trace>>>) {
        *self.trace.borrow_mut() = trace.into();
        *self.intervened.borrow_mut() = None;
    }

    /// Whether the shown run keeps each head's T×T weights (true before any run).
    pub fn weights_kept(&self) -> bool {
        self.current().is_none_or(|t| t.layers.iter().all(LayerTrace::keeps_weights))
    }

    pub fn shown(&self) -> usize {
        self.trace.borrow().as_ref().map_or(0, |t| t.tokens.len())
    }

    /// The run on screen: the intervened one while heads are replaced, else the last.
    fn current(&self) -> Option<Rc<Trace>> {
        self.intervened.borrow().as_ref().map(|(t, _)| t.clone()).or_else(|| self.trace.borrow().clone())
    }

    /// The run on screen, for the questions of `backend::questions`.
    pub fn trace(&self) -> Result<Rc<Trace>, BackendError> {
        self.current().ok_or(NO_TRACE)
    }

    /// The last clean run (what ablations, patches and sweeps start from).
    pub fn clean(&self) -> Result<Rc<Trace>, BackendError> {
        self.last().ok_or(NO_TRACE)
    }

    /// Re-runs the last clean run with `req`'s heads replaced and, when
    /// `show`, shows that run in its place until the next run or
    /// [`Self::clear_intervention`]; what it did to the next token either way.
    pub fn apply(
        &self,
        model: &Model,
        req: &InterventionRequest,
        show: bool,
    ) -> Result<InterventionOutcome, BackendError> {
        let applied = crate::pace::at_once(self.apply_paced(model, req, show, crate::pace::go_on, || true));
        applied?.ok_or(BackendError::Superseded)
    }

    /// [`Self::apply`] a layer at a time, awaiting `pause` between layers
    /// (superseded when a pause says to stop); `None` (and nothing shown)
    /// when, at the end, a newer run replaced the clean one or `current()`
    /// says a newer intervention was asked for.
    pub async fn apply_paced(
        &self,
        model: &Model,
        req: &InterventionRequest,
        show: bool,
        pause: impl AsyncFnMut() -> ControlFlow<()>,
        current: impl Fn() -> bool,
    ) -> Result<Option<InterventionOutcome>, BackendError> {
        *self.intervened.borrow_mut() = None;
        let clean = self.clean()?;
        let (outcome, trace) = questions::intervene_paced(model, &clean, req, super::STEP_FLOPS, pause).await?;
        let still = current() && self.last().is_some_and(|now| Rc::ptr_eq(&now, &clean));
        if !still {
            return Ok(None);
        }
        if show {
            *self.intervened.borrow_mut() = Some((Rc::new(trace), req.clone()));
        }
        Ok(Some(outcome))
    }

    /// The intervention the run on screen has, if any.
    pub fn shown_request(&self) -> Option<InterventionRequest> {
        self.intervened.borrow().as_ref().map(|(_, req)| req.clone())
    }

    /// Shows the clean run again.
    pub fn clear_intervention(&self) {
        *self.intervened.borrow_mut() = None;
    }

    /// `f` of the view's head and its stage's values: read in place where
    /// the trace keeps them, else computed (once per trace and view:
    /// [`Computed`]).
    fn with_stage<R>(&self, view: View, f: impl FnOnce(&HeadTrace, MatrixView<'_>) -> R) -> Result<R, BackendError> {
        let trace = self.current().ok_or(NO_TRACE)?;
        let head = head_of(&trace, view)?;
        Ok(self.stage_values(&trace, head, (view, false), |values| f(head, values)))
    }

    /// `f` of the stage's values in `head` of `trace`, read in place or
    /// computed as [`Self::with_stage`] says; a matrix computed for a map
    /// drawn (`drawn`) kept apart from one computed for another read.
    fn stage_values<R>(
        &self,
        trace: &Rc<Trace>,
        head: &HeadTrace,
        (view, drawn): (View, bool),
        f: impl FnOnce(MatrixView<'_>) -> R,
    ) -> R {
        if let Some(values) = view.stage.view(head) {
            return f(values);
        }
        let cached =
            self.computed.borrow().iter().flatten().find_map(|c| {
                (c.view == view && Weak::ptr_eq(&c.trace, &Rc::downgrade(trace))).then(|| c.matrix.clone())
            });
        let matrix = cached.unwrap_or_else(|| {
            let matrix = Rc::new(view.stage.matrix(head).into_owned());
            let entry = Computed { trace: Rc::downgrade(trace), view, matrix: matrix.clone() };
            self.computed.borrow_mut()[usize::from(!drawn)] = Some(entry);
            matrix
        });
        f(matrix.view())
    }

    /// The trace on screen, when the view's matrix is computed (not kept
    /// by the trace: `AttentionStage::view`), not yet cached, and costs
    /// over `macs` multiply-adds (T²·d_head): a map to compute a piece of
    /// rows at a time ([`store_computed`](Self::store_computed) then keeps it).
    pub fn computes(&self, view: View, macs: u64) -> Option<Rc<Trace>> {
        let trace = self.current()?;
        let head = head_of(&trace, view).ok()?;
        let (t, d_head) = (head.tokens() as u64, head.q.cols as u64);
        if view.stage.view(head).is_some() || t * t * d_head <= macs {
            return None;
        }
        let cached = self
            .computed
            .borrow()
            .iter()
            .flatten()
            .any(|c| c.view == view && Weak::ptr_eq(&c.trace, &Rc::downgrade(&trace)));
        (!cached).then_some(trace)
    }

    /// Keeps `matrix`, the view's matrix computed from `trace`, for the
    /// draw (`drawn`) or the read that follows, while `trace` is on screen.
    pub fn store_computed(&self, trace: &Rc<Trace>, view: View, drawn: bool, matrix: Matrix) {
        if self.current().is_some_and(|t| Rc::ptr_eq(&t, trace)) {
            let entry = Computed { trace: Rc::downgrade(trace), view, matrix: Rc::new(matrix) };
            self.computed.borrow_mut()[usize::from(!drawn)] = Some(entry);
        }
    }

    /// Applies `f` to the view's head.
    fn with_head<R>(&self, view: View, f: impl FnOnce(&HeadTrace) -> R) -> Result<R, BackendError> {
        let trace = self.current().ok_or(NO_TRACE)?;
        Ok(f(head_of(&trace, view)?))
    }

    fn with_trace<R>(&self, f: impl FnOnce(&Trace) -> Option<R>, what: &str) -> Result<R, BackendError> {
        let trace = self.current();
        f(trace.as_deref().ok_or(NO_TRACE)?).ok_or_else(|| BackendError::Input(format!("{what} is not in the trace")))
    }

    pub fn read_cell(&self, view: View, row: usize, col: usize) -> Result<f32, BackendError> {
        self.with_head(view, |head| view.stage.cell(head, row, col))?
            .ok_or_else(|| BackendError::Input(format!("cell ({row}, {col}) is outside the matrix")))
    }

    pub fn read_range(&self, view: View) -> Result<(f32, f32), BackendError> {
        self.with_stage(view, |head, values| value_range(values, hidden(view, head)))
    }

    pub fn read_matrix(&self, view: View) -> Result<Matrix, BackendError> {
        self.with_stage(view, |_, values| values.to_matrix())
    }

    pub fn read_row(&self, view: View, row: usize) -> Result<Vec<f32>, BackendError> {
        self.with_stage(view, |_, m| (row < m.rows).then(|| m.row(row).to_vec()))?
            .ok_or_else(|| BackendError::Input(format!("row {row} is not in the trace")))
    }

    pub fn last_logits(&self) -> Result<Vec<f32>, BackendError> {
        let last = |t: &Trace| t.tokens.len().checked_sub(1).and_then(|p| t.logits_at(p)).map(<[f32]>::to_vec);
        self.with_trace(last, "the last position")
    }

    /// The most likely next tokens, ranked by logit, with their probabilities at `temperature`.
    pub fn top_k(&self, temperature: f32) -> Result<Vec<(u32, f64)>, BackendError> {
        let last = self.last_logits()?;
        let probs = sampling::probabilities(&last, temperature);
        // Ranked by logit (at temperature 0 all but one probability is 0).
        let ranked = sampling::candidates(&sampling::probabilities(&last, 1.0), Some(super::TOP_K), None);
        Ok(ranked.into_iter().map(|(id, _)| (id, probs.get(id as usize).copied().unwrap_or(0.0))).collect())
    }

    /// The trace on screen, when its residual norms are not cached yet and
    /// cost over `values` values of the stream to walk (points × T × d).
    pub fn norms_to_compute(&self, values: u64) -> Option<Rc<Trace>> {
        let trace = self.current()?;
        let cached = self.norms.borrow().as_ref().is_some_and(|(of, _)| std::ptr::eq(of.as_ptr(), Rc::as_ptr(&trace)));
        let size = (2 * trace.layers.len() as u64 + 1) * trace.tokens.len() as u64 * trace.embeddings.cols as u64;
        (!cached && size > values).then_some(trace)
    }

    /// Keeps `norms`, [`residual_norms`] of `trace` computed elsewhere, while `trace` is on screen.
    pub fn store_norms(&self, trace: &Rc<Trace>, norms: Matrix) {
        if self.current().is_some_and(|t| Rc::ptr_eq(&t, trace)) {
            *self.norms.borrow_mut() = Some((Rc::downgrade(trace), Rc::new(norms)));
        }
    }

    /// [`residual_norms`] of `trace`, computed once per trace.
    fn norms_of(&self, trace: &Rc<Trace>) -> Rc<Matrix> {
        let mut cache = self.norms.borrow_mut();
        match &*cache {
            Some((of, norms)) if std::ptr::eq(of.as_ptr(), Rc::as_ptr(trace)) => norms.clone(),
            _ => {
                let norms = Rc::new(residual_norms(trace));
                *cache = Some((Rc::downgrade(trace), norms.clone()));
                norms
            }
        }
    }

    pub fn read_norms(&self) -> Result<Vec<f32>, BackendError> {
        let trace = self.current().ok_or(NO_TRACE)?;
        Ok(self.norms_of(&trace).data.to_vec())
    }

    pub fn read_norm(&self, point: usize, token: usize) -> Result<f32, BackendError> {
        let trace = self.current().ok_or(NO_TRACE)?;
        let norms = self.norms_of(&trace);
        (point < norms.rows && token < norms.cols)
            .then(|| norms.data[point * norms.cols + token])
            .ok_or_else(|| BackendError::Input("that point of the stream is not in the trace".into()))
    }

    pub fn mlp_row(&self, model: &Model, layer: usize, token: usize) -> Result<Vec<f32>, BackendError> {
        let (config, weights) = (&model.config, &model.weights);
        let row = |t: &Trace| Some(t.mlp_hidden(config, weights, layer, token..token + 1)?.into_owned());
        self.with_trace(row, "that token's MLP")
    }

    /// Draws `window` of the view's matrix over the whole canvas (the colour range is the whole matrix's).
    pub fn draw_stage(&self, canvas: Target<'_>, view: View, hover: Option<MapCell>, window: MapWindow) -> Drawn {
        let trace = self.current();
        let Some((trace, head)) = trace.as_ref().and_then(|t| Some((t, head_of(t, view).ok()?))) else {
            return paint(canvas, &[], None);
        };
        self.stage_values(trace, head, (view, true), |values| {
            let masked = hidden(view, head);
            let range = if view.stage.signed() { value_range(values, masked) } else { (0.0, 1.0) };
            let window = window.clamped((values.rows, values.cols));
            let colour_map = view.colour_map();
            if window.is_full((values.rows, values.cols)) {
                let item = Paint { values, masked, colour_map, range, at: [0.0, 0.0, 1.0, 1.0], hover };
                return paint(canvas, &[item], None);
            }
            let values = values.window(window.row0, window.col0, window.rows, window.cols);
            let masked = view.stage.shows_mask().then_some(Hidden::Mask {
                mask: head.mask,
                row0: window.row0,
                col0: window.col0,
            });
            let hover = hover.and_then(|cell| window.to_local(cell));
            paint(canvas, &[Paint { values, masked, colour_map, range, at: [0.0, 0.0, 1.0, 1.0], hover }], None)
        })
    }

    /// Every head's weights in the model grid, `selected` outlined. A tile
    /// with fewer pixels than its map has cells draws from the cells under
    /// its pixels alone (`raster::sampled_cells`: the very same pixels),
    /// read in place or, where the trace keeps no weights, computed from Q,
    /// K and each row's softmax: a tile's worth of weights, not T².
    pub fn draw_grid(&self, canvas: Target<'_>, shape: GridShape, selected: (usize, usize)) -> Drawn {
        let size = canvas.size;
        let trace = self.current();
        let Some(trace) = trace.as_deref() else { return paint(canvas, &[], None) };
        // The CPU raster works in fractions of the canvas.
        let heads = (0..shape.layers).flat_map(|layer| (0..shape.heads).map(move |head| (layer, head)));
        let tiles: Vec<((usize, usize), [f32; 4])> =
            heads.zip(grid_cells(size, shape).into_iter().map(|at| to_fractions(at, size))).collect();
        // Each tile's cells (sampled, or all) and the ones the mask hides, marked −∞.
        let maps: Vec<(Matrix, Matrix, [f32; 4])> = tiles
            .iter()
            .filter_map(|&((layer, head), at)| {
                let head = trace.layers.get(layer)?.heads().get(head)?;
                let (_, _, width, height) = place(at, size);
                let t = head.tokens();
                let (rows, cols) =
                    sampled_cells(t, t, width, height).unwrap_or_else(|| ((0..t).collect(), (0..t).collect()));
                let hides = |i: usize, j: usize| if head.mask.allows(i, j) { 0.0 } else { f32::NEG_INFINITY };
                let hidden = rows.iter().flat_map(|&i| cols.iter().map(move |&j| hides(i, j))).collect();
                Some((head.weights_at(&rows, &cols), Matrix::from_vec(rows.len(), cols.len(), hidden), at))
            })
            .collect();
        let items: Vec<Paint> = maps
            .iter()
            .map(|(values, hidden, at)| Paint {
                values: values.view(),
                masked: Some(Hidden::Cells(hidden)),
                colour_map: ColourMap::Sequential,
                range: (0.0, 1.0),
                at: *at,
                hover: None,
            })
            .collect();
        let outline = tiles.iter().find(|(head, _)| *head == selected).map(|&(_, at)| at);
        paint(canvas, &items, outline)
    }

    pub fn draw_block(
        &self,
        canvas: Target<'_>,
        model: &Model,
        layer: usize,
        token: usize,
        hover: Option<MapCell>,
    ) -> Drawn {
        let Some(trace) = self.current() else { return paint(canvas, &[], None) };
        let parts = block_parts(model, &trace, layer, token, (*self.norms_of(&trace)).clone())
            .ok_or_else(|| BackendError::Input(format!("token {token} of layer {layer} is not in the trace")))?;
        let items: Vec<Paint> = parts
            .iter()
            .zip(BLOCK_TILES)
            .enumerate()
            .map(|(i, (m, at))| Paint {
                values: m.view(),
                masked: None,
                colour_map: if i == 0 { ColourMap::Sequential } else { ColourMap::Diverging },
                range: value_range(m, None),
                at,
                hover: if i == 0 { hover } else { None },
            })
            .collect();
        paint(canvas, &items, None)
    }
}

/// The cells of the view's matrix the mask removed, for stages that show it.
fn hidden(view: View, head: &HeadTrace) -> Option<Hidden<'static>> {
    view.stage.shows_mask().then_some(Hidden::mask(head.mask))
}

/// The view's head in `trace`.
pub(super) fn head_of(trace: &Trace, view: View) -> Result<&HeadTrace, BackendError> {
    trace
        .layers
        .get(view.layer)
        .and_then(|l| l.heads().get(view.head))
        .ok_or_else(|| BackendError::Input(format!("layer {}, head {} is not in the model", view.layer, view.head)))
}

/// The block view's matrices from a trace: the residual norms, then the
/// token's rows into ln_1, out of it, and of the MLP activations.
/// (The stream, the norm and the MLP are kept in the trace or computed when
/// read, one row each: `Trace::stream_rows`.)
fn block_parts(model: &Model, trace: &Trace, layer: usize, token: usize, norms: Matrix) -> Option<[Matrix; 4]> {
    let (config, weights, one) = (&model.config, &model.weights, token..token + 1);
    let row = |values: std::borrow::Cow<'_, [f32]>| Matrix::from_vec(1, values.len(), values.into_owned());
    let input = row(trace.stream_rows(2 * layer, one.clone()).filter(|_| layer < trace.layers.len())?);
    let ln_1 = row(trace.ln_1(config, weights, layer, one.clone())?);
    let hidden = row(trace.mlp_hidden(config, weights, layer, one)?);
    Some([norms, input, ln_1, hidden])
}

/// Clears a 2D canvas and rasterises `items` onto it (the CPU backend's
/// renderer), framing `outline` (fractions) if given.
fn paint(canvas: Target<'_>, items: &[Paint<'_>], outline: Option<[f32; 4]>) -> Drawn {
    let size = canvas.size;
    if (canvas.width(), canvas.height()) != size {
        canvas.set_width(size.0);
        canvas.set_height(size.1);
    }
    let no_context = || BackendError::NotReady("the canvas offers no 2D context");
    let ctx = canvas
        .get_context("2d")
        .ok()
        .flatten()
        .and_then(|c| c.dyn_into::<web_sys::CanvasRenderingContext2d>().ok())
        .ok_or_else(no_context)?;
    ctx.set_fill_style_str("#1f2126");
    ctx.fill_rect(0.0, 0.0, size.0 as f64, size.1 as f64);
    for item in items {
        let (px, py, pw, ph) = place(item.at, size);
        if pw == 0 || ph == 0 {
            continue;
        }
        let raster = Raster {
            values: item.values,
            masked: item.masked,
            colour_map: item.colour_map,
            range: item.range,
            width: pw,
            height: ph,
            hover: item.hover,
        };
        let pixels = raster.pixels();
        match web_sys::ImageData::new_with_u8_clamped_array_and_sh(Clamped(as_bytes(&pixels)), pw as u32, ph as u32) {
            Ok(image) => {
                let _ = ctx.put_image_data(&image, px as f64, py as f64);
            }
            Err(e) => log::warn!("heatmap image: {e:?}"),
        }
    }
    if let Some(at) = outline {
        let (px, py, pw, ph) = place(at, size);
        ctx.set_stroke_style_str("#7cc4ff");
        ctx.set_line_width(3.0);
        ctx.stroke_rect(px as f64 + 1.5, py as f64 + 1.5, pw as f64 - 3.0, ph as f64 - 3.0);
    }
    Ok(())
}
