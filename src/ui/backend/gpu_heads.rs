//! The GPU backend's answers to "which heads matter" that read the resident
//! run: the head finder's scores (`shaders/head_scores.wgsl`), the logit lens
//! (the forward's final norm + LM head and `top_k.wgsl` at every residual
//! point) and direct contributions, each read back as a few numbers per head
//! or position. Equal to the CPU engine's within 1e-4 (tests/gpu_head_finder.rs,
//! tests/gpu_lens.rs, tests/wasm_gpu_heads.rs).

use std::ops::Range;

use super::gpu::GpuBackend;
use super::questions::{FinderQuery, Scoring};
use super::BackendError;
use crate::engine::lens::{DirectContributions, LensPoint};
use crate::model::Model;

impl GpuBackend {
    /// Every head's score, layer by layer (`layer · n_head + head`).
    pub async fn head_scores(&self, model: &Model, query: &FinderQuery) -> Result<Vec<Option<f64>>, BackendError> {
        let heads = model.config.n_layer * model.config.n_head;
        match query.scoring() {
            Scoring::Nothing => Ok(vec![None; heads]),
            Scoring::Painted(pattern) => {
                let read = self.forward()?.begin_painted_scores(&self.ctx, &pattern)?;
                Ok(read.finish(&self.ctx).await?.into_iter().map(Some).collect())
            }
            Scoring::Template(t) => {
                let read = self.forward()?.begin_template_scores(&self.ctx, query.token_x)?;
                Ok(read.finish(&self.ctx).await?.iter().map(|s| t.pick(s)).collect())
            }
        }
    }

    /// The logit lens, `k` tokens per position at `positions`.
    pub async fn logit_lens(
        &self,
        model: &Model,
        k: usize,
        positions: Range<usize>,
    ) -> Result<Vec<LensPoint>, BackendError> {
        let read = self.forward()?.begin_logit_lens(&self.ctx, k, positions)?;
        let name = |id: u32| model.tokenizer.decode(&[id]);
        Ok(read.finish(&self.ctx, &name).await?)
    }

    /// Each head's and MLP's direct contribution to `token`'s logit after the last position.
    pub async fn contributions(&self, model: &Model, token: u32) -> Result<DirectContributions, BackendError> {
        let read = {
            let fwd = self.forward()?;
            let last = fwd.tokens().checked_sub(1).ok_or(BackendError::NotReady("nothing has run yet"))?;
            fwd.begin_direct_contributions(&self.ctx, &model.weights, last, token)?
        };
        Ok(read.finish(&self.ctx).await?)
    }
}
