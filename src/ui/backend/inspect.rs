//! The backend's answers to "which heads matter here?" (issue 16), asked the
//! same way of either engine: the CPU backend answers from its trace; the GPU
//! backend from `gpu_interim` (the one place its kernels will go).

use super::questions::{self, FinderQuery, InterventionOutcome, InterventionRequest, PromptDiff, SweepCell};
use super::{Backend, BackendError};
use crate::engine::intervene::Replacement;
use crate::engine::lens::{DirectContributions, LensPoint};
use crate::ui::state::View;

impl Backend {
    /// Every head's score for the finder's template, layer by layer
    /// (`layer · n_head + head`; `None` where the template is undefined).
    pub async fn head_scores(self, query: FinderQuery) -> Result<Vec<Option<f64>>, BackendError> {
        let host = self.ready()?;
        let model = &host.model;
        self.ask(async |g| g.head_scores(model, &query).await, |c| Ok(questions::head_scores(&*c.trace()?, &query)))
            .await
    }

    /// The logit lens after the embeddings and each sublayer, `k` tokens per position.
    pub async fn logit_lens(self, k: usize) -> Result<Vec<LensPoint>, BackendError> {
        let host = self.ready()?;
        let model = &host.model;
        self.ask(async |g| g.logit_lens(model, k).await, |c| questions::logit_lens(model, &*c.trace()?, k)).await
    }

    /// Each term's direct contribution to `token`'s logit after the last position.
    pub async fn contributions(self, token: u32) -> Result<DirectContributions, BackendError> {
        let host = self.ready()?;
        let model = &host.model;
        self.ask(
            async |g| g.contributions(model, token).await,
            |c| questions::contributions(model, &*c.trace()?, token),
        )
        .await
    }

    /// The run with the request's heads ablated or patched.
    pub async fn intervene(self, req: InterventionRequest) -> Result<InterventionOutcome, BackendError> {
        let host = self.ready()?;
        let model = &host.model;
        self.ask(async |g| g.intervene(model, &req).await, |c| questions::intervene(model, &*c.trace()?, &req)).await
    }

    /// One head of a sweep: `head` alone replaced by `mode`, `token`'s Δlogit.
    pub async fn sweep_head(
        self,
        head: (usize, usize),
        mode: Replacement,
        source: Option<String>,
        token: u32,
    ) -> Result<SweepCell, BackendError> {
        let host = self.ready()?;
        let model = &host.model;
        let source = source.as_deref();
        self.ask(
            async |g| g.sweep_head(model, head, mode, source, token).await,
            |c| questions::sweep_head(model, &*c.trace()?, head, mode, source, token),
        )
        .await
    }

    /// The page's prompt (A) against prompt `b`: the view's stage on each and the next-token change.
    pub async fn diff(self, b: String, view: View) -> Result<PromptDiff, BackendError> {
        let host = self.ready()?;
        let model = &host.model;
        self.ask(async |g| g.diff(model, &b, view).await, |c| questions::diff(model, &*c.trace()?, &b, view)).await
    }

    /// The run's most likely next token (what the lens and the ablation follow by default).
    pub async fn top_next(self) -> Result<u32, BackendError> {
        let logits = self.last_logits().await?;
        Ok(crate::engine::residual::top_indices(&logits, 1).first().map_or(0, |&(id, _)| id as u32))
    }
}
