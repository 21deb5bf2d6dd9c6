//! `GpuContext`: instance, adapter, device and queue, with the limits we ask for.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use thiserror::Error;

use crate::engine::EngineError;

#[derive(Debug, Error)]
pub enum GpuError {
    #[error("no GPU adapter was found ({0}). Natively, install a Vulkan driver (Debian: mesa-vulkan-drivers libvulkan1); in a browser, WebGPU must be enabled")]
    NoAdapter(String),
    #[error("the GPU device could not be created: {0}")]
    Device(String),
    #[error("reading a GPU buffer back failed: {0}")]
    Readback(String),
    #[error("{what} needs {needed} bytes in one storage binding, but this GPU allows {limit}")]
    TooLarge { what: String, needed: u64, limit: u64 },
    #[error("{what} take {needed} bytes of GPU memory, over the {limit} the page allows them")]
    OverBudget { what: String, needed: u64, limit: u64 },
    #[error("the work needs {groups} workgroups in one dimension; this GPU allows {limit}")]
    TooManyWorkgroups { groups: u32, limit: u32 },
    #[error("the GPU reported an error: {0}")]
    Validation(String),
    #[error("the GPU device was lost: {0}")]
    Lost(String),
    #[error("this GPU path does not support {0}")]
    Unsupported(String),
    #[error("{0} is outside the computed range")]
    OutOfRange(String),
    #[error(transparent)]
    Engine(#[from] EngineError),
    /// A head, position or second prompt the interpretability tools refuse (lens, ablation, patching).
    #[error(transparent)]
    Intervene(#[from] crate::engine::intervene::InterveneError),
}

/// llvmpipe's bound on the loop iterations of one shader invocation ([`GpuContext::loop_limit`]).
pub const LLVMPIPE_LOOP_ITERATIONS: u64 = 65_535;

/// The adapter's `loop_limit` ([`GpuContext::loop_limit`]; `None`: no
/// bound) if a kernel whose invocations each count `iterations` loop turns
/// would pass it, with the margin every caller keeps: past 7/8 of the
/// bound, since the count is ours, not the driver's. `None` if it stays within.
pub fn past_loop_limit(loop_limit: Option<u64>, iterations: u64) -> Option<u64> {
    loop_limit.filter(|&limit| iterations > limit / 8 * 7)
}

pub struct GpuContext {
    pub instance: wgpu::Instance,
    pub adapter: wgpu::Adapter,
    pub device: wgpu::Device,
    pub queue: wgpu::Queue,
    pub adapter_info: wgpu::AdapterInfo,
    bytes_read_back: AtomicU64,
    /// The first error the device reported outside an error scope, or its loss.
    fault: Arc<Mutex<Option<GpuError>>>,
}

fn new_instance() -> wgpu::Instance {
    #[cfg(target_arch = "wasm32")]
    let desc = wgpu::InstanceDescriptor {
        backends: wgpu::Backends::BROWSER_WEBGPU,
        ..wgpu::InstanceDescriptor::new_without_display_handle()
    };
    // Natively, WGPU_BACKEND=vulkan|gl picks a backend; Vulkan (lavapipe in CI) otherwise.
    #[cfg(not(target_arch = "wasm32"))]
    let desc = {
        let mut desc = wgpu::InstanceDescriptor::new_without_display_handle_from_env();
        if std::env::var_os("WGPU_BACKEND").is_none() {
            desc.backends = wgpu::Backends::VULKAN;
        }
        desc
    };
    wgpu::Instance::new(desc)
}

impl GpuContext {
    /// Finds an adapter and opens a device with the limits the kernels need.
    pub async fn new() -> Result<Self, GpuError> {
        let instance = new_instance();
        let adapter = instance
            .request_adapter(&wgpu::RequestAdapterOptions {
                power_preference: wgpu::PowerPreference::HighPerformance,
                ..Default::default()
            })
            .await
            .map_err(|e| GpuError::NoAdapter(e.to_string()))?;
        let supported = adapter.limits();
        // Ask for the largest storage bindings the adapter offers (up to 1 GiB):
        // the spec default of 128 MiB is too small for GPT-2's embedding table.
        let required_limits = wgpu::Limits {
            max_storage_buffer_binding_size: supported.max_storage_buffer_binding_size.min(1 << 30),
            max_buffer_size: supported.max_buffer_size.min(1 << 30),
            ..wgpu::Limits::default()
        };
        // Natively, timestamp queries where the adapter has them (`attnscope bench`'s
        // GPU time per kernel); the page asks for no optional feature.
        let wanted =
            if cfg!(target_arch = "wasm32") { wgpu::Features::empty() } else { wgpu::Features::TIMESTAMP_QUERY };
        let required_features = adapter.features() & wanted;
        let (device, queue) = adapter
            .request_device(&wgpu::DeviceDescriptor {
                label: Some("attnscope"),
                required_limits,
                required_features,
                ..Default::default()
            })
            .await
            .map_err(|e| GpuError::Device(e.to_string()))?;
        let adapter_info = adapter.get_info();
        let fault = Arc::new(Mutex::new(None));
        let on_error = fault.clone();
        device.on_uncaptured_error(Arc::new(move |e: wgpu::Error| {
            log::error!("GPU error: {e}");
            if let Ok(mut slot) = on_error.lock() {
                slot.get_or_insert(GpuError::Validation(e.to_string()));
            }
        }));
        let on_lost = fault.clone();
        device.set_device_lost_callback(move |reason, message| {
            log::error!("GPU device lost ({reason:?}): {message}");
            if let Ok(mut slot) = on_lost.lock() {
                *slot = Some(GpuError::Lost(format!("{reason:?}: {message}")));
            }
        });
        Ok(Self { instance, adapter, device, queue, adapter_info, bytes_read_back: AtomicU64::new(0), fault })
    }

    #[cfg(not(target_arch = "wasm32"))]
    pub fn new_blocking() -> Result<Self, GpuError> {
        pollster::block_on(Self::new())
    }

    /// Whether the device has timestamp queries (natively, where the adapter does).
    pub fn timestamps(&self) -> bool {
        self.device.features().contains(wgpu::Features::TIMESTAMP_QUERY)
    }

    /// The adapter's name, or what the browser tells of it ("swiftshader", "nvidia").
    pub fn adapter_name(&self) -> String {
        let i = &self.adapter_info;
        [&i.name, &i.driver, &i.driver_info].into_iter().find(|s| !s.is_empty()).cloned().unwrap_or_else(|| {
            match i.device_type {
                wgpu::DeviceType::Cpu => "software (CPU) adapter".to_owned(),
                other => format!("{other:?} adapter"),
            }
        })
    }

    /// The most loop iterations one shader invocation may run on this
    /// adapter, if it has such a bound: Mesa's llvmpipe (lavapipe natively,
    /// the Vulkan driver of CI and of machines without a GPU) counts every
    /// iteration of every loop of an invocation and, past 65,535 in all,
    /// silently ends each loop at its next turn (gallivm's
    /// `LP_MAX_TGSI_LOOP_ITERATIONS`). A kernel whose iterations per
    /// invocation grow with the text checks against it: flash attention takes
    /// its kernel with a workgroup per row there, and what cannot is refused,
    /// never computed short.
    pub fn loop_limit(&self) -> Option<u64> {
        let i = &self.adapter_info;
        // Mesa names it so, in lower case ("llvmpipe (LLVM 15.0.6, 256 bits)").
        let llvmpipe = [&i.name, &i.driver].into_iter().any(|s| s.contains("llvmpipe"));
        llvmpipe.then_some(LLVMPIPE_LOOP_ITERATIONS)
    }

    /// "llvmpipe (Vulkan, Cpu)" and the like, for the UI and logs.
    pub fn describe(&self) -> String {
        let i = &self.adapter_info;
        format!("{} ({:?}, {:?})", self.adapter_name(), i.backend, i.device_type)
    }

    /// The first validation error the device reported, or its loss, if any.
    pub fn fault(&self) -> Option<String> {
        self.fault.lock().ok().and_then(|f| f.as_ref().map(ToString::to_string))
    }

    /// Runs `f`, then reports any validation error it caused (shader compilation,
    /// pipeline creation) instead of letting it surface later as zeros.
    pub async fn checked<T>(&self, f: impl FnOnce() -> Result<T, GpuError>) -> Result<T, GpuError> {
        let scope = self.device.push_error_scope(wgpu::ErrorFilter::Validation);
        let value = f();
        let error = scope.pop().await;
        match (value, error) {
            (Ok(value), None) => Ok(value),
            (Err(e), _) => Err(e),
            (Ok(_), Some(e)) => Err(GpuError::Validation(e.to_string())),
        }
    }

    pub fn bytes_read_back(&self) -> u64 {
        self.bytes_read_back.load(Ordering::Relaxed)
    }

    pub(crate) fn count_read_back(&self, bytes: u64) {
        self.bytes_read_back.fetch_add(bytes, Ordering::Relaxed);
    }

    /// Fails clearly when one binding would exceed the device's limit.
    pub fn check_binding(&self, what: &str, bytes: u64) -> Result<(), GpuError> {
        let limit = self.device.limits().max_storage_buffer_binding_size;
        if bytes > limit {
            return Err(GpuError::TooLarge { what: what.to_owned(), needed: bytes, limit });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_count_past_seven_eighths_of_the_bound_passes_it() {
        let bound = Some(LLVMPIPE_LOOP_ITERATIONS);
        let edge = LLVMPIPE_LOOP_ITERATIONS / 8 * 7;
        assert_eq!(past_loop_limit(bound, edge), None);
        assert_eq!(past_loop_limit(bound, edge + 1), bound);
        assert_eq!(past_loop_limit(None, u64::MAX), None);
    }
}
