//! The logit lens and direct contributions on the GPU, from the residual
//! stream a run keeps resident; the twins of
//! [`engine::lens`](crate::engine::lens), returning its types.
//!
//! Lens: each of the 2L + 1 residual points goes through the final norm and
//! the LM head with the forward's own fused matmul (matmul_bias.wgsl, the
//! norm in its prologue, vocabulary chunk by chunk) into a scratch logits
//! buffer of a bounded number of rows, and top_k.wgsl ranks each row there.
//! Only `2 + 2k` numbers per point and position come back.
//!
//! Direct contributions: with the final norm linearised at the final residual
//! (see `engine::lens`), a term `c` contributes `s · c · w` where
//! `w = P(g ⊙ u)` (u the token's LM-head row, P the centring for LayerNorm)
//! and `s` the norm's factor at the position. The GPU projects every layer's
//! output matrix onto `w` (`W_o · w`, q_dim per layer: the only work that
//! grows with the weights) and dots each layer's MLP output (the residual
//! after the block minus the one before it) with `w`; the position's head
//! outputs, those projections and the final residual row come back
//! (`L·(2·q_dim + 2) + d` numbers), and the per-head sums and the small
//! terms (biases, embeddings, the norm's shift, from the CPU copy of the
//! weights) are finished on the CPU.

use super::kernels::{Kernel, MatmulFusion, MatmulParams, TopKParams, MAX_TOP_K};
use super::readback::read_f32;
use super::{GpuContext, GpuError, GpuForward, Stage};
use crate::engine::intervene::InterveneError;
use crate::engine::lens::{DirectContributions, LensPoint, LensToken};
use crate::engine::residual::{residual_point_name, residual_points};
use crate::engine::EngineError;
use crate::model::Weights;

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
        if k == 0 || k > MAX_TOP_K {
            return Err(GpuError::Unsupported(format!("a lens of top-{k} (1 ≤ k ≤ {MAX_TOP_K})")));
        }
        let c = self.config();
        let (t, d, v, eps) = (self.tokens(), c.n_embd, c.vocab_size, c.layer_norm_epsilon);
        if self.buffers().is_none() || t == 0 {
            return Err(GpuError::OutOfRange("the logit lens before any run".into()));
        }
        let points = residual_points(c.n_layer);
        let limit = ctx.device.limits().max_storage_buffer_binding_size.min(LENS_SCRATCH_BYTES);
        let rows_per_pass = ((limit / (v as u64 * 4)) as usize).clamp(1, t);
        let logits = scratch(ctx, "lens logits", rows_per_pass * v)?;
        let per_row = TopKParams::new(v, 0, k, 1.0).output_len();
        let ranked = scratch(ctx, "lens top-k", per_row)?;
        let all = scratch(ctx, "lens top-k (all)", points * t * per_row)?;
        let unused = Unused::new(ctx)?;
        let llama = c.architecture.is_llama_family();
        let mut enc = ctx.device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("lens") });
        for point in 0..points {
            let (stage, layer) = self.residual_point(point);
            let input = self.buffer(stage, layer)?;
            for r0 in (0..t).step_by(rows_per_pass) {
                let m = rows_per_pass.min(t - r0);
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
                    let at = ((point * t + r0 + i) * per_row * 4) as u64;
                    enc.copy_buffer_to_buffer(&ranked, 0, &all, at, (per_row * 4) as u64);
                }
            }
        }
        ctx.queue.submit([enc.finish()]);
        let values = read_f32(ctx, &all, 0, points * t * per_row).await?;
        Ok(values
            .chunks_exact(t * per_row)
            .enumerate()
            .map(|(point, rows)| LensPoint {
                name: residual_point_name(point),
                top: rows.chunks_exact(per_row).map(|row| lens_row(row, name)).collect(),
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

impl GpuForward {
    /// The direct contributions to `token`'s logit at `position` of the last
    /// run ([`crate::engine::lens::direct_contributions`]'s twin); `weights`
    /// is the CPU copy of the model this forward runs, for the few vectors
    /// the small terms need (the final norm, the token's LM-head row, the
    /// embeddings' rows, the output biases).
    pub async fn direct_contributions(
        &self,
        ctx: &GpuContext,
        weights: &Weights,
        position: usize,
        token: u32,
    ) -> Result<DirectContributions, GpuError> {
        let c = self.config().clone();
        let (t, d, q_dim, d_head, n_layer) = (self.tokens(), c.n_embd, c.q_dim(), c.d_head(), c.n_layer);
        if self.buffers().is_none() || t == 0 {
            return Err(GpuError::OutOfRange("direct contributions before any run".into()));
        }
        if weights.blocks.len() != n_layer
            || weights.ln_f_g.data.len() != d
            || weights.head().data.len() != c.vocab_size * d
        {
            return Err(InterveneError::TraceMismatch.into());
        }
        if position >= t {
            return Err(InterveneError::NoSuchPosition { position, tokens: t }.into());
        }
        if token as usize >= c.vocab_size {
            return Err(EngineError::IdOutOfVocab { id: token, vocab: c.vocab_size }.into());
        }
        let centred = !c.architecture.is_llama_family();
        // w = P(g ⊙ u): the norm's factor s multiplies every term afterwards.
        let unembed = &weights.head().data[token as usize * d..][..d];
        let gu: Vec<f64> = (0..d).map(|j| weights.ln_f_g.data[j] as f64 * unembed[j] as f64).collect();
        let gu_mean = if centred { gu.iter().sum::<f64>() / d as f64 } else { 0.0 };
        let w: Vec<f32> = gu.iter().map(|&x| (x - gu_mean) as f32).collect();
        let w_buffer = upload(ctx, "contribution direction", &w);
        // Layout of what comes back: [L × q_dim] W_o·w, [L × q_dim] head outputs, [L × 2] dots, [d] final row.
        let (proj_at, out_at, dots_at, final_at) = (0, n_layer * q_dim, 2 * n_layer * q_dim, 2 * n_layer * (q_dim + 1));
        let all = scratch(ctx, "contributions", final_at + d)?;
        let projected = scratch(ctx, "W_o · w", n_layer * q_dim)?;
        let dots = scratch(ctx, "residual · w", 2 * n_layer)?;
        let unused = Unused::new(ctx)?;
        let mut enc =
            ctx.device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("contributions") });
        let bytes = |n: usize| (n * 4) as u64;
        for (l, block) in self.weights().blocks.iter().enumerate() {
            // Row l of W_o · w: w [1 × d] times W_o [q_dim × d] read transposed.
            let fusion = MatmulFusion { w16: block.proj_w.format, transposed: true, ..Default::default() };
            let mm = MatmulParams::new((1, d, q_dim), fusion).rows_from(0, l);
            let buffers = [
                &w_buffer,
                &block.proj_w.buffer,
                &unused.read,
                &projected,
                &unused.read,
                &unused.read,
                &unused.write_a,
                &unused.write_b,
            ];
            self.kernels().dispatch(ctx, &mut enc, mm.kernel(), &mm, &buffers, mm.workgroups())?;
            // The residual after the attention and after the MLP at the position, dotted with w.
            for (which, stage) in [Stage::ResidMid, Stage::ResidPost].into_iter().enumerate() {
                let dot = MatmulParams::new((1, d, 1), MatmulFusion { transposed: true, ..Default::default() })
                    .rows_from(position, 0)
                    .into_columns(2 * l + which, 2 * n_layer);
                let buffers = [
                    self.buffer(stage, l)?,
                    &w_buffer,
                    &unused.read,
                    &dots,
                    &unused.read,
                    &unused.read,
                    &unused.write_a,
                    &unused.write_b,
                ];
                self.kernels().dispatch(ctx, &mut enc, dot.kernel(), &dot, &buffers, dot.workgroups())?;
            }
            let head_out = self.buffer(Stage::HeadOut, l)?;
            enc.copy_buffer_to_buffer(head_out, bytes(position * q_dim), &all, bytes(out_at + l * q_dim), bytes(q_dim));
        }
        enc.copy_buffer_to_buffer(&projected, 0, &all, bytes(proj_at), bytes(n_layer * q_dim));
        enc.copy_buffer_to_buffer(&dots, 0, &all, bytes(dots_at), bytes(2 * n_layer));
        let (last_stage, last_layer) = self.residual_point(residual_points(n_layer) - 1);
        enc.copy_buffer_to_buffer(
            self.buffer(last_stage, last_layer)?,
            bytes(position * d),
            &all,
            bytes(final_at),
            bytes(d),
        );
        ctx.queue.submit([enc.finish()]);
        let values = read_f32(ctx, &all, 0, final_at + d).await?;

        // s from the final residual row, as the engine computes it.
        let x = &values[final_at..final_at + d];
        let mean = if centred { x.iter().map(|&v| v as f64).sum::<f64>() / d as f64 } else { 0.0 };
        let spread = x.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / d as f64;
        let scale = 1.0 / (spread + c.layer_norm_epsilon as f64).sqrt();
        let project = |v: &[f32]| (scale * v.iter().zip(&w).map(|(&a, &b)| a as f64 * b as f64).sum::<f64>()) as f32;
        let heads = (0..n_layer)
            .map(|l| {
                let proj = &values[proj_at + l * q_dim..][..q_dim];
                let out = &values[out_at + l * q_dim..][..q_dim];
                (0..c.n_head)
                    .map(|h| {
                        let r = h * d_head..(h + 1) * d_head;
                        let dot: f64 = out[r.clone()].iter().zip(&proj[r]).map(|(&o, &p)| o as f64 * p as f64).sum();
                        (scale * dot) as f32
                    })
                    .collect()
            })
            .collect();
        // The MLP's output: the residual after the block minus the one after its attention.
        let mlp = (0..n_layer)
            .map(|l| (scale * (values[dots_at + 2 * l + 1] as f64 - values[dots_at + 2 * l] as f64)) as f32)
            .collect();
        let id = *self.ids().get(position).ok_or(InterveneError::NoSuchPosition { position, tokens: t })? as usize;
        let shift = |(&b, &u): (&f32, &f32)| b as f64 * u as f64;
        let norm_shift =
            if centred { weights.ln_f_b.data.iter().zip(unembed).map(shift).sum::<f64>() as f32 } else { 0.0 };
        // The logit as the LM head computes it from the final residual row.
        let normed = |j: usize| {
            scale * (x[j] as f64 - mean) * weights.ln_f_g.data[j] as f64
                + if centred { weights.ln_f_b.data[j] as f64 } else { 0.0 }
        };
        let logit = (0..d).map(|j| normed(j) * unembed[j] as f64).sum::<f64>() as f32;
        Ok(DirectContributions {
            token,
            position,
            logit,
            norm_scale: scale as f32,
            heads,
            attn_bias: weights.blocks.iter().map(|b| project(&b.attn_proj_b.data)).collect(),
            mlp,
            token_embedding: project(&weights.wte.data[id * d..][..d]),
            position_embedding: weights.wpe.as_ref().map(|wpe| project(&wpe.data[position * d..][..d])),
            norm_shift,
        })
    }
}
