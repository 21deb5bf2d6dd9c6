//! `HeatmapRenderer`: one head's T×T matrix drawn by shaders/heatmap.wgsl from
//! the storage buffer the compute kernels wrote.

use bytemuck::{Pod, Zeroable};

/// What to draw: the head, the matrix size and the value range of the colour map.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct HeatmapParams {
    pub t: u32,
    /// Row stride of the matrices in the buffers (their capacity, ≥ t): head h's
    /// cell (i, j) is at (h·stride + i)·stride + j.
    pub stride: u32,
    pub head: u32,
    pub width: u32,
    pub height: u32,
    /// Values at or below `lo` get the map's first colour, at or above `hi` its last.
    pub lo: f32,
    pub hi: f32,
    /// Hovered (query row, key column), outlined.
    pub hover: Option<(u32, u32)>,
}

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct Uniforms {
    t: u32,
    offset: u32,
    width: f32,
    height: f32,
    lo: f32,
    hi: f32,
    srgb_target: u32,
    hover_row: i32,
    hover_col: i32,
    stride: u32,
    _pad: [u32; 2],
}

pub struct HeatmapRenderer {
    pipeline: wgpu::RenderPipeline,
    uniforms: wgpu::Buffer,
    format: wgpu::TextureFormat,
}

impl HeatmapRenderer {
    pub fn new(device: &wgpu::Device, format: wgpu::TextureFormat) -> Self {
        let module = device.create_shader_module(wgpu::ShaderModuleDescriptor {
            label: Some("heatmap"),
            source: wgpu::ShaderSource::Wgsl(include_str!("../../shaders/heatmap.wgsl").into()),
        });
        let pipeline = device.create_render_pipeline(&wgpu::RenderPipelineDescriptor {
            label: Some("heatmap"),
            layout: None,
            vertex: wgpu::VertexState {
                module: &module,
                entry_point: Some("vs_main"),
                compilation_options: Default::default(),
                buffers: &[],
            },
            fragment: Some(wgpu::FragmentState {
                module: &module,
                entry_point: Some("fs_main"),
                compilation_options: Default::default(),
                targets: &[Some(format.into())],
            }),
            primitive: wgpu::PrimitiveState::default(),
            depth_stencil: None,
            multisample: wgpu::MultisampleState::default(),
            multiview_mask: None,
            cache: None,
        });
        let uniforms = device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("heatmap uniforms"),
            size: std::mem::size_of::<Uniforms>() as u64,
            usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        Self { pipeline, uniforms, format }
    }

    pub fn format(&self) -> wgpu::TextureFormat {
        self.format
    }

    /// Draws `values` (coloured) and `masked` (hatched where −∞) for `params.head` into `target`.
    pub fn draw(
        &self,
        device: &wgpu::Device,
        queue: &wgpu::Queue,
        target: &wgpu::TextureView,
        params: HeatmapParams,
        values: &wgpu::Buffer,
        masked: &wgpu::Buffer,
    ) {
        let (hover_row, hover_col) = params.hover.map_or((-1, -1), |(r, c)| (r as i32, c as i32));
        let uniforms = Uniforms {
            t: params.t,
            offset: params.head * params.stride * params.stride,
            stride: params.stride,
            width: params.width as f32,
            height: params.height as f32,
            lo: params.lo,
            hi: params.hi,
            srgb_target: u32::from(self.format.is_srgb()),
            hover_row,
            hover_col,
            _pad: [0; 2],
        };
        queue.write_buffer(&self.uniforms, 0, bytemuck::bytes_of(&uniforms));
        let bind_group = device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: Some("heatmap"),
            layout: &self.pipeline.get_bind_group_layout(0),
            entries: &[
                wgpu::BindGroupEntry { binding: 0, resource: self.uniforms.as_entire_binding() },
                wgpu::BindGroupEntry { binding: 1, resource: values.as_entire_binding() },
                wgpu::BindGroupEntry { binding: 2, resource: masked.as_entire_binding() },
            ],
        });
        let mut encoder = device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("heatmap") });
        {
            let mut pass = encoder.begin_render_pass(&wgpu::RenderPassDescriptor {
                label: Some("heatmap"),
                color_attachments: &[Some(wgpu::RenderPassColorAttachment {
                    view: target,
                    depth_slice: None,
                    resolve_target: None,
                    ops: wgpu::Operations {
                        load: wgpu::LoadOp::Clear(wgpu::Color::BLACK),
                        store: wgpu::StoreOp::Store,
                    },
                })],
                depth_stencil_attachment: None,
                timestamp_writes: None,
                occlusion_query_set: None,
                multiview_mask: None,
            });
            pass.set_pipeline(&self.pipeline);
            pass.set_bind_group(0, &bind_group, &[]);
            pass.draw(0..3, 0..1);
        }
        queue.submit([encoder.finish()]);
    }
}
