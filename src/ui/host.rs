//! `Host`: what the page holds outside the reactive graph (wgpu objects are
//! not `Send`): the model and a backend. Where WebGPU works that is the GPU
//! forward pass with its canvas surfaces and heatmap renderer (heatmaps drawn
//! from the storage buffers, one value read back per hover); elsewhere, or
//! after the GPU is lost, the CPU reference compiled to wasm, whose trace is
//! rasterised by `render::raster`. The UI asks the same questions of both.

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use wasm_bindgen::{Clamped, JsCast, JsValue};

use super::fetch::fetch_bytes;
use crate::engine::extend::extend_cpu;
use crate::engine::residual::{residual_norms, residual_points, top_indices};
use crate::engine::{forward_cpu, sampling, AttentionStage, Mask, Matrix, Trace};
use crate::gpu::{GpuContext, GpuError, GpuForward, HeadMatrix, RunOptions, Stage};
use crate::model::{Model, Token};
use crate::render::raster::{value_range, Raster};
use crate::render::{Colormap, ColourRange, HeatmapRenderer, Panel};

/// Where the page fetches the default model from (Trunk copies www/models to models/).
pub const MODEL_DIR: &str = "models/default";
pub const MODEL_NAME: &str = "default";
/// How many next tokens the page lists.
pub const TOP_K: usize = 10;

/// Which matrix a heatmap shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct View {
    pub stage: AttentionStage,
    pub layer: usize,
    pub head: usize,
}

impl View {
    pub fn colormap(self) -> Colormap {
        if self.stage.signed() {
            Colormap::Diverging
        } else {
            Colormap::Sequential
        }
    }
}

/// A canvas WebGPU draws into, configured to its current pixel size.
struct CanvasSurface {
    surface: wgpu::Surface<'static>,
    size: Cell<(u32, u32)>,
}

pub struct GpuHost {
    pub ctx: GpuContext,
    pub fwd: RefCell<GpuForward>,
    stage: CanvasSurface,
    grid: CanvasSurface,
    block: CanvasSurface,
    renderer: HeatmapRenderer,
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
}

/// The CPU reference's last trace.
pub struct CpuHost {
    trace: RefCell<Option<Trace>>,
}

pub enum Backend {
    Gpu(Box<GpuHost>),
    Cpu(CpuHost),
}

pub struct Host {
    pub model: Model,
    pub backend: RefCell<Rc<Backend>>,
    /// Why the page runs on the CPU, if it does.
    pub gpu_error: RefCell<Option<String>>,
}

thread_local! {
    static HOST: RefCell<Option<Rc<Host>>> = const { RefCell::new(None) };
}

pub fn host() -> Option<Rc<Host>> {
    HOST.with(|h| h.borrow().clone())
}

pub async fn load_model() -> Result<Model, String> {
    let config = fetch_bytes(&format!("{MODEL_DIR}/config.json")).await?;
    let weights = fetch_bytes(&format!("{MODEL_DIR}/model.safetensors")).await?;
    let tokenizer = fetch_bytes(&format!("{MODEL_DIR}/tokenizer.json")).await?;
    Model::from_bytes(MODEL_NAME, &config, &weights, &tokenizer).map_err(|e| e.to_string())
}

fn has_webgpu() -> bool {
    web_sys::window()
        .and_then(|w| js_sys::Reflect::get(&w.navigator(), &JsValue::from_str("gpu")).ok())
        .is_some_and(|gpu| !gpu.is_undefined() && !gpu.is_null())
}

/// `?backend=cpu` in the address forces the CPU fallback (to compare, or to test it).
fn cpu_requested() -> bool {
    web_sys::window()
        .and_then(|w| w.location().search().ok())
        .is_some_and(|q| q.trim_start_matches('?').split('&').any(|kv| kv == "backend=cpu"))
}

async fn open_gpu(model: &Model, canvases: Canvases) -> Result<GpuHost, String> {
    let Canvases { stage, grid, block } = canvases;
    if cpu_requested() {
        return Err("the address asks for the CPU backend (?backend=cpu)".into());
    }
    if !has_webgpu() {
        return Err("this browser does not expose WebGPU (navigator.gpu is missing)".into());
    }
    let ctx = GpuContext::new().await.map_err(|e| match e {
        GpuError::NoAdapter(_) => {
            "the browser exposes WebGPU but offers no GPU adapter (WebGPU may be disabled, or this GPU blocklisted)"
                .to_owned()
        }
        other => other.to_string(),
    })?;
    let fwd = ctx.checked(|| GpuForward::new(&ctx, model)).await.map_err(|e| e.to_string())?;
    let surface = |canvas| {
        ctx.instance
            .create_surface(wgpu::SurfaceTarget::Canvas(canvas))
            .map(|surface| CanvasSurface { surface, size: Cell::new((0, 0)) })
            .map_err(|e| format!("a heatmap canvas cannot use WebGPU: {e}"))
    };
    let (stage, grid, block) = (surface(stage)?, surface(grid)?, surface(block)?);
    let format = stage
        .surface
        .get_capabilities(&ctx.adapter)
        .formats
        .first()
        .copied()
        .ok_or("the canvas offers no texture format")?;
    let renderer = ctx.checked(|| Ok(HeatmapRenderer::new(&ctx.device, format))).await.map_err(|e| e.to_string())?;
    let storage = |label: &str, bytes: u64| {
        ctx.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some(label),
            size: bytes.next_multiple_of(16),
            usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC,
            mapped_at_creation: false,
        })
    };
    let c = &model.config;
    let points = residual_points(c.n_layer);
    Ok(GpuHost {
        range: storage("heatmap range", 16),
        norms: storage("residual norms", (points * c.n_positions * 4) as u64),
        block_ranges: std::array::from_fn(|_| storage("block range", 16)),
        ctx,
        fwd: RefCell::new(fwd),
        stage,
        grid,
        block,
        renderer,
        shown: Cell::new(0),
        run_id: Cell::new(0),
        stage_fitted: Cell::new(None),
        block_fitted: Cell::new(None),
    })
}

/// The WebGPU canvases: the stage heatmap, the model view's grid, the block view.
pub struct Canvases {
    pub stage: web_sys::HtmlCanvasElement,
    pub grid: web_sys::HtmlCanvasElement,
    pub block: web_sys::HtmlCanvasElement,
}

/// Loads the model and opens the GPU (falling back to the CPU), then installs
/// the host. The model is required; the GPU is not.
pub async fn install(canvases: Canvases) -> Result<Rc<Host>, String> {
    let model = load_model().await?;
    let (backend, gpu_error) = match open_gpu(&model, canvases).await {
        Ok(gpu) => (Backend::Gpu(Box::new(gpu)), None),
        Err(e) => (Backend::Cpu(CpuHost { trace: RefCell::new(None) }), Some(e)),
    };
    let host = Rc::new(Host { model, backend: RefCell::new(Rc::new(backend)), gpu_error: RefCell::new(gpu_error) });
    HOST.with(|h| *h.borrow_mut() = Some(host.clone()));
    Ok(host)
}

/// The device pixel size of a canvas's box.
fn pixel_size(canvas: &web_sys::HtmlCanvasElement) -> (u32, u32) {
    let dpr = web_sys::window().map_or(1.0, |w| w.device_pixel_ratio());
    let w = ((canvas.client_width() as f64 * dpr).round() as u32).max(1);
    let h = ((canvas.client_height() as f64 * dpr).round() as u32).max(1);
    (w, h)
}

/// Grid cell placement: `n_layer` rows × `n_head` columns of square maps with gaps.
pub fn grid_cells(size: (u32, u32), n_layer: usize, n_head: usize) -> Vec<[f32; 4]> {
    let gap = 6.0;
    let (w, h) = (size.0 as f32, size.1 as f32);
    let cell_w = (w - gap * (n_head as f32 - 1.0)) / n_head as f32;
    let cell_h = (h - gap * (n_layer as f32 - 1.0)) / n_layer as f32;
    let side = cell_w.min(cell_h).max(1.0);
    (0..n_layer)
        .flat_map(|l| (0..n_head).map(move |hd| [hd as f32 * (side + gap), l as f32 * (side + gap), side, side]))
        .collect()
}

impl Host {
    /// "default · 2 layers × 4 heads, d=128, context 128, trained on Austen and Shakespeare".
    pub fn model_label(&self) -> String {
        let c = &self.model.config;
        format!(
            "{} · {} layers × {} heads, d={}, context {}, trained on Austen and Shakespeare",
            self.model.name, c.n_layer, c.n_head, c.n_embd, c.n_positions
        )
    }

    pub fn backend(&self) -> Rc<Backend> {
        self.backend.borrow().clone()
    }

    /// Whether the page computes on the GPU.
    pub fn on_gpu(&self) -> bool {
        matches!(*self.backend(), Backend::Gpu(_))
    }

    /// "WebGPU · adapter" or "CPU (wasm)".
    pub fn backend_label(&self) -> String {
        match &*self.backend() {
            Backend::Gpu(gpu) => format!("WebGPU · {}", gpu.ctx.adapter_name()),
            Backend::Cpu(_) => "CPU reference (wasm)".into(),
        }
    }

    /// Leaves a GPU that faulted or was lost for the CPU backend: the page
    /// keeps working without a reload, and says why.
    pub fn fall_back_to_cpu(&self, why: String) {
        log::error!("switching to the CPU backend: {why}");
        *self.backend.borrow_mut() = Rc::new(Backend::Cpu(CpuHost { trace: RefCell::new(None) }));
        *self.gpu_error.borrow_mut() = Some(why);
    }

    /// Opens WebGPU again on the same canvases (after a device loss, or when
    /// the user asks): on success the page computes on the GPU again.
    pub async fn restore_gpu(&self, canvases: Canvases) -> Result<(), String> {
        let gpu = open_gpu(&self.model, canvases).await?;
        *self.backend.borrow_mut() = Rc::new(Backend::Gpu(Box::new(gpu)));
        *self.gpu_error.borrow_mut() = None;
        Ok(())
    }

    /// Destroys the GPU device, as a driver reset or a lost GPU would (the
    /// test hook's `loseGpu()`, to check that the page recovers).
    pub fn lose_gpu(&self) {
        if let Backend::Gpu(gpu) = &*self.backend() {
            gpu.ctx.device.destroy();
        }
    }

    pub fn tokenize(&self, text: &str) -> Result<Vec<Token>, String> {
        let tokens = self.model.tokenizer.encode(text).map_err(|e| e.to_string())?;
        let limit = self.model.config.n_positions;
        if tokens.len() > limit {
            return Err(format!(
                "the text is {} tokens long, but this model's context holds at most {limit}; shorten it",
                tokens.len()
            ));
        }
        Ok(tokens)
    }

    /// Runs the whole forward pass (every stage kept) on `tokens`.
    pub fn run(&self, tokens: &[Token], mask: Mask) -> Result<(), String> {
        match &*self.backend() {
            Backend::Gpu(gpu) => {
                let ids: Vec<u32> = tokens.iter().map(|t| t.id).collect();
                gpu.run(&ids, mask)
            }
            Backend::Cpu(cpu) => {
                let (config, weights) = (&self.model.config, &self.model.weights);
                let trace = if tokens.is_empty() {
                    None
                } else {
                    // Text typed or generated at the end: only the new rows are computed (engine::extend).
                    let prev = cpu.trace.borrow();
                    let next = match prev.as_ref() {
                        Some(prev) => extend_cpu(config, weights, prev, tokens.to_vec(), mask),
                        None => forward_cpu(config, weights, tokens.to_vec(), mask),
                    };
                    Some(next.map_err(|e| e.to_string())?)
                };
                *cpu.trace.borrow_mut() = trace;
                Ok(())
            }
        }
    }

    /// Tokens the heatmaps show.
    pub fn shown(&self) -> usize {
        match &*self.backend() {
            Backend::Gpu(gpu) => gpu.shown.get(),
            Backend::Cpu(cpu) => cpu.trace.borrow().as_ref().map_or(0, |t| t.tokens.len()),
        }
    }

    /// Draws one stage's matrix for one head.
    pub fn draw_stage(&self, canvas: &web_sys::HtmlCanvasElement, view: View, hover: Option<(usize, usize)>) {
        match &*self.backend() {
            Backend::Gpu(gpu) => gpu.draw_stage(canvas, view, hover),
            Backend::Cpu(cpu) => cpu.draw_views(canvas, &[(view, [0.0, 0.0, 1.0, 1.0])], hover, true, None),
        }
    }

    /// Draws every layer × head's softmax weights as small maps (the model
    /// view), the `selected` (layer, head) framed.
    pub fn draw_grid(&self, canvas: &web_sys::HtmlCanvasElement, selected: (usize, usize)) {
        let c = &self.model.config;
        let size = pixel_size(canvas);
        let cells = grid_cells(size, c.n_layer, c.n_head);
        let views: Vec<(View, [f32; 4])> = (0..c.n_layer)
            .flat_map(|layer| (0..c.n_head).map(move |head| View { stage: AttentionStage::Weights, layer, head }))
            .zip(cells)
            .collect();
        match &*self.backend() {
            Backend::Gpu(gpu) => gpu.draw_grid(canvas, &views, selected),
            Backend::Cpu(cpu) => {
                // Viewports relative to the canvas: the CPU raster works in fractions.
                let (w, h) = (size.0 as f32, size.1 as f32);
                let rel: Vec<(View, [f32; 4])> =
                    views.iter().map(|&(v, [x, y, cw, ch])| (v, [x / w, y / h, cw / w, ch / h])).collect();
                cpu.draw_views(canvas, &rel, None, false, Some(selected))
            }
        }
    }

    /// One cell's value, as the stage shows it (4 bytes read back on the GPU).
    pub async fn read_cell(&self, view: View, row: usize, col: usize) -> Result<f32, String> {
        let backend = self.backend();
        match &*backend {
            Backend::Gpu(gpu) => {
                let pending = {
                    let fwd = gpu.fwd.try_borrow().map_err(|_| "the GPU is busy")?;
                    fwd.begin_read_head_cell(&gpu.ctx, view.stage, view.layer, (view.head, row, col))
                        .map_err(|e| e.to_string())?
                };
                pending.finish(&gpu.ctx).await.map_err(|e| e.to_string())
            }
            Backend::Cpu(cpu) => cpu
                .matrix(view, |m| m.data.get(row * m.cols + col).copied())
                .flatten()
                .ok_or_else(|| format!("cell ({row}, {col}) is outside the matrix")),
        }
    }

    /// [min, max] of the stage matrix the heatmap's colour map spans (8 bytes read back on the GPU).
    pub async fn read_range(&self, view: View) -> Result<(f32, f32), String> {
        if !view.stage.signed() {
            return Ok((0.0, 1.0));
        }
        let backend = self.backend();
        match &*backend {
            Backend::Gpu(gpu) => {
                let pending = crate::gpu::begin_read(&gpu.ctx, &gpu.range, 0, 2).map_err(|e| e.to_string())?;
                let v = pending.finish(&gpu.ctx).await.map_err(|e| e.to_string())?;
                let scale = gpu
                    .fwd
                    .try_borrow()
                    .ok()
                    .and_then(|f| f.head_matrix(view.stage, view.layer, view.head).ok().map(|m| m.scale))
                    .unwrap_or(1.0);
                Ok((v[0] * scale, v[1] * scale))
            }
            Backend::Cpu(cpu) => cpu.with_view(view, value_range).ok_or_else(|| "no trace yet".into()),
        }
    }

    /// The whole stage matrix (test hook: compared with the CPU trace).
    pub async fn read_matrix(&self, view: View) -> Result<(usize, usize, Vec<f32>), String> {
        let backend = self.backend();
        match &*backend {
            Backend::Gpu(gpu) => {
                let read = {
                    let fwd = gpu.fwd.try_borrow().map_err(|_| "the GPU is busy")?;
                    fwd.begin_read_head_matrix(&gpu.ctx, view.stage, view.layer, view.head)
                        .map_err(|e| e.to_string())?
                };
                let (rows, cols) = (read.rows, read.cols);
                Ok((rows, cols, read.finish(&gpu.ctx).await.map_err(|e| e.to_string())?))
            }
            Backend::Cpu(cpu) => {
                cpu.matrix(view, |m| (m.rows, m.cols, m.data.clone())).ok_or_else(|| "no trace yet".into())
            }
        }
    }

    /// Row `row` of the view's matrix (cols values; one row read back on the GPU).
    pub async fn read_row(&self, view: View, row: usize) -> Result<Vec<f32>, String> {
        let backend = self.backend();
        match &*backend {
            Backend::Gpu(gpu) => {
                let read = {
                    let fwd = gpu.fwd.try_borrow().map_err(|_| "the GPU is busy")?;
                    let m = fwd.head_matrix(view.stage, view.layer, view.head).map_err(|e| e.to_string())?;
                    let m = m.row(row).ok_or_else(|| format!("row {row} is past the matrix"))?;
                    fwd.begin_read_any_matrix(&gpu.ctx, &m).map_err(|e| e.to_string())?
                };
                read.finish(&gpu.ctx).await.map_err(|e| e.to_string())
            }
            Backend::Cpu(cpu) => cpu
                .matrix(view, |m| (row < m.rows).then(|| m.row(row).to_vec()))
                .flatten()
                .ok_or_else(|| format!("row {row} is not in the trace")),
        }
    }

    /// The last position's logits (vocab values; read back on the GPU), for sampling.
    pub async fn last_logits(&self) -> Result<Vec<f32>, String> {
        let backend = self.backend();
        let v = self.model.config.vocab_size;
        match &*backend {
            Backend::Gpu(gpu) => {
                let read = {
                    let fwd = gpu.fwd.try_borrow().map_err(|_| "the GPU is busy")?;
                    fwd.begin_read_last_logits(&gpu.ctx).map_err(|e| e.to_string())?
                };
                let mut logits = read.finish(&gpu.ctx).await.map_err(|e| e.to_string())?;
                logits.truncate(v);
                Ok(logits)
            }
            Backend::Cpu(cpu) => {
                let trace = cpu.trace.borrow();
                let trace = trace.as_ref().ok_or("no trace yet")?;
                Ok(trace.logits.row(trace.logits.rows - 1).to_vec())
            }
        }
    }

    /// The most likely next tokens after the last one, with their probabilities at `temperature`.
    pub async fn top_k(&self, temperature: f32) -> Result<Vec<(u32, f64)>, String> {
        let backend = self.backend();
        match &*backend {
            Backend::Gpu(gpu) => {
                let read = {
                    let fwd = gpu.fwd.try_borrow().map_err(|_| "the GPU is busy")?;
                    fwd.begin_read_top_k(&gpu.ctx, TOP_K, temperature).map_err(|e| e.to_string())?
                };
                let top = read.finish(&gpu.ctx).await.map_err(|e| e.to_string())?;
                Ok(top.tokens.iter().enumerate().map(|(rank, &(id, _))| (id, top.probability(rank))).collect())
            }
            Backend::Cpu(cpu) => {
                let trace = cpu.trace.borrow();
                let trace = trace.as_ref().ok_or("no trace yet")?;
                let last = trace.logits.row(trace.logits.rows - 1);
                let probs = sampling::probabilities(last, temperature);
                // Ranked by logit (at temperature 0 all but one probability is 0).
                let ranked = sampling::candidates(&sampling::probabilities(last, 1.0), Some(TOP_K), None);
                Ok(ranked.into_iter().map(|(id, _)| (id, probs[id as usize])).collect())
            }
        }
    }

    /// Draws the block view for `token` in `layer`: every token's residual norm
    /// through the stream, then the token's ln_1 input and output and its MLP
    /// activations, in the [`BLOCK_PANELS`] fractions of the canvas.
    pub fn draw_block(
        &self,
        canvas: &web_sys::HtmlCanvasElement,
        layer: usize,
        token: usize,
        hover: Option<(usize, usize)>,
    ) {
        match &*self.backend() {
            Backend::Gpu(gpu) => gpu.draw_block(canvas, layer, token, hover),
            Backend::Cpu(cpu) => {
                let trace = cpu.trace.borrow();
                let Some(trace) = trace.as_ref() else { return };
                let Some(parts) = block_parts_cpu(trace, layer, token) else { return };
                let items: Vec<Paint> = parts
                    .iter()
                    .zip(BLOCK_PANELS)
                    .enumerate()
                    .map(|(i, (m, at))| Paint {
                        values: m,
                        masked: None,
                        colormap: if i == 0 { Colormap::Sequential } else { Colormap::Diverging },
                        range: value_range(m, None),
                        at,
                        hover: if i == 0 { hover } else { None },
                    })
                    .collect();
                paint(canvas, &items, None);
            }
        }
    }

    /// One token's residual norm at one point of the stream (4 bytes on the GPU).
    pub async fn read_norm(&self, point: usize, token: usize) -> Result<f32, String> {
        let backend = self.backend();
        match &*backend {
            Backend::Gpu(gpu) => {
                let pending = {
                    let fwd = gpu.fwd.try_borrow().map_err(|_| "the GPU is busy")?;
                    let m = fwd.residual_norms_matrix(&gpu.norms, self.model.config.n_positions);
                    fwd.begin_read_matrix_cell(&gpu.ctx, &m, (point, token)).map_err(|e| e.to_string())?
                };
                pending.finish(&gpu.ctx).await.map_err(|e| e.to_string())
            }
            Backend::Cpu(cpu) => {
                let trace = cpu.trace.borrow();
                let norms = residual_norms(trace.as_ref().ok_or("no trace yet")?);
                norms.data.get(point * norms.cols + token).copied().ok_or_else(|| "outside the stream".into())
            }
        }
    }

    /// The `k` most active MLP neurons of `token` in `layer` (reads its n_inner activations).
    pub async fn mlp_top(&self, layer: usize, token: usize, k: usize) -> Result<Vec<(usize, f32)>, String> {
        let backend = self.backend();
        let row = match &*backend {
            Backend::Gpu(gpu) => {
                let read = {
                    let fwd = gpu.fwd.try_borrow().map_err(|_| "the GPU is busy")?;
                    let m = fwd.token_row(Stage::MlpHidden, layer, token).map_err(|e| e.to_string())?;
                    fwd.begin_read_any_matrix(&gpu.ctx, &m).map_err(|e| e.to_string())?
                };
                read.finish(&gpu.ctx).await.map_err(|e| e.to_string())?
            }
            Backend::Cpu(cpu) => {
                let trace = cpu.trace.borrow();
                let l = trace.as_ref().and_then(|t| t.layers.get(layer)).ok_or("no trace yet")?;
                l.mlp_hidden.row(token).to_vec()
            }
        };
        Ok(top_indices(&row, k))
    }

    /// Calls `f` once what was drawn so far is on screen: when the GPU has
    /// finished the submitted work, or at once on the CPU.
    pub fn when_drawn(&self, f: impl FnOnce() + Send + 'static) {
        match &*self.backend() {
            Backend::Gpu(gpu) => gpu.ctx.queue.on_submitted_work_done(f),
            Backend::Cpu(_) => f(),
        }
    }

    /// Bytes read back from the GPU so far (0 on the CPU).
    pub fn bytes_read_back(&self) -> u64 {
        match &*self.backend() {
            Backend::Gpu(gpu) => gpu.ctx.bytes_read_back(),
            Backend::Cpu(_) => 0,
        }
    }
}

impl GpuHost {
    /// Runs the whole forward pass on `ids`, keeping every stage on the GPU
    /// (only the rows after the prefix shared with the last run are computed).
    pub fn run(&self, ids: &[u32], mask: Mask) -> Result<(), String> {
        if ids.is_empty() {
            self.shown.set(0);
            return Ok(());
        }
        let mut fwd = self.fwd.try_borrow_mut().map_err(|_| "the GPU is busy")?;
        fwd.run(&self.ctx, ids, RunOptions::traced(mask)).map_err(|e| e.to_string())?;
        self.shown.set(ids.len());
        self.run_id.set(self.run_id.get() + 1);
        match self.ctx.fault() {
            Some(fault) => Err(fault),
            None => Ok(()),
        }
    }

    /// A frame of `target`'s surface at the canvas's current pixel size.
    fn frame(
        &self,
        target: &CanvasSurface,
        canvas: &web_sys::HtmlCanvasElement,
    ) -> Option<(wgpu::SurfaceTexture, (u32, u32))> {
        let size = pixel_size(canvas);
        if target.size.get() != size {
            canvas.set_width(size.0);
            canvas.set_height(size.1);
            let config = target.surface.get_default_config(&self.ctx.adapter, size.0, size.1)?;
            let config = wgpu::SurfaceConfiguration { format: self.renderer.format(), ..config };
            target.surface.configure(&self.ctx.device, &config);
            target.size.set(size);
        }
        match target.surface.get_current_texture() {
            wgpu::CurrentSurfaceTexture::Success(frame) | wgpu::CurrentSurfaceTexture::Suboptimal(frame) => {
                Some((frame, size))
            }
            other => {
                log::warn!("skipping a frame: {other:?}");
                target.size.set((0, 0));
                None
            }
        }
    }

    fn draw_stage(&self, canvas: &web_sys::HtmlCanvasElement, view: View, hover: Option<(usize, usize)>) {
        let Ok(fwd) = self.fwd.try_borrow() else { return };
        if self.shown.get() == 0 {
            return self.present(&self.stage, canvas, |_| Vec::new());
        }
        let Ok(matrix) = fwd.head_matrix(view.stage, view.layer, view.head) else { return };
        let range = if view.stage.signed() {
            // The range changes with the run and the view, not with the focused cell.
            let key = (self.run_id.get(), view);
            if self.stage_fitted.get() != Some(key) {
                if let Err(e) = fwd.fit_range(&self.ctx, &matrix, &self.range) {
                    return log::warn!("colour range: {e}");
                }
                self.stage_fitted.set(Some(key));
            }
            ColourRange::Buffer(&self.range)
        } else {
            ColourRange::Fixed(0.0, 1.0)
        };
        self.present(&self.stage, canvas, |size| {
            vec![Panel {
                matrix,
                colormap: view.colormap(),
                range,
                viewport: [0.0, 0.0, size.0 as f32, size.1 as f32],
                hover: hover.map(|(r, c)| (r as u32, c as u32)),
                outline: false,
            }]
        });
    }

    fn draw_grid(&self, canvas: &web_sys::HtmlCanvasElement, views: &[(View, [f32; 4])], selected: (usize, usize)) {
        let Ok(fwd) = self.fwd.try_borrow() else { return };
        if self.shown.get() == 0 {
            return self.present(&self.grid, canvas, |_| Vec::new());
        }
        self.present(&self.grid, canvas, |_| {
            views
                .iter()
                .filter_map(|&(v, viewport)| {
                    let matrix = fwd.head_matrix(v.stage, v.layer, v.head).ok()?;
                    Some(Panel {
                        matrix,
                        colormap: Colormap::Sequential,
                        range: ColourRange::Fixed(0.0, 1.0),
                        viewport,
                        hover: None,
                        outline: (v.layer, v.head) == selected,
                    })
                })
                .collect()
        });
    }

    fn draw_block(
        &self,
        canvas: &web_sys::HtmlCanvasElement,
        layer: usize,
        token: usize,
        hover: Option<(usize, usize)>,
    ) {
        let Ok(fwd) = self.fwd.try_borrow() else { return };
        if self.shown.get() == 0 {
            return self.present(&self.block, canvas, |_| Vec::new());
        }
        let stride = fwd.config().n_positions;
        let ln_in = if layer == 0 { (Stage::Embeddings, 0) } else { (Stage::ResidPost, layer - 1) };
        let rows = || -> Result<[HeadMatrix<'_>; 3], GpuError> {
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
            rows().map(|[a, b, c]| [fwd.residual_norms_matrix(&self.norms, stride), a, b, c])
        } else {
            fwd.residual_norms(&self.ctx, &self.norms, stride).and_then(|norms| {
                let [a, b, c] = rows()?;
                let parts = [norms, a, b, c];
                for (m, range) in parts.iter().zip(&self.block_ranges) {
                    fwd.fit_range(&self.ctx, m, range)?;
                }
                Ok(parts)
            })
        };
        let parts = match parts {
            Ok(parts) => parts,
            Err(e) => return log::warn!("block view: {e}"),
        };
        self.block_fitted.set(Some(key));
        self.present(&self.block, canvas, |size| {
            let (w, h) = (size.0 as f32, size.1 as f32);
            parts
                .iter()
                .zip(&self.block_ranges)
                .zip(BLOCK_PANELS)
                .enumerate()
                .map(|(i, ((&matrix, range), [x, y, pw, ph]))| Panel {
                    matrix,
                    colormap: if i == 0 { Colormap::Sequential } else { Colormap::Diverging },
                    range: ColourRange::Buffer(range),
                    viewport: [x * w, y * h, pw * w, ph * h],
                    hover: if i == 0 { hover.map(|(r, c)| (r as u32, c as u32)) } else { None },
                    outline: false,
                })
                .collect()
        });
    }

    /// Draws `panels(size)` (none: the background only) into a new frame of
    /// `target` at the canvas's pixel size, and presents it.
    fn present<'a>(
        &self,
        target: &CanvasSurface,
        canvas: &web_sys::HtmlCanvasElement,
        panels: impl FnOnce((u32, u32)) -> Vec<Panel<'a>>,
    ) {
        let Some((frame, size)) = self.frame(target, canvas) else { return };
        let panels = panels(size);
        let view = frame.texture.create_view(&wgpu::TextureViewDescriptor::default());
        self.renderer.draw(&self.ctx.device, &self.ctx.queue, &view, size, &panels);
        self.ctx.queue.present(frame);
    }
}

impl CpuHost {
    /// Applies `f` to the view's matrix in the last trace.
    fn matrix<R>(&self, view: View, f: impl FnOnce(&Matrix) -> R) -> Option<R> {
        self.with_view(view, |values, _| f(values))
    }

    /// Applies `f` to the view's matrix and, for stages that show it, the masked scores.
    fn with_view<R>(&self, view: View, f: impl FnOnce(&Matrix, Option<&Matrix>) -> R) -> Option<R> {
        let trace = self.trace.borrow();
        let head = trace.as_ref()?.layers.get(view.layer)?.heads().get(view.head)?;
        let masked = view.stage.shows_mask().then_some(&head.scores_masked);
        Some(f(view.stage.matrix(head), masked))
    }

    /// Rasterises `views` (viewports as fractions of the canvas) onto a 2D canvas.
    fn draw_views(
        &self,
        canvas: &web_sys::HtmlCanvasElement,
        views: &[(View, [f32; 4])],
        hover: Option<(usize, usize)>,
        fit_range: bool,
        selected: Option<(usize, usize)>,
    ) {
        let trace = self.trace.borrow();
        let Some(trace) = trace.as_ref() else { return paint(canvas, &[], None) };
        let items: Vec<Paint> = views
            .iter()
            .filter_map(|&(view, at)| {
                let head = trace.layers.get(view.layer)?.heads().get(view.head)?;
                let values = view.stage.matrix(head);
                let masked = view.stage.shows_mask().then_some(&head.scores_masked);
                let range = if fit_range && view.stage.signed() { value_range(values, masked) } else { (0.0, 1.0) };
                Some(Paint { values, masked, colormap: view.colormap(), range, at, hover })
            })
            .collect();
        let outline = selected.and_then(|sel| views.iter().find(|(v, _)| (v.layer, v.head) == sel).map(|&(_, at)| at));
        paint(canvas, &items, outline);
    }
}

/// Where the block view's four maps sit on its canvas (x, y, width, height as
/// fractions): the residual norms, the ln_1 input and output strips, the MLP strip.
pub const BLOCK_PANELS: [[f32; 4]; 4] =
    [[0.0, 0.0, 1.0, 0.56], [0.0, 0.64, 1.0, 0.08], [0.0, 0.77, 1.0, 0.08], [0.0, 0.90, 1.0, 0.10]];

/// The block view's matrices from a CPU trace (see [`Host::draw_block`]).
fn block_parts_cpu(trace: &Trace, layer: usize, token: usize) -> Option<[Matrix; 4]> {
    let l = trace.layers.get(layer)?;
    let input = if layer == 0 { &trace.embeddings } else { &trace.layers.get(layer - 1)?.resid_post };
    let row = |m: &Matrix| (token < m.rows).then(|| Matrix::from_vec(1, m.cols, m.row(token).to_vec()));
    Some([residual_norms(trace), row(input)?, row(&l.attention.ln_1)?, row(&l.mlp_hidden)?])
}

/// One matrix to rasterise onto a 2D canvas.
struct Paint<'a> {
    values: &'a Matrix,
    masked: Option<&'a Matrix>,
    colormap: Colormap,
    range: (f32, f32),
    /// x, y, width, height as fractions of the canvas.
    at: [f32; 4],
    hover: Option<(usize, usize)>,
}

/// Clears a 2D canvas and rasterises `items` onto it (the CPU backend's
/// renderer), framing `outline` (fractions) if given.
fn paint(canvas: &web_sys::HtmlCanvasElement, items: &[Paint<'_>], outline: Option<[f32; 4]>) {
    let (w, h) = pixel_size(canvas);
    if canvas.width() != w || canvas.height() != h {
        canvas.set_width(w);
        canvas.set_height(h);
    }
    let Ok(Some(ctx)) = canvas.get_context("2d") else { return };
    let Ok(ctx) = ctx.dyn_into::<web_sys::CanvasRenderingContext2d>() else { return };
    ctx.set_fill_style_str("#1f2126");
    ctx.fill_rect(0.0, 0.0, w as f64, h as f64);
    let place = |[x, y, vw, vh]: [f32; 4]| {
        ((x * w as f32) as usize, (y * h as f32) as usize, (vw * w as f32) as usize, (vh * h as f32) as usize)
    };
    for item in items {
        let (px, py, pw, ph) = place(item.at);
        if pw == 0 || ph == 0 {
            continue;
        }
        let raster = Raster {
            values: item.values,
            masked: item.masked,
            colormap: item.colormap,
            range: item.range,
            width: pw,
            height: ph,
            hover: item.hover,
        };
        let pixels = raster.pixels();
        match web_sys::ImageData::new_with_u8_clamped_array_and_sh(Clamped(&pixels), pw as u32, ph as u32) {
            Ok(image) => {
                let _ = ctx.put_image_data(&image, px as f64, py as f64);
            }
            Err(e) => log::warn!("heatmap image: {e:?}"),
        }
    }
    if let Some(at) = outline {
        let (px, py, pw, ph) = place(at);
        ctx.set_stroke_style_str("#7cc4ff");
        ctx.set_line_width(3.0);
        ctx.stroke_rect(px as f64 + 1.5, py as f64 + 1.5, pw as f64 - 3.0, ph as f64 - 3.0);
    }
}
