//! The page's CPU engine timed in headless Chromium (wasm, simd128,
//! single-threaded, the app's wasm-release profile): the full traced forward
//! on our default model's shape and GPT-2 small's, random weights in f32 and
//! the same rounded to f16 and kept 16-bit (as the shipped default model and
//! an f16 checkpoint load: the kernels widen them as they read), at the
//! lengths ONNX Runtime Web is timed at by tools/peer (tools/bench_browser.py
//! runs both and prints the ratios; `--breakdown` adds where GPT-2 small's
//! forward spends its time). Not part of the test suite: run it by name, as
//! that script does.
#![cfg(target_arch = "wasm32")]

use attnscope::engine::init::random_weights;
use attnscope::engine::{forward_cpu, Mask};
use attnscope::model::{Activation, Half, Matrix, ModelConfig, Token};
use wasm_bindgen_test::*;

wasm_bindgen_test_configure!(run_in_browser);

fn now_ms() -> f64 {
    web_sys::window().and_then(|w| w.performance()).map(|p| p.now()).unwrap_or(0.0)
}

/// Gives the browser its event loop back (a macrotask), so a long benchmark
/// never holds the page past the test driver's patience.
async fn yield_now() {
    let promise = js_sys::Promise::new(&mut |resolve, _| {
        if let Some(window) = web_sys::window() {
            let _ = window.set_timeout_with_callback_and_timeout_and_arguments_0(&resolve, 0);
        }
    });
    let _ = wasm_bindgen_futures::JsFuture::from(promise).await;
}

fn tokens(config: &ModelConfig, t: usize) -> Vec<Token> {
    (0..t).map(|i| Token { id: (i * 7919 % config.vocab_size) as u32, text: String::new(), start: 0, end: 0 }).collect()
}

async fn time(name: &str, config: &ModelConfig, lengths: &[usize], runs: usize, half: Option<Half>) {
    let weights = random_weights(config, 1);
    let weights = match half {
        Some(format) => weights.rounded(format),
        None => weights,
    };
    // One untimed forward at the longest length first: V8 runs new wasm code
    // in its baseline compiler and swaps optimised code in from a background
    // thread, which on a loaded 2-core machine took a few forwards; without
    // this the first shape timed (the default model at T = 16) read 1.5–4.5 ms
    // where a second pass read 1.1–1.6. A page has long tiered up by the time
    // one types. (Each length still gets its own warm-up run below.)
    if let Some(&longest) = lengths.iter().max() {
        yield_now().await;
        std::hint::black_box(forward_cpu(config, &weights, tokens(config, longest), Mask::Causal).expect("forward"));
    }
    for &t in lengths {
        let tokens = tokens(config, t);
        let mut times = Vec::with_capacity(runs);
        for r in 0..=runs {
            yield_now().await;
            let start = now_ms();
            let trace = forward_cpu(config, &weights, tokens.clone(), Mask::Causal).expect("forward");
            std::hint::black_box(trace);
            if r > 0 {
                times.push(now_ms() - start);
            }
        }
        // One line per figure, parsed by tools/bench_browser.py.
        console_log!("attnscope-cpu-wasm {name} T={t} median_ms={:.2}", median(times));
    }
}

#[wasm_bindgen_test]
async fn page_cpu_engine_forward_times() {
    let tiny = ModelConfig::gpt2(2, 4, 128, 128, 4096);
    time("tiny", &tiny, &[16, 64, 128], 5, None).await;
    time("tiny-f16", &tiny, &[16, 64, 128], 5, Some(Half::F16)).await;
    // Five timed runs each, as tools/peer/bench.mjs times ORT's.
    time("gpt2-small", &ModelConfig::gpt2_small(), &[1, 16, 64, 128], 5, None).await;
    time("gpt2-small-f16", &ModelConfig::gpt2_small(), &[1, 16, 64, 128], 5, Some(Half::F16)).await;
    time("gpt2-small-bf16", &ModelConfig::gpt2_small(), &[1], 5, Some(Half::Bf16)).await;
}

/// Median ms of `runs` calls of `f` (after one warm-up).
async fn median_ms(runs: usize, mut f: impl FnMut()) -> f64 {
    let mut times = Vec::with_capacity(runs);
    for r in 0..=runs {
        yield_now().await;
        let start = now_ms();
        f();
        if r > 0 {
            times.push(now_ms() - start);
        }
    }
    median(times)
}

/// The median as tools/peer/bench.mjs takes ORT's: the middle value, or
/// the mean of the two middle ones of an even count (the upper one alone
/// made two runs' "median" their maximum).
fn median(mut times: Vec<f64>) -> f64 {
    times.sort_by(f64::total_cmp);
    let m = times.len() / 2;
    match times.len() {
        0 => f64::NAN,
        n if n.is_multiple_of(2) => (times[m - 1] + times[m]) / 2.0,
        _ => times[m],
    }
}

/// Where a GPT-2-small forward's time goes in wasm: each matmul over every
/// layer's own weights (cold from memory, as in the forward), the row-wise
/// kernels and attention on one layer's shapes × the layer count, the LM
/// head, then what the full forward spends beyond their sum (the trace's
/// copies and allocations). One line per part, then the total.
#[wasm_bindgen_test]
async fn page_cpu_engine_forward_breakdown() {
    use attnscope::engine::attention_cpu;
    use attnscope::engine::kernels::{self, AttentionRows, QkvRows};
    let config = ModelConfig::gpt2_small();
    let weights = random_weights(&config, 1);
    let (blocks, b) = (&weights.blocks, &weights.blocks[0]);
    let (d, n_head, d_head, inner, layers) =
        (config.n_embd, config.n_head, config.d_head(), config.n_inner, config.n_layer as f64);
    for t in [16, 64, 128] {
        let x: Vec<f32> = (0..t * d).map(|i| ((i * 7919 % 1000) as f32 - 500.0) / 500.0).collect();
        let ln = kernels::layernorm(&x, &b.ln_1_g.data, &b.ln_1_b.data, d, 1e-5);
        let qkv = kernels::matmul_bias(&ln, &b.attn_qkv_w, &b.attn_qkv_b.data, t, d, 3 * d);
        let mut hidden = kernels::matmul_bias(&ln, &b.mlp_fc_w, &b.mlp_fc_b.data, t, d, inner);
        let shape = AttentionRows { row0: 0, m: t, t, n_head, d_head, mask: Mask::Causal };
        let mm =
            |x: &[f32], w: &Matrix, bias: &[f32], k: usize, n: usize| drop(kernels::matmul_bias(x, w, bias, t, k, n));
        let mut parts: Vec<(&str, f64)> = vec![
            (
                "layernorm×2",
                2.0 * layers
                    * median_ms(5, || drop(kernels::layernorm(&x, &b.ln_1_g.data, &b.ln_1_b.data, d, 1e-5))).await,
            ),
            (
                "matmul_qkv",
                median_ms(3, || blocks.iter().for_each(|b| mm(&ln, &b.attn_qkv_w, &b.attn_qkv_b.data, d, 3 * d))).await,
            ),
            (
                "attention_rows",
                layers * median_ms(3, || drop(kernels::attention_rows_owned(&shape, &QkvRows::fused(&qkv, d)))).await,
            ),
            (
                "matmul_proj",
                median_ms(3, || blocks.iter().for_each(|b| mm(&ln, &b.attn_proj_w, &b.attn_proj_b.data, d, d))).await,
            ),
            (
                "matmul_fc",
                median_ms(3, || blocks.iter().for_each(|b| mm(&ln, &b.mlp_fc_w, &b.mlp_fc_b.data, d, inner))).await,
            ),
            ("gelu", layers * median_ms(5, || kernels::activate(&mut hidden, Activation::GeluTanh)).await),
            (
                "matmul_mlp_proj",
                median_ms(3, || blocks.iter().for_each(|b| mm(&hidden, &b.mlp_proj_w, &b.mlp_proj_b.data, inner, d)))
                    .await,
            ),
            ("add×2", 2.0 * layers * median_ms(5, || drop(kernels::add(&x, &ln))).await),
        ];
        // attention_cpu = ln_1 + the QKV matmul + attention_rows + the trace's copies.
        let attn_total = median_ms(3, || drop(attention_cpu(&config, b, &x, Mask::Causal))).await;
        let qkv_one = median_ms(3, || mm(&ln, &b.attn_qkv_w, &b.attn_qkv_b.data, d, 3 * d)).await;
        let copies = attn_total - qkv_one - (parts[0].1 / 2.0 + parts[2].1) / layers;
        parts.push(("attention_trace_copies", copies * layers));
        parts.push((
            "lm_head",
            median_ms(3, || drop(kernels::lm_head(&ln, &weights.wte, t, d, config.vocab_size))).await,
        ));
        let tokens = tokens(&config, t);
        let total =
            median_ms(3, || drop(forward_cpu(&config, &weights, tokens.clone(), Mask::Causal).expect("forward"))).await;
        let sum: f64 = parts.iter().map(|p| p.1).sum();
        parts.push(("rest", total - sum));
        for (part, ms) in parts {
            console_log!("attnscope-cpu-wasm-part gpt2-small T={t} {part} ms={ms:.1} ({:.0}%)", 100.0 * ms / total);
        }
        console_log!("attnscope-cpu-wasm-part gpt2-small T={t} forward ms={total:.1}");
    }
}

/// Cached generation on SmolLM2-135M's shape (30 layers, 9 query heads over
/// 3 KV heads of 64, SwiGLU 1536, vocabulary 49,152, tied head; random
/// weights): a 16-token prompt, then 8 KV-cache steps, ms per token, to set
/// against `attnscope bench --model <SmolLM2> --generate` on one thread.
#[wasm_bindgen_test]
async fn page_cpu_engine_cached_generation_on_smollm2_shape() {
    use attnscope::engine::kv_cache::KvCache;
    let mut config = ModelConfig::llama((30, 9, 3, 64), 576, 1536, 8192, 49152);
    config.tie_word_embeddings = true;
    let weights = random_weights(&config, 1);
    let ids: Vec<u32> = (0..24).map(|i| (i * 7919 % config.vocab_size) as u32).collect();
    let prompt: Vec<Token> = ids[..16].iter().map(|&id| Token { id, text: String::new(), start: 0, end: 0 }).collect();
    let trace = forward_cpu(&config, &weights, prompt, Mask::Causal).expect("forward");
    let mut times = Vec::new();
    for _ in 0..3 {
        let mut cache = KvCache::from_trace(&config, &trace);
        yield_now().await;
        let start = now_ms();
        for &id in &ids[16..] {
            std::hint::black_box(cache.step(&config, &weights, id, Mask::Causal).expect("step"));
        }
        times.push((now_ms() - start) / 8.0);
    }
    times.sort_by(f64::total_cmp);
    console_log!("attnscope-cpu-wasm smollm2-shape cached-generation ms_per_token={:.2}", times[1]);
}

/// A long text's LM head in the page's steps, on SmolLM2-135M's head
/// (49,152 × 576, f32, tied) over 267 rows: three rows per step (each step
/// reads the whole 113 MB table) against every row for a piece of the
/// vocabulary per step (each entry read once), both in steps of about
/// 200 MFLOP (`ui::backend::STEP_FLOPS`). Total ms and the longest step.
#[wasm_bindgen_test]
async fn page_cpu_engine_lm_head_in_steps_on_smollm2_shape() {
    use attnscope::engine::kernels;
    let (t, d, vocab) = (267, 576, 49_152);
    let wte: Vec<f32> = (0..vocab * d).map(|i| ((i * 7919 % 1000) as f32 - 500.0) / 5000.0).collect();
    let x: Vec<f32> = (0..t * d).map(|i| ((i * 104_729 % 1000) as f32 - 500.0) / 500.0).collect();
    let mut logits = vec![0.0; t * vocab];
    // Columns per step: 200 MFLOP over every row, a multiple of 16 (as `TraceRun::head_flops`).
    let width = (200_000_000 / (2 * t * d)).next_multiple_of(16);
    for round in 0..2 {
        let (mut rows_total, mut rows_longest) = (0.0f64, 0.0f64);
        for start in (0..t).step_by(3) {
            let end = (start + 3).min(t);
            yield_now().await;
            let began = now_ms();
            std::hint::black_box(kernels::lm_head(&x[start * d..end * d], &wte, end - start, d, vocab));
            let ms = now_ms() - began;
            (rows_total, rows_longest) = (rows_total + ms, rows_longest.max(ms));
        }
        let (mut cols_total, mut cols_longest) = (0.0f64, 0.0f64);
        for start in (0..vocab).step_by(width) {
            yield_now().await;
            let began = now_ms();
            kernels::lm_head_columns(&x, &wte, (t, d, vocab), start..(start + width).min(vocab), &mut logits);
            let ms = now_ms() - began;
            (cols_total, cols_longest) = (cols_total + ms, cols_longest.max(ms));
        }
        std::hint::black_box(&logits);
        if round == 1 {
            console_log!(
                "attnscope-cpu-wasm smollm2-shape lm-head-267-rows rows3_total_ms={rows_total:.0} rows3_longest_ms={rows_longest:.1} columns{width}_total_ms={cols_total:.0} columns_longest_ms={cols_longest:.1}"
            );
        }
    }
}

/// A full run of 126 tokens on SmolLM2-135M's shape (random f32 weights),
/// taken in steps of ~200 MFLOP as the page takes it (each block's
/// products a piece of their columns per step, attention a piece of its
/// query rows, the LM head a piece of the vocabulary), against the whole
/// run at once.
#[wasm_bindgen_test]
async fn page_cpu_engine_full_run_in_steps_on_smollm2_shape() {
    use attnscope::engine::stepwise::TraceRun;
    let mut config = ModelConfig::llama((30, 9, 3, 64), 576, 1536, 8192, 49152);
    config.tie_word_embeddings = true;
    let weights = random_weights(&config, 1);
    let text = tokens(&config, 126);
    for flops in [u64::MAX, 200_000_000] {
        let mut times = Vec::new();
        for _ in 0..3 {
            yield_now().await;
            let start = now_ms();
            let mut run = TraceRun::new(&config, &weights, None, text.clone(), Mask::Causal)
                .expect("run")
                .head_flops(flops)
                .block_flops(flops);
            while !run.is_done() {
                run.step();
            }
            std::hint::black_box(run.finish());
            times.push(now_ms() - start);
        }
        times.sort_by(f64::total_cmp);
        let steps = if flops == u64::MAX { "at-once" } else { "page-steps" };
        console_log!("attnscope-cpu-wasm smollm2-shape full-run T=126 {steps} ms={:.0}", times[1]);
    }
}
