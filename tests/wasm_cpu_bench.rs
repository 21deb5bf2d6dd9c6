//! The page's CPU engine timed in headless Chromium (wasm, simd128,
//! single-threaded, the app's wasm-release profile): the full traced forward
//! on our default model's shape and GPT-2 small's, random weights, at the
//! lengths ONNX Runtime Web is timed at by tools/peer (tools/bench_browser.sh
//! runs both and prints the ratios). Not part of the test suite: run it by
//! name, as that script does.
#![cfg(target_arch = "wasm32")]

use attnscope::engine::init::random_weights;
use attnscope::engine::{forward_cpu, Mask};
use attnscope::model::{ModelConfig, Token};
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

async fn time(name: &str, config: &ModelConfig, lengths: &[usize], runs: usize) {
    let weights = random_weights(config, 1);
    for &t in lengths {
        let tokens: Vec<Token> = (0..t)
            .map(|i| Token { id: (i * 7919 % config.vocab_size) as u32, text: String::new(), start: 0, end: 0 })
            .collect();
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
        times.sort_by(f64::total_cmp);
        // One line per figure, parsed by tools/bench_browser.py.
        console_log!("attnscope-cpu-wasm {name} T={t} median_ms={:.2}", times[times.len() / 2]);
    }
}

#[wasm_bindgen_test]
async fn page_cpu_engine_forward_times() {
    let tiny = ModelConfig::gpt2(2, 4, 128, 128, 4096);
    time("tiny", &tiny, &[16, 64, 128], 5).await;
    time("gpt2-small", &ModelConfig::gpt2_small(), &[16, 64, 128], 2).await;
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
