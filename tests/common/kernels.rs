//! The kernel tests' shared pieces: one `Kernels` for the binary, a dispatch,
//! a checked readback, and the random inputs they draw.

use attnscope::engine::Mask;
use attnscope::gpu::{read_f32, Kernel, Kernels};
use proptest::prelude::*;

use super::gpu;

pub fn kernels() -> &'static Kernels {
    static K: std::sync::OnceLock<Kernels> = std::sync::OnceLock::new();
    K.get_or_init(|| Kernels::new(gpu()))
}

pub fn run<P: bytemuck::Pod>(kernel: Kernel, params: &P, buffers: &[&wgpu::Buffer], workgroups: [u32; 3]) {
    let ctx = gpu();
    let mut enc = ctx.device.create_command_encoder(&Default::default());
    kernels().dispatch(ctx, &mut enc, kernel, params, buffers, workgroups).unwrap();
    ctx.queue.submit([enc.finish()]);
}

pub fn read(buffer: &wgpu::Buffer, offset: usize, len: usize) -> Vec<f32> {
    let ctx = gpu();
    let values = pollster::block_on(read_f32(ctx, buffer, offset as u64, len)).expect("readback");
    assert_eq!(ctx.fault(), None, "the GPU reported an error");
    values
}

pub fn vector(len: usize, scale: f32) -> impl Strategy<Value = Vec<f32>> {
    prop::collection::vec(-scale..scale, len)
}

pub fn mask_strategy() -> impl Strategy<Value = Mask> {
    prop_oneof![Just(Mask::Causal), Just(Mask::Bidirectional), (1u32..6).prop_map(Mask::Window)]
}
