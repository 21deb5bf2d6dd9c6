//! One block's T×T matrices at a time: a traced run whose every block's raw
//! scores, masked scores and weights would outgrow the budget
//! ([`super::layout::matrix_caps`]) runs flash attention and keeps Q, K and
//! V; a block's three matrices are then computed from them, into the one
//! set of buffers the layout has ([`super::layout::BlockMatrices`]), when
//! something reads them. SmolLM2-135M at 2,048 tokens: one block's take
//! 453 MB where every block's would take 13.6 GB.
//!
//! The matrices come from attention_rows.wgsl, as a layout with every
//! block's computes them, over the Q and K the run wrote; its head outputs
//! go to a buffer of their own, so the forward's (flash attention's, which
//! the rest of the run read) stay as they were. A run that keeps the first
//! rows of the last (a keystroke) leaves the block held before it good for
//! those rows ([`BlockMatrices::after_run`](super::layout::BlockMatrices::after_run)):
//! computed again, it gets only the kept rows' scores against the new keys
//! and the new rows, as the layout with every block's does per keystroke.

use super::kernels::{AttentionShape, Kernel};
use super::{GpuContext, GpuError, GpuForward};

impl GpuForward {
    /// Whether the last layout keeps one block's T×T matrices at a time.
    pub fn one_block(&self) -> bool {
        self.buffers().is_some_and(|b| b.block.is_some())
    }

    /// Makes `layer`'s T×T matrices readable ([`GpuForward::buffer`]): with
    /// one block's at a time, computes them unless they are there already
    /// (submitted now, so ordered before any later read or draw); with
    /// every block's, nothing to do.
    pub fn ensure_block(&self, ctx: &GpuContext, layer: usize) -> Result<(), GpuError> {
        let Some(block) = self.buffers().and_then(|b| b.block.as_ref()) else { return Ok(()) };
        if block.holds.get() == Some(layer) {
            return Ok(());
        }
        let mut enc = ctx.device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("one block") });
        self.encode_block(ctx, &mut enc, layer)?;
        ctx.queue.submit([enc.finish()]);
        Ok(())
    }

    /// Encodes the computation of `layer`'s T×T matrices into `enc` (with
    /// one block's at a time; nothing otherwise) and records that the
    /// buffers hold them: what `enc` encodes next may read them. A caller
    /// that drops `enc` unsubmitted must call [`GpuForward::forget_block`].
    pub fn encode_block(&self, ctx: &GpuContext, enc: &mut wgpu::CommandEncoder, layer: usize) -> Result<(), GpuError> {
        let Some(b) = self.buffers() else { return Err(GpuError::OutOfRange("T×T matrices before any run".into())) };
        let Some(block) = &b.block else { return Ok(()) };
        let (Some(mask), true) = (self.mask(), self.traced()) else {
            return Err(GpuError::OutOfRange("T×T matrices: the last run did not keep the trace".into()));
        };
        let c = self.config();
        let lb = b.layers.get(layer).ok_or_else(|| {
            GpuError::OutOfRange(format!("the T×T matrices of layer {layer} (the model has {})", c.n_layer))
        })?;
        let t = self.tokens();
        let shape =
            AttentionShape { m: t, t, n_head: c.n_head, n_kv_head: c.n_kv_head, d_head: c.d_head(), row0: 0, mask };
        // The same block after a run that kept its first rows: those rows get only their
        // scores against the new keys, the rest whole (attention_rows.wgsl's `kept`).
        let kept = block.reusable.get().filter(|&(l, _)| l == layer).map_or(0, |(_, rows)| rows.min(t));
        let params = shape.rows_params_keeping(b.layout.cap, kept)?;
        block.holds.set(None);
        block.reusable.set(None);
        self.kernels().dispatch(
            ctx,
            enc,
            Kernel::AttentionRows,
            &params,
            &[&lb.qkv, &block.raw, &block.masked, &block.weights, &block.head_out],
            shape.rows_workgroups(),
        )?;
        block.holds.set(Some(layer));
        block.reused_rows.set(kept);
        Ok(())
    }

    /// How many rows the last computation of a block's matrices reused from
    /// the run before (0: all computed; `None` without one block's layout).
    pub fn block_reused_rows(&self) -> Option<usize> {
        self.buffers().and_then(|b| b.block.as_ref()).map(|b| b.reused_rows.get())
    }

    /// Forgets which block's matrices the buffers hold (an encoder dropped
    /// unsubmitted): the next read computes them again, whole.
    pub fn forget_block(&self) {
        if let Some(block) = self.buffers().and_then(|b| b.block.as_ref()) {
            block.holds.set(None);
            block.reusable.set(None);
        }
    }
}
