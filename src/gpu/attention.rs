//! `GpuAttention`: the first attention layer on the GPU, weights resident,
//! every stage kept in its own storage buffer for rendering and slice readback.

use wgpu::util::DeviceExt;

use super::readback::{begin_read, PendingRead};
use super::{GpuContext, GpuError, Kernels};
use crate::engine::{check_ids, Mask};
use crate::model::{Model, ModelConfig, Tensor};

/// A stage whose tensor stays on the GPU after a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// Residual stream entering the layer, T×d.
    Embeddings,
    /// ln_1 output, T×d.
    Ln1,
    /// Fused Q|K|V, T×3d.
    Qkv,
    /// Q·Kᵀ, H×T×T.
    ScoresRaw,
    /// Scaled and masked scores (−∞ where masked), H×T×T.
    ScoresMasked,
    /// Softmax weights, H×T×T.
    Weights,
    /// Concatenated head outputs W·V, T×d.
    HeadOut,
}

struct RunBuffers {
    capacity: usize,
    ids: wgpu::Buffer,
    x: wgpu::Buffer,
    ln: wgpu::Buffer,
    qkv: wgpu::Buffer,
    raw: wgpu::Buffer,
    masked: wgpu::Buffer,
    weights: wgpu::Buffer,
    head_out: wgpu::Buffer,
}

pub struct GpuAttention {
    kernels: Kernels,
    config: ModelConfig,
    wte: wgpu::Buffer,
    wpe: wgpu::Buffer,
    ln_g: wgpu::Buffer,
    ln_b: wgpu::Buffer,
    qkv_w: wgpu::Buffer,
    qkv_b: wgpu::Buffer,
    run: Option<RunBuffers>,
    t: usize,
    mask: Mask,
}

const STORAGE: wgpu::BufferUsages = wgpu::BufferUsages::STORAGE.union(wgpu::BufferUsages::COPY_SRC);

fn upload(ctx: &GpuContext, name: &str, tensor: &Tensor) -> Result<wgpu::Buffer, GpuError> {
    ctx.check_binding(name, tensor.data.len() as u64 * 4)?;
    Ok(ctx.device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
        label: Some(name),
        contents: bytemuck::cast_slice(&tensor.data),
        usage: STORAGE,
    }))
}

fn scratch(ctx: &GpuContext, name: &str, elements: usize) -> Result<wgpu::Buffer, GpuError> {
    let bytes = elements.max(1) as u64 * 4;
    ctx.check_binding(name, bytes)?;
    Ok(ctx.device.create_buffer(&wgpu::BufferDescriptor {
        label: Some(name),
        size: bytes,
        usage: STORAGE | wgpu::BufferUsages::COPY_DST,
        mapped_at_creation: false,
    }))
}

impl GpuAttention {
    /// Uploads the embeddings and the first block's ln_1 and QKV weights.
    pub fn new(ctx: &GpuContext, model: &Model) -> Result<Self, GpuError> {
        let w = &model.weights;
        let block = w.blocks.first().ok_or_else(|| GpuError::OutOfRange("layer 0 of a model with no layers".into()))?;
        Ok(Self {
            kernels: Kernels::new(ctx),
            config: model.config.clone(),
            wte: upload(ctx, "wte", &w.wte)?,
            wpe: upload(ctx, "wpe", &w.wpe)?,
            ln_g: upload(ctx, "h.0.ln_1.weight", &block.ln_1_g)?,
            ln_b: upload(ctx, "h.0.ln_1.bias", &block.ln_1_b)?,
            qkv_w: upload(ctx, "h.0.attn.c_attn.weight", &block.attn_qkv_w)?,
            qkv_b: upload(ctx, "h.0.attn.c_attn.bias", &block.attn_qkv_b)?,
            run: None,
            t: 0,
            mask: Mask::Causal,
        })
    }

    /// Number of tokens in the last run.
    pub fn tokens(&self) -> usize {
        self.t
    }

    pub fn mask(&self) -> Mask {
        self.mask
    }

    pub fn n_head(&self) -> usize {
        self.config.n_head
    }

    /// Grows the per-run buffers to hold `t` tokens (to the next power of two,
    /// so typing does not reallocate on every key).
    fn ensure_capacity(&mut self, ctx: &GpuContext, t: usize) -> Result<(), GpuError> {
        if self.run.as_ref().is_some_and(|r| r.capacity >= t) {
            return Ok(());
        }
        let capacity = t.next_power_of_two().max(16).min(self.config.n_positions.max(t));
        let (d, h) = (self.config.n_embd, self.config.n_head);
        self.run = Some(RunBuffers {
            capacity,
            ids: scratch(ctx, "ids", capacity)?,
            x: scratch(ctx, "x", capacity * d)?,
            ln: scratch(ctx, "ln_1", capacity * d)?,
            qkv: scratch(ctx, "qkv", capacity * 3 * d)?,
            raw: scratch(ctx, "scores_raw", h * capacity * capacity)?,
            masked: scratch(ctx, "scores_masked", h * capacity * capacity)?,
            weights: scratch(ctx, "weights", h * capacity * capacity)?,
            head_out: scratch(ctx, "head_out", capacity * d)?,
        });
        Ok(())
    }

    /// Runs embed → ln_1 → QKV → scores → softmax → W·V for `ids` and submits the work.
    /// Results stay on the GPU; read slices with [`Self::read`].
    pub fn run(&mut self, ctx: &GpuContext, ids: &[u32], mask: Mask) -> Result<(), GpuError> {
        check_ids(&self.config, ids)?;
        let t = ids.len();
        self.ensure_capacity(ctx, t)?;
        self.t = t;
        self.mask = mask;
        let Some(r) = self.run.as_ref() else { return Ok(()) };
        if t == 0 {
            return Ok(());
        }
        let c = &self.config;
        let (d, h, dh) = (c.n_embd, c.n_head, c.d_head());
        ctx.queue.write_buffer(&r.ids, 0, bytemuck::cast_slice(ids));
        let k = &self.kernels;
        let mut enc = ctx.device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("attention") });
        k.embed(ctx, &mut enc, &r.ids, &self.wte, &self.wpe, &r.x, t, d)?;
        k.layernorm(ctx, &mut enc, &r.x, &self.ln_g, &self.ln_b, &r.ln, t, d, c.layer_norm_epsilon)?;
        k.matmul_bias(ctx, &mut enc, &r.ln, &self.qkv_w, &self.qkv_b, &r.qkv, (t, d, 3 * d))?;
        k.attn_scores(ctx, &mut enc, &r.qkv, &r.raw, &r.masked, (t, h, dh), mask)?;
        k.softmax_rows(ctx, &mut enc, &r.masked, &r.weights, h * t, t)?;
        k.weighted_sum(ctx, &mut enc, &r.weights, &r.qkv, &r.head_out, (t, h, dh))?;
        ctx.queue.submit([enc.finish()]);
        Ok(())
    }

    /// The buffer holding `stage` (valid for the last run's T), for rendering.
    pub fn buffer(&self, stage: Stage) -> Option<&wgpu::Buffer> {
        let r = self.run.as_ref()?;
        Some(match stage {
            Stage::Embeddings => &r.x,
            Stage::Ln1 => &r.ln,
            Stage::Qkv => &r.qkv,
            Stage::ScoresRaw => &r.raw,
            Stage::ScoresMasked => &r.masked,
            Stage::Weights => &r.weights,
            Stage::HeadOut => &r.head_out,
        })
    }

    /// Number of valid elements of `stage` after the last run.
    pub fn stage_len(&self, stage: Stage) -> usize {
        let (t, d, h) = (self.t, self.config.n_embd, self.config.n_head);
        match stage {
            Stage::Embeddings | Stage::Ln1 | Stage::HeadOut => t * d,
            Stage::Qkv => t * 3 * d,
            Stage::ScoresRaw | Stage::ScoresMasked | Stage::Weights => h * t * t,
        }
    }

    /// Starts reading `len` values of `stage` from element `offset`; finish it
    /// with [`PendingRead::finish`] without holding `self`.
    pub fn begin_read(
        &self,
        ctx: &GpuContext,
        stage: Stage,
        offset: usize,
        len: usize,
    ) -> Result<PendingRead, GpuError> {
        if offset + len > self.stage_len(stage) {
            return Err(GpuError::OutOfRange(format!("{stage:?}[{offset}..{}] with T = {}", offset + len, self.t)));
        }
        let buffer = self.buffer(stage).ok_or_else(|| GpuError::OutOfRange(format!("{stage:?} before any run")))?;
        begin_read(ctx, buffer, offset as u64, len)
    }

    /// Starts reading one cell (query `row`, key `col`) of one head: what a hover costs (4 bytes).
    pub fn begin_read_cell(
        &self,
        ctx: &GpuContext,
        stage: Stage,
        head: usize,
        row: usize,
        col: usize,
    ) -> Result<PendingRead, GpuError> {
        let t = self.t;
        if row >= t || col >= t || head >= self.config.n_head {
            return Err(GpuError::OutOfRange(format!("cell (head {head}, row {row}, col {col}) with T = {t}")));
        }
        self.begin_read(ctx, stage, (head * t + row) * t + col, 1)
    }

    /// Reads `len` values of `stage` from element `offset` back to the CPU.
    pub async fn read(&self, ctx: &GpuContext, stage: Stage, offset: usize, len: usize) -> Result<Vec<f32>, GpuError> {
        let mut values = self.begin_read(ctx, stage, offset, len)?.finish(ctx).await?;
        values.truncate(len);
        Ok(values)
    }

    /// One head's T×T matrix of a square stage.
    pub async fn read_head(&self, ctx: &GpuContext, stage: Stage, head: usize) -> Result<Vec<f32>, GpuError> {
        let t = self.t;
        self.read(ctx, stage, head * t * t, t * t).await
    }
}
