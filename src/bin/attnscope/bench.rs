//! `attnscope bench`: forward-pass timings per backend, the cost of appending
//! one token with and without the KV cache, and matmul throughput.
//!
//! Every figure is measured in the same process, so ratios between rows are
//! meaningful on a noisy machine even when the absolute times are not.

use std::time::Instant;

use attnscope::engine::cost::forward_cost;
use attnscope::engine::extend::extend_cpu;
use attnscope::engine::head_finder::template_scores;
use attnscope::engine::intervene::{sweep, Replacement};
use attnscope::engine::kv_cache::KvCache;
use attnscope::engine::residual::residual_norms;
use attnscope::engine::{forward_cpu, Mask, Trace};
use attnscope::gpu::{
    past_loop_limit, read_f32, AttentionShape, GpuContext, GpuForward, GpuWeights, Kernel, Kernels, MatmulFusion,
    MatmulParams, RunOptions,
};
use attnscope::model::{ModelConfig, Token, Weights};
use wgpu::util::DeviceExt;

/// The median of at least one time: the middle one, or the mean of the two
/// middle ones of an even count (`--repeat 2` read its maximum before).
fn median(mut times: Vec<f64>) -> f64 {
    times.sort_by(f64::total_cmp);
    let m = times.len() / 2;
    if times.len().is_multiple_of(2) {
        (times[m - 1] + times[m]) / 2.0
    } else {
        times[m]
    }
}

fn elapsed_ms(start: Instant) -> f64 {
    start.elapsed().as_secs_f64() * 1e3
}

/// Median wall time of `f` in milliseconds.
pub fn median_ms(mut f: impl FnMut() -> Result<(), String>, repeat: usize) -> Result<f64, String> {
    let mut times = Vec::with_capacity(repeat.max(1));
    for _ in 0..repeat.max(1) {
        let start = Instant::now();
        f()?;
        times.push(elapsed_ms(start));
    }
    Ok(median(times))
}

/// Deterministic ids that cover the vocabulary.
pub fn bench_ids(t: usize, vocab: usize) -> Vec<u32> {
    (0..t).map(|i| (i * 7919 % vocab) as u32).collect()
}

fn header(name: &str, config: &ModelConfig) {
    println!(
        "{name}: {}, {} layers, {} heads over {} KV heads of {}, d={}, vocab {}",
        config.architecture.name(),
        config.n_layer,
        config.n_head,
        config.n_kv_head,
        config.d_head(),
        config.n_embd,
        config.vocab_size
    );
}

/// Bytes of weights one cached step reads (16-bit matrices in 16 bits):
/// every block's matrices and vectors, the final norm and the LM head (the
/// whole table when tied), plus one row of the token table (and of the
/// positions, for GPT-2).
pub fn weight_bytes_per_token(config: &ModelConfig, weights: &Weights) -> u64 {
    let blocks: u64 = weights.blocks.iter().map(|b| b.bytes()).sum();
    let rows = if weights.wpe.is_some() { 2 } else { 1 };
    let tail = (weights.ln_f_g.data.len() + weights.ln_f_b.data.len() + rows * config.n_embd) as u64 * 4;
    blocks + tail + weights.head().bytes()
}

/// The ablation sweep on the CPU at each length: every head zero-ablated in
/// turn from the clean trace (each re-run from its head's layer), against as
/// many full forwards in FLOPs. Timed on the default thread pool.
pub fn cpu_sweep(
    name: &str,
    config: &ModelConfig,
    weights: &Weights,
    lengths: &[usize],
    repeat: usize,
) -> Result<(), String> {
    println!(
        "  ablation sweep ({name}, {} heads each zero-ablated alone, from the clean trace):",
        config.n_layer * config.n_head
    );
    for &t in lengths.iter().filter(|&&t| t <= config.n_positions) {
        let tokens: Vec<Token> = bench_ids(t, config.vocab_size)
            .into_iter()
            .map(|id| Token { id, text: String::new(), start: 0, end: 0 })
            .collect();
        let clean = forward_cpu(config, weights, tokens, Mask::Causal).map_err(|e| e.to_string())?;
        let mut flops = (0, 0);
        let ms = median_ms(
            || {
                let grid = sweep(config, weights, &clean, None, Replacement::Zero, None).map_err(|e| e.to_string())?;
                flops = (grid.flops, grid.full_flops);
                Ok(())
            },
            repeat,
        )?;
        sweep_line(t, ms, flops);
    }
    Ok(())
}

/// One length's sweep: its time, and its FLOPs against as many full forwards.
fn sweep_line(t: usize, ms: f64, (flops, full): (u64, u64)) {
    let saved = 1.0 - flops as f64 / full.max(1) as f64;
    println!(
        "  T={t:>4}  {ms:>9.2} ms  {:.3} GFLOP against {:.3} for full forwards ({:.0}% saved by reuse)",
        flops as f64 / 1e9,
        full as f64 / 1e9,
        100.0 * saved
    );
}

/// The head finder's template scores on the CPU at each length, against the
/// forward pass that made the trace they read.
pub fn cpu_head_finder(
    config: &ModelConfig,
    weights: &Weights,
    lengths: &[usize],
    repeat: usize,
) -> Result<(), String> {
    println!("  head finder (every template, every head, from the trace):");
    for &t in lengths.iter().filter(|&&t| t <= config.n_positions) {
        let tokens: Vec<Token> = bench_ids(t, config.vocab_size)
            .into_iter()
            .map(|id| Token { id, text: String::new(), start: 0, end: 0 })
            .collect();
        let mut trace = None;
        let forward_ms = median_ms(
            || {
                trace = Some(forward_cpu(config, weights, tokens.clone(), Mask::Causal).map_err(|e| e.to_string())?);
                Ok(())
            },
            repeat,
        )?;
        let trace = trace.ok_or("no trace")?;
        let finder_ms = median_ms(
            || {
                std::hint::black_box(template_scores(&trace, Some(tokens[0].id)));
                Ok(())
            },
            repeat,
        )?;
        println!(
            "  T={t:>4}  {finder_ms:>9.2} ms against {forward_ms:.2} ms for the forward ({:.2}×)",
            finder_ms / forward_ms
        );
    }
    Ok(())
}

/// A trace that keeps no T×T weights (the page's CPU runs past its budget)
/// against one that keeps them, at each length: the forward, the trace's
/// bytes, and what reading the weights costs then: one head's whole map,
/// the model grid's tiles (every head, 64 × 64 cells each) and the head
/// finder, each against the same read of the kept weights.
pub fn cpu_page_traces(
    config: &ModelConfig,
    weights: &Weights,
    lengths: &[usize],
    repeat: usize,
) -> Result<(), String> {
    use attnscope::engine::stepwise::TraceRun;
    use attnscope::engine::{trace_bytes, TraceKeeps};
    println!(
        "  the page's CPU traces: weights, norms, stream and MLP hidden layer computed when read, the last logits \
         row alone (all kept → the page's, ms; 1 thread):"
    );
    println!(
        "  {:>5}  {:>19}  {:>19}  {:>17}  {:>17}  {:>19}  {:>17}  {:>17}",
        "T",
        "forward",
        "trace MB",
        "one head's map",
        "grid (64×64 each)",
        "head finder",
        "residual norms",
        "a token's block"
    );
    for &t in lengths.iter().filter(|&&t| t <= config.n_positions) {
        let tokens: Vec<Token> = bench_ids(t, config.vocab_size)
            .into_iter()
            .map(|id| Token { id, text: String::new(), start: 0, end: 0 })
            .collect();
        let mut traces: [Option<Trace>; 2] = [None, None];
        let mut forward = [0.0; 2];
        for (slot, keep) in [TraceKeeps::ALL, TraceKeeps::LEAST].into_iter().enumerate() {
            forward[slot] = median_ms(
                || {
                    let run = TraceRun::new(config, weights, None, tokens.clone(), Mask::Causal)
                        .map_err(|e| e.to_string())?;
                    let run = run.keeping_weights(keep.weights).every_logits(keep.every_logits);
                    traces[slot] = Some(run.keeping_stages(keep.block_stages).finish());
                    Ok(())
                },
                repeat,
            )?;
        }
        let [Some(kept), Some(computed)] = &traces else { return Err("no trace".into()) };
        let cells: Vec<usize> = (0..64).map(|k| k * t / 64).collect();
        let mut reads = Vec::new();
        for trace in [kept, computed] {
            let head = &trace.layers[0].heads()[0];
            let map = median_ms(
                || {
                    std::hint::black_box(head.weights().to_matrix());
                    Ok(())
                },
                repeat,
            )?;
            let grid = median_ms(
                || {
                    for h in trace.layers.iter().flat_map(|l| l.heads()) {
                        std::hint::black_box(h.weights_at(&cells, &cells));
                    }
                    Ok(())
                },
                repeat,
            )?;
            let finder = median_ms(
                || {
                    std::hint::black_box(template_scores(trace, Some(tokens[0].id)));
                    Ok(())
                },
                repeat,
            )?;
            let norms = median_ms(
                || {
                    std::hint::black_box(residual_norms(trace));
                    Ok(())
                },
                repeat,
            )?;
            // What the block view reads of the last token in the last layer: its stream in, ln_1, MLP hidden.
            let (l, last) = (config.n_layer - 1, t - 1..t);
            let block = median_ms(
                || {
                    std::hint::black_box(trace.stream_rows(2 * l, last.clone()));
                    std::hint::black_box(trace.ln_1(config, weights, l, last.clone()));
                    std::hint::black_box(trace.mlp_hidden(config, weights, l, last.clone()));
                    Ok(())
                },
                repeat,
            )?;
            reads.push((map, grid, finder, norms, block));
        }
        let mb = |keep| trace_bytes(config, t, keep) as f64 / 1e6;
        let pair = |a: f64, b: f64| format!("{a:.2} → {b:.2}");
        println!(
            "  {t:>5}  {:>19}  {:>19}  {:>17}  {:>17}  {:>19}  {:>17}  {:>17}",
            pair(forward[0], forward[1]),
            format!("{:.1} → {:.1}", mb(TraceKeeps::ALL), mb(TraceKeeps::LEAST)),
            pair(reads[0].0, reads[1].0),
            pair(reads[0].1, reads[1].1),
            pair(reads[0].2, reads[1].2),
            pair(reads[0].3, reads[1].3),
            pair(reads[0].4, reads[1].4),
        );
    }
    Ok(())
}

/// Cached generation on the CPU: a 16-token prompt read once, then `steps`
/// tokens one KV-cache step each, on one thread and on two.
pub fn cpu_generation(
    name: &str,
    config: &ModelConfig,
    weights: &Weights,
    steps: usize,
    repeat: usize,
) -> Result<(), String> {
    let prompt = 16.min(config.n_positions.saturating_sub(steps));
    if prompt == 0 {
        println!("  cached generation skipped: the context holds {}", config.n_positions);
        return Ok(());
    }
    let ids = bench_ids(prompt + steps, config.vocab_size);
    let tokens: Vec<Token> =
        ids[..prompt].iter().map(|&id| Token { id, text: String::new(), start: 0, end: 0 }).collect();
    let trace = forward_cpu(config, weights, tokens, Mask::Causal).map_err(|e| e.to_string())?;
    let pools = Pools::new()?;
    let run = || -> Result<f64, String> {
        let mut cache = KvCache::from_trace(config, &trace);
        let start = Instant::now();
        for &id in &ids[prompt..] {
            std::hint::black_box(cache.step(config, weights, id, Mask::Causal).map_err(|e| e.to_string())?);
        }
        Ok(elapsed_ms(start) / steps as f64)
    };
    let mut times = vec![Vec::new(); CPU_THREADS.len()];
    for r in 0..=repeat.max(1) {
        for (slot, slot_times) in times.iter_mut().enumerate() {
            let ms = pools.install(slot, run)?;
            if r > 0 {
                slot_times.push(ms);
            }
        }
    }
    let bytes = weight_bytes_per_token(config, weights);
    println!(
        "CPU cached generation, {name}: {steps} tokens after a {prompt}-token prompt; {:.1} MB of f32 weights read per token",
        bytes as f64 / 1e6
    );
    for (threads, slot_times) in CPU_THREADS.iter().zip(times) {
        let ms = median(slot_times);
        println!(
            "  {threads} thread(s): {ms:.2} ms/token, {:.1} tokens/s, {:.2} GB/s of weights",
            1e3 / ms,
            bytes as f64 / 1e9 / (ms / 1e3)
        );
    }
    Ok(())
}

/// Pools of 1 and 2 threads, built once: the CPU kernels split matmuls over
/// the current pool (feature `threads`). Reusing the pools keeps the same
/// worker threads, and so their warm allocator arenas, from run to run.
#[cfg(feature = "threads")]
struct Pools(Vec<rayon::ThreadPool>);

#[cfg(feature = "threads")]
impl Pools {
    fn new() -> Result<Self, String> {
        let build = |n| rayon::ThreadPoolBuilder::new().num_threads(n).build().map_err(|e| e.to_string());
        Ok(Self(CPU_THREADS.iter().map(|&n| build(n)).collect::<Result<_, _>>()?))
    }

    /// Runs `f` on the pool for `CPU_THREADS[slot]` threads.
    fn install<T: Send>(&self, slot: usize, f: impl FnOnce() -> T + Send) -> T {
        self.0[slot].install(f)
    }
}

/// Without the `threads` feature the kernels run on the calling thread only.
#[cfg(not(feature = "threads"))]
struct Pools;

#[cfg(not(feature = "threads"))]
impl Pools {
    fn new() -> Result<Self, String> {
        Ok(Self)
    }

    fn install<T: Send>(&self, _slot: usize, f: impl FnOnce() -> T + Send) -> T {
        f()
    }
}

/// Thread counts the CPU rows are timed with.
const CPU_THREADS: &[usize] = if cfg!(feature = "threads") { &[1, 2] } else { &[1] };

/// The CPU engine (the fast kernels; the full trace is kept, as the CPU
/// backend produces it), on one thread and on two, alternating per run.
pub fn cpu(
    name: &str,
    config: &ModelConfig,
    weights: &Weights,
    lengths: &[usize],
    repeat: usize,
) -> Result<(), String> {
    header(&format!("CPU backend, {name}"), config);
    println!("  dispatches per forward: 0; bytes read back per forward: 0 (results are in memory)");
    let pools = Pools::new()?;
    let columns: Vec<String> = CPU_THREADS.iter().map(|n| format!("{n} thr ms")).collect();
    println!(
        "  {:>5}  {:>10}  {:>10}  {:>10}  {:>9}",
        "T",
        columns[0],
        columns.last().unwrap_or(&columns[0]),
        "GFLOP",
        "GFLOP/s"
    );
    for &t in lengths {
        if t > config.n_positions {
            println!("  {t:>5}  skipped: the context holds {}", config.n_positions);
            continue;
        }
        let tokens: Vec<Token> = bench_ids(t, config.vocab_size)
            .into_iter()
            .map(|id| Token { id, text: String::new(), start: 0, end: 0 })
            .collect();
        let run = || -> Result<f64, String> {
            let start = Instant::now();
            let trace = forward_cpu(config, weights, tokens.clone(), Mask::Causal).map_err(|e| e.to_string())?;
            std::hint::black_box(trace);
            Ok(elapsed_ms(start))
        };
        // One warm-up per thread count, then the counts alternate run by run,
        // so a noisy neighbour slows them alike.
        let mut times = vec![Vec::new(); CPU_THREADS.len()];
        for r in 0..=repeat.max(1) {
            for (slot, slot_times) in times.iter_mut().enumerate() {
                let ms = pools.install(slot, run)?;
                if r > 0 {
                    slot_times.push(ms);
                }
            }
        }
        let ms: Vec<f64> = times.into_iter().map(median).collect();
        let gflop = forward_cost(config, t).total_flops() as f64 / 1e9;
        println!(
            "  {t:>5}  {:>10.2}  {:>10.2}  {gflop:>10.3}  {:>9.2}",
            ms[0],
            ms[ms.len() - 1],
            gflop / (ms[ms.len() - 1] / 1e3)
        );
    }
    Ok(())
}

/// What a keystroke costs the CPU engine after a text of T tokens, made as
/// the page makes them (each trace from the one before, which is dropped
/// once the next exists): the last token changed (typing inside a word
/// re-tokenizes it), and a token appended. One thread; median of `repeat`
/// after one of each untimed (the first edit after a run copies the kept
/// rows once: later ones take turns in two sets of buffers).
pub fn cpu_keystrokes(config: &ModelConfig, weights: &Weights, lengths: &[usize], repeat: usize) -> Result<(), String> {
    let pools = Pools::new()?;
    println!("  keystrokes after T tokens, the trace kept (1 thread, ms):");
    println!("  {:>5}  {:>12}  {:>12}", "T", "edit last", "append");
    let vocab = config.vocab_size.max(1);
    let token = |id: usize| Token { id: (id % vocab) as u32, text: String::new(), start: 0, end: 0 };
    for &t in lengths {
        if t == 0 || t + repeat + 1 > config.n_positions {
            println!("  {t:>5}  skipped: {} more tokens would pass the context", repeat + 1);
            continue;
        }
        let step = |shown: &Trace, next: Vec<Token>| -> Result<(Trace, f64), String> {
            let start = Instant::now();
            let trace = extend_cpu(config, weights, shown, next, Mask::Causal).map_err(|e| e.to_string())?;
            Ok((trace, elapsed_ms(start)))
        };
        let (edits, appends) = pools.install(0, || -> Result<_, String> {
            let tokens = bench_ids(t, vocab).into_iter().map(|id| token(id as usize)).collect();
            let mut shown = forward_cpu(config, weights, tokens, Mask::Causal).map_err(|e| e.to_string())?;
            let (mut edits, mut appends) = (Vec::new(), Vec::new());
            for r in 0..=repeat {
                let mut next = shown.tokens.clone();
                next[t - 1] = token(next[t - 1].id as usize + 1 + r);
                let (trace, ms) = step(&shown, next)?;
                shown = trace;
                if r > 0 {
                    edits.push(ms);
                }
            }
            for r in 0..=repeat {
                let mut next = shown.tokens.clone();
                next.push(token(7919 * (t + r)));
                let (trace, ms) = step(&shown, next)?;
                shown = trace;
                if r > 0 {
                    appends.push(ms);
                }
            }
            Ok((median(edits), median(appends)))
        })?;
        println!("  {t:>5}  {edits:>12.2}  {appends:>12.2}");
    }
    Ok(())
}

/// Runs, then waits for the 10 most likely next tokens (ranked on the GPU):
/// what the app does per keystroke.
fn run_and_read(ctx: &GpuContext, fwd: &mut GpuForward, ids: &[u32], opts: RunOptions) -> Result<u64, String> {
    fwd.run(ctx, ids, opts).map_err(|e| e.to_string())?;
    let before = ctx.bytes_read_back();
    let top = pollster::block_on(fwd.begin_read_top_k(ctx, 10, 1.0).map_err(|e| e.to_string())?.finish(ctx))
        .map_err(|e| e.to_string())?;
    std::hint::black_box(top);
    Ok(ctx.bytes_read_back() - before)
}

pub fn gpu(
    ctx: &GpuContext,
    name: &str,
    config: &ModelConfig,
    weights: &Weights,
    lengths: &[usize],
    repeat: usize,
) -> Result<(), String> {
    header(&format!("GPU backend ({}), {name}", ctx.describe()), config);
    let gpu_weights = GpuWeights::upload(ctx, config, weights).map_err(|e| e.to_string())?;
    println!(
        "  weights on the GPU: {:.1} MB (16-bit where every value of a tensor is; in wasm memory as kept: {:.1} MB), \
         about all of them read per appended token",
        gpu_weights.bytes as f64 / 1e6,
        weight_bytes_per_token(config, weights) as f64 / 1e6
    );
    let mut fwd = GpuForward::with_weights(ctx, config, gpu_weights).map_err(|e| e.to_string())?;
    println!(
        "  {:>5}  {:>10}  {:>10}  {:>9}  {:>10}  {:>9}  {:>10}  {:>10}  {:>7}",
        "T", "forward ms", "traced ms", "GFLOP/s", "dispatches", "read B", "append ms", "keystroke", "ratio"
    );
    for &t in lengths {
        if t < 2 || t > config.n_positions {
            println!("  {t:>5}  skipped: the context holds {} (and an append needs 2)", config.n_positions);
            continue;
        }
        // A length the device cannot hold (the traced T×T matrices) is reported, and the next one tried.
        if let Err(e) = gpu_length(ctx, &mut fwd, config, t, repeat) {
            println!("  {t:>5}  failed: {e}");
        }
    }
    println!(
        "  forward = flash attention, then the top-10 next tokens read back; traced = every intermediate kept (T×T matrices); \
         append = one new token with T−1 cached (KV reuse), flash attention; keystroke = the page's: one new token \
         with T−1 cached, every intermediate kept (a traced run, the new row of each T×T matrix), the top-10 read \
         back (the heatmaps' draws are not in it; for a text whose blocks' T×T matrices are kept one at a time, \
         the shown block's computed again, what the page's map reads); ratio = forward ÷ append; GPU ms by kernel (where the adapter has \
         timestamp queries): one more append and keystroke, each dispatch in a pass of its own (the shown block's \
         computation not among them)"
    );
    Ok(())
}

/// One row of [`gpu`]'s table: the timings at `t` tokens.
fn gpu_length(
    ctx: &GpuContext,
    fwd: &mut GpuForward,
    config: &ModelConfig,
    t: usize,
    repeat: usize,
) -> Result<(), String> {
    let ids = bench_ids(t, config.vocab_size);
    let fast = RunOptions::fast(Mask::Causal);
    let traced = RunOptions::traced(Mask::Causal);
    let mut read_bytes = 0;
    run_and_read(ctx, fwd, &ids, fast)?; // warm-up: allocation, pipelines
    let forward_ms = median_ms(
        || {
            fwd.clear_cache();
            read_bytes = run_and_read(ctx, fwd, &ids, fast)?;
            Ok(())
        },
        repeat,
    )?;
    let dispatches = fwd.last_run().dispatches;
    run_and_read(ctx, fwd, &ids, traced)?; // warm-up: the T×T buffers, the row-attention pipelines
    let traced_ms = median_ms(
        || {
            fwd.clear_cache();
            run_and_read(ctx, fwd, &ids, traced).map(|_| ())
        },
        repeat,
    )?;
    // Appending one token: T−1 tokens cached, then T (one new row), timed
    // alone; compare with all T rows afresh (forward_ms). With one block's
    // T×T matrices at a time (a long text), a traced keystroke also computes
    // again the block the page's map shows (layer 0's here, held before it),
    // as the page does before it draws.
    let mut append = |opts: RunOptions| -> Result<f64, String> {
        let mut times = Vec::with_capacity(repeat.max(1));
        let sync = |fwd: &GpuForward| -> Result<(), String> {
            if opts.trace && fwd.one_block() {
                fwd.ensure_block(ctx, 0).map_err(|e| e.to_string())?;
                ctx.device.poll(wgpu::PollType::wait_indefinitely()).map_err(|e| e.to_string())?;
            }
            Ok(())
        };
        for _ in 0..repeat.max(1) {
            fwd.clear_cache();
            run_and_read(ctx, fwd, &ids[..t - 1], opts)?;
            sync(fwd)?;
            let start = Instant::now();
            run_and_read(ctx, fwd, &ids, opts)?;
            sync(fwd)?;
            times.push(elapsed_ms(start));
            if fwd.last_run().reused_prefix != t - 1 {
                return Err(format!("the append reused {} rows, not {}", fwd.last_run().reused_prefix, t - 1));
            }
        }
        Ok(median(times))
    };
    let append_ms = append(fast)?;
    let keystroke_ms = append(traced)?;
    if let Some(fault) = ctx.fault() {
        return Err(fault.to_string());
    }
    // Where the GPU's time goes: one more append and keystroke, each dispatch timed alone.
    let mut breakdown = Vec::new();
    if ctx.timestamps() {
        for (what, opts) in [("append", fast), ("keystroke", traced)] {
            fwd.clear_cache();
            run_and_read(ctx, fwd, &ids[..t - 1], opts)?;
            let (_, times) = pollster::block_on(fwd.run_timed(ctx, &ids, opts)).map_err(|e| e.to_string())?;
            let kernels: Vec<String> =
                times.by_kernel().iter().map(|(kernel, ms, n)| format!("{kernel:?} {ms:.3} ({n})")).collect();
            breakdown.push(format!(
                "         {what}, GPU ms by kernel (dispatches): {:.3} in all; {}",
                times.total_ms(),
                kernels.join(", ")
            ));
        }
    }
    let gflop = forward_cost(config, t).total_flops() as f64 / 1e9;
    println!(
        "  {t:>5}  {forward_ms:>10.2}  {traced_ms:>10.2}  {:>9.2}  {dispatches:>10}  {read_bytes:>9}  {append_ms:>10.2}  {keystroke_ms:>10.2}  {:>6.1}×",
        gflop / (forward_ms / 1e3),
        forward_ms / append_ms
    );
    for line in breakdown {
        println!("{line}");
    }
    Ok(())
}

/// The ablation sweep on the GPU at each length (`GpuForward::sweep`: every
/// head zero-ablated in turn in place, each re-run from its head's layer,
/// three numbers per head read back), from a traced clean run as the page
/// has; the CPU's twin is [`cpu_sweep`].
pub fn gpu_sweep(
    ctx: &GpuContext,
    name: &str,
    config: &ModelConfig,
    weights: &Weights,
    lengths: &[usize],
    repeat: usize,
) -> Result<(), String> {
    println!(
        "  ablation sweep on the GPU ({name}, {} heads each zero-ablated alone, in place on the traced run):",
        config.n_layer * config.n_head
    );
    let gpu_weights = GpuWeights::upload(ctx, config, weights).map_err(|e| e.to_string())?;
    let mut fwd = GpuForward::with_weights(ctx, config, gpu_weights).map_err(|e| e.to_string())?;
    for &t in lengths.iter().filter(|&&t| t <= config.n_positions) {
        let ids = bench_ids(t, config.vocab_size);
        fwd.run(ctx, &ids, RunOptions::traced(Mask::Causal)).map_err(|e| e.to_string())?;
        let mut flops = (0, 0);
        let mut sweep_once = || -> Result<(), String> {
            let grid = pollster::block_on(fwd.sweep(ctx, Replacement::Zero, None, None)).map_err(|e| e.to_string())?;
            flops = (grid.flops, grid.full_flops);
            Ok(())
        };
        sweep_once()?; // warm-up: the pipelines of the re-runs
        let ms = median_ms(&mut sweep_once, repeat)?;
        if let Some(fault) = ctx.fault() {
            return Err(format!("the sweep at T={t}: {fault}"));
        }
        sweep_line(t, ms, flops);
    }
    Ok(())
}

/// Storage buffers for a matmul benchmark: x[m×k], w[k×n] (or [n×k]), b[n], y[m×n].
struct MatmulBuffers {
    x: wgpu::Buffer,
    w: wgpu::Buffer,
    b: wgpu::Buffer,
    y: wgpu::Buffer,
    dummy: [wgpu::Buffer; 3],
}

impl MatmulBuffers {
    fn new(ctx: &GpuContext, (m, k, n): (usize, usize, usize)) -> Self {
        let storage = |len: usize| {
            let data: Vec<f32> = (0..len.next_multiple_of(4)).map(|i| ((i * 37 % 101) as f32 - 50.0) / 50.0).collect();
            ctx.device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
                label: None,
                contents: bytemuck::cast_slice(&data),
                usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC,
            })
        };
        Self {
            x: storage(m * k),
            w: storage(k * n),
            b: storage(n),
            y: storage(m * n),
            dummy: [storage(4), storage(4), storage(4)],
        }
    }

    /// Median milliseconds of one dispatch of `kernel` (`reps` per submission).
    fn time(
        &self,
        ctx: &GpuContext,
        kernels: &Kernels,
        kernel: Kernel,
        params: &MatmulParams,
        reps: usize,
        repeat: usize,
    ) -> Result<f64, String> {
        let [d0, d1, d2] = &self.dummy;
        let buffers = [&self.x, &self.w, &self.b, &self.y, d0, d0, d1, d2];
        let what = format!("{kernel:?} {}×{}×{}", params.m, params.k, params.n);
        time_dispatches(ctx, kernels, (kernel, params, params.workgroups_for(kernel)), &buffers, (reps, repeat), &what)
    }
}

/// Median milliseconds of one dispatch of `kernel` over `buffers` (`reps`
/// per submission; the last buffer is read back to wait for the GPU).
fn time_dispatches<P: bytemuck::Pod>(
    ctx: &GpuContext,
    kernels: &Kernels,
    (kernel, params, workgroups): (Kernel, &P, [u32; 3]),
    buffers: &[&wgpu::Buffer],
    (reps, repeat): (usize, usize),
    what: &str,
) -> Result<f64, String> {
    let last = buffers.last().ok_or("no buffers")?;
    let mut run = || -> Result<(), String> {
        let mut enc = ctx.device.create_command_encoder(&Default::default());
        for _ in 0..reps {
            kernels.dispatch(ctx, &mut enc, kernel, params, buffers, workgroups).map_err(|e| e.to_string())?;
        }
        ctx.queue.submit([enc.finish()]);
        pollster::block_on(read_f32(ctx, last, 0, 1)).map_err(|e| e.to_string())?;
        Ok(())
    };
    run()?; // warm-up
    let ms = median_ms(&mut run, repeat)? / reps as f64;
    // A dispatch the device refused would time as nothing: report it instead.
    match ctx.fault() {
        Some(fault) => Err(format!("{what}: {fault}")),
        None => Ok(ms),
    }
}

/// Generation's attention (one new query row over T cached keys, no T×T
/// kept) by both flash kernels, on SmolLM2-135M's heads: 9 query heads of
/// 64 over 3 KV heads.
fn flash_one_row(ctx: &GpuContext, kernels: &Kernels, repeat: usize) -> Result<(), String> {
    let (n_head, n_kv_head, d_head) = (9, 3, 64);
    println!(
        "one new query row's attention (generation; SmolLM2's {n_head} heads over {n_kv_head} KV heads of {d_head}): \
         flash_attention.wgsl (an invocation per row) vs flash_rows.wgsl (a workgroup per row)"
    );
    println!("  {:>5}  {:>14}  {:>12}  {:>6}", "T", "per-row-inv ms", "flash_rows ms", "ratio");
    for t in [128usize, 512, 2048] {
        let width = (n_head + 2 * n_kv_head) * d_head;
        let data: Vec<f32> = (0..t * width).map(|i| ((i * 37 % 101) as f32 - 50.0) / 200.0).collect();
        let qkv = ctx.device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
            label: None,
            contents: bytemuck::cast_slice(&data),
            usage: wgpu::BufferUsages::STORAGE,
        });
        let out = ctx.device.create_buffer(&wgpu::BufferDescriptor {
            label: None,
            size: (t * n_head * d_head * 4) as u64,
            usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC,
            mapped_at_creation: false,
        });
        let shape = AttentionShape { m: 1, t, n_head, n_kv_head, d_head, row0: t - 1, mask: Mask::Causal };
        let params = shape.flash_params().map_err(|e| e.to_string())?;
        // A kernel whose invocation would pass the adapter's loop bound (with
        // the forward's margin) stops short there: its time would be for less work.
        let within = |iterations: u64| past_loop_limit(ctx.loop_limit(), iterations).is_none();
        let reps = 10;
        let mut ms = [None; 2];
        for (slot, (kernel, workgroups, iterations)) in [
            (Kernel::FlashAttention, shape.flash_workgroups(), shape.flash_iterations()),
            (Kernel::FlashRows, shape.flash_rows_workgroups(), shape.flash_rows_iterations()),
        ]
        .into_iter()
        .enumerate()
        {
            if within(iterations) {
                let what = format!("{kernel:?} at T = {t}");
                let inputs = (kernel, &params, workgroups);
                ms[slot] = Some(time_dispatches(ctx, kernels, inputs, &[&qkv, &out], (reps, repeat), &what)?);
            }
        }
        let cell =
            |v: Option<f64>, width: usize| v.map_or(format!("{:>width$}", "past bound"), |v| format!("{v:>width$.3}"));
        let ratio = ms[0].zip(ms[1]).map_or("—".to_owned(), |(a, b)| format!("{:.1}×", a / b));
        println!("  {t:>5}  {}  {}  {ratio:>6}", cell(ms[0], 14), cell(ms[1], 12));
    }
    Ok(())
}

/// GFLOP/s of the tiled matmul kernel on square n×n×n problems.
pub fn matmul(ctx: &GpuContext, sizes: &[usize], repeat: usize) -> Result<(), String> {
    let kernels = Kernels::new(ctx);
    let software = ctx.adapter_info.device_type == wgpu::DeviceType::Cpu;
    println!("matmul_bias.wgsl on {} (y = x·w + b, f32)", ctx.describe());
    println!("  {:>5}  {:>10}  {:>9}", "n", "ms", "GFLOP/s");
    for &n in sizes {
        if software && n > 1024 {
            println!("  {n:>5}  skipped on a software adapter");
            continue;
        }
        let bufs = MatmulBuffers::new(ctx, (n, n, n));
        let params = MatmulParams::new((n, n, n), MatmulFusion { bias: true, ..Default::default() });
        let ms = bufs.time(ctx, &kernels, Kernel::MatmulBias, &params, if n >= 1024 { 3 } else { 20 }, repeat)?;
        let gflops = 2.0 * (n as f64).powi(3) / 1e9 / (ms / 1e3);
        println!("  {n:>5}  {ms:>10.3}  {gflops:>9.2}");
    }
    // What appending one token multiplies: one row through GPT-2 small's layers.
    println!("one-row matmuls (a KV-cache append, GPT-2 small shapes): matmul_skinny.wgsl vs the 64×64 tiles");
    println!("  {:>22}  {:>10}  {:>9}  {:>10}  {:>6}", "m×k×n", "skinny ms", "GB/s (w)", "tiled ms", "ratio");
    // The LM head per vocabulary chunk: GPT-2 small's 50257 rows split in two (128 MiB bindings).
    let shapes = [(1, 768, 2304, false), (1, 3072, 768, false), (1, 768, 3072, false), (1, 768, 25129, true)];
    for (m, k, n, transposed) in shapes {
        let bufs = MatmulBuffers::new(ctx, (m, k, n));
        let fusion = MatmulFusion { bias: !transposed, transposed, ..Default::default() };
        let params = MatmulParams::new((m, k, n), fusion);
        let reps = if n > 10_000 { 2 } else { 10 };
        let skinny = bufs.time(ctx, &kernels, Kernel::MatmulSkinny, &params, reps, repeat)?;
        let tiled = bufs.time(ctx, &kernels, Kernel::MatmulBias, &params, reps, repeat)?;
        let gbs = (k * n * 4) as f64 / 1e9 / (skinny / 1e3);
        let shape = format!("{m}×{k}×{n}{}", if transposed { " (wᵀ)" } else { "" });
        println!("  {shape:>22}  {skinny:>10.3}  {gbs:>9.2}  {tiled:>10.3}  {:>5.1}×", tiled / skinny);
    }
    flash_one_row(ctx, &kernels, repeat)
}
