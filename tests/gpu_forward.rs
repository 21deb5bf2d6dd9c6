//! The whole GPU forward pass against the CPU reference: every stage of the
//! trace, the golden fixtures' logits, prefix (KV) reuse, flash vs naive
//! attention, the vocabulary split, slice readback and the heatmap renderer.
#![cfg(not(target_arch = "wasm32"))]

mod common;

use std::path::PathBuf;

use attnscope::engine::{forward_cpu, sampling, AttentionStage, Mask, Matrix, Trace};
use attnscope::gpu::{GpuContext, GpuForward, GpuWeights, RunOptions, Stage, MAX_TOP_K};
use attnscope::model::{Model, ModelConfig, Token, Weights};
use attnscope::render::{ColourMap, ColourRange, HeatmapRenderer, Tile};
use common::{assert_close, assert_close_abs, gpu, placeholder};

fn tokens(ids: &[u32]) -> Vec<Token> {
    ids.iter().map(|&id| Token { id, text: String::new(), start: 0, end: 0 }).collect()
}

fn ids_of(model: &Model, text: &str) -> Vec<u32> {
    model.tokenizer.encode(text).unwrap().iter().map(|t| t.id).collect()
}

fn close(a: &Matrix, b: &Matrix, what: &str) {
    assert_eq!((a.rows, a.cols), (b.rows, b.cols), "{what}: shape");
    assert_close(&a.data, &b.data, what);
}

/// Every field of two traces within the kernels' tolerance.
fn assert_traces_close(g: &Trace, c: &Trace, what: &str) {
    close(&g.embeddings, &c.embeddings, &format!("embeddings {what}"));
    for (l, (gl, cl)) in g.layers.iter().zip(&c.layers).enumerate() {
        let w = |s: &str| format!("layer {l} {s} {what}");
        close(gl.attention.ln_1.as_ref().unwrap(), cl.attention.ln_1.as_ref().unwrap(), &w("ln_1"));
        for (h, (gh, ch)) in gl.heads().iter().zip(cl.heads()).enumerate() {
            for (name, a, b) in [
                ("q", &gh.q, &ch.q),
                ("k", &gh.k, &ch.k),
                ("v", &gh.v, &ch.v),
                ("scores_raw", &gh.scores_raw(), &ch.scores_raw()),
                ("scores_scaled", &gh.scores_scaled(), &ch.scores_scaled()),
                ("scores_masked", &gh.scores_masked(), &ch.scores_masked()),
                ("weights", &gh.weights().to_matrix(), &ch.weights().to_matrix()),
                ("output", &gh.output, &ch.output),
            ] {
                close(a, b, &w(&format!("head {h} {name}")));
            }
        }
        for (name, a, b) in [
            ("attn_out", &gl.attn_out, &cl.attn_out),
            ("resid_mid", gl.resid_mid.as_ref().unwrap(), cl.resid_mid.as_ref().unwrap()),
            ("ln_2", gl.ln_2.as_ref().unwrap(), cl.ln_2.as_ref().unwrap()),
            ("mlp_hidden", gl.mlp_hidden.as_ref().unwrap(), cl.mlp_hidden.as_ref().unwrap()),
            ("mlp_out", &gl.mlp_out, &cl.mlp_out),
            ("resid_post", gl.resid_post.as_ref().unwrap(), cl.resid_post.as_ref().unwrap()),
        ] {
            close(a, b, &w(name));
        }
    }
    close(&g.ln_f, &c.ln_f, &format!("ln_f {what}"));
    close(&g.logits, &c.logits, &format!("logits {what}"));
}

#[test]
fn gpu_trace_equals_cpu_reference_for_every_mask_and_length() {
    let model = placeholder();
    let ctx = gpu();
    let mut fwd = GpuForward::new(ctx, &model).unwrap();
    let texts = ["A", "The cat sat on the mat.", "To be, or not to be, that is the question: whether 'tis nobler"];
    for text in texts {
        for mask in [Mask::Causal, Mask::Bidirectional, Mask::Window(3)] {
            let toks = model.tokenizer.encode(text).unwrap();
            let cpu = forward_cpu(&model.config, &model.weights, toks.clone(), mask).unwrap();
            let g = pollster::block_on(fwd.trace(ctx, toks, mask, true)).unwrap();
            assert_traces_close(&g, &cpu, &format!("{text:?} {mask:?}"));
        }
    }
}

fn fixture(dir: &str) -> (ModelConfig, Weights) {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(dir);
    let config = ModelConfig::from_json(&std::fs::read(dir.join("config.json")).unwrap()).unwrap();
    let weights = Weights::from_safetensors(&std::fs::read(dir.join("model.safetensors")).unwrap(), &config).unwrap();
    (config, weights)
}

/// The golden fixture (a random GPT-2 that tests/golden.rs checks against
/// Hugging Face transformers): GPU logits of every position equal the CPU's within 1e-4.
#[test]
fn gpu_logits_equal_cpu_on_the_golden_fixture() {
    let ctx = gpu();
    let (config, weights) = fixture("gpt2-tiny");
    let mut fwd = GpuForward::with_weights(ctx, &config, GpuWeights::upload(ctx, &config, &weights).unwrap()).unwrap();
    for t in [1usize, 5, 23, 64] {
        let ids: Vec<u32> = (0..t).map(|i| (i * 37 % config.vocab_size) as u32).collect();
        let cpu = forward_cpu(&config, &weights, tokens(&ids), Mask::Causal).unwrap();
        for trace in [false, true] {
            fwd.clear_cache();
            fwd.run(ctx, &ids, RunOptions { mask: Mask::Causal, trace, all_logits: true }).unwrap();
            let got = pollster::block_on(fwd.read_all_logits(ctx)).unwrap();
            assert_close_abs(&got, &cpu.logits.data, 1e-4, &format!("logits T={t} traced={trace}"));
        }
    }
}

/// Typing at the end, editing in the middle, and appending one token at a time:
/// the cached prefix gives the same numbers as a run from scratch, and only the new rows are computed.
#[test]
fn prefix_reuse_equals_a_full_run() {
    let model = placeholder();
    let ctx = gpu();
    let mut cached = GpuForward::new(ctx, &model).unwrap();
    let mut fresh = GpuForward::new(ctx, &model).unwrap();
    let steps =
        ["The cat", "The cat sat on", "The cat sat on the mat", "The dog sat on the mat", "The dog sat on the mat."];
    for mask in [Mask::Causal, Mask::Window(2)] {
        for trace in [false, true] {
            let opts = RunOptions { mask, trace, all_logits: false };
            cached.clear_cache();
            let mut previous: Vec<u32> = Vec::new();
            for text in steps {
                let ids = ids_of(&model, text);
                let stats = cached.run(ctx, &ids, opts).unwrap();
                let shared = previous.iter().zip(&ids).take_while(|(a, b)| a == b).count().min(ids.len() - 1);
                assert_eq!(stats.reused_prefix, if stats.reallocated { 0 } else { shared }, "{text:?} {mask:?}");
                fresh.clear_cache();
                fresh.run(ctx, &ids, opts).unwrap();
                let read =
                    |f: &GpuForward| pollster::block_on(f.begin_read_last_logits(ctx).unwrap().finish(ctx)).unwrap();
                let what = format!("{text:?} {mask:?} trace={trace}");
                assert_close(&read(&cached), &read(&fresh), &format!("logits {what}"));
                let layer = model.config.n_layer - 1;
                for stage in [Stage::Qkv, Stage::ResidPost] {
                    let (a, b) = (
                        pollster::block_on(cached.read_rows(ctx, stage, layer)),
                        pollster::block_on(fresh.read_rows(ctx, stage, layer)),
                    );
                    assert_close(&a.unwrap(), &b.unwrap(), &format!("{stage:?} {what}"));
                }
                if trace {
                    for h in 0..model.config.n_head {
                        for stage in [Stage::ScoresRaw, Stage::Weights] {
                            let a = pollster::block_on(cached.read_head(ctx, stage, layer, h)).unwrap();
                            let b = pollster::block_on(fresh.read_head(ctx, stage, layer, h)).unwrap();
                            assert_close(&a, &b, &format!("{stage:?} head {h} {what}"));
                        }
                    }
                }
                previous = ids;
            }
        }
    }
    // A bidirectional mask makes every row depend on later tokens: nothing is reused.
    let ids = ids_of(&model, "The cat sat");
    cached.run(ctx, &ids[..2], RunOptions::fast(Mask::Bidirectional)).unwrap();
    assert_eq!(cached.run(ctx, &ids, RunOptions::fast(Mask::Bidirectional)).unwrap().reused_prefix, 0);
}

/// Generation-style appends, one token at a time, reuse all but the new row.
#[test]
fn appending_one_token_computes_one_row() {
    let model = placeholder();
    let ctx = gpu();
    let mut fwd = GpuForward::new(ctx, &model).unwrap();
    let ids = ids_of(&model, "Now is the winter of our discontent made glorious summer by this sun of York");
    for t in 1..=ids.len() {
        let stats = fwd.run(ctx, &ids[..t], RunOptions::fast(Mask::Causal)).unwrap();
        if !stats.reallocated {
            assert_eq!(stats.reused_prefix, t - 1);
        }
    }
}

/// Flash attention (fast runs) and the naive path (traced runs) give the same logits and A·V.
#[test]
fn flash_path_equals_naive_path() {
    let model = placeholder();
    let ctx = gpu();
    let mut fwd = GpuForward::new(ctx, &model).unwrap();
    let ids =
        ids_of(&model, "Friends, Romans, countrymen, lend me your ears; I come to bury Caesar, not to praise him.");
    for mask in [Mask::Causal, Mask::Bidirectional, Mask::Window(4)] {
        let mut results = Vec::new();
        for trace in [true, false] {
            fwd.clear_cache();
            fwd.run(ctx, &ids, RunOptions { mask, trace, all_logits: true }).unwrap();
            let logits = pollster::block_on(fwd.read_all_logits(ctx)).unwrap();
            let head_out = pollster::block_on(fwd.read_rows(ctx, Stage::HeadOut, 1)).unwrap();
            results.push((logits, head_out));
        }
        assert_close(&results[1].0, &results[0].0, &format!("logits flash vs naive {mask:?}"));
        assert_close(&results[1].1, &results[0].1, &format!("A·V flash vs naive {mask:?}"));
    }
}

/// A token table split into chunks (as when wte exceeds one storage binding) gives the same results.
#[test]
fn a_split_vocabulary_gives_the_same_logits() {
    let model = placeholder();
    let ctx = gpu();
    let d = model.config.n_embd;
    let split = GpuWeights::upload_with_chunk_limit(ctx, &model.config, &model.weights, (300 * d * 4) as u64).unwrap();
    assert_eq!(split.wte.len(), model.config.vocab_size.div_ceil(300), "the table is split in 300-row chunks");
    let mut split = GpuForward::with_weights(ctx, &model.config, split).unwrap();
    let mut whole = GpuForward::new(ctx, &model).unwrap();
    let ids = ids_of(&model, "What light through yonder window breaks? It is the east, and Juliet is the sun.");
    for fwd in [&mut split, &mut whole] {
        fwd.run(ctx, &ids, RunOptions { mask: Mask::Causal, trace: false, all_logits: true }).unwrap();
    }
    let read = |f: &GpuForward| pollster::block_on(f.read_all_logits(ctx)).unwrap();
    assert_close(&read(&split), &read(&whole), "logits with a split table");
    let emb = |f: &GpuForward| pollster::block_on(f.read_rows(ctx, Stage::Embeddings, 0)).unwrap();
    assert_close(&emb(&split), &emb(&whole), "embeddings with a split table");
}

/// Forgetting the cached prefix does not forget what the buffers hold: after
/// an all-positions run, the last logits row is still read from where it was written.
#[test]
fn clearing_the_cache_keeps_the_last_run_readable() {
    let model = placeholder();
    let ctx = gpu();
    let mut fwd = GpuForward::new(ctx, &model).unwrap();
    let ids = ids_of(&model, "Is this a dagger which I see before me");
    fwd.run(ctx, &[1, 2, 3], RunOptions::fast(Mask::Causal)).unwrap(); // something else in logits_last
    fwd.run(ctx, &ids, RunOptions { mask: Mask::Causal, trace: true, all_logits: true }).unwrap();
    fwd.clear_cache();
    let all = pollster::block_on(fwd.read_all_logits(ctx)).unwrap();
    let last = pollster::block_on(fwd.begin_read_last_logits(ctx).unwrap().finish(ctx)).unwrap();
    let v = model.config.vocab_size;
    assert_eq!(&last[..v], &all[(ids.len() - 1) * v..]);
    assert!(fwd.traced(), "the buffers still hold a traced run");
    assert_eq!(fwd.run(ctx, &ids, RunOptions::traced(Mask::Causal)).unwrap().reused_prefix, 0, "nothing reused");
}

/// The top-k read ranks the logits a full read returns, gives the CPU's
/// probabilities at every temperature, and reads back 8 + 8k bytes.
#[test]
fn top_k_reads_the_most_likely_tokens_for_a_few_bytes() {
    let model = placeholder();
    gpu(); // fails with the install hint if there is no adapter
    let ctx = &GpuContext::new_blocking().unwrap(); // its own byte counter
    let v = model.config.vocab_size;
    let mut fwd = GpuForward::new(ctx, &model).unwrap();
    let ids = ids_of(&model, "Shall I compare thee to a summer's day? Thou art more lovely");
    for opts in [RunOptions::fast(Mask::Causal), RunOptions { mask: Mask::Causal, trace: true, all_logits: true }] {
        fwd.run(ctx, &ids, opts).unwrap();
        let mut logits = pollster::block_on(fwd.begin_read_last_logits(ctx).unwrap().finish(ctx)).unwrap();
        logits.truncate(v);
        let ranked = sampling::candidates(&sampling::probabilities(&logits, 1.0), Some(10), None);
        for temperature in [0.0, 0.7, 1.0, 1.8] {
            let before = ctx.bytes_read_back();
            let top = pollster::block_on(fwd.begin_read_top_k(ctx, 10, temperature).unwrap().finish(ctx)).unwrap();
            assert_eq!(ctx.bytes_read_back() - before, 8 + 8 * 10, "bytes read back");
            let got: Vec<u32> = top.tokens.iter().map(|&(id, _)| id).collect();
            let want: Vec<u32> = ranked.iter().map(|&(id, _)| id).collect();
            assert_eq!(got, want, "ranking at temperature {temperature} ({opts:?})");
            let probs = sampling::probabilities(&logits, temperature);
            for (rank, &(id, logit)) in top.tokens.iter().enumerate() {
                assert_eq!(logit, logits[id as usize]);
                let p = top.probability(rank);
                assert!((p - probs[id as usize]).abs() <= 1e-5, "rank {rank}: {p} vs {}", probs[id as usize]);
            }
        }
    }
    for (k, temperature) in [(0, 1.0), (MAX_TOP_K + 1, 1.0), (5, -1.0), (5, f32::NAN)] {
        assert!(fwd.begin_read_top_k(ctx, k, temperature).is_err(), "k = {k}, temperature {temperature}");
    }
}

/// At most 6 dispatches per block (5 now), plus the embedding, ln_f and the LM head.
#[test]
fn dispatches_per_block_are_at_most_six() {
    let model = placeholder();
    let ctx = gpu();
    let mut fwd = GpuForward::new(ctx, &model).unwrap();
    let ids = ids_of(&model, "one two three");
    let layers = model.config.n_layer;
    let fast = fwd.run(ctx, &ids, RunOptions::fast(Mask::Causal)).unwrap().dispatches;
    assert_eq!(fast, 1 + 5 * layers + 1, "embed, 5 per block, LM head");
    let traced = fwd.run(ctx, &ids, RunOptions::traced(Mask::Causal)).unwrap().dispatches;
    assert_eq!(traced, 1 + 5 * layers + 2, "embed, 5 per block, ln_f, LM head");
}

#[test]
fn a_cell_read_costs_four_bytes_and_matches_the_full_matrix() {
    let model = placeholder();
    gpu(); // fails with the install hint if there is no adapter
           // A context of its own: the shared one's byte counter moves with the other tests.
    let ctx = &GpuContext::new_blocking().unwrap();
    let mut fwd = GpuForward::new(ctx, &model).unwrap();
    let ids = ids_of(&model, "one two three four");
    fwd.run(ctx, &ids, RunOptions::traced(Mask::Causal)).unwrap();
    let t = ids.len();
    let full = pollster::block_on(fwd.read_head(ctx, Stage::Weights, 1, 2)).unwrap();
    let before = ctx.bytes_read_back();
    let cell = pollster::block_on(
        fwd.square_matrix(Stage::Weights, 1, 2).unwrap().begin_read_cell(ctx, (t - 1, 1)).unwrap().finish(ctx),
    )
    .unwrap();
    assert_eq!(ctx.bytes_read_back() - before, 4);
    assert_eq!(cell, full[(t - 1) * t + 1]);
    assert!(
        fwd.square_matrix(Stage::Weights, 1, 2).unwrap().begin_read_cell(ctx, (t, 0)).is_err(),
        "row T is out of range"
    );
    // After a fast run the T×T matrices are stale: reading them is an error, not old numbers.
    fwd.run(ctx, &ids, RunOptions::fast(Mask::Causal)).unwrap();
    assert!(fwd.buffer(Stage::Weights, 1).unwrap_err().to_string().contains("trace"));
}

#[test]
fn bad_ids_are_refused_before_the_gpu_runs() {
    let model = placeholder();
    let ctx = gpu();
    let mut fwd = GpuForward::new(ctx, &model).unwrap();
    let too_long = vec![1u32; model.config.n_positions + 1];
    let err = fwd.run(ctx, &too_long, RunOptions::fast(Mask::Causal)).unwrap_err();
    assert!(err.to_string().contains("context holds at most 256"), "{err}");
    let err = fwd.run(ctx, &[5000], RunOptions::fast(Mask::Causal)).unwrap_err();
    assert!(err.to_string().contains("outside the vocabulary"), "{err}");
    assert!(fwd.run(ctx, &[], RunOptions::fast(Mask::Causal)).is_err(), "no tokens");
}

/// Renders a 3×3 causal matrix into an 30×30 texture and checks the colours:
/// tolerance ±6 of 255 per channel, for the polynomial colour map and 8-bit rounding.
#[test]
fn heatmap_draws_weights_through_viridis_and_hatches_masked_cells() {
    let model = placeholder();
    let ctx = gpu();
    let mut fwd = GpuForward::new(ctx, &model).unwrap();
    fwd.run(ctx, &[10, 20, 30], RunOptions::traced(Mask::Causal)).unwrap();
    let weights = pollster::block_on(fwd.read_head(ctx, Stage::Weights, 0, 0)).unwrap();

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
    let tile = Tile {
        matrix: fwd.head_matrix(AttentionStage::Weights, 0, 0).unwrap(),
        colour_map: ColourMap::Sequential,
        range: ColourRange::Fixed(0.0, 1.0),
        viewport: [0.0, 0.0, size as f32, size as f32],
        hover: None,
        outline: false,
    };
    let view = texture.create_view(&Default::default());
    renderer.draw(&ctx.device, &ctx.queue, &view, (size, size), &[tile], true);
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

/// Every attention stage of every head is found where the trace says: a
/// cell read through `head_matrix` equals the CPU trace's number, and the
/// GPU-fitted colour range is the matrix's min and max (masked cells skipped).
#[test]
fn stage_matrices_cells_and_ranges_match_the_cpu_trace() {
    let model = placeholder();
    let ctx = gpu();
    let mut fwd = GpuForward::new(ctx, &model).unwrap();
    let tokens = model.tokenizer.encode("Friends, Romans, countrymen").unwrap();
    let ids: Vec<u32> = tokens.iter().map(|t| t.id).collect();
    let t = ids.len();
    for mask in [Mask::Causal, Mask::Window(2), Mask::Bidirectional] {
        let cpu = forward_cpu(&model.config, &model.weights, tokens.clone(), mask).unwrap();
        fwd.run(ctx, &ids, RunOptions::traced(mask)).unwrap();
        let range = ctx.device.create_buffer(&wgpu::BufferDescriptor {
            label: None,
            size: 16,
            usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC,
            mapped_at_creation: false,
        });
        for layer in 0..model.config.n_layer {
            for head in [0, model.config.n_head - 1] {
                for stage in AttentionStage::ALL {
                    let want = stage.matrix(&cpu.layers[layer].heads()[head]);
                    let what = format!("{stage:?} layer {layer} head {head} {mask:?}");
                    for (row, col) in [(0, 0), (t - 1, 0), (t - 1, want.cols - 1), (t / 2, want.cols / 2)] {
                        let got = pollster::block_on(
                            fwd.head_matrix(stage, layer, head)
                                .unwrap()
                                .begin_read_cell(ctx, (row, col))
                                .unwrap()
                                .finish(ctx),
                        )
                        .unwrap();
                        let w = want.data[row * want.cols + col];
                        if w.is_infinite() {
                            assert_eq!(got, w, "{what} ({row}, {col})");
                        } else {
                            assert!((got - w).abs() <= 1e-4, "{what} ({row}, {col}): GPU {got}, CPU {w}");
                        }
                    }
                    let m = fwd.head_matrix(stage, layer, head).unwrap();
                    // One row read back alone (the generation panel's newest query row).
                    let row = t - 1;
                    let got = pollster::block_on(m.row(row).unwrap().begin_read(ctx).unwrap().finish(ctx)).unwrap();
                    let w = &want.data[row * want.cols..(row + 1) * want.cols];
                    assert!(
                        got.len() == w.len()
                            && got.iter().zip(w).all(|(a, b)| if b.is_infinite() {
                                a == b
                            } else {
                                (a - b).abs() <= 1e-4
                            }),
                        "{what}: row {row}"
                    );
                    assert!(m.row(want.rows).is_none(), "{what}: no row past the last");
                    fwd.fit_range(ctx, &m, &range).unwrap();
                    let got = pollster::block_on(attnscope::gpu::read_f32(ctx, &range, 0, 2)).unwrap();
                    // The range is of the unscaled values, and skips what the stage draws as masked.
                    let shown: Vec<f32> = (0..want.rows * want.cols)
                        .filter(|&i| !stage.shows_mask() || mask.allows(i / want.cols, i % want.cols))
                        .map(|i| want.data[i] / m.scale)
                        .collect();
                    let lo = shown.iter().copied().fold(f32::INFINITY, f32::min);
                    let hi = shown.iter().copied().fold(f32::NEG_INFINITY, f32::max);
                    assert!(
                        (got[0] - lo).abs() <= 1e-4 && (got[1] - hi).abs() <= 1e-4,
                        "{what}: range {got:?} vs {lo}..{hi}"
                    );
                }
            }
        }
    }
    let past = fwd.head_matrix(AttentionStage::Q, 0, 0).unwrap().begin_read_cell(ctx, (t, 0));
    assert!(past.is_err(), "row T is out of range");
}

/// The block view's numbers: every token's residual norm at every point of the
/// stream (row_norms.wgsl) and one token's layernorm and MLP rows equal the CPU trace's.
#[test]
fn residual_norms_and_token_rows_match_the_cpu_trace() {
    use attnscope::engine::residual::{residual_norms, residual_points};
    let model = placeholder();
    let ctx = gpu();
    let mut fwd = GpuForward::new(ctx, &model).unwrap();
    let tokens = model.tokenizer.encode("It is a truth universally acknowledged").unwrap();
    let ids: Vec<u32> = tokens.iter().map(|t| t.id).collect();
    let cpu = forward_cpu(&model.config, &model.weights, tokens, Mask::Causal).unwrap();
    fwd.run(ctx, &ids, RunOptions::traced(Mask::Causal)).unwrap();
    let stride = model.config.n_positions;
    let points = residual_points(model.config.n_layer);
    let out = ctx.device.create_buffer(&wgpu::BufferDescriptor {
        label: None,
        size: (points * stride * 4) as u64,
        usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC,
        mapped_at_creation: false,
    });
    let m = fwd.residual_norms(ctx, &out, stride).unwrap();
    let got = pollster::block_on(m.begin_read(ctx).unwrap().finish(ctx)).unwrap();
    let want = residual_norms(&cpu);
    assert_eq!((m.rows, m.cols), (want.rows, want.cols));
    for (i, (g, w)) in got.iter().zip(&want.data).enumerate() {
        assert!((g - w).abs() <= 1e-4 * w.max(1.0), "norm {i}: GPU {g}, CPU {w}");
    }
    let t = ids.len() - 1;
    let row = |stage, layer| {
        let m = fwd.token_row(stage, layer, t).unwrap();
        pollster::block_on(m.begin_read(ctx).unwrap().finish(ctx)).unwrap()
    };
    let l = model.config.n_layer - 1;
    assert_close(&row(Stage::Ln1, l), cpu.layers[l].attention.ln_1.as_ref().unwrap().row(t), "ln_1 row");
    assert_close(&row(Stage::MlpHidden, l), cpu.layers[l].mlp_hidden.as_ref().unwrap().row(t), "mlp_hidden row");
    assert_close(&row(Stage::ResidPost, 0), cpu.layers[0].resid_post.as_ref().unwrap().row(t), "resid_post row");
    assert!(fwd.token_row(Stage::Ln1, 0, ids.len()).is_err(), "token T is out of range");
}

/// Seeded sampling is the same on both backends: generating on the GPU (one
/// appended row per step, its logits read back, the engine's sampler) gives
/// the tokens the CPU reference's KV-cache generation gives.
#[test]
fn seeded_generation_on_the_gpu_equals_the_cpu() {
    use attnscope::engine::kv_cache::generate_cached;
    use attnscope::engine::sampling::{sample, Rng, SamplingParams};
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("www/models/default");
    let model = Model::load_dir(&dir).unwrap();
    let ctx = gpu();
    let mut fwd = GpuForward::new(ctx, &model).unwrap();
    let prompt = ids_of(&model, "Elizabeth was");
    for params in [
        SamplingParams { temperature: 0.0, ..Default::default() },
        SamplingParams { temperature: 0.8, top_k: Some(50), top_p: Some(0.9), seed: 21 },
        SamplingParams { temperature: 1.0, top_k: None, top_p: None, seed: 4 },
    ] {
        let cpu = generate_cached(&model, tokens(&prompt), 12, &params, Mask::Causal).unwrap();
        let want: Vec<u32> = cpu.steps.iter().map(|s| s.sampled.id).collect();
        let (mut ids, mut rng, mut got) = (prompt.clone(), Rng::new(params.seed), Vec::new());
        for _ in 0..12 {
            fwd.run(ctx, &ids, RunOptions::fast(Mask::Causal)).unwrap();
            let logits = pollster::block_on(fwd.begin_read_last_logits(ctx).unwrap().finish(ctx)).unwrap();
            let s = sample(&logits[..model.config.vocab_size], &params, &mut rng).unwrap();
            got.push(s.id);
            ids.push(s.id);
        }
        assert_eq!(got, want, "{params:?}");
    }
}
