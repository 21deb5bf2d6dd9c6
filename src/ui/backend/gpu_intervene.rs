//! The GPU backend's ablation, patching, sweep and two-prompt diff, on its
//! resident run: `gpu::GpuForward::intervene` (shaders/replace_head.wgsl,
//! a re-run from the first replaced layer, in place, so every stage the page
//! draws is then the intervened run's), `begin_sweep_layers` (a layer's heads
//! a call, three numbers each read back), and a second prompt (a patch's
//! source, the diff's prompt B) run on a second `GpuForward` that shares the
//! resident weights. The CPU twins are in `backend::questions`; the kernels
//! are checked against them in tests/gpu_intervene.rs.

use std::cell::{Ref, RefCell};

use super::gpu::{busy, GpuBackend};
use super::questions::{self, InterventionOutcome, InterventionRequest, PromptDiff, RerunCost, SweepCell};
use super::BackendError;
use crate::engine::intervene::{Intervention, Replacement};
use crate::engine::{Mask, Matrix};
use crate::gpu::{GpuContext, GpuForward, GpuIntervened, MatrixRead, PendingRead, RunOptions};
use crate::model::Model;
use crate::ui::state::View;

/// A second prompt's run, kept while the same prompt is asked about again.
pub(super) struct SecondPrompt {
    ids: Vec<u32>,
    mask: Mask,
    traced: bool,
    fwd: GpuForward,
}

/// The second prompts the GPU backend keeps (each its own buffers), and the
/// intervention the resident run shows (put back after a sweep).
#[derive(Default)]
pub(super) struct Interventions {
    patch: RefCell<Option<SecondPrompt>>,
    prompt_b: RefCell<Option<SecondPrompt>>,
    shown: RefCell<Option<Vec<Intervention>>>,
}

impl Interventions {
    /// The buffers are about to hold a new (clean) run.
    pub fn forget_shown(&self) -> Result<(), BackendError> {
        *busy(self.shown.try_borrow_mut())? = None;
        Ok(())
    }
}

/// An intervention's outcome on its way back: the last position's logits
/// before and after, read in the order they were submitted.
pub(super) struct PendingOutcome {
    clean: PendingRead,
    after: PendingRead,
    cost: RerunCost,
}

impl PendingOutcome {
    pub async fn finish(
        self,
        ctx: &GpuContext,
        model: &Model,
        req: &InterventionRequest,
    ) -> Result<InterventionOutcome, BackendError> {
        let vocab = model.config.vocab_size;
        let mut clean = self.clean.finish(ctx).await?;
        let mut after = self.after.finish(ctx).await?;
        clean.truncate(vocab);
        after.truncate(vocab);
        questions::outcome(model, req, &clean, &after, self.cost)
    }
}

impl GpuBackend {
    /// `ids` run on a second forward (`slot`) sharing `fwd`'s weights; kept,
    /// so asking again about the same prompt runs nothing.
    fn second<'a>(
        &self,
        slot: &'a RefCell<Option<SecondPrompt>>,
        fwd: &GpuForward,
        ids: &[u32],
        mask: Mask,
        traced: bool,
    ) -> Result<Ref<'a, SecondPrompt>, BackendError> {
        let fresh = slot.borrow().as_ref().is_some_and(|s| s.ids == ids && s.mask == mask && s.traced >= traced);
        if !fresh {
            let mut second = match busy(slot.try_borrow_mut())?.take() {
                Some(s) => s.fwd,
                None => GpuForward::with_weights(&self.ctx, fwd.config(), fwd.weights().clone())?,
            };
            let opts = if traced { RunOptions::traced(mask) } else { RunOptions::fast(mask) };
            second.set_matrix_budget(self.matrix_budget());
            second.run(&self.ctx, ids, opts)?;
            *busy(slot.try_borrow_mut())? = Some(SecondPrompt { ids: ids.to_vec(), mask, traced, fwd: second });
        }
        Ref::filter_map(busy(slot.try_borrow())?, Option::as_ref).map_err(|_| BackendError::NotReady("a second prompt"))
    }

    /// The patch source's run for `req` (patching only), checked to have as
    /// many tokens as `fwd`'s run and run with its mask.
    fn patch_source(
        &self,
        model: &Model,
        req: &InterventionRequest,
        fwd: &GpuForward,
    ) -> Result<Option<Ref<'_, SecondPrompt>>, BackendError> {
        let mask = fwd.mask().ok_or(BackendError::NotReady("nothing has run yet"))?;
        match questions::patch_source(model, req, fwd.tokens())? {
            Some(tokens) => {
                let ids: Vec<u32> = tokens.iter().map(|t| t.id).collect();
                Ok(Some(self.second(&self.interventions.patch, fwd, &ids, mask, false)?))
            }
            None => Ok(None),
        }
    }

    /// Replaces `req`'s heads in the resident run and re-runs it from the
    /// first of their layers; with `show`, the buffers (so every map and
    /// read) keep that run until the next run or [`Self::clear_intervention`],
    /// otherwise the clean run is put back at once. The outcome's numbers
    /// arrive with the returned reads.
    pub fn apply(&self, model: &Model, req: &InterventionRequest, show: bool) -> Result<PendingOutcome, BackendError> {
        *busy(self.interventions.shown.try_borrow_mut())? = None;
        let ivs = questions::interventions(model, req)?;
        let mut fwd = busy(self.fwd.try_borrow_mut())?;
        fwd.restore_clean(&self.ctx)?;
        self.changed();
        if fwd.tokens() == 0 || fwd.mask().is_none() || self.shown() == 0 {
            return Err(BackendError::NotReady("nothing has run yet"));
        }
        let source = self.patch_source(model, req, &fwd)?;
        let clean = fwd.begin_read_last_logits(&self.ctx)?;
        let done: GpuIntervened = fwd.intervene(&self.ctx, &ivs, source.as_deref().map(|s| &s.fwd))?;
        let after = fwd.begin_read_last_logits(&self.ctx)?;
        if show {
            *busy(self.interventions.shown.try_borrow_mut())? = Some(ivs);
        } else {
            fwd.restore_clean(&self.ctx)?;
        }
        self.check_fault()?;
        let cost = RerunCost { first_layer: done.first_layer, flops: done.flops, full_flops: done.full_flops };
        Ok(PendingOutcome { clean, after, cost })
    }

    /// Puts the clean run back in the buffers.
    pub fn clear_intervention(&self) -> Result<(), BackendError> {
        *busy(self.interventions.shown.try_borrow_mut())? = None;
        if busy(self.fwd.try_borrow_mut())?.restore_clean(&self.ctx)? > 0 {
            self.changed();
        }
        Ok(())
    }

    /// The clean run's most likely next token (the sweep's default), read
    /// with the shown intervention set aside for the read.
    pub async fn clean_top_next(&self) -> Result<u32, BackendError> {
        let read = {
            let mut fwd = busy(self.fwd.try_borrow_mut())?;
            fwd.restore_clean(&self.ctx)?;
            let read = fwd.begin_read_top_k(&self.ctx, 1, 1.0)?;
            self.show_again(&mut fwd)?;
            read
        };
        let top = read.finish(&self.ctx).await?;
        top.tokens.first().map(|&(id, _)| id).ok_or(BackendError::NotReady("an empty vocabulary"))
    }

    /// Re-applies the shown intervention after something put the clean run back (a sweep).
    fn show_again(&self, fwd: &mut GpuForward) -> Result<(), BackendError> {
        let shown = busy(self.interventions.shown.try_borrow())?;
        if let Some(ivs) = shown.as_deref() {
            let patch = busy(self.interventions.patch.try_borrow())?;
            fwd.intervene(&self.ctx, ivs, patch.as_ref().map(|s| &s.fwd))?;
        }
        self.changed();
        Ok(())
    }

    /// Every head of `layer` replaced by `mode` in turn (on the clean run):
    /// `token`'s Δlogit and probability after each.
    pub async fn sweep_layer(
        &self,
        model: &Model,
        layer: usize,
        mode: Replacement,
        source: Option<&str>,
        token: u32,
    ) -> Result<Vec<SweepCell>, BackendError> {
        let read = {
            let mut fwd = busy(self.fwd.try_borrow_mut())?;
            if fwd.tokens() == 0 || fwd.mask().is_none() {
                return Err(BackendError::NotReady("nothing has run yet"));
            }
            let req = InterventionRequest {
                heads: vec![(layer, 0)],
                mode,
                source: source.map(str::to_owned),
                token: Some(token),
            };
            questions::interventions(model, &req)?;
            let src = self.patch_source(model, &req, &fwd)?;
            let read =
                fwd.begin_sweep_layers(&self.ctx, mode, token, src.as_deref().map(|s| &s.fwd), layer..layer + 1)?;
            drop(src);
            self.show_again(&mut fwd)?;
            read
        };
        let sweep = read.finish(&self.ctx).await?;
        let (Some(delta), Some(prob)) = (sweep.delta_logit.first(), sweep.prob.first()) else {
            return Err(BackendError::NotReady("an empty sweep"));
        };
        Ok(delta.iter().zip(prob).map(|(&delta_logit, &prob)| SweepCell { delta_logit, prob }).collect())
    }

    /// The run on screen (A) against prompt `b` at `view`: both stages read
    /// from their own buffers, both last positions' logits. B is run with
    /// the heads A is shown with replaced, in place on its own forward.
    pub async fn diff(&self, model: &Model, b: &str, view: View) -> Result<PromptDiff, BackendError> {
        let tokens = model.tokenizer.encode(b).map_err(|e| BackendError::Input(e.to_string()))?;
        if tokens.is_empty() {
            return Err(BackendError::Input("type a second prompt to compare with".into()));
        }
        let b_ids: Vec<u32> = tokens.iter().map(|t| t.id).collect();
        let (a_ids, reads) = {
            let fwd = busy(self.fwd.try_borrow())?;
            let mask = fwd.mask().filter(|_| fwd.tokens() > 0).ok_or(BackendError::NotReady("nothing has run yet"))?;
            drop(self.second(&self.interventions.prompt_b, &fwd, &b_ids, mask, true)?);
            {
                // B with the heads A is shown with replaced (or clean).
                let mut slot = busy(self.interventions.prompt_b.try_borrow_mut())?;
                let b = slot.as_mut().ok_or(BackendError::NotReady("a second prompt"))?;
                match busy(self.interventions.shown.try_borrow())?.as_deref() {
                    Some(ivs) => {
                        let patch = busy(self.interventions.patch.try_borrow())?;
                        b.fwd
                            .intervene(&self.ctx, ivs, patch.as_ref().map(|s| &s.fwd))
                            .map_err(|e| BackendError::Input(format!("prompt B with the same heads replaced: {e}")))?;
                    }
                    None => {
                        b.fwd.restore_clean(&self.ctx)?;
                    }
                }
            }
            let second = busy(self.interventions.prompt_b.try_borrow())?;
            let second = second.as_ref().ok_or(BackendError::NotReady("a second prompt"))?;
            let stage = |f: &GpuForward| -> Result<MatrixRead, BackendError> {
                Ok(self.view_matrix(f, view)?.begin_read(&self.ctx)?)
            };
            let stages =
                if second.fwd.tokens() == fwd.tokens() { Some((stage(&fwd)?, stage(&second.fwd)?)) } else { None };
            let logits = (fwd.begin_read_last_logits(&self.ctx)?, second.fwd.begin_read_last_logits(&self.ctx)?);
            (fwd.ids().to_vec(), (stages, logits))
        };
        let (stages, (pa, pb)) = reads;
        let matrix = async |read: MatrixRead| -> Result<Matrix, BackendError> {
            let (rows, cols) = (read.rows, read.cols);
            Ok(Matrix::from_vec(rows, cols, read.finish(&self.ctx).await?))
        };
        let stages = match stages {
            Some((a, b)) => Some((matrix(a).await?, matrix(b).await?)),
            None => None,
        };
        let vocab = model.config.vocab_size;
        let (mut pa, mut pb) = (pa.finish(&self.ctx).await?, pb.finish(&self.ctx).await?);
        pa.truncate(vocab);
        pb.truncate(vocab);
        let texts = |ids: &[u32]| ids.iter().map(|&id| model.tokenizer.decode(&[id])).collect();
        Ok(questions::diff_of(model, stages, texts(&a_ids), texts(&b_ids), &pa, &pb))
    }
}
