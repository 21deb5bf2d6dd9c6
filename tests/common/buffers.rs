//! GPU buffers for kernel tests, shared by the native and the browser tests.

use attnscope::gpu::GpuContext;
use wgpu::util::DeviceExt;

/// A storage buffer holding `data` (one zero if empty: bindings cannot be empty).
pub fn upload(ctx: &GpuContext, data: &[f32]) -> wgpu::Buffer {
    let data: &[f32] = if data.is_empty() { &[0.0] } else { data };
    ctx.device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
        label: None,
        contents: bytemuck::cast_slice(data),
        usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC,
    })
}

/// An output storage buffer for `len` f32 values.
pub fn output(ctx: &GpuContext, len: usize) -> wgpu::Buffer {
    ctx.device.create_buffer(&wgpu::BufferDescriptor {
        label: None,
        size: len.max(1) as u64 * 4,
        usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC,
        mapped_at_creation: false,
    })
}
