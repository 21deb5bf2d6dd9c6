//! The head finder on the GPU: every layer × head scored against the
//! templates of [`engine::head_finder`](crate::engine::head_finder) from the
//! attention weights a traced run keeps resident (shaders/head_scores.wgsl,
//! one dispatch per layer, a workgroup per head, template and block of 64
//! rows). Only two numbers per head, template and block come back: the sum
//! over the block's rows and how many rows it is over; they are added up
//! here, in f64.
//! The results are the engine's own types, so the page can use either backend.

use super::kernels::{HeadScoresParams, Kernel};
use super::readback::{begin_read, PendingRead};
use super::{GpuContext, GpuError, GpuForward, Stage};
use crate::engine::head_finder::{PaintedPattern, TemplateScores};

/// Templates 0–5 of head_scores.wgsl (previous, first, self, induction, entropy, to token).
const FIXED_TEMPLATES: usize = 6;
/// head_scores.wgsl's index of the painted pattern.
const PAINTED_TEMPLATE: u32 = 6;

/// Template scores on their way back ([`GpuForward::begin_template_scores`]).
pub struct TemplateScoresRead {
    read: PendingRead,
    n_layer: usize,
    n_head: usize,
    /// Blocks of rows, each summed apart.
    blocks: usize,
    token: Option<u32>,
}

/// Painted-pattern scores on their way back ([`GpuForward::begin_painted_scores`]).
pub struct PaintedScoresRead {
    read: PendingRead,
    heads: usize,
    blocks: usize,
}

impl GpuForward {
    /// Dispatches head_scores.wgsl over every layer for the first `dispatched`
    /// of `templates` templates from `first_template` and starts reading back
    /// the `(sum, rows)` pairs of every block of rows (those not dispatched
    /// stay zero: no rows).
    fn begin_head_scores(
        &self,
        ctx: &GpuContext,
        first_template: u32,
        templates: usize,
        dispatched: usize,
        token: u32,
        pattern: Option<&PaintedPattern>,
    ) -> Result<PendingRead, GpuError> {
        let c = self.config();
        let (t, cap, n_layer, n_head) = (self.tokens(), self.square_stride(), c.n_layer, c.n_head);
        let b = self.buffers().ok_or_else(|| GpuError::OutOfRange("head scores before any run".into()))?;
        if !self.traced() || t == 0 {
            return Err(GpuError::OutOfRange("head scores: the last run did not keep the attention weights".into()));
        }
        let cells = pattern.map_or(&[0.0f32][..], |p| p.cells());
        let pattern_buffer = wgpu::util::DeviceExt::create_buffer_init(
            &ctx.device,
            &wgpu::util::BufferInitDescriptor {
                label: Some("painted pattern"),
                contents: bytemuck::cast_slice(cells),
                usage: wgpu::BufferUsages::STORAGE,
            },
        );
        let len = 2 * templates * n_layer * n_head * HeadScoresParams::blocks(t);
        let out = ctx.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("head scores"),
            size: (len.max(1) * 4) as u64,
            usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC,
            mapped_at_creation: false,
        });
        let mut enc = ctx.device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("head scores") });
        // Each layer's dispatch after its T×T matrices (computed first, with one block's at a time).
        let encode = |enc: &mut wgpu::CommandEncoder| -> Result<(), GpuError> {
            for layer in 0..n_layer {
                self.encode_block(ctx, enc, layer)?;
                let params = HeadScoresParams {
                    t: t as u32,
                    cap: cap as u32,
                    n_head: n_head as u32,
                    n_layer: n_layer as u32,
                    layer: layer as u32,
                    first_template,
                    token,
                    pattern_n: pattern.map_or(1, |p| p.side() as u32),
                    templates: templates as u32,
                    _pad: [0; 3],
                };
                let inputs = [
                    self.buffer(Stage::Weights, layer)?,
                    self.buffer(Stage::ScoresMasked, layer)?,
                    &b.ids,
                    &pattern_buffer,
                ];
                let buffers = [inputs[0], inputs[1], inputs[2], inputs[3], &out];
                self.kernels().dispatch(
                    ctx,
                    enc,
                    Kernel::HeadScores,
                    &params,
                    &buffers,
                    params.workgroups(dispatched.min(templates)),
                )?;
            }
            Ok(())
        };
        if let Err(e) = encode(&mut enc) {
            // The one block's matrices named by the dropped encoder were never computed.
            self.forget_block();
            return Err(e);
        }
        ctx.queue.submit([enc.finish()]);
        begin_read(ctx, &out, 0, len)
    }

    /// Starts scoring every head of the last (traced) run against the fixed
    /// templates; `token` chooses the "attends to token X" one. Reads back
    /// 48 bytes per head and block of 64 rows.
    pub fn begin_template_scores(&self, ctx: &GpuContext, token: Option<u32>) -> Result<TemplateScoresRead, GpuError> {
        // No token: the last template (to token X) is not dispatched.
        let dispatched = if token.is_some() { FIXED_TEMPLATES } else { FIXED_TEMPLATES - 1 };
        let read = self.begin_head_scores(ctx, 0, FIXED_TEMPLATES, dispatched, token.unwrap_or(0), None)?;
        let c = self.config();
        let blocks = HeadScoresParams::blocks(self.tokens());
        Ok(TemplateScoresRead { read, n_layer: c.n_layer, n_head: c.n_head, blocks, token })
    }

    /// Starts scoring every head of the last (traced) run against a painted
    /// pattern (uploaded as n² f32). Reads back 8 bytes per head and block of 64 rows.
    pub fn begin_painted_scores(
        &self,
        ctx: &GpuContext,
        pattern: &PaintedPattern,
    ) -> Result<PaintedScoresRead, GpuError> {
        let read = self.begin_head_scores(ctx, PAINTED_TEMPLATE, 1, 1, 0, Some(pattern))?;
        let blocks = HeadScoresParams::blocks(self.tokens());
        Ok(PaintedScoresRead { read, heads: self.config().n_layer * self.config().n_head, blocks })
    }

    /// [`crate::engine::head_finder::template_scores`] of the last traced run, on the GPU.
    pub async fn template_scores(&self, ctx: &GpuContext, token: Option<u32>) -> Result<Vec<TemplateScores>, GpuError> {
        self.begin_template_scores(ctx, token)?.finish(ctx).await
    }

    /// [`crate::engine::head_finder::painted_scores`] of the last traced run, on the GPU.
    pub async fn painted_scores(&self, ctx: &GpuContext, pattern: &PaintedPattern) -> Result<Vec<f64>, GpuError> {
        self.begin_painted_scores(ctx, pattern)?.finish(ctx).await
    }
}

/// `(mean, rows)` for each of `want` (template, layer, head) entries, from
/// head_scores.wgsl's `(sum, rows)` pairs of `blocks` blocks of rows (block,
/// then template, layer, head): each block's sums added in f64; the mean is
/// 0 where no row is defined.
fn pairs(values: &[f32], want: usize, blocks: usize) -> Result<Vec<(f64, f64)>, GpuError> {
    if values.len() < 2 * want * blocks {
        return Err(GpuError::Readback(format!("{} head scores, expected {}", values.len() / 2, want * blocks)));
    }
    Ok((0..want)
        .map(|k| {
            let (sum, rows) = (0..blocks).fold((0.0f64, 0.0f64), |(s, n), b| {
                let at = 2 * (b * want + k);
                (s + values[at] as f64, n + values[at + 1] as f64)
            });
            (if rows > 0.0 { sum / rows } else { 0.0 }, rows)
        })
        .collect())
}

impl TemplateScoresRead {
    /// Every head's scores, layer by layer (as `template_scores` orders them).
    pub async fn finish(self, ctx: &GpuContext) -> Result<Vec<TemplateScores>, GpuError> {
        let heads = self.n_layer * self.n_head;
        let values = pairs(&self.read.finish(ctx).await?, FIXED_TEMPLATES * heads, self.blocks)?;
        let at = |template: usize, i: usize| values[template * heads + i];
        let defined = |(mean, rows): (f64, f64)| (rows > 0.0).then_some(mean);
        Ok((0..heads)
            .map(|i| TemplateScores {
                layer: i / self.n_head,
                head: i % self.n_head,
                previous_token: at(0, i).0,
                first_token: at(1, i).0,
                self_token: at(2, i).0,
                induction: defined(at(3, i)),
                entropy: at(4, i).0,
                to_token: self.token.and_then(|_| defined(at(5, i))),
            })
            .collect())
    }
}

impl PaintedScoresRead {
    /// Every head's painted score, index `layer · n_head + head`.
    pub async fn finish(self, ctx: &GpuContext) -> Result<Vec<f64>, GpuError> {
        Ok(pairs(&self.read.finish(ctx).await?, self.heads, self.blocks)?.into_iter().map(|(mean, _)| mean).collect())
    }
}
