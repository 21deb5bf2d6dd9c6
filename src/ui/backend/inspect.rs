//! The backend's answers to "which heads matter here?" (issue 16), asked the
//! same way of either engine: the CPU backend answers from its trace
//! (`questions`); the GPU backend with its kernels (`gpu_heads`,
//! `gpu_intervene`). An ablation or patch the page chooses is applied to the
//! run on screen, so every panel shows the intervened run.

use std::rc::Rc;

use leptos::prelude::*;

use super::questions::{self, FinderQuery, InterventionRequest, PromptDiff, SweepCell};
use super::{Backend, BackendError, Engine, GpuBackend, Host};
use crate::engine::intervene::{self, Replacement};
use crate::engine::lens::{DirectContributions, LensPoint};
use crate::engine::residual::residual_points;
use crate::pace::go_on;
use crate::ui::state::{PageState, View};
use crate::ui::web::dom::{yield_to_browser, Pacer};

/// Multiply-adds a lens on the CPU may take (about two seconds of this
/// machine's wasm, in slices): 4 positions of SmolLM2, 8 of GPT-2 small, 24
/// of the default model.
const LENS_BUDGET_MACS: u64 = 1 << 33;

impl Backend {
    /// Every head's score for the finder's template, layer by layer
    /// (`layer · n_head + head`; `None` where the template is undefined).
    pub async fn head_scores(self, query: FinderQuery) -> Result<Vec<Option<f64>>, BackendError> {
        let host = self.ready()?;
        let model = &host.model;
        let engine = host.engine();
        let Engine::Cpu(cpu) = &*engine else {
            return self.ask(async |g| g.head_scores(model, &query).await, |_| Err(BackendError::Superseded)).await;
        };
        // A head at a time, in slices, from a task of its own (the one that asked may be full).
        let trace = cpu.trace()?;
        yield_to_browser().await;
        let mut pacer = Pacer::new();
        let pause = async || {
            pacer.pause().await;
            std::ops::ControlFlow::Continue(())
        };
        let scores = questions::head_scores_paced(&trace, &query, pause).await;
        host.unless_replaced(&engine, scores)
    }

    /// How many of the last positions the lens should read of the `wanted`:
    /// all of them, except on the CPU where a lens of that many would pass
    /// [`LENS_BUDGET_MACS`] (on SmolLM2, 61 points × 49,152 × 576 per position).
    pub fn lens_positions(self, wanted: usize) -> usize {
        let Some(host) = self.host() else { return wanted };
        if matches!(&*host.engine(), Engine::Gpu(_)) {
            return wanted;
        }
        let c = &host.model.config;
        let per_position = (residual_points(c.n_layer) * c.vocab_size) as u64 * c.n_embd as u64;
        let affordable = usize::try_from(LENS_BUDGET_MACS / per_position.max(1)).unwrap_or(usize::MAX);
        wanted.min(affordable).max(1)
    }

    /// The logit lens after the embeddings and each sublayer, `k` tokens per
    /// position at the last `last` positions. A large model on the CPU reads
    /// it a point at a time, giving the thread back between pieces of the LM
    /// head, calling `progress(points done, points)` before each point, and
    /// stops (superseded) once `wanted()` turns false.
    pub async fn logit_lens(
        self,
        k: usize,
        last: usize,
        wanted: impl Fn() -> bool,
        progress: impl Fn(usize, usize),
    ) -> Result<Vec<LensPoint>, BackendError> {
        let host = self.ready()?;
        let model = &host.model;
        let t = host.shown();
        let positions = t.saturating_sub(last)..t;
        let engine = host.engine();
        let lens = match &*engine {
            Engine::Cpu(c) if super::runs_in_steps(&model.config, t) => {
                let trace = c.trace()?;
                let points = residual_points(model.config.n_layer);
                // Slices from a task of their own: the one that asked (a run's panels) may be full.
                yield_to_browser().await;
                let mut pacer = Pacer::new();
                let mut lens = Vec::with_capacity(points);
                for point in 0..points {
                    progress(point, points);
                    let pause = async || pacer.pause_while(&wanted).await;
                    lens.push(questions::lens_point(model, &trace, point, positions.clone(), k, pause).await?);
                }
                progress(points, points);
                // The table (a cell per point and position) is built in a
                // task of its own, not after the last slice of the head.
                yield_to_browser().await;
                Ok(lens)
            }
            _ => {
                let read = async |g: &GpuBackend| g.logit_lens(model, k, positions.clone()).await;
                return self.ask(read, |c| questions::logit_lens(model, &*c.trace()?, k, positions.clone())).await;
            }
        };
        host.unless_replaced(&engine, lens)
    }

    /// Each term's direct contribution to `token`'s logit after the last position.
    pub async fn contributions(self, token: u32) -> Result<DirectContributions, BackendError> {
        let host = self.ready()?;
        let model = &host.model;
        if matches!(&*host.engine(), Engine::Cpu(_)) && super::runs_in_steps(&model.config, host.shown()) {
            // A large model's table of every head is built in a task of its own, not after
            // the lens's first slice or the run's panels.
            yield_to_browser().await;
        }
        self.ask(
            async |g| g.contributions(model, token).await,
            |c| questions::contributions(model, &*c.trace()?, token),
        )
        .await
    }

    /// Applies the page's ablation or patch (its heads, mode, second prompt
    /// and followed token) to the run just made, or shows the clean run when
    /// no head is chosen. With "show in every panel" on, the engine keeps the
    /// intervened run on screen (the maps, reads and next tokens are its);
    /// either way its outcome goes to `outputs.intervention` (on the GPU once
    /// the two logit rows are read back).
    pub(super) fn apply_intervention(self, state: PageState, host: &Rc<Host>) {
        let h = state.selection.heads;
        let outputs = state.outputs;
        let tag = self.applied.get_value() + 1;
        self.applied.set_value(tag);
        let heads = h.ablated.get_untracked();
        let engine = host.engine();
        if heads.is_empty() || host.shown() == 0 {
            let cleared = match &*engine {
                Engine::Gpu(g) => g.clear_intervention(),
                Engine::Cpu(c) => {
                    c.clear_intervention();
                    Ok(())
                }
            };
            let value = cleared.err().map(|e| Err(e.to_string()));
            if outputs.intervention.with_untracked(|v| *v != value) {
                outputs.intervention.set(value);
            }
            return;
        }
        let req = InterventionRequest {
            heads,
            mode: h.mode.get_untracked(),
            source: Some(h.source.get_untracked()).filter(|s| !s.is_empty()),
            token: h.chosen.get_untracked(),
        };
        let show = h.show.get_untracked();
        match &*engine {
            Engine::Cpu(_) if super::runs_in_steps(&host.model.config, host.shown()) => {
                // A large model: a layer at a time, the thread given back between
                // slices; every panel reads the run again once it is shown.
                let (host, engine) = (host.clone(), engine.clone());
                self.applying.set_value(Some(tag));
                leptos::task::spawn_local(async move {
                    let Engine::Cpu(c) = &*engine else { return };
                    let mut pacer = Pacer::new();
                    let current = || self.applied.try_get_value() == Some(tag);
                    let pause = async || pacer.pause_while(current).await;
                    let applied = c.apply_paced(&host.model, &req, show, pause, current).await;
                    if self.applying.try_get_value() == Some(Some(tag)) {
                        self.applying.try_set_value(None);
                    }
                    match applied {
                        Ok(None) => {}
                        Ok(Some(outcome)) => {
                            outputs.intervention.set(Some(Ok(outcome)));
                            outputs.runs.update(|r| *r += 1);
                        }
                        Err(e) if current() => outputs.intervention.set(Some(Err(e.to_string()))),
                        Err(_) => {}
                    }
                });
            }
            Engine::Cpu(c) => {
                outputs.intervention.set(Some(c.apply(&host.model, &req, show).map_err(|e| e.to_string())));
            }
            Engine::Gpu(g) => match g.apply(&host.model, &req, show) {
                Ok(pending) => {
                    let (host, engine) = (host.clone(), engine.clone());
                    leptos::task::spawn_local(async move {
                        let Engine::Gpu(g) = &*engine else { return };
                        let outcome = pending.finish(&g.ctx, &host.model, &req).await;
                        if self.applied.try_get_value() == Some(tag) {
                            outputs.intervention.set(Some(outcome.map_err(|e| e.to_string())));
                        }
                    });
                }
                Err(e) => outputs.intervention.set(Some(Err(e.to_string()))),
            },
        }
    }

    /// The page's ablation changed: applied to the run on screen, and every
    /// panel reads the run again. A run in steps under way applies it when it ends.
    pub fn reapply(self, state: PageState) {
        let Some(host) = self.host() else { return };
        if self.stepping.get_value().is_some() {
            return;
        }
        self.apply_intervention(state, &host);
        state.outputs.runs.update(|r| *r += 1);
    }

    /// One step of a sweep, on the clean run: `mode` replaces each head of
    /// `layer` from `head` on, alone, and `token`'s Δlogit and probability
    /// are measured. The GPU does the layer's remaining heads at once, the
    /// CPU one head a call (so the page can yield between them).
    pub async fn sweep_step(
        self,
        (layer, head): (usize, usize),
        mode: Replacement,
        source: Option<String>,
        token: u32,
    ) -> Result<Vec<SweepCell>, BackendError> {
        let host = self.ready()?;
        let model = &host.model;
        let source = source.as_deref();
        let engine = host.engine();
        match &*engine {
            Engine::Cpu(c) if super::runs_in_steps(&model.config, host.shown()) => {
                // A large model: a layer at a time, stopped if a new run replaces the clean one.
                let clean = c.clean()?;
                let same = || c.clean().is_ok_and(|now| Rc::ptr_eq(&now, &clean));
                let mut pacer = Pacer::new();
                let pause = async || pacer.pause_while(same).await;
                let cell = questions::sweep_head_paced(model, &clean, (layer, head), mode, source, token, pause).await;
                return host.unless_replaced(&engine, cell.map(|c| vec![c]));
            }
            _ => {}
        }
        self.ask(
            async |g| {
                let cells = g.sweep_layer(model, layer, mode, source, token).await?;
                Ok(cells.into_iter().skip(head).collect())
            },
            |c| {
                let clean = c.clean()?;
                let at_once = questions::sweep_head_paced(model, &clean, (layer, head), mode, source, token, go_on);
                Ok(vec![crate::pace::at_once(at_once)?])
            },
        )
        .await
    }

    /// The clean run's most likely next token (what a sweep follows by default).
    pub async fn clean_top_next(self) -> Result<u32, BackendError> {
        self.ask(async |g| g.clean_top_next().await, |c| Ok(intervene::top_next_token(&*c.clean()?))).await
    }

    /// The page's prompt (A) against prompt `b` (with the heads the page shows replaced, replaced in B too): the view's stage on each and the next-token change.
    pub async fn diff(self, b: String, view: View) -> Result<PromptDiff, BackendError> {
        let host = self.ready()?;
        let model = &host.model;
        self.ask(
            async |g| g.diff(model, &b, view).await,
            |c| questions::diff(model, &*c.trace()?, &b, view, c.shown_request().as_ref()),
        )
        .await
    }

    /// The run's most likely next token (what the lens and the ablation follow by default).
    pub async fn top_next(self) -> Result<u32, BackendError> {
        let logits = self.last_logits().await?;
        Ok(crate::engine::residual::top_indices(&logits, 1).first().map_or(0, |&(id, _)| id as u32))
    }
}
