//! `HeatmapRenderer`: matrices of a run drawn by shaders/heatmap.wgsl straight
//! from the storage buffers the compute kernels wrote, several tiles (a
//! stage, or a grid of every layer × head) in one render pass.

use bytemuck::{Pod, Zeroable};

use crate::gpu::GpuMatrix;

/// How values become colours (both colour-blind safe).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColourMap {
    /// viridis over [lo, hi]: weights.
    Sequential,
    /// purple–white–orange centred on 0, symmetric to max(|lo|, |hi|): signed scores.
    Diverging,
}

/// Where the colour map's [lo, hi] comes from.
#[derive(Debug, Clone, Copy)]
pub enum ColourRange<'a> {
    Fixed(f32, f32),
    /// Two f32s written on the GPU (`GpuForward::fit_range`), in unscaled units.
    Buffer(&'a wgpu::Buffer),
}

/// One map to draw (a tile of the target): a matrix, its colours, and where on the target.
#[derive(Debug, Clone, Copy)]
pub struct Tile<'a> {
    pub matrix: GpuMatrix<'a>,
    pub colour_map: ColourMap,
    pub range: ColourRange<'a>,
    /// x, y, width, height in target pixels.
    pub viewport: [f32; 4],
    /// Hovered (row, column), lightened.
    pub hover: Option<(u32, u32)>,
    /// Frame the map (the selected one of a grid).
    pub outline: bool,
}

/// The Rust mirror of `struct Uniforms` in shaders/heatmap.wgsl: keep the two in sync (field order, types, padding).
#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct Uniforms {
    rows: u32,
    cols: u32,
    offset: u32,
    row_stride: u32,
    x0: f32,
    y0: f32,
    width: f32,
    height: f32,
    scale: f32,
    colormap: u32,
    lo: f32,
    hi: f32,
    srgb_target: u32,
    use_mask: u32,
    range_from_buffer: u32,
    hover_row: i32,
    hover_col: i32,
    outline: u32,
    _pad: [u32; 2],
}

/// Uniform blocks of successive tiles are this far apart (the binding offset alignment).
const SLOT: u64 = 256;

pub struct HeatmapRenderer {
    pipeline: wgpu::RenderPipeline,
    uniforms: std::cell::RefCell<wgpu::Buffer>,
    /// Bound where a tile has no mask or range buffer (never read then).
    placeholder: wgpu::Buffer,
    format: wgpu::TextureFormat,
}

fn uniform_buffer(device: &wgpu::Device, tiles: usize) -> wgpu::Buffer {
    device.create_buffer(&wgpu::BufferDescriptor {
        label: Some("heatmap uniforms"),
        size: SLOT * tiles.max(1) as u64,
        usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
        mapped_at_creation: false,
    })
}

impl HeatmapRenderer {
    pub fn new(device: &wgpu::Device, format: wgpu::TextureFormat) -> Self {
        let module = device.create_shader_module(wgpu::ShaderModuleDescriptor {
            label: Some("heatmap"),
            source: wgpu::ShaderSource::Wgsl(crate::gpu::wgsl::wgsl!("heatmap.wgsl").into()),
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
        let placeholder = device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("heatmap placeholder"),
            size: 16,
            usage: wgpu::BufferUsages::STORAGE,
            mapped_at_creation: false,
        });
        Self { pipeline, uniforms: std::cell::RefCell::new(uniform_buffer(device, 16)), placeholder, format }
    }

    pub fn format(&self) -> wgpu::TextureFormat {
        self.format
    }

    /// The page's panel colour (#1f2126), in the target's encoding.
    fn background(&self) -> wgpu::Color {
        let c = |v: f64| if self.format.is_srgb() { v.powf(2.2) } else { v };
        wgpu::Color { r: c(0.12), g: c(0.13), b: c(0.15), a: 1.0 }
    }

    /// Draws every tile into `target` (`size` pixels) in one render pass
    /// (submitted now), clearing it first if `clear`, else over what it
    /// holds (tiles drawn in several passes, each after the compute its
    /// matrices needed).
    pub fn draw(
        &self,
        device: &wgpu::Device,
        queue: &wgpu::Queue,
        target: &wgpu::TextureView,
        size: (u32, u32),
        tiles: &[Tile<'_>],
        clear: bool,
    ) {
        let Ok(mut uniforms) = self.uniforms.try_borrow_mut() else { return };
        if uniforms.size() < SLOT * tiles.len() as u64 {
            *uniforms = uniform_buffer(device, tiles.len().next_power_of_two());
        }
        let mut bytes = vec![0u8; SLOT as usize * tiles.len()];
        let mut bind_groups = Vec::with_capacity(tiles.len());
        for (i, tile) in tiles.iter().enumerate() {
            let m = &tile.matrix;
            let (hover_row, hover_col) = tile.hover.map_or((-1, -1), |(r, c)| (r as i32, c as i32));
            let (lo, hi, range_from_buffer, range_buffer) = match tile.range {
                ColourRange::Fixed(lo, hi) => (lo, hi, 0, &self.placeholder),
                ColourRange::Buffer(b) => (0.0, 0.0, 1, b),
            };
            let [x0, y0, width, height] = tile.viewport;
            let u = Uniforms {
                rows: m.rows as u32,
                cols: m.cols as u32,
                offset: m.offset as u32,
                row_stride: m.row_stride as u32,
                x0,
                y0,
                width,
                height,
                scale: m.scale,
                colormap: u32::from(tile.colour_map == ColourMap::Diverging),
                lo,
                hi,
                srgb_target: u32::from(self.format.is_srgb()),
                use_mask: u32::from(m.masked.is_some()),
                range_from_buffer,
                hover_row,
                hover_col,
                outline: u32::from(tile.outline),
                _pad: [0; 2],
            };
            let at = i * SLOT as usize;
            bytes[at..at + std::mem::size_of::<Uniforms>()].copy_from_slice(bytemuck::bytes_of(&u));
            let params = wgpu::BufferBinding {
                buffer: &uniforms,
                offset: at as u64,
                size: wgpu::BufferSize::new(std::mem::size_of::<Uniforms>() as u64),
            };
            bind_groups.push(device.create_bind_group(&wgpu::BindGroupDescriptor {
                label: Some("heatmap"),
                layout: &self.pipeline.get_bind_group_layout(0),
                entries: &[
                    wgpu::BindGroupEntry { binding: 0, resource: wgpu::BindingResource::Buffer(params) },
                    wgpu::BindGroupEntry { binding: 1, resource: m.values.as_entire_binding() },
                    wgpu::BindGroupEntry { binding: 2, resource: m.masked.unwrap_or(m.values).as_entire_binding() },
                    wgpu::BindGroupEntry { binding: 3, resource: range_buffer.as_entire_binding() },
                ],
            }));
        }
        if !bytes.is_empty() {
            queue.write_buffer(&uniforms, 0, &bytes);
        }
        let mut encoder = device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("heatmap") });
        {
            let mut pass = encoder.begin_render_pass(&wgpu::RenderPassDescriptor {
                label: Some("heatmap"),
                color_attachments: &[Some(wgpu::RenderPassColorAttachment {
                    view: target,
                    depth_slice: None,
                    resolve_target: None,
                    ops: wgpu::Operations {
                        load: if clear { wgpu::LoadOp::Clear(self.background()) } else { wgpu::LoadOp::Load },
                        store: wgpu::StoreOp::Store,
                    },
                })],
                depth_stencil_attachment: None,
                timestamp_writes: None,
                occlusion_query_set: None,
                multiview_mask: None,
            });
            pass.set_pipeline(&self.pipeline);
            for (tile, bind_group) in tiles.iter().zip(&bind_groups) {
                // Clipped to the target: a viewport or scissor outside it is a validation error.
                let [x, y, w, h] = tile.viewport;
                let (x, y) = (x.max(0.0), y.max(0.0));
                let (w, h) = (w.min(size.0 as f32 - x), h.min(size.1 as f32 - y));
                if w < 1.0 || h < 1.0 {
                    continue;
                }
                pass.set_viewport(x, y, w, h, 0.0, 1.0);
                pass.set_scissor_rect(x as u32, y as u32, (w as u32).max(1), (h as u32).max(1));
                pass.set_bind_group(0, bind_group, &[]);
                pass.draw(0..3, 0..1);
            }
        }
        queue.submit([encoder.finish()]);
    }
}
