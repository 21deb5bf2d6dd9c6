//! Reading a slice of a GPU buffer back to the CPU: the only way numbers leave the GPU.
//!
//! A read is split in two so that callers need not hold a borrow of the
//! buffer's owner across an `await`: [`begin_read`] copies the slice into a
//! staging buffer and asks for the map (synchronously), [`PendingRead::finish`]
//! waits for the map and returns the values.

use super::{GpuContext, GpuError};

type MapResult = Result<(), wgpu::BufferAsyncError>;

pub struct PendingRead {
    staging: wgpu::Buffer,
    receiver: futures_channel::oneshot::Receiver<MapResult>,
}

/// Copies `len` f32 values starting at element `offset` of `src` (which needs
/// `COPY_SRC` usage) into a staging buffer and requests its map.
pub fn begin_read(ctx: &GpuContext, src: &wgpu::Buffer, offset: u64, len: usize) -> Result<PendingRead, GpuError> {
    let bytes = len.max(1) as u64 * 4;
    if (offset + len as u64) * 4 > src.size() {
        return Err(GpuError::OutOfRange(format!(
            "elements {offset}..{} of a {}-byte buffer",
            offset + len as u64,
            src.size()
        )));
    }
    let staging = ctx.device.create_buffer(&wgpu::BufferDescriptor {
        label: Some("readback"),
        size: bytes,
        usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
        mapped_at_creation: false,
    });
    let mut encoder = ctx.device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("readback") });
    if len > 0 {
        encoder.copy_buffer_to_buffer(src, offset * 4, &staging, 0, bytes);
    }
    ctx.queue.submit([encoder.finish()]);
    let (sender, receiver) = futures_channel::oneshot::channel();
    staging.map_async(wgpu::MapMode::Read, .., move |result| {
        let _ = sender.send(result);
    });
    ctx.count_read_back(if len > 0 { bytes } else { 0 });
    Ok(PendingRead { staging, receiver })
}

impl PendingRead {
    /// Waits for the map and returns the values.
    pub async fn finish(self, ctx: &GpuContext) -> Result<Vec<f32>, GpuError> {
        #[cfg(not(target_arch = "wasm32"))]
        ctx.device.poll(wgpu::PollType::wait_indefinitely()).map_err(|e| GpuError::Readback(e.to_string()))?;
        #[cfg(target_arch = "wasm32")]
        let _ = ctx;
        self.receiver
            .await
            .map_err(|_| GpuError::Readback("the GPU device was lost before the read finished".into()))?
            .map_err(|e| GpuError::Readback(e.to_string()))?;
        let values = {
            let view = self.staging.get_mapped_range(..).map_err(|e| GpuError::Readback(e.to_string()))?;
            bytemuck::cast_slice::<u8, f32>(&view).to_vec()
        };
        self.staging.unmap();
        Ok(values)
    }
}

/// Reads `len` f32 values from element `offset` of `src`.
pub async fn read_f32(ctx: &GpuContext, src: &wgpu::Buffer, offset: u64, len: usize) -> Result<Vec<f32>, GpuError> {
    let mut values = begin_read(ctx, src, offset, len)?.finish(ctx).await?;
    values.truncate(len);
    Ok(values)
}
