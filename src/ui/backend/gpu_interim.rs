//! THE ONE PLACE TO SWAP: the GPU backend's answers to "which heads matter"
//! (head finder, logit lens, direct contributions, ablation and patching,
//! sweep, two-prompt diff), computed for now by the CPU engine from `host.model` on the GPU
//! run's own tokens and mask — the same numbers the CPU backend gives, not an
//! estimate — until `gpu::GpuForward` has kernels for them. Each method here
//! is the GPU backend's implementation of one `Backend` question; replace its
//! body by the kernel's and drop [`InterimTrace`] once none reads it.

use std::cell::RefCell;
use std::rc::Rc;

use super::gpu::GpuBackend;
use super::questions::{self, InterventionOutcome, InterventionRequest, PromptDiff, SweepCell};
use super::BackendError;
use crate::engine::intervene::Replacement;
use crate::engine::{forward_cpu, Mask, Trace};
use crate::model::{Model, Token};
use crate::ui::state::View;

/// The GPU run's tokens and mask, and a CPU trace of them made on first ask.
#[derive(Default)]
pub(super) struct InterimTrace {
    ran: RefCell<Option<(Vec<u32>, Mask)>>,
    trace: RefCell<Option<Rc<Trace>>>,
}

impl InterimTrace {
    /// The GPU ran `ids` with `mask`: a trace of an earlier run is stale.
    pub fn ran(&self, ids: &[u32], mask: Mask) {
        let same = self.ran.borrow().as_ref().is_some_and(|(r, m)| r == ids && *m == mask);
        if !same {
            *self.ran.borrow_mut() = (!ids.is_empty()).then(|| (ids.to_vec(), mask));
            *self.trace.borrow_mut() = None;
        }
    }

    /// The CPU engine's trace of the last GPU run (computed once per run).
    fn trace(&self, model: &Model) -> Result<Rc<Trace>, BackendError> {
        if let Some(trace) = self.trace.borrow().as_ref() {
            return Ok(trace.clone());
        }
        let (ids, mask) = self.ran.borrow().clone().ok_or(BackendError::NotReady("nothing has run yet"))?;
        let tokens =
            ids.iter().map(|&id| Token { id, text: model.tokenizer.decode(&[id]), start: 0, end: 0 }).collect();
        let trace = Rc::new(forward_cpu(&model.config, &model.weights, tokens, mask)?);
        *self.trace.borrow_mut() = Some(trace.clone());
        Ok(trace)
    }
}

impl GpuBackend {
    pub async fn intervene(
        &self,
        model: &Model,
        req: &InterventionRequest,
    ) -> Result<InterventionOutcome, BackendError> {
        questions::intervene(model, &*self.interim.trace(model)?, req)
    }

    pub async fn sweep_head(
        &self,
        model: &Model,
        head: (usize, usize),
        mode: Replacement,
        source: Option<&str>,
        token: u32,
    ) -> Result<SweepCell, BackendError> {
        questions::sweep_head(model, &*self.interim.trace(model)?, head, mode, source, token)
    }

    pub async fn diff(&self, model: &Model, b: &str, view: View) -> Result<PromptDiff, BackendError> {
        questions::diff(model, &*self.interim.trace(model)?, b, view)
    }
}
