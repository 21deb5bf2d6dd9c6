//! The whole GPU forward pass of the Llama family against the CPU reference,
//! through wgpu on whatever adapter is present (lavapipe in CI): every stage
//! of the trace (with q_pre_rope, k_pre_rope and kv_head) on the golden
//! fixtures (grouped and full multi-head, tied and untied, llama3 RoPE
//! scaling, Qwen2's biases) and on random shapes with KV ratios 1, 3 and 9
//! and head widths 64 and 128; prefix (KV) reuse and flash attention against
//! full and naive runs; an untied head split over vocabulary chunks; the
//! fused MLP (SwiGLU in the gated matmul) on random shapes, T = 1 and T = 70,
//! appends, f32 and 16-bit weights.
#![cfg(not(target_arch = "wasm32"))]

mod common;

use std::path::PathBuf;

use attnscope::engine::init::random_weights;
use attnscope::engine::{forward_cpu, Mask, Matrix, Trace};
use attnscope::gpu::{GpuForward, GpuWeights, Half, RunOptions, Stage};
use attnscope::model::{Model, ModelConfig, Token, Values, Weights};
use common::{assert_within, gpu, FORWARD};

fn tokens(ids: &[u32]) -> Vec<Token> {
    ids.iter().map(|&id| Token { id, text: String::new(), start: 0, end: 0 }).collect()
}

/// Whole-forward traces: every stage within 1e-4 absolute (measured on
/// lavapipe: ≤ 5e-5 for weights, logits and every row stage), and each score
/// within 1e-4 + 1e-5·Σ_c |q_c·k_c| (`scale`): a dot product's rounding grows
/// with its terms, not its result, and layer 1 of the wide-weight fixtures
/// sums terms of tens to scores near 0 from Q and K that differ from the CPU's
/// by reordered sums and RoPE's fused multiply-adds (measured: 4.4e-4 on a
/// score of 52, 3e-4 on a score of 0.016).
fn close_scaled(a: &Matrix, b: &Matrix, scale: Option<&[f32]>, what: &str) {
    assert_eq!((a.rows, a.cols), (b.rows, b.cols), "{what}: shape");
    for (i, (&g, &c)) in a.data.iter().zip(&b.data).enumerate() {
        if g.is_infinite() || c.is_infinite() {
            assert_eq!(g, c, "{what}[{i}]: masked entries differ");
            continue;
        }
        let err = (g - c).abs();
        let tol = 1e-4 + scale.map_or(0.0, |s| 1e-5 * s[i]);
        assert!(err <= tol, "{what}[{i}]: GPU {g}, CPU {c}, error {err} > {tol}");
    }
}

fn close(a: &Matrix, b: &Matrix, what: &str) {
    close_scaled(a, b, None, what);
}

/// Σ_c |q[i,c]·k[j,c]| for every cell of a head's T×T scores.
fn dot_terms(q: &Matrix, k: &Matrix) -> Vec<f32> {
    let mut out = Vec::with_capacity(q.rows * k.rows);
    for i in 0..q.rows {
        for j in 0..k.rows {
            out.push(q.row(i).iter().zip(k.row(j)).map(|(a, b)| (a * b).abs()).sum());
        }
    }
    out
}

fn assert_traces_close(g: &Trace, c: &Trace, what: &str) {
    close(&g.embeddings, &c.embeddings, &format!("embeddings {what}"));
    for (l, (gl, cl)) in g.layers.iter().zip(&c.layers).enumerate() {
        let w = |s: &str| format!("layer {l} {s} {what}");
        close(gl.attention.ln_1.as_ref().unwrap(), cl.attention.ln_1.as_ref().unwrap(), &w("ln_1"));
        for (h, (gh, ch)) in gl.heads().iter().zip(cl.heads()).enumerate() {
            assert_eq!(gh.kv_head, ch.kv_head, "{}", w(&format!("head {h} kv_head")));
            for (name, a, b) in [
                ("q", &gh.q, &ch.q),
                ("k", &gh.k, &ch.k),
                ("v", &gh.v, &ch.v),
                ("q_pre_rope", gh.q_pre_rope.as_ref().unwrap(), ch.q_pre_rope.as_ref().unwrap()),
                ("k_pre_rope", gh.k_pre_rope.as_ref().unwrap(), ch.k_pre_rope.as_ref().unwrap()),
                ("output", &gh.output, &ch.output),
            ] {
                close(a, b, &w(&format!("head {h} {name}")));
            }
            close(&gh.weights().to_matrix(), &ch.weights().to_matrix(), &w(&format!("head {h} weights")));
            let terms = dot_terms(&ch.q, &ch.k);
            let scaled: Vec<f32> = terms.iter().map(|t| t / (ch.q.cols as f32).sqrt()).collect();
            let raw = (gh.scores_raw(), ch.scores_raw());
            close_scaled(&raw.0, &raw.1, Some(&terms), &w(&format!("head {h} scores_raw")));
            close_scaled(
                &gh.scores_masked(),
                &ch.scores_masked(),
                Some(&scaled),
                &w(&format!("head {h} scores_masked")),
            );
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

fn fixture(dir: &str) -> Model {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(dir);
    Model::load_dir_tokenizer_optional(&path).unwrap().0
}

fn ids(n: usize, vocab: usize, seed: usize) -> Vec<u32> {
    (0..n).map(|i| ((i * 7919 + seed * 131) % vocab) as u32).collect()
}

fn compare(config: &ModelConfig, weights: &Weights, ids: &[u32], masks: &[Mask], what: &str) {
    let ctx = gpu();
    let gw = GpuWeights::upload(ctx, config, weights).unwrap();
    let mut fwd = GpuForward::with_weights(ctx, config, gw).unwrap();
    for &mask in masks {
        let cpu = forward_cpu(config, weights, tokens(ids), mask).unwrap();
        let g = pollster::block_on(fwd.trace(ctx, tokens(ids), mask, true)).unwrap();
        assert_traces_close(&g, &cpu, &format!("{what} T={} {mask:?}", ids.len()));
    }
}

#[test]
fn gpu_trace_equals_cpu_on_the_llama_family_fixtures() {
    for (dir, t) in [("llama-tiny", 130), ("llama-tiny-mha", 40), ("qwen2-tiny", 12)] {
        let model = fixture(dir);
        let c = &model.config;
        compare(c, &model.weights, &ids(t, c.vocab_size, 1), &[Mask::Causal, Mask::Window(5)], dir);
        compare(c, &model.weights, &ids(1, c.vocab_size, 2), &[Mask::Causal], dir);
    }
}

#[test]
fn gpu_trace_equals_cpu_on_kv_ratios_1_3_9_and_head_widths_64_128() {
    // (query heads, KV heads, head width): KV ratios 1, 3 and 9.
    for (n_head, n_kv, d_head) in [(2, 2, 64), (3, 1, 128), (9, 1, 64), (6, 2, 128)] {
        let mut config = ModelConfig::llama((2, n_head, n_kv, d_head), 40, 56, 64, 70);
        config.tie_word_embeddings = n_head % 2 == 1;
        let weights = random_weights(&config, n_head as u64);
        let what = format!("{n_head} heads over {n_kv} of {d_head}");
        compare(&config, &weights, &ids(23, 70, n_head), &[Mask::Causal, Mask::Bidirectional], &what);
    }
}

/// Every weight matrix and the token table rounded to `format` and kept in
/// f32 (the GPU finds them 16-bit exact and keeps them 16-bit; a 16-bit
/// checkpoint loads as 16-bit matrices, which the GPU takes as they are).
fn round_to(weights: &mut Weights, format: Half) {
    let round = |values: &mut Values| {
        let Values::F32(data) = values else { panic!("random weights are f32") };
        data.iter_mut().for_each(|v| {
            *v = match format {
                Half::Bf16 => half::bf16::from_f32(*v).to_f32(),
                Half::F16 => half::f16::from_f32(*v).to_f32(),
            }
        })
    };
    for b in &mut weights.blocks {
        for t in [&mut b.attn_qkv_w, &mut b.attn_proj_w, &mut b.mlp_fc_w, &mut b.mlp_proj_w] {
            round(&mut t.data);
        }
    }
    round(&mut weights.wte.data);
    if let Some(head) = &mut weights.lm_head {
        round(&mut head.data);
    }
}

/// The fused kernels (SwiGLU in the gated gate|up matmul) on random shapes:
/// KV ratios 1, 3 and 9, head widths 64 and 128, T = 1 and T = 70 (two
/// 64-row tiles), an appended token (the skinny kernels over the cache),
/// f32, bf16 and f16 weights, MLP widths a multiple of 4 (vec4 tile loads)
/// and not; an append costs 6 dispatches per layer (no SwiGLU pass).
#[test]
fn fused_mlp_equals_cpu_on_random_shapes_t1_t70_appends_f32_and_16_bit() {
    let ctx = gpu();
    // (query heads, KV heads, head width, MLP width, weight format)
    let cases = [
        (2, 2, 64, 56, None),
        (3, 1, 128, 50, Some(Half::Bf16)),
        (9, 1, 64, 52, Some(Half::F16)),
        (6, 2, 128, 44, Some(Half::Bf16)),
    ];
    for (n_head, n_kv, d_head, n_inner, format) in cases {
        let config = ModelConfig::llama((2, n_head, n_kv, d_head), 40, n_inner, 96, 70);
        let mut weights = random_weights(&config, 7 + n_head as u64);
        if let Some(half) = format {
            round_to(&mut weights, half);
        }
        let what = format!("{n_head} heads over {n_kv} of {d_head}, MLP {n_inner}, {format:?}");
        compare(&config, &weights, &ids(1, 70, 5), &[Mask::Causal], &what);
        compare(&config, &weights, &ids(70, 70, 5), &[Mask::Causal], &what);
        let gw = GpuWeights::upload(ctx, &config, &weights).unwrap();
        assert_eq!(gw.blocks[0].fc_w.format, format, "{what}: gate|up weights' format on the GPU");
        let mut fwd = GpuForward::with_weights(ctx, &config, gw).unwrap();
        let all = ids(71, 70, 6);
        fwd.run(ctx, &all[..70], RunOptions::fast(Mask::Causal)).unwrap();
        let stats = fwd.run(ctx, &all, RunOptions::fast(Mask::Causal)).unwrap();
        assert_eq!(stats.reused_prefix, 70, "{what}");
        // The embedding, 6 per layer (QKV, RoPE, attention, proj, gated gate|up, down), the LM head.
        assert_eq!(stats.dispatches, 1 + 6 * config.n_layer + 1, "{what}: dispatches of an append");
        let got = pollster::block_on(fwd.begin_read_last_logits(ctx).unwrap().finish(ctx)).unwrap();
        let cpu = forward_cpu(&config, &weights, tokens(&all), Mask::Causal).unwrap();
        let v = config.vocab_size;
        assert_within(&got, &cpu.logits.data[70 * v..71 * v], FORWARD, &format!("{what}: appended token's logits"));
    }
}

#[test]
fn prefix_reuse_and_flash_attention_equal_full_naive_runs() {
    let model = fixture("llama-tiny");
    let ctx = gpu();
    let (c, w) = (&model.config, &model.weights);
    let mut cached = GpuForward::new(ctx, &model).unwrap();
    let mut fresh = GpuForward::new(ctx, &model).unwrap();
    let all = ids(40, c.vocab_size, 3);
    let read = |f: &GpuForward| pollster::block_on(f.begin_read_last_logits(ctx).unwrap().finish(ctx)).unwrap();
    for trace in [false, true] {
        let opts = RunOptions { mask: Mask::Causal, trace, all_logits: false };
        cached.clear_cache();
        for t in [5, 6, 20, 21, 40] {
            let stats = cached.run(ctx, &all[..t], opts).unwrap();
            fresh.clear_cache();
            fresh.run(ctx, &all[..t], opts).unwrap();
            let what = format!("T={t} trace={trace} reused {}", stats.reused_prefix);
            assert_within(&read(&cached), &read(&fresh), FORWARD, &format!("logits {what}"));
            let a = pollster::block_on(cached.read_rows(ctx, Stage::Qkv, 1)).unwrap();
            let b = pollster::block_on(fresh.read_rows(ctx, Stage::Qkv, 1)).unwrap();
            assert_within(&a, &b, FORWARD, &format!("qkv (K after RoPE: the cache) {what}"));
        }
    }
    // Flash attention (fast) and the naive path (traced) on every position's logits, and against the CPU.
    let mut results = Vec::new();
    for trace in [true, false] {
        fresh.clear_cache();
        fresh.run(ctx, &all, RunOptions { mask: Mask::Causal, trace, all_logits: true }).unwrap();
        results.push(pollster::block_on(fresh.read_all_logits(ctx)).unwrap());
    }
    assert_within(&results[1], &results[0], FORWARD, "logits flash vs naive");
    let cpu = forward_cpu(c, w, tokens(&all), Mask::Causal).unwrap();
    assert_within(&results[1], &cpu.logits.data, FORWARD, "flash logits vs CPU");
}

#[test]
fn an_untied_head_split_over_vocabulary_chunks_gives_the_same_logits() {
    let model = fixture("llama-tiny");
    let ctx = gpu();
    let (c, w) = (&model.config, &model.weights);
    assert!(w.lm_head.is_some());
    // 96 rows of 64 floats in chunks of at most 40 rows.
    let gw = GpuWeights::upload_with_chunk_limit(ctx, c, w, 40 * 64 * 4).unwrap();
    assert_eq!(gw.head().len(), 3);
    let mut fwd = GpuForward::with_weights(ctx, c, gw).unwrap();
    let ids = ids(17, c.vocab_size, 4);
    fwd.run(ctx, &ids, RunOptions { mask: Mask::Causal, trace: false, all_logits: true }).unwrap();
    let cpu = forward_cpu(c, w, tokens(&ids), Mask::Causal).unwrap();
    assert_within(
        &pollster::block_on(fwd.read_all_logits(ctx)).unwrap(),
        &cpu.logits.data,
        FORWARD,
        "split head logits",
    );
}

/// A bf16 checkpoint's block matrices stay 16-bit on the GPU (the trace test
/// above runs on them), an f32 one's stay f32.
#[test]
fn a_bf16_checkpoint_keeps_its_matrices_16_bit_on_the_gpu() {
    let ctx = gpu();
    let (bf16, f32_model) = (fixture("llama-tiny-mha"), fixture("llama-tiny"));
    let gw = GpuWeights::upload(ctx, &bf16.config, &bf16.weights).unwrap();
    for b in &gw.blocks {
        for w in [&b.qkv_w, &b.proj_w, &b.fc_w, &b.mlp_proj_w] {
            assert_eq!(w.format, Some(Half::Bf16));
        }
    }
    let matrices: usize = bf16
        .weights
        .blocks
        .iter()
        .map(|b| b.attn_qkv_w.len() + b.attn_proj_w.len() + b.mlp_fc_w.len() + b.mlp_proj_w.len())
        .sum();
    let all_f32 = GpuWeights::upload(ctx, &f32_model.config, &f32_model.weights).unwrap();
    assert!(all_f32.blocks.iter().all(|b| b.qkv_w.format.is_none() && b.fc_w.format.is_none()));
    // The matrices and the table take 2 bytes a value instead of 4 (every buffer padded to 16 bytes).
    let w = &bf16.weights;
    let rest: usize = w
        .blocks
        .iter()
        .map(|b| {
            [&b.ln_1_g, &b.ln_1_b, &b.attn_qkv_b, &b.attn_proj_b, &b.ln_2_g, &b.ln_2_b, &b.mlp_fc_b, &b.mlp_proj_b]
                .iter()
                .map(|t| t.data.len())
                .sum::<usize>()
        })
        .sum::<usize>()
        + w.ln_f_g.data.len()
        + w.ln_f_b.data.len();
    // The tied token table is 16-bit too.
    assert!(gw.wte.iter().all(|c| c.format == Some(Half::Bf16)));
    let want = (rest * 4 + (matrices + w.wte.len()) * 2) as u64;
    assert!(gw.bytes >= want && gw.bytes <= want + 1024, "{} bytes uploaded, {want} expected", gw.bytes);
}

/// The page's path: each RoPE stage read cell by cell through `head_matrix`
/// (Q and K before the rotation from `qk_pre_rope`, on a head sharing its KV
/// head) equals the CPU trace within 1e-4.
#[test]
fn the_pre_rope_stages_read_through_head_matrix_equal_the_cpu_trace() {
    use attnscope::engine::AttentionStage;
    let model = fixture("llama-tiny");
    let c = &model.config;
    let ctx = gpu();
    let ids = ids(20, c.vocab_size, 3);
    let gw = GpuWeights::upload(ctx, c, &model.weights).unwrap();
    let mut fwd = GpuForward::with_weights(ctx, c, gw).unwrap();
    let cpu = forward_cpu(c, &model.weights, tokens(&ids), Mask::Causal).unwrap();
    fwd.run(ctx, &ids, RunOptions::traced(Mask::Causal)).unwrap();
    let t = ids.len();
    for layer in 0..c.n_layer {
        for head in [1, c.n_head - 1] {
            for stage in AttentionStage::ROPE {
                let want = stage.matrix(&cpu.layers[layer].heads()[head]);
                for (row, col) in [(0, 0), (t - 1, 0), (t - 1, want.cols - 1), (t / 2, want.cols / 2)] {
                    let read = fwd.head_matrix(stage, layer, head).unwrap().begin_read_cell(ctx, (row, col)).unwrap();
                    let got = pollster::block_on(read.finish(ctx)).unwrap();
                    let w = want.data[row * want.cols + col];
                    let what = format!("{stage:?} layer {layer} head {head} ({row}, {col})");
                    if w.is_infinite() {
                        assert_eq!(got, w, "{what}");
                    } else {
                        assert!((got - w).abs() <= 1e-4, "{what}: GPU {got}, CPU {w}");
                    }
                }
            }
        }
    }
    // Before and after differ past position 0: the rotation is really there.
    let head = &cpu.layers[0].heads()[1];
    let pre = head.q_pre_rope.as_ref().unwrap();
    assert!(pre.row(t - 1).iter().zip(head.q.row(t - 1)).any(|(a, b)| (a - b).abs() > 1e-4));
}

/// A forward's kernels compile when it is made, inside the page's error scope
/// (`Kernels::compile_for`): runs of every kind (traced and fast, many rows
/// and an appended one, flash and naive attention) compile nothing more, on
/// a GPT-2 (f32, and its golden fixture) and on Llamas (grouped heads, bf16).
#[test]
fn a_forward_compiles_its_kernels_when_it_is_made() {
    let ctx = gpu();
    for dir in ["gpt2-tiny", "gpt2-tiny-f16", "llama-tiny", "llama-tiny-mha", "qwen2-tiny"] {
        let model = fixture(dir);
        let gw = GpuWeights::upload(ctx, &model.config, &model.weights).unwrap();
        let mut fwd = GpuForward::with_weights(ctx, &model.config, gw).unwrap();
        let made = fwd.compiled_kernels();
        let v = model.config.vocab_size as u32;
        let ids: Vec<u32> = (0..18u32).map(|i| (i * 7 + 3) % v).collect();
        let other: Vec<u32> = (0..3u32).map(|i| (i * 5 + 1) % v).collect();
        for traced in [true, false] {
            let opts = || if traced { RunOptions::traced(Mask::Causal) } else { RunOptions::fast(Mask::Causal) };
            fwd.run(ctx, &ids[..17], opts()).unwrap(); // more rows than the skinny kernels take
            fwd.run(ctx, &ids, opts()).unwrap(); // one appended row
            fwd.run(ctx, &other, opts()).unwrap(); // a few rows from the start
        }
        assert_eq!(fwd.compiled_kernels(), made, "{dir}: runs compiled nothing more");
        assert!(made.len() < attnscope::gpu::Kernel::ALL.len(), "{dir}: not every kernel: {made:?}");
    }
}
