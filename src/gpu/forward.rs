//! `GpuForward`: the whole forward pass of either family as WGSL compute kernels, weights
//! resident, every tensor in its own storage buffer (for rendering and slice
//! readback), and prefix reuse: when new ids extend or share a prefix with the
//! last run, the prefix's K and V (and every other per-row tensor) are kept and
//! only the new rows are computed (the KV cache).
//!
//! Per block, 5 dispatches: ln_1+QKV, attention, proj+residual, ln_2+fc+GELU,
//! proj+residual; the Llama family adds RoPE after the QKV projection (6),
//! its norms RMSNorm in the same matmul prologues, and its SwiGLU in the
//! gate|up projection's epilogue (the gated matmul pipelines: no `[T×2m]`
//! intermediate, no dispatch of its own). Matmuls over few rows (an appended token, the last
//! position's logits) use matmul_skinny.wgsl, so an append costs O(T) (the
//! attention row over the cache) plus one pass over the weights. Attention is attention_rows.wgsl when the trace wants the T×T
//! matrices, flash attention otherwise (flash_rows.wgsl, a workgroup per row, for
//! few rows such as generation's one; flash_attention.wgsl for more). Buffers and bind groups are built
//! once per [`Layout`] (capacity in tokens, and which optional buffers exist);
//! a run only writes the new ids and one block of parameters.

use super::kernels::{
    AttentionShape, EmbedParams, Half, Kernel, Kernels, LayernormParams, MatmulFusion, MatmulParams, RopeParams,
    PARAM_STRIDE,
};
use super::layout::{matrix_caps, Buffers, Layout, Slot, MATRIX_BUDGET};
use super::weights::GpuWeights;
use super::{GpuContext, GpuError};
use crate::engine::{check_ids, EngineError, Mask};
use crate::model::{Model, ModelConfig};

/// What a run computes besides the next-token logits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RunOptions {
    pub mask: Mask,
    /// Keep every intermediate the trace shows (naive attention with the T×T
    /// matrices, layernorm outputs, pre-residual outputs).
    pub trace: bool,
    /// Logits for every position, not only the last.
    pub all_logits: bool,
}

impl RunOptions {
    /// Next-token logits only, flash attention: generation and benchmarks.
    pub fn fast(mask: Mask) -> Self {
        Self { mask, trace: false, all_logits: false }
    }

    /// Everything the trace shows.
    pub fn traced(mask: Mask) -> Self {
        Self { mask, trace: true, all_logits: false }
    }
}

/// What the last run did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RunStats {
    /// Tokens in the run.
    pub tokens: usize,
    /// Leading tokens whose rows were kept from the previous run.
    pub reused_prefix: usize,
    /// Compute dispatches encoded.
    pub dispatches: usize,
    /// Whether the buffers were (re)allocated for this run.
    pub reallocated: bool,
}

pub struct GpuForward {
    kernels: Kernels,
    config: ModelConfig,
    weights: GpuWeights,
    buffers: Option<Buffers>,
    /// What the buffers hold: the last run's options (None before any run and
    /// after a reallocation).
    last_opts: Option<RunOptions>,
    last: RunStats,
    /// The last run's ids (empty before any run and after a reallocation).
    ids: Vec<u32>,
    /// Whether the next run may keep rows of `ids` (the KV cache); cleared by
    /// [`GpuForward::clear_cache`] without forgetting what the buffers hold.
    cache_valid: bool,
    /// Set while the buffers hold an intervened run (see `gpu::intervene`):
    /// what restores the clean one.
    pub(crate) intervened: Option<super::intervene::CleanOutputs>,
    /// The most bytes a traced layout's T×T matrices may take
    /// ([`MATRIX_BUDGET`] unless set lower): past every block's, one
    /// block's at a time (`gpu::one_block`).
    matrix_budget: u64,
}

/// Where parameters for one slot go in the run's uniform block.
struct ParamWriter {
    bytes: Vec<u8>,
}

impl ParamWriter {
    fn put<P: bytemuck::Pod>(&mut self, slot: &Slot, params: &P) {
        let at = slot.index as usize * PARAM_STRIDE as usize;
        let src = bytemuck::bytes_of(params);
        self.bytes[at..at + src.len()].copy_from_slice(src);
    }
}

/// One dispatch of the run: a kernel, its bind group (a slot's, or one an
/// intervention made) and its workgroup counts.
pub(crate) struct Step<'a> {
    pub kernel: Kernel,
    pub bind_group: &'a wgpu::BindGroup,
    pub workgroups: [u32; 3],
}

/// A plan's dispatches and parameters; `after_attention[l]` is the index in
/// `steps` right after layer l's attention (where an intervention replaces
/// head outputs), for the layers the plan runs.
pub(crate) struct Plan<'a> {
    pub steps: Vec<Step<'a>>,
    params: ParamWriter,
    pub after_attention: Vec<Option<usize>>,
}

impl GpuForward {
    /// Uploads the model's weights; buffers for activations come with the first run.
    pub fn new(ctx: &GpuContext, model: &Model) -> Result<Self, GpuError> {
        Self::with_weights(ctx, &model.config, GpuWeights::upload(ctx, &model.config, &model.weights)?)
    }

    pub fn with_weights(ctx: &GpuContext, config: &ModelConfig, weights: GpuWeights) -> Result<Self, GpuError> {
        if config.d_head() > super::kernels::MAX_FLASH_D_HEAD {
            return Err(GpuError::Unsupported(format!(
                "d_head = {} (the GPU kernels hold at most {} per head)",
                config.d_head(),
                super::kernels::MAX_FLASH_D_HEAD
            )));
        }
        let kernels = Kernels::new(ctx);
        kernels.compile_for(config, &weights);
        Ok(Self {
            kernels,
            config: config.clone(),
            weights,
            buffers: None,
            last_opts: None,
            last: RunStats::default(),
            ids: Vec::new(),
            cache_valid: false,
            intervened: None,
            matrix_budget: MATRIX_BUDGET,
        })
    }

    /// The resident weights (cloning them shares the buffers, see [`GpuWeights`]).
    pub fn weights(&self) -> &GpuWeights {
        &self.weights
    }

    pub fn config(&self) -> &ModelConfig {
        &self.config
    }

    /// The last run's ids.
    pub fn ids(&self) -> &[u32] {
        &self.ids
    }

    /// Tokens in the last run.
    pub fn tokens(&self) -> usize {
        self.last.tokens
    }

    pub fn last_run(&self) -> RunStats {
        self.last
    }

    /// Whether the last run kept the trace's intermediates.
    pub fn traced(&self) -> bool {
        self.last_opts.is_some_and(|o| o.trace)
    }

    /// The mask of the last run.
    pub fn mask(&self) -> Option<Mask> {
        self.last_opts.map(|o| o.mask)
    }

    /// Whether the last run computed the logits of every position.
    pub fn all_logits(&self) -> bool {
        self.last_opts.is_some_and(|o| o.all_logits)
    }

    pub fn weight_bytes(&self) -> u64 {
        self.weights.bytes
    }

    /// Bytes of activation buffers (the pool) for the current capacity.
    pub fn activation_bytes(&self) -> u64 {
        self.buffers.as_ref().map_or(0, |b| b.bytes)
    }

    /// The kernels compiled so far ([`Kernels::compile_for`] compiles a
    /// forward's own when it is made).
    pub fn compiled_kernels(&self) -> Vec<super::Kernel> {
        self.kernels.compiled()
    }

    pub(crate) fn kernels(&self) -> &Kernels {
        &self.kernels
    }

    /// The last run's options (None before any run).
    pub(crate) fn last_options(&self) -> Option<RunOptions> {
        self.last_opts
    }

    pub(crate) fn buffers(&self) -> Option<&Buffers> {
        self.buffers.as_ref()
    }

    /// The most bytes a traced run's T×T matrices may take (at most
    /// [`MATRIX_BUDGET`]; the page's test hook lowers it): the next run's
    /// layout keeps every block's within it, else one block's.
    pub fn set_matrix_budget(&mut self, bytes: u64) {
        self.matrix_budget = bytes.min(MATRIX_BUDGET);
    }

    /// Forgets the cached prefix: the next run computes every row.
    pub fn clear_cache(&mut self) {
        self.cache_valid = false;
    }

    fn ensure_layout(&mut self, ctx: &GpuContext, t: usize, opts: RunOptions) -> Result<bool, GpuError> {
        let current = self.buffers.as_ref().map(|b| b.layout);
        let caps = matrix_caps(&self.config, ctx.device.limits().max_storage_buffer_binding_size, self.matrix_budget);
        let wanted = Layout::for_run(&self.config, current, t, opts.trace, opts.all_logits, caps);
        if current == Some(wanted) {
            return Ok(false);
        }
        self.buffers = None; // free the old buffers before allocating the new ones
        self.last_opts = None;
        self.ids.clear();
        self.cache_valid = false;
        self.intervened = None;
        self.buffers = Some(Buffers::new(ctx, &self.kernels, &self.config, &self.weights, wanted, self.matrix_budget)?);
        Ok(true)
    }

    /// How many leading rows of the last run `ids` can keep.
    fn reusable_prefix(&self, ids: &[u32], opts: RunOptions) -> usize {
        let Some(last) = self.last_opts.filter(|_| self.cache_valid) else { return 0 };
        let cached = &self.ids;
        // Under a bidirectional mask every row depends on every later token.
        if last.mask != opts.mask || opts.mask == Mask::Bidirectional {
            return 0;
        }
        if (opts.trace && !last.trace) || (opts.all_logits && !last.all_logits) {
            return 0;
        }
        let common = cached.iter().zip(ids).take_while(|(a, b)| a == b).count();
        // At least the last row is recomputed: it produces the logits.
        common.min(ids.len().saturating_sub(1))
    }

    /// Runs the forward pass on `ids` and submits it; results stay on the GPU.
    pub fn run(&mut self, ctx: &GpuContext, ids: &[u32], opts: RunOptions) -> Result<RunStats, GpuError> {
        self.run_with(ctx, ids, opts, None)
    }

    /// [`GpuForward::run`] with each dispatch in a compute pass of its own
    /// between two timestamps (benchmarks; the adapter must have timestamp
    /// queries, [`GpuContext::timestamps`]): what each kernel cost on the GPU.
    pub async fn run_timed(
        &mut self,
        ctx: &GpuContext,
        ids: &[u32],
        opts: RunOptions,
    ) -> Result<(RunStats, super::timing::DispatchTimes), GpuError> {
        let mut timer = super::timing::Timer::default();
        let stats = self.run_with(ctx, ids, opts, Some(&mut timer))?;
        Ok((stats, timer.finish(ctx).await?))
    }

    fn run_with(
        &mut self,
        ctx: &GpuContext,
        ids: &[u32],
        opts: RunOptions,
        timer: Option<&mut super::timing::Timer>,
    ) -> Result<RunStats, GpuError> {
        // A shader or validation error reported since the last run means the
        // numbers cannot be trusted: say so instead of returning them.
        if let Some(fault) = ctx.fault() {
            return Err(GpuError::Validation(fault));
        }
        check_ids(&self.config, ids)?;
        if ids.is_empty() {
            return Err(EngineError::Empty.into());
        }
        if let Mask::Window(0) = opts.mask {
            return Err(GpuError::Unsupported("a sliding window of width 0".into()));
        }
        // Rows computed with replaced heads are not the clean run's: put the
        // clean run back (a re-run from the first replaced layer, never more
        // than a full one) so that its prefix can be kept.
        if self.intervened.is_some() {
            self.restore_clean(ctx)?;
        }
        let t = ids.len();
        let reallocated = self.ensure_layout(ctx, t, opts)?;
        let p = self.reusable_prefix(ids, opts);
        let Some(buf) = self.buffers.as_ref() else { return Err(GpuError::OutOfRange("buffers".into())) };
        let plan = self.plan(buf, t, p, opts, None)?;
        ctx.queue.write_buffer(&buf.ids, p as u64 * 4, bytemuck::cast_slice(&ids[p..]));
        let mut enc = ctx.device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("forward") });
        let dispatches = match timer {
            Some(timer) => {
                timer.encode(ctx, &self.kernels, &mut enc, plan, |ctx, plan| self.write_params(ctx, plan))?
            }
            None => self.encode_plan(ctx, &mut enc, plan),
        };
        ctx.queue.submit([enc.finish()]);
        let stats = RunStats { tokens: t, reused_prefix: p, dispatches, reallocated };
        self.ids.clear();
        self.ids.extend_from_slice(ids);
        self.cache_valid = true;
        self.last_opts = Some(opts);
        self.last = stats;
        Ok(stats)
    }

    /// Writes a plan's parameters (ordered before the encoder's submission)
    /// and encodes its dispatches in one compute pass; returns how many.
    pub(crate) fn encode_plan(&self, ctx: &GpuContext, enc: &mut wgpu::CommandEncoder, plan: Plan<'_>) -> usize {
        self.write_params(ctx, &plan);
        let mut pass =
            enc.begin_compute_pass(&wgpu::ComputePassDescriptor { label: Some("forward"), timestamp_writes: None });
        for step in &plan.steps {
            pass.set_pipeline(self.kernels.pipeline(step.kernel));
            pass.set_bind_group(0, step.bind_group, &[]);
            pass.dispatch_workgroups(step.workgroups[0], step.workgroups[1], step.workgroups[2]);
        }
        plan.steps.len()
    }

    /// Writes a plan's parameters into the uniform block (ordered before any
    /// later submission).
    fn write_params(&self, ctx: &GpuContext, plan: &Plan<'_>) {
        if let Some(buf) = self.buffers.as_ref() {
            ctx.queue.write_buffer(&buf.uniform, 0, &plan.params.bytes);
        }
    }

    /// The dispatches and parameters for rows `p..t`; with `from = Some(l)`
    /// (and `p` 0), only from layer l's output projection on: the layers
    /// before it and layer l's attention are kept from the last run.
    pub(crate) fn plan<'a>(
        &self,
        buf: &'a Buffers,
        t: usize,
        p: usize,
        opts: RunOptions,
        from: Option<usize>,
    ) -> Result<Plan<'a>, GpuError> {
        let c = &self.config;
        let (d, n_inner, eps) = (c.n_embd, c.n_inner, c.layer_norm_epsilon);
        let (llama, q_dim, width) = (c.architecture.is_llama_family(), c.q_dim(), c.qkv_dim());
        let m = t - p;
        let mut params = ParamWriter { bytes: vec![0; buf.uniform_size()] };
        let mut steps = Vec::new();
        // Dispatches pushed so far, readable while `push` holds `steps`.
        let count = std::cell::Cell::new(0usize);
        let mut push = |kernel: Kernel, slot: &'a Slot, workgroups: [u32; 3]| -> Result<(), GpuError> {
            Kernels::check_workgroups_limit(buf.max_workgroups, workgroups)?;
            if !workgroups.contains(&0) {
                steps.push(Step { kernel, bind_group: &slot.bind_group, workgroups });
                count.set(count.get() + 1);
            }
            Ok(())
        };
        let mut after_attention = vec![None; buf.slots.layers.len()];
        // The plan rewrites the blocks the one block's matrices came from.
        if let Some(block) = &buf.block {
            // An intervention's re-run (`from`) keeps no row of the blocks it re-runs.
            let kept = if from.is_some() || opts.mask == Mask::Bidirectional { 0 } else { p };
            block.after_run(kept);
        }

        let embed_chunks = if from.is_some() { 0 } else { buf.slots.embed.len() };
        for (slot, chunk) in buf.slots.embed.iter().zip(&self.weights.wte).take(embed_chunks) {
            let e = EmbedParams {
                m: m as u32,
                d: d as u32,
                row0: p as u32,
                v0: chunk.v0 as u32,
                vn: chunk.rows as u32,
                positions: u32::from(!llama),
                half: match chunk.format {
                    None => 0,
                    Some(Half::F16) => 1,
                    Some(Half::Bf16) => 2,
                },
                _pad: 0,
            };
            params.put(slot, &e);
            push(if chunk.format.is_some() { Kernel::Embed16 } else { Kernel::Embed }, slot, e.workgroups())?;
        }
        let trace = opts.trace;
        let rows = |mp: MatmulParams| mp.rows_from(p, p);
        let first = from.unwrap_or(0);
        for (l, (layer, wb)) in buf.slots.layers.iter().zip(&self.weights.blocks).enumerate().skip(first) {
            // The first re-run layer's input is unchanged: its attention is kept.
            if from != Some(l) {
                let qkv = rows(MatmulParams::new(
                    (m, d, width),
                    MatmulFusion {
                        layernorm: Some(eps),
                        rms: llama,
                        w16: wb.qkv_w.format,
                        write_ln: trace,
                        bias: true,
                        ..Default::default()
                    },
                ));
                params.put(&layer.qkv, &qkv);
                push(qkv.kernel(), &layer.qkv, qkv.workgroups())?;
                if let Some(slot) = &layer.rope {
                    let rope = RopeParams::new(m, p, width, c.n_head + c.n_kv_head, c.d_head(), trace);
                    params.put(slot, &rope);
                    push(Kernel::Rope, slot, rope.workgroups())?;
                }

                if trace && !buf.layout.one_block {
                    let shape = AttentionShape {
                        m: t,
                        t,
                        n_head: c.n_head,
                        n_kv_head: c.n_kv_head,
                        d_head: c.d_head(),
                        row0: 0,
                        mask: opts.mask,
                    };
                    let slot = layer.rows.as_ref().ok_or_else(|| GpuError::OutOfRange("T×T buffers".into()))?;
                    // Every row's scores against the new keys, but whole rows only from p on.
                    params.put(slot, &shape.rows_params_keeping(buf.layout.cap, p)?);
                    push(Kernel::AttentionRows, slot, shape.rows_workgroups())?;
                } else {
                    let shape = AttentionShape {
                        m,
                        t,
                        n_head: c.n_head,
                        n_kv_head: c.n_kv_head,
                        d_head: c.d_head(),
                        row0: p,
                        mask: opts.mask,
                    };
                    params.put(&layer.flash, &shape.flash_params()?);
                    let (kernel, workgroups) = shape.flash_kernel_within(buf.loop_limit)?;
                    push(kernel, &layer.flash, workgroups)?;
                }
            }
            after_attention[l] = Some(count.get());

            let residual = MatmulFusion { bias: true, residual: true, write_pre: trace, ..Default::default() };
            let proj = rows(MatmulParams::new((m, q_dim, d), MatmulFusion { w16: wb.proj_w.format, ..residual }));
            params.put(&layer.proj, &proj);
            push(proj.kernel(), &layer.proj, proj.workgroups())?;

            // GPT-2: hidden = act(ln_2 · fc); Llama: hidden = silu(rms(ln_2) · gate) · (rms(ln_2) · up),
            // one gated matmul over the [d × 2·n_inner] gate|up weights.
            let fc = rows(MatmulParams::new(
                (m, d, n_inner),
                MatmulFusion {
                    layernorm: Some(eps),
                    rms: llama,
                    w16: wb.fc_w.format,
                    write_ln: trace,
                    bias: true,
                    activation: Some(c.activation_function),
                    gated: llama,
                    ..Default::default()
                },
            ));
            params.put(&layer.fc, &fc);
            push(fc.kernel(), &layer.fc, fc.workgroups())?;

            let mlp_proj =
                rows(MatmulParams::new((m, n_inner, d), MatmulFusion { w16: wb.mlp_proj_w.format, ..residual }));
            params.put(&layer.mlp_proj, &mlp_proj);
            push(mlp_proj.kernel(), &layer.mlp_proj, mlp_proj.workgroups())?;
        }

        // ln_f and the tied LM head, chunk by chunk over the vocabulary.
        let (logit_rows, xrow0, yrow0, slots) = match (opts.all_logits, trace) {
            (true, true) => (m, p, p, &buf.slots.logits_all_traced),
            (true, false) => (m, p, p, &buf.slots.logits_all),
            (false, true) => (1, t - 1, 0, &buf.slots.logits_last_traced),
            (false, false) => (1, t - 1, 0, &buf.slots.logits_last),
        };
        if trace {
            let ln = LayernormParams {
                rows: m as u32,
                d: d as u32,
                eps,
                row0: p as u32,
                rms: u32::from(llama),
                _pad: [0; 3],
            };
            params.put(&buf.slots.ln_f, &ln);
            push(Kernel::Layernorm, &buf.slots.ln_f, ln.workgroups())?;
        }
        let slots = slots.as_ref().ok_or_else(|| GpuError::OutOfRange("all-position logits buffer".into()))?;
        for (slot, chunk) in slots.iter().zip(self.weights.head()) {
            let fusion = MatmulFusion {
                layernorm: (!trace).then_some(eps),
                rms: llama,
                w16: chunk.format,
                transposed: true,
                ..Default::default()
            };
            let lm = MatmulParams::new((logit_rows, d, chunk.rows), fusion)
                .rows_from(xrow0, yrow0)
                .into_columns(chunk.v0, c.vocab_size);
            params.put(slot, &lm);
            push(lm.kernel(), slot, lm.workgroups())?;
        }
        Ok(Plan { steps, params, after_attention })
    }
}
