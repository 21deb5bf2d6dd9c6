//! `Host`: what the page holds outside the reactive graph (wgpu objects are
//! not `Send`): the model, and where WebGPU works, the GPU context, the
//! resident forward pass, the canvas surface and the heatmap renderer.

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use wasm_bindgen::JsValue;

use super::fetch::fetch_bytes;
use crate::engine::Mask;
use crate::gpu::{GpuContext, GpuError, GpuForward, HeadRead, PendingRead, RunOptions, Stage};
use crate::model::{Model, Token};
use crate::render::{HeatmapParams, HeatmapRenderer};

/// Where the page fetches the default model from (Trunk copies www/models to models/).
pub const MODEL_DIR: &str = "models/default";
pub const MODEL_NAME: &str = "default";
/// The layer the heatmap shows (a layer picker comes with the learner's page).
pub const LAYER: usize = 0;

pub struct GpuHost {
    pub ctx: GpuContext,
    pub fwd: RefCell<GpuForward>,
    surface: wgpu::Surface<'static>,
    renderer: HeatmapRenderer,
    surface_size: Cell<(u32, u32)>,
    /// Tokens the heatmap shows: the last run's, or 0 for empty text (which runs nothing).
    shown: Cell<usize>,
}

pub struct Host {
    pub model: Model,
    pub gpu: Result<GpuHost, String>,
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

async fn open_gpu(model: &Model, canvas: web_sys::HtmlCanvasElement) -> Result<GpuHost, String> {
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
    let surface = ctx
        .instance
        .create_surface(wgpu::SurfaceTarget::Canvas(canvas))
        .map_err(|e| format!("the heatmap canvas cannot use WebGPU: {e}"))?;
    let format =
        surface.get_capabilities(&ctx.adapter).formats.first().copied().ok_or("the canvas offers no texture format")?;
    let renderer = ctx.checked(|| Ok(HeatmapRenderer::new(&ctx.device, format))).await.map_err(|e| e.to_string())?;
    Ok(GpuHost { ctx, fwd: RefCell::new(fwd), surface, renderer, surface_size: Cell::new((0, 0)), shown: Cell::new(0) })
}

/// Loads the model and opens the GPU, then installs the host. The model is
/// required; the GPU is not (its error is kept for the banner).
pub async fn install(canvas: web_sys::HtmlCanvasElement) -> Result<Rc<Host>, String> {
    let model = load_model().await?;
    let gpu = open_gpu(&model, canvas).await;
    let host = Rc::new(Host { model, gpu });
    HOST.with(|h| *h.borrow_mut() = Some(host.clone()));
    Ok(host)
}

impl Host {
    /// "default · 3 layers × 4 heads, d=128, context 128, trained on Austen and Shakespeare".
    pub fn model_label(&self) -> String {
        let c = &self.model.config;
        format!(
            "{} · {} layers × {} heads, d={}, context {}, trained on Austen and Shakespeare",
            self.model.name, c.n_layer, c.n_head, c.n_embd, c.n_positions
        )
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
        match self.ctx.fault() {
            Some(fault) => Err(fault),
            None => Ok(()),
        }
    }

    /// Draws `head`'s softmax weights from the GPU buffer onto the canvas.
    pub fn draw(&self, canvas: &web_sys::HtmlCanvasElement, head: usize, hover: Option<(usize, usize)>) {
        let Ok(fwd) = self.fwd.try_borrow() else { return };
        let (Ok(values), Ok(masked)) = (fwd.buffer(Stage::Weights, LAYER), fwd.buffer(Stage::ScoresMasked, LAYER))
        else {
            return;
        };
        let dpr = web_sys::window().map_or(1.0, |w| w.device_pixel_ratio());
        let width = ((canvas.client_width() as f64 * dpr).round() as u32).max(1);
        let height = ((canvas.client_height() as f64 * dpr).round() as u32).max(1);
        if self.surface_size.get() != (width, height) {
            canvas.set_width(width);
            canvas.set_height(height);
            let Some(config) = self.surface.get_default_config(&self.ctx.adapter, width, height) else { return };
            let config = wgpu::SurfaceConfiguration { format: self.renderer.format(), ..config };
            self.surface.configure(&self.ctx.device, &config);
            self.surface_size.set((width, height));
        }
        let frame = match self.surface.get_current_texture() {
            wgpu::CurrentSurfaceTexture::Success(frame) | wgpu::CurrentSurfaceTexture::Suboptimal(frame) => frame,
            other => {
                log::warn!("skipping a frame: {other:?}");
                self.surface_size.set((0, 0));
                return;
            }
        };
        let view = frame.texture.create_view(&wgpu::TextureViewDescriptor::default());
        let params = HeatmapParams {
            t: self.shown.get() as u32,
            stride: fwd.square_stride() as u32,
            head: head as u32,
            width,
            height,
            lo: 0.0,
            hi: 1.0,
            hover: hover.map(|(r, c)| (r as u32, c as u32)),
        };
        self.renderer.draw(&self.ctx.device, &self.ctx.queue, &view, params, values, masked);
        self.ctx.queue.present(frame);
    }

    /// Starts reading one softmax weight back (4 bytes).
    pub fn begin_read_weight(&self, head: usize, row: usize, col: usize) -> Result<PendingRead, String> {
        let fwd = self.fwd.try_borrow().map_err(|_| "the GPU is busy")?;
        fwd.begin_read_cell(&self.ctx, Stage::Weights, LAYER, (head, row, col)).map_err(|e| e.to_string())
    }

    /// Starts reading a head's whole T×T weight matrix (test hook only).
    pub fn begin_read_head(&self, head: usize) -> Result<HeadRead, String> {
        let fwd = self.fwd.try_borrow().map_err(|_| "the GPU is busy")?;
        fwd.begin_read_head(&self.ctx, Stage::Weights, LAYER, head).map_err(|e| e.to_string())
    }

    /// Tokens in the last run.
    pub fn tokens(&self) -> usize {
        self.shown.get()
    }
}
