//! A forward pass of its own for timing (the cost panel): on the GPU a second
//! `GpuForward` sharing the page's resident weights with activation buffers
//! of its own, on the CPU a plain reference run. The page's last run, its
//! buffers and its KV cache are left as they were.

use std::cell::RefCell;
use std::ops::ControlFlow;
use std::rc::Rc;

use super::{BackendError, Engine, Host};
use crate::engine::Mask;
use crate::gpu::{GpuForward, RunOptions};
use crate::model::Token;
use crate::ui::web::dom::{now_ms, Pacer};

pub struct ForwardTimer {
    host: Rc<Host>,
    engine: Rc<Engine>,
    /// The timing run's own forward pass on the GPU (None on the CPU).
    gpu: Option<RefCell<GpuForward>>,
}

impl ForwardTimer {
    pub(super) fn new(host: Rc<Host>, engine: &Rc<Engine>) -> Result<Self, BackendError> {
        let gpu = match &**engine {
            Engine::Gpu(gpu) => {
                let weights = gpu.forward()?.weights().clone();
                Some(RefCell::new(GpuForward::with_weights(&gpu.ctx, &host.model.config, weights)?))
            }
            Engine::Cpu(_) => None,
        };
        Ok(Self { host, engine: engine.clone(), gpu })
    }

    /// Runs the whole forward pass on `tokens` with every stage kept, and
    /// reads its last logits back (on the GPU, the wait for the work to
    /// end); the time it took, in ms. A large model on the CPU runs a block
    /// at a time, giving the thread back between slices: its time is what
    /// the steps held the thread.
    pub async fn run(&self, tokens: &[Token], mask: Mask) -> Result<f64, BackendError> {
        let started = now_ms();
        match (&*self.engine, &self.gpu) {
            (Engine::Gpu(gpu), Some(fwd)) => {
                let ids: Vec<u32> = tokens.iter().map(|t| t.id).collect();
                let read = {
                    let mut fwd = fwd.try_borrow_mut().map_err(|_| BackendError::Busy)?;
                    // A timing run never reuses the previous one's rows.
                    fwd.clear_cache();
                    fwd.run(&gpu.ctx, &ids, RunOptions::traced(mask))?;
                    fwd.begin_read_last_logits(&gpu.ctx)?
                };
                read.finish(&gpu.ctx).await?;
                match gpu.ctx.fault() {
                    Some(fault) => Err(BackendError::DeviceLost(fault)),
                    None => Ok(now_ms() - started),
                }
            }
            _ => {
                let config = &self.host.model.config;
                if !super::runs_in_steps(config, tokens.len()) {
                    super::cpu_run(&self.host.model, None, tokens.to_vec(), mask)?.finish();
                    return Ok(now_ms() - started);
                }
                // The time between pauses is the steps'.
                let (mut busy, mut resumed, mut pacer) = (0.0, started, Pacer::new());
                let mut pause = async || {
                    busy += now_ms() - resumed;
                    pacer.pause().await;
                    resumed = now_ms();
                    ControlFlow::Continue(())
                };
                super::run_paced(&self.host.model, None, tokens.to_vec(), mask, &mut pause).await?;
                Ok(busy + now_ms() - resumed)
            }
        }
    }
}
