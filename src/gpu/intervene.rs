//! Head ablation and patching on the GPU: the twin of
//! [`engine::intervene`](crate::engine::intervene), in place on the
//! [`GpuForward`]'s buffers so that every stage the page shows updates.
//!
//! The clean run is the last one. An intervention copies the clean head
//! outputs (`[L × T × q_dim]`, a GPU-side copy) and re-runs the forward from
//! the first intervened layer's output projection (the layers before it, and
//! its attention, are kept: their inputs are unchanged), each replaced head's
//! columns overwritten by shaders/replace_head.wgsl right after its layer's
//! attention. The copy restores the clean run later by re-running from the
//! same layer ([`GpuForward::restore_clean`]; a new run does it first, so
//! typing after an ablation keeps the clean prefix, the KV cache). [`GpuForward::sweep`] replaces each head in turn, reading
//! back three numbers per head. Each operation with a read has a `begin_`
//! form whose result's `finish` waits for the read, so that the page need
//! not hold the forward across the wait.

use super::forward::Step;
use super::kernels::{Kernel, ReplaceHeadParams, TopKParams};
use super::lens::scratch;
use super::readback::{begin_read, PendingRead};
use super::{GpuContext, GpuError, GpuForward, RunOptions, Stage};
use crate::engine::cost::forward_cost;
use crate::engine::intervene::{check_head, rerun_flops, InterveneError, Intervention, Replacement, Sweep};
use crate::engine::EngineError;

/// The clean run's head outputs, kept while the buffers hold an intervened run.
pub(crate) struct CleanOutputs {
    /// The first layer re-run.
    first: usize,
    /// `[L × T × q_dim]`: every layer's clean head outputs.
    outputs: wgpu::Buffer,
}

/// What [`GpuForward::intervene`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GpuIntervened {
    /// The first layer re-run (`n_layer` when nothing was replaced).
    pub first_layer: usize,
    /// Layers kept whole from the clean run (the first re-run layer's attention is kept too).
    pub reused_layers: usize,
    /// Compute dispatches of the re-run.
    pub dispatches: usize,
    /// FLOPs of the re-run (`engine::intervene::rerun_flops`) and of a full forward.
    pub flops: u64,
    pub full_flops: u64,
}

/// A replacement dispatch's bind group, made before the plan borrows it.
struct Replace {
    layer: usize,
    bind_group: wgpu::BindGroup,
    params: ReplaceHeadParams,
}

impl GpuForward {
    /// The first re-run layer while the buffers hold an intervened run.
    pub fn intervened(&self) -> Option<usize> {
        self.intervened.as_ref().map(|c| c.first)
    }

    /// Checks `source` (the second prompt's run) against this one.
    fn check_source(&self, source: Option<&GpuForward>) -> Result<(), GpuError> {
        let Some(source) = source else { return Ok(()) };
        let (a, b) = (self.config(), source.config());
        if (a.n_layer, a.n_head, a.q_dim()) != (b.n_layer, b.n_head, b.q_dim()) || source.buffers().is_none() {
            return Err(InterveneError::TraceMismatch.into());
        }
        if source.tokens() != self.tokens() {
            return Err(InterveneError::LengthMismatch { clean: self.tokens(), other: source.tokens() }.into());
        }
        if source.intervened().is_some() {
            return Err(GpuError::Unsupported(
                "patching from a run that is itself intervened (restore it first)".into(),
            ));
        }
        Ok(())
    }

    /// The last run's options, failing before any run.
    fn clean_options(&self) -> Result<RunOptions, GpuError> {
        match (self.last_options(), self.tokens()) {
            (Some(opts), t) if t > 0 => Ok(opts),
            _ => Err(GpuError::OutOfRange("an intervention before any run".into())),
        }
    }

    /// Copies every layer's head outputs (rows 0..T) into a new buffer.
    fn copy_outputs(&self, ctx: &GpuContext, enc: &mut wgpu::CommandEncoder) -> Result<wgpu::Buffer, GpuError> {
        let c = self.config();
        let per_layer = (self.tokens() * c.q_dim() * 4) as u64;
        let outputs = scratch(ctx, "clean head outputs", c.n_layer * self.tokens() * c.q_dim())?;
        for l in 0..c.n_layer {
            enc.copy_buffer_to_buffer(self.buffer(Stage::HeadOut, l)?, 0, &outputs, l as u64 * per_layer, per_layer);
        }
        Ok(outputs)
    }

    /// Copies layer `l`'s clean head outputs back from `outputs`.
    fn restore_outputs(
        &self,
        enc: &mut wgpu::CommandEncoder,
        outputs: &wgpu::Buffer,
        l: usize,
    ) -> Result<(), GpuError> {
        let per_layer = (self.tokens() * self.config().q_dim() * 4) as u64;
        enc.copy_buffer_to_buffer(outputs, l as u64 * per_layer, self.buffer(Stage::HeadOut, l)?, 0, per_layer);
        Ok(())
    }

    /// The bind group and parameters replacing head `iv.head` of layer `iv.layer`.
    fn replacement(
        &self,
        ctx: &GpuContext,
        iv: &Intervention,
        outputs: &wgpu::Buffer,
        source: Option<&GpuForward>,
    ) -> Result<Replace, GpuError> {
        let c = self.config();
        let (t, q_dim, d_head) = (self.tokens(), c.q_dim(), c.d_head());
        let (mode, src, src_offset) = match iv.kind {
            Replacement::Zero => (0, outputs, 0),
            Replacement::Mean => (1, outputs, iv.layer * t * q_dim),
            Replacement::Patch => {
                let source = source.ok_or(InterveneError::NoSource { layer: iv.layer, head: iv.head })?;
                (2, source.buffer(Stage::HeadOut, iv.layer)?, 0)
            }
        };
        let params = ReplaceHeadParams {
            t: t as u32,
            q_dim: q_dim as u32,
            d_head: d_head as u32,
            col0: (iv.head * d_head) as u32,
            mode,
            src_offset: src_offset as u32,
            _pad: [0; 2],
        };
        let bytes = bytemuck::bytes_of(&params);
        let uniform = wgpu::util::DeviceExt::create_buffer_init(
            &ctx.device,
            &wgpu::util::BufferInitDescriptor {
                label: Some("replace_head params"),
                contents: bytes,
                usage: wgpu::BufferUsages::UNIFORM,
            },
        );
        let dst = self.buffer(Stage::HeadOut, iv.layer)?;
        let bind_group = self.kernels().bind(ctx, Kernel::ReplaceHead, &uniform, 0, bytes.len() as u64, &[src, dst]);
        Ok(Replace { layer: iv.layer, bind_group, params })
    }

    /// Encodes the re-run from layer `first` with `opts`, each of `replaces`
    /// dispatched right after its layer's attention, in the order given.
    fn encode_rerun(
        &self,
        ctx: &GpuContext,
        enc: &mut wgpu::CommandEncoder,
        first: usize,
        opts: RunOptions,
        replaces: &[Replace],
    ) -> Result<usize, GpuError> {
        let buf = self.buffers().ok_or_else(|| GpuError::OutOfRange("buffers".into()))?;
        let mut plan = self.plan(buf, self.tokens(), 0, opts, Some(first))?;
        // Insert from the last position back, so that earlier indices stay valid.
        for r in replaces.iter().rev() {
            let at = plan.after_attention.get(r.layer).copied().flatten().ok_or_else(|| {
                GpuError::OutOfRange(format!("layer {} before the re-run's first layer {first}", r.layer))
            })?;
            let step =
                Step { kernel: Kernel::ReplaceHead, bind_group: &r.bind_group, workgroups: r.params.workgroups() };
            plan.steps.insert(at, step);
        }
        Ok(self.encode_plan(ctx, enc, plan))
    }

    /// Re-runs the last (clean) run with the heads of `interventions`
    /// replaced, from the first intervened layer on, in place: afterwards
    /// every stage (and the logits) are the intervened run's.
    /// `source` is the second prompt's run (same model and length) that
    /// `Patch` reads; `Mean` averages the clean run's outputs. A head named
    /// twice takes its last replacement. [`engine::intervene::intervene`]'s twin.
    ///
    /// [`engine::intervene::intervene`]: crate::engine::intervene::intervene
    pub fn intervene(
        &mut self,
        ctx: &GpuContext,
        interventions: &[Intervention],
        source: Option<&GpuForward>,
    ) -> Result<GpuIntervened, GpuError> {
        let opts = self.clean_options()?;
        self.check_source(source)?;
        let c = self.config().clone();
        for iv in interventions {
            check_head(&c, iv.layer, iv.head)?;
            if iv.kind == Replacement::Patch && source.is_none() {
                return Err(InterveneError::NoSource { layer: iv.layer, head: iv.head }.into());
            }
        }
        self.restore_clean(ctx)?;
        let t = self.tokens();
        let full_flops = forward_cost(&c, t).total_flops();
        let Some(first) = interventions.iter().map(|iv| iv.layer).min() else {
            let n = c.n_layer;
            return Ok(GpuIntervened { first_layer: n, reused_layers: n, dispatches: 0, flops: 0, full_flops });
        };
        let mut enc = ctx.device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("intervene") });
        let outputs = self.copy_outputs(ctx, &mut enc)?;
        let mut replaces = Vec::with_capacity(interventions.len());
        for iv in interventions {
            replaces.push(self.replacement(ctx, iv, &outputs, source)?);
        }
        // The replacements of one layer in the order given (a later one wins).
        replaces.sort_by_key(|r| r.layer);
        let dispatches = self.encode_rerun(ctx, &mut enc, first, opts, &replaces)?;
        ctx.queue.submit([enc.finish()]);
        self.intervened = Some(CleanOutputs { first, outputs });
        Ok(GpuIntervened {
            first_layer: first,
            reused_layers: first,
            dispatches,
            flops: rerun_flops(&c, t, first, if opts.all_logits { t } else { 1 }),
            full_flops,
        })
    }

    /// Puts the clean run back after [`GpuForward::intervene`] (its head
    /// outputs from the copy, and a re-run from the same layer); nothing to
    /// do when the buffers hold a clean run. Returns the layers re-run.
    pub fn restore_clean(&mut self, ctx: &GpuContext) -> Result<usize, GpuError> {
        let Some(clean) = self.intervened.take() else { return Ok(0) };
        let opts = self.clean_options()?;
        let mut enc = ctx.device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("restore") });
        self.restore_outputs(&mut enc, &clean.outputs, clean.first)?;
        self.encode_rerun(ctx, &mut enc, clean.first, opts, &[])?;
        ctx.queue.submit([enc.finish()]);
        Ok(self.config().n_layer - clean.first)
    }

    /// Replaces every head of the last (clean) run in turn by `kind`
    /// (`Patch` reads `source`) and measures `token`'s logit after the last
    /// position (by default the clean run's top-1 next token, read first as
    /// top_k.wgsl ranks it); the buffers hold the clean run again afterwards.
    /// [`engine::intervene::sweep`]'s twin.
    ///
    /// [`engine::intervene::sweep`]: crate::engine::intervene::sweep
    pub async fn sweep(
        &mut self,
        ctx: &GpuContext,
        kind: Replacement,
        token: Option<u32>,
        source: Option<&GpuForward>,
    ) -> Result<Sweep, GpuError> {
        let token = match token {
            Some(token) => token,
            None => {
                self.clean_options()?;
                self.restore_clean(ctx)?;
                let top = self.begin_read_top_k(ctx, 1, 1.0)?.finish(ctx).await?;
                top.tokens.first().map(|&(id, _)| id).ok_or_else(|| GpuError::Readback("an empty top-1".into()))?
            }
        };
        self.begin_sweep(ctx, kind, token, source)?.finish(ctx).await
    }

    /// Starts [`Self::sweep`] for `token`: every re-run is submitted and the
    /// read of three numbers per head (the top logit, the softmax normaliser
    /// and the token's logit) requested, so that the caller need not hold
    /// `self` across the wait. Each re-run computes every row from its head's
    /// layer on, with flash attention and the last position's logits; FLOPs
    /// are counted as `engine::intervene::rerun_flops` counts them.
    pub fn begin_sweep(
        &mut self,
        ctx: &GpuContext,
        kind: Replacement,
        token: u32,
        source: Option<&GpuForward>,
    ) -> Result<SweepRead, GpuError> {
        let layers = 0..self.config().n_layer;
        self.begin_sweep_layers(ctx, kind, token, source, layers)
    }

    /// [`Self::begin_sweep`] over the heads of `layers` only (the page sweeps
    /// a layer at a time, to show progress): the result's grids have a row
    /// per layer of the range. The clean run is put back by a re-run from
    /// the range's first layer.
    pub fn begin_sweep_layers(
        &mut self,
        ctx: &GpuContext,
        kind: Replacement,
        token: u32,
        source: Option<&GpuForward>,
        layers: std::ops::Range<usize>,
    ) -> Result<SweepRead, GpuError> {
        let opts = self.clean_options()?;
        self.check_source(source)?;
        if kind == Replacement::Patch && source.is_none() {
            return Err(InterveneError::NoSource { layer: 0, head: 0 }.into());
        }
        let c = self.config().clone();
        let (t, v, n_layer, n_head) = (self.tokens(), c.vocab_size, c.n_layer, c.n_head);
        if token as usize >= v {
            return Err(EngineError::IdOutOfVocab { id: token, vocab: v }.into());
        }
        if layers.is_empty() || layers.end > n_layer {
            return Err(GpuError::OutOfRange(format!("layers {layers:?} of a {n_layer}-layer model")));
        }
        let swept = layers.len();
        self.restore_clean(ctx)?;
        let buf = self.buffers().ok_or_else(|| GpuError::OutOfRange("buffers".into()))?;
        // Entry 0: the clean run's numbers, then one per head, layer by layer.
        let results = scratch(ctx, "sweep results", 3 * (1 + swept * n_head))?;
        let top = TopKParams::new(v, 0, 1, 1.0);
        let ranked = scratch(ctx, "sweep top-1", top.output_len())?;
        // Reads `logits` row `row` into entry `entry` of the results.
        let measure = |enc: &mut wgpu::CommandEncoder, logits: &wgpu::Buffer, row: usize, entry: usize| {
            let params = TopKParams::new(v, row, 1, 1.0);
            self.kernels().dispatch(ctx, enc, Kernel::TopK, &params, &[logits, &ranked], [1, 1, 1])?;
            let at = (entry * 3 * 4) as u64;
            enc.copy_buffer_to_buffer(&ranked, 0, &results, at, 8);
            enc.copy_buffer_to_buffer(logits, ((row * v) as u64 + token as u64) * 4, &results, at + 8, 4);
            Ok::<(), GpuError>(())
        };
        let mut enc = ctx.device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("sweep") });
        let outputs = self.copy_outputs(ctx, &mut enc)?;
        match (&buf.logits_all, opts.all_logits) {
            (Some(all), true) => measure(&mut enc, all, t - 1, 0)?,
            _ => measure(&mut enc, &buf.logits_last, 0, 0)?,
        }
        ctx.queue.submit([enc.finish()]);
        // The re-runs need only the last position's logits: flash attention, nothing kept for a trace.
        let fast = RunOptions { mask: opts.mask, trace: false, all_logits: false };
        let mut flops = 0;
        // From the last layer down: a re-run from layer l writes only layers l and after,
        // so the layers before it still hold the clean run.
        for layer in layers.clone().rev() {
            for head in 0..n_head {
                let replace = self.replacement(ctx, &Intervention { layer, head, kind }, &outputs, source)?;
                let mut enc =
                    ctx.device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("sweep") });
                self.restore_outputs(&mut enc, &outputs, layer)?;
                self.encode_rerun(ctx, &mut enc, layer, fast, std::slice::from_ref(&replace))?;
                measure(&mut enc, &buf.logits_last, 0, 1 + (layer - layers.start) * n_head + head)?;
                ctx.queue.submit([enc.finish()]);
                flops += rerun_flops(&c, t, layer, 1);
            }
        }
        // The clean run back: the first swept layer's outputs and a re-run from there with the clean options.
        let mut enc = ctx.device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("restore") });
        self.restore_outputs(&mut enc, &outputs, layers.start)?;
        self.encode_rerun(ctx, &mut enc, layers.start, opts, &[])?;
        ctx.queue.submit([enc.finish()]);
        Ok(SweepRead {
            read: begin_read(ctx, &results, 0, 3 * (1 + swept * n_head))?,
            kind,
            token,
            n_head,
            heads: swept * n_head,
            flops,
            full_flops: (swept * n_head) as u64 * forward_cost(&c, t).total_flops(),
        })
    }
}

/// A sweep on its way back ([`GpuForward::begin_sweep`]).
pub struct SweepRead {
    read: PendingRead,
    kind: Replacement,
    token: u32,
    n_head: usize,
    heads: usize,
    flops: u64,
    full_flops: u64,
}

impl SweepRead {
    pub async fn finish(self, ctx: &GpuContext) -> Result<Sweep, GpuError> {
        let values = self.read.finish(ctx).await?;
        if values.len() < 3 * (1 + self.heads) {
            return Err(GpuError::Readback(format!(
                "{} sweep values, expected {}",
                values.len(),
                3 * (1 + self.heads)
            )));
        }
        // (logit, probability) from one entry: softmax(logits)[token] = exp(logit − max) / normaliser.
        let entry = |r: &[f32]| (r[2], ((r[2] as f64 - r[0] as f64).exp() / r[1] as f64) as f32);
        let mut entries = values.chunks_exact(3).take(1 + self.heads).map(entry);
        let (clean_logit, clean_prob) = entries.next().ok_or_else(|| GpuError::Readback("an empty sweep".into()))?;
        let per_head: Vec<(f32, f32)> = entries.map(|(logit, prob)| (logit - clean_logit, prob)).collect();
        let grid = |pick: fn(&(f32, f32)) -> f32| -> Vec<Vec<f32>> {
            per_head.chunks_exact(self.n_head).map(|row| row.iter().map(pick).collect()).collect()
        };
        Ok(Sweep {
            kind: self.kind,
            token: self.token,
            clean_logit,
            clean_prob,
            delta_logit: grid(|h| h.0),
            prob: grid(|h| h.1),
            flops: self.flops,
            full_flops: self.full_flops,
        })
    }
}
