//! Which tensor of a run lives in which buffer, and reading back only a slice
//! of it: one cell, one row, one head's T×T matrix, the last logits row, the
//! top-k next tokens.

use super::context::past_loop_limit;
use super::forward::GpuForward;
use super::kernels::{Kernel, RowNormsParams, TopKParams, ValueRangeParams, MAX_TOP_K};
use super::readback::{begin_read, PendingRead};
use super::{GpuContext, GpuError};
use crate::engine::AttentionStage;

/// A tensor the forward pass keeps on the GPU. Per-layer stages take a layer index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// Token + position embeddings, T×d.
    Embeddings,
    /// ln_1 output, T×d (traced runs).
    Ln1,
    /// Fused Q|K|V, T×(q_dim + 2·kv_dim) (3d for GPT-2): the KV cache.
    Qkv,
    /// Q·Kᵀ, H×T×T (traced runs).
    ScoresRaw,
    /// Scaled and masked scores (−∞ where masked), H×T×T (traced runs).
    ScoresMasked,
    /// Softmax weights, H×T×T (traced runs).
    Weights,
    /// Concatenated head outputs A·V, T×q_dim (d for GPT-2).
    HeadOut,
    /// The attention projection before the residual, T×d (traced runs).
    AttnOut,
    /// Residual stream after attention, T×d.
    ResidMid,
    /// ln_2 output, T×d (traced runs).
    Ln2,
    /// MLP hidden activations after the non-linearity, T×n_inner.
    MlpHidden,
    /// MLP output before the residual, T×d (traced runs).
    MlpOut,
    /// Residual stream after the block, T×d.
    ResidPost,
    /// Final layernorm, T×d (traced runs).
    LnF,
    /// The Llama family: the Q and K columns before RoPE, T×(q_dim + kv_dim) (traced runs).
    QkPreRope,
}

impl Stage {
    /// Stages written only by traced runs.
    pub fn needs_trace(self) -> bool {
        matches!(
            self,
            Stage::Ln1
                | Stage::ScoresRaw
                | Stage::ScoresMasked
                | Stage::Weights
                | Stage::AttnOut
                | Stage::Ln2
                | Stage::MlpOut
                | Stage::LnF
                | Stage::QkPreRope
        )
    }

    pub fn is_square(self) -> bool {
        matches!(self, Stage::ScoresRaw | Stage::ScoresMasked | Stage::Weights)
    }
}

/// Where a matrix lives on the GPU (a head's attention stage, a token's row
/// of a stage, the residual norms): cell (row i, col j) is
/// `values[offset + i·row_stride + j] · scale`, masked where `masked` (same
/// layout) holds −∞. What a heatmap draws and what a hover or a read copies back.
#[derive(Debug, Clone, Copy)]
pub struct GpuMatrix<'a> {
    pub values: &'a wgpu::Buffer,
    /// The masked scores, for stages that show the mask.
    pub masked: Option<&'a wgpu::Buffer>,
    pub rows: usize,
    pub cols: usize,
    pub offset: usize,
    pub row_stride: usize,
    /// 1/√d_head for the scaled scores (drawn from the raw ones), else 1.
    pub scale: f32,
}

impl GpuMatrix<'_> {
    /// Row `r` alone (1 × cols), to read back one query's row; `None` past the last row.
    pub fn row(self, r: usize) -> Option<Self> {
        (r < self.rows).then(|| GpuMatrix { rows: 1, offset: self.offset + r * self.row_stride, ..self })
    }

    /// Starts reading cell (`row`, `col`): what a hover costs (4 bytes).
    pub fn begin_read_cell(&self, ctx: &GpuContext, (row, col): (usize, usize)) -> Result<CellRead, GpuError> {
        if row >= self.rows || col >= self.cols {
            return Err(GpuError::OutOfRange(format!("cell ({row}, {col}) of a {}×{} matrix", self.rows, self.cols)));
        }
        let pending = begin_read(ctx, self.values, (self.offset + row * self.row_stride + col) as u64, 1)?;
        Ok(CellRead { pending, scale: self.scale })
    }

    /// Starts reading the whole matrix (one copy of the span its rows cover);
    /// [`MatrixRead::finish`] picks the rows and applies the scale.
    pub fn begin_read(&self, ctx: &GpuContext) -> Result<MatrixRead, GpuError> {
        if self.rows == 0 || self.cols == 0 {
            return Err(GpuError::OutOfRange(format!("an empty {}×{} matrix", self.rows, self.cols)));
        }
        let span = (self.rows - 1) * self.row_stride + self.cols;
        let pending = begin_read(ctx, self.values, self.offset as u64, span)?;
        Ok(MatrixRead { pending, rows: self.rows, cols: self.cols, row_stride: self.row_stride, scale: self.scale })
    }
}

/// One cell on its way back; [`CellRead::finish`] applies the stage's scale.
pub struct CellRead {
    pending: PendingRead,
    scale: f32,
}

impl CellRead {
    pub async fn finish(self, ctx: &GpuContext) -> Result<f32, GpuError> {
        let values = self.pending.finish(ctx).await?;
        let raw = values.first().copied().ok_or_else(|| GpuError::Readback("an empty cell read".into()))?;
        Ok(raw * self.scale)
    }
}

/// A matrix on its way back (a head's stage, a token's row, the norms map).
pub struct MatrixRead {
    pending: PendingRead,
    pub rows: usize,
    pub cols: usize,
    row_stride: usize,
    scale: f32,
}

impl MatrixRead {
    /// The matrix, row-major `rows × cols`, scaled as the stage shows it.
    pub async fn finish(self, ctx: &GpuContext) -> Result<Vec<f32>, GpuError> {
        let span = self.pending.finish(ctx).await?;
        let (cols, stride, scale) = (self.cols, self.row_stride, self.scale);
        Ok((0..self.rows).flat_map(|i| span[i * stride..i * stride + cols].iter().map(move |v| v * scale)).collect())
    }
}

impl GpuForward {
    /// Columns of one row of a T×width stage (T×T stages: T per head).
    pub fn stage_width(&self, stage: Stage) -> usize {
        let c = self.config();
        match stage {
            Stage::Qkv => c.qkv_dim(),
            Stage::HeadOut => c.q_dim(),
            Stage::QkPreRope => c.q_dim() + c.kv_dim(),
            Stage::MlpHidden => c.n_inner,
            s if s.is_square() => self.tokens(),
            _ => c.n_embd,
        }
    }

    /// The row stride of the T×T stages in their buffers (the capacity).
    pub fn square_stride(&self) -> usize {
        self.buffers().map_or(0, |b| b.layout.cap)
    }

    /// The buffer holding `stage` of `layer` after the last run, for rendering.
    /// T×T stages are laid out `[H × cap × cap]` ([`Self::square_stride`]).
    pub fn buffer(&self, stage: Stage, layer: usize) -> Result<&wgpu::Buffer, GpuError> {
        let b = self.buffers().ok_or_else(|| GpuError::OutOfRange(format!("{stage:?} before any run")))?;
        if stage.needs_trace() && !self.traced() {
            return Err(GpuError::OutOfRange(format!("{stage:?}: the last run did not keep the trace")));
        }
        let missing = || GpuError::OutOfRange(format!("{stage:?} of layer {layer} (the model has {})", b.layers.len()));
        let l = || b.layers.get(layer).ok_or_else(missing);
        // A layout of one block's matrices at a time holds this block's only
        // once computed ([`GpuForward::ensure_block`]): never another's.
        if let (Some(block), true) = (&b.block, stage.is_square()) {
            l()?;
            if block.holds.get() != Some(layer) {
                return Err(GpuError::OutOfRange(format!(
                    "{stage:?} of layer {layer}: the GPU holds one block's T×T matrices at a time for this text, \
                     and not this one's now"
                )));
            }
            return Ok(match stage {
                Stage::ScoresRaw => &block.raw,
                Stage::ScoresMasked => &block.masked,
                _ => &block.weights,
            });
        }
        Ok(match stage {
            Stage::Embeddings => &b.x,
            Stage::LnF => &b.ln_f,
            Stage::Ln1 => &l()?.ln_1,
            Stage::Qkv => &l()?.qkv,
            Stage::ScoresRaw => l()?.raw.as_ref().ok_or_else(missing)?,
            Stage::ScoresMasked => l()?.masked.as_ref().ok_or_else(missing)?,
            Stage::Weights => l()?.weights.as_ref().ok_or_else(missing)?,
            Stage::HeadOut => &l()?.head_out,
            Stage::AttnOut => &l()?.attn_out,
            Stage::ResidMid => &l()?.resid_mid,
            Stage::Ln2 => &l()?.ln_2,
            Stage::MlpHidden => &l()?.hidden,
            Stage::MlpOut => &l()?.mlp_out,
            Stage::ResidPost => &l()?.resid_post,
            Stage::QkPreRope => l()?.qk_pre.as_ref().ok_or_else(missing)?,
        })
    }

    /// One head's T×T matrix of a square stage (raw scores, masked scores,
    /// weights): rows strided by the buffers' capacity.
    pub fn square_matrix(&self, stage: Stage, layer: usize, head: usize) -> Result<GpuMatrix<'_>, GpuError> {
        let (t, cap) = (self.tokens(), self.square_stride());
        if !stage.is_square() || head >= self.config().n_head || t == 0 {
            return Err(GpuError::OutOfRange(format!("{stage:?} of head {head} with T = {t}")));
        }
        Ok(GpuMatrix {
            values: self.buffer(stage, layer)?,
            masked: None,
            rows: t,
            cols: t,
            offset: head * cap * cap,
            row_stride: cap,
            scale: 1.0,
        })
    }

    /// Where `head`'s matrix of an attention `stage` in `layer` lives (after a traced run).
    pub fn head_matrix(&self, stage: AttentionStage, layer: usize, head: usize) -> Result<GpuMatrix<'_>, GpuError> {
        let c = self.config();
        let (t, dh) = (self.tokens(), c.d_head());
        if head >= c.n_head || t == 0 {
            return Err(GpuError::OutOfRange(format!("{stage:?} of head {head} with T = {t}")));
        }
        // Q, K, V are column blocks of the fused qkv rows [T × (q_dim + 2·kv_dim)]
        // (K and V those of the head's KV head); the output of head_out [T × q_dim].
        let kv_head = head / c.kv_group().max(1);
        let column = |offset: usize, row_stride: usize, buffer| GpuMatrix {
            values: buffer,
            masked: None,
            rows: t,
            cols: dh,
            offset,
            row_stride,
            scale: 1.0,
        };
        let (q_dim, kv_dim, width) = (c.q_dim(), c.kv_dim(), c.qkv_dim());
        Ok(match stage {
            // Q and K before RoPE: column blocks of qk_pre_rope [T × (q_dim + kv_dim)]; without
            // RoPE (GPT-2) nothing is rotated, so they are Q and K.
            AttentionStage::QPreRope if c.architecture.is_llama_family() => {
                column(head * dh, q_dim + kv_dim, self.buffer(Stage::QkPreRope, layer)?)
            }
            AttentionStage::KPreRope if c.architecture.is_llama_family() => {
                column(q_dim + kv_head * dh, q_dim + kv_dim, self.buffer(Stage::QkPreRope, layer)?)
            }
            AttentionStage::Q | AttentionStage::QPreRope => column(head * dh, width, self.buffer(Stage::Qkv, layer)?),
            AttentionStage::KPreRope => column(q_dim + kv_head * dh, width, self.buffer(Stage::Qkv, layer)?),
            AttentionStage::K => column(q_dim + kv_head * dh, width, self.buffer(Stage::Qkv, layer)?),
            AttentionStage::V => column(q_dim + kv_dim + kv_head * dh, width, self.buffer(Stage::Qkv, layer)?),
            AttentionStage::Output => column(head * dh, q_dim, self.buffer(Stage::HeadOut, layer)?),
            AttentionStage::ScoresRaw => self.square_matrix(Stage::ScoresRaw, layer, head)?,
            AttentionStage::ScoresScaled => {
                GpuMatrix { scale: 1.0 / (dh as f32).sqrt(), ..self.square_matrix(Stage::ScoresRaw, layer, head)? }
            }
            AttentionStage::ScoresMasked => {
                let m = self.square_matrix(Stage::ScoresMasked, layer, head)?;
                GpuMatrix { masked: Some(m.values), ..m }
            }
            AttentionStage::Weights => GpuMatrix {
                masked: Some(self.buffer(Stage::ScoresMasked, layer)?),
                ..self.square_matrix(Stage::Weights, layer, head)?
            },
        })
    }

    /// One token's row of a T×width stage as a 1×width matrix (the block
    /// view's strips: the layernorm's input and output, the MLP activations).
    pub fn token_row(&self, stage: Stage, layer: usize, token: usize) -> Result<GpuMatrix<'_>, GpuError> {
        if stage.is_square() || token >= self.tokens() {
            return Err(GpuError::OutOfRange(format!("{stage:?} row {token} with T = {}", self.tokens())));
        }
        let width = self.stage_width(stage);
        Ok(GpuMatrix {
            values: self.buffer(stage, layer)?,
            masked: None,
            rows: 1,
            cols: width,
            offset: token * width,
            row_stride: width,
            scale: 1.0,
        })
    }

    /// The residual stream's point `point` (0: embeddings, then resid_mid and
    /// resid_post of each layer in turn; `engine::residual::residual_norms`'s rows).
    pub fn residual_point(&self, point: usize) -> (Stage, usize) {
        match point {
            0 => (Stage::Embeddings, 0),
            p if p % 2 == 1 => (Stage::ResidMid, p / 2),
            p => (Stage::ResidPost, p / 2 - 1),
        }
    }

    /// Writes every token's ‖x‖ at every point of the residual stream into
    /// `out` (`(2·n_layer + 1) × stride` f32, row-major; shaders/row_norms.wgsl)
    /// and returns where to draw it from. Nothing is read back.
    pub fn residual_norms<'a>(
        &'a self,
        ctx: &GpuContext,
        out: &'a wgpu::Buffer,
        stride: usize,
    ) -> Result<GpuMatrix<'a>, GpuError> {
        let (t, d) = (self.tokens(), self.config().n_embd);
        let points = crate::engine::residual::residual_points(self.config().n_layer);
        if t > stride || (points * stride * 4) as u64 > out.size() {
            return Err(GpuError::OutOfRange(format!("{points} × {t} norms in a {}-byte buffer", out.size())));
        }
        let mut enc = ctx.device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("norms") });
        for point in 0..points {
            let (stage, layer) = self.residual_point(point);
            let params =
                RowNormsParams { rows: t as u32, d: d as u32, out_row: point as u32, out_stride: stride as u32 };
            let input = self.buffer(stage, layer)?;
            self.kernels().dispatch(ctx, &mut enc, Kernel::RowNorms, &params, &[input, out], params.workgroups())?;
        }
        ctx.queue.submit([enc.finish()]);
        Ok(self.residual_norms_matrix(out, stride))
    }

    /// Where [`Self::residual_norms`] wrote the norms of the last run's tokens.
    pub fn residual_norms_matrix<'a>(&self, out: &'a wgpu::Buffer, stride: usize) -> GpuMatrix<'a> {
        let points = crate::engine::residual::residual_points(self.config().n_layer);
        GpuMatrix {
            values: out,
            masked: None,
            rows: points,
            cols: self.tokens(),
            offset: 0,
            row_stride: stride,
            scale: 1.0,
        }
    }

    /// Writes [min, max] of a matrix (unscaled, masked cells skipped) into
    /// `out` (2 f32s) on the GPU, for the heatmap's colour map and legend
    /// (shaders/value_range.wgsl): nothing is read back.
    pub fn fit_range(&self, ctx: &GpuContext, m: &GpuMatrix<'_>, out: &wgpu::Buffer) -> Result<(), GpuError> {
        // One workgroup of 256 invocations strides over every cell (and an exit test per loop).
        let iterations = (m.rows * m.cols).div_ceil(256) as u64 + 10;
        if let Some(limit) = past_loop_limit(ctx.loop_limit(), iterations) {
            return Err(GpuError::Unsupported(format!(
                "a {}×{} matrix's range on a driver that stops a loop after {limit} iterations",
                m.rows, m.cols
            )));
        }
        let params = ValueRangeParams::new(m.rows, m.cols, m.offset, m.row_stride, m.masked.is_some());
        let masked = m.masked.unwrap_or(m.values);
        let mut enc = ctx.device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("range") });
        self.kernels().dispatch(ctx, &mut enc, Kernel::ValueRange, &params, &[m.values, masked, out], [1, 1, 1])?;
        ctx.queue.submit([enc.finish()]);
        Ok(())
    }

    /// Rows `rows` of a T×width stage (not T×T) as a matrix.
    pub fn rows(&self, stage: Stage, layer: usize, rows: std::ops::Range<usize>) -> Result<GpuMatrix<'_>, GpuError> {
        if stage.is_square() || rows.end > self.tokens() || rows.start >= rows.end {
            return Err(GpuError::OutOfRange(format!("{stage:?} rows {rows:?} with T = {}", self.tokens())));
        }
        let width = self.stage_width(stage);
        Ok(GpuMatrix {
            values: self.buffer(stage, layer)?,
            masked: None,
            rows: rows.len(),
            cols: width,
            offset: rows.start * width,
            row_stride: width,
            scale: 1.0,
        })
    }

    /// One head's T×T matrix of a square stage, row-major.
    pub async fn read_head(
        &self,
        ctx: &GpuContext,
        stage: Stage,
        layer: usize,
        head: usize,
    ) -> Result<Vec<f32>, GpuError> {
        self.ensure_block(ctx, layer)?;
        self.square_matrix(stage, layer, head)?.begin_read(ctx)?.finish(ctx).await
    }

    /// Every row of a T×width stage, row-major.
    pub async fn read_rows(&self, ctx: &GpuContext, stage: Stage, layer: usize) -> Result<Vec<f32>, GpuError> {
        self.rows(stage, layer, 0..self.tokens())?.begin_read(ctx)?.finish(ctx).await
    }

    /// Starts reading the logits of the last position (vocab values).
    pub fn begin_read_last_logits(&self, ctx: &GpuContext) -> Result<PendingRead, GpuError> {
        let b = self.buffers().ok_or_else(|| GpuError::OutOfRange("logits before any run".into()))?;
        let v = self.config().vocab_size;
        match (&b.logits_all, self.all_logits()) {
            (Some(all), true) => begin_read(ctx, all, ((self.tokens() - 1) * v) as u64, v),
            _ => begin_read(ctx, &b.logits_last, 0, v),
        }
    }

    /// The logits of every position, T×vocab, after a run with `all_logits`.
    pub async fn read_all_logits(&self, ctx: &GpuContext) -> Result<Vec<f32>, GpuError> {
        let b = self.buffers().ok_or_else(|| GpuError::OutOfRange("logits before any run".into()))?;
        let all = b.logits_all.as_ref().filter(|_| self.all_logits());
        let all = all
            .ok_or_else(|| GpuError::OutOfRange("logits of every position: the last run kept only the last".into()))?;
        let len = self.tokens() * self.config().vocab_size;
        let mut values = begin_read(ctx, all, 0, len)?.finish(ctx).await?;
        values.truncate(len);
        Ok(values)
    }

    /// Ranks the last position's logits on the GPU (shaders/top_k.wgsl) and
    /// reads back only the `k` best tokens and the softmax normaliser at
    /// `temperature`: 8 + 8k bytes instead of the vocabulary. A new temperature
    /// needs only this call again, not a forward pass.
    pub fn begin_read_top_k(&self, ctx: &GpuContext, k: usize, temperature: f32) -> Result<TopKRead, GpuError> {
        if k == 0 || k > MAX_TOP_K {
            return Err(GpuError::Unsupported(format!("top-{k} (1 ≤ k ≤ {MAX_TOP_K})")));
        }
        if !temperature.is_finite() || temperature < 0.0 {
            return Err(GpuError::Unsupported(format!("a temperature of {temperature}")));
        }
        let b = self.buffers().ok_or_else(|| GpuError::OutOfRange("logits before any run".into()))?;
        let v = self.config().vocab_size;
        let (logits, row) = match (&b.logits_all, self.all_logits()) {
            (Some(all), true) => (all, self.tokens() - 1),
            _ => (&b.logits_last, 0),
        };
        let params = TopKParams::new(v, row, k, temperature);
        let out = ctx.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("top-k"),
            size: params.output_len() as u64 * 4,
            usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC,
            mapped_at_creation: false,
        });
        let mut enc = ctx.device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("top-k") });
        self.kernels().dispatch(ctx, &mut enc, Kernel::TopK, &params, &[logits, &out], params.workgroups())?;
        ctx.queue.submit([enc.finish()]);
        Ok(TopKRead { read: begin_read(ctx, &out, 0, params.output_len())?, temperature })
    }
}

/// The most likely next tokens, as top_k.wgsl ranked them.
#[derive(Debug, Clone, PartialEq)]
pub struct TopK {
    /// The largest logit.
    pub max: f32,
    /// Σ exp((logit − max) / temperature) over the whole vocabulary (1 when greedy).
    pub normaliser: f32,
    pub temperature: f32,
    /// (id, logit), most likely first; equal logits: lower id first.
    pub tokens: Vec<(u32, f32)>,
}

impl TopK {
    /// softmax(logits / temperature) of one of the ranked logits; temperature 0
    /// is greedy (all probability on the first).
    pub fn probability(&self, rank: usize) -> f64 {
        let Some(&(_, logit)) = self.tokens.get(rank) else { return 0.0 };
        if self.temperature <= 0.0 {
            return if rank == 0 { 1.0 } else { 0.0 };
        }
        ((logit as f64 - self.max as f64) / self.temperature as f64).exp() / self.normaliser as f64
    }
}

/// A top-k read in flight.
pub struct TopKRead {
    read: PendingRead,
    temperature: f32,
}

impl TopKRead {
    pub async fn finish(self, ctx: &GpuContext) -> Result<TopK, GpuError> {
        let values = self.read.finish(ctx).await?;
        let (&max, rest) = values.split_first().ok_or_else(|| GpuError::Readback("empty top-k".into()))?;
        let (&normaliser, ranks) = rest.split_first().ok_or_else(|| GpuError::Readback("empty top-k".into()))?;
        let tokens = ranks
            .chunks_exact(2)
            .map(|pair| (pair[0].to_bits(), pair[1]))
            .take_while(|&(id, _)| id != u32::MAX)
            .collect();
        Ok(TopK { max, normaliser, temperature: self.temperature, tokens })
    }
}
