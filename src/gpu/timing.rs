//! GPU time per dispatch, from timestamp queries: for benchmarks only (the
//! page never asks for the feature). Each dispatch of a plan runs in a
//! compute pass of its own, between a timestamp at its start and one at its
//! end, so one kernel's time is not smeared over its neighbours'; the passes'
//! own cost is outside the timestamps.

use super::forward::Plan;
use super::kernels::{Kernel, Kernels};
use super::{begin_read, GpuContext, GpuError};

/// Each dispatch's GPU time in one run, in the order the plan ran them.
#[derive(Debug, Clone, Default)]
pub struct DispatchTimes {
    pub dispatches: Vec<(Kernel, f64)>,
}

impl DispatchTimes {
    /// Milliseconds and dispatches per kernel, the most expensive first.
    pub fn by_kernel(&self) -> Vec<(Kernel, f64, usize)> {
        let mut totals: Vec<(Kernel, f64, usize)> = Vec::new();
        for &(kernel, ms) in &self.dispatches {
            match totals.iter_mut().find(|(k, ..)| *k == kernel) {
                Some(entry) => {
                    entry.1 += ms;
                    entry.2 += 1;
                }
                None => totals.push((kernel, ms, 1)),
            }
        }
        totals.sort_by(|a, b| b.1.total_cmp(&a.1));
        totals
    }

    /// The sum of every dispatch's time (the GPU's busy time, without the gaps between passes).
    pub fn total_ms(&self) -> f64 {
        self.dispatches.iter().map(|&(_, ms)| ms).sum()
    }
}

/// The query set and order of one timed run (filled by `encode`, read by `finish`).
#[derive(Default)]
pub(crate) struct Timer {
    queries: Option<(wgpu::QuerySet, wgpu::Buffer)>,
    kernels: Vec<Kernel>,
}

impl Timer {
    /// Encodes `plan` one dispatch per pass, each between two timestamps, and
    /// resolves them into a buffer; `write_params` puts the plan's uniforms in place first.
    pub(crate) fn encode(
        &mut self,
        ctx: &GpuContext,
        kernels: &Kernels,
        enc: &mut wgpu::CommandEncoder,
        plan: Plan<'_>,
        write_params: impl FnOnce(&GpuContext, &Plan<'_>),
    ) -> Result<usize, GpuError> {
        if !ctx.timestamps() {
            return Err(GpuError::Unsupported("timestamp queries on this adapter".into()));
        }
        let count = plan.steps.len() * 2;
        if count == 0 || count > wgpu::QUERY_SET_MAX_QUERIES as usize {
            return Err(GpuError::Unsupported(format!("timing {} dispatches in one run", plan.steps.len())));
        }
        write_params(ctx, &plan);
        let set = ctx.device.create_query_set(&wgpu::QuerySetDescriptor {
            label: Some("dispatch times"),
            ty: wgpu::QueryType::Timestamp,
            count: count as u32,
        });
        let resolved = ctx.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("dispatch times"),
            size: count as u64 * 8,
            usage: wgpu::BufferUsages::QUERY_RESOLVE | wgpu::BufferUsages::COPY_SRC,
            mapped_at_creation: false,
        });
        for (i, step) in plan.steps.iter().enumerate() {
            let writes = wgpu::ComputePassTimestampWrites {
                query_set: &set,
                beginning_of_pass_write_index: Some(2 * i as u32),
                end_of_pass_write_index: Some(2 * i as u32 + 1),
            };
            let mut pass =
                enc.begin_compute_pass(&wgpu::ComputePassDescriptor { label: None, timestamp_writes: Some(writes) });
            pass.set_pipeline(kernels.pipeline(step.kernel));
            pass.set_bind_group(0, step.bind_group, &[]);
            pass.dispatch_workgroups(step.workgroups[0], step.workgroups[1], step.workgroups[2]);
        }
        enc.resolve_query_set(&set, 0..count as u32, &resolved, 0);
        self.kernels = plan.steps.iter().map(|s| s.kernel).collect();
        self.queries = Some((set, resolved));
        Ok(self.kernels.len())
    }

    /// Reads the timestamps back (after the run's submission).
    pub(crate) async fn finish(self, ctx: &GpuContext) -> Result<DispatchTimes, GpuError> {
        let Some((_set, resolved)) = self.queries else { return Ok(DispatchTimes::default()) };
        let words = begin_read(ctx, &resolved, 0, self.kernels.len() * 4)?.finish(ctx).await?;
        let ns_per_tick = f64::from(ctx.queue.get_timestamp_period());
        let ticks: Vec<u64> =
            words.chunks_exact(2).map(|w| u64::from(w[0].to_bits()) | (u64::from(w[1].to_bits()) << 32)).collect();
        let dispatches = self
            .kernels
            .iter()
            .zip(ticks.chunks_exact(2))
            .map(|(&kernel, t)| (kernel, t[1].saturating_sub(t[0]) as f64 * ns_per_tick / 1e6))
            .collect();
        Ok(DispatchTimes { dispatches })
    }
}
