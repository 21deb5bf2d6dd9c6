//! The logit lens on the GPU, from the residual stream a run keeps
//! resident: the twin of [`engine::lens::logit_lens`](crate::engine::lens::logit_lens),
//! returning its types (direct contributions are in `contributions`).
//!
//! Lens: each of the 2L + 1 residual points goes through the final norm and
//! the LM head with the forward's own fused matmul (matmul_bias.wgsl, the
//! norm in its prologue, vocabulary chunk by chunk) into a scratch logits
//! buffer of a bounded number of rows, and top_k.wgsl ranks each row there.
//! Only `2 + 2k` numbers per point and position come back.

use std::ops::Range;

use super::kernels::{Kernel, MatmulFusion, MatmulParams, TopKParams, MAX_TOP_K};
use super::readback::{begin_read, PendingRead};
use super::{GpuContext, GpuError, GpuForward};
use crate::engine::lens::{LensPoint, LensToken};
use crate::engine::residual::{residual_point_name, residual_points};

/// The most bytes the lens's scratch logits may take (rows × vocabulary).
const LENS_SCRATCH_BYTES: u64 = 32 << 20;

/// A zeroed storage buffer of `len` f32 (whole vec4s) that can be copied from and to.
pub(crate) fn scratch(ctx: &GpuContext, label: &str, len: usize) -> Result<wgpu::Buffer, GpuError> {
    let size = (len.max(1) as u64 * 4).next_multiple_of(16);
    ctx.check_binding(label, size)?;
    Ok(ctx.device.create_buffer(&wgpu::BufferDescriptor {
        label: Some(label),
        size,
        usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC | wgpu::BufferUsages::COPY_DST,
        mapped_at_creation: false,
    }))
}

/// A storage buffer holding `data` (padded to whole vec4s).
pub(crate) fn upload(ctx: &GpuContext, label: &str, data: &[f32]) -> wgpu::Buffer {
    let mut padded = data.to_vec();
    padded.resize(data.len().max(1).next_multiple_of(4), 0.0);
    wgpu::util::DeviceExt::create_buffer_init(
        &ctx.device,
        &wgpu::util::BufferInitDescriptor {
            label: Some(label),
            contents: bytemuck::cast_slice(&padded),
            usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC,
        },
    )
}

/// The buffers a matmul binds but a plain product never touches (read, and two written).
pub(crate) struct Unused {
    pub read: wgpu::Buffer,
    pub write_a: wgpu::Buffer,
    pub write_b: wgpu::Buffer,
}

impl Unused {
    pub fn new(ctx: &GpuContext) -> Result<Self, GpuError> {
        Ok(Self {
            read: scratch(ctx, "unused (read)", 4)?,
            write_a: scratch(ctx, "unused (write a)", 4)?,
            write_b: scratch(ctx, "unused (write b)", 4)?,
        })
    }
}

impl GpuForward {
    /// The logit lens of the last run: at each of the `2·n_layer + 1` points
    /// of the residual stream (`engine::residual::residual_point_name`), the
    /// top `k` tokens of every position with their probabilities and logits;
    /// `name(id)` gives a token's text. [`crate::engine::lens::logit_lens`]'s twin.
    pub async fn logit_lens(
        &self,
        ctx: &GpuContext,
        k: usize,
        name: &dyn Fn(u32) -> String,
    ) -> Result<Vec<LensPoint>, GpuError> {
        self.begin_logit_lens(ctx, k, 0..self.tokens())?.finish(ctx, name).await
    }

    /// Starts [`Self::logit_lens`] at `positions` only: dispatches it and
    /// requests the read, so that the caller need not hold `self` across the wait.
    pub fn begin_logit_lens(&self, ctx: &GpuContext, k: usize, positions: Range<usize>) -> Result<LensRead, GpuError> {
        if k == 0 || k > MAX_TOP_K {
            return Err(GpuError::Unsupported(format!("a lens of top-{k} (1 ≤ k ≤ {MAX_TOP_K})")));
        }
        let c = self.config();
        let (t, d, v, eps) = (self.tokens(), c.n_embd, c.vocab_size, c.layer_norm_epsilon);
        if self.buffers().is_none() || t == 0 {
            return Err(GpuError::OutOfRange("the logit lens before any run".into()));
        }
        if positions.start >= positions.end || positions.end > t {
            return Err(GpuError::OutOfRange(format!("the lens at positions {positions:?} of {t}")));
        }
        let n = positions.len();
        let points = residual_points(c.n_layer);
        let limit = ctx.device.limits().max_storage_buffer_binding_size.min(LENS_SCRATCH_BYTES);
        let rows_per_pass = ((limit / (v as u64 * 4)) as usize).clamp(1, n);
        let logits = scratch(ctx, "lens logits", rows_per_pass * v)?;
        let per_row = TopKParams::new(v, 0, k, 1.0).output_len();
        let ranked = scratch(ctx, "lens top-k", per_row)?;
        let all = scratch(ctx, "lens top-k (all)", points * n * per_row)?;
        let unused = Unused::new(ctx)?;
        let llama = c.architecture.is_llama_family();
        let mut enc = ctx.device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("lens") });
        for point in 0..points {
            let (stage, layer) = self.residual_point(point);
            let input = self.buffer(stage, layer)?;
            for r0 in positions.clone().step_by(rows_per_pass) {
                let m = rows_per_pass.min(positions.end - r0);
                for chunk in self.weights().head() {
                    let fusion = MatmulFusion {
                        layernorm: Some(eps),
                        rms: llama,
                        w16: chunk.format,
                        transposed: true,
                        ..Default::default()
                    };
                    let lm = MatmulParams::new((m, d, chunk.rows), fusion).rows_from(r0, 0).into_columns(chunk.v0, v);
                    let buffers = [
                        input,
                        &chunk.buffer,
                        &unused.read,
                        &logits,
                        &unused.read,
                        &self.weights().ln_f,
                        &unused.write_a,
                        &unused.write_b,
                    ];
                    self.kernels().dispatch(ctx, &mut enc, lm.kernel(), &lm, &buffers, lm.workgroups())?;
                }
                for i in 0..m {
                    let params = TopKParams::new(v, i, k, 1.0);
                    self.kernels().dispatch(ctx, &mut enc, Kernel::TopK, &params, &[&logits, &ranked], [1, 1, 1])?;
                    let at = ((point * n + r0 - positions.start + i) * per_row * 4) as u64;
                    enc.copy_buffer_to_buffer(&ranked, 0, &all, at, (per_row * 4) as u64);
                }
            }
        }
        ctx.queue.submit([enc.finish()]);
        let read = begin_read(ctx, &all, 0, points * n * per_row)?;
        Ok(LensRead { read, points, first: positions.start, tokens: n, per_row })
    }
}

/// A logit lens on its way back ([`GpuForward::begin_logit_lens`]).
pub struct LensRead {
    read: PendingRead,
    points: usize,
    /// The first position read, and how many.
    first: usize,
    tokens: usize,
    per_row: usize,
}

impl LensRead {
    /// The lens at every point; `name(id)` gives a token's text.
    pub async fn finish(self, ctx: &GpuContext, name: &dyn Fn(u32) -> String) -> Result<Vec<LensPoint>, GpuError> {
        let values = self.read.finish(ctx).await?;
        let per_point = self.tokens * self.per_row;
        if values.len() < self.points * per_point {
            return Err(GpuError::Readback(format!(
                "{} lens values, expected {}",
                values.len(),
                self.points * per_point
            )));
        }
        Ok(values
            .chunks_exact(per_point)
            .take(self.points)
            .enumerate()
            .map(|(point, rows)| LensPoint {
                name: residual_point_name(point),
                first: self.first,
                top: rows.chunks_exact(self.per_row).map(|row| lens_row(row, name)).collect(),
            })
            .collect())
    }
}

/// One position's ranks from top_k.wgsl's output: max, normaliser, then (id, logit) pairs.
fn lens_row(row: &[f32], name: &dyn Fn(u32) -> String) -> Vec<LensToken> {
    let (max, normaliser) = (row[0] as f64, row[1] as f64);
    row[2..]
        .chunks_exact(2)
        .map(|pair| (pair[0].to_bits(), pair[1]))
        .take_while(|&(id, _)| id != u32::MAX)
        .map(|(id, logit)| LensToken {
            id,
            text: name(id),
            prob: ((logit as f64 - max).exp() / normaliser) as f32,
            logit,
        })
        .collect()
}
