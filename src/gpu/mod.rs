//! The GPU backend: wgpu device setup, one compute pipeline per kernel in
//! `shaders/`, the attention layer kept resident on the GPU, and readback of
//! just the slices the screen needs.

mod attention;
mod context;
mod kernels;
mod readback;
mod trace;

pub use attention::{GpuAttention, Stage};
pub use context::{GpuContext, GpuError};
pub use kernels::Kernels;
pub use readback::{begin_read, read_f32, PendingRead};
pub use trace::trace_attention_gpu;
