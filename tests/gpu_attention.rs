//! The GPU attention layer and the heatmap renderer against the CPU reference,
//! on the shipped placeholder model.
#![cfg(not(target_arch = "wasm32"))]

mod common;

use attnscope::engine::{forward_cpu, Mask};
use attnscope::gpu::{trace_attention_gpu, GpuAttention, Stage};
use attnscope::render::{HeatmapParams, HeatmapRenderer};
use common::{assert_close, gpu, placeholder};

#[test]
fn gpu_layer_equals_cpu_reference_for_every_mask_and_length() {
    let model = placeholder();
    let ctx = gpu();
    let mut attn = GpuAttention::new(ctx, &model).unwrap();
    let texts = ["A", "The cat sat on the mat.", "To be, or not to be, that is the question: whether 'tis nobler"];
    for text in texts {
        for mask in [Mask::Causal, Mask::Bidirectional, Mask::Window(3)] {
            let tokens = model.tokenizer.encode(text).unwrap();
            let ids: Vec<u32> = tokens.iter().map(|t| t.id).collect();
            let cpu = forward_cpu(&model.config, &model.weights, tokens, mask).unwrap();
            let g = pollster::block_on(trace_attention_gpu(ctx, &mut attn, &ids, mask)).unwrap();
            let c = &cpu.layers[0].attention;
            let what = format!("{text:?} {mask:?}");
            assert_close(&g.ln_1.data, &c.ln_1.data, &format!("ln_1 {what}"));
            for (h, (gh, ch)) in g.heads.iter().zip(&c.heads).enumerate() {
                assert_close(&gh.q.data, &ch.q.data, &format!("q head {h} {what}"));
                assert_close(&gh.k.data, &ch.k.data, &format!("k head {h} {what}"));
                assert_close(&gh.v.data, &ch.v.data, &format!("v head {h} {what}"));
                assert_close(&gh.scores_raw.data, &ch.scores_raw.data, &format!("raw head {h} {what}"));
                assert_close(&gh.scores_masked.data, &ch.scores_masked.data, &format!("masked head {h} {what}"));
                assert_close(&gh.weights.data, &ch.weights.data, &format!("weights head {h} {what}"));
                assert_close(&gh.output.data, &ch.output.data, &format!("W·V head {h} {what}"));
            }
        }
    }
}

#[test]
fn a_cell_read_costs_four_bytes_and_matches_the_full_matrix() {
    let model = placeholder();
    gpu(); // fails with the install hint if there is no adapter
           // A context of its own: the shared one's byte counter moves with the other tests.
    let ctx = &attnscope::gpu::GpuContext::new_blocking().unwrap();
    let mut attn = GpuAttention::new(ctx, &model).unwrap();
    let ids: Vec<u32> = model.tokenizer.encode("one two three four").unwrap().iter().map(|t| t.id).collect();
    attn.run(ctx, &ids, Mask::Causal).unwrap();
    let t = ids.len();
    let full = pollster::block_on(attn.read_head(ctx, Stage::Weights, 2)).unwrap();
    let before = ctx.bytes_read_back();
    let cell = pollster::block_on(attn.begin_read_cell(ctx, Stage::Weights, 2, t - 1, 1).unwrap().finish(ctx)).unwrap();
    assert_eq!(ctx.bytes_read_back() - before, 4);
    assert_eq!(cell[0], full[(t - 1) * t + 1]);
    assert!(attn.begin_read_cell(ctx, Stage::Weights, 2, t, 0).is_err(), "row T is out of range");
}

#[test]
fn text_past_the_context_is_refused_before_the_gpu_runs() {
    let model = placeholder();
    let ctx = gpu();
    let mut attn = GpuAttention::new(ctx, &model).unwrap();
    let too_long = vec![1u32; model.config.n_positions + 1];
    let err = attn.run(ctx, &too_long, Mask::Causal).unwrap_err();
    assert!(err.to_string().contains("context holds at most 256"), "{err}");
    let err = attn.run(ctx, &[5000], Mask::Causal).unwrap_err();
    assert!(err.to_string().contains("outside the vocabulary"), "{err}");
}

/// Renders a 3×3 causal matrix into an 30×30 texture and checks the colours:
/// tolerance ±6 of 255 per channel, for the polynomial colour map and 8-bit rounding.
#[test]
fn heatmap_draws_weights_through_viridis_and_hatches_masked_cells() {
    let model = placeholder();
    let ctx = gpu();
    let mut attn = GpuAttention::new(ctx, &model).unwrap();
    attn.run(ctx, &[10, 20, 30], Mask::Causal).unwrap();
    let weights = pollster::block_on(attn.read_head(ctx, Stage::Weights, 0)).unwrap();

    let (size, format) = (30u32, wgpu::TextureFormat::Rgba8Unorm);
    let texture = ctx.device.create_texture(&wgpu::TextureDescriptor {
        label: None,
        size: wgpu::Extent3d { width: size, height: size, depth_or_array_layers: 1 },
        mip_level_count: 1,
        sample_count: 1,
        dimension: wgpu::TextureDimension::D2,
        format,
        usage: wgpu::TextureUsages::RENDER_ATTACHMENT | wgpu::TextureUsages::COPY_SRC,
        view_formats: &[],
    });
    let renderer = HeatmapRenderer::new(&ctx.device, format);
    let params = HeatmapParams { t: 3, head: 0, width: size, height: size, lo: 0.0, hi: 1.0, hover: None };
    let view = texture.create_view(&Default::default());
    renderer.draw(
        &ctx.device,
        &ctx.queue,
        &view,
        params,
        attn.buffer(Stage::Weights).unwrap(),
        attn.buffer(Stage::ScoresMasked).unwrap(),
    );
    // Copy the texture out (rows padded to 256 bytes).
    let padded = 256u32;
    let out = ctx.device.create_buffer(&wgpu::BufferDescriptor {
        label: None,
        size: (padded * size) as u64,
        usage: wgpu::BufferUsages::COPY_DST | wgpu::BufferUsages::COPY_SRC,
        mapped_at_creation: false,
    });
    let mut enc = ctx.device.create_command_encoder(&Default::default());
    enc.copy_texture_to_buffer(
        texture.as_image_copy(),
        wgpu::TexelCopyBufferInfo {
            buffer: &out,
            layout: wgpu::TexelCopyBufferLayout { offset: 0, bytes_per_row: Some(padded), rows_per_image: Some(size) },
        },
        wgpu::Extent3d { width: size, height: size, depth_or_array_layers: 1 },
    );
    ctx.queue.submit([enc.finish()]);
    let bytes: Vec<u8> = pollster::block_on(attnscope::gpu::read_f32(ctx, &out, 0, (padded * size / 4) as usize))
        .unwrap()
        .iter()
        .flat_map(|f| f.to_le_bytes())
        .collect();
    let pixel = |x: u32, y: u32| {
        let at = (y * padded + x * 4) as usize;
        [bytes[at], bytes[at + 1], bytes[at + 2]]
    };
    let near = |got: [u8; 3], want: [u8; 3], what: &str| {
        for c in 0..3 {
            assert!((got[c] as i32 - want[c] as i32).abs() <= 6, "{what}: got {got:?}, want {want:?}");
        }
    };
    // Cell (0, 0) holds weight 1: viridis(1) is yellow (253, 231, 37).
    assert_eq!(weights[0], 1.0);
    near(pixel(5, 5), [253, 231, 37], "weight 1");
    // Cell (0, 2) is masked: hatched greys, never a viridis colour.
    // The hatch's two greys are (0.22, 0.23, 0.26) and (0.32, 0.33, 0.36) in the shader.
    let masked = pixel(25, 5);
    let hatch = [[56, 59, 66], [82, 84, 92]];
    assert!(
        hatch.iter().any(|h| (0..3).all(|c| (masked[c] as i32 - h[c]).abs() <= 2)),
        "masked cell is hatch grey: {masked:?}"
    );
    // Every unmasked cell is coloured by its own weight (the map's end points are dark purple and yellow).
    let dark = [68, 1, 84];
    for (row, col) in [(1, 0), (1, 1), (2, 0), (2, 1), (2, 2)] {
        let w = weights[row * 3 + col];
        let got = pixel(col as u32 * 10 + 5, row as u32 * 10 + 5);
        if w < 0.02 {
            near(got, dark, &format!("weight {w} at ({row}, {col})"));
        } else {
            assert_ne!(got, masked, "unmasked cell ({row}, {col}) is coloured");
        }
    }
}
