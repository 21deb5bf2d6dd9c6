//! Direct contributions to one token's logit on the GPU: the twin of
//! [`engine::lens::direct_contributions`](crate::engine::lens::direct_contributions),
//! returning its type.
//!
//! With the final norm linearised at the final residual (see `engine::lens`),
//! a term `c` contributes `s · c · w` where `w = P(g ⊙ u)` (u the token's
//! LM-head row, g the norm's gain, P the centring for LayerNorm, the identity
//! for RMSNorm) and `s` the norm's factor at the position. The GPU projects
//! every layer's output matrix onto `w` (`W_o · w`, q_dim numbers per layer:
//! the only work that grows with the weights, matmul_skinny.wgsl) and dots the
//! residual after each attention and each block at the position with `w`
//! (their difference is the MLP's term); the position's head outputs, those
//! projections and dots and the final residual row come back
//! (`L·(2·q_dim + 2) + d` numbers). The per-head sums, `s`, and the small
//! terms (biases, embedding rows, the norm's shift, from the CPU copy of the
//! weights) are finished on the CPU.

use super::kernels::{MatmulFusion, MatmulParams};
use super::lens::{scratch, upload, Unused};
use super::readback::{begin_read, PendingRead};
use super::{GpuContext, GpuError, GpuForward, Stage};
use crate::engine::intervene::InterveneError;
use crate::engine::lens::DirectContributions;
use crate::engine::residual::residual_points;
use crate::engine::EngineError;
use crate::model::Weights;

/// Direct contributions on their way back ([`GpuForward::begin_direct_contributions`]).
pub struct ContributionsRead {
    read: PendingRead,
    token: u32,
    position: usize,
    n_layer: usize,
    n_head: usize,
    d_head: usize,
    q_dim: usize,
    d: usize,
    centred: bool,
    eps: f64,
    /// `P(g ⊙ u)`, in f64 as the engine computes it.
    w: Vec<f64>,
    /// The small terms before the norm's factor: each layer's output bias,
    /// the token's and the position's embedding rows, dotted with `w`.
    attn_bias: Vec<f64>,
    token_embedding: f64,
    position_embedding: Option<f64>,
    norm_shift: f32,
}

impl GpuForward {
    /// The direct contributions to `token`'s logit at `position` of the last
    /// run; `weights` is the CPU copy of the model this forward runs, for the
    /// few vectors the small terms need.
    pub async fn direct_contributions(
        &self,
        ctx: &GpuContext,
        weights: &Weights,
        position: usize,
        token: u32,
    ) -> Result<DirectContributions, GpuError> {
        self.begin_direct_contributions(ctx, weights, position, token)?.finish(ctx).await
    }

    /// Starts [`Self::direct_contributions`]: dispatches it and requests the
    /// read, so that the caller need not hold `self` across the wait.
    pub fn begin_direct_contributions(
        &self,
        ctx: &GpuContext,
        weights: &Weights,
        position: usize,
        token: u32,
    ) -> Result<ContributionsRead, GpuError> {
        let c = self.config();
        let (t, d, q_dim, n_layer) = (self.tokens(), c.n_embd, c.q_dim(), c.n_layer);
        if self.buffers().is_none() || t == 0 {
            return Err(GpuError::OutOfRange("direct contributions before any run".into()));
        }
        let fits = weights.blocks.len() == n_layer
            && weights.blocks.iter().all(|b| b.attn_proj_b.data.len() == d)
            && weights.ln_f_g.data.len() == d
            && weights.ln_f_b.data.len() == d
            && weights.wte.len() == c.vocab_size * d
            && weights.head().len() == c.vocab_size * d
            && weights.wpe.as_ref().is_none_or(|wpe| wpe.data.len() >= t * d);
        if !fits {
            return Err(InterveneError::TraceMismatch.into());
        }
        if position >= t {
            return Err(InterveneError::NoSuchPosition { position, tokens: t }.into());
        }
        if token as usize >= c.vocab_size {
            return Err(EngineError::IdOutOfVocab { id: token, vocab: c.vocab_size }.into());
        }
        let id = *self.ids().get(position).ok_or(InterveneError::NoSuchPosition { position, tokens: t })? as usize;
        let centred = !c.architecture.is_llama_family();
        // w = P(g ⊙ u): the norm's factor s multiplies every term afterwards.
        let unembed = weights.head().row(token as usize);
        let unembed = &unembed[..d];
        let gu: Vec<f64> = (0..d).map(|j| weights.ln_f_g.data[j] as f64 * unembed[j] as f64).collect();
        let gu_mean = if centred { gu.iter().sum::<f64>() / d as f64 } else { 0.0 };
        let w: Vec<f64> = gu.iter().map(|&x| x - gu_mean).collect();
        let dot = |v: &[f32]| v.iter().zip(&w).map(|(&a, &b)| a as f64 * b).sum::<f64>();
        let w_f32: Vec<f32> = w.iter().map(|&x| x as f32).collect();
        let w_buffer = upload(ctx, "contribution direction", &w_f32);

        // What comes back: [L × q_dim] W_o·w, [L × q_dim] head outputs, [L × 2] dots, [d] final row.
        let layout = Layout { n_layer, q_dim };
        let all = scratch(ctx, "contributions", layout.len(d))?;
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
            // The residual after the attention and after the block at the position, dotted with w.
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
            let at = bytes(layout.outputs() + l * q_dim);
            enc.copy_buffer_to_buffer(head_out, bytes(position * q_dim), &all, at, bytes(q_dim));
        }
        enc.copy_buffer_to_buffer(&projected, 0, &all, 0, bytes(n_layer * q_dim));
        enc.copy_buffer_to_buffer(&dots, 0, &all, bytes(layout.dots()), bytes(2 * n_layer));
        let (last_stage, last_layer) = self.residual_point(residual_points(n_layer) - 1);
        let last = self.buffer(last_stage, last_layer)?;
        enc.copy_buffer_to_buffer(last, bytes(position * d), &all, bytes(layout.final_row()), bytes(d));
        ctx.queue.submit([enc.finish()]);

        // RMSNorm has no shift (the forward ignores its bias).
        let shift = |(&b, &u): (&f32, &f32)| b as f64 * u as f64;
        let norm_shift =
            if centred { weights.ln_f_b.data.iter().zip(unembed).map(shift).sum::<f64>() as f32 } else { 0.0 };
        Ok(ContributionsRead {
            read: begin_read(ctx, &all, 0, layout.len(d))?,
            token,
            position,
            n_layer,
            n_head: c.n_head,
            d_head: c.d_head(),
            q_dim,
            d,
            centred,
            eps: c.layer_norm_epsilon as f64,
            attn_bias: weights.blocks.iter().map(|b| dot(&b.attn_proj_b.data)).collect(),
            token_embedding: dot(&weights.wte.row(id)[..d]),
            position_embedding: weights.wpe.as_ref().map(|wpe| dot(&wpe.data[position * d..][..d])),
            norm_shift,
            w,
        })
    }
}

/// Where each part of the read lies: `[L × q_dim]` W_o·w, `[L × q_dim]` head
/// outputs, `[L × 2]` dots, then the final residual row.
struct Layout {
    n_layer: usize,
    q_dim: usize,
}

impl Layout {
    fn outputs(&self) -> usize {
        self.n_layer * self.q_dim
    }

    fn dots(&self) -> usize {
        2 * self.n_layer * self.q_dim
    }

    fn final_row(&self) -> usize {
        self.dots() + 2 * self.n_layer
    }

    fn len(&self, d: usize) -> usize {
        self.final_row() + d
    }
}

impl ContributionsRead {
    pub async fn finish(self, ctx: &GpuContext) -> Result<DirectContributions, GpuError> {
        let (n_layer, q_dim, d) = (self.n_layer, self.q_dim, self.d);
        let layout = Layout { n_layer, q_dim };
        let values = self.read.finish(ctx).await?;
        if values.len() < layout.len(d) {
            return Err(GpuError::Readback(format!(
                "{} contribution values, expected {}",
                values.len(),
                layout.len(d)
            )));
        }
        // s from the final residual row, as the engine computes it.
        let x = &values[layout.final_row()..layout.len(d)];
        let mean = if self.centred { x.iter().map(|&v| v as f64).sum::<f64>() / d as f64 } else { 0.0 };
        let spread = x.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / d as f64;
        let s = 1.0 / (spread + self.eps).sqrt();
        let heads = (0..n_layer)
            .map(|l| {
                let proj = &values[l * q_dim..][..q_dim];
                let out = &values[layout.outputs() + l * q_dim..][..q_dim];
                (0..self.n_head)
                    .map(|h| {
                        let r = h * self.d_head..(h + 1) * self.d_head;
                        let dot: f64 = out[r.clone()].iter().zip(&proj[r]).map(|(&o, &p)| o as f64 * p as f64).sum();
                        (s * dot) as f32
                    })
                    .collect()
            })
            .collect();
        // The MLP's output: the residual after the block minus the one after its attention.
        let dots = &values[layout.dots()..layout.final_row()];
        let mlp = (0..n_layer).map(|l| (s * (dots[2 * l + 1] as f64 - dots[2 * l] as f64)) as f32).collect();
        // The logit as the LM head computes it from the final residual row:
        // u · (s·g ⊙ (x − mean) + b) = s·(x · w) + the shift's term.
        let x_dot_w: f64 = x.iter().zip(&self.w).map(|(&a, &b)| a as f64 * b).sum();
        let scaled = |v: f64| (s * v) as f32;
        Ok(DirectContributions {
            token: self.token,
            position: self.position,
            logit: (s * x_dot_w) as f32 + self.norm_shift,
            norm_scale: s as f32,
            heads,
            attn_bias: self.attn_bias.iter().map(|&v| scaled(v)).collect(),
            mlp,
            token_embedding: scaled(self.token_embedding),
            position_embedding: self.position_embedding.map(scaled),
            norm_shift: self.norm_shift,
        })
    }
}
