//! GPU buffers for kernel tests, shared by the native and the browser tests.

use attnscope::gpu::GpuContext;
use wgpu::util::DeviceExt;

/// A storage buffer holding `data`, zero-padded to whole vec4s (the matmul
/// kernels bind their inputs as `array<vec4<f32>>`; bindings cannot be empty).
pub fn upload(ctx: &GpuContext, data: &[f32]) -> wgpu::Buffer {
    let mut padded = data.to_vec();
    padded.resize(data.len().max(1).next_multiple_of(4), 0.0);
    ctx.device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
        label: None,
        contents: bytemuck::cast_slice(&padded),
        usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC,
    })
}

/// An output storage buffer for `len` f32 values.
pub fn output(ctx: &GpuContext, len: usize) -> wgpu::Buffer {
    ctx.device.create_buffer(&wgpu::BufferDescriptor {
        label: None,
        size: (len.max(1) as u64 * 4).next_multiple_of(16),
        usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC,
        mapped_at_creation: false,
    })
}
