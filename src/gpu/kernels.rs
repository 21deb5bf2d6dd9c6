//! `Kernels`: one compute pipeline per WGSL file in `shaders/`, and a typed
//! encode function for each that checks its shapes and dispatch size.

use bytemuck::{Pod, Zeroable};
use wgpu::util::DeviceExt;

use super::{GpuContext, GpuError};
use crate::engine::Mask;

pub struct Kernels {
    embed: wgpu::ComputePipeline,
    layernorm: wgpu::ComputePipeline,
    matmul_bias: wgpu::ComputePipeline,
    attn_scores: wgpu::ComputePipeline,
    softmax_rows: wgpu::ComputePipeline,
    weighted_sum: wgpu::ComputePipeline,
}

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct Params4 {
    a: u32,
    b: u32,
    c: u32,
    d: u32,
}

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct ScoreParams {
    t: u32,
    n_head: u32,
    d_head: u32,
    mask_mode: u32,
    window: u32,
    scale: f32,
    neg_inf_bits: u32,
    _pad: u32,
}

fn pipeline(device: &wgpu::Device, label: &str, source: &str) -> wgpu::ComputePipeline {
    let module = device.create_shader_module(wgpu::ShaderModuleDescriptor {
        label: Some(label),
        source: wgpu::ShaderSource::Wgsl(source.into()),
    });
    device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
        label: Some(label),
        layout: None,
        module: &module,
        entry_point: Some("main"),
        compilation_options: Default::default(),
        cache: None,
    })
}

fn groups(count: usize, size: u32) -> u32 {
    (count as u32).div_ceil(size)
}

impl Kernels {
    pub fn new(ctx: &GpuContext) -> Self {
        let d = &ctx.device;
        Self {
            embed: pipeline(d, "embed", include_str!("../../shaders/embed.wgsl")),
            layernorm: pipeline(d, "layernorm", include_str!("../../shaders/layernorm.wgsl")),
            matmul_bias: pipeline(d, "matmul_bias", include_str!("../../shaders/matmul_bias.wgsl")),
            attn_scores: pipeline(d, "attn_scores", include_str!("../../shaders/attn_scores.wgsl")),
            softmax_rows: pipeline(d, "softmax_rows", include_str!("../../shaders/softmax_rows.wgsl")),
            weighted_sum: pipeline(d, "weighted_sum", include_str!("../../shaders/weighted_sum.wgsl")),
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn dispatch(
        &self,
        ctx: &GpuContext,
        encoder: &mut wgpu::CommandEncoder,
        pipeline: &wgpu::ComputePipeline,
        params: &[u8],
        buffers: &[&wgpu::Buffer],
        workgroups: [u32; 3],
    ) -> Result<(), GpuError> {
        let limit = ctx.device.limits().max_compute_workgroups_per_dimension;
        if let Some(&too_many) = workgroups.iter().find(|&&g| g > limit) {
            return Err(GpuError::TooManyWorkgroups { groups: too_many, limit });
        }
        if workgroups.contains(&0) {
            return Ok(());
        }
        let uniform = ctx.device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
            label: Some("params"),
            contents: params,
            usage: wgpu::BufferUsages::UNIFORM,
        });
        let mut entries = vec![wgpu::BindGroupEntry { binding: 0, resource: uniform.as_entire_binding() }];
        entries.extend(
            buffers
                .iter()
                .enumerate()
                .map(|(i, b)| wgpu::BindGroupEntry { binding: i as u32 + 1, resource: b.as_entire_binding() }),
        );
        let bind_group = ctx.device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: None,
            layout: &pipeline.get_bind_group_layout(0),
            entries: &entries,
        });
        let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor { label: None, timestamp_writes: None });
        pass.set_pipeline(pipeline);
        pass.set_bind_group(0, &bind_group, &[]);
        pass.dispatch_workgroups(workgroups[0], workgroups[1], workgroups[2]);
        Ok(())
    }

    /// `x[T×d] = wte[ids] + wpe[0..T]` (shaders/embed.wgsl).
    #[allow(clippy::too_many_arguments)]
    pub fn embed(
        &self,
        ctx: &GpuContext,
        enc: &mut wgpu::CommandEncoder,
        ids: &wgpu::Buffer,
        wte: &wgpu::Buffer,
        wpe: &wgpu::Buffer,
        x: &wgpu::Buffer,
        t: usize,
        d: usize,
    ) -> Result<(), GpuError> {
        let p = Params4 { a: t as u32, b: d as u32, c: 0, d: 0 };
        self.dispatch(ctx, enc, &self.embed, bytemuck::bytes_of(&p), &[ids, wte, wpe, x], [groups(t * d, 64), 1, 1])
    }

    /// Row-wise layernorm of `x[rows×d]` into `y` (shaders/layernorm.wgsl).
    #[allow(clippy::too_many_arguments)]
    pub fn layernorm(
        &self,
        ctx: &GpuContext,
        enc: &mut wgpu::CommandEncoder,
        x: &wgpu::Buffer,
        gain: &wgpu::Buffer,
        bias: &wgpu::Buffer,
        y: &wgpu::Buffer,
        rows: usize,
        d: usize,
        eps: f32,
    ) -> Result<(), GpuError> {
        let p = Params4 { a: rows as u32, b: d as u32, c: eps.to_bits(), d: 0 };
        self.dispatch(ctx, enc, &self.layernorm, bytemuck::bytes_of(&p), &[x, gain, bias, y], [groups(rows, 64), 1, 1])
    }

    /// `y[M×N] = x[M×K] · w[K×N] + b[N]`, 64×64 tiles through workgroup memory (shaders/matmul_bias.wgsl).
    #[allow(clippy::too_many_arguments)]
    pub fn matmul_bias(
        &self,
        ctx: &GpuContext,
        enc: &mut wgpu::CommandEncoder,
        x: &wgpu::Buffer,
        w: &wgpu::Buffer,
        b: &wgpu::Buffer,
        y: &wgpu::Buffer,
        (m, k, n): (usize, usize, usize),
    ) -> Result<(), GpuError> {
        let p = Params4 { a: m as u32, b: k as u32, c: n as u32, d: 0 };
        self.dispatch(
            ctx,
            enc,
            &self.matmul_bias,
            bytemuck::bytes_of(&p),
            &[x, w, b, y],
            [groups(n, 64), groups(m, 64), 1],
        )
    }

    /// Raw and scaled+masked scores of every head from the fused QKV (shaders/attn_scores.wgsl).
    #[allow(clippy::too_many_arguments)]
    pub fn attn_scores(
        &self,
        ctx: &GpuContext,
        enc: &mut wgpu::CommandEncoder,
        qkv: &wgpu::Buffer,
        raw: &wgpu::Buffer,
        masked: &wgpu::Buffer,
        (t, n_head, d_head): (usize, usize, usize),
        mask: Mask,
    ) -> Result<(), GpuError> {
        let (mask_mode, window) = mask.gpu_code();
        let p = ScoreParams {
            t: t as u32,
            n_head: n_head as u32,
            d_head: d_head as u32,
            mask_mode,
            window,
            scale: 1.0 / (d_head as f32).sqrt(),
            neg_inf_bits: f32::NEG_INFINITY.to_bits(),
            _pad: 0,
        };
        self.dispatch(
            ctx,
            enc,
            &self.attn_scores,
            bytemuck::bytes_of(&p),
            &[qkv, raw, masked],
            [groups(t, 8), groups(t, 8), n_head as u32],
        )
    }

    /// Softmax of each row of `scores[rows×n]` (shaders/softmax_rows.wgsl).
    pub fn softmax_rows(
        &self,
        ctx: &GpuContext,
        enc: &mut wgpu::CommandEncoder,
        scores: &wgpu::Buffer,
        weights: &wgpu::Buffer,
        rows: usize,
        n: usize,
    ) -> Result<(), GpuError> {
        let p = Params4 { a: rows as u32, b: n as u32, c: 0, d: 0 };
        self.dispatch(
            ctx,
            enc,
            &self.softmax_rows,
            bytemuck::bytes_of(&p),
            &[scores, weights],
            [groups(rows, 64), 1, 1],
        )
    }

    /// Each head's W·V, concatenated into `out[T×d]` (shaders/weighted_sum.wgsl).
    #[allow(clippy::too_many_arguments)]
    pub fn weighted_sum(
        &self,
        ctx: &GpuContext,
        enc: &mut wgpu::CommandEncoder,
        weights: &wgpu::Buffer,
        qkv: &wgpu::Buffer,
        out: &wgpu::Buffer,
        (t, n_head, d_head): (usize, usize, usize),
    ) -> Result<(), GpuError> {
        let p = Params4 { a: t as u32, b: n_head as u32, c: d_head as u32, d: 0 };
        let d = n_head * d_head;
        self.dispatch(
            ctx,
            enc,
            &self.weighted_sum,
            bytemuck::bytes_of(&p),
            &[weights, qkv, out],
            [groups(d, 8), groups(t, 8), 1],
        )
    }
}
