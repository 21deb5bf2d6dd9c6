//! `attnscope bench`: forward-pass timings per backend, the cost of appending
//! one token with and without the KV cache, and matmul throughput.
//!
//! Every figure is measured in the same process, so ratios between rows are
//! meaningful on a noisy machine even when the absolute times are not.

use std::time::Instant;

use attnscope::engine::cost::forward_cost;
use attnscope::engine::{forward_cpu, Mask};
use attnscope::gpu::{
    read_f32, GpuContext, GpuForward, GpuWeights, Kernel, Kernels, MatmulFusion, MatmulParams, RunOptions,
};
use attnscope::model::{Gpt2Weights, ModelConfig, Token};
use wgpu::util::DeviceExt;

/// The median of at least one time.
fn median(mut times: Vec<f64>) -> f64 {
    times.sort_by(f64::total_cmp);
    times[times.len() / 2]
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
        "{name}: {} layers, {} heads, d={}, vocab {}",
        config.n_layer, config.n_head, config.n_embd, config.vocab_size
    );
}

/// The CPU reference: the full trace is kept (it is what the CPU backend produces).
pub fn cpu(
    name: &str,
    config: &ModelConfig,
    weights: &Gpt2Weights,
    lengths: &[usize],
    repeat: usize,
) -> Result<(), String> {
    header(&format!("CPU backend, {name}"), config);
    println!("  dispatches per forward: 0; bytes read back per forward: 0 (results are in memory)");
    println!("  {:>5}  {:>10}  {:>10}  {:>9}", "T", "forward ms", "GFLOP", "GFLOP/s");
    for &t in lengths {
        if t > config.n_positions {
            println!("  {t:>5}  skipped: the context holds {}", config.n_positions);
            continue;
        }
        let tokens: Vec<Token> = bench_ids(t, config.vocab_size)
            .into_iter()
            .map(|id| Token { id, text: String::new(), start: 0, end: 0 })
            .collect();
        let ms = median_ms(
            || {
                let trace = forward_cpu(config, weights, tokens.clone(), Mask::Causal).map_err(|e| e.to_string())?;
                std::hint::black_box(trace);
                Ok(())
            },
            repeat,
        )?;
        let gflop = forward_cost(config, t).total_flops() as f64 / 1e9;
        println!("  {t:>5}  {ms:>10.2}  {gflop:>10.3}  {:>9.2}", gflop / (ms / 1e3));
    }
    Ok(())
}

/// Runs, then waits for the last position's logits: what the app does per keystroke.
fn run_and_read(ctx: &GpuContext, fwd: &mut GpuForward, ids: &[u32], opts: RunOptions) -> Result<u64, String> {
    fwd.run(ctx, ids, opts).map_err(|e| e.to_string())?;
    let before = ctx.bytes_read_back();
    let logits = pollster::block_on(fwd.begin_read_last_logits(ctx).map_err(|e| e.to_string())?.finish(ctx))
        .map_err(|e| e.to_string())?;
    std::hint::black_box(logits);
    Ok(ctx.bytes_read_back() - before)
}

pub fn gpu(
    ctx: &GpuContext,
    name: &str,
    config: &ModelConfig,
    weights: &Gpt2Weights,
    lengths: &[usize],
    repeat: usize,
) -> Result<(), String> {
    header(&format!("GPU backend ({}), {name}", ctx.describe()), config);
    let gpu_weights = GpuWeights::upload(ctx, config, weights).map_err(|e| e.to_string())?;
    let mut fwd = GpuForward::with_weights(ctx, config, gpu_weights).map_err(|e| e.to_string())?;
    println!(
        "  {:>5}  {:>10}  {:>10}  {:>9}  {:>10}  {:>9}  {:>12}  {:>12}  {:>7}",
        "T", "forward ms", "traced ms", "GFLOP/s", "dispatches", "read B", "append ms", "full ms", "ratio"
    );
    for &t in lengths {
        if t > config.n_positions {
            println!("  {t:>5}  skipped: the context holds {}", config.n_positions);
            continue;
        }
        let ids = bench_ids(t, config.vocab_size);
        let fast = RunOptions::fast(Mask::Causal);
        let mut read_bytes = 0;
        run_and_read(ctx, &mut fwd, &ids, fast)?; // warm-up: allocation, pipelines
        let forward_ms = median_ms(
            || {
                fwd.clear_cache();
                read_bytes = run_and_read(ctx, &mut fwd, &ids, fast)?;
                Ok(())
            },
            repeat,
        )?;
        let dispatches = fwd.last_run().dispatches;
        let traced_ms = median_ms(
            || {
                fwd.clear_cache();
                run_and_read(ctx, &mut fwd, &ids, RunOptions::traced(Mask::Causal)).map(|_| ())
            },
            repeat,
        )?;
        // Appending one token: T−1 tokens cached, then T (one new row), timed
        // alone; compare with all T rows afresh (forward_ms).
        let mut times = Vec::with_capacity(repeat.max(1));
        for _ in 0..repeat.max(1) {
            fwd.clear_cache();
            run_and_read(ctx, &mut fwd, &ids[..t - 1], fast)?;
            let start = Instant::now();
            run_and_read(ctx, &mut fwd, &ids, fast)?;
            times.push(elapsed_ms(start));
            if fwd.last_run().reused_prefix != t - 1 {
                return Err(format!("the append reused {} rows, not {}", fwd.last_run().reused_prefix, t - 1));
            }
        }
        let append_ms = median(times);
        let gflop = forward_cost(config, t).total_flops() as f64 / 1e9;
        println!(
            "  {t:>5}  {forward_ms:>10.2}  {traced_ms:>10.2}  {:>9.2}  {dispatches:>10}  {read_bytes:>9}  {append_ms:>12.2}  {forward_ms:>12.2}  {:>6.1}×",
            gflop / (forward_ms / 1e3),
            forward_ms / append_ms
        );
    }
    println!(
        "  forward = flash attention, next-token logits only; traced = every intermediate kept (T×T matrices); \
         append = one new token with T−1 cached (KV reuse), full = the same T tokens with no cache"
    );
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
        let data: Vec<f32> = (0..n * n).map(|i| ((i * 37 % 101) as f32 - 50.0) / 50.0).collect();
        let storage = |d: &[f32]| {
            ctx.device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
                label: None,
                contents: bytemuck::cast_slice(d),
                usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC,
            })
        };
        let (x, w, b, y) = (storage(&data), storage(&data), storage(&data[..n]), storage(&data));
        let dummy = storage(&[0.0]);
        let (dummy_a, dummy_b) = (storage(&[0.0]), storage(&[0.0]));
        let params = MatmulParams::new((n, n, n), MatmulFusion { bias: true, ..Default::default() });
        let reps = if n >= 1024 { 3 } else { 20 };
        let mut run = || -> Result<(), String> {
            let mut enc = ctx.device.create_command_encoder(&Default::default());
            for _ in 0..reps {
                kernels
                    .dispatch(
                        ctx,
                        &mut enc,
                        Kernel::MatmulBias,
                        &params,
                        &[&x, &w, &b, &y, &dummy, &dummy, &dummy_a, &dummy_b],
                        params.workgroups(),
                    )
                    .map_err(|e| e.to_string())?;
            }
            ctx.queue.submit([enc.finish()]);
            pollster::block_on(read_f32(ctx, &y, 0, 1)).map_err(|e| e.to_string())?;
            Ok(())
        };
        run()?; // warm-up
        let ms = median_ms(&mut run, repeat)? / reps as f64;
        let gflops = 2.0 * (n as f64).powi(3) / 1e9 / (ms / 1e3);
        println!("  {n:>5}  {ms:>10.3}  {gflops:>9.2}");
    }
    Ok(())
}
