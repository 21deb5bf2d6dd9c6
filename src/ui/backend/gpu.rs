//! The GPU backend: the forward pass with every stage resident
//! (`gpu::GpuForward`), heatmaps drawn from its storage buffers onto WebGPU
//! canvas surfaces (`render::HeatmapRenderer`), and reads of just what the
//! screen needs (a hovered cell, a row, the top-k, two range values).

use std::cell::{Cell, RefCell};
use std::collections::HashMap;

use super::{gpu_allowed, BackendError, Drawn, MapCanvas, MapCell, Target};
use crate::engine::{AttentionStage, Mask, Matrix};
use crate::gpu::{GpuContext, GpuError, GpuForward, GpuMatrix, RunOptions, Stage};
use crate::model::Model;
use crate::render::layout::{grid_cells, to_pixels, GridShape, MapWindow, BLOCK_TILES};
use crate::render::{ColourMap, ColourRange, HeatmapRenderer, Tile};
use crate::ui::state::View;

/// A canvas WebGPU draws into, configured to its current pixel size.
struct CanvasSurface {
    canvas: web_sys::HtmlCanvasElement,
    surface: wgpu::Surface<'static>,
    size: Cell<(u32, u32)>,
}

pub(super) struct GpuBackend {
    pub ctx: GpuContext,
    pub(super) fwd: RefCell<GpuForward>,
    renderer: HeatmapRenderer,
    /// The surfaces of the canvases drawn on so far, made on first use.
    surfaces: RefCell<HashMap<MapCanvas, CanvasSurface>>,
    /// [min, max] of the stage heatmap, fitted on the GPU (value_range.wgsl).
    range: wgpu::Buffer,
    /// The block view's residual norms ([(2·n_layer + 1) × n_positions]) and
    /// the ranges of its four maps.
    norms: wgpu::Buffer,
    block_ranges: [wgpu::Buffer; 4],
    /// Tokens the heatmaps show: the last run's, or 0 for empty text (which runs nothing).
    shown: Cell<usize>,
    /// Counts runs, so ranges and norms are fitted once per run and view, not per redraw.
    run_id: Cell<u64>,
    stage_fitted: Cell<Option<(u64, View)>>,
    block_fitted: Cell<Option<(u64, usize, usize)>>,
    /// Second prompts (a patch's source, the diff's B) and the intervention shown.
    pub(super) interventions: super::gpu_intervene::Interventions,
}

pub(super) fn busy<T>(r: Result<T, impl std::fmt::Debug>) -> Result<T, BackendError> {
    r.map_err(|_| BackendError::Busy)
}

impl GpuBackend {
    /// Opens WebGPU and uploads the model; the canvases' texture format comes
    /// from a canvas made for the purpose, so panels' canvases get surfaces
    /// when they are first drawn on.
    pub async fn open(model: &Model) -> Result<Self, BackendError> {
        gpu_allowed()?;
        let ctx = GpuContext::new().await.map_err(|e| match e {
            GpuError::NoAdapter(_) => BackendError::NoGpu(
                "the browser exposes WebGPU but offers no GPU adapter (WebGPU may be disabled, or this GPU \
                 blocklisted)"
                    .into(),
            ),
            other => BackendError::NoGpu(other.to_string()),
        })?;
        let fwd = ctx.checked(|| GpuForward::new(&ctx, model)).await.map_err(|e| BackendError::NoGpu(e.to_string()))?;
        let probe = web_sys::window()
            .and_then(|w| w.document())
            .and_then(|d| d.create_element("canvas").ok())
            .and_then(|e| wasm_bindgen::JsCast::dyn_into::<web_sys::HtmlCanvasElement>(e).ok())
            .ok_or_else(|| BackendError::NoGpu("no canvas could be made".into()))?;
        let probe = ctx
            .instance
            .create_surface(wgpu::SurfaceTarget::Canvas(probe))
            .map_err(|e| BackendError::NoGpu(format!("a canvas cannot use WebGPU: {e}")))?;
        let format = probe
            .get_capabilities(&ctx.adapter)
            .formats
            .first()
            .copied()
            .ok_or_else(|| BackendError::NoGpu("the canvas offers no texture format".into()))?;
        let renderer = ctx
            .checked(|| Ok(HeatmapRenderer::new(&ctx.device, format)))
            .await
            .map_err(|e| BackendError::NoGpu(e.to_string()))?;
        let storage = |label: &str, bytes: u64| {
            ctx.device.create_buffer(&wgpu::BufferDescriptor {
                label: Some(label),
                size: bytes.next_multiple_of(16),
                usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC,
                mapped_at_creation: false,
            })
        };
        let c = &model.config;
        let points = crate::engine::residual::residual_points(c.n_layer);
        Ok(GpuBackend {
            range: storage("heatmap range", 16),
            norms: storage("residual norms", (points * c.n_positions * 4) as u64),
            block_ranges: std::array::from_fn(|_| storage("block range", 16)),
            ctx,
            fwd: RefCell::new(fwd),
            renderer,
            surfaces: RefCell::new(HashMap::new()),
            shown: Cell::new(0),
            run_id: Cell::new(0),
            stage_fitted: Cell::new(None),
            block_fitted: Cell::new(None),
            interventions: Default::default(),
        })
    }

    pub fn shown(&self) -> usize {
        self.shown.get()
    }

    /// The largest storage binding: the device's, or less through the test
    /// hook (`crate::ui::web::models::set_limits`).
    pub fn max_binding(&self) -> u64 {
        let device = self.ctx.device.limits().max_storage_buffer_binding_size;
        crate::ui::web::models::limits(crate::model::plan::Limits { max_binding: device, ..Default::default() })
            .max_binding
            .min(device)
    }

    /// The most bytes a run's T×T matrices may take: [`crate::gpu::MATRIX_BUDGET`],
    /// or less where the test hook set a GPU memory (past it, one block's
    /// matrices at a time).
    pub fn matrix_budget(&self) -> u64 {
        let limits = crate::ui::web::models::limits(crate::model::plan::Limits::default());
        limits.gpu_memory.map_or(crate::gpu::MATRIX_BUDGET, |m| m.min(crate::gpu::MATRIX_BUDGET))
    }

    /// `view`'s matrix in the buffers; a T×T one of a block computed first
    /// where the GPU holds one block's at a time (`GpuForward::ensure_block`).
    pub(super) fn view_matrix<'f>(&self, fwd: &'f GpuForward, view: View) -> Result<GpuMatrix<'f>, BackendError> {
        if view.stage.square() {
            fwd.ensure_block(&self.ctx, view.layer)?;
        }
        Ok(fwd.head_matrix(view.stage, view.layer, view.head)?)
    }

    /// The forward pass, to share its weights with a timing run.
    pub fn forward(&self) -> Result<std::cell::Ref<'_, GpuForward>, BackendError> {
        busy(self.fwd.try_borrow())
    }

    /// Runs the whole forward pass on `ids`, keeping every stage on the GPU
    /// (only the rows after the prefix shared with the last run are computed).
    pub fn run(&self, ids: &[u32], mask: Mask) -> Drawn {
        // A run puts the clean run back first (`GpuForward::run`); the page applies its ablation again after.
        self.interventions.forget_shown()?;
        if ids.is_empty() {
            self.shown.set(0);
            return Ok(());
        }
        let mut fwd = busy(self.fwd.try_borrow_mut())?;
        fwd.set_matrix_budget(self.matrix_budget());
        fwd.run(&self.ctx, ids, RunOptions::traced(mask))?;
        self.shown.set(ids.len());
        self.changed();
        self.check_fault()
    }

    /// The buffers hold another run: ranges and norms are fitted again.
    pub(super) fn changed(&self) {
        self.run_id.set(self.run_id.get() + 1);
    }

    /// A GPU fault or loss seen since the device opened.
    pub(super) fn check_fault(&self) -> Drawn {
        match self.ctx.fault() {
            Some(fault) => Err(BackendError::DeviceLost(fault)),
            None => Ok(()),
        }
    }

    pub async fn read_cell(&self, view: View, row: usize, col: usize) -> Result<f32, BackendError> {
        let read = {
            let fwd = busy(self.fwd.try_borrow())?;
            self.view_matrix(&fwd, view)?.begin_read_cell(&self.ctx, (row, col))?
        };
        Ok(read.finish(&self.ctx).await?)
    }

    /// The range `draw_stage` fitted for the view's colour map, in the stage's units.
    pub async fn read_range(&self, view: View) -> Result<(f32, f32), BackendError> {
        let pending = crate::gpu::begin_read(&self.ctx, &self.range, 0, 2)?;
        let v = pending.finish(&self.ctx).await?;
        let scale = self.view_matrix(&*busy(self.fwd.try_borrow())?, view)?.scale;
        match v.as_slice() {
            [lo, hi, ..] => Ok((lo * scale, hi * scale)),
            _ => Err(GpuError::Readback("a short range read".into()).into()),
        }
    }

    pub async fn read_matrix(&self, view: View) -> Result<Matrix, BackendError> {
        let read = {
            let fwd = busy(self.fwd.try_borrow())?;
            self.view_matrix(&fwd, view)?.begin_read(&self.ctx)?
        };
        let (rows, cols) = (read.rows, read.cols);
        Ok(Matrix::from_vec(rows, cols, read.finish(&self.ctx).await?))
    }

    pub async fn read_row(&self, view: View, row: usize) -> Result<Vec<f32>, BackendError> {
        let read = {
            let fwd = busy(self.fwd.try_borrow())?;
            let m = self.view_matrix(&fwd, view)?;
            let m = m.row(row).ok_or(GpuError::OutOfRange(format!("row {row} of a {}-row matrix", m.rows)))?;
            m.begin_read(&self.ctx)?
        };
        Ok(read.finish(&self.ctx).await?)
    }

    pub async fn last_logits(&self, vocab: usize) -> Result<Vec<f32>, BackendError> {
        let read = busy(self.fwd.try_borrow())?.begin_read_last_logits(&self.ctx)?;
        let mut logits = read.finish(&self.ctx).await?;
        logits.truncate(vocab);
        Ok(logits)
    }

    pub async fn top_k(&self, temperature: f32) -> Result<Vec<(u32, f64)>, BackendError> {
        let read = busy(self.fwd.try_borrow())?.begin_read_top_k(&self.ctx, super::TOP_K, temperature)?;
        let top = read.finish(&self.ctx).await?;
        Ok(top.tokens.iter().enumerate().map(|(rank, &(id, _))| (id, top.probability(rank))).collect())
    }

    pub async fn read_norm(&self, stride: usize, point: usize, token: usize) -> Result<f32, BackendError> {
        let read = {
            let fwd = busy(self.fwd.try_borrow())?;
            fwd.residual_norms_matrix(&self.norms, stride).begin_read_cell(&self.ctx, (point, token))?
        };
        Ok(read.finish(&self.ctx).await?)
    }

    pub async fn read_norms(&self, stride: usize) -> Result<Vec<f32>, BackendError> {
        let read = {
            let fwd = busy(self.fwd.try_borrow())?;
            fwd.residual_norms_matrix(&self.norms, stride).begin_read(&self.ctx)?
        };
        Ok(read.finish(&self.ctx).await?)
    }

    pub async fn mlp_row(&self, layer: usize, token: usize) -> Result<Vec<f32>, BackendError> {
        let read = busy(self.fwd.try_borrow())?.token_row(Stage::MlpHidden, layer, token)?.begin_read(&self.ctx)?;
        Ok(read.finish(&self.ctx).await?)
    }

    /// Draws `window` of the view's matrix over the whole canvas (the colour range is the whole matrix's).
    pub fn draw_stage(&self, canvas: Target<'_>, view: View, hover: Option<MapCell>, window: MapWindow) -> Drawn {
        let fwd = busy(self.fwd.try_borrow())?;
        if self.shown.get() == 0 {
            return self.present(MapCanvas::Stage, canvas, |_| Vec::new());
        }
        let matrix = self.view_matrix(&fwd, view)?;
        let range = if view.stage.signed() {
            // The range changes with the run and the view, not with the focused cell.
            let key = (self.run_id.get(), view);
            if self.stage_fitted.get() != Some(key) {
                fwd.fit_range(&self.ctx, &matrix, &self.range)?;
                self.stage_fitted.set(Some(key));
            }
            ColourRange::Buffer(&self.range)
        } else {
            ColourRange::Fixed(0.0, 1.0)
        };
        // The window is a sub-matrix: the same buffers from another offset, fewer rows and columns.
        let window = window.clamped((matrix.rows, matrix.cols));
        let shown = GpuMatrix {
            offset: matrix.offset + window.row0 * matrix.row_stride + window.col0,
            rows: window.rows,
            cols: window.cols,
            ..matrix
        };
        let hover = hover.and_then(|cell| window.to_local(cell));
        self.present(MapCanvas::Stage, canvas, |size| {
            vec![Tile {
                matrix: shown,
                colour_map: view.colour_map(),
                range,
                viewport: [0.0, 0.0, size.0 as f32, size.1 as f32],
                hover: hover.map(|(r, c)| (r as u32, c as u32)),
                outline: false,
            }]
        })
    }

    pub fn draw_grid(&self, canvas: Target<'_>, shape: GridShape, selected: (usize, usize)) -> Drawn {
        let fwd = busy(self.fwd.try_borrow())?;
        if self.shown.get() == 0 {
            return self.present(MapCanvas::Grid, canvas, |_| Vec::new());
        }
        // A block's tiles, each over its cell of the grid.
        let tiles = |layer: usize, cells: &[[f32; 4]]| -> Result<Vec<Tile<'_>>, BackendError> {
            (0..shape.heads)
                .zip(&cells[(layer * shape.heads).min(cells.len())..])
                .map(|(head, &viewport)| {
                    Ok(Tile {
                        matrix: fwd.head_matrix(AttentionStage::Weights, layer, head)?,
                        colour_map: ColourMap::Sequential,
                        range: ColourRange::Fixed(0.0, 1.0),
                        viewport,
                        hover: None,
                        outline: (layer, head) == selected,
                    })
                })
                .collect()
        };
        self.present_with(MapCanvas::Grid, canvas, |size, view| {
            let cells = grid_cells(size, shape);
            if !fwd.one_block() {
                let all = (0..shape.layers).map(|l| tiles(l, &cells)).collect::<Result<Vec<_>, _>>()?;
                self.renderer.draw(&self.ctx.device, &self.ctx.queue, view, size, &all.concat(), true);
                return Ok(());
            }
            // One block's T×T matrices at a time: each block's computed, then its row of tiles
            // drawn; the selected block's last, so that the map and hover that follow find it there.
            let others = (0..shape.layers).filter(|&l| l != selected.0);
            let order = others.chain(std::iter::once(selected.0).filter(|&l| l < shape.layers));
            for (i, layer) in order.enumerate() {
                fwd.ensure_block(&self.ctx, layer)?;
                self.renderer.draw(&self.ctx.device, &self.ctx.queue, view, size, &tiles(layer, &cells)?, i == 0);
            }
            Ok(())
        })
    }

    pub fn draw_block(&self, canvas: Target<'_>, layer: usize, token: usize, hover: Option<MapCell>) -> Drawn {
        let fwd = busy(self.fwd.try_borrow())?;
        if self.shown.get() == 0 {
            return self.present(MapCanvas::Block, canvas, |_| Vec::new());
        }
        let stride = fwd.config().n_positions;
        let ln_in = if layer == 0 { (Stage::Embeddings, 0) } else { (Stage::ResidPost, layer - 1) };
        let rows = || -> Result<[GpuMatrix<'_>; 3], GpuError> {
            Ok([
                fwd.token_row(ln_in.0, ln_in.1, token)?,
                fwd.token_row(Stage::Ln1, layer, token)?,
                fwd.token_row(Stage::MlpHidden, layer, token)?,
            ])
        };
        // The norms and the four ranges change with the run, layer and token;
        // hovering the norms map only redraws.
        let key = (self.run_id.get(), layer, token);
        let parts = if self.block_fitted.get() == Some(key) {
            let [a, b, c] = rows()?;
            [fwd.residual_norms_matrix(&self.norms, stride), a, b, c]
        } else {
            let norms = fwd.residual_norms(&self.ctx, &self.norms, stride)?;
            let [a, b, c] = rows()?;
            let parts = [norms, a, b, c];
            for (m, range) in parts.iter().zip(&self.block_ranges) {
                fwd.fit_range(&self.ctx, m, range)?;
            }
            self.block_fitted.set(Some(key));
            parts
        };
        self.present(MapCanvas::Block, canvas, |size| {
            parts
                .iter()
                .zip(&self.block_ranges)
                .zip(BLOCK_TILES)
                .enumerate()
                .map(|(i, ((&matrix, range), at))| Tile {
                    matrix,
                    colour_map: if i == 0 { ColourMap::Sequential } else { ColourMap::Diverging },
                    range: ColourRange::Buffer(range),
                    viewport: to_pixels(at, size),
                    hover: if i == 0 { hover.map(|(r, c)| (r as u32, c as u32)) } else { None },
                    outline: false,
                })
                .collect()
        })
    }

    /// Draws `tiles(size)` (none: the background only) into a new frame of
    /// `which`'s surface at the canvas's pixel size, and presents it.
    fn present<'a>(
        &self,
        which: MapCanvas,
        canvas: Target<'_>,
        tiles: impl FnOnce((u32, u32)) -> Vec<Tile<'a>>,
    ) -> Drawn {
        self.present_with(which, canvas, |size, view| {
            self.renderer.draw(&self.ctx.device, &self.ctx.queue, view, size, &tiles(size), true);
            Ok(())
        })
    }

    /// Presents the canvas's next frame as `draw` draws it (given the
    /// canvas's size and the frame's view).
    fn present_with(
        &self,
        which: MapCanvas,
        canvas: Target<'_>,
        draw: impl FnOnce((u32, u32), &wgpu::TextureView) -> Drawn,
    ) -> Drawn {
        let mut surfaces = busy(self.surfaces.try_borrow_mut())?;
        let stale = surfaces.get(&which).is_none_or(|s| &s.canvas != canvas.canvas);
        if stale {
            let surface = self
                .ctx
                .instance
                .create_surface(wgpu::SurfaceTarget::Canvas(canvas.canvas.clone()))
                .map_err(|e| BackendError::DeviceLost(format!("a heatmap canvas cannot use WebGPU: {e}")))?;
            surfaces.insert(which, CanvasSurface { canvas: canvas.canvas.clone(), surface, size: Cell::new((0, 0)) });
        }
        let Some(target) = surfaces.get(&which) else { return Ok(()) };
        let size = canvas.size;
        if target.size.get() != size {
            canvas.set_width(size.0);
            canvas.set_height(size.1);
            let config = target
                .surface
                .get_default_config(&self.ctx.adapter, size.0, size.1)
                .ok_or_else(|| BackendError::DeviceLost("the canvas surface cannot be configured".into()))?;
            let config = wgpu::SurfaceConfiguration { format: self.renderer.format(), ..config };
            target.surface.configure(&self.ctx.device, &config);
            target.size.set(size);
        }
        let frame = match target.surface.get_current_texture() {
            wgpu::CurrentSurfaceTexture::Success(frame) | wgpu::CurrentSurfaceTexture::Suboptimal(frame) => frame,
            other => {
                // Configured again on the next draw.
                target.size.set((0, 0));
                log::warn!("skipping a frame: {other:?}");
                return Ok(());
            }
        };
        let view = frame.texture.create_view(&wgpu::TextureViewDescriptor::default());
        let drawn = draw(size, &view);
        self.ctx.queue.present(frame);
        drawn
    }
}
